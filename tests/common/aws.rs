//! SDK clients on one moto, for the checks tests make after Terraform ran,
//! and what every test needs to know about ownership tags and child records.

use std::collections::BTreeMap;

use super::{Moto, Workdir};

/// The ownership tag every taggable child carries: `<type>/<composite id>`.
pub const OWNER_TAG: &str = "cxflow:owner";
/// The per-apply lease tag (see docs/design.md, "Ownership").
pub const LEASE_TAG: &str = "cxflow:lease";

pub struct Aws {
    pub aas: aws_sdk_applicationautoscaling::Client,
    pub acm: aws_sdk_acm::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub r53: aws_sdk_route53::Client,
    pub s3: aws_sdk_s3::Client,
    pub sd: aws_sdk_servicediscovery::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Aws {
    pub fn new(m: &Moto) -> Aws {
        Aws::for_sdk(&m.sdk())
    }
    pub fn for_sdk(s: &aws_config::SdkConfig) -> Aws {
        Aws {
            aas: aws_sdk_applicationautoscaling::Client::new(s),
            acm: aws_sdk_acm::Client::new(s),
            cloudtrail: aws_sdk_cloudtrail::Client::new(s),
            cloudwatch: aws_sdk_cloudwatch::Client::new(s),
            codebuild: aws_sdk_codebuild::Client::new(s),
            codepipeline: aws_sdk_codepipeline::Client::new(s),
            ec2: aws_sdk_ec2::Client::new(s),
            ecr: aws_sdk_ecr::Client::new(s),
            ecs: aws_sdk_ecs::Client::new(s),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(s),
            events: aws_sdk_eventbridge::Client::new(s),
            iam: aws_sdk_iam::Client::new(s),
            logs: aws_sdk_cloudwatchlogs::Client::new(s),
            r53: aws_sdk_route53::Client::new(s),
            s3: s3_client(s),
            sd: aws_sdk_servicediscovery::Client::new(s),
            secrets: aws_sdk_secretsmanager::Client::new(s),
            ssm: aws_sdk_ssm::Client::new(s),
        }
    }
}

/// S3 on a loopback stand-in: path-style, as the provider does with an endpoint override.
pub fn s3_client(s: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(s).force_path_style(true).build())
}

