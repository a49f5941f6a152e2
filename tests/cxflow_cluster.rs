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
        "execution_role_production",
        "execution_role_staging",
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
            assert!(secrets["GITLAB_WEBHOOK_TOKEN"].ends_with(&format!(":parameter/cxflow/{env}/gitlab/webhook_token")));
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
        let repo = aws.ecr.describe_repositories().repository_names("cxflow").send().await.unwrap();
        assert_eq!(repo.repositories()[0].image_tag_mutability().map(|m| m.as_str()), Some("MUTABLE"));
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
    let with_qa = children(&wd);
    assert!(with_qa.contains_key("listener_rule_qa"));
    assert_eq!(with_qa["certificate"], after_tag["certificate"], "a new environment needs no new certificate");
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
    production = { image_tag = "stable", cpu = 512, memory = 8192, hostname = "cxflow.example.org" }
    staging    = { image_tag = "latest", hostname = "a.b.cxflow.example.org", extra_secrets = ["gitlab/token"], environment = { CHECKMARX_PASSWORD = "x" } }
    qa         = { image_tag = "latest", hostname = "cxflow.example.org" }
  }
  webhook_source_cidrs = ["34.74.90.64/33"]
  vpc {
    cidr_block = "10.0.0.0/8"
  }
  ci_role {
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    subjects          = ["repo:*"]
  }
}
"#,
    );
    wd.write("main.tf", &cfg);
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate of a bad cluster");
    for needle in [
        "1-20 lowercase letters",
        "Domain outside the hosted zone",
        "Invalid Fargate size",
        "Invalid CIDR block",
        "Unsuitable VPC CIDR",
        "Host name outside the certificate",
        "Host name used twice",
        "Secret variable set twice",
        "Variable is also a secret",
        "Invalid token subject",
        "repo:example-org/cxflow-container",
    ] {
        assert!(r.all().contains(needle), "missing {needle:?}:\n{}", r.all());
    }
}

/// An image manifest whose digest moto derives from its one layer.
fn manifest(layer: char) -> String {
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": d('c')},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": d(layer)}]
    })
    .to_string()
}

/// What CI does: push a manifest under a tag; the digest ECR gave it.
fn push(aws: &Aws, tag: &str, layer: char) -> String {
    block_on(async {
        let out = aws.ecr.put_image().repository_name("cxflow").image_manifest(manifest(layer)).image_tag(tag).send().await.unwrap();
        out.image().unwrap().image_id().unwrap().image_digest().unwrap().to_string()
    })
}

/// Environment → the image and tag label of the task definition its service runs.
fn running_images(aws: &Aws) -> BTreeMap<String, (String, Option<String>, String)> {
    block_on(async {
        let mut out = BTreeMap::new();
        for env in ["production", "staging"] {
            let svc = service(aws, &format!("cxflow-{env}")).await.unwrap();
            let td = aws.ecs.describe_task_definition().task_definition(svc.task_definition().unwrap()).send().await.unwrap();
            let c = &td.task_definition().unwrap().container_definitions()[0];
            let label = c.docker_labels().and_then(|l| l.get("cxflow.image-tag").cloned());
            out.insert(env.to_string(), (c.image().unwrap().to_string(), label, svc.task_definition().unwrap().to_string()));
        }
        out
    })
}

/// Actions planned per child-bearing resource and the environments whose images change.
fn planned(wd: &Workdir) -> (Json, Vec<String>) {
    wd.tf(&["plan", "-out=p.tfplan"]).expect_ok("plan");
    let shown = wd.tf(&["show", "-json", "p.tfplan"]);
    shown.expect_ok("show plan");
    let plan: Json = serde_json::from_str(&shown.stdout).unwrap();
    let rc = plan["resource_changes"].as_array().unwrap().iter().find(|r| r["type"] == "cxflow_cluster").unwrap().clone();
    let before = &rc["change"]["before"]["images"];
    let after = &rc["change"]["after"]["images"];
    let mut changed: Vec<String> = ["production", "staging"].iter().filter(|e| before[**e] != after[**e]).map(|e| e.to_string()).collect();
    changed.sort();
    (rc["change"].clone(), changed)
}

