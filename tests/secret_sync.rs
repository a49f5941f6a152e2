//! cxflow_secret_sync and cxflow_ssm_secret against moto with the real Terraform CLI.

mod common;

use common::*;

const PASSWORD: &str = "Pw-HUNTER2-c0rrect-horse";
const TOKEN: &str = "glpat-SECRETTOKEN-4711";
const WEBHOOK: &str = "whk-SECRET-9f8e7d";
const ROTATED: &str = "Pw-ROTATED-battery-staple";

fn ssm(m: &Moto) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&m.sdk())
}

/// Decrypted value of a parameter, None when missing.
fn value(m: &Moto, name: &str) -> Option<String> {
    block_on(async { ssm(m).get_parameter().name(name).with_decryption(true).send().await.ok().and_then(|o| o.parameter).and_then(|p| p.value) })
}

fn names_under(m: &Moto, prefix: &str) -> Vec<String> {
    block_on(async {
        let out = ssm(m).get_parameters_by_path().path(prefix).recursive(true).send().await.unwrap();
        let mut v: Vec<String> = out.parameters().iter().filter_map(|p| p.name().map(str::to_string)).collect();
        v.sort();
        v
    })
}

fn put(m: &Moto, name: &str, v: &str) {
    block_on(async {
        ssm(m).put_parameter().name(name).value(v).r#type(aws_sdk_ssm::types::ParameterType::SecureString).overwrite(true).send().await.unwrap();
    });
}

/// The configuration under test: secrets come from ephemeral, sensitive
/// variables, which is how a vault value reaches a write-only argument.
fn config(extra_secret: bool, redeploy: Option<&str>) -> String {
    let mut s = provider_block("  default_tags {\n    tags = { Team = \"appsec\" }\n  }");
    s.push_str(
        r#"
variable "checkmarx_password" {
  type      = string
  ephemeral = true
  sensitive = true
}
variable "gitlab_token" {
  type      = string
  ephemeral = true
  sensitive = true
}
variable "webhook_token" {
  type      = string
  ephemeral = true
  sensitive = true
  default   = null
}

resource "cxflow_secret_sync" "production" {
  path_prefix = "/cxflow/production"
  kms_key_id  = "alias/aws/ssm"
  secrets_wo = merge({
    "checkmarx/password" = var.checkmarx_password
    "gitlab/token"       = var.gitlab_token
  }, var.webhook_token == null ? {} : { "gitlab/webhook-token" = var.webhook_token })
  parameters = { "checkmarx/url" = "https://checkmarx.example.com" }
  tags       = { Environment = "production" }
"#,
    );
    if let Some(svc) = redeploy {
        s.push_str(&format!("  redeploy_services = [\"{svc}\"]\n"));
    }
    s.push_str("}\n");
    let _ = extra_secret;
    s
}

fn secrets_env(password: &str, webhook: Option<&str>) -> Vec<(String, String)> {
    let mut v = vec![("TF_VAR_checkmarx_password".to_string(), password.to_string()), ("TF_VAR_gitlab_token".to_string(), TOKEN.to_string())];
    if let Some(w) = webhook {
        v.push(("TF_VAR_webhook_token".to_string(), w.to_string()));
    }
    v
}

fn with_secrets(wd: &mut Workdir, password: &str, webhook: Option<&str>) {
    wd.env.remove("TF_VAR_webhook_token");
    for (k, v) in secrets_env(password, webhook) {
        wd.env.insert(k, v);
    }
}

#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for s in [PASSWORD, TOKEN, WEBHOOK, ROTATED] {
        assert!(!text.contains(s), "{what} contains a secret value");
    }
}

