//! cxflow_cluster through examples/cxflow-cluster, against moto with the real
//! Terraform CLI, checked with the Rust AWS SDK.

mod common;

use std::collections::BTreeMap;

use common::aws::{Aws, changed_keys};
use common::snapshot::Snapshot;
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
    common::aws::children(wd, "cxflow_cluster", "this")
}

async fn service(aws: &Aws, name: &str) -> Option<aws_sdk_ecs::types::Service> {
    let out = aws.ecs.describe_services().cluster("cxflow").services(name).send().await.ok()?;
    out.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned()
}

async fn rules(aws: &Aws) -> Vec<aws_sdk_elasticloadbalancingv2::types::Rule> {
    let lb = aws.elb.describe_load_balancers().names("cxflow-alb").send().await.unwrap();
    let arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
    let ls = aws.elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap();
    let l = ls.listeners().iter().find(|l| l.port() == Some(443)).unwrap().listener_arn().unwrap().to_string();
    aws.elb.describe_rules().listener_arn(&l).send().await.unwrap().rules().to_vec()
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
    let s0 = Snapshot::take(&moto);

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
            let svc = service(&aws, &format!("cxflow-{env}")).await.unwrap_or_else(|| panic!("service for {env}"));
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
            rules(&aws).await.iter().flat_map(|r| r.conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())).collect();
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
        let svc = service(&aws, "cxflow-staging").await.unwrap();
        assert!(svc.task_definition().unwrap().ends_with("cxflow-staging:2"), "{:?}", svc.task_definition());
        let prod = service(&aws, "cxflow-production").await.unwrap();
        assert!(prod.task_definition().unwrap().ends_with("cxflow-production:1"));
    });

    // 4. Adding and removing an environment.
    let three =
        "  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"v2\", desired_count = 1, cpu = 512, memory = 2048 }\n  qa         = { image_tag = \"latest\" }";
    wd.write("terraform.tfvars", &tfvars(three));
    wd.apply().expect_ok("apply adding qa");
    assert!(block_on(service(&aws, "cxflow-qa")).is_some());
    assert!(children(&wd).contains_key("listener_rule_qa"));
    wd.write("terraform.tfvars", &tfvars("  production = { image_tag = \"stable\" }\n  staging    = { image_tag = \"v2\", desired_count = 1, cpu = 512, memory = 2048 }"));
    wd.apply().expect_ok("apply removing qa");
    assert!(block_on(service(&aws, "cxflow-qa")).is_none());
    let now = children(&wd);
    assert!(!now.keys().any(|k| k.ends_with("_qa")), "{now:?}");
    let hosts: Vec<String> =
        block_on(rules(&aws)).iter().flat_map(|r| r.conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())).collect();
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
    assert!(block_on(rules(&aws)).iter().any(|r| r.rule_arn() == Some(repaired["listener_rule_production"].as_str())));
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

    // 7. Destroy leaves exactly what existed before (the hosted zone's records included).
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what existed before");
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