/// Seed 000's flow end to end through examples/cxflow-cluster: the vault's
/// secrets under the seed's six keys, checked against the cluster's
/// `secret_keys`; one execution role per environment; the CI pusher's policy
/// and OIDC role; the first apply before any image exists; `latest` pushed,
/// pinned, re-pushed and rolled for its environment only; an environment
/// served at the domain itself.
#[test]
fn cluster_seed_flow() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let oidc = block_on(async {
        aws.r53.create_hosted_zone().name("example.com").caller_reference("tests").send().await.unwrap();
        let p = aws.iam.create_open_id_connect_provider().url("https://gitlab.com").client_id_list("https://gitlab.com").thumbprint_list("a".repeat(40)).send().await.unwrap();
        p.open_id_connect_provider_arn().unwrap().to_string()
    });
    let s0 = Snapshot::take(&moto);

    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    copy_dir(&repo_root().join("examples/cxflow-cluster"), wd.path());
    wd.env.insert("TF_VAR_cxflow_secrets".into(), SECRETS.into());
    let envs = "  production = { image_tag = \"stable\", hostname = \"cxflow.example.com\" }\n  staging    = { image_tag = \"latest\" }";
    let subject = "project_path:example-group/cxflow-container:ref_type:branch:ref:main";
    wd.write("terraform.tfvars", &format!("{}ci_oidc_provider_arn = \"{oidc}\"\nci_subjects = [\"{subject}\"]\n", tfvars(envs)));
    wd.tf(&["get"]).expect_ok("terraform get (module)");

    // 1. Before the first image: the plan warns for each environment, and the services run on the tags.
    let p = wd.tf(&["plan", "-json"]);
    p.expect_ok("plan before any image");
    let warnings: Vec<Json> = p
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|m| m["type"] == "diagnostic" && m["diagnostic"]["severity"] == "warning")
        .map(|m| m["diagnostic"].clone())
        .collect();
    for env in ["production", "staging"] {
        assert!(
            warnings.iter().any(|w| w["summary"] == "Image tag not pushed yet" && w["detail"].as_str().unwrap().contains(&format!("{env}'s service is created on the tag"))),
            "warning for {env}: {warnings:#?}"
        );
    }
    let applied = wd.apply();
    applied.expect_ok("first apply");
    for leak in ["Cl-PW-PROD-77", "Cl-WH-STG-77", "Cl-TOK-PROD-77"] {
        assert!(!applied.all().contains(leak) && !wd.read("terraform.tfstate").contains(leak), "{leak} leaked");
    }
    let run0 = running_images(&aws);
    assert!(run0["production"].0.ends_with("/cxflow:stable") && run0["staging"].0.ends_with("/cxflow:latest"), "{run0:?}");
    assert_eq!((run0["production"].1.as_deref(), run0["staging"].1.as_deref()), (None, None), "no label on a tag");

    // 2. The secrets contract: the seed's six keys, written by cxflow_secret_sync and read by the service.
    let st = wd.state_attrs("cxflow_cluster", "this");
    let seed_keys = ["checkmarx/password", "checkmarx/token", "checkmarx/url", "checkmarx/username", "gitlab/token", "gitlab/webhook_token"];
    block_on(async {
        for env in ["production", "staging"] {
            assert_eq!(st["secret_keys"][env], serde_json::json!(seed_keys), "secret_keys output for {env}");
            let svc = service(&aws, &format!("cxflow-{env}")).await.unwrap();
            let td = aws.ecs.describe_task_definition().task_definition(svc.task_definition().unwrap()).send().await.unwrap();
            let read: BTreeMap<String, String> =
                td.task_definition().unwrap().container_definitions()[0].secrets().iter().map(|s| (s.name().to_string(), s.value_from().to_string())).collect();
            for key in seed_keys {
                let name = format!("/cxflow/{env}/{key}");
                let param = aws.ssm.get_parameter().name(&name).send().await.unwrap_or_else(|e| panic!("{name} written: {e:?}"));
                let arn = param.parameter().unwrap().arn().unwrap().to_string();
                assert!(read.values().any(|v| *v == arn || v.ends_with(&format!(":parameter{name}"))), "{env} reads {name}: {read:?}");
            }
            assert_eq!(read.len(), 6, "{read:?}");
        }
        // Each environment's execution role reads its own path and writes its own log group, nothing else.
        for env in ["production", "staging"] {
            let arn = st["execution_role_arns"][env].as_str().unwrap();
            let role = arn.rsplit('/').next().unwrap();
            let p = aws.iam.get_role_policy().role_name(role).policy_name("cxflow-execution").send().await.unwrap();
            let doc: Json = cxflow::children::iam::parse_policy(p.policy_document()).unwrap();
            let st = |sid: &str| doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap()["Resource"].clone();
            assert_eq!(st("ReadEnvironmentParameters"), serde_json::json!(format!("arn:aws:ssm:us-east-1:123456789012:parameter/cxflow/{env}/*")));
            assert_eq!(st("WriteOwnLogs"), serde_json::json!(format!("arn:aws:logs:us-east-1:123456789012:log-group:/app/cxflow-{env}:*")));
            assert!(!doc.to_string().contains(if env == "production" { "staging" } else { "production" }), "{env} role names no other environment: {doc}");
        }
    });
    assert_ne!(st["execution_role_arns"]["production"], st["execution_role_arns"]["staging"]);

    // 3. The CI pusher: the output policy, and the OIDC role with exactly that policy.
    let ci_doc: Json = serde_json::from_str(st["ci_policy_json"].as_str().unwrap()).unwrap();
    let ci_role = st["ci_role_arn"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let (roles, trust) = block_on(async {
        let r = aws.iam.get_role().role_name(&ci_role).send().await.unwrap();
        let trust: Json = cxflow::children::iam::parse_policy(r.role().unwrap().assume_role_policy_document().unwrap()).unwrap();
        (common::iam::policies(&aws, std::slice::from_ref(&ci_role)).await, trust)
    });
    assert_eq!(roles[0].inline.len(), 1);
    assert_eq!(serde_json::from_str::<Json>(&roles[0].inline[0].1).unwrap(), ci_doc, "the role has exactly the output policy");
    let statement = |sid: &str| ci_doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned().unwrap();
    assert_eq!(statement("PushCxFlowImages")["Resource"], "arn:aws:ecr:us-east-1:123456789012:repository/cxflow");
    assert_eq!(
        statement("WriteEnvironmentParameters")["Resource"],
        serde_json::json!(["arn:aws:ssm:us-east-1:123456789012:parameter/cxflow/production/*", "arn:aws:ssm:us-east-1:123456789012:parameter/cxflow/staging/*"])
    );
    let t = &trust["Statement"][0];
    assert_eq!((t["Principal"]["Federated"].as_str(), t["Action"].as_str()), (Some(oidc.as_str()), Some("sts:AssumeRoleWithWebIdentity")));
    assert_eq!(t["Condition"]["StringEquals"]["gitlab.com:sub"], serde_json::json!([subject]));
    assert_eq!(t["Condition"]["StringEquals"]["gitlab.com:aud"], "https://gitlab.com");
    let mut lint = roles;
    lint.push(common::iam::RolePolicies { role: "ci_policy_json output".into(), inline: vec![("output".into(), ci_doc.to_string())], managed: vec![] });
    let found = common::iam::findings(&lint);
    assert!(found.is_empty(), "parliament and the lint pass on the CI policy: {found:#?}");

    // 4. Hostnames and the GitLab webhook settings.
    assert_eq!(st["webhook_urls"]["production"], "https://cxflow.example.com/");
    assert_eq!(st["webhook_urls"]["staging"], "https://staging.cxflow.example.com/");
    let hook = &st["gitlab_webhooks"]["staging"];
    assert_eq!(hook["secret_token_parameter"], "/cxflow/staging/gitlab/webhook_token");
    assert_eq!((hook["push_events"].as_bool(), hook["merge_requests_events"].as_bool()), (Some(true), Some(true)));
    let hosts: Vec<String> =
        block_on(rules(&aws)).iter().flat_map(|r| r.conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())).collect();
    assert!(hosts.contains(&"cxflow.example.com".to_string()) && hosts.contains(&"staging.cxflow.example.com".to_string()), "{hosts:?}");
    let zone = block_on(async { aws.r53.list_hosted_zones().send().await.unwrap().hosted_zones()[0].id().to_string() });
    let records = block_on(async { aws.r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap() });
    assert!(records.resource_record_sets().iter().any(|r| r.name() == "cxflow.example.com." && r.alias_target().is_some()), "alias at the domain itself");

    // 5. CI pushes `latest`: only staging's image changes in the plan, to its digest; apply pins it.
    let first = push(&aws, "latest", 'a');
    let (change, moved) = planned(&wd);
    assert_eq!(moved, vec!["staging".to_string()], "only staging's image changes: {change}");
    assert!(change["after"]["images"]["staging"].as_str().unwrap().ends_with(&format!("/cxflow@{first}")));
    let before_push = children(&wd);
    wd.apply().expect_ok("apply pinning latest");
    let run1 = running_images(&aws);
    assert!(run1["staging"].0.ends_with(&format!("/cxflow@{first}")), "{run1:?}");
    assert_eq!(run1["staging"].1.as_deref(), Some("latest"), "the tag is kept as a label");
    assert_eq!(run1["production"], run0["production"], "production untouched");
    let changed = changed_keys(&before_push, &children(&wd));
    assert!(!changed.is_empty() && changed.iter().all(|k| k.ends_with("_staging")), "{changed:?}");
    assert_eq!(wd.plan_code().code, 0, "in sync once pinned");

    // 6. The seed's update: re-push `latest`, apply, staging rolls to the new digest.
    let second = push(&aws, "latest", 'b');
    assert_ne!(first, second);
    let (_, moved) = planned(&wd);
    assert_eq!(moved, vec!["staging".to_string()]);
    wd.apply().expect_ok("apply after the re-push");
    let run2 = running_images(&aws);
    assert!(run2["staging"].0.ends_with(&format!("/cxflow@{second}")), "{run2:?}");
    assert_ne!(run2["staging"].2, run1["staging"].2, "a new task definition revision");
    assert_eq!(run2["production"], run0["production"]);

    // 7. `stable` appears: production is pinned on the next apply; then nothing to do.
    let stable = push(&aws, "stable", 'd');
    let (_, moved) = planned(&wd);
    assert_eq!(moved, vec!["production".to_string()]);
    wd.apply().expect_ok("apply pinning stable");
    assert!(running_images(&aws)["production"].0.ends_with(&format!("/cxflow@{stable}")));
    let quiet = wd.tf(&["plan", "-detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{}", quiet.all());
    assert!(!quiet.all().contains("Image tag"), "no image warnings once every tag resolves:\n{}", quiet.all());

    // 8. Import reads the pinned images and their tags back: an empty plan.
    let imp = Workdir::new(&bundled_terraform(), Some(&moto));
    let mut cfg = provider_block("  default_tags {\n    tags = { Team = \"appsec\" }\n  }");
    cfg.push_str(&format!(
        r#"
resource "cxflow_cluster" "this" {{
  name     = "cxflow"
  dns_zone = "example.com"
  domain   = "cxflow.example.com"
  environments = {{
    production = {{ image_tag = "stable", hostname = "cxflow.example.com" }}
    staging    = {{ image_tag = "latest" }}
  }}
  webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]
  vpc {{
    cidr_block = "10.0.0.0/16"
  }}
  ci_role {{
    oidc_provider_arn = "{oidc}"
    subjects          = ["{subject}"]
  }}
}}
"#
    ));
    imp.write("main.tf", &cfg);
    imp.tf(&["import", "cxflow_cluster.this", "cxflow"]).expect_ok("import by name");
    assert_eq!(common::aws::children(&imp, "cxflow_cluster", "this"), children(&wd), "import finds every child, the CI role included");
    let p = imp.plan_code();
    assert_eq!(p.code, 0, "plan right after import is empty:\n{}", p.all());

    // 9. Destroy leaves exactly what existed before.
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what existed before");
}