/// Create an ECS service in moto to be redeployed; returns its ARN.
fn make_service(m: &Moto) -> String {
    block_on(async {
        let sdk = m.sdk();
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let vpc = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.9.1.0/24").send().await.unwrap().subnet.unwrap().subnet_id.unwrap();
        let sg = ec2.create_security_group().group_name("cxflow-test").description("t").vpc_id(&vpc).send().await.unwrap().group_id.unwrap();
        ecs.create_cluster().cluster_name("cxflow").send().await.unwrap();
        let td = ecs
            .register_task_definition()
            .family("cxflow-production")
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .cpu("512")
            .memory("2048")
            .container_definitions(aws_sdk_ecs::types::ContainerDefinition::builder().name("cxflow").image("checkmarx/cx-flow:latest").build())
            .send()
            .await
            .unwrap();
        let td_arn = td.task_definition.unwrap().task_definition_arn.unwrap();
        let svc = ecs
            .create_service()
            .cluster("cxflow")
            .service_name("cxflow-production")
            .task_definition(td_arn)
            .desired_count(1)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(
                aws_sdk_ecs::types::NetworkConfiguration::builder()
                    .awsvpc_configuration(aws_sdk_ecs::types::AwsVpcConfiguration::builder().subnets(subnet).security_groups(sg).build().unwrap())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        svc.service.unwrap().service_arn.unwrap()
    })
}

fn deployment_ids(m: &Moto) -> Vec<String> {
    block_on(async {
        let out = aws_sdk_ecs::Client::new(&m.sdk()).describe_services().cluster("cxflow").services("cxflow-production").send().await.unwrap();
        out.services()[0].deployments().iter().filter_map(|d| d.id().map(str::to_string)).collect()
    })
}

#[test]
fn secrets_reach_ssm_but_never_state_plan_or_logs() {
    for terraform in terraform_clients() {
        let moto = Moto::start();
        let service_arn = make_service(&moto);
        let mut wd = Workdir::new(&terraform, Some(&moto));
        let tfname = terraform.display().to_string();

        // 1. apply writes the values, encrypted, under the prefix
        wd.write("main.tf", &config(false, Some(&service_arn)));
        with_secrets(&mut wd, PASSWORD, None);
        let first = wd.apply();
        first.expect_ok(&format!("first apply with {tfname}"));
        assert_eq!(value(&moto, "/cxflow/production/checkmarx/password").as_deref(), Some(PASSWORD));
        assert_eq!(value(&moto, "/cxflow/production/gitlab/token").as_deref(), Some(TOKEN));
        assert_eq!(value(&moto, "/cxflow/production/checkmarx/url").as_deref(), Some("https://checkmarx.example.com"));
        let ty = block_on(async { ssm(&moto).get_parameter().name("/cxflow/production/gitlab/token").send().await.unwrap().parameter.unwrap().r#type.unwrap() });
        assert_eq!(ty.as_str(), "SecureString");
        let tags = block_on(async {
            ssm(&moto)
                .list_tags_for_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id("/cxflow/production/gitlab/token")
                .send()
                .await
                .unwrap()
                .tag_list
                .unwrap_or_default()
        });
        let tag = |k: &str| tags.iter().find(|t| t.key() == k).map(|t| t.value().to_string());
        assert_eq!(tag("Team").as_deref(), Some("appsec"), "default_tags applied");
        assert_eq!(tag("Environment").as_deref(), Some("production"));
        assert_eq!(tag("cxflow:owner").as_deref(), Some("cxflow_secret_sync//cxflow/production"));
        let attrs = wd.state_attrs("cxflow_secret_sync", "production");
        assert_eq!(attrs["secret_versions"]["gitlab/token"], 1);
        assert!(attrs["arns"]["checkmarx/password"].as_str().unwrap().ends_with(":parameter/cxflow/production/checkmarx/password"));
        assert!(attrs["secrets_wo"].is_null());
        assert_no_secret("apply output", &first.all());
        assert_no_secret("state", &wd.read("terraform.tfstate"));

        // 2. nothing changed: the plan is empty
        wd.plan_code().expect_ok("plan after apply");

        // 3. an out-of-band change shows in plan; apply restores the configured value
        put(&moto, "/cxflow/production/checkmarx/password", "tampered-value");
        let drift = wd.plan_code();
        assert_eq!(drift.code, 2, "drift must show as a change:\n{}", drift.all());
        assert!(drift.stdout.contains("secret_versions"), "{}", drift.stdout);
        wd.apply().expect_ok("apply repairing drift");
        assert_eq!(value(&moto, "/cxflow/production/checkmarx/password").as_deref(), Some(PASSWORD));
        wd.plan_code().expect_ok("plan after repair");

        // 4. a changed value in config redeploys the listed service; the saved
        //    plan and a trace log of the run carry no secret
        let before = deployment_ids(&moto);
        with_secrets(&mut wd, ROTATED, Some(WEBHOOK));
        wd.tf(&["plan", "-out=tfplan"]).expect_ok("plan -out");
        let shown = wd.tf(&["show", "-json", "tfplan"]);
        shown.expect_ok("show -json tfplan");
        assert!(shown.stdout.contains("cxflow_secret_sync"), "plan JSON lists the resource");
        assert_no_secret("plan JSON", &shown.stdout);
        assert_no_secret("binary plan", &String::from_utf8_lossy(&std::fs::read(wd.path().join("tfplan")).unwrap()));
        let traced = wd.tf_env(&["apply", "-auto-approve", "tfplan"], &[("TF_LOG", "trace")]);
        traced.expect_ok("apply of the saved plan");
        assert!(traced.stderr.contains("provider.cxflow"), "trace log shows provider lines");
        assert_no_secret("TF_LOG=trace output", &traced.all());
        assert_eq!(value(&moto, "/cxflow/production/checkmarx/password").as_deref(), Some(ROTATED));
        assert_eq!(value(&moto, "/cxflow/production/gitlab/webhook-token").as_deref(), Some(WEBHOOK));
        let after = deployment_ids(&moto);
        assert_ne!(before, after, "service got a new deployment");
        let attrs = wd.state_attrs("cxflow_secret_sync", "production");
        assert_eq!(attrs["redeployed_services"][0], service_arn.as_str());
        assert_no_secret("state after rotation", &wd.read("terraform.tfstate"));

        // 5. removing a key deletes its parameter
        with_secrets(&mut wd, ROTATED, None);
        wd.apply().expect_ok("apply removing a key");
        assert_eq!(value(&moto, "/cxflow/production/gitlab/webhook-token"), None);
        assert!(wd.state_attrs("cxflow_secret_sync", "production")["secret_versions"].get("gitlab/webhook-token").is_none());

        // 6. destroy leaves nothing under the prefix
        wd.destroy().expect_ok("destroy");
        assert!(names_under(&moto, "/cxflow/production").is_empty(), "left: {:?}", names_under(&moto, "/cxflow/production"));
    }
}

#[test]
fn import_by_prefix_then_empty_plan_and_ephemeral_seeding() {
    let moto = Moto::start();
    put(&moto, "/cxflow/production/checkmarx/password", PASSWORD);
    put(&moto, "/cxflow/production/gitlab/token", TOKEN);
    block_on(async {
        ssm(&moto)
            .put_parameter()
            .name("/cxflow/production/checkmarx/url")
            .value("https://checkmarx.example.com")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
    });
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    let mut cfg = provider_block("");
    cfg.push_str(
        r#"
variable "checkmarx_password" {
  type      = string
  ephemeral = true
  sensitive = true
}
variable "gitlab_token" {
  type      = string
  ephemeral = true
  sensitive = true
}
resource "cxflow_secret_sync" "production" {
  path_prefix = "/cxflow/production"
  secrets_wo = {
    "checkmarx/password" = var.checkmarx_password
    "gitlab/token"       = var.gitlab_token
  }
  parameters = { "checkmarx/url" = "https://checkmarx.example.com" }
}
"#,
    );
    wd.write("main.tf", &cfg);
    with_secrets(&mut wd, PASSWORD, None);
    wd.tf(&["import", "cxflow_secret_sync.production", "/cxflow/production"]).expect_ok("import");
    let attrs = wd.state_attrs("cxflow_secret_sync", "production");
    assert_eq!(attrs["secret_versions"].as_object().unwrap().len(), 2);
    assert_eq!(attrs["parameters"]["checkmarx/url"], "https://checkmarx.example.com");
    assert_no_secret("state after import", &wd.read("terraform.tfstate"));
    let plan = wd.plan_code();
    assert_eq!(plan.code, 0, "plan right after import must be empty:\n{}", plan.all());

    // Seed staging from production through the ephemeral resource: the value
    // travels SSM -> provider -> SSM without touching state.
    let staging = Workdir::new(&bundled_terraform(), Some(&moto));
    let mut cfg = provider_block("");
    cfg.push_str(
        r#"
ephemeral "cxflow_ssm_secret" "token" {
  name = "/cxflow/production/gitlab/token"
}
resource "cxflow_secret_sync" "staging" {
  path_prefix = "/cxflow/staging"
  secrets_wo  = { "gitlab/token" = ephemeral.cxflow_ssm_secret.token.value }
}
"#,
    );
    staging.write("main.tf", &cfg);
    let applied = staging.apply();
    applied.expect_ok("apply seeding staging");
    assert_eq!(value(&moto, "/cxflow/staging/gitlab/token").as_deref(), Some(TOKEN));
    assert_no_secret("staging state", &staging.read("terraform.tfstate"));
    assert_no_secret("staging output", &applied.all());
    assert_eq!(staging.plan_code().code, 0, "seeded staging is in sync");
}

#[test]
fn invalid_keys_fail_validate_naming_the_key() {
    let wd = Workdir::new(&bundled_terraform(), None);
    let mut cfg = provider_block("  skip_credentials_validation = true");
    cfg.push_str(
        r#"
variable "one" {
  type      = string
  ephemeral = true
  sensitive = true
}
resource "cxflow_secret_sync" "bad" {
  path_prefix = "cxflow/production/"
  secrets_wo = {
    "/leading/slash" = var.one
    "dup"            = var.one
    "empty"          = ""
  }
  parameters = { "dup" = "plain" }
  redeploy_services = ["not-a-service"]
  required_keys     = ["dup", "empty", "gitlab/webhook_token", "checkmarx/url"]
}
"#,
    );
    wd.write("main.tf", &cfg);
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate with bad keys");
    let out = r.all();
    for needle in [
        "Invalid path_prefix",
        "path_prefix",
        "/leading/slash",
        "Duplicate key",
        "dup",
        "Empty value",
        "Invalid service reference",
        "redeploy_services",
        "Required keys missing",
        "2 keys are required",
        "checkmarx/url, gitlab/webhook_token",
    ] {
        assert!(out.contains(needle), "validate output lacks {needle:?}:\n{out}");
    }
    // With the secret known (plan validates with real values), no diagnostic quotes it.
    let r = wd.tf_env(&["plan"], &[("TF_VAR_one", "s3cr3t-value-one")]);
    r.expect_fail("plan with bad keys");
    assert!(r.all().contains("Invalid parameter key"), "{}", r.all());
    assert!(!r.all().contains("s3cr3t-value"), "diagnostics must not quote values:\n{}", r.all());
}

/// Syncs refreshed at once share their GetParameters calls (ten names a
/// call): alone, every sync costs two (the refresh, and the plan's comparison
/// of the values).
#[test]
fn a_plan_of_many_syncs_shares_get_parameters_calls() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let wd = Workdir::through(&proxy);
    let mut cfg = provider_block("");
    for i in 0..12 {
        cfg.push_str(&format!("resource \"cxflow_secret_sync\" \"s{i}\" {{\n  path_prefix = \"/cxflow/many/{i}\"\n  parameters = {{ a = \"b{i}\" }}\n}}\n"));
    }
    wd.write("main.tf", &cfg);
    wd.tf(&["apply", "-auto-approve", "-parallelism=12"]).expect_ok("apply of twelve syncs");
    proxy.reset();
    wd.tf(&["plan", "-detailed-exitcode", "-parallelism=12"]).expect_ok("plan without changes");
    let gets = proxy.stats()["by_operation"]["ssm:GetParameters"].as_u64().unwrap_or(0);
    assert!((1..12).contains(&gets), "twelve syncs read alone make 24 GetParameters calls; batched fewer than 12, made {gets}: {}", proxy.stats());
}
