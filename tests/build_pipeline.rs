//! cxflow_build_pipeline end to end: seed 004's pipeline applied through
//! Terraform and read back child by child (stages and action
//! configurations, the project's environment, the log group, the artifact
//! bucket's settings, both roles' policies through parliament); a timeout
//! change is one UpdateProject, a branch change one UpdatePipeline; the
//! bucket's public access block removed out of band is repaired; import by
//! pipeline name plans empty; destroy with artifacts in the bucket leaves
//! nothing.

mod common;

use std::collections::BTreeMap;

use common::aws::{Aws, OWNER_TAG, children};
use common::snapshot::Snapshot;
use common::*;
use serde_json::Value as Json;

const ACCOUNT: &str = "123456789012";
const NAME: &str = "cruddur-backend-fargate";
const CONNECTION: &str = "arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f";
const TASK_ROLE: &str = "arn:aws:iam::123456789012:role/backend-flask-task";
const EXECUTION_ROLE: &str = "arn:aws:iam::123456789012:role/backend-flask-execution";

fn config(repository_arn: &str, timeout: i64, branch: &str) -> String {
    format!(
        r#"{}
resource "cxflow_build_pipeline" "backend" {{
  name = "{NAME}"
  source {{
    connection_arn = "{CONNECTION}"
    repository     = "example-org/aws-bootcamp-cruddur-2023"
    branch         = "{branch}"
  }}
  build {{
    buildspec          = "backend-flask/buildspec.yml"
    image              = "aws/codebuild/amazonlinux2-x86_64-standard:4.0"
    compute_type       = "BUILD_GENERAL1_SMALL"
    privileged         = true
    timeout_minutes    = {timeout}
    environment        = {{ CONTAINER_NAME = "backend-flask" }}
    repository_arn     = "{repository_arn}"
    log_retention_days = 14
  }}
  deploy_ecs {{
    cluster        = "cruddur"
    service        = "backend-flask"
    pass_role_arns = ["{TASK_ROLE}", "{EXECUTION_ROLE}"]
  }}
  manual_approval = true
  tags            = {{ App = "cruddur" }}
}}
"#,
        provider_block("")
    )
}

fn step(name: &str) {
    println!("[build_pipeline] {name}");
}

/// A statement of a policy document by Sid.
fn statement<'a>(doc: &'a Json, sid: &str) -> &'a Json {
    doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no statement {sid} in {doc}"))
}

async fn inline_policy(aws: &Aws, role_arn: &str, name: &str) -> Json {
    let role = role_arn.rsplit('/').next().unwrap();
    let d = aws.iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap();
    cxflow::children::iam::parse_policy(d.policy_document()).unwrap()
}

fn action_config(p: &aws_sdk_codepipeline::types::PipelineDeclaration, stage: &str) -> BTreeMap<String, String> {
    let s = p.stages().iter().find(|s| s.name() == stage).unwrap_or_else(|| panic!("no stage {stage}"));
    s.actions()[0].configuration().cloned().unwrap_or_default().into_iter().collect()
}