/// A secret sync that would leave a key the service reads unwritten fails
/// the plan, naming every missing key, before anything is written.
#[test]
fn cluster_secret_keys_checked_at_plan() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    block_on(async { aws.r53.create_hosted_zone().name("example.com").caller_reference("tests").send().await.unwrap() });
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    let mut cfg = provider_block("");
    cfg.push_str(
        r#"
variable "webhook_token" {
  type      = string
  ephemeral = true
  default   = "Kp-WH-0042"
}

resource "cxflow_cluster" "this" {
  name                 = "cxflow"
  dns_zone             = "example.com"
  domain               = "cxflow.example.com"
  environments         = { production = { image_tag = "stable", extra_secrets = ["bitbucket/token"] } }
  webhook_source_cidrs = ["34.74.90.64/28"]
}

resource "cxflow_secret_sync" "production" {
  path_prefix   = cxflow_cluster.this.ssm_path_prefixes["production"]
  required_keys = cxflow_cluster.this.secret_keys["production"]
  secrets_wo = {
    "checkmarx/username"   = "bot"
    "checkmarx/password"   = "pw"
    "checkmarx/token"      = "tok"
    "gitlab/webhook-token" = var.webhook_token
  }
}
"#,
    );
    wd.write("main.tf", &cfg);
    let p = wd.tf(&["plan"]);
    p.expect_fail("plan with keys missing");
    let out = p.all();
    assert!(out.contains("Required keys missing") && out.contains("required_keys"), "{out}");
    for key in ["bitbucket/token", "checkmarx/url", "gitlab/token", "gitlab/webhook_token"] {
        assert!(out.contains(key), "{key} named:\n{out}");
    }
    assert!(out.contains("4 keys are required"), "{out}");
    assert!(!out.contains("Kp-WH-0042"));
    block_on(async {
        assert!(aws.ssm.describe_parameters().send().await.unwrap().parameters().is_empty(), "no parameter written");
        assert!(aws.ecs.list_clusters().send().await.unwrap().cluster_arns().is_empty(), "no cluster created");
    });
}
