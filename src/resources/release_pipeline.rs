//! `cxflow_release_pipeline`: seed 001's release pipeline as one resource — a
//! CodePipeline that builds one artifact per `builders` entry, GPG-signs every
//! artifact with a key and passphrase kept in Secrets Manager and publishes
//! artifacts and signatures to a release bucket; the CodeBuild projects, one
//! least-privilege role each, the log group and the artifact bucket.
//!
//! Adding a builder is adding a map entry: its project, role, Build action,
//! output artifact, variable namespace and the signer's input and environment
//! variable all follow from it (the seed's six template edits).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::aws::Aws;
use crate::children::cloudtrail::{EventSelector, FieldSelector, TrailNode};
use crate::children::codebuild::{BuildEnvironment, BuildSource, ProjectNode};
use crate::children::codepipeline::{Action, PipelineNode, Stage};
use crate::children::events::ScheduleNode;
use crate::children::iam::{RoleNode, service_trust};
use crate::children::logs::LogGroupNode;
use crate::children::platform::{RepositoryNode, RepositorySpec, keep_latest_policy};
use crate::children::s3::BucketNode;
use crate::children::secrets::{SecretNode, WriteOnly, written_version};
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren, Unwanted};
use crate::engine::names::bounded;
use crate::engine::{Graph, Node};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};
use crate::resources::build_pipeline::{SourceCfg, console_url, pipeline_import_name, statement_resources};
use crate::resources::image_registry::Level;

