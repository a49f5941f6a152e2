//! cxflow_release_pipeline end to end: seed 001's release pipeline with two
//! builders applied through Terraform and read back (stages, each Build
//! action's artifact and namespace, the Sign action's inputs and generated
//! environment variables, the projects, every role's policy through
//! parliament, only the signer reading the key secrets); a third builder is
//! an in-place pipeline update plus one new project and role; import by name
//! plans empty; destroy with artifacts in the bucket leaves nothing.

mod common;

use std::collections::BTreeMap;

use common::aws::{Aws, children};
use common::snapshot::Snapshot;
use common::*;
use serde_json::{Value as Json, json};

const ACCOUNT: &str = "123456789012";
const NAME: &str = "ecs-agent";
const CONNECTION: &str = "arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f";

fn config(key_arn: &str, passphrase_arn: &str, builders: &[(&str, &str)]) -> String {
    with_signing(&format!("key_secret_arn        = \"{key_arn}\"\n    passphrase_secret_arn = \"{passphrase_arn}\""), builders)
}

/// The pipeline with this body of the `signing` block.
fn with_signing(signing: &str, builders: &[(&str, &str)]) -> String {
    let builders: String = builders.iter().map(|(k, spec)| format!("    {k} = {{ buildspec = \"{spec}\", artifact_variable = \"ARTIFACT_NAME\" }}\n")).collect();
    format!(
        r#"{}
resource "cxflow_release_pipeline" "agent" {{
  name = "{NAME}"
  source {{
    connection_arn = "{CONNECTION}"
    repository     = "example-org/amazon-ecs-agent"
    branch         = "master"
  }}
  builders = {{
{builders}  }}
  signing {{
    {signing}
  }}
  publish {{
    bucket_arn = "arn:aws:s3:::example-releases"
    prefix     = "agent/"
  }}
  log_retention_days = 14
}}
"#,
        provider_block("")
    )
}

/// A moto with the release bucket, a proxy counting calls in front of it, what
/// moto held before Terraform ran, and a Terraform directory talking through the proxy.
fn setup() -> (Moto, Proxy, Aws, Snapshot, Workdir) {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let aws = Aws::new(&moto);
    block_on(aws.s3.create_bucket().bucket("example-releases").send()).unwrap();
    let s0 = Snapshot::take(&moto);
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    (moto, proxy, aws, s0, wd)
}

