//! cxflow_cluster through examples/cxflow-cluster, against moto with the real
//! Terraform CLI, checked with the Rust AWS SDK.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value as Json;

const SECRETS: &str = r#"{
  "production": {"checkmarx_username": "bot", "checkmarx_password": "Cl-PW-PROD-77", "checkmarx_token": "Cl-TOK-PROD-77", "gitlab_token": "Cl-GL-PROD-77", "gitlab_webhook_token": "Cl-WH-PROD-77"},
  "staging":    {"checkmarx_username": "bot", "checkmarx_password": "Cl-PW-STG-77",  "checkmarx_token": "Cl-TOK-STG-77",  "gitlab_token": "Cl-GL-STG-77",  "gitlab_webhook_token": "Cl-WH-STG-77"},
  "qa":         {"checkmarx_username": "bot", "checkmarx_password": "Cl-PW-QA-77",   "checkmarx_token": "Cl-TOK-QA-77",   "gitlab_token": "Cl-GL-QA-77",   "gitlab_webhook_token": "Cl-WH-QA-77"}
}"#;

fn tfvars(envs: &str) -> String {
    format!(
        "region   = \"us-east-1\"\nname     = \"cxflow\"\ndns_zone = \"example.com\"\ndomain   = \"cxflow.example.com\"\nenvironments = {{\n{envs}\n}}\nwebhook_source_cidrs = [\"34.74.90.64/28\", \"34.74.226.0/24\"]\ncheckmarx_url = \"https://checkmarx.example.com\"\ntags = {{ Team = \"appsec\" }}\n"
    )
}

const TWO_ENVS: &str = "  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"latest\", desired_count = 1, cpu = 512, memory = 2048 }";

fn children(wd: &Workdir) -> BTreeMap<String, String> {
    let a = wd.state_attrs("cxflow_cluster", "this");
    serde_json::from_value(a["children"].clone()).unwrap_or_default()
}