pub const TYPE_NAME: &str = "cxflow_release_pipeline";
const RETENTION_DAYS: &[i64] = &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const COMPUTE_TYPES: &[&str] = &["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE"];
const ENVIRONMENT_TYPES: &[&str] = &["LINUX_CONTAINER", "ARM_CONTAINER"];
const NAME_RE: &str = "[A-Za-z0-9][A-Za-z0-9_-]{1,79}";
const BUILDER_RE: &str = "[a-z][a-z0-9_]{0,19}";
const CONNECTION_RE: &str = r"arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const IMAGE_RE: &str = r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?";
const DEFAULT_IMAGE: &str = "aws/codebuild/amazonlinux2-x86_64-standard:5.0";
/// EventBridge's schedule expressions (six cron fields, or a rate), or empty.
const SCHEDULE_RE: &str = r"|cron\(\S+ \S+ \S+ \S+ \S+ \S+\)|rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)";
/// Secrets Manager's limit on a secret string, in bytes.
const SECRET_MAX: usize = 65536;
const SECRET_RE: &str = r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}";
/// A CodeBuild action takes at most five input artifacts, and the signer takes one per builder.
const MAX_BUILDERS: usize = 5;
const SOURCE_ARTIFACT: &str = "source";
const SIGNED_ARTIFACT: &str = "signed";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleasePipeline {
    pub name: String,
    pub source: Option<SourceCfg>,
    pub builders: Option<BTreeMap<String, BuilderCfg>>,
    pub signing: Option<SigningCfg>,
    pub publish: Option<PublishCfg>,
    pub signing_image: Option<SigningImageCfg>,
    pub log_retention_days: Option<i64>,
    pub artifact_expiration_days: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    pub audit: Option<AuditCfg>,
    // computed
    pub arn: Option<String>,
    pub console_url: Option<String>,
    pub artifact_bucket: Option<String>,
    pub log_group_name: Option<String>,
    pub builder_projects: Option<BTreeMap<String, String>>,
    pub signer_project: Option<String>,
    pub copier_project: Option<String>,
    pub signer_environment: Option<String>,
    pub signing_secret_arns: Option<BTreeMap<String, String>>,
    pub signer_role_arn: Option<String>,
    pub pipeline_role_arn: Option<String>,
    pub signing_image_uri: Option<String>,
    pub audit_trail_arn: Option<String>,
    pub audit_log_group_name: Option<String>,
    pub audit_bucket: Option<String>,
    pub audit_query: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SigningImageCfg {
    pub dockerfile: Option<String>,
    pub schedule: Option<String>,
}

/// Images the managed signing image's repository keeps (besides `latest`).
const SIGNING_IMAGES_KEPT: i64 = 5;
const DEFAULT_DOCKERFILE: &str = "Dockerfile.signer";

/// The managed signing image's repository (ECR names are lowercase).
fn signing_repository(name: &str) -> String {
    format!("{}-signer", name.to_ascii_lowercase())
}

fn signing_image_project(name: &str) -> String {
    format!("{name}-signer-image")
}

fn signing_image_uri(c: &Common, name: &str) -> String {
    format!("{}/{}:latest", crate::engine::names::ecr_host(&c.account, &c.region), signing_repository(name))
}

/// The image project's buildspec: build the Dockerfile from the source and push it as `latest`.
const SIGNING_IMAGE_BUILDSPEC: &str = r#"version: 0.2
phases:
  pre_build:
    commands:
      - aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${REPOSITORY_URI%%/*}"
  build:
    commands:
      - docker build -f "$DOCKERFILE" -t "$REPOSITORY_URI:latest" .
      - docker push "$REPOSITORY_URI:latest"
"#;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BuilderCfg {
    pub buildspec: String,
    pub artifact_variable: Option<String>,
    pub image: Option<String>,
    pub compute_type: Option<String>,
    pub environment_type: Option<String>,
    pub privileged: Option<bool>,
    pub timeout_minutes: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SigningCfg {
    pub key_secret_arn: Option<String>,
    pub passphrase_secret_arn: Option<String>,
    /// Present in memory during plan and apply only; never serialised.
    #[serde(skip_serializing)]
    pub key_wo: Option<WriteOnly>,
    #[serde(skip_serializing)]
    pub passphrase_wo: Option<WriteOnly>,
    pub secrets_wo_version: Option<i64>,
    pub image: Option<String>,
}

/// One signing secret: the user's (an ARN) or the provider's (written from `*_wo`).
struct SigningSecret {
    /// Record key of the provider's secret.
    key: &'static str,
    /// The provider's secret's name, whether or not it is in use.
    owned_name: String,
    /// Whether the provider's secret is in use (no ARN given).
    owned: bool,
    value: Option<WriteOnly>,
    /// What the signer's buildspec and policy name: the user's ARN, or the
    /// provider's secret by name and by ARN pattern (the ARN ends in six random characters).
    buildspec_ref: String,
    policy_ref: String,
}

impl SigningCfg {
    /// The key and the passphrase secrets.
    fn secrets(&self, c: &Common, pipeline: &str) -> [SigningSecret; 2] {
        let one = |key: &'static str, arn: &Option<String>, wo: &Option<WriteOnly>, suffix: &str| {
            let owned_name = owned_secret_name(pipeline, suffix);
            let (buildspec_ref, policy_ref) = match arn {
                Some(a) => (a.clone(), a.clone()),
                None => (owned_name.clone(), SecretNode::arn_pattern(c, &owned_name)),
            };
            SigningSecret { key, owned: arn.is_none(), value: wo.clone(), owned_name, buildspec_ref, policy_ref }
        };
        [one("key_secret", &self.key_secret_arn, &self.key_wo, "gpg-key"), one("passphrase_secret", &self.passphrase_secret_arn, &self.passphrase_wo, "gpg-passphrase")]
    }
}

/// `signing_secret_arns` key, the `signing` attribute naming the user's secret, the record key of the provider's.
const SECRET_KEYS: [(&str, &str, &str); 2] = [("key", "key_secret_arn", "key_secret"), ("passphrase", "passphrase_secret_arn", "passphrase_secret")];

/// The provider's signing secret of a pipeline: `cxflow/release/<name>/<suffix>`.
fn owned_secret_name(pipeline: &str, suffix: &str) -> String {
    format!("cxflow/release/{pipeline}/{suffix}")
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditCfg {
    pub retention_days: Option<i64>,
    pub multi_region: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PublishCfg {
    pub bucket_arn: String,
    pub prefix: Option<String>,
}

fn log_group_of(name: &str) -> String {
    format!("/cxflow/release/{name}")
}

// The audit stack: a trail recording GetSecretValue, delivered to a log group
// through a role, with log files in a bucket of its own (docs/design.md, "Audit").

fn audit_log_group_of(name: &str) -> String {
    format!("/cxflow/release/{name}/audit")
}

fn trail_name(name: &str) -> String {
    format!("{name}-audit")
}

fn trail_arn(c: &Common, name: &str) -> String {
    format!("arn:{}:cloudtrail:{}:{}:trail/{}", c.partition(), c.region, c.account, trail_name(name))
}

fn audit_bucket_name(name: &str, account: &str, region: &str) -> String {
    bounded(&name.to_ascii_lowercase(), &format!("{TYPE_NAME}/{name}"), &format!("-audit-{account}-{region}"), 63, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Days the trail's log files stay in its bucket: the S3 copy is the long
/// archive, as long as CloudWatch's longest retention; `retention_days` is the log group's.
const TRAIL_FILE_DAYS: i64 = 3653;

/// The bucket policy CloudTrail requires: it checks the ACL, then writes under
/// `AWSLogs/<account>/` with the owner in full control, for this trail only.
fn trail_bucket_policy(c: &Common, bucket: &str, trail: &str) -> Json {
    let p = c.partition();
    policy(vec![
        json!({"Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:GetBucketAcl",
               "Resource": format!("arn:{p}:s3:::{bucket}"), "Condition": {"StringEquals": {"aws:SourceArn": trail}}}),
        json!({"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
               "Resource": format!("arn:{p}:s3:::{bucket}/AWSLogs/{}/*", c.account),
               "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail}}}),
    ])
}

/// What CloudTrail's role may do: create and write its own streams
/// (`<account>_CloudTrail_<region>`) in the audit log group, nothing else.
fn trail_role_policy(c: &Common, name: &str) -> Json {
    let stream = format!("arn:{}:logs:{}:{}:log-group:{}:log-stream:{}_CloudTrail_*", c.partition(), c.region, c.account, audit_log_group_of(name), c.account);
    policy(vec![json!({"Sid": "Deliver", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": stream})])
}

/// GetSecretValue is a read management event of Secrets Manager (it has no
/// data events), and a trail's management selectors can only filter on
/// `eventCategory`, `readOnly` and `eventSource` NotEquals KMS/RDS Data: so
/// the trail records read management events without KMS and RDS Data noise,
/// and `audit_query` narrows to GetSecretValue on the two secrets.
fn audit_selectors() -> Vec<EventSelector> {
    let field = |f: &str, equals: &[&str], not_equals: &[&str]| FieldSelector {
        field: f.into(),
        equals: equals.iter().map(|s| s.to_string()).collect(),
        not_equals: not_equals.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    vec![EventSelector {
        name: "Read management events (Secrets Manager GetSecretValue)".into(),
        fields: vec![field("eventCategory", &["Management"], &[]), field("readOnly", &["true"], &[]), field("eventSource", &[], &["kms.amazonaws.com", "rdsdata.amazonaws.com"])],
    }]
}

/// The ways a caller can name a secret in GetSecretValue (`requestParameters.secretId`):
/// its ARN, the ARN without Secrets Manager's `-XXXXXX` suffix, and its name.
fn secret_ids(arn: &str) -> Vec<String> {
    let strip = |s: &str| -> String {
        match s.rsplit_once('-') {
            Some((head, tail)) if tail.len() == 6 && tail.chars().all(|c| c.is_ascii_alphanumeric()) && !head.is_empty() => head.to_string(),
            _ => s.to_string(),
        }
    };
    let mut ids = vec![arn.to_string(), strip(arn)];
    if let Some((_, name)) = arn.split_once(":secret:") {
        ids.push(strip(name));
    }
    ids.dedup();
    ids
}

/// A CloudWatch Logs Insights query for GetSecretValue on the signing secrets:
/// ARNs (the user's) match their exact forms; names (the provider's, whose ARN
/// suffix is not known at plan time) match any ID containing them.
fn audit_query(secrets: &[&str]) -> String {
    let (arns, names): (Vec<&str>, Vec<&str>) = secrets.iter().partition(|s| s.starts_with("arn:"));
    let mut clauses = Vec::new();
    if !arns.is_empty() {
        let ids: Vec<String> = arns.iter().flat_map(|s| secret_ids(s)).map(|s| format!("\"{s}\"")).collect();
        clauses.push(format!("requestParameters.secretId in [{}]", ids.join(", ")));
    }
    clauses.extend(names.iter().map(|n| format!("requestParameters.secretId like \"{n}\"")));
    format!(
        "fields @timestamp, userIdentity.arn, sourceIPAddress, requestParameters.secretId\n\
         | filter eventSource = \"secretsmanager.amazonaws.com\" and eventName = \"GetSecretValue\" and ({})\n\
         | sort @timestamp desc",
        clauses.join(" or ")
    )
}

/// The audit children; unwanted (deleted when recorded) without an `audit` block.
fn audit_nodes(cfg: &ReleasePipeline, c: &Arc<Common>) -> Vec<Box<dyn Node<Aws>>> {
    let name = &cfg.name;
    let a = cfg.audit.clone().unwrap_or_default();
    let bucket = audit_bucket_name(name, &c.account, &c.region);
    let trail = trail_arn(c, name);
    let logs = audit_log_group_of(name);
    let nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(BucketNode {
            c: c.clone(),
            key: "audit_bucket".into(),
            name: bucket.clone(),
            expire_days: TRAIL_FILE_DAYS,
            noncurrent_days: 30,
            policy: Some(trail_bucket_policy(c, &bucket, &trail)),
        }),
        Box::new(LogGroupNode { c: c.clone(), key: "audit_logs".into(), name: logs.clone(), retention_days: a.retention_days.unwrap_or(180), retain: false }),
        Box::new(RoleNode {
            c: c.clone(),
            key: "audit_role".into(),
            name: role_name(name, "-audit"),
            path: "/".into(),
            description: format!("CloudTrail delivery role of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
            trust: service_trust("cloudtrail.amazonaws.com", Some(json!({"StringEquals": {"aws:SourceAccount": c.account, "aws:SourceArn": trail}}))),
            managed: Vec::new(),
            inline: BTreeMap::from([("deliver".to_string(), trail_role_policy(c, name))]),
            wanted: true,
        }),
        Box::new(TrailNode {
            c: c.clone(),
            key: "audit_trail".into(),
            name: trail_name(name),
            bucket: Ref::dep("audit_bucket"),
            log_group_arn: format!("arn:{}:logs:{}:{}:log-group:{logs}:*", c.partition(), c.region, c.account),
            log_group: Ref::dep("audit_logs"),
            role: Ref::dep("audit_role"),
            multi_region: a.multi_region.unwrap_or(false),
            selectors: audit_selectors(),
        }),
    ];
    if cfg.audit.is_some() { nodes } else { nodes.into_iter().map(|n| Box::new(Unwanted(n)) as Box<dyn Node<Aws>>).collect() }
}

fn builder_project(name: &str, key: &str) -> String {
    format!("{name}-build-{key}")
}

fn signer_project(name: &str) -> String {
    format!("{name}-sign")
}

fn copier_project(name: &str) -> String {
    format!("{name}-copy")
}

/// The Build action's output artifact and variable namespace of one builder.
fn builder_artifact(key: &str) -> String {
    format!("build_{key}")
}

/// The signer's environment variable naming one builder's artifact.
fn artifact_env(key: &str) -> String {
    format!("ARTIFACT_{}", key.to_ascii_uppercase())
}

fn role_name(name: &str, suffix: &str) -> String {
    bounded(name, &format!("{TYPE_NAME}/{name}"), suffix, 64, |c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn bucket_name(name: &str, account: &str, region: &str) -> String {
    bounded(&name.to_ascii_lowercase(), &format!("{TYPE_NAME}/{name}"), &format!("-{account}-{region}"), 63, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn bucket_of_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or_default()
}

/// The Sign action's `EnvironmentVariables`: CodePipeline's stringified JSON, one
/// `ARTIFACT_<KEY>` per builder naming the artifact its build exported.
fn signer_environment(builders: &BTreeMap<String, BuilderCfg>) -> String {
    let vars: Vec<Json> = builders
        .iter()
        .map(|(k, b)| {
            let var = b.artifact_variable.clone().unwrap_or_else(|| "ARTIFACT_NAME".into());
            json!({"name": artifact_env(k), "value": format!("#{{{}.{var}}}", builder_artifact(k)), "type": "PLAINTEXT"})
        })
        .collect();
    Json::Array(vars).to_string()
}

/// The signer's buildspec. It does not name the builders: it signs the file each
/// `ARTIFACT_<KEY>` names in `$CODEBUILD_SRC_DIR_build_<key>` (the primary
/// input's directory is `$CODEBUILD_SRC_DIR`), so adding a builder leaves it unchanged.
fn signer_buildspec(key_arn: &str, passphrase_arn: &str) -> String {
    format!(
        r#"version: 0.2
env:
  shell: bash
  secrets-manager:
    GPG_KEY: "{key_arn}"
    GPG_PASSPHRASE: "{passphrase_arn}"
phases:
  build:
    commands:
      - mkdir -p "$CODEBUILD_SRC_DIR/signed"
      - echo "$GPG_KEY" | gpg --batch --import
      - |
        for var in $(compgen -v ARTIFACT_); do
          key=$(echo "${{var#ARTIFACT_}}" | tr 'A-Z' 'a-z')
          dir_var="CODEBUILD_SRC_DIR_build_$key"
          dir="${{!dir_var:-$CODEBUILD_SRC_DIR}}"
          file="${{!var}}"
          cp "$dir/$file" "$CODEBUILD_SRC_DIR/signed/"
          echo "$GPG_PASSPHRASE" | gpg --batch --yes --pinentry-mode loopback --passphrase-fd 0 --armor --detach-sign --output "$CODEBUILD_SRC_DIR/signed/$(basename "$file").asc" "$dir/$file"
        done
artifacts:
  base-directory: signed
  files:
    - '**/*'
"#
    )
}

