//! `terraform query` (Terraform 1.14+) with the bundled Terraform 1.15: a
//! `list "cxflow_secret_sync"` block finds parameters made by hand with the
//! AWS SDK, `-generate-config-out` writes a resource and an import block,
//! and planning with them imports the object with no other change.

mod common;

use aws_sdk_ssm::types::ParameterType;
use common::*;

const SECRET: &str = "Pw-QUERY-HUNTER2-never-listed";

fn ssm(m: &Moto) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&m.sdk())
}

fn put(m: &Moto, name: &str, value: &str, ty: ParameterType) {
    block_on(async { ssm(m).put_parameter().name(name).value(value).r#type(ty).send().await.unwrap() });
}

/// (type, version, decrypted value) of a parameter.
fn param(m: &Moto, name: &str) -> (String, i64, String) {
    block_on(async {
        let p = ssm(m).get_parameter().name(name).with_decryption(true).send().await.unwrap().parameter.unwrap();
        (p.r#type().unwrap().as_str().to_string(), p.version(), p.value().unwrap().to_string())
    })
}

fn query_file(prefix: &str) -> String {
    format!("list \"cxflow_secret_sync\" \"x\" {{\n  provider = cxflow\n\n  config {{\n    path_prefix = \"{prefix}\"\n  }}\n}}\n")
}

/// Query `prefix`, check what was generated, and return the generated configuration.
fn query_and_generate(wd: &Workdir, prefix: &str) -> (Run, String) {
    wd.write("main.tfquery.hcl", &query_file(prefix));
    let q = wd.tf(&["query", "-generate-config-out=generated.tf"]);
    q.expect_ok("terraform query");
    assert!(q.stdout.contains("list.cxflow_secret_sync.x") && q.stdout.contains(prefix), "{}", q.all());
    let generated = wd.read("generated.tf");
    assert_eq!(generated.matches("resource \"cxflow_secret_sync\"").count(), 1, "{generated}");
    assert!(generated.contains("import {") && generated.contains("identity"), "{generated}");
    assert!(generated.contains(&format!("path_prefix = \"{prefix}\"")), "{generated}");
    assert!(!generated.contains("not-listed"), "a parameter outside {prefix} was listed:\n{generated}");
    (q, generated)
}

/// Plan shows exactly one import and nothing else; apply it; the next plan is empty.
fn import_without_changes(wd: &Workdir) {
    let plan = wd.tf(&["plan"]);
    plan.expect_ok("plan with the generated configuration");
    assert!(plan.stdout.contains("Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."), "plan with the generated configuration:\n{}", plan.all());
    wd.apply().expect_ok("apply the import");
    let again = wd.plan_code();
    assert_eq!(again.code, 0, "plan after the import must be empty:\n{}", again.all());
}

#[test]
fn query_lists_plain_parameters_and_generated_config_imports_cleanly() {
    let moto = Moto::start();
    put(&moto, "/app/prod/db/host", "db.internal", ParameterType::String);
    put(&moto, "/app/prod/api/v1/url", "https://api.example.com", ParameterType::String);
    // Neighbours that are not under /app/prod.
    put(&moto, "/app/production/other", "not-listed-1", ParameterType::String);
    put(&moto, "/app/staging/db/host", "not-listed-2", ParameterType::String);

    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    let (q, generated) = query_and_generate(&wd, "/app/prod");
    assert!(!q.all().contains("SecureStrings need secrets_wo"), "{}", q.all());
    assert!(generated.contains("\"db/host\"") && generated.contains("db.internal") && generated.contains("https://api.example.com"), "{generated}");
    import_without_changes(&wd);
    let attrs = wd.state_attrs("cxflow_secret_sync", "x_0");
    assert_eq!(attrs["parameter_versions"], serde_json::json!({"api/v1/url": 1, "db/host": 1}), "{attrs}");
    // SSM is as it was: nothing rewritten.
    assert_eq!(param(&moto, "/app/prod/db/host"), ("String".to_string(), 1, "db.internal".to_string()));
}

#[test]
fn query_with_secure_strings_never_lists_values_and_warns_before_apply() {
    let moto = Moto::start();
    put(&moto, "/app/prod/db/password", SECRET, ParameterType::SecureString);
    put(&moto, "/app/prod/db/host", "db.internal", ParameterType::String);
    let before = param(&moto, "/app/prod/db/password");

    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    let (q, generated) = query_and_generate(&wd, "/app/prod");
    assert!(!q.all().contains(SECRET), "the secret value reached query output");
    assert!(!generated.contains(SECRET), "the secret value reached the generated configuration:\n{generated}");
    // The warning names the key a user must supply, because apply would otherwise delete it.
    assert!(q.all().contains("SecureStrings need secrets_wo") && q.all().contains("db/password"), "{}", q.all());
    let line = generated.lines().find(|l| l.trim_start().starts_with("secrets_wo ")).unwrap_or_default();
    assert!(line.contains("= null"), "write-only secrets_wo must be generated null: {line:?}\n{generated}");

    // As warned: the secret supplied from SSM itself (an ephemeral read), the import changes nothing.
    let with_secret = generated.replace(line, "  secrets_wo = { \"db/password\" = ephemeral.cxflow_ssm_secret.pw.value }");
    wd.write("generated.tf", &with_secret);
    wd.write("secret.tf", "ephemeral \"cxflow_ssm_secret\" \"pw\" {\n  name = \"/app/prod/db/password\"\n}\n");
    import_without_changes(&wd);
    assert!(!wd.read("terraform.tfstate").contains(SECRET), "the secret value reached state");
    let attrs = wd.state_attrs("cxflow_secret_sync", "x_0");
    assert_eq!(attrs["secret_versions"], serde_json::json!({"db/password": 1}), "{attrs}");
    assert!(attrs["secrets_wo"].is_null(), "{attrs}");
    assert_eq!(param(&moto, "/app/prod/db/password"), before, "the SecureString was rewritten");
}

#[test]
fn query_refuses_a_bad_prefix_and_an_empty_one_lists_nothing() {
    let moto = Moto::start();
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    wd.write("main.tfquery.hcl", &query_file("app/prod/"));
    let q = wd.tf(&["query"]);
    q.expect_fail("query with a bad path_prefix");
    assert!(q.all().contains("path_prefix") && q.all().contains("must start with"), "{}", q.all());

    wd.write("main.tfquery.hcl", &query_file("/nothing/here"));
    let q = wd.tf(&["query", "-generate-config-out=generated.tf"]);
    q.expect_ok("query of an empty path");
    assert!(!q.stdout.contains("/nothing/here"), "{}", q.all());
    assert!(!wd.read("generated.tf").contains("resource \"cxflow_secret_sync\""), "{}", wd.read("generated.tf"));
}