#[test]
fn seed_004_pipeline_from_create_to_destroy() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let aws = Aws::new(&moto);
    let repo = block_on(aws.ecr.create_repository().repository_name("backend-flask").send()).unwrap();
    let repo_arn = repo.repository().unwrap().repository_arn().unwrap().to_string();
    let s0 = Snapshot::take(&moto);
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    wd.write("main.tf", &config(&repo_arn, 20, "prod"));

    // 1. apply, then an empty plan
    wd.apply().expect_ok("apply");
    assert_eq!(wd.plan_code().code, 0, "plan after apply is empty:\n{}", wd.plan_code().all());
    let st = wd.state_attrs("cxflow_build_pipeline", "backend");
    let rec = children(&wd, "cxflow_build_pipeline", "backend");
    assert_eq!(rec.keys().cloned().collect::<Vec<_>>(), ["artifact_bucket", "build_logs", "build_role", "pipeline", "pipeline_role", "project"]);
    let arn = format!("arn:aws:codepipeline:us-east-1:{ACCOUNT}:{NAME}");
    assert_eq!(st["arn"], arn.as_str());
    assert_eq!(st["console_url"], format!("https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/{NAME}/view?region=us-east-1"));
    assert_eq!(st["start_command"], format!("aws codepipeline start-pipeline-execution --name {NAME}"));
    assert_eq!(st["build_project_name"], NAME);
    assert_eq!(st["log_group_name"], format!("/cxflow/build/{NAME}"));
    let bucket = st["artifact_bucket"].as_str().unwrap().to_string();
    assert!(bucket.starts_with("cruddur-backend-fargate-") && bucket.ends_with(&format!("-{ACCOUNT}-us-east-1")), "{bucket}");
    let build_role = st["build_role_arn"].as_str().unwrap().to_string();
    let pipeline_role = st["pipeline_role_arn"].as_str().unwrap().to_string();
    step("applied; plan empty");

    // 2. every child read back
    let p = block_on(aws.codepipeline.get_pipeline().name(NAME).send()).unwrap().pipeline.unwrap();
    let stages: Vec<&str> = p.stages().iter().map(|s| s.name()).collect();
    assert_eq!(stages, ["Source", "Build", "Approve", "Deploy"]);
    assert_eq!(p.role_arn(), pipeline_role);
    assert_eq!(p.artifact_store().unwrap().location(), bucket);
    let src = action_config(&p, "Source");
    assert_eq!(src["ConnectionArn"], CONNECTION);
    assert_eq!(src["FullRepositoryId"], "example-org/aws-bootcamp-cruddur-2023");
    assert_eq!(src["BranchName"], "prod");
    assert_eq!(p.stages()[0].actions()[0].action_type_id().unwrap().provider(), "CodeStarSourceConnection");
    assert_eq!(action_config(&p, "Build")["ProjectName"], NAME);
    let deploy = action_config(&p, "Deploy");
    assert_eq!((deploy["ClusterName"].as_str(), deploy["ServiceName"].as_str(), deploy["FileName"].as_str()), ("cruddur", "backend-flask", "imagedefinitions.json"));
    assert_eq!(p.stages()[3].actions()[0].input_artifacts()[0].name(), p.stages()[1].actions()[0].output_artifacts()[0].name(), "the deploy reads what the build wrote");
    assert_eq!(p.stages()[2].actions()[0].action_type_id().unwrap().provider(), "Manual");
    let tags = block_on(aws.codepipeline.list_tags_for_resource().resource_arn(&arn).send()).unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == format!("cxflow_build_pipeline/{NAME}")), "{tags:?}");
    assert!(tags.tags().iter().any(|t| t.key() == "App" && t.value() == "cruddur"));

    let projects = block_on(aws.codebuild.batch_get_projects().names(NAME).send()).unwrap();
    let project = &projects.projects()[0];
    let env = project.environment().unwrap();
    assert_eq!(env.image(), "aws/codebuild/amazonlinux2-x86_64-standard:4.0");
    assert_eq!(env.compute_type().as_str(), "BUILD_GENERAL1_SMALL");
    assert_eq!(env.privileged_mode(), Some(true));
    assert_eq!(env.environment_variables().iter().map(|v| (v.name(), v.value())).collect::<Vec<_>>(), [("CONTAINER_NAME", "backend-flask")]);
    assert_eq!(project.timeout_in_minutes(), Some(20));
    assert_eq!(project.source().unwrap().r#type().as_str(), "CODEPIPELINE");
    assert_eq!(project.source().unwrap().buildspec(), Some("backend-flask/buildspec.yml"));
    assert_eq!(project.service_role(), Some(build_role.as_str()));
    assert_eq!(project.logs_config().unwrap().cloud_watch_logs().unwrap().group_name(), Some(format!("/cxflow/build/{NAME}").as_str()));

    let groups = block_on(aws.logs.describe_log_groups().log_group_name_prefix(format!("/cxflow/build/{NAME}")).send()).unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(14));

    let enc = block_on(aws.s3.get_bucket_encryption().bucket(&bucket).send()).unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let pab = block_on(aws.s3.get_public_access_block().bucket(&bucket).send()).unwrap();
    let c = pab.public_access_block_configuration().unwrap();
    assert_eq!([c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()], [Some(true); 4]);
    let versioning = block_on(aws.s3.get_bucket_versioning().bucket(&bucket).send()).unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let lc = block_on(aws.s3.get_bucket_lifecycle_configuration().bucket(&bucket).send()).unwrap();
    assert_eq!(lc.rules()[0].expiration().and_then(|e| e.days()), Some(30));
    assert_eq!(lc.rules()[0].noncurrent_version_expiration().and_then(|e| e.noncurrent_days()), Some(30));

    let bp = block_on(inline_policy(&aws, &build_role, "build"));
    assert_eq!(statement(&bp, "Push")["Resource"], repo_arn.as_str(), "the build pushes to the one repository");
    assert_eq!(statement(&bp, "RegistryLogin")["Action"], "ecr:GetAuthorizationToken");
    assert_eq!(statement(&bp, "Logs")["Resource"], format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/cxflow/build/{NAME}:*"));
    assert_eq!(statement(&bp, "Artifacts")["Resource"], format!("arn:aws:s3:::{bucket}/*"));
    let pp = block_on(inline_policy(&aws, &pipeline_role, "pipeline"));
    assert_eq!(statement(&pp, "Build")["Resource"], format!("arn:aws:codebuild:us-east-1:{ACCOUNT}:project/{NAME}"));
    assert_eq!(statement(&pp, "Source")["Resource"], CONNECTION);
    assert_eq!(statement(&pp, "Deploy")["Resource"], format!("arn:aws:ecs:us-east-1:{ACCOUNT}:service/cruddur/backend-flask"));
    assert_eq!(statement(&pp, "PassTaskRoles")["Resource"], serde_json::json!([EXECUTION_ROLE, TASK_ROLE]));
    assert_eq!(statement(&pp, "PassTaskRoles")["Condition"]["StringEquals"]["iam:PassedToService"], "ecs-tasks.amazonaws.com");
    let trust = block_on(aws.iam.get_role().role_name(pipeline_role.rsplit('/').next().unwrap()).send()).unwrap();
    let trust = cxflow::children::iam::parse_policy(trust.role().unwrap().assume_role_policy_document().unwrap()).unwrap();
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "codepipeline.amazonaws.com");
    let roles: Vec<String> = [&build_role, &pipeline_role].iter().map(|a| a.rsplit('/').next().unwrap().to_string()).collect();
    let policies = block_on(common::iam::policies(&aws, &roles));
    assert!(policies.iter().all(|r| r.managed.is_empty() && r.inline.len() == 1), "one inline policy each, nothing attached: {policies:?}");
    let found = common::iam::findings(&policies);
    assert!(found.is_empty(), "parliament and the IAM lint: {found:#?}");
    step("every child read back; parliament clean");

    // 3. a new timeout is one UpdateProject, nothing replaced
    wd.write("main.tf", &config(&repo_arn, 45, "prod"));
    let plan = wd.plan_code();
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("1 to change") && !plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    proxy.reset();
    wd.apply().expect_ok("apply of the timeout");
    assert_eq!(proxy.count("codebuild:UpdateProject"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("codebuild:CreateProject") + proxy.count("codebuild:DeleteProject") + proxy.count("codepipeline:UpdatePipeline"), 0, "{}", proxy.stats());
    let projects = block_on(aws.codebuild.batch_get_projects().names(NAME).send()).unwrap();
    assert_eq!(projects.projects()[0].timeout_in_minutes(), Some(45));
    assert_eq!(children(&wd, "cxflow_build_pipeline", "backend"), rec, "same children");
    assert_eq!(wd.plan_code().code, 0);
    step("timeout: one UpdateProject");

    // 4. a new branch is one UpdatePipeline
    wd.write("main.tf", &config(&repo_arn, 45, "main"));
    proxy.reset();
    wd.apply().expect_ok("apply of the branch");
    assert_eq!(proxy.count("codepipeline:UpdatePipeline"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("codepipeline:CreatePipeline") + proxy.count("codepipeline:DeletePipeline") + proxy.count("codebuild:UpdateProject"), 0, "{}", proxy.stats());
    let p = block_on(aws.codepipeline.get_pipeline().name(NAME).send()).unwrap().pipeline.unwrap();
    assert_eq!(action_config(&p, "Source")["BranchName"], "main");
    assert_eq!(children(&wd, "cxflow_build_pipeline", "backend"), rec, "same children");
    assert_eq!(wd.plan_code().code, 0);
    step("branch: one UpdatePipeline");

    // 5. the public access block removed out of band is reported and put back
    block_on(aws.s3.delete_public_access_block().bucket(&bucket).send()).unwrap();
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    let drift = wd.state_attrs("cxflow_build_pipeline", "backend")["drift"].clone();
    assert!(drift["artifact_bucket"].as_str().is_some_and(|d| d.contains("artifact_bucket.block_public_access")), "{drift}");
    proxy.reset();
    wd.apply().expect_ok("repair");
    let pab = block_on(aws.s3.get_public_access_block().bucket(&bucket).send()).unwrap();
    assert_eq!(pab.public_access_block_configuration().unwrap().block_public_policy(), Some(true));
    // The proxy names S3's REST calls by method and path: the one PUT is PutPublicAccessBlock.
    assert_eq!(proxy.count("s3:PUT /{id}/"), 1, "one write repairs it: {}", proxy.stats());
    assert_eq!(wd.plan_code().code, 0);
    step("public access block drift repaired");

    // 6. import by pipeline name, then an empty plan
    wd.tf(&["state", "rm", "cxflow_build_pipeline.backend"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_build_pipeline.backend", NAME]).expect_ok("import");
    let plan = wd.plan_code();
    assert_eq!(plan.code, 0, "plan after import is empty:\n{}", plan.all());
    assert_eq!(children(&wd, "cxflow_build_pipeline", "backend"), rec, "import records the same children");
    step("import");

    // 7. destroy with artifacts (two versions of one, and a delete marker) leaves nothing
    for body in ["v1", "v2"] {
        block_on(aws.s3.put_object().bucket(&bucket).key("build/imagedefinitions.json").body(body.as_bytes().to_vec().into()).send()).unwrap();
    }
    block_on(aws.s3.put_object().bucket(&bucket).key("source/app.zip").body(b"zip".to_vec().into()).send()).unwrap();
    block_on(aws.s3.delete_object().bucket(&bucket).key("source/app.zip").send()).unwrap();
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what was there before");
    step("destroy with artifacts");
}