/// The `children` record of a composite in state: child key (and `key.part`) → identity.
pub fn children(wd: &Workdir, type_name: &str, name: &str) -> BTreeMap<String, String> {
    let a = wd.state_attrs(type_name, name);
    a["children"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default()
}

/// Keys whose identity differs between two records (added and removed keys included).
pub fn changed_keys(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

impl Aws {
    /// Two subnets of moto's default VPC and an ALB `name` in them with an
    /// HTTP listener on port 80 answering 404: (VPC, subnets, listener ARN).
    pub async fn alb_fixture(&self, name: &str) -> (String, Vec<String>, String) {
        use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, FixedResponseActionConfig, ProtocolEnum};
        let vpcs = self.ec2.describe_vpcs().send().await.unwrap();
        let vpc = vpcs.vpcs().iter().find(|v| v.is_default() == Some(true)).and_then(|v| v.vpc_id()).unwrap().to_string();
        let f = aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build();
        let subnets = self.ec2.describe_subnets().filters(f).send().await.unwrap();
        let mut subnets: Vec<String> = subnets.subnets().iter().filter_map(|s| s.subnet_id().map(str::to_string)).collect();
        subnets.sort();
        subnets.truncate(2);
        let lb = self.elb.create_load_balancer().name(name).set_subnets(Some(subnets.clone())).send().await.unwrap();
        let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let fixed = Action::builder().r#type(ActionTypeEnum::FixedResponse).fixed_response_config(FixedResponseActionConfig::builder().status_code("404").build()).build();
        let l = self.elb.create_listener().load_balancer_arn(&lb_arn).protocol(ProtocolEnum::Http).port(80).default_actions(fixed).send().await.unwrap();
        (vpc, subnets, l.listeners()[0].listener_arn().unwrap().to_string())
    }

    /// Every object moto holds that still carries [`OWNER_TAG`], in every
    /// service the composites use (INACTIVE ECS services and task definition
    /// revisions are AWS's tombstones and do not count). Objects AWS cannot
    /// tag are found by [`super::snapshot::Snapshot`] differences instead.
    pub async fn owned_leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let owned = |k: Option<&str>| k == Some(OWNER_TAG);
        // EC2, kind by kind (moto's DescribeTags keeps the tags of deleted objects).
        let f = || aws_sdk_ec2::types::Filter::builder().name("tag-key").values(OWNER_TAG).build();
        let ec2 = &self.ec2;
        let mut ids: Vec<String> = Vec::new();
        ids.extend(ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs().iter().filter_map(|x| x.vpc_id().map(str::to_string)));
        ids.extend(ec2.describe_subnets().filters(f()).send().await.unwrap().subnets().iter().filter_map(|x| x.subnet_id().map(str::to_string)));
        ids.extend(ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways().iter().filter_map(|x| x.internet_gateway_id().map(str::to_string)));
        ids.extend(ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables().iter().filter_map(|x| x.route_table_id().map(str::to_string)));
        ids.extend(
            ec2.describe_nat_gateways()
                .filter(f())
                .send()
                .await
                .unwrap()
                .nat_gateways()
                .iter()
                .filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting")))
                .filter_map(|x| x.nat_gateway_id().map(str::to_string)),
        );
        ids.extend(ec2.describe_addresses().filters(f()).send().await.unwrap().addresses().iter().filter_map(|x| x.allocation_id().map(str::to_string)));
        ids.extend(ec2.describe_security_groups().filters(f()).send().await.unwrap().security_groups().iter().filter_map(|x| x.group_id().map(str::to_string)));
        ids.extend(ec2.describe_flow_logs().filter(f()).send().await.unwrap().flow_logs().iter().filter_map(|x| x.flow_log_id().map(str::to_string)));
        out.extend(ids.into_iter().map(|id| format!("ec2 {id}")));
        // ELBv2: load balancers, listeners, target groups, listener rules.
        let mut arns: Vec<String> = Vec::new();
        for lb in self.elb.describe_load_balancers().send().await.unwrap().load_balancers() {
            let arn = lb.load_balancer_arn().unwrap_or_default();
            arns.push(arn.to_string());
            for l in self.elb.describe_listeners().load_balancer_arn(arn).send().await.unwrap().listeners() {
                arns.push(l.listener_arn().unwrap_or_default().to_string());
                for r in self.elb.describe_rules().listener_arn(l.listener_arn().unwrap_or_default()).send().await.unwrap().rules() {
                    if r.is_default() != Some(true) {
                        arns.push(r.rule_arn().unwrap_or_default().to_string());
                    }
                }
            }
        }
        arns.extend(self.elb.describe_target_groups().send().await.unwrap().target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)));
        for chunk in arns.chunks(20) {
            for d in self.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.unwrap().tag_descriptions() {
                if d.tags().iter().any(|t| owned(t.key())) {
                    out.push(format!("elbv2 {}", d.resource_arn().unwrap_or_default()));
                }
            }
        }
        // ECS: clusters, services, active task definition revisions.
        for c in self.ecs.list_clusters().send().await.unwrap().cluster_arns() {
            let d = self.ecs.describe_clusters().clusters(c).include(aws_sdk_ecs::types::ClusterField::Tags).send().await.unwrap();
            if d.clusters().iter().any(|x| x.status() == Some("ACTIVE") && x.tags().iter().any(|t| owned(t.key()))) {
                out.push(format!("ecs cluster {c}"));
            }
            let arns = self.ecs.list_services().cluster(c).send().await.unwrap().service_arns().to_vec();
            for chunk in arns.chunks(10) {
                let d = self.ecs.describe_services().cluster(c).set_services(Some(chunk.to_vec())).include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap();
                for s in d.services().iter().filter(|s| s.status() != Some("INACTIVE") && s.tags().iter().any(|t| owned(t.key()))) {
                    out.push(format!("ecs service {}", s.service_arn().unwrap_or_default()));
                }
            }
        }
        let tds = self.ecs.list_task_definitions().status(aws_sdk_ecs::types::TaskDefinitionStatus::Active).send().await.unwrap();
        for td in tds.task_definition_arns() {
            if self.ecs.list_tags_for_resource().resource_arn(td).send().await.unwrap().tags().iter().any(|t| owned(t.key())) {
                out.push(format!("ecs task-definition {td}"));
            }
        }
        // IAM roles and OIDC providers, log groups, ECR repositories, certificates, parameters, namespaces.
        for r in self.iam.list_roles().send().await.unwrap().roles() {
            if self.iam.list_role_tags().role_name(r.role_name()).send().await.unwrap().tags().iter().any(|t| t.key() == OWNER_TAG) {
                out.push(format!("iam role {}", r.role_name()));
            }
        }
        for arn in self.iam.list_open_id_connect_providers().send().await.unwrap().open_id_connect_provider_list().iter().filter_map(|p| p.arn()) {
            let tags = self.iam.list_open_id_connect_provider_tags().open_id_connect_provider_arn(arn).send().await.unwrap();
            if tags.tags().iter().any(|t| t.key() == OWNER_TAG) {
                out.push(format!("iam oidc-provider {arn}"));
            }
        }
        for g in self.logs.describe_log_groups().send().await.unwrap().log_groups() {
            let arn = g.log_group_arn().map(str::to_string).unwrap_or_else(|| g.arn().unwrap_or_default().trim_end_matches(":*").to_string());
            if self.logs.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags().is_some_and(|t| t.contains_key(OWNER_TAG)) {
                out.push(format!("logs log-group {}", g.log_group_name().unwrap_or_default()));
            }
        }
        for r in self.ecr.describe_repositories().send().await.unwrap().repositories() {
            let tags = self.ecr.list_tags_for_resource().resource_arn(r.repository_arn().unwrap_or_default()).send().await.unwrap();
            if tags.tags().iter().any(|t| t.key() == OWNER_TAG) {
                out.push(format!("ecr repository {}", r.repository_name().unwrap_or_default()));
            }
        }
        for c in self.acm.list_certificates().send().await.unwrap().certificate_summary_list() {
            let arn = c.certificate_arn().unwrap_or_default();
            if self.acm.list_tags_for_certificate().certificate_arn(arn).send().await.unwrap().tags().iter().any(|t| t.key() == OWNER_TAG) {
                out.push(format!("acm certificate {arn}"));
            }
        }
        let mut pages = self.ssm.describe_parameters().into_paginator().send();
        while let Some(page) = pages.next().await {
            for p in page.unwrap().parameters() {
                let name = p.name().unwrap_or_default();
                let tags = self.ssm.list_tags_for_resource().resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter).resource_id(name).send().await.unwrap();
                if tags.tag_list().iter().any(|t| t.key() == OWNER_TAG) {
                    out.push(format!("ssm parameter {name}"));
                }
            }
        }
        for n in self.sd.list_namespaces().send().await.unwrap().namespaces() {
            let tags = self.sd.list_tags_for_resource().resource_arn(n.arn().unwrap_or_default()).send().await.unwrap();
            if tags.tags().iter().any(|t| t.key() == OWNER_TAG) {
                out.push(format!("servicediscovery namespace {}", n.arn().unwrap_or_default()));
            }
        }
        out
    }
}

/// [`Aws::owned_leftovers`] on `m`.
pub fn owned_leftovers(m: &Moto) -> Vec<String> {
    super::block_on(Aws::new(m).owned_leftovers())
}
