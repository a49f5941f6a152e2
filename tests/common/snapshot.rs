//! Every object moto holds in the services the provider uses, tagged or not:
//! taken before an apply and after the destroy, the difference must be empty.
//! Each object is one line, `<service> <kind> <identity>`, so a difference
//! reads as a list of what was left behind (or removed).

use std::collections::BTreeSet;

use super::{Moto, block_on};

/// What exists, one line per object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(pub BTreeSet<String>);

impl Snapshot {
    pub fn take(m: &Moto) -> Snapshot {
        block_on(take(&m.sdk()))
    }
    /// Objects in `self` that `before` did not have.
    pub fn added_since(&self, before: &Snapshot) -> Vec<String> {
        self.0.difference(&before.0).cloned().collect()
    }
    /// Objects `before` had that are gone from `self`.
    pub fn removed_since(&self, before: &Snapshot) -> Vec<String> {
        before.0.difference(&self.0).cloned().collect()
    }
    /// Lines starting with `prefix` (e.g. `"ec2 vpc "`).
    pub fn count(&self, prefix: &str) -> usize {
        self.0.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

async fn take(sdk: &aws_config::SdkConfig) -> Snapshot {
    let mut s = BTreeSet::new();
    let mut add = |l: String| {
        s.insert(l);
    };

    let ec2 = aws_sdk_ec2::Client::new(sdk);
    for v in ec2.describe_vpcs().send().await.unwrap().vpcs() {
        add(format!("ec2 vpc {}", v.vpc_id().unwrap_or_default()));
    }
    for x in ec2.describe_subnets().send().await.unwrap().subnets() {
        add(format!("ec2 subnet {}", x.subnet_id().unwrap_or_default()));
    }
    for x in ec2.describe_internet_gateways().send().await.unwrap().internet_gateways() {
        add(format!("ec2 internet-gateway {}", x.internet_gateway_id().unwrap_or_default()));
    }
    for x in ec2.describe_route_tables().send().await.unwrap().route_tables() {
        add(format!("ec2 route-table {}", x.route_table_id().unwrap_or_default()));
    }
    for x in ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        if !matches!(x.state().map(|s| s.as_str()), Some("deleted") | Some("deleting")) {
            add(format!("ec2 nat-gateway {}", x.nat_gateway_id().unwrap_or_default()));
        }
    }
    for x in ec2.describe_addresses().send().await.unwrap().addresses() {
        add(format!("ec2 elastic-ip {}", x.allocation_id().unwrap_or_default()));
    }
    for x in ec2.describe_security_groups().send().await.unwrap().security_groups() {
        add(format!("ec2 security-group {}", x.group_id().unwrap_or_default()));
    }
    for x in ec2.describe_flow_logs().send().await.unwrap().flow_logs() {
        add(format!("ec2 flow-log {}", x.flow_log_id().unwrap_or_default()));
    }

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    for lb in elb.describe_load_balancers().send().await.unwrap().load_balancers() {
        let arn = lb.load_balancer_arn().unwrap_or_default();
        add(format!("elbv2 load-balancer {arn}"));
        for l in elb.describe_listeners().load_balancer_arn(arn).send().await.unwrap().listeners() {
            let la = l.listener_arn().unwrap_or_default();
            add(format!("elbv2 listener {la}"));
            for r in elb.describe_rules().listener_arn(la).send().await.unwrap().rules().iter().filter(|r| r.is_default() != Some(true)) {
                add(format!("elbv2 rule {}", r.rule_arn().unwrap_or_default()));
            }
        }
    }
    for tg in elb.describe_target_groups().send().await.unwrap().target_groups() {
        add(format!("elbv2 target-group {}", tg.target_group_arn().unwrap_or_default()));
    }

    let acm = aws_sdk_acm::Client::new(sdk);
    for c in acm.list_certificates().send().await.unwrap().certificate_summary_list() {
        add(format!("acm certificate {}", c.certificate_arn().unwrap_or_default()));
    }

    let r53 = aws_sdk_route53::Client::new(sdk);
    for z in r53.list_hosted_zones().send().await.unwrap().hosted_zones() {
        add(format!("route53 zone {}", z.name()));
        let recs = r53.list_resource_record_sets().hosted_zone_id(z.id()).send().await.unwrap();
        for r in recs.resource_record_sets() {
            add(format!("route53 record {} {} {}", z.name(), r.r#type().as_str(), r.name()));
        }
    }

    let ecr = aws_sdk_ecr::Client::new(sdk);
    for r in ecr.describe_repositories().send().await.unwrap().repositories() {
        add(format!("ecr repository {}", r.repository_name().unwrap_or_default()));
    }

    let ecs = aws_sdk_ecs::Client::new(sdk);
    let clusters = ecs.list_clusters().send().await.unwrap().cluster_arns().to_vec();
    if !clusters.is_empty() {
        for c in ecs.describe_clusters().set_clusters(Some(clusters.clone())).send().await.unwrap().clusters().iter().filter(|c| c.status() == Some("ACTIVE")) {
            add(format!("ecs cluster {}", c.cluster_arn().unwrap_or_default()));
        }
    }
    for c in &clusters {
        let arns = ecs.list_services().cluster(c).send().await.unwrap().service_arns().to_vec();
        for chunk in arns.chunks(10) {
            for svc in ecs.describe_services().cluster(c).set_services(Some(chunk.to_vec())).send().await.unwrap().services().iter().filter(|s| s.status() == Some("ACTIVE")) {
                add(format!("ecs service {}", svc.service_arn().unwrap_or_default()));
            }
        }
    }
    for status in [aws_sdk_ecs::types::TaskDefinitionStatus::Active, aws_sdk_ecs::types::TaskDefinitionStatus::Inactive] {
        for td in ecs.list_task_definitions().status(status.clone()).send().await.unwrap().task_definition_arns() {
            add(format!("ecs task-definition {td} {}", status.as_str()));
        }
    }

    let iam = aws_sdk_iam::Client::new(sdk);
    for r in iam.list_roles().send().await.unwrap().roles() {
        let n = r.role_name();
        add(format!("iam role {n}"));
        for p in iam.list_role_policies().role_name(n).send().await.unwrap().policy_names() {
            add(format!("iam role-policy {n}/{p}"));
        }
        for p in iam.list_attached_role_policies().role_name(n).send().await.unwrap().attached_policies() {
            add(format!("iam role-attachment {n}/{}", p.policy_arn().unwrap_or_default()));
        }
    }
    for p in iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send().await.unwrap().policies() {
        add(format!("iam policy {}", p.arn().unwrap_or_default()));
    }
    for g in iam.list_groups().send().await.unwrap().groups() {
        add(format!("iam group {}{}", g.path(), g.group_name()));
        let n = g.group_name();
        for p in iam.list_group_policies().group_name(n).send().await.unwrap().policy_names() {
            add(format!("iam group-policy {n}/{p}"));
        }
        for p in iam.list_attached_group_policies().group_name(n).send().await.unwrap().attached_policies() {
            add(format!("iam group-attachment {n}/{}", p.policy_arn().unwrap_or_default()));
        }
        for u in iam.get_group().group_name(n).send().await.unwrap().users() {
            add(format!("iam group-member {n}/{}", u.user_name()));
        }
    }
    for p in iam.list_open_id_connect_providers().send().await.unwrap().open_id_connect_provider_list() {
        add(format!("iam oidc-provider {}", p.arn().unwrap_or_default()));
    }

    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    for g in logs.describe_log_groups().send().await.unwrap().log_groups() {
        add(format!("logs log-group {}", g.log_group_name().unwrap_or_default()));
    }

    let ssm = aws_sdk_ssm::Client::new(sdk);
    let mut pages = ssm.describe_parameters().into_paginator().send();
    while let Some(p) = pages.next().await {
        for x in p.unwrap().parameters() {
            add(format!("ssm parameter {}", x.name().unwrap_or_default()));
        }
    }

    let events = aws_sdk_eventbridge::Client::new(sdk);
    for r in events.list_rules().send().await.unwrap().rules() {
        add(format!("events rule {}", r.name().unwrap_or_default()));
    }

    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    for x in sm.list_secrets().send().await.unwrap().secret_list() {
        add(format!("secretsmanager secret {}", x.name().unwrap_or_default()));
    }

    let sd = aws_sdk_servicediscovery::Client::new(sdk);
    for n in sd.list_namespaces().send().await.unwrap().namespaces() {
        add(format!("servicediscovery namespace {}", n.arn().unwrap_or_default()));
    }
    for x in sd.list_services().send().await.unwrap().services() {
        add(format!("servicediscovery service {}", x.arn().unwrap_or_default()));
    }

    // Scalable targets by resource ID; policies and scheduled actions by name.
    use aws_sdk_applicationautoscaling::types::ServiceNamespace;
    let aas = aws_sdk_applicationautoscaling::Client::new(sdk);
    for t in aas.describe_scalable_targets().service_namespace(ServiceNamespace::Ecs).send().await.unwrap().scalable_targets() {
        add(format!("application-autoscaling scalable-target {}", t.resource_id()));
    }
    for p in aas.describe_scaling_policies().service_namespace(ServiceNamespace::Ecs).send().await.unwrap().scaling_policies() {
        add(format!("application-autoscaling policy {}", p.policy_name()));
    }
    for a in aas.describe_scheduled_actions().service_namespace(ServiceNamespace::Ecs).send().await.unwrap().scheduled_actions() {
        add(format!("application-autoscaling scheduled-action {}", a.scheduled_action_name()));
    }

    let s3 = super::aws::s3_client(sdk);
    for b in s3.list_buckets().send().await.unwrap().buckets() {
        add(format!("s3 bucket {}", b.name().unwrap_or_default()));
    }

    let codebuild = aws_sdk_codebuild::Client::new(sdk);
    for p in codebuild.list_projects().send().await.unwrap().projects() {
        add(format!("codebuild project {p}"));
    }

    let cloudtrail = aws_sdk_cloudtrail::Client::new(sdk);
    for t in cloudtrail.list_trails().send().await.unwrap().trails() {
        add(format!("cloudtrail trail {}", t.trail_arn().unwrap_or_default()));
    }

    let codepipeline = aws_sdk_codepipeline::Client::new(sdk);
    for p in codepipeline.list_pipelines().send().await.unwrap().pipelines() {
        add(format!("codepipeline pipeline {}", p.name().unwrap_or_default()));
    }
    Snapshot(s)
}
