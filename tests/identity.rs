//! Resource identity (Terraform 1.12+) through the bundled Terraform 1.15:
//! every resource's identity is in state and `terraform show -json`; after
//! `terraform state rm`, `import` blocks that give only the identity bring
//! the resources back and the next plan is empty. Identities name what AWS
//! holds (checked with the SDK), and an identity for another region is
//! refused before any AWS call.

mod common;

use common::aws::{Aws, owned_leftovers};
use common::*;
use serde_json::Value as Json;

const CLUSTER: &str = "ids";

fn config(subnets: &[String]) -> String {
    let mut s = provider_block("");
    s.push_str(&cluster_and_service_hcl(CLUSTER, subnets, ""));
    s.push_str(
        r#"
resource "cxflow_secret_sync" "app" {
  path_prefix = "/ids/app"
  parameters  = { "db/host" = "db.internal" }
}
"#,
    );
    s
}

/// `identity` of each resource instance in `terraform show -json`, by address.
fn shown_identities(wd: &Workdir) -> std::collections::BTreeMap<String, Json> {
    let run = wd.tf(&["show", "-json"]);
    run.expect_ok("show -json");
    let j: Json = serde_json::from_str(&run.stdout).expect("show -json is JSON");
    j["values"]["root_module"]["resources"].as_array().into_iter().flatten().map(|r| (r["address"].as_str().unwrap().to_string(), r["identity"].clone())).collect()
}

#[test]
fn identity_in_state_and_import_by_identity() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let (_, subnets, _) = block_on(aws.alb_fixture("ids-alb"));
    let wd = Workdir::new(&tf, Some(&moto));
    wd.write("main.tf", &config(&subnets));

    // ---- apply: every resource has its identity
    wd.apply().expect_ok("apply");
    let account = block_on(async { aws_sdk_sts::Client::new(&moto.sdk()).get_caller_identity().send().await.unwrap().account().unwrap().to_string() });
    let ids = shown_identities(&wd);
    assert_eq!(ids["cxflow_ecs_cluster.c"], serde_json::json!({"account_id": account, "region": "us-east-1", "name": CLUSTER}), "{ids:?}");
    assert_eq!(ids["cxflow_ecs_fargate_service.web"], serde_json::json!({"account_id": account, "region": "us-east-1", "cluster": CLUSTER, "name": "web"}), "{ids:?}");
    assert_eq!(ids["cxflow_secret_sync.app"], serde_json::json!({"account_id": account, "region": "us-east-1", "path_prefix": "/ids/app"}), "{ids:?}");
    // The identity names what AWS holds.
    block_on(async {
        let svc = aws.ecs.describe_services().cluster(CLUSTER).services("web").send().await.unwrap();
        let arn = svc.services()[0].service_arn().unwrap().to_string();
        assert!(arn.contains(&format!(":{account}:service/{CLUSTER}/web")), "{arn}");
        let p = aws_sdk_ssm::Client::new(&moto.sdk()).get_parameter().name("/ids/app/db/host").send().await.unwrap();
        assert!(p.parameter().unwrap().arn().unwrap().contains(&format!(":{account}:parameter/ids/app/db/host")));
    });
    // Refresh keeps it, and the state file stores it.
    wd.plan_code().expect_ok("plan after apply");
    let st = wd.state_json();
    let stored: Vec<&Json> = st["resources"].as_array().unwrap().iter().map(|r| &r["instances"][0]["identity"]).collect();
    assert!(stored.iter().all(|i| i["account_id"] == account.as_str()), "{stored:?}");

    // ---- forget everything, then import by identity alone
    for addr in ["cxflow_ecs_cluster.c", "cxflow_ecs_fargate_service.web", "cxflow_secret_sync.app"] {
        wd.tf(&["state", "rm", addr]).expect_ok("state rm");
    }
    let before = wd.state_json();
    assert!(before["resources"].as_array().is_none_or(|r| r.is_empty()), "{before}");

    // ---- an identity for another region is refused, naming it
    wd.write(
        "imports.tf",
        r#"
import {
  to       = cxflow_ecs_cluster.c
  identity = { name = "ids", region = "eu-west-1" }
}
"#,
    );
    let bad = wd.tf(&["plan"]);
    bad.expect_fail("import of another region");
    assert!(bad.all().contains("eu-west-1") && bad.all().contains("region"), "{}", bad.all());

    // ---- account and region may be given or left out
    wd.write(
        "imports.tf",
        &format!(
            r#"
import {{
  to       = cxflow_ecs_cluster.c
  identity = {{ name = "{CLUSTER}", account_id = "{account}", region = "us-east-1" }}
}}
import {{
  to       = cxflow_ecs_fargate_service.web
  identity = {{ cluster = "{CLUSTER}", name = "web" }}
}}
import {{
  to       = cxflow_secret_sync.app
  identity = {{ path_prefix = "/ids/app" }}
}}
"#
        ),
    );
    let plan = wd.tf(&["plan"]);
    plan.expect_ok("plan the imports");
    assert!(plan.stdout.contains("3 to import, 0 to add, 0 to change, 0 to destroy"), "{}", plan.stdout);
    wd.apply().expect_ok("apply the imports");
    let again = shown_identities(&wd);
    assert_eq!(again, ids, "the imported resources have the identities they had");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after import by identity is empty:\n{}", p.all());

    // ---- destroy leaves nothing of ours
    std::fs::remove_file(wd.path().join("imports.tf")).unwrap();
    wd.destroy().expect_ok("destroy");
    assert!(owned_leftovers(&moto).is_empty(), "{:?}", owned_leftovers(&moto));
}

/// A Terraform before 1.12 never asks for identities: the same resources
/// apply, plan empty, import by ID and destroy as before.
#[test]
fn older_terraform_works_without_identity() {
    let Some(tf) = system_terraform() else {
        eprintln!("no system Terraform on PATH: skipped");
        return;
    };
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let (_, subnets, _) = block_on(aws.alb_fixture("ids-alb"));
    let wd = Workdir::new(&tf, Some(&moto));
    wd.write("main.tf", &config(&subnets));
    wd.apply().expect_ok("apply with the older client");
    assert_eq!(wd.plan_code().code, 0, "empty plan with the older client");
    wd.tf(&["state", "rm", "cxflow_ecs_fargate_service.web"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_ecs_fargate_service.web", &format!("{CLUSTER}/web")]).expect_ok("import by ID");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "empty plan after import by ID:\n{}", p.all());
    wd.destroy().expect_ok("destroy with the older client");
    assert!(owned_leftovers(&moto).is_empty(), "{:?}", owned_leftovers(&moto));
}
