//! `cxflow_build_pipeline`: seed 004's CI/CD pipeline as one resource — a
//! CodePipeline (GitHub source through a CodeStar connection → CodeBuild
//! build → optional manual approval → ECS deploy), the CodeBuild project and
//! its log group, an encrypted, private, versioned artifact bucket with a
//! lifecycle, and two least-privilege service roles.
//!
//! This file is the whole resource: schema, cross-attribute checks, the
//! graph, outputs and import. The composite driver does the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::aws::Aws;
use crate::children::codebuild::{BuildEnvironment, BuildSource, ProjectNode};
use crate::children::codepipeline::{Action, PipelineNode, Stage};
use crate::children::iam::{RoleNode, service_trust};
use crate::children::logs::{LogGroupNode, RETENTION_DAYS};
use crate::children::s3::BucketNode;
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren};
use crate::engine::names::bounded;
use crate::engine::{Graph, Node};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};

pub const TYPE_NAME: &str = "cxflow_build_pipeline";
const COMPUTE_TYPES: &[&str] = &["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE"];
const ENVIRONMENT_TYPES: &[&str] = &["LINUX_CONTAINER", "ARM_CONTAINER"];
const NAME_RE: &str = "[A-Za-z0-9][A-Za-z0-9_-]{1,99}";
const CONNECTION_RE: &str = r"arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const IMAGE_RE: &str = r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?";
/// The artifact the source stage hands to the build, and the build to the deploy.
const SOURCE_ARTIFACT: &str = "source";
const BUILD_ARTIFACT: &str = "build";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BuildPipeline {
    pub name: String,
    pub source: Option<SourceCfg>,
    pub build: Option<BuildCfg>,
    pub deploy_ecs: Option<DeployEcs>,
    pub manual_approval: Option<bool>,
    pub artifact_expiration_days: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    // computed
    pub arn: Option<String>,
    pub console_url: Option<String>,
    pub build_project_name: Option<String>,
    pub artifact_bucket: Option<String>,
    pub build_role_arn: Option<String>,
    pub pipeline_role_arn: Option<String>,
    pub log_group_name: Option<String>,
    pub start_command: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceCfg {
    pub connection_arn: String,
    pub repository: String,
    pub branch: String,
    pub detect_changes: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BuildCfg {
    pub buildspec: Option<String>,
    pub image: String,
    pub compute_type: Option<String>,
    pub environment_type: Option<String>,
    pub privileged: Option<bool>,
    pub timeout_minutes: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub repository_arn: String,
    pub log_retention_days: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DeployEcs {
    pub cluster: String,
    pub service: String,
    pub file: Option<String>,
    pub pass_role_arns: Option<Vec<String>>,
}

fn log_group_of(name: &str) -> String {
    format!("/cxflow/build/{name}")
}

fn role_name(name: &str, suffix: &str) -> String {
    bounded(name, &format!("{TYPE_NAME}/{name}"), suffix, 64, |c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Bucket names are global: the account and region make them unique, the hash the pipeline's exact name.
fn bucket_name(name: &str, account: &str, region: &str) -> String {
    bounded(&name.to_ascii_lowercase(), &format!("{TYPE_NAME}/{name}"), &format!("-{account}-{region}"), 63, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn start_command(name: &str) -> String {
    format!("aws codepipeline start-pipeline-execution --name {name}")
}

/// The pipeline name of an import ID (a name or a pipeline ARN) of a pipeline composite.
pub(crate) fn pipeline_import_name(id: &str, type_name: &str) -> Result<String, Diags> {
    let name = id.trim().rsplit(':').next().unwrap_or_default().to_string();
    if !regex::Regex::new(&format!("^{NAME_RE}$")).map(|r| r.is_match(&name)).unwrap_or(false) {
        return Err(Diagnostic::error("Invalid import ID", format!("Import a {type_name} by its pipeline name or ARN, not {id:?}.")).into());
    }
    Ok(name)
}

impl SourceCfg {
    /// The `source` block of a pipeline's CodeStar source action, as import reads it back.
    pub(crate) fn from_action(a: Option<&Action>) -> SourceCfg {
        let conf = |k: &str| a.and_then(|a| a.configuration.get(k).cloned()).unwrap_or_default();
        SourceCfg {
            connection_arn: conf("ConnectionArn"),
            repository: conf("FullRepositoryId"),
            branch: conf("BranchName"),
            detect_changes: Some(conf("DetectChanges") != "false"),
        }
    }
}

pub(crate) fn console_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let (region, name) = (parts.get(3)?, parts.get(5)?);
    Some(format!("https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{name}/view?region={region}"))
}

fn schema_block() -> Block {
    let source = Block::new(vec![
        Attribute::new("connection_arn", Type::String)
            .required()
            .check(Check::Matches(CONNECTION_RE, "a CodeStar (or CodeConnections) connection ARN, `arn:aws:codestar-connections:<region>:<account>:connection/<uuid>`"))
            .describe("The GitHub connection, made once in the console (moto and Terraform cannot complete its OAuth handshake)."),
        Attribute::new("repository", Type::String)
            .required()
            .check(Check::Matches(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}", "`owner/name`"))
            .describe("The repository, `owner/name`."),
        Attribute::new("branch", Type::String)
            .required()
            .check(Check::Matches(r"[^\s~^:?*\[\\]{1,255}", "a Git branch name (no spaces or ~ ^ : ? * [ \\)"))
            .describe("The branch the pipeline builds."),
        Attribute::new("detect_changes", Type::Bool).default(Value::Bool(true)).describe("Start the pipeline when the branch changes."),
    ])
    .describe("Where the code comes from: a GitHub (version 2) source through a CodeStar connection.");
    let build = Block::new(vec![
        Attribute::new("buildspec", Type::String)
            .default(Value::string("buildspec.yml"))
            .check(Check::Len(1, 255))
            .describe("Path of the buildspec in the repository (it stays the user's file)."),
        Attribute::new("image", Type::String)
            .required()
            .check(Check::Matches(IMAGE_RE, "a container image name, e.g. `aws/codebuild/amazonlinux2-x86_64-standard:4.0`"))
            .describe("The build image."),
        Attribute::new("compute_type", Type::String).default(Value::string("BUILD_GENERAL1_SMALL")).check(Check::OneOf(COMPUTE_TYPES)).describe("Build compute."),
        Attribute::new("environment_type", Type::String).default(Value::string("LINUX_CONTAINER")).check(Check::OneOf(ENVIRONMENT_TYPES)).describe("Build container type."),
        Attribute::new("privileged", Type::Bool).default(Value::Bool(false)).describe("Privileged mode, needed to build Docker images."),
        Attribute::new("timeout_minutes", Type::Number).default(Value::int(60)).check(Check::Int(5, 2160)).describe("Build timeout in minutes."),
        Attribute::new("environment", Type::map(Type::String))
            .optional()
            .check(Check::Keys(Box::new(Check::Matches("[A-Za-z_][A-Za-z0-9_]{0,127}", "an environment variable name"))))
            .describe("Plain-text build environment variables (visible in CodeBuild: no secrets)."),
        Attribute::new("repository_arn", Type::String)
            .required()
            .check(Check::Arn { service: "ecr", resource: "repository/" })
            .describe("The ECR repository the build pushes to; the build role may push nowhere else."),
        Attribute::new("log_retention_days", Type::Number).default(Value::int(30)).check(Check::IntIn(RETENTION_DAYS)).describe("Days the build log group keeps logs."),
    ])
    .describe("The CodeBuild project that builds and pushes the image.");
    let deploy = Block::new(vec![
        Attribute::new("cluster", Type::String)
            .required()
            .check(Check::Matches("[A-Za-z0-9_-]{1,255}", "an ECS cluster name (letters, digits, `-`, `_`)"))
            .describe("ECS cluster name (a `cxflow_ecs_fargate_service`'s `cluster`)."),
        Attribute::new("service", Type::String)
            .required()
            .check(Check::Matches("[A-Za-z0-9_-]{1,255}", "an ECS service name (letters, digits, `-`, `_`)"))
            .describe("ECS service name (a `cxflow_ecs_fargate_service`'s `name`)."),
        Attribute::new("file", Type::String)
            .default(Value::string("imagedefinitions.json"))
            .check(Check::Matches(r"[A-Za-z0-9_./-]{1,250}\.json", "a `.json` file in the build's output"))
            .describe("The image definitions file the build writes."),
        Attribute::new("pass_role_arns", Type::set(Type::String))
            .optional()
            .check(Check::Items(0, 10))
            .check(Check::each(Check::Arn { service: "iam", resource: "role/" }))
            .describe("The service's task and execution roles, which the pipeline may pass to ECS tasks (and no others)."),
    ])
    .describe("Deploy the build's image to an ECS service (the Amazon ECS deploy action).");
    Block::new(vec![
        Attribute::new("name", Type::String)
            .required()
            .force_new()
            .check(Check::Matches(NAME_RE, "2 to 100 letters, digits, `-` and `_`, starting with a letter or digit"))
            .describe("Name of the pipeline and of its build project."),
        Attribute::new("manual_approval", Type::Bool).default(Value::Bool(false)).describe("Add a manual approval stage before the deploy."),
        Attribute::new("artifact_expiration_days", Type::Number)
            .default(Value::int(30))
            .check(Check::Int(1, 3650))
            .describe("Days pipeline artifacts (and their replaced versions) are kept in the artifact bucket."),
        Attribute::new("arn", Type::String).computed().describe("ARN of the pipeline."),
        Attribute::new("console_url", Type::String).computed().describe("The pipeline in the AWS console."),
        Attribute::new("build_project_name", Type::String).computed().describe("Name of the CodeBuild project."),
        Attribute::new("artifact_bucket", Type::String).computed().describe("Name of the artifact bucket."),
        Attribute::new("build_role_arn", Type::String).computed().describe("ARN of the CodeBuild service role."),
        Attribute::new("pipeline_role_arn", Type::String).computed().describe("ARN of the pipeline's service role."),
        Attribute::new("log_group_name", Type::String).computed().describe("The build log group, `/cxflow/build/<name>`."),
        Attribute::new("start_command", Type::String).computed().describe("The AWS CLI command that starts a run of the pipeline."),
    ])
    .with_blocks(vec![
        NestedBlock::new("source", Nesting::Single, source).min(1).max(1),
        NestedBlock::new("build", Nesting::Single, build).min(1).max(1),
        NestedBlock::new("deploy_ecs", Nesting::Single, deploy),
    ])
    .describe(
        "A CI/CD pipeline: a GitHub source through a CodeStar connection, a CodeBuild build that pushes an image to one ECR repository, \
         an optional manual approval and an Amazon ECS deploy, with an encrypted, private artifact bucket and least-privilege service roles.",
    )
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let approval = c.get("manual_approval");
    if approval.as_bool() == Some(true) && c.get("deploy_ecs").is_null() {
        d.attr_error(
            Path::attr("manual_approval"),
            "Approval without a deploy",
            "manual_approval adds a stage before the deploy; set a deploy_ecs block, or remove manual_approval.",
        );
    }
    let b = c.get("build");
    // Unset, the environment type is its default (validation runs before defaults are filled in).
    let kind = if b.get("environment_type").is_null() { Some("LINUX_CONTAINER") } else { b.get("environment_type").as_str() };
    if let (Some(image), Some(kind)) = (b.get("image").as_str(), kind) {
        let arm_image = image.contains("aarch64") || image.contains("arm64");
        if image.starts_with("aws/codebuild/") && arm_image != (kind == "ARM_CONTAINER") {
            d.attr_error(
                Path::attr("build").then_attr("environment_type"),
                "Image and environment type differ",
                format!(
                    "{image} is a CodeBuild {} image; environment_type {kind} runs {} images.",
                    if arm_image { "ARM" } else { "x86" },
                    if kind == "ARM_CONTAINER" { "ARM" } else { "x86" }
                ),
            );
        }
    }
    if let (Some(repo), Some(conn)) = (b.get("repository_arn").as_str(), c.get("source").get("connection_arn").as_str()) {
        let part = |arn: &str, i: usize| arn.split(':').nth(i).map(str::to_string);
        if part(repo, 1) != part(conn, 1) {
            d.attr_error(Path::attr("build").then_attr("repository_arn"), "Another partition", "The repository and the connection must be in the same AWS partition.");
        }
    }
    d
}

fn policy(statements: Vec<Json>) -> Json {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What the CodeBuild role may do: its own log group, the artifact bucket, and pushing to one repository.
fn build_policy(c: &Common, name: &str, bucket: &str, repository_arn: &str) -> Json {
    let p = c.partition();
    policy(vec![
        json!({"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
               "Resource": format!("arn:{p}:logs:{}:{}:log-group:{}:*", c.region, c.account, log_group_of(name))}),
        json!({"Sid": "Artifacts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], "Resource": format!("arn:{p}:s3:::{bucket}/*")}),
        json!({"Sid": "ArtifactBucket", "Effect": "Allow", "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"], "Resource": format!("arn:{p}:s3:::{bucket}")}),
        json!({"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}),
        json!({"Sid": "Push", "Effect": "Allow",
               "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
               "Resource": repository_arn}),
    ])
}

/// What the pipeline role may do: start this build, use this connection, the artifact bucket, deploy this service.
fn pipeline_policy(c: &Common, cfg: &BuildPipeline, bucket: &str, project_arn: &str) -> Json {
    let p = c.partition();
    let src = cfg.source.clone().unwrap_or_default();
    let service = if src.connection_arn.contains(":codeconnections:") { "codeconnections" } else { "codestar-connections" };
    let mut st = vec![
        json!({"Sid": "Build", "Effect": "Allow", "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"], "Resource": project_arn}),
        json!({"Sid": "Source", "Effect": "Allow", "Action": format!("{service}:UseConnection"), "Resource": src.connection_arn}),
        json!({"Sid": "Artifacts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], "Resource": format!("arn:{p}:s3:::{bucket}/*")}),
        json!({"Sid": "ArtifactBucket", "Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:GetBucketVersioning"], "Resource": format!("arn:{p}:s3:::{bucket}")}),
    ];
    if let Some(d) = &cfg.deploy_ecs {
        let (r, a) = (&c.region, &c.account);
        st.push(json!({"Sid": "Deploy", "Effect": "Allow", "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                       "Resource": format!("arn:{p}:ecs:{r}:{a}:service/{}/{}", d.cluster, d.service)}));
        st.push(json!({"Sid": "Tasks", "Effect": "Allow", "Action": "ecs:DescribeTasks", "Resource": format!("arn:{p}:ecs:{r}:{a}:task/{}/*", d.cluster)}));
        // The deploy registers a revision of whatever family the service runs, which the configuration does not name.
        st.push(json!({"Sid": "RegisterTaskDefinitions", "Effect": "Allow", "Action": "ecs:RegisterTaskDefinition", "Resource": format!("arn:{p}:ecs:{r}:{a}:task-definition/*")}));
        // DescribeTaskDefinition has no resource-level permissions.
        st.push(json!({"Sid": "DescribeTaskDefinitions", "Effect": "Allow", "Action": "ecs:DescribeTaskDefinition", "Resource": "*"}));
        let mut roles = d.pass_role_arns.clone().unwrap_or_default();
        roles.sort();
        if !roles.is_empty() {
            st.push(json!({"Sid": "PassTaskRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": roles,
                           "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}}));
        }
    }
    policy(st)
}

fn stages(cfg: &BuildPipeline, project: &str) -> Vec<Stage> {
    let src = cfg.source.clone().unwrap_or_default();
    let action = |name: &str, category: &str, provider: &str, config: Vec<(&str, String)>, input: Option<&str>, output: Option<&str>| Action {
        name: name.into(),
        category: category.into(),
        owner: "AWS".into(),
        provider: provider.into(),
        version: "1".into(),
        configuration: config.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        input_artifacts: input.map(|i| vec![i.to_string()]).unwrap_or_default(),
        output_artifacts: output.map(|o| vec![o.to_string()]).unwrap_or_default(),
        run_order: 1,
        namespace: None,
    };
    let mut v = vec![
        Stage {
            name: "Source".into(),
            actions: vec![action(
                "Source",
                "Source",
                "CodeStarSourceConnection",
                vec![
                    ("ConnectionArn", src.connection_arn.clone()),
                    ("FullRepositoryId", src.repository.clone()),
                    ("BranchName", src.branch.clone()),
                    ("DetectChanges", src.detect_changes.unwrap_or(true).to_string()),
                    ("OutputArtifactFormat", "CODE_ZIP".into()),
                ],
                None,
                Some(SOURCE_ARTIFACT),
            )],
        },
        Stage {
            name: "Build".into(),
            actions: vec![action("Build", "Build", "CodeBuild", vec![("ProjectName", project.to_string())], Some(SOURCE_ARTIFACT), Some(BUILD_ARTIFACT))],
        },
    ];
    if let Some(d) = &cfg.deploy_ecs {
        if cfg.manual_approval == Some(true) {
            v.push(Stage { name: "Approve".into(), actions: vec![action("Approve", "Approval", "Manual", vec![], None, None)] });
        }
        let file = d.file.clone().unwrap_or_else(|| "imagedefinitions.json".into());
        v.push(Stage {
            name: "Deploy".into(),
            actions: vec![action(
                "Deploy",
                "Deploy",
                "ECS",
                vec![("ClusterName", d.cluster.clone()), ("ServiceName", d.service.clone()), ("FileName", file)],
                Some(BUILD_ARTIFACT),
                None,
            )],
        });
    }
    v
}

fn build_graph(cfg: &BuildPipeline, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let name = &cfg.name;
    let b = cfg.build.clone().unwrap_or_default();
    let bucket = bucket_name(name, &c.account, &c.region);
    let account_only = Some(json!({"StringEquals": {"aws:SourceAccount": c.account}}));
    let role = |key: &str, suffix: &str, service: &str, what: &str, inline: (&str, Json)| RoleNode {
        c: c.clone(),
        key: key.into(),
        name: role_name(name, suffix),
        path: "/".into(),
        description: format!("{what} of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
        trust: service_trust(service, account_only.clone()),
        managed: Vec::new(),
        inline: BTreeMap::from([(inline.0.to_string(), inline.1)]),
        wanted: true,
    };
    let project = ProjectNode {
        c: c.clone(),
        key: "project".into(),
        name: name.clone(),
        description: format!("Build of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
        source: BuildSource { kind: "CODEPIPELINE".into(), location: None, buildspec: Some(b.buildspec.clone().unwrap_or_else(|| "buildspec.yml".into())), connection: None },
        artifacts: "CODEPIPELINE".into(),
        environment: BuildEnvironment {
            kind: b.environment_type.clone().unwrap_or_else(|| "LINUX_CONTAINER".into()),
            image: b.image.clone(),
            compute_type: b.compute_type.clone().unwrap_or_else(|| "BUILD_GENERAL1_SMALL".into()),
            privileged: b.privileged.unwrap_or(false),
            variables: b.environment.clone().unwrap_or_default(),
            pull_with_role: false,
        },
        service_role: Ref::dep("build_role"),
        timeout_minutes: b.timeout_minutes.unwrap_or(60),
        queued_timeout_minutes: 480,
        log_group: Ref::dep("build_logs"),
        log_stream: name.clone(),
    };
    let project_arn = project.arn();
    let nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(BucketNode {
            c: c.clone(),
            key: "artifact_bucket".into(),
            name: bucket.clone(),
            expire_days: cfg.artifact_expiration_days.unwrap_or(30),
            noncurrent_days: cfg.artifact_expiration_days.unwrap_or(30),
            policy: None,
        }),
        Box::new(LogGroupNode { c: c.clone(), key: "build_logs".into(), name: log_group_of(name), retention_days: b.log_retention_days.unwrap_or(30), retain: false }),
        Box::new(role("build_role", "-build", "codebuild.amazonaws.com", "CodeBuild service role", ("build", build_policy(&c, name, &bucket, &b.repository_arn)))),
        Box::new(role("pipeline_role", "-pipeline", "codepipeline.amazonaws.com", "CodePipeline service role", ("pipeline", pipeline_policy(&c, cfg, &bucket, &project_arn)))),
        Box::new(project),
        Box::new(PipelineNode {
            c: c.clone(),
            key: "pipeline".into(),
            name: name.clone(),
            role: Ref::dep("pipeline_role"),
            bucket: Ref::dep("artifact_bucket"),
            stages: stages(cfg, name),
            after: vec!["project".into()],
        }),
    ];
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

fn opt(v: Option<String>) -> Value {
    v.map(Value::string).unwrap_or(Value::Null)
}

/// A statement's resources in an observed policy document, by Sid.
pub(crate) fn statement_resources(policies: Option<&Json>, policy: &str, sid: &str) -> Vec<String> {
    let st = policies.and_then(|p| p.get(policy)).and_then(|d| d.get("Statement")).and_then(Json::as_array).and_then(|a| a.iter().find(|s| s.get("Sid") == Some(&json!(sid))));
    match st.and_then(|s| s.get("Resource")) {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

pub struct BuildPipelineResource;

#[async_trait]
impl Composite<Aws> for BuildPipelineResource {
    type State = BuildPipeline;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

    fn block() -> Block {
        schema_block()
    }
    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }
    fn derived(p: &mut Value) {
        let name = p.get("name").as_str().map(str::to_string);
        p.set_attr("build_project_name", name.clone().map(Value::string).unwrap_or(Value::Unknown));
        p.set_attr("log_group_name", name.as_deref().map(|n| Value::string(log_group_of(n))).unwrap_or(Value::Unknown));
        p.set_attr("start_command", name.as_deref().map(|n| Value::string(start_command(n))).unwrap_or(Value::Unknown));
    }
    fn owner_name(s: &BuildPipeline) -> String {
        s.name.clone()
    }
    fn id(s: &BuildPipeline) -> String {
        s.name.clone()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("name", "The pipeline's name.")]
    }
    async fn graph(s: &BuildPipeline, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        let arn = pc.identity("pipeline");
        let url = arn.as_str().and_then(console_url).map(Value::string).unwrap_or(Value::Unknown);
        p.set_attr("arn", arn);
        p.set_attr("console_url", url);
        p.set_attr("artifact_bucket", pc.identity("artifact_bucket"));
        p.set_attr("build_role_arn", pc.identity("build_role"));
        p.set_attr("pipeline_role_arn", pc.identity("pipeline_role"));
    }
    fn outputs(st: &mut Value, _cfg: &BuildPipeline, kids: &Kids<'_>) {
        let arn = kids.id("pipeline");
        st.set_attr("console_url", opt(arn.as_deref().and_then(console_url)));
        st.set_attr("arn", opt(arn));
        st.set_attr("artifact_bucket", opt(kids.id("artifact_bucket")));
        st.set_attr("build_role_arn", opt(kids.id("build_role")));
        st.set_attr("pipeline_role_arn", opt(kids.id("pipeline_role")));
    }
    fn import_seed(id: &str) -> Result<BuildPipeline, Diags> {
        Ok(BuildPipeline { name: pipeline_import_name(id, TYPE_NAME)?, ..Default::default() })
    }
    async fn from_observed(aws: &Aws, seed: &BuildPipeline, kids: &Kids<'_>) -> Result<BuildPipeline, Diags> {
        let mut cfg = seed.clone();
        let Some(stages) = kids.field("pipeline", "stages").and_then(|s| serde_json::from_value::<Vec<Stage>>(s.clone()).ok()) else { return Ok(cfg) };
        let action = |stage: &str| stages.iter().find(|s| s.name == stage).and_then(|s| s.actions.first()).cloned();
        let conf = |a: &Option<Action>, k: &str| a.as_ref().and_then(|a| a.configuration.get(k).cloned()).unwrap_or_default();
        cfg.source = Some(SourceCfg::from_action(action("Source").as_ref()));
        let pipeline_policies = kids.field("pipeline_role", "inline_policies");
        cfg.deploy_ecs = action("Deploy").map(|d| {
            let a = Some(d);
            let mut roles = statement_resources(pipeline_policies, "pipeline", "PassTaskRoles");
            roles.sort();
            DeployEcs {
                cluster: conf(&a, "ClusterName"),
                service: conf(&a, "ServiceName"),
                file: Some(conf(&a, "FileName")),
                pass_role_arns: Some(roles).filter(|r| !r.is_empty()),
            }
        });
        cfg.manual_approval = Some(action("Approve").is_some());
        if let Some(p) = kids.observed("project") {
            let env: Option<BuildEnvironment> = p.get("environment").and_then(|e| serde_json::from_value(e.clone()).ok());
            let env = env.unwrap_or(BuildEnvironment {
                kind: String::new(),
                image: String::new(),
                compute_type: String::new(),
                privileged: false,
                variables: BTreeMap::new(),
                pull_with_role: false,
            });
            let repo = statement_resources(kids.field("build_role", "inline_policies"), "build", "Push").into_iter().next().unwrap_or_default();
            cfg.build = Some(BuildCfg {
                buildspec: p.get("source").and_then(|s| s.get("buildspec")).and_then(Json::as_str).map(str::to_string),
                image: env.image,
                compute_type: Some(env.compute_type),
                environment_type: Some(env.kind),
                privileged: Some(env.privileged),
                timeout_minutes: p.get("timeout_minutes").and_then(Json::as_i64),
                environment: Some(env.variables).filter(|v| !v.is_empty()),
                repository_arn: repo,
                log_retention_days: kids.field("build_logs", "retention_in_days").and_then(Json::as_i64),
            });
        }
        cfg.artifact_expiration_days = kids.field("artifact_bucket", "lifecycle").and_then(|l| l.get("expire_days")).and_then(Json::as_i64);
        cfg.tags = Some(kids.user_tags("pipeline", &aws.default_tags)).filter(|t| !t.is_empty());
        Ok(cfg)
    }
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<BuildPipelineResource>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Arc<Common> {
        Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "p"), tags: Default::default(), region: "eu-west-2".into(), account: "123456789012".into() })
    }

    fn cfg() -> BuildPipeline {
        BuildPipeline {
            name: "cruddur-backend-fargate".into(),
            source: Some(SourceCfg {
                connection_arn: "arn:aws:codestar-connections:eu-west-2:123456789012:connection/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f".into(),
                repository: "example-org/aws-bootcamp-cruddur-2023".into(),
                branch: "prod".into(),
                detect_changes: Some(true),
            }),
            build: Some(BuildCfg {
                image: "aws/codebuild/amazonlinux2-x86_64-standard:4.0".into(),
                repository_arn: "arn:aws:ecr:eu-west-2:123456789012:repository/backend-flask".into(),
                ..Default::default()
            }),
            deploy_ecs: Some(DeployEcs {
                cluster: "cruddur".into(),
                service: "backend-flask".into(),
                file: None,
                pass_role_arns: Some(vec!["arn:aws:iam::123456789012:role/t".into()]),
            }),
            manual_approval: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_graph_orders_roles_and_bucket_before_project_and_pipeline() {
        let g = build_graph(&cfg(), common()).unwrap();
        assert_eq!(g.wanted_keys().len(), 6);
        let names: Vec<String> = stages(&cfg(), "p").into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["Source", "Build", "Approve", "Deploy"]);
        let mut no_deploy = cfg();
        no_deploy.deploy_ecs = None;
        assert_eq!(stages(&no_deploy, "p").len(), 2, "no approval without a deploy");
    }

    #[test]
    fn names_fit_aws_limits() {
        let long = "a".repeat(100);
        let b = bucket_name(&format!("{long}_X"), "123456789012", "ap-southeast-2");
        assert!(b.len() <= 63 && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{b}");
        assert_ne!(bucket_name("Pipe", "1", "r"), bucket_name("pipe", "1", "r"), "case-distinct pipelines get distinct buckets");
        assert!(role_name(&long, "-pipeline").len() <= 64);
        assert_eq!(
            console_url("arn:aws:codepipeline:eu-west-2:123456789012:p").unwrap(),
            "https://eu-west-2.console.aws.amazon.com/codesuite/codepipeline/pipelines/p/view?region=eu-west-2"
        );
    }

    #[test]
    fn the_pipeline_policy_passes_only_the_named_roles_to_ecs_tasks() {
        let p = pipeline_policy(&common(), &cfg(), "b", "arn:aws:codebuild:eu-west-2:123456789012:project/p");
        let pass = p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "PassTaskRoles").unwrap();
        assert_eq!(pass["Resource"], json!(["arn:aws:iam::123456789012:role/t"]));
        assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "ecs-tasks.amazonaws.com");
        let deploy = p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "Deploy").unwrap();
        assert_eq!(deploy["Resource"], "arn:aws:ecs:eu-west-2:123456789012:service/cruddur/backend-flask");
    }
}