/// The copier's buildspec: everything the signer wrote goes to the release bucket.
const COPIER_BUILDSPEC: &str = r#"version: 0.2
phases:
  build:
    commands:
      - aws s3 cp --recursive . "s3://$PUBLISH_BUCKET/$PUBLISH_PREFIX"
"#;

fn schema_block() -> Block {
    let source = Block::new(vec![
        Attribute::new("connection_arn", Type::String)
            .required()
            .check(Check::Matches(CONNECTION_RE, "a CodeStar (or CodeConnections) connection ARN, `arn:aws:codestar-connections:<region>:<account>:connection/<uuid>`"))
            .describe("The GitHub connection, made once in the console."),
        Attribute::new("repository", Type::String)
            .required()
            .check(Check::Matches(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}", "`owner/name`"))
            .describe("The repository, `owner/name`."),
        Attribute::new("branch", Type::String)
            .required()
            .check(Check::Matches(r"[^\s~^:?*\[\\]{1,255}", "a Git branch name (no spaces or ~ ^ : ? * [ \\)"))
            .describe("The branch the pipeline releases."),
        Attribute::new("detect_changes", Type::Bool).default(Value::Bool(true)).describe("Start the pipeline when the branch changes."),
    ])
    .describe("Where the code comes from: a GitHub (version 2) source through a CodeStar connection.");
    let builder = vec![
        Attribute::new("buildspec", Type::String).required().check(Check::Len(1, 255)).describe("Path of the builder's buildspec in the repository."),
        Attribute::new("artifact_variable", Type::String)
            .default(Value::string("ARTIFACT_NAME"))
            .check(Check::Matches("[A-Za-z_][A-Za-z0-9_]{0,127}", "an environment variable name the buildspec exports"))
            .describe("The exported variable holding the name of the file the build made (its `exported-variables`)."),
        Attribute::new("image", Type::String)
            .default(Value::string(DEFAULT_IMAGE))
            .check(Check::Matches(IMAGE_RE, "a container image name, e.g. `aws/codebuild/amazonlinux2-x86_64-standard:5.0`"))
            .describe("The build image."),
        Attribute::new("compute_type", Type::String).default(Value::string("BUILD_GENERAL1_SMALL")).check(Check::OneOf(COMPUTE_TYPES)).describe("Build compute."),
        Attribute::new("environment_type", Type::String).default(Value::string("LINUX_CONTAINER")).check(Check::OneOf(ENVIRONMENT_TYPES)).describe("Build container type."),
        Attribute::new("privileged", Type::Bool).default(Value::Bool(false)).describe("Privileged mode, needed to build Docker images."),
        Attribute::new("timeout_minutes", Type::Number).default(Value::int(60)).check(Check::Int(5, 2160)).describe("Build timeout in minutes."),
    ];
    let signing = Block::new(vec![
        Attribute::new("key_secret_arn", Type::String)
            .optional()
            .check(Check::Matches(SECRET_RE, "a Secrets Manager secret ARN"))
            .describe("Your secret holding the armored GPG private key (plain text); or give `key_wo`. Only the signer role's policy grants reading it."),
        Attribute::new("passphrase_secret_arn", Type::String)
            .optional()
            .check(Check::Matches(SECRET_RE, "a Secrets Manager secret ARN"))
            .describe("Your secret holding the key's passphrase (plain text); or give `passphrase_wo`."),
        Attribute::new("key_wo", Type::String).optional().sensitive().write_only().check(Check::Len(1, SECRET_MAX)).describe(
            "The armored GPG private key, write-only: the provider keeps it in its own secret `cxflow/release/<name>/gpg-key`, whose policy refuses \
             `GetSecretValue` to everyone but the signer role. Never in state or plan. Needs Terraform 1.11 or later.",
        ),
        Attribute::new("passphrase_wo", Type::String)
            .optional()
            .sensitive()
            .write_only()
            .check(Check::Len(1, SECRET_MAX))
            .describe("The key's passphrase, write-only, kept like `key_wo` in `cxflow/release/<name>/gpg-passphrase`."),
        Attribute::new("secrets_wo_version", Type::Number).optional().check(Check::Int(1, 1 << 53)).describe(
            "Required with `key_wo` or `passphrase_wo`: change it to write new values (Terraform never compares write-only values). \
             A value changed outside Terraform is found at refresh and written back.",
        ),
        Attribute::new("image", Type::String)
            .default(Value::string(DEFAULT_IMAGE))
            .check(Check::Matches(IMAGE_RE, "a container image name"))
            .describe("The signer's build image (it needs `gpg`, `bash` and the AWS CLI). The project pulls with CodeBuild's credentials, so a private ECR image needs a repository policy letting `codebuild.amazonaws.com` pull it."),
    ])
    .describe("How artifacts are signed: a detached, armored GPG signature (`.asc`) of every builder's artifact.");
    let publish = Block::new(vec![
        Attribute::new("bucket_arn", Type::String)
            .required()
            .check(Check::Matches(r"arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket ARN, `arn:aws:s3:::<bucket>`"))
            .describe("The release bucket artifacts and signatures are copied to (the copier may only put objects there)."),
        Attribute::new("prefix", Type::String)
            .default(Value::string(""))
            .check(Check::Matches(r"([A-Za-z0-9!_.*'()/-]{1,512}/)?", "empty, or a key prefix ending in `/`"))
            .describe("Key prefix in the release bucket."),
    ])
    .describe("Where signed artifacts go.");
    let signing_image = Block::new(vec![
        Attribute::new("dockerfile", Type::String)
            .default(Value::string(DEFAULT_DOCKERFILE))
            .check(Check::Matches(r"[A-Za-z0-9_./-]{1,255}", "a path in the repository"))
            .describe("The Dockerfile of the signing image, in the source repository."),
        Attribute::new("schedule", Type::String)
            .default(Value::string(""))
            .check(Check::Matches(SCHEDULE_RE, "empty, or an EventBridge schedule: `cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>)` or `rate(<n> <unit>)`"))
            .describe("Rebuild the image on this EventBridge schedule; empty: no schedule (build it by starting the project)."),
    ])
    .describe(
        "A minimal signing image the resource builds and keeps: an ECR repository `<name>-signer`, a CodeBuild project `<name>-signer-image` \
         building `dockerfile` from the source branch into `:latest`, and optionally an EventBridge schedule rebuilding it. The signer then \
         runs on that image, pulled with its own role. Build it once before the first release (the project exists as soon as apply ends).",
    );
    let audit = Block::new(vec![
        Attribute::new("retention_days", Type::Number).default(Value::int(180)).check(Check::IntIn(RETENTION_DAYS)).describe("Days the audit log group keeps the trail's events."),
        Attribute::new("multi_region", Type::Bool).default(Value::Bool(false)).describe("Record events of every region, not only the pipeline's."),
    ])
    .describe(
        "Audit of the signing secrets: a CloudTrail trail recording read management events (among them every Secrets Manager `GetSecretValue`), \
         delivered to the log group `/cxflow/release/<name>/audit` and to an encrypted, private bucket of its own; `audit_query` finds the reads of the two secrets.",
    );
    Block::new(vec![
        Attribute::new("name", Type::String)
            .required()
            .force_new()
            .check(Check::Matches(NAME_RE, "2 to 80 letters, digits, `-` and `_`, starting with a letter or digit"))
            .describe("Name of the pipeline; its projects are `<name>-build-<builder>`, `<name>-sign` and `<name>-copy`."),
        Attribute::nested("builders", Nesting::Map, builder)
            .required()
            .check(Check::Keys(Box::new(Check::Matches(BUILDER_RE, "1 to 20 lowercase letters, digits and `_`, starting with a letter"))))
            .describe("One CodeBuild project per artifact (a platform), keyed by a short name; each runs in the Build stage and its artifact is signed and published."),
        Attribute::new("log_retention_days", Type::Number).default(Value::int(30)).check(Check::IntIn(RETENTION_DAYS)).describe("Days the pipeline's log group keeps build logs."),
        Attribute::new("artifact_expiration_days", Type::Number)
            .default(Value::int(30))
            .check(Check::Int(1, 3650))
            .describe("Days pipeline artifacts (and their replaced versions) are kept in the artifact bucket."),
        Attribute::new("arn", Type::String).computed().describe("ARN of the pipeline."),
        Attribute::new("console_url", Type::String).computed().describe("The pipeline in the AWS console."),
        Attribute::new("artifact_bucket", Type::String).computed().describe("Name of the artifact bucket."),
        Attribute::new("log_group_name", Type::String).computed().describe("The log group every project writes to, `/cxflow/release/<name>`."),
        Attribute::new("builder_projects", Type::map(Type::String)).computed().describe("Builder key → CodeBuild project name."),
        Attribute::new("signer_project", Type::String).computed().describe("Name of the signer's CodeBuild project."),
        Attribute::new("copier_project", Type::String).computed().describe("Name of the copier's CodeBuild project."),
        Attribute::new("signer_environment", Type::String).computed().describe("The Sign action's generated `EnvironmentVariables` (stringified JSON)."),
        Attribute::new("signing_secret_arns", Type::map(Type::String))
            .computed()
            .describe("The secrets the signer reads: `key` and `passphrase` → ARN (yours, or the provider's for `key_wo`/`passphrase_wo`)."),
        Attribute::new("signer_role_arn", Type::String).computed().describe("ARN of the signer's role, the only one that may read the signing secrets."),
        Attribute::new("pipeline_role_arn", Type::String).computed().describe("ARN of the pipeline's service role."),
        Attribute::new("signing_image_uri", Type::String).computed().describe("The managed signing image (`signing_image`), `<registry>/<name>-signer:latest`; null without it."),
        Attribute::new("audit_trail_arn", Type::String).computed().describe("ARN of the audit trail (null without `audit`)."),
        Attribute::new("audit_log_group_name", Type::String)
            .computed()
            .describe("The log group the audit trail delivers to, `/cxflow/release/<name>/audit` (null without `audit`)."),
        Attribute::new("audit_bucket", Type::String).computed().describe("Name of the bucket holding the audit trail's log files (null without `audit`)."),
        Attribute::new("audit_query", Type::String)
            .computed()
            .describe("A CloudWatch Logs Insights query for `GetSecretValue` on the two signing secrets, to run on `audit_log_group_name` (null without `audit`)."),
    ])
    .with_blocks(vec![
        NestedBlock::new("source", Nesting::Single, source).min(1).max(1),
        NestedBlock::new("signing", Nesting::Single, signing).min(1).max(1),
        NestedBlock::new("publish", Nesting::Single, publish).min(1).max(1),
        NestedBlock::new("signing_image", Nesting::Single, signing_image),
        NestedBlock::new("audit", Nesting::Single, audit),
    ])
    .describe(
        "A release pipeline: a GitHub source, one CodeBuild build per artifact, a GPG signer reading its key from Secrets Manager, \
         and a copier publishing artifacts and signatures to a release bucket, with an encrypted, private artifact bucket and one least-privilege role per project.\n\n\
         **Buildspecs.** Each builder's buildspec (in your repository) builds one file and exports its name: `env: exported-variables: [ARTIFACT_NAME]` \
         (or the builder's `artifact_variable`). The signer's and the copier's buildspecs are written by the provider: the signer imports the key \
         (`GPG_KEY`, read by CodeBuild from Secrets Manager with the signer's role) and, for every variable `ARTIFACT_<KEY>`, signs the file it names \
         in `$CODEBUILD_SRC_DIR_build_<key>` with `gpg --armor --detach-sign` using `GPG_PASSPHRASE`, and outputs the files and their `.asc` signatures; \
         the copier copies them to `s3://<publish bucket>/<prefix>`. Adding a builder changes neither.\n\n\
         **The key.** The gpg of Amazon Linux 2 (CodeBuild's standard images) has no ECC: generate an RSA 4096 key with a passphrase \
         (`gpg --full-generate-key`, kind RSA and RSA, 4096 bits), export it armored (`gpg --armor --export-secret-key <email>`), and give the \
         armored key and the passphrase as two plain-text (not JSON) secrets, or as `key_wo` and `passphrase_wo`.",
    )
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    if let Value::Map(m) = c.get("builders") {
        if m.is_empty() || m.len() > MAX_BUILDERS {
            d.attr_error(
                Path::attr("builders"),
                "Builders out of range",
                format!("builders has {} entries; the signer takes every builder's artifact and a CodeBuild action takes 1 to {MAX_BUILDERS} inputs.", m.len()),
            );
        }
        for (k, b) in m {
            // Validation sees the configuration before defaults: an unset attribute is its default.
            let image = if b.get("image").is_null() { Some(DEFAULT_IMAGE) } else { b.get("image").as_str() };
            let kind = if b.get("environment_type").is_null() { Some("LINUX_CONTAINER") } else { b.get("environment_type").as_str() };
            if let (Some(image), Some(kind)) = (image, kind) {
                let arm_image = image.contains("aarch64") || image.contains("arm64");
                if image.starts_with("aws/codebuild/") && arm_image != (kind == "ARM_CONTAINER") {
                    d.attr_error(
                        Path::attr("builders").key(k).then_attr("environment_type"),
                        "Image and environment type differ",
                        format!(
                            "{image} is a CodeBuild {} image; environment_type {kind} runs {} images.",
                            if arm_image { "ARM" } else { "x86" },
                            if arm_image { "x86" } else { "ARM" }
                        ),
                    );
                }
            }
        }
    }
    let s = c.get("signing");
    if !s.is_null() {
        let mut write_only = false;
        for (arn, wo) in [("key_secret_arn", "key_wo"), ("passphrase_secret_arn", "passphrase_wo")] {
            match (s.get(arn).is_null(), s.get(wo).is_null()) {
                (true, true) => d.attr_error(Path::attr("signing").then_attr(arn), "Signing secret missing", format!("Give {arn} (your secret) or {wo} (kept by the provider).")),
                (false, false) => {
                    d.attr_error(Path::attr("signing").then_attr(wo), "Conflicting signing secrets", format!("{arn} and {wo} both name the secret; give one of them."))
                }
                (true, false) => write_only = true,
                _ => {}
            }
        }
        if write_only && s.get("secrets_wo_version").is_null() {
            d.attr_error(
                Path::attr("signing").then_attr("secrets_wo_version"),
                "Missing secrets_wo_version",
                "key_wo and passphrase_wo need secrets_wo_version: Terraform stores no write-only value, so only a new version tells the provider to write new ones.",
            );
        }
    }
    if !c.get("signing_image").is_null() && !s.get("image").is_null() {
        d.attr_error(
            Path::attr("signing").then_attr("image"),
            "Two signing images",
            "signing.image names an image and signing_image builds one; the signer can run on one of them.",
        );
    }
    if let Some(cron) = c.get("signing_image").get("schedule").as_str().and_then(|e| e.strip_prefix("cron(")) {
        let f: Vec<&str> = cron.trim_end_matches(')').split(' ').collect();
        // EventBridge: one of day-of-month and day-of-week must be `?`.
        if f.len() == 6 && (f[2] == "?") == (f[4] == "?") {
            d.attr_error(
                Path::attr("signing_image").then_attr("schedule"),
                "Invalid cron expression",
                "EventBridge cron expressions need `?` in exactly one of day-of-month (third field) and day-of-week (fifth), e.g. `cron(0 12 ? * MON *)`.",
            );
        }
    }
    if let (Some(k), Some(p)) = (s.get("key_secret_arn").as_str(), s.get("passphrase_secret_arn").as_str()) {
        if k == p {
            d.attr_error(Path::attr("signing").then_attr("passphrase_secret_arn"), "Same secret twice", "The key and its passphrase must be two secrets.");
        }
    }
    d
}

fn policy(statements: Vec<Json>) -> Json {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What every project's role shares: its own log streams and the artifact bucket.
fn project_statements(c: &Common, name: &str, bucket: &str, write: bool) -> Vec<Json> {
    let p = c.partition();
    let mut objects = vec!["s3:GetObject", "s3:GetObjectVersion"];
    if write {
        objects.push("s3:PutObject");
    }
    vec![
        json!({"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
               "Resource": format!("arn:{p}:logs:{}:{}:log-group:{}:*", c.region, c.account, log_group_of(name))}),
        json!({"Sid": "Artifacts", "Effect": "Allow", "Action": objects, "Resource": format!("arn:{p}:s3:::{bucket}/*")}),
        json!({"Sid": "ArtifactBucket", "Effect": "Allow", "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"], "Resource": format!("arn:{p}:s3:::{bucket}")}),
    ]
}

/// `image_repo`: the managed signing image's repository ARN, which the signer pulls from.
fn signer_policy(c: &Common, name: &str, bucket: &str, secrets: &[SigningSecret; 2], image_repo: Option<&str>) -> Json {
    let mut st = project_statements(c, name, bucket, true);
    st.push(json!({"Sid": "Key", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets[0].policy_ref}));
    st.push(json!({"Sid": "Passphrase", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets[1].policy_ref}));
    if let Some(repo) = image_repo {
        st.extend(ecr_statements(repo, Level::Read));
    }
    policy(st)
}

/// ECR on one repository at `level`, and the authorization token (only on `*`, as AWS requires).
fn ecr_statements(repo_arn: &str, level: Level) -> Vec<Json> {
    vec![
        json!({"Sid": "EcrToken", "Effect": "Allow", "Action": Level::Authorize.actions(), "Resource": "*"}),
        json!({"Sid": "SigningImage", "Effect": "Allow", "Action": level.actions(), "Resource": repo_arn}),
    ]
}

/// The image project's role: its log streams, pushing to the repository, reading the source through the connection.
fn image_policy(c: &Common, name: &str, repo_arn: &str, connection_arn: &str) -> Json {
    let p = c.partition();
    let service = if connection_arn.contains(":codeconnections:") { "codeconnections" } else { "codestar-connections" };
    let mut st = vec![json!({"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": format!("arn:{p}:logs:{}:{}:log-group:{}:*", c.region, c.account, log_group_of(name))})];
    st.extend(ecr_statements(repo_arn, Level::Write));
    st.push(json!({"Sid": "Source", "Effect": "Allow", "Action": [format!("{service}:GetConnection"), format!("{service}:GetConnectionToken"), format!("{service}:UseConnection")], "Resource": connection_arn}));
    policy(st)
}

fn copier_policy(c: &Common, name: &str, bucket: &str, publish: &PublishCfg) -> Json {
    let mut st = project_statements(c, name, bucket, false);
    st.push(json!({"Sid": "Publish", "Effect": "Allow", "Action": "s3:PutObject", "Resource": format!("{}/*", publish.bucket_arn)}));
    policy(st)
}

fn pipeline_policy(c: &Common, connection_arn: &str, bucket: &str, projects: Vec<String>) -> Json {
    let p = c.partition();
    let service = if connection_arn.contains(":codeconnections:") { "codeconnections" } else { "codestar-connections" };
    policy(vec![
        json!({"Sid": "Build", "Effect": "Allow", "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"], "Resource": projects}),
        json!({"Sid": "Source", "Effect": "Allow", "Action": format!("{service}:UseConnection"), "Resource": connection_arn}),
        json!({"Sid": "Artifacts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], "Resource": format!("arn:{p}:s3:::{bucket}/*")}),
        json!({"Sid": "ArtifactBucket", "Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:GetBucketVersioning"], "Resource": format!("arn:{p}:s3:::{bucket}")}),
    ])
}

fn codebuild_action(name: &str, project: &str, inputs: Vec<String>, outputs: Vec<String>, mut config: BTreeMap<String, String>, namespace: Option<String>) -> Action {
    config.insert("ProjectName".into(), project.into());
    Action {
        name: name.into(),
        category: "Build".into(),
        owner: "AWS".into(),
        provider: "CodeBuild".into(),
        version: "1".into(),
        configuration: config,
        input_artifacts: inputs,
        output_artifacts: outputs,
        run_order: 1,
        namespace,
    }
}

fn stages(cfg: &ReleasePipeline) -> Vec<Stage> {
    let name = &cfg.name;
    let src = cfg.source.clone().unwrap_or_default();
    let builders = cfg.builders.clone().unwrap_or_default();
    let source = Action {
        name: "Source".into(),
        category: "Source".into(),
        owner: "AWS".into(),
        provider: "CodeStarSourceConnection".into(),
        version: "1".into(),
        configuration: BTreeMap::from([
            ("ConnectionArn".to_string(), src.connection_arn.clone()),
            ("FullRepositoryId".to_string(), src.repository.clone()),
            ("BranchName".to_string(), src.branch.clone()),
            ("DetectChanges".to_string(), src.detect_changes.unwrap_or(true).to_string()),
            ("OutputArtifactFormat".to_string(), "CODE_ZIP".to_string()),
        ]),
        input_artifacts: vec![],
        output_artifacts: vec![SOURCE_ARTIFACT.into()],
        run_order: 1,
        namespace: None,
    };
    let build = builders
        .keys()
        .map(|k| {
            codebuild_action(&format!("Build-{k}"), &builder_project(name, k), vec![SOURCE_ARTIFACT.into()], vec![builder_artifact(k)], BTreeMap::new(), Some(builder_artifact(k)))
        })
        .collect();
    let inputs: Vec<String> = builders.keys().map(|k| builder_artifact(k)).collect();
    let mut sign_config = BTreeMap::from([("EnvironmentVariables".to_string(), signer_environment(&builders))]);
    if let Some(first) = inputs.first() {
        sign_config.insert("PrimarySource".into(), first.clone());
    }
    vec![
        Stage { name: "Source".into(), actions: vec![source] },
        Stage { name: "Build".into(), actions: build },
        Stage { name: "Sign".into(), actions: vec![codebuild_action("Sign", &signer_project(name), inputs, vec![SIGNED_ARTIFACT.into()], sign_config, None)] },
        Stage { name: "Publish".into(), actions: vec![codebuild_action("Publish", &copier_project(name), vec![SIGNED_ARTIFACT.into()], vec![], BTreeMap::new(), None)] },
    ]
}

fn build_graph(cfg: &ReleasePipeline, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let name = &cfg.name;
    let bucket = bucket_name(name, &c.account, &c.region);
    let signing = cfg.signing.clone().unwrap_or_default();
    let publish = cfg.publish.clone().unwrap_or_default();
    let builders = cfg.builders.clone().unwrap_or_default();
    let account_only = Some(json!({"StringEquals": {"aws:SourceAccount": c.account}}));
    let role = |key: String, suffix: &str, service: &str, what: &str, inline: (&str, Json)| RoleNode {
        c: c.clone(),
        key,
        name: role_name(name, suffix),
        path: "/".into(),
        description: format!("{what} of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
        trust: service_trust(service, account_only.clone()),
        managed: Vec::new(),
        inline: BTreeMap::from([(inline.0.to_string(), inline.1)]),
        wanted: true,
    };
    let project = |key: String, project: String, what: &str, buildspec: String, env: BuildEnvironment, timeout: i64, role_key: &str| ProjectNode {
        c: c.clone(),
        key,
        name: project.clone(),
        description: format!("{what} of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
        source: BuildSource { kind: "CODEPIPELINE".into(), location: None, buildspec: Some(buildspec), connection: None },
        artifacts: "CODEPIPELINE".into(),
        environment: env,
        service_role: Ref::dep(role_key),
        timeout_minutes: timeout,
        queued_timeout_minutes: 480,
        log_group: Ref::dep("logs"),
        log_stream: project,
    };
    let env = |image: Option<String>, variables: BTreeMap<String, String>, pull_with_role: bool| BuildEnvironment {
        kind: "LINUX_CONTAINER".into(),
        image: image.unwrap_or_else(|| DEFAULT_IMAGE.into()),
        compute_type: "BUILD_GENERAL1_SMALL".into(),
        privileged: false,
        variables,
        pull_with_role,
    };
    let mut nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(BucketNode {
            c: c.clone(),
            key: "artifact_bucket".into(),
            name: bucket.clone(),
            expire_days: cfg.artifact_expiration_days.unwrap_or(30),
            noncurrent_days: cfg.artifact_expiration_days.unwrap_or(30),
            policy: None,
        }),
        Box::new(LogGroupNode { c: c.clone(), key: "logs".into(), name: log_group_of(name), retention_days: cfg.log_retention_days.unwrap_or(30), retain: false }),
    ];
    let mut project_arns = Vec::new();
    let mut after = Vec::new();
    for (k, b) in &builders {
        let role_key = format!("builder_{k}_role");
        nodes.push(Box::new(role(
            role_key.clone(),
            &format!("-b-{k}"),
            "codebuild.amazonaws.com",
            &format!("Builder {k} role"),
            ("build", policy(project_statements(&c, name, &bucket, true))),
        )));
        let p = project(
            format!("builder_{k}"),
            builder_project(name, k),
            &format!("Builder {k}"),
            b.buildspec.clone(),
            BuildEnvironment {
                kind: b.environment_type.clone().unwrap_or_else(|| "LINUX_CONTAINER".into()),
                image: b.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into()),
                compute_type: b.compute_type.clone().unwrap_or_else(|| "BUILD_GENERAL1_SMALL".into()),
                privileged: b.privileged.unwrap_or(false),
                variables: BTreeMap::new(),
                pull_with_role: false,
            },
            b.timeout_minutes.unwrap_or(60),
            &role_key,
        );
        project_arns.push(p.arn());
        after.push(format!("builder_{k}"));
        nodes.push(Box::new(p));
    }
    let secrets = signing.secrets(&c, name);
    let signer_role_arn = format!("arn:{}:iam::{}:role/{}", c.partition(), c.account, role_name(name, "-sign"));
    for s in &secrets {
        let node = Box::new(SecretNode {
            c: c.clone(),
            key: s.key.into(),
            name: s.owned_name.clone(),
            description: format!("GPG signing secret of {TYPE_NAME} {name} (terraform-provider-cxflow); only its signer role may read it"),
            value: s.value.clone(),
            version: signing.secrets_wo_version.unwrap_or(0),
            reader_arn: signer_role_arn.clone(),
        });
        nodes.push(if s.owned { node } else { Box::new(Unwanted(node)) });
        if s.owned {
            // The pipeline starts when it is made: its signer must find the secrets.
            after.push(s.key.to_string());
        }
    }
    let connection = cfg.source.as_ref().map(|s| s.connection_arn.clone()).unwrap_or_default();
    let image_repo_arn = format!("arn:{}:ecr:{}:{}:repository/{}", c.partition(), c.region, c.account, signing_repository(name));
    let image = cfg.signing_image.clone().unwrap_or_default();
    let schedule = image.schedule.clone().filter(|s| !s.is_empty());
    let wanted_image = cfg.signing_image.is_some();
    let mut image_nodes: Vec<Box<dyn Node<Aws>>> = vec![Box::new(RepositoryNode {
        c: c.clone(),
        key: "signing_image_repo".into(),
        spec: RepositorySpec {
            name: signing_repository(name),
            immutable: false,
            scan_on_push: true,
            encryption: "AES256".into(),
            kms_key: None,
            lifecycle: Some(keep_latest_policy(SIGNING_IMAGES_KEPT)),
            policy: None,
            owns_policy: false,
        },
    })];
    image_nodes.push(Box::new(role(
        "signing_image_role".into(),
        "-image",
        "codebuild.amazonaws.com",
        "Signing image build role",
        ("image", image_policy(&c, name, &image_repo_arn, &connection)),
    )));
    let src = cfg.source.clone().unwrap_or_default();
    let mut image_project = project(
        "signing_image".into(),
        signing_image_project(name),
        "Signing image build",
        SIGNING_IMAGE_BUILDSPEC.into(),
        BuildEnvironment {
            privileged: true,
            ..env(
                None,
                BTreeMap::from([
                    ("REPOSITORY_URI".to_string(), signing_image_uri(&c, name).trim_end_matches(":latest").to_string()),
                    ("DOCKERFILE".to_string(), image.dockerfile.clone().unwrap_or_else(|| DEFAULT_DOCKERFILE.into())),
                ]),
                false,
            )
        },
        60,
        "signing_image_role",
    );
    image_project.source = BuildSource {
        kind: "GITHUB".into(),
        location: Some(format!("https://github.com/{}.git", src.repository)),
        buildspec: image_project.source.buildspec.clone(),
        connection: Some(connection.clone()),
    };
    image_project.artifacts = "NO_ARTIFACTS".into();
    let image_project_arn = image_project.arn();
    image_nodes.push(Box::new(image_project));
    image_nodes.push(Box::new(role(
        "signing_image_schedule_role".into(),
        "-schedule",
        "events.amazonaws.com",
        "Signing image schedule role",
        ("schedule", policy(vec![json!({"Sid": "Build", "Effect": "Allow", "Action": "codebuild:StartBuild", "Resource": image_project_arn})])),
    )));
    image_nodes.push(Box::new(ScheduleNode {
        c: c.clone(),
        key: "signing_image_schedule".into(),
        name: bounded(name, &format!("{TYPE_NAME}/{name}"), "-signer-image", 64, |c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        description: format!("Rebuilds the signing image of {TYPE_NAME} {name} (terraform-provider-cxflow)"),
        schedule: schedule.clone().unwrap_or_default(),
        target: Ref::lit(image_project_arn),
        role: Ref::dep("signing_image_schedule_role"),
    }));
    for n in image_nodes {
        let wanted = wanted_image && (schedule.is_some() || !n.key().starts_with("signing_image_schedule"));
        nodes.push(if wanted { n } else { Box::new(Unwanted(n)) });
    }
    nodes.push(Box::new(role(
        "signer_role".into(),
        "-sign",
        "codebuild.amazonaws.com",
        "Signer role",
        ("sign", signer_policy(&c, name, &bucket, &secrets, wanted_image.then_some(image_repo_arn.as_str()))),
    )));
    let signer = project(
        "signer".into(),
        signer_project(name),
        "Signer",
        signer_buildspec(&secrets[0].buildspec_ref, &secrets[1].buildspec_ref),
        match wanted_image {
            true => env(Some(signing_image_uri(&c, name)), BTreeMap::new(), true),
            false => env(signing.image.clone(), BTreeMap::new(), false),
        },
        60,
        "signer_role",
    );
    nodes.push(Box::new(role("copier_role".into(), "-copy", "codebuild.amazonaws.com", "Copier role", ("copy", copier_policy(&c, name, &bucket, &publish)))));
    let publish_vars = BTreeMap::from([
        ("PUBLISH_BUCKET".to_string(), bucket_of_arn(&publish.bucket_arn).to_string()),
        ("PUBLISH_PREFIX".to_string(), publish.prefix.clone().unwrap_or_default()),
    ]);
    let copier = project("copier".into(), copier_project(name), "Copier", COPIER_BUILDSPEC.into(), env(None, publish_vars, false), 60, "copier_role");
    project_arns.extend([signer.arn(), copier.arn()]);
    after.extend(["signer".to_string(), "copier".to_string()]);
    nodes.push(Box::new(signer));
    nodes.push(Box::new(copier));
    nodes.push(Box::new(role(
        "pipeline_role".into(),
        "-pipeline",
        "codepipeline.amazonaws.com",
        "CodePipeline service role",
        ("pipeline", pipeline_policy(&c, &connection, &bucket, project_arns)),
    )));
    nodes.push(Box::new(PipelineNode {
        c: c.clone(),
        key: "pipeline".into(),
        name: name.clone(),
        role: Ref::dep("pipeline_role"),
        bucket: Ref::dep("artifact_bucket"),
        stages: stages(cfg),
        after,
    }));
    nodes.extend(audit_nodes(cfg, &c));
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

/// A statement's one resource in an observed policy document, by Sid.
fn first_resource(policies: Option<&Json>, policy: &str, sid: &str) -> Option<String> {
    statement_resources(policies, policy, sid).into_iter().next()
}

fn opt(v: Option<String>) -> Value {
    v.map(Value::string).unwrap_or(Value::Null)
}

/// Builder key → the variable its Sign environment entry reads, from an observed Sign action.
fn observed_artifact_variables(sign: Option<&Action>) -> BTreeMap<String, String> {
    let vars: Vec<Json> = sign.and_then(|a| a.configuration.get("EnvironmentVariables")).and_then(|e| serde_json::from_str(e).ok()).unwrap_or_default();
    vars.iter()
        .filter_map(|v| {
            let value = v.get("value")?.as_str()?.strip_prefix("#{")?.strip_suffix('}')?;
            let (ns, var) = value.split_once('.')?;
            Some((ns.strip_prefix("build_")?.to_string(), var.to_string()))
        })
        .collect()
}

pub struct ReleasePipelineResource;

#[async_trait]
impl Composite<Aws> for ReleasePipelineResource {
    type State = ReleasePipeline;
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
        let known = |f: fn(&str) -> String| name.as_deref().map(|n| Value::string(f(n))).unwrap_or(Value::Unknown);
        p.set_attr("log_group_name", known(log_group_of));
        p.set_attr("signer_project", known(signer_project));
        p.set_attr("copier_project", known(copier_project));
        let builders: Option<BTreeMap<String, BuilderCfg>> = match p.get("builders") {
            b @ Value::Map(_) => crate::framework::typed::from_value(b).ok(),
            _ => None,
        };
        let projects = match (&name, &builders) {
            (Some(n), Some(b)) => Value::Map(b.keys().map(|k| (k.clone(), Value::string(builder_project(n, k)))).collect()),
            _ => Value::Unknown,
        };
        p.set_attr("builder_projects", projects);
        p.set_attr("signer_environment", builders.as_ref().map(|b| Value::string(signer_environment(b))).unwrap_or(Value::Unknown));
        let audit = p.get("audit").clone();
        let s = p.get("signing").clone();
        let (log_group, query) = match &audit {
            Value::Null => (Value::Null, Value::Null),
            Value::Unknown => (Value::Unknown, Value::Unknown),
            _ => (known(audit_log_group_of), {
                // Each secret: the user's ARN, or (write-only) the provider's by name.
                let id = |arn: &str, suffix: &str| match s.get(arn) {
                    Value::Null => name.as_deref().map(|n| owned_secret_name(n, suffix)),
                    v => v.as_str().map(str::to_string),
                };
                match (id("key_secret_arn", "gpg-key"), id("passphrase_secret_arn", "gpg-passphrase")) {
                    (Some(k), Some(pp)) => Value::string(audit_query(&[&k, &pp])),
                    _ => Value::Unknown,
                }
            }),
        };
        p.set_attr("audit_log_group_name", log_group);
        p.set_attr("audit_query", query);
    }
    fn owner_name(s: &ReleasePipeline) -> String {
        s.name.clone()
    }
    fn id(s: &ReleasePipeline) -> String {
        s.name.clone()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("name", "The pipeline's name.")]
    }
    async fn graph(s: &ReleasePipeline, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        let arn = pc.identity("pipeline");
        let url = arn.as_str().and_then(console_url).map(Value::string).unwrap_or(Value::Unknown);
        p.set_attr("arn", arn);
        p.set_attr("console_url", url);
        p.set_attr("artifact_bucket", pc.identity("artifact_bucket"));
        p.set_attr("signer_role_arn", pc.identity("signer_role"));
        p.set_attr("pipeline_role_arn", pc.identity("pipeline_role"));
        let signing = p.get("signing").clone();
        let arns: BTreeMap<String, Value> =
            SECRET_KEYS.iter().map(|(out, attr, key)| (out.to_string(), if signing.get(attr).is_null() { pc.identity(key) } else { signing.get(attr).clone() })).collect();
        p.set_attr("signing_secret_arns", if arns.values().all(Value::is_wholly_known) { Value::Map(arns) } else { Value::Unknown });
        let image = match p.get("signing_image") {
            Value::Null => Value::Null,
            _ => pc.output("signing_image_repo", "uri").as_str().map(|u| Value::string(format!("{u}:latest"))).unwrap_or(Value::Unknown),
        };
        p.set_attr("signing_image_uri", image);
        p.set_attr("audit_trail_arn", pc.identity("audit_trail"));
        p.set_attr("audit_bucket", pc.identity("audit_bucket"));
    }
    fn outputs(st: &mut Value, cfg: &ReleasePipeline, kids: &Kids<'_>) {
        let arn = kids.id("pipeline");
        st.set_attr("console_url", opt(arn.as_deref().and_then(console_url)));
        st.set_attr("arn", opt(arn));
        st.set_attr("artifact_bucket", opt(kids.id("artifact_bucket")));
        st.set_attr("signer_role_arn", opt(kids.id("signer_role")));
        st.set_attr("pipeline_role_arn", opt(kids.id("pipeline_role")));
        let signing = cfg.signing.clone().unwrap_or_default();
        let arns: BTreeMap<String, Value> = SECRET_KEYS
            .iter()
            .filter_map(|(out, attr, key)| {
                let arn = if *attr == "key_secret_arn" { signing.key_secret_arn.clone() } else { signing.passphrase_secret_arn.clone() };
                Some((out.to_string(), Value::string(arn.or_else(|| kids.id(key))?)))
            })
            .collect();
        st.set_attr("signing_secret_arns", Value::Map(arns));
        st.set_attr("signing_image_uri", opt(cfg.signing_image.as_ref().and(kids.output("signing_image_repo", "uri")).map(|u| format!("{u}:latest"))));
        st.set_attr("audit_trail_arn", opt(kids.id("audit_trail")));
        st.set_attr("audit_bucket", opt(kids.id("audit_bucket")));
    }
    fn import_seed(id: &str) -> Result<ReleasePipeline, Diags> {
        // The seed wants every optional child (the managed signing image and
        // its schedule, the provider's secrets, the audit children), so the
        // first round looks for them by name; from_observed drops what is not found.
        let discover = SigningImageCfg { dockerfile: None, schedule: Some("rate(1 day)".into()) };
        Ok(ReleasePipeline { name: pipeline_import_name(id, TYPE_NAME)?, signing_image: Some(discover), audit: Some(AuditCfg::default()), ..Default::default() })
    }
    async fn from_observed(aws: &Aws, seed: &ReleasePipeline, kids: &Kids<'_>) -> Result<ReleasePipeline, Diags> {
        let mut cfg = seed.clone();
        cfg.audit = kids.observed("audit_trail").map(|t| AuditCfg {
            retention_days: kids.field("audit_logs", "retention_in_days").and_then(Json::as_i64),
            multi_region: t.get("multi_region").and_then(Json::as_bool),
        });
        let Some(stages) = kids.field("pipeline", "stages").and_then(|s| serde_json::from_value::<Vec<Stage>>(s.clone()).ok()) else { return Ok(cfg) };
        let action = |stage: &str| stages.iter().find(|s| s.name == stage).and_then(|s| s.actions.first()).cloned();
        cfg.source = Some(SourceCfg::from_action(action("Source").as_ref()));
        let variables = observed_artifact_variables(action("Sign").as_ref());
        let keys: Vec<String> =
            stages.iter().filter(|s| s.name == "Build").flat_map(|s| &s.actions).filter_map(|a| a.namespace.as_deref()?.strip_prefix("build_").map(str::to_string)).collect();
        let mut builders = BTreeMap::new();
        for k in keys {
            let mut b = BuilderCfg { artifact_variable: variables.get(&k).cloned(), ..Default::default() };
            if let Some(p) = kids.observed(&format!("builder_{k}")) {
                let env: Option<BuildEnvironment> = p.get("environment").and_then(|e| serde_json::from_value(e.clone()).ok());
                b.buildspec = p.get("source").and_then(|s| s.get("buildspec")).and_then(Json::as_str).unwrap_or_default().to_string();
                b.timeout_minutes = p.get("timeout_minutes").and_then(Json::as_i64);
                if let Some(e) = env {
                    b.image = Some(e.image);
                    b.compute_type = Some(e.compute_type);
                    b.environment_type = Some(e.kind);
                    b.privileged = Some(e.privileged);
                }
            }
            builders.insert(k, b);
        }
        cfg.builders = Some(builders);
        let signer_policies = kids.field("signer_role", "inline_policies");
        // A policy naming the provider's secret by its ARN pattern means `*_wo`; the
        // version the value was written for is on the secret.
        let user_secret = |sid: &str, suffix: &str| {
            let r = first_resource(signer_policies, "sign", sid).unwrap_or_default();
            let owned = r.ends_with(&format!(":secret:{}-??????", owned_secret_name(&seed.name, suffix)));
            (!owned).then_some(r)
        };
        let key_secret_arn = user_secret("Key", "gpg-key");
        let passphrase_secret_arn = user_secret("Passphrase", "gpg-passphrase");
        let secrets_wo_version = [("key_secret", &key_secret_arn), ("passphrase_secret", &passphrase_secret_arn)]
            .iter()
            .filter(|(_, arn)| arn.is_none())
            .find_map(|(k, _)| kids.str_field(k, "value").as_deref().and_then(written_version));
        // The managed signing image: its project found means the block was there.
        cfg.signing_image = kids.observed("signing_image").map(|p| SigningImageCfg {
            dockerfile: p.get("environment").and_then(|e| e.get("variables")?.get("DOCKERFILE")?.as_str().map(str::to_string)),
            schedule: Some(kids.str_field("signing_image_schedule", "schedule").unwrap_or_default()),
        });
        cfg.signing = Some(SigningCfg {
            key_secret_arn,
            passphrase_secret_arn,
            key_wo: None,
            passphrase_wo: None,
            secrets_wo_version,
            image: kids.observed("signer").and_then(|p| p.get("environment")?.get("image")?.as_str().map(str::to_string)).filter(|_| cfg.signing_image.is_none()),
        });
        let copier_vars = kids.observed("copier").and_then(|p| p.get("environment")?.get("variables").cloned());
        cfg.publish = Some(PublishCfg {
            bucket_arn: first_resource(kids.field("copier_role", "inline_policies"), "copy", "Publish").map(|r| r.trim_end_matches("/*").to_string()).unwrap_or_default(),
            prefix: copier_vars.as_ref().and_then(|v| v.get("PUBLISH_PREFIX")?.as_str().map(str::to_string)),
        });
        cfg.log_retention_days = kids.field("logs", "retention_in_days").and_then(Json::as_i64);
        cfg.artifact_expiration_days = kids.field("artifact_bucket", "lifecycle").and_then(|l| l.get("expire_days")).and_then(Json::as_i64);
        cfg.tags = Some(kids.user_tags("pipeline", &aws.default_tags)).filter(|t| !t.is_empty());
        Ok(cfg)
    }
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<ReleasePipelineResource>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Arc<Common> {
        Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "agent"), tags: Default::default(), region: "us-west-2".into(), account: "123456789012".into() })
    }

    fn cfg(keys: &[&str]) -> ReleasePipeline {
        ReleasePipeline {
            name: "ecs-agent".into(),
            source: Some(SourceCfg {
                connection_arn: "arn:aws:codestar-connections:us-west-2:123456789012:connection/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f".into(),
                repository: "example-org/amazon-ecs-agent".into(),
                branch: "master".into(),
                detect_changes: Some(true),
            }),
            builders: Some(keys.iter().map(|k| (k.to_string(), BuilderCfg { buildspec: format!("buildspecs/{k}.yml"), ..Default::default() })).collect()),
            signing: Some(SigningCfg {
                key_secret_arn: Some("arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-key-AbCdEf".into()),
                passphrase_secret_arn: Some("arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-passphrase-GhIjKl".into()),
                ..Default::default()
            }),
            publish: Some(PublishCfg { bucket_arn: "arn:aws:s3:::example-releases".into(), prefix: None }),
            ..Default::default()
        }
    }

    #[test]
    fn each_builder_is_a_project_a_role_an_action_and_a_signer_input() {
        let g = build_graph(&cfg(&["amd64", "arm64"]), common()).unwrap();
        assert_eq!(g.wanted_keys().len(), 2 + 2 * 2 + 4 + 2);
        let st = stages(&cfg(&["amd64", "arm64"]));
        assert_eq!(st.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["Source", "Build", "Sign", "Publish"]);
        assert_eq!(st[1].actions.iter().map(|a| a.namespace.clone().unwrap()).collect::<Vec<_>>(), ["build_amd64", "build_arm64"]);
        let sign = &st[2].actions[0];
        assert_eq!(sign.input_artifacts, ["build_amd64", "build_arm64"]);
        let env: Json = serde_json::from_str(&sign.configuration["EnvironmentVariables"]).unwrap();
        assert_eq!(env[1], json!({"name": "ARTIFACT_ARM64", "value": "#{build_arm64.ARTIFACT_NAME}", "type": "PLAINTEXT"}));
        assert_eq!(observed_artifact_variables(Some(sign)), BTreeMap::from([("amd64".into(), "ARTIFACT_NAME".into()), ("arm64".into(), "ARTIFACT_NAME".into())]));
    }

    #[test]
    fn only_the_signer_policy_names_the_secrets() {
        let c = common();
        let s = cfg(&["amd64"]).signing.unwrap();
        let signer = signer_policy(&c, "ecs-agent", "b", &s.secrets(&c, "ecs-agent"), None).to_string();
        assert!(
            signer.contains("secretsmanager:GetSecretValue")
                && signer.contains(s.key_secret_arn.as_deref().unwrap())
                && signer.contains(s.passphrase_secret_arn.as_deref().unwrap())
        );
        let others =
            [policy(project_statements(&c, "ecs-agent", "b", true)), copier_policy(&c, "ecs-agent", "b", &cfg(&[]).publish.unwrap()), pipeline_policy(&c, "x", "b", vec![])];
        assert!(others.iter().all(|p| !p.to_string().contains("secretsmanager")));
    }

    #[test]
    fn audit_children_are_wanted_only_with_the_block() {
        let mut c = cfg(&["amd64"]);
        let without = build_graph(&c, common()).unwrap();
        c.audit = Some(AuditCfg::default());
        let with = build_graph(&c, common()).unwrap();
        let audit = ["audit_bucket", "audit_logs", "audit_role", "audit_trail"];
        assert!(audit.iter().all(|k| without.node(k).is_some_and(|n| !n.wanted())), "kept unwanted so a recorded one is deleted");
        assert_eq!(with.wanted_keys().len(), without.wanted_keys().len() + 4);
        let trail = with.node("audit_trail").unwrap().spec();
        assert_eq!(trail["bucket"], "<audit_bucket>");
        assert_eq!(trail["role"], "<audit_role>");
        assert_eq!(trail["log_group_arn"], "arn:aws:logs:us-west-2:123456789012:log-group:/cxflow/release/ecs-agent/audit:*");
        assert_eq!(trail["multi_region"], false);
        assert_eq!(with.node("audit_logs").unwrap().spec()["retention_in_days"], 180);
    }

    #[test]
    fn cloudtrail_may_write_the_bucket_and_its_own_streams_only() {
        let c = common();
        let trail = trail_arn(&c, "ecs-agent");
        assert_eq!(trail, "arn:aws:cloudtrail:us-west-2:123456789012:trail/ecs-agent-audit");
        let b = trail_bucket_policy(&c, "bkt", &trail);
        let st = b["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!((st[0]["Action"].as_str(), st[0]["Resource"].as_str()), (Some("s3:GetBucketAcl"), Some("arn:aws:s3:::bkt")));
        assert_eq!((st[1]["Action"].as_str(), st[1]["Resource"].as_str()), (Some("s3:PutObject"), Some("arn:aws:s3:::bkt/AWSLogs/123456789012/*")));
        assert_eq!(st[1]["Condition"]["StringEquals"], json!({"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail}));
        assert!(st.iter().all(|s| s["Principal"] == json!({"Service": "cloudtrail.amazonaws.com"}) && s["Condition"]["StringEquals"]["aws:SourceArn"] == trail));
        let r = trail_role_policy(&c, "ecs-agent");
        assert_eq!(
            r["Statement"],
            json!([{"Sid": "Deliver", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": "arn:aws:logs:us-west-2:123456789012:log-group:/cxflow/release/ecs-agent/audit:log-stream:123456789012_CloudTrail_*"}])
        );
    }

    #[test]
    fn selectors_record_read_management_events_and_the_query_names_the_secrets() {
        let sel = serde_json::to_value(audit_selectors()).unwrap();
        assert_eq!(
            sel[0]["fields"],
            json!([{"field": "eventCategory", "equals": ["Management"]}, {"field": "readOnly", "equals": ["true"]},
                   {"field": "eventSource", "not_equals": ["kms.amazonaws.com", "rdsdata.amazonaws.com"]}])
        );
        let key = "arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-key-AbCdEf";
        assert_eq!(secret_ids(key), [key, "arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-key", "release/gpg-key"]);
        assert_eq!(secret_ids("arn:aws:secretsmanager:us-west-2:123456789012:secret:plain"), ["arn:aws:secretsmanager:us-west-2:123456789012:secret:plain", "plain"]);
        let q = audit_query(&[key, "arn:aws:secretsmanager:us-west-2:123456789012:secret:release/pass-GhIjKl"]);
        assert_eq!(q.lines().count(), 3, "{q}");
        assert!(q.starts_with("fields @timestamp, userIdentity.arn, sourceIPAddress, requestParameters.secretId\n| filter eventSource = \"secretsmanager.amazonaws.com\" and eventName = \"GetSecretValue\" and (requestParameters.secretId in [\""), "{q}");
        assert!(
            q.contains("\"release/gpg-key\", \"arn:aws:secretsmanager:us-west-2:123456789012:secret:release/pass-GhIjKl\"") && q.ends_with("])\n| sort @timestamp desc"),
            "{q}"
        );
        // The provider's own secrets (write-only values) by name, whatever suffix AWS gave their ARNs.
        let q = audit_query(&[key, "cxflow/release/ecs-agent/gpg-passphrase"]);
        assert!(q.contains("requestParameters.secretId in [") && q.contains(" or requestParameters.secretId like \"cxflow/release/ecs-agent/gpg-passphrase\")"), "{q}");
    }

    #[test]
    fn names_fit_aws_limits() {
        let long = "a".repeat(80);
        assert!(role_name(&long, "-b-abcdefghijklmnopqrst").len() <= 64);
        assert!(bucket_name(&long, "123456789012", "ap-southeast-2").len() <= 63);
        assert!(audit_bucket_name(&long, "123456789012", "ap-southeast-2").len() <= 63);
        assert!(trail_name(&long).len() <= 128);
    }
}