fn changed_keys(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

struct Aws {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
    acm: aws_sdk_acm::Client,
    r53: aws_sdk_route53::Client,
    ecr: aws_sdk_ecr::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

impl Aws {
    fn new(m: &Moto) -> Aws {
        let s = m.sdk();
        Aws {
            ecs: aws_sdk_ecs::Client::new(&s),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&s),
            ec2: aws_sdk_ec2::Client::new(&s),
            iam: aws_sdk_iam::Client::new(&s),
            acm: aws_sdk_acm::Client::new(&s),
            r53: aws_sdk_route53::Client::new(&s),
            ecr: aws_sdk_ecr::Client::new(&s),
            logs: aws_sdk_cloudwatchlogs::Client::new(&s),
        }
    }

    async fn service(&self, name: &str) -> Option<aws_sdk_ecs::types::Service> {
        let out = self.ecs.describe_services().cluster("cxflow").services(name).send().await.ok()?;
        out.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned()
    }

    async fn rules(&self) -> Vec<aws_sdk_elasticloadbalancingv2::types::Rule> {
        let lb = self.elb.describe_load_balancers().names("cxflow-alb").send().await.unwrap();
        let arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let ls = self.elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap();
        let l = ls.listeners().iter().find(|l| l.port() == Some(443)).unwrap().listener_arn().unwrap().to_string();
        self.elb.describe_rules().listener_arn(&l).send().await.unwrap().rules().to_vec()
    }

    /// Every object anywhere still tagged as owned by the cluster.
    async fn owned_leftovers(&self) -> Vec<String> {
        let owner = "cxflow_cluster/cxflow";
        let mut left = Vec::new();
        let f = aws_sdk_ec2::types::Filter::builder().name("tag:cxflow:owner").values(owner).build();
        for v in self.ec2.describe_vpcs().filters(f.clone()).send().await.unwrap().vpcs() {
            left.push(format!("vpc {}", v.vpc_id().unwrap_or_default()));
        }
        for s in self.ec2.describe_subnets().filters(f.clone()).send().await.unwrap().subnets() {
            left.push(format!("subnet {}", s.subnet_id().unwrap_or_default()));
        }
        for g in self.ec2.describe_security_groups().filters(f.clone()).send().await.unwrap().security_groups() {
            left.push(format!("security group {}", g.group_id().unwrap_or_default()));
        }
        for g in self.ec2.describe_internet_gateways().filters(f.clone()).send().await.unwrap().internet_gateways() {
            left.push(format!("internet gateway {}", g.internet_gateway_id().unwrap_or_default()));
        }
        for t in self.ec2.describe_route_tables().filters(f.clone()).send().await.unwrap().route_tables() {
            left.push(format!("route table {}", t.route_table_id().unwrap_or_default()));
        }
        for n in self.ec2.describe_nat_gateways().filter(f.clone()).send().await.unwrap().nat_gateways() {
            if !matches!(n.state().map(|s| s.as_str()), Some("deleted")) {
                left.push(format!("NAT gateway {}", n.nat_gateway_id().unwrap_or_default()));
            }
        }
        for a in self.ec2.describe_addresses().filters(f.clone()).send().await.unwrap().addresses() {
            left.push(format!("address {}", a.allocation_id().unwrap_or_default()));
        }
        for c in self.ecs.list_clusters().send().await.unwrap().cluster_arns() {
            let d = self.ecs.describe_clusters().clusters(c).include(aws_sdk_ecs::types::ClusterField::Tags).send().await.unwrap();
            for cl in d.clusters().iter().filter(|c| c.status() == Some("ACTIVE")) {
                if cl.tags().iter().any(|t| t.value() == Some(owner)) {
                    left.push(format!("ECS cluster {c}"));
                }
                let svcs = self.ecs.list_services().cluster(c).send().await.unwrap();
                if !svcs.service_arns().is_empty() {
                    let d = self
                        .ecs
                        .describe_services()
                        .cluster(c)
                        .set_services(Some(svcs.service_arns().to_vec()))
                        .include(aws_sdk_ecs::types::ServiceField::Tags)
                        .send()
                        .await
                        .unwrap();
                    for s in d.services().iter().filter(|s| s.status() == Some("ACTIVE") && s.tags().iter().any(|t| t.value() == Some(owner))) {
                        left.push(format!("ECS service {}", s.service_name().unwrap_or_default()));
                    }
                }
            }
        }
        let mut arns: Vec<String> =
            self.elb.describe_load_balancers().send().await.unwrap().load_balancers().iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
        arns.extend(self.elb.describe_target_groups().send().await.unwrap().target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)));
        for chunk in arns.chunks(20) {
            let tags = self.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.unwrap();
            for d in tags.tag_descriptions() {
                if d.tags().iter().any(|t| t.value() == Some(owner)) {
                    left.push(format!("ELB {}", d.resource_arn().unwrap_or_default()));
                }
            }
        }
        for r in self.iam.list_roles().send().await.unwrap().roles() {
            let t = self.iam.list_role_tags().role_name(r.role_name()).send().await.unwrap();
            if t.tags().iter().any(|t| t.value() == owner) {
                left.push(format!("IAM role {}", r.role_name()));
            }
        }
        for c in self.acm.list_certificates().send().await.unwrap().certificate_summary_list() {
            let arn = c.certificate_arn().unwrap_or_default();
            let t = self.acm.list_tags_for_certificate().certificate_arn(arn).send().await.unwrap();
            if t.tags().iter().any(|t| t.value() == Some(owner)) {
                left.push(format!("certificate {arn}"));
            }
        }
        for r in self.ecr.describe_repositories().send().await.unwrap().repositories() {
            left.push(format!("ECR repository {}", r.repository_name().unwrap_or_default()));
        }
        for g in self.logs.describe_log_groups().log_group_name_prefix("/app/cxflow").send().await.unwrap().log_groups() {
            left.push(format!("log group {}", g.log_group_name().unwrap_or_default()));
        }
        let zone = self.r53.list_hosted_zones().send().await.unwrap().hosted_zones()[0].id().to_string();
        for r in self.r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap().resource_record_sets() {
            if r.alias_target().is_some() {
                left.push(format!("alias record {}", r.name()));
            }
        }
        left
    }
}

#[test]
fn cluster_example_lifecycle() {
    // Every Terraform the suite has: the bundled 1.15 and a system one >= 1.11.
    for terraform in terraform_clients() {
        lifecycle_with(&terraform);
    }
}