/// Forget the pipeline, import it by name: the plan is empty and the same children are recorded.
fn reimport(wd: &Workdir, children_before: &BTreeMap<String, String>) {
    wd.tf(&["state", "rm", "cxflow_release_pipeline.agent"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_release_pipeline.agent", NAME]).expect_ok("import");
    let plan = wd.plan_code();
    assert_eq!(plan.code, 0, "plan after import is empty:\n{}", plan.all());
    assert_eq!(&children(wd, "cxflow_release_pipeline", "agent"), children_before, "import records the same children");
}

fn step(name: &str) {
    println!("[release_pipeline] {name}");
}

async fn inline_policies(aws: &Aws, role_arn: &str) -> Json {
    let role = role_arn.rsplit('/').next().unwrap();
    let names = aws.iam.list_role_policies().role_name(role).send().await.unwrap();
    let mut out = serde_json::Map::new();
    for n in names.policy_names() {
        let d = aws.iam.get_role_policy().role_name(role).policy_name(n).send().await.unwrap();
        out.insert(n.clone(), cxflow::children::iam::parse_policy(d.policy_document()).unwrap());
    }
    Json::Object(out)
}

fn pipeline(aws: &Aws) -> aws_sdk_codepipeline::types::PipelineDeclaration {
    block_on(aws.codepipeline.get_pipeline().name(NAME).send()).unwrap().pipeline.unwrap()
}

/// What the pipeline must look like for these builder keys.
fn check_stages(aws: &Aws, keys: &[&str]) {
    let p = pipeline(aws);
    assert_eq!(p.stages().iter().map(|s| s.name()).collect::<Vec<_>>(), ["Source", "Build", "Sign", "Publish"]);
    let build = &p.stages()[1];
    let mut expected_env = Vec::new();
    for (a, k) in build.actions().iter().zip(keys) {
        assert_eq!(a.name(), format!("Build-{k}"));
        assert_eq!(a.namespace(), Some(format!("build_{k}").as_str()), "each builder its own namespace");
        assert_eq!(a.output_artifacts()[0].name(), format!("build_{k}"), "each builder its own artifact");
        assert_eq!(a.configuration().unwrap()["ProjectName"], format!("{NAME}-build-{k}"));
        expected_env.push(json!({"name": format!("ARTIFACT_{}", k.to_uppercase()), "value": format!("#{{build_{k}.ARTIFACT_NAME}}"), "type": "PLAINTEXT"}));
    }
    assert_eq!(build.actions().len(), keys.len());
    let sign = &p.stages()[2].actions()[0];
    assert_eq!(sign.input_artifacts().iter().map(|i| i.name().to_string()).collect::<Vec<_>>(), keys.iter().map(|k| format!("build_{k}")).collect::<Vec<_>>());
    let conf = sign.configuration().unwrap();
    assert_eq!(conf["ProjectName"], format!("{NAME}-sign"));
    let env = conf["EnvironmentVariables"].as_str();
    assert_eq!(serde_json::from_str::<Json>(env).unwrap(), Json::Array(expected_env), "the signer's variables are CodePipeline's stringified JSON: {env}");
    let publish = &p.stages()[3].actions()[0];
    assert_eq!(publish.input_artifacts()[0].name(), sign.output_artifacts()[0].name(), "the copier publishes what the signer wrote");
    assert_eq!(publish.configuration().unwrap()["ProjectName"], format!("{NAME}-copy"));
}

/// Every role's policies: parliament clean, and GetSecretValue only in the signer's, on exactly the two secrets.
fn check_roles(aws: &Aws, wd: &Workdir, keys: &[&str], secrets: &[&str]) {
    let rec = children(wd, "cxflow_release_pipeline", "agent");
    let roles: Vec<String> = rec.iter().filter(|(k, _)| k.ends_with("_role")).map(|(_, v)| v.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(roles.len(), keys.len() + 3, "{rec:?}");
    let policies = block_on(common::iam::policies(aws, &roles));
    assert!(policies.iter().all(|r| r.managed.is_empty() && r.inline.len() == 1), "one inline policy each, nothing attached: {policies:?}");
    let found = common::iam::findings(&policies);
    assert!(found.is_empty(), "parliament and the IAM lint: {found:#?}");
    for (key, arn) in rec.iter().filter(|(k, _)| k.ends_with("_role")) {
        let doc = block_on(inline_policies(aws, arn));
        let reads: Vec<&Json> = doc.as_object().unwrap().values().flat_map(|d| d["Statement"].as_array().unwrap()).filter(|s| s.to_string().contains("secretsmanager:")).collect();
        if key == "signer_role" {
            let mut res: Vec<&str> = reads.iter().map(|s| s["Resource"].as_str().unwrap()).collect();
            res.sort();
            assert_eq!(res, secrets, "the signer reads exactly the two secrets");
            assert!(reads.iter().all(|s| s["Action"] == "secretsmanager:GetSecretValue"));
        } else {
            assert!(reads.is_empty(), "{key} may not touch Secrets Manager: {doc}");
        }
    }
}

#[test]
fn seed_001_release_pipeline_two_then_three_builders() {
    let (moto, proxy, aws, s0, wd) = setup();
    // The user's secrets: the resource only names them (their values never pass through it).
    let key = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-key-AbCdEf");
    let pass = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-passphrase-GhIjKl");
    let mut secrets = [key.as_str(), pass.as_str()];
    secrets.sort();
    let two = [("amd64", "buildspecs/merge-build.yml"), ("arm64", "buildspecs/merge-build-ubuntu.yml")];
    wd.write("main.tf", &config(&key, &pass, &two));

    // 1. apply, then an empty plan
    wd.apply().expect_ok("apply");
    assert_eq!(wd.plan_code().code, 0, "plan after apply is empty:\n{}", wd.plan_code().all());
    let rec = children(&wd, "cxflow_release_pipeline", "agent");
    assert_eq!(
        rec.keys().cloned().collect::<Vec<_>>(),
        [
            "artifact_bucket",
            "builder_amd64",
            "builder_amd64_role",
            "builder_arm64",
            "builder_arm64_role",
            "copier",
            "copier_role",
            "logs",
            "pipeline",
            "pipeline_role",
            "signer",
            "signer_role"
        ]
    );
    let st = wd.state_attrs("cxflow_release_pipeline", "agent");
    assert_eq!(st["arn"], format!("arn:aws:codepipeline:us-east-1:{ACCOUNT}:{NAME}"));
    assert_eq!(st["builder_projects"], json!({"amd64": "ecs-agent-build-amd64", "arm64": "ecs-agent-build-arm64"}));
    assert_eq!(st["log_group_name"], "/cxflow/release/ecs-agent");
    let bucket = st["artifact_bucket"].as_str().unwrap().to_string();
    step("applied; plan empty");

    // 2. read back: stages, projects, log group, bucket, roles
    check_stages(&aws, &["amd64", "arm64"]);
    assert_eq!(pipeline(&aws).artifact_store().unwrap().location(), bucket);
    let projects = block_on(aws.codebuild.batch_get_projects().names("ecs-agent-build-arm64").names("ecs-agent-sign").names("ecs-agent-copy").send()).unwrap();
    let by_name: BTreeMap<&str, _> = projects.projects().iter().map(|p| (p.name().unwrap(), p)).collect();
    assert_eq!(by_name["ecs-agent-build-arm64"].source().unwrap().buildspec(), Some("buildspecs/merge-build-ubuntu.yml"));
    assert_eq!(by_name["ecs-agent-build-arm64"].service_role(), Some(rec["builder_arm64_role"].as_str()));
    let signer_spec = by_name["ecs-agent-sign"].source().unwrap().buildspec().unwrap();
    assert!(signer_spec.contains(&key) && signer_spec.contains(&pass) && signer_spec.contains("CODEBUILD_SRC_DIR_build_"), "{signer_spec}");
    assert_eq!(by_name["ecs-agent-sign"].service_role(), Some(rec["signer_role"].as_str()));
    let copy_env: BTreeMap<&str, &str> = by_name["ecs-agent-copy"].environment().unwrap().environment_variables().iter().map(|v| (v.name(), v.value())).collect();
    assert_eq!(copy_env, BTreeMap::from([("PUBLISH_BUCKET", "example-releases"), ("PUBLISH_PREFIX", "agent/")]));
    let groups = block_on(aws.logs.describe_log_groups().log_group_name_prefix("/cxflow/release/ecs-agent").send()).unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(14));
    let enc = block_on(aws.s3.get_bucket_encryption().bucket(&bucket).send()).unwrap();
    assert_eq!(enc.server_side_encryption_configuration().unwrap().rules()[0].apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let pab = block_on(aws.s3.get_public_access_block().bucket(&bucket).send()).unwrap();
    let c = pab.public_access_block_configuration().unwrap();
    assert_eq!([c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()], [Some(true); 4]);
    check_roles(&aws, &wd, &["amd64", "arm64"], &secrets);
    let copier = block_on(inline_policies(&aws, &rec["copier_role"]));
    let publish = copier["copy"]["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "Publish").unwrap();
    assert_eq!((publish["Action"].as_str(), publish["Resource"].as_str()), (Some("s3:PutObject"), Some("arn:aws:s3:::example-releases/*")));
    step("stages, projects, bucket and roles read back; parliament clean");

    // 3. a third builder: the pipeline updated in place, one new project and role
    let three = [two[0], two[1], ("windows", "buildspecs/merge-build-windows.yml")];
    wd.write("main.tf", &config(&key, &pass, &three));
    let plan = wd.plan_code();
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("1 to change") && !plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    proxy.reset();
    wd.apply().expect_ok("apply of a third builder");
    assert_eq!(proxy.count("codepipeline:UpdatePipeline"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("codebuild:CreateProject"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("iam:CreateRole"), 1, "{}", proxy.stats());
    assert_eq!(
        proxy.count("codepipeline:CreatePipeline") + proxy.count("codepipeline:DeletePipeline") + proxy.count("codebuild:DeleteProject") + proxy.count("iam:DeleteRole"),
        0,
        "{}",
        proxy.stats()
    );
    let rec3 = children(&wd, "cxflow_release_pipeline", "agent");
    let added: Vec<&String> = rec3.keys().filter(|k| !rec.contains_key(*k)).collect();
    assert_eq!(added, ["builder_windows", "builder_windows_role"]);
    assert!(rec.iter().all(|(k, v)| rec3.get(k) == Some(v)), "every other child keeps its identity");
    check_stages(&aws, &["amd64", "arm64", "windows"]);
    check_roles(&aws, &wd, &["amd64", "arm64", "windows"], &secrets);
    let pp = block_on(inline_policies(&aws, &rec3["pipeline_role"]));
    let build = pp["pipeline"]["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "Build").unwrap();
    assert_eq!(build["Resource"].as_array().unwrap().len(), 5, "the pipeline may start exactly its five projects: {build}");
    assert_eq!(wd.plan_code().code, 0);
    step("third builder: one UpdatePipeline, one new project and role");

    // 4. import by name, then an empty plan
    reimport(&wd, &rec3);
    step("import");

    // 5. destroy with artifacts in the bucket leaves nothing
    block_on(aws.s3.put_object().bucket(&bucket).key("signed/agent.tar.asc").body(b"sig".to_vec().into()).send()).unwrap();
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what was there before");
    step("destroy");
}

const KEY: &str = "-----BEGIN PGP PRIVATE KEY BLOCK----- key-material-7f3a9e";
const PASSPHRASE: &str = "passphrase-9c1e4b";

/// The signing block with write-only values (given as variables, as users would).
fn write_only(key: &str, passphrase: &str, version: i64) -> String {
    let mut s = with_signing(
        &format!("key_wo             = \"{key}\"\n    passphrase_wo      = \"{passphrase}\"\n    secrets_wo_version = {version}"),
        &[("amd64", "buildspecs/merge-build.yml")],
    );
    s.push('\n');
    s
}

async fn secret_value(aws: &Aws, name: &str) -> String {
    aws.secrets.get_secret_value().secret_id(name).send().await.unwrap().secret_string().unwrap().to_string()
}

/// No trace of either value, whole or in part, in what Terraform and the provider wrote.
fn assert_absent(what: &str, text: &str, values: &[&str]) {
    for v in values {
        for part in [*v, &v[v.len() - 10..], &v[..12]] {
            assert!(!text.contains(part), "{what} holds (part of) a signing secret");
        }
    }
}

#[test]
fn write_only_signing_secrets_live_only_in_secrets_manager() {
    let (moto, proxy, aws, s0, wd) = setup();
    let key_name = format!("cxflow/release/{NAME}/gpg-key");
    let pass_name = format!("cxflow/release/{NAME}/gpg-passphrase");

    // 1. bad signing blocks fail at validate, naming the attribute
    for (signing, attr) in [
        ("image = \"aws/codebuild/amazonlinux2-x86_64-standard:5.0\"", "key_secret_arn"),
        (
            &*format!("key_wo = \"k\"\n    key_secret_arn = \"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:k-AbCdEf\"\n    passphrase_wo = \"p\"\n    secrets_wo_version = 1"),
            "key_wo",
        ),
        ("key_wo = \"k\"\n    passphrase_wo = \"p\"", "secrets_wo_version"),
    ] {
        wd.write("main.tf", &with_signing(signing, &[("amd64", "b.yml")]));
        let r = wd.tf(&["validate", "-no-color"]);
        r.expect_fail(&format!("validate without a proper {attr}"));
        assert!(r.all().contains(attr), "{attr}:\n{}", r.all());
    }
    step("bad signing blocks refused at validate");

    // 2. apply with write-only values, traced: the provider's secrets hold them, nothing else does
    wd.write("main.tf", &write_only(KEY, PASSPHRASE, 1));
    let r = wd.tf_env(&["apply", "-auto-approve", "-no-color"], &[("TF_LOG", "trace")]);
    r.expect_ok("apply with key_wo");
    assert_absent("the traced apply", &r.all(), &[KEY, PASSPHRASE]);
    assert_eq!(block_on(secret_value(&aws, &key_name)), KEY);
    assert_eq!(block_on(secret_value(&aws, &pass_name)), PASSPHRASE);
    let rec = children(&wd, "cxflow_release_pipeline", "agent");
    let st = wd.state_attrs("cxflow_release_pipeline", "agent");
    assert_eq!(st["signing_secret_arns"], json!({"key": rec["key_secret"], "passphrase": rec["passphrase_secret"]}));
    assert!(st["signing"]["key_wo"].is_null() && st["signing"]["passphrase_wo"].is_null(), "{}", st["signing"]);
    assert_absent("the state file", &wd.read("terraform.tfstate"), &[KEY, PASSPHRASE]);
    let plan = wd.tf(&["plan", "-json", "-no-color"]);
    assert_absent("the plan JSON", &plan.all(), &[KEY, PASSPHRASE]);
    assert_eq!(wd.plan_code().code, 0, "plan after apply is empty:\n{}", wd.plan_code().all());
    step("write-only values in Secrets Manager only; plan empty");

    // 3. only the signer may read them: the secrets' own policies and the roles' policies
    let signer_role = rec["signer_role"].clone();
    for name in [&key_name, &pass_name] {
        let p = block_on(aws.secrets.get_resource_policy().secret_id(name).send()).unwrap();
        let p: Json = serde_json::from_str(p.resource_policy().unwrap()).unwrap();
        let st = &p["Statement"][0];
        assert_eq!((st["Effect"].as_str(), st["Action"].as_str(), st["Principal"].as_str()), (Some("Deny"), Some("secretsmanager:GetSecretValue"), Some("*")), "{p}");
        assert_eq!(st["Condition"]["ArnNotEquals"]["aws:PrincipalArn"], signer_role.as_str(), "{p}");
    }
    let pattern = |n: &str| format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{n}-??????");
    let mut secrets = [pattern(&key_name), pattern(&pass_name)];
    secrets.sort();
    check_roles(&aws, &wd, &["amd64"], &[secrets[0].as_str(), secrets[1].as_str()]);
    let signer = block_on(aws.codebuild.batch_get_projects().names(format!("{NAME}-sign")).send()).unwrap();
    let spec = signer.projects()[0].source().unwrap().buildspec().unwrap().to_string();
    assert!(spec.contains(&format!("GPG_KEY: \"{key_name}\"")) && spec.contains(&format!("GPG_PASSPHRASE: \"{pass_name}\"")), "{spec}");
    step("only the signer role reads them");

    // 4. a value changed outside Terraform is found at refresh and written back
    block_on(aws.secrets.put_secret_value().secret_id(&key_name).secret_string("tampered").send()).unwrap();
    let plan = wd.plan_code();
    assert_eq!(plan.code, 2, "the change outside Terraform shows:\n{}", plan.all());
    assert!(plan.all().contains("changed outside Terraform"), "{}", plan.all());
    proxy.reset();
    wd.apply().expect_ok("apply writes the value back");
    assert_eq!(block_on(secret_value(&aws, &key_name)), KEY);
    assert_eq!(proxy.count("secretsmanager:PutSecretValue"), 1, "only the changed secret: {}", proxy.stats());
    assert_eq!(wd.plan_code().code, 0);
    step("out-of-band change restored");

    // 5. new values: a new version writes both, nothing replaced
    wd.write("main.tf", &write_only("-----BEGIN PGP PRIVATE KEY BLOCK----- rotated-2b8d", "rotated-passphrase-5e0f", 2));
    proxy.reset();
    wd.apply().expect_ok("apply of new values");
    assert_eq!(block_on(secret_value(&aws, &key_name)), "-----BEGIN PGP PRIVATE KEY BLOCK----- rotated-2b8d");
    assert_eq!(block_on(secret_value(&aws, &pass_name)), "rotated-passphrase-5e0f");
    assert_eq!(proxy.count("secretsmanager:PutSecretValue"), 2, "{}", proxy.stats());
    assert_eq!(proxy.count("secretsmanager:CreateSecret") + proxy.count("secretsmanager:DeleteSecret") + proxy.count("codebuild:CreateProject"), 0, "{}", proxy.stats());
    assert_eq!(children(&wd, "cxflow_release_pipeline", "agent"), rec, "every child keeps its identity");
    step("secrets_wo_version 2 writes both values");

    // 6. import by name recovers the write-only mode and its version: an empty plan
    reimport(&wd, &rec);
    step("import");

    // 7. the passphrase moves to the user's secret: the provider's is deleted
    let user = block_on(aws.secrets.create_secret().name("release/gpg-passphrase").secret_string("users-own").send()).unwrap().arn().unwrap().to_string();
    wd.write(
        "main.tf",
        &with_signing(&format!("key_wo = \"{KEY}\"\n    passphrase_secret_arn = \"{user}\"\n    secrets_wo_version = 2"), &[("amd64", "buildspecs/merge-build.yml")]),
    );
    wd.apply().expect_ok("apply with the user's passphrase secret");
    let rec = children(&wd, "cxflow_release_pipeline", "agent");
    assert!(!rec.contains_key("passphrase_secret") && rec.contains_key("key_secret"), "{rec:?}");
    assert!(block_on(aws.secrets.describe_secret().secret_id(&pass_name).send()).is_err(), "the provider's passphrase secret is gone");
    assert_eq!(wd.state_attrs("cxflow_release_pipeline", "agent")["signing_secret_arns"]["passphrase"], user.as_str());
    assert_eq!(wd.plan_code().code, 0);
    step("one secret the user's, one the provider's");

    // 8. destroy leaves what was there before (the user's secret aside)
    wd.destroy().expect_ok("destroy");
    block_on(aws.secrets.delete_secret().secret_id(&user).force_delete_without_recovery(true).send()).unwrap();
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves nothing");
    step("destroy");
}

/// The pipeline with the user's secrets and a `signing_image` block of this body.
fn with_signing_image(image: &str) -> String {
    let mut s = config(
        &format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-key-AbCdEf"),
        &format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-passphrase-GhIjKl"),
        &[("amd64", "buildspecs/merge-build.yml")],
    );
    let at = s.rfind('}').unwrap();
    s.insert_str(at, &format!("  signing_image {{\n    {image}\n  }}\n"));
    s
}

fn project(aws: &Aws, name: &str) -> aws_sdk_codebuild::types::Project {
    block_on(aws.codebuild.batch_get_projects().names(name).send()).unwrap().projects()[0].clone()
}

#[test]
fn managed_signing_image_built_on_a_schedule_and_pulled_by_the_signer() {
    let (moto, proxy, aws, s0, wd) = setup();
    let repo = format!("{NAME}-signer");
    let uri = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{repo}");

    // 1. bad schedules and two images fail at validate, naming the attribute
    for (body, attr) in [("schedule = \"cron(0 12 * * MON *)\"", "schedule"), ("schedule = \"rate(2 weeks)\"", "schedule"), ("schedule = \"0 12 * * *\"", "schedule")] {
        wd.write("main.tf", &with_signing_image(body));
        let r = wd.tf(&["validate", "-no-color"]);
        r.expect_fail(body);
        assert!(r.all().contains(attr), "{body}:\n{}", r.all());
    }
    wd.write("main.tf", &with_signing_image("").replace("    passphrase_secret_arn", "    image = \"example/signer:1\"\n    passphrase_secret_arn"));
    let r = wd.tf(&["validate", "-no-color"]);
    r.expect_fail("two signing images");
    assert!(r.all().contains("signing.image") || r.all().contains("image"), "{}", r.all());
    step("bad signing images refused at validate");

    // 2. apply: repository, image project, schedule; the signer runs on the image
    wd.write("main.tf", &with_signing_image("schedule = \"cron(0 12 ? * MON *)\""));
    wd.apply().expect_ok("apply with a signing image");
    assert_eq!(wd.plan_code().code, 0, "plan after apply is empty:\n{}", wd.plan_code().all());
    let rec = children(&wd, "cxflow_release_pipeline", "agent");
    for k in ["signing_image_repo", "signing_image_role", "signing_image", "signing_image_schedule_role", "signing_image_schedule"] {
        assert!(rec.contains_key(k), "{k}: {rec:?}");
    }
    assert_eq!(wd.state_attrs("cxflow_release_pipeline", "agent")["signing_image_uri"], format!("{uri}:latest"));
    let r = block_on(aws.ecr.describe_repositories().repository_names(&repo).send()).unwrap();
    assert_eq!(r.repositories()[0].image_scanning_configuration().map(|c| c.scan_on_push()), Some(true));
    let img = project(&aws, &format!("{NAME}-signer-image"));
    let src = img.source().unwrap();
    assert_eq!((src.r#type().as_str(), src.location()), ("GITHUB", Some("https://github.com/example-org/amazon-ecs-agent.git")));
    assert_eq!(src.auth().and_then(|a| a.resource()), Some(CONNECTION), "the source is read through the connection");
    assert!(src.buildspec().unwrap().contains("docker push"), "{:?}", src.buildspec());
    let env = img.environment().unwrap();
    assert_eq!(env.privileged_mode(), Some(true), "docker builds need privileged mode");
    let vars: BTreeMap<&str, &str> = env.environment_variables().iter().map(|v| (v.name(), v.value())).collect();
    assert_eq!(vars, BTreeMap::from([("DOCKERFILE", "Dockerfile.signer"), ("REPOSITORY_URI", uri.as_str())]));
    let signer = project(&aws, &format!("{NAME}-sign"));
    let senv = signer.environment().unwrap();
    assert_eq!(senv.image(), format!("{uri}:latest"));
    assert_eq!(senv.image_pull_credentials_type(), Some(&aws_sdk_codebuild::types::ImagePullCredentialsType::ServiceRole), "pulled with the signer's role");
    let rule = block_on(aws.events.describe_rule().name(&rec["signing_image_schedule"]).send()).unwrap();
    assert_eq!(rule.schedule_expression(), Some("cron(0 12 ? * MON *)"));
    let targets = block_on(aws.events.list_targets_by_rule().rule(&rec["signing_image_schedule"]).send()).unwrap();
    assert_eq!(targets.targets().len(), 1);
    assert_eq!(targets.targets()[0].arn(), img.arn().unwrap());
    assert_eq!(targets.targets()[0].role_arn(), Some(rec["signing_image_schedule_role"].as_str()));
    step("repository, image project, schedule; the signer runs on the image");

    // 3. every role least privilege: parliament clean; the signer may pull, the image project push, the schedule start one build
    let roles: Vec<String> = rec.iter().filter(|(k, _)| k.ends_with("_role")).map(|(_, v)| v.rsplit('/').next().unwrap().to_string()).collect();
    let found = common::iam::findings(&block_on(common::iam::policies(&aws, &roles)));
    assert!(found.is_empty(), "parliament and the IAM lint: {found:#?}");
    let repo_arn = format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo}");
    let statement = |role: &str, doc: &str, sid: &str| {
        let d = block_on(inline_policies(&aws, &rec[role]));
        d[doc]["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned().unwrap_or(Json::Null)
    };
    let pull = statement("signer_role", "sign", "SigningImage");
    assert_eq!(
        (pull["Resource"].as_str(), pull["Action"].clone()),
        (Some(repo_arn.as_str()), json!(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]))
    );
    let push = statement("signing_image_role", "image", "SigningImage");
    assert_eq!(push["Resource"], repo_arn.as_str());
    assert!(push["Action"].as_array().unwrap().contains(&json!("ecr:PutImage")), "{push}");
    let start = statement("signing_image_schedule_role", "schedule", "Build");
    assert_eq!((start["Action"].as_str(), start["Resource"].as_str()), (Some("codebuild:StartBuild"), img.arn()));
    step("roles least privilege");

    // 4. an empty schedule: the rule and its role go, nothing else changes
    wd.write("main.tf", &with_signing_image("schedule = \"\""));
    proxy.reset();
    wd.apply().expect_ok("apply without a schedule");
    assert_eq!((proxy.count("events:DeleteRule"), proxy.count("iam:DeleteRole")), (1, 1), "{}", proxy.stats());
    assert_eq!(proxy.count("codebuild:UpdateProject") + proxy.count("codebuild:CreateProject") + proxy.count("ecr:CreateRepository"), 0, "{}", proxy.stats());
    let rec2 = children(&wd, "cxflow_release_pipeline", "agent");
    assert!(!rec2.contains_key("signing_image_schedule") && !rec2.contains_key("signing_image_schedule_role") && rec2.contains_key("signing_image"), "{rec2:?}");
    assert_eq!(wd.plan_code().code, 0);
    step("no schedule without a cron expression");

    // 5. import by name: the block comes back from the image project
    reimport(&wd, &rec2);
    step("import");

    // 6. without the block the image's children go and the signer is back on CodeBuild's image
    wd.write("main.tf", &with_signing_image("").replace("  signing_image {\n    \n  }\n", ""));
    wd.apply().expect_ok("apply without a signing image");
    let rec3 = children(&wd, "cxflow_release_pipeline", "agent");
    assert!(rec3.keys().all(|k| !k.starts_with("signing_image")), "{rec3:?}");
    let senv = project(&aws, &format!("{NAME}-sign")).environment().unwrap().clone();
    assert_eq!(senv.image_pull_credentials_type(), Some(&aws_sdk_codebuild::types::ImagePullCredentialsType::Codebuild));
    assert!(block_on(aws.ecr.describe_repositories().repository_names(&repo).send()).is_err(), "the repository is gone");
    assert_eq!(wd.plan_code().code, 0);
    step("signing image removed");

    // 7. destroy leaves nothing
    wd.write("main.tf", &with_signing_image("schedule = \"rate(7 days)\""));
    wd.apply().expect_ok("apply again with a rate schedule");
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves nothing");
    step("destroy");
}

/// Seed 001's audit stack: `audit {}` adds a trail, its bucket (with the policy
/// CloudTrail requires), the log group it delivers to and its delivery role.
#[test]
fn seed_001_release_pipeline_audit_trail() {
    let (moto, proxy, aws, s0, wd) = setup();
    let key = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-key-AbCdEf");
    let pass = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:release/gpg-passphrase-GhIjKl");
    let builders = [("amd64", "buildspecs/merge-build.yml")];
    let with_audit = |audit: &str| config(&key, &pass, &builders).replace("  log_retention_days = 14\n", &format!("  log_retention_days = 14\n  {audit}\n"));

    // 0. bad input fails at validate, naming the attribute
    wd.write("main.tf", &with_audit("audit { retention_days = 7777 }"));
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate with retention_days = 7777");
    assert!(r.all().contains("retention_days") && r.all().contains("180"), "the diagnostic names the attribute and the allowed values:\n{}", r.all());
    assert_eq!(proxy.total(), 0, "validate calls no AWS API: {}", proxy.stats());

    // 1. apply with `audit {}`, then an empty plan
    wd.write("main.tf", &with_audit("audit {}"));
    wd.apply().expect_ok("apply with audit");
    assert_eq!(wd.plan_code().code, 0, "plan after apply is empty:\n{}", wd.plan_code().all());
    let rec = children(&wd, "cxflow_release_pipeline", "agent");
    let trail_arn = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{NAME}-audit");
    assert_eq!(rec["audit_trail"], trail_arn);
    let st = wd.state_attrs("cxflow_release_pipeline", "agent");
    assert_eq!(st["audit_trail_arn"], trail_arn);
    assert_eq!(st["audit_log_group_name"], "/cxflow/release/ecs-agent/audit");
    let bucket = st["audit_bucket"].as_str().unwrap().to_string();
    assert_eq!(rec["audit_bucket"], bucket);
    assert!(bucket.contains("-audit-") && bucket != st["artifact_bucket"].as_str().unwrap(), "{bucket}");
    let query = st["audit_query"].as_str().unwrap();
    assert!(query.starts_with("fields @timestamp, userIdentity.arn, sourceIPAddress, requestParameters.secretId\n"), "{query}");
    assert!(query.contains(r#"eventName = "GetSecretValue""#), "{query}");
    for id in [key.as_str(), pass.as_str(), "release/gpg-key", "release/gpg-passphrase"] {
        assert!(query.contains(&format!("\"{id}\"")), "the query names {id}: {query}");
    }
    step("applied with audit; plan empty");

    // 2. read back the trail, its selectors and status, the log group, the bucket and the role
    let t = block_on(aws.cloudtrail.get_trail().name(&trail_arn).send()).unwrap().trail.unwrap();
    let log_group_arn = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/cxflow/release/ecs-agent/audit:*");
    assert_eq!(t.s3_bucket_name(), Some(bucket.as_str()));
    assert_eq!(t.cloud_watch_logs_log_group_arn(), Some(log_group_arn.as_str()));
    assert_eq!(t.cloud_watch_logs_role_arn(), Some(rec["audit_role"].as_str()));
    assert_eq!(t.is_multi_region_trail(), Some(false));
    let sel = block_on(aws.cloudtrail.get_event_selectors().trail_name(&trail_arn).send()).unwrap();
    assert!(sel.event_selectors().is_empty(), "advanced selectors only");
    let fields: BTreeMap<String, (Vec<String>, Vec<String>)> =
        sel.advanced_event_selectors().iter().flat_map(|s| s.field_selectors()).map(|f| (f.field().to_string(), (f.equals().to_vec(), f.not_equals().to_vec()))).collect();
    assert_eq!(sel.advanced_event_selectors().len(), 1);
    assert_eq!(
        fields,
        BTreeMap::from([
            ("eventCategory".to_string(), (vec!["Management".to_string()], vec![])),
            ("readOnly".to_string(), (vec!["true".to_string()], vec![])),
            ("eventSource".to_string(), (vec![], vec!["kms.amazonaws.com".to_string(), "rdsdata.amazonaws.com".to_string()])),
        ]),
        "read management events, where GetSecretValue is recorded"
    );
    assert_eq!(block_on(aws.cloudtrail.get_trail_status().name(&trail_arn).send()).unwrap().is_logging(), Some(true), "StartLogging ran");
    let tags = block_on(aws.cloudtrail.list_tags().resource_id_list(&trail_arn).send()).unwrap();
    let tags: BTreeMap<&str, Option<&str>> = tags.resource_tag_list()[0].tags_list().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags.get(common::aws::OWNER_TAG), Some(&Some("cxflow_release_pipeline/ecs-agent")), "{tags:?}");
    let groups = block_on(aws.logs.describe_log_groups().log_group_name_prefix("/cxflow/release/ecs-agent/audit").send()).unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(180), "180 days by default");
    let policy: Json = serde_json::from_str(block_on(aws.s3.get_bucket_policy().bucket(&bucket).send()).unwrap().policy().unwrap()).unwrap();
    let st_by_sid = |sid: &str| policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned().unwrap();
    let acl = st_by_sid("CloudTrailAclCheck");
    assert_eq!((acl["Action"].as_str(), acl["Resource"].as_str()), (Some("s3:GetBucketAcl"), Some(format!("arn:aws:s3:::{bucket}").as_str())));
    assert_eq!(acl["Principal"]["Service"], "cloudtrail.amazonaws.com");
    assert_eq!(acl["Condition"]["StringEquals"]["aws:SourceArn"], trail_arn);
    let write = st_by_sid("CloudTrailWrite");
    assert_eq!(write["Action"], "s3:PutObject");
    assert_eq!(write["Resource"], format!("arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/*"));
    assert_eq!(write["Condition"]["StringEquals"], json!({"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail_arn}));
    let enc = block_on(aws.s3.get_bucket_encryption().bucket(&bucket).send()).unwrap();
    assert_eq!(enc.server_side_encryption_configuration().unwrap().rules()[0].apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let pab = block_on(aws.s3.get_public_access_block().bucket(&bucket).send()).unwrap();
    let c = pab.public_access_block_configuration().unwrap();
    assert_eq!([c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()], [Some(true); 4]);
    let role = rec["audit_role"].rsplit('/').next().unwrap().to_string();
    let r = block_on(aws.iam.get_role().role_name(&role).send()).unwrap().role.unwrap();
    let trust = cxflow::children::iam::parse_policy(r.assume_role_policy_document().unwrap()).unwrap();
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "cloudtrail.amazonaws.com");
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"], json!({"aws:SourceAccount": ACCOUNT, "aws:SourceArn": trail_arn}));
    let doc = block_on(inline_policies(&aws, &rec["audit_role"]));
    assert_eq!(
        doc["deliver"]["Statement"],
        json!([{"Sid": "Deliver", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/cxflow/release/ecs-agent/audit:log-stream:{ACCOUNT}_CloudTrail_*")}]),
        "CloudTrail's role writes its own streams of the audit log group, nothing else"
    );
    let mut policies = block_on(common::iam::policies(&aws, &[role]));
    policies.push(common::iam::RolePolicies { role: "audit bucket".into(), inline: vec![("bucket policy".into(), policy.to_string())], managed: vec![] });
    let found = common::iam::findings(&policies);
    assert!(found.is_empty(), "parliament and the IAM lint: {found:#?}");
    step("trail, selectors, status, log group, bucket policy and role read back; parliament clean");

    // 3. retention_days changed: one in-place update, PutRetentionPolicy only
    wd.write("main.tf", &with_audit("audit { retention_days = 365 }"));
    let plan = wd.plan_code();
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("1 to change") && !plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    proxy.reset();
    wd.apply().expect_ok("apply of retention_days = 365");
    let writes: Vec<String> = proxy
        .calls()
        .iter()
        .filter_map(|c| c["op"].as_str().map(str::to_string))
        .filter(|op| {
            let name = op.split_once(':').map(|(_, n)| n).unwrap_or(op);
            !["Get", "List", "Describe", "BatchGet", "GET ", "HEAD "].iter().any(|p| name.starts_with(p))
        })
        .collect();
    assert_eq!(writes, ["logs:PutRetentionPolicy"], "{}", proxy.stats());
    let groups = block_on(aws.logs.describe_log_groups().log_group_name_prefix("/cxflow/release/ecs-agent/audit").send()).unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(365));
    assert_eq!(children(&wd, "cxflow_release_pipeline", "agent"), rec, "every child keeps its identity");
    assert_eq!(wd.plan_code().code, 0);
    step("retention_days: one PutRetentionPolicy");

    // 3b. multi_region on: one UpdateTrail, the trail keeps its identity
    wd.write("main.tf", &with_audit("audit {\n    retention_days = 365\n    multi_region   = true\n  }"));
    proxy.reset();
    wd.apply().expect_ok("apply of multi_region = true");
    assert_eq!(proxy.count("cloudtrail:UpdateTrail"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("cloudtrail:CreateTrail") + proxy.count("cloudtrail:DeleteTrail") + proxy.count("cloudtrail:PutEventSelectors"), 0, "{}", proxy.stats());
    let t = block_on(aws.cloudtrail.get_trail().name(&trail_arn).send()).unwrap().trail.unwrap();
    assert_eq!((t.is_multi_region_trail(), t.include_global_service_events()), (Some(true), Some(true)), "a multi-region trail includes global service events");
    assert_eq!(children(&wd, "cxflow_release_pipeline", "agent"), rec);
    assert_eq!(wd.plan_code().code, 0);
    step("multi_region: one UpdateTrail");

    // 4. import by name recovers the audit block: an empty plan
    reimport(&wd, &rec);
    step("import");

    // 5. destroy with log files in the trail's bucket leaves nothing
    block_on(aws.s3.put_object().bucket(&bucket).key(format!("AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/x.json.gz")).body(b"{}".to_vec().into()).send()).unwrap();
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what was there before (trail, buckets, log groups, roles)");
    step("destroy");
}