fn lifecycle_with(terraform: &std::path::Path) {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    block_on(async { aws.r53.create_hosted_zone().name("example.com").caller_reference("tests").send().await.unwrap() });

    let mut wd = Workdir::new(terraform, Some(&moto));
    copy_dir(&repo_root().join("examples/cxflow-cluster"), wd.path());
    wd.env.insert("TF_VAR_cxflow_secrets".into(), SECRETS.into());
    wd.write("terraform.tfvars", &tfvars(TWO_ENVS));
    wd.tf(&["get"]).expect_ok("terraform get (module)");

    // 1. The example applies, and everything the module used to create exists.
    let applied = wd.apply();
    applied.expect_ok("apply of examples/cxflow-cluster");
    assert!(!applied.all().contains("Cl-PW-PROD-77"));
    let first = children(&wd);
    for key in [
        "vpc",
        "internet_gateway",
        "nat_0",
        "load_balancer",
        "https_listener",
        "certificate",
        "repository",
        "ecs_cluster",
        "execution_role",
        "service_production",
        "service_staging",
        "listener_rule_staging",
        "dns_production",
    ] {
        assert!(first.contains_key(key), "child {key} recorded: {first:?}");
    }
    block_on(async {
        for env in ["production", "staging"] {
            let svc = aws.service(&format!("cxflow-{env}")).await.unwrap_or_else(|| panic!("service for {env}"));
            assert_eq!(svc.desired_count(), 1);
            let td = aws.ecs.describe_task_definition().task_definition(svc.task_definition().unwrap()).send().await.unwrap();
            let td = td.task_definition().unwrap();
            assert_eq!((td.cpu(), td.memory()), (Some("512"), Some("2048")));
            let c = &td.container_definitions()[0];
            assert!(c.image().unwrap().ends_with(if env == "production" { "/cxflow:stable" } else { "/cxflow:latest" }));
            let secrets: BTreeMap<&str, &str> = c.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
            assert!(secrets["GITLAB_WEBHOOK_TOKEN"].ends_with(&format!(":parameter/cxflow/{env}/gitlab/webhook-token")));
            assert_eq!(secrets.len(), 6);
            let lg = aws.logs.describe_log_groups().log_group_name_prefix(format!("/app/cxflow-{env}")).send().await.unwrap();
            assert_eq!(lg.log_groups()[0].retention_in_days(), Some(30));
        }
        // HTTPS only, default 404, one host-header rule per environment.
        let lb = aws.elb.describe_load_balancers().names("cxflow-alb").send().await.unwrap();
        let ls = aws.elb.describe_listeners().load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().unwrap()).send().await.unwrap();
        let l = &ls.listeners()[0];
        assert_eq!((l.port(), l.ssl_policy()), (Some(443), Some("ELBSecurityPolicy-TLS13-1-2-2021-06")));
        let fixed = l.default_actions()[0].fixed_response_config().unwrap();
        assert_eq!((fixed.status_code(), fixed.message_body()), (Some("404"), Some("Missing environment in path")));
        let hosts: Vec<String> =
            aws.rules().await.iter().flat_map(|r| r.conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())).collect();
        assert!(hosts.contains(&"production.cxflow.example.com".to_string()) && hosts.contains(&"staging.cxflow.example.com".to_string()), "{hosts:?}");
        // The ALB accepts 443 from the webhook ranges only.
        let sg = aws.ec2.describe_security_groups().filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("cxflow-alb").build()).send().await.unwrap();
        let perms = sg.security_groups()[0].ip_permissions();
        assert_eq!(perms.len(), 1);
        assert_eq!(perms[0].from_port(), Some(443));
        let mut cidrs: Vec<&str> = perms[0].ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
        cidrs.sort();
        assert_eq!(cidrs, vec!["34.74.226.0/24", "34.74.90.64/28"]);
        // Certificate issued for the domain and its environments.
        let certs = aws.acm.list_certificates().send().await.unwrap();
        let d = aws.acm.describe_certificate().certificate_arn(certs.certificate_summary_list()[0].certificate_arn().unwrap()).send().await.unwrap();
        assert_eq!(d.certificate().unwrap().status().map(|s| s.as_str()), Some("ISSUED"));
        // Execution role: SSM reads scoped to each environment's prefix.
        let role = first["execution_role"].rsplit('/').next().unwrap().to_string();
        let p = aws.iam.get_role_policy().role_name(&role).policy_name("cxflow-execution").send().await.unwrap();
        let doc: Json = cxflow::children::iam::parse_policy(p.policy_document()).unwrap();
        let ssm = doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "ReadEnvironmentParameters").unwrap();
        let res: Vec<&str> = ssm["Resource"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
        assert!(res.iter().all(|r| r.contains(":parameter/cxflow/") && r.ends_with("/*")), "{res:?}");
        let repo = aws.ecr.describe_repositories().repository_names("cxflow").send().await.unwrap();
        assert_eq!(repo.repositories()[0].image_tag_mutability().map(|m| m.as_str()), Some("IMMUTABLE"));
    });

    // 2. Nothing changed: an empty plan.
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after apply:\n{}", p.all());

    // 3. A new image tag for staging touches only its task definition and service.
    wd.write("terraform.tfvars", &tfvars("  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"v2\", desired_count = 1, cpu = 512, memory = 2048 }"));
    wd.apply().expect_ok("apply with a new staging image");
    let after_tag = children(&wd);
    let changed = changed_keys(&first, &after_tag);
    assert!(changed.contains(&"task_definition_staging".to_string()), "{changed:?}");
    assert!(changed.iter().all(|k| k.ends_with("_staging")), "only staging changed: {changed:?}");
    block_on(async {
        let svc = aws.service("cxflow-staging").await.unwrap();
        assert!(svc.task_definition().unwrap().ends_with("cxflow-staging:2"), "{:?}", svc.task_definition());
        let prod = aws.service("cxflow-production").await.unwrap();
        assert!(prod.task_definition().unwrap().ends_with("cxflow-production:1"));
    });

    // 4. Adding and removing an environment.
    let three =
        "  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"v2\", desired_count = 1, cpu = 512, memory = 2048 }\n  qa         = { image_tag = \"latest\" }";
    wd.write("terraform.tfvars", &tfvars(three));
    wd.apply().expect_ok("apply adding qa");
    assert!(block_on(aws.service("cxflow-qa")).is_some());
    assert!(children(&wd).contains_key("listener_rule_qa"));
    wd.write("terraform.tfvars", &tfvars("  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"v2\", desired_count = 1, cpu = 512, memory = 2048 }"));
    wd.apply().expect_ok("apply removing qa");
    assert!(block_on(aws.service("cxflow-qa")).is_none());
    let now = children(&wd);
    assert!(!now.keys().any(|k| k.ends_with("_qa")), "{now:?}");
    let hosts: Vec<String> =
        block_on(aws.rules()).iter().flat_map(|r| r.conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())).collect();
    assert!(!hosts.iter().any(|h| h.starts_with("qa.")), "{hosts:?}");

    // 5. A listener rule deleted out of band shows in plan; apply repairs only it.
    let before = children(&wd);
    block_on(async { aws.elb.delete_rule().rule_arn(&before["listener_rule_production"]).send().await.unwrap() });
    let drift = wd.plan_code();
    assert_eq!(drift.code, 2, "drift shows as a change:\n{}", drift.all());
    wd.apply().expect_ok("apply repairing the rule");
    let repaired = children(&wd);
    let changed = changed_keys(&before, &repaired);
    assert_eq!(changed, vec!["listener_rule_production".to_string()], "only the rule was recreated");
    assert!(block_on(aws.rules()).iter().any(|r| r.rule_arn() == Some(repaired["listener_rule_production"].as_str())));
    assert_eq!(wd.plan_code().code, 0, "in sync after the repair");

    // 6. Import by name into a fresh state, then an empty plan.
    let imp = Workdir::new(terraform, Some(&moto));
    let mut cfg = provider_block("  default_tags {\n    tags = { Team = \"appsec\" }\n  }");
    cfg.push_str(
        r#"
resource "cxflow_cluster" "this" {
  name                 = "cxflow"
  dns_zone             = "example.com"
  domain               = "cxflow.example.com"
  environments = {
    production = { image_tag = "stable" }
    staging    = { image_tag = "v2", desired_count = 1, cpu = 512, memory = 2048 }
  }
  webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]
  vpc {
    cidr_block = "10.0.0.0/16"
  }
}
"#,
    );
    imp.write("main.tf", &cfg);
    imp.tf(&["import", "cxflow_cluster.this", "cxflow"]).expect_ok("import by name");
    assert_eq!(children(&imp), repaired, "import finds every child");
    let p = imp.plan_code();
    assert_eq!(p.code, 0, "plan right after import is empty:\n{}", p.all());

    // 7. Destroy leaves nothing owned by the cluster.
    wd.destroy().expect_ok("destroy");
    let left = block_on(aws.owned_leftovers());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn cluster_validation_names_attributes_without_aws_calls() {
    let wd = Workdir::new(&bundled_terraform(), None);
    let mut cfg = provider_block("  skip_credentials_validation = true");
    cfg.push_str(
        r#"
resource "cxflow_cluster" "bad" {
  name                 = "this-name-is-far-too-long-for-an-alb"
  dns_zone             = "example.com"
  domain               = "cxflow.example.org"
  environments = {
    production = { image_tag = "stable", cpu = 512, memory = 8192 }
  }
  webhook_source_cidrs = ["34.74.90.64/33"]
  vpc {
    cidr_block = "10.0.0.0/8"
  }
}
"#,
    );
    wd.write("main.tf", &cfg);
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate of a bad cluster");
    for needle in ["1-20 lowercase letters", "Domain outside the hosted zone", "Invalid Fargate size", "Invalid CIDR block", "Unsuitable VPC CIDR"] {
        assert!(r.all().contains(needle), "missing {needle:?}:\n{}", r.all());
    }
}
