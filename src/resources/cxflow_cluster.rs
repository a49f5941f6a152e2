//! `cxflow_cluster`: the whole CxFlow deployment on ECS Fargate as one
//! resource — network, HTTPS load balancer with an ACM certificate validated
//! in Route53, ECR repository, ECS cluster, and per environment an execution
//! role and a service reading its secrets from `/<name>/<environment>/...`,
//! pinned to the digest of its image tag; optionally the CI pusher's role.
//!
//! Read top to bottom: typed configuration → schema → validation (no AWS
//! calls) → the children and their dependencies → outputs → import.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws::{Aws, aws_err};
use crate::children::ecs::{Container, IMAGE_TAG_LABEL, LbTarget, ServiceNode, TaskDefinitionNode};
use crate::children::edge::{AliasRecordNode, CertificateNode, CertificateValidationNode, HttpsListenerNode, LoadBalancerNode};
use crate::children::iam::{RoleNode, service_trust};
use crate::children::lb::{Conditions, HealthCheck, ListenerRuleNode, TargetGroupNode};
use crate::children::logs::LogGroupNode;
use crate::children::network::{ElasticIpNode, FlowLogNode, InternetGatewayNode, NatGatewayNode, RouteTableNode, Rule, SecurityGroupNode, SubnetNode, VpcNode, VpcOf};
use crate::children::platform::{ClusterNode, RepositoryNode, RepositorySpec, keep_latest_policy};
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren};
use crate::engine::{Graph, Node, names};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};

pub const TYPE_NAME: &str = "cxflow_cluster";

const CONTAINER: &str = "cxflow";
const CONTAINER_PORT: i64 = 8080;
const HEALTH_PATH: &str = "/actuator/health";
const HEALTH_MATCHER: &str = "200-299";
const LOG_RETENTION_DAYS: i64 = 30;
const DEFAULT_CPU: i64 = 512;
const DEFAULT_MEMORY: i64 = 2048;
const DEFAULT_KEEP_IMAGES: i64 = 5;
const DEFAULT_TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_CERT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const MAX_AZS: i64 = 6;

/// The SSM parameters every CxFlow service reads unless its environment's
/// `secrets` says otherwise: variable → key under `/<name>/<env>/`. These
/// are the keys of seed 000's vault pipeline.
pub const DEFAULT_SECRETS: &[(&str, &str)] = &[
    ("CHECKMARX_USERNAME", "checkmarx/username"),
    ("CHECKMARX_PASSWORD", "checkmarx/password"),
    ("CHECKMARX_BASE_URL", "checkmarx/url"),
    ("CHECKMARX_CLIENT_SECRET", "checkmarx/token"),
    ("GITLAB_TOKEN", "gitlab/token"),
    ("GITLAB_WEBHOOK_TOKEN", "gitlab/webhook_token"),
];
/// The webhook token's key before the seed's names were adopted (schema
/// version 1 and earlier); states of those versions keep reading it.
const LEGACY_WEBHOOK_KEY: &str = "gitlab/webhook-token";
const WEBHOOK_TOKEN_VAR: &str = "GITLAB_WEBHOOK_TOKEN";
const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";

fn default_secrets() -> BTreeMap<String, String> {
    DEFAULT_SECRETS.iter().map(|(v, k)| (v.to_string(), k.to_string())).collect()
}

/// The environment variable an extra SSM key is passed as: `bitbucket/token` → `BITBUCKET_TOKEN`.
fn variable_of(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

// ------------------------------------------------------------------ typed configuration and state

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Environment {
    pub image_tag: String,
    pub desired_count: Option<i64>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    /// Variable → SSM key under the environment's prefix; [`DEFAULT_SECRETS`] when unset.
    pub secrets: Option<BTreeMap<String, String>>,
    /// Extra SSM keys under the environment's prefix (e.g. `bitbucket/token`).
    pub extra_secrets: Option<Vec<String>>,
    pub environment: Option<BTreeMap<String, String>>,
    /// Host name the environment is served at; `<env>.<domain>` when unset.
    pub hostname: Option<String>,
}

impl Environment {
    /// Every secret the service reads: variable → key under its prefix.
    pub fn secret_map(&self) -> BTreeMap<String, String> {
        let mut m = self.secrets.clone().unwrap_or_else(default_secrets);
        for k in self.extra_secrets.iter().flatten() {
            m.insert(variable_of(k), k.clone());
        }
        m
    }
}

/// A role the CI job that builds the image and writes the secrets assumes
/// through its OIDC token (GitLab or GitHub).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct CiRole {
    pub oidc_provider_arn: String,
    pub subjects: Vec<String>,
    pub audience: Option<String>,
    pub name: Option<String>,
}

impl CiRole {
    /// The OIDC provider's host: `gitlab.com`, `token.actions.githubusercontent.com`.
    fn host(&self) -> &str {
        self.oidc_provider_arn.split_once(":oidc-provider/").map(|(_, h)| h).unwrap_or_default()
    }
    fn audience(&self) -> String {
        match &self.audience {
            Some(a) => a.clone(),
            None if self.host() == GITHUB_OIDC_HOST => "sts.amazonaws.com".to_string(),
            None => format!("https://{}", self.host()),
        }
    }
    fn trust(&self) -> serde_json::Value {
        let host = self.host();
        let mut subjects = self.subjects.clone();
        subjects.sort();
        let sub_op = if subjects.iter().any(|s| s.contains('*') || s.contains('?')) { "StringLike" } else { "StringEquals" };
        let mut cond = serde_json::Map::new();
        cond.insert("StringEquals".into(), json!({ format!("{host}:aud"): self.audience() }));
        let entry = cond.entry(sub_op.to_string()).or_insert_with(|| json!({}));
        entry[format!("{host}:sub")] = json!(subjects);
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": self.oidc_provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond,
        }]})
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Vpc {
    pub cidr_block: Option<String>,
    pub az_count: Option<i64>,
    /// `single`, `per_az` or `none`.
    pub nat_gateways: Option<String>,
    pub flow_log_bucket_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct ExistingNetwork {
    pub vpc_id: String,
    pub public_subnet_ids: Vec<String>,
    pub private_subnet_ids: Vec<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Ecr {
    pub image_tag_mutability: Option<String>,
    pub scan_on_push: Option<bool>,
    pub encryption_type: Option<String>,
    pub kms_key_arn: Option<String>,
    pub keep_images: Option<i64>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub dns_zone: String,
    pub domain: String,
    pub environments: BTreeMap<String, Environment>,
    #[serde(default)]
    pub vpc: Vec<Vpc>,
    #[serde(default)]
    pub network: Vec<ExistingNetwork>,
    pub webhook_source_cidrs: Vec<String>,
    pub container_insights: Option<bool>,
    #[serde(default)]
    pub ecr: Vec<Ecr>,
    pub certificate_arn: Option<String>,
    pub tls_policy: Option<String>,
    pub wait_for_steady_state: Option<bool>,
    pub pin_image_digests: Option<bool>,
    #[serde(default)]
    pub ci_role: Vec<CiRole>,
    /// Per environment: the image its task definition runs (resolved at plan).
    pub images: Option<BTreeMap<String, String>>,
    pub tags: Option<BTreeMap<String, String>>,
    /// Kept for the certificate validation wait (part of the standard `timeouts` block).
    pub timeouts: Option<BTreeMap<String, Option<String>>>,
}

impl Cluster {
    fn host(&self, env: &str) -> String {
        self.environments.get(env).and_then(|e| e.hostname.clone()).unwrap_or_else(|| format!("{env}.{}", self.domain))
    }
    fn repo_uri(&self, c: &Common) -> String {
        format!("{}.dkr.ecr.{}.amazonaws.com/{}", c.account, c.region, self.name)
    }
    /// The image environment `env` runs: the digest plan resolved, else its tag.
    fn image(&self, env: &str, e: &Environment, c: &Common) -> String {
        self.images.as_ref().and_then(|m| m.get(env).cloned()).unwrap_or_else(|| format!("{}:{}", self.repo_uri(c), e.image_tag))
    }
    fn service_name(&self, env: &str) -> String {
        format!("{}-{env}", self.name)
    }
    fn log_group(&self, env: &str) -> String {
        format!("/app/{}-{env}", self.name)
    }
    fn ssm_prefix(&self, env: &str) -> String {
        format!("/{}/{env}", self.name)
    }
    fn vpc_settings(&self) -> Option<Vpc> {
        if !self.network.is_empty() {
            return None;
        }
        Some(self.vpc.first().cloned().unwrap_or_default())
    }
    fn az_count(&self) -> usize {
        self.vpc_settings().and_then(|v| v.az_count).unwrap_or(2) as usize
    }
    fn certificate_timeout(&self) -> Duration {
        let t = self.timeouts.as_ref().and_then(|t| t.get("certificate").cloned().flatten());
        t.as_deref().and_then(crate::framework::check::parse_duration).unwrap_or(DEFAULT_CERT_TIMEOUT)
    }
}

/// Environment names become parts of AWS names and child keys.
fn env_key(env: &str) -> String {
    env.replace('-', "_")
}

/// A listener rule priority that stays put when environments come and go.
fn priority(env: &str) -> i64 {
    1 + (names::fnv1a(env) % 49_000) as i64
}

// ------------------------------------------------------------------ schema

const SSM_KEY_RE: &str = "[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,200}";
const DNS_RE: &str = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?";

fn schema_block() -> Block {
    let env_attrs = vec![
        Attribute::new("image_tag", Type::String)
            .required()
            .check(Check::Matches("[A-Za-z0-9_.-]{1,128}", "an image tag of 1-128 letters, digits, `_`, `.` or `-`"))
            .describe(
                "Tag of the CxFlow image in the cluster's ECR repository to run, e.g. `latest` or `1.6.15`. A moving tag is fine: \
                 with `pin_image_digests` (the default) plan resolves it to its digest and the task definition runs \
                 `<repository>@sha256:...`, so a re-pushed tag shows in the plan as a new digest for the environments on that \
                 tag, and apply rolls only their services.",
            ),
        Attribute::new("desired_count", Type::Number).default(Value::int(1)).check(Check::Int(0, 1000)).describe("Number of tasks."),
        Attribute::new("cpu", Type::Number).default(Value::int(DEFAULT_CPU)).check(Check::IntIn(&[256, 512, 1024, 2048, 4096, 8192, 16384])).describe("Fargate CPU units."),
        Attribute::new("memory", Type::Number).default(Value::int(DEFAULT_MEMORY)).check(Check::Int(512, 122880)).describe("Fargate memory in MiB (valid for `cpu`)."),
        Attribute::new("secrets", Type::map(Type::String))
            .default(Value::Map(default_secrets().into_iter().map(|(k, v)| (k, Value::string(v))).collect()))
            .check(Check::keys(Check::Matches("[A-Za-z_][A-Za-z0-9_]*", "a variable name: letters, digits and underscores, not starting with a digit")))
            .check(Check::each(Check::Matches(SSM_KEY_RE, "a key relative to /<name>/<environment>/, e.g. gitlab/webhook_token")))
            .describe(
                "Environment variable → SSM key under `/<name>/<environment>/` for every parameter CxFlow reads. Unset: the keys of \
                 the seed's vault pipeline, `CHECKMARX_USERNAME` = `checkmarx/username`, `CHECKMARX_PASSWORD` = `checkmarx/password`, \
                 `CHECKMARX_BASE_URL` = `checkmarx/url` (a plain String parameter), `CHECKMARX_CLIENT_SECRET` = `checkmarx/token`, \
                 `GITLAB_TOKEN` = `gitlab/token` and `GITLAB_WEBHOOK_TOKEN` = `gitlab/webhook_token`. Setting it replaces that table \
                 (give every variable); `extra_secrets` adds to it. The `secret_keys` output lists what each environment reads, for \
                 `cxflow_secret_sync.required_keys`. States written before these defaults keep reading `gitlab/webhook-token` until \
                 `secrets` is set.",
            ),
        Attribute::new("hostname", Type::String)
            .optional()
            .check(Check::Matches(DNS_RE, "a DNS name such as production.cxflow.example.com"))
            .describe("Host name the environment is served at: `domain` itself or one label under it (which the certificate covers). Default `<environment>.<domain>`."),
        Attribute::new("extra_secrets", Type::list(Type::String))
            .optional()
            .check(Check::each(Check::Matches(SSM_KEY_RE, "a key relative to /<name>/<environment>/, e.g. bitbucket/token")))
            .describe("More SSM keys under the environment's prefix to pass to CxFlow, e.g. `bitbucket/token` or `auth0/client-secret` (variable `BITBUCKET_TOKEN`, `AUTH0_CLIENT_SECRET`)."),
        Attribute::new("environment", Type::map(Type::String))
            .optional()
            .check(Check::keys(Check::Matches("[A-Za-z_][A-Za-z0-9_]*", "letters, digits and underscores, not starting with a digit")))
            .describe("Extra plain environment variables for the container."),
    ];
    let attrs = vec![
        Attribute::new("name", Type::String)
            .required()
            .force_new()
            .check(Check::Matches(
                "[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?",
                "1-20 lowercase letters, digits or hyphens, not starting or ending with a hyphen (it prefixes ALB and target group names, limited to 32 characters)",
            ))
            .describe("Name of the deployment. Prefixes every AWS object and the SSM paths `/<name>/<environment>/...`."),
        Attribute::new("dns_zone", Type::String)
            .required()
            .force_new()
            .check(Check::Matches(DNS_RE, "a DNS name such as example.com"))
            .describe("An existing public Route53 hosted zone, e.g. `example.com`."),
        Attribute::new("domain", Type::String).required().force_new().check(Check::Matches(DNS_RE, "a DNS name such as cxflow.example.com")).describe(
            "Domain of the cluster inside `dns_zone`. Environment `<env>` is served at `<env>.<domain>` unless its `hostname` says \
                 otherwise; the certificate covers `<domain>` and `*.<domain>`, so environments come and go without a new certificate.",
        ),
        Attribute::nested("environments", Nesting::Map, env_attrs).required().describe("One CxFlow service per environment, keyed by environment name."),
        Attribute::new("webhook_source_cidrs", Type::set(Type::String))
            .required()
            .check(Check::each(Check::Ipv4Cidr))
            .describe("CIDRs the Git host sends webhooks from. The load balancer accepts HTTPS (443) from these only."),
        Attribute::new("container_insights", Type::Bool).default(Value::Bool(true)).describe("Enable ECS Container Insights on the cluster."),
        Attribute::new("certificate_arn", Type::String)
            .optional()
            .check(Check::Arn { service: "acm", resource: "certificate/" })
            .describe("Use this ACM certificate instead of requesting and validating one."),
        Attribute::new("tls_policy", Type::String)
            .default(Value::string(DEFAULT_TLS_POLICY))
            .check(Check::Matches("ELBSecurityPolicy-[A-Za-z0-9-]+", "an ALB security policy such as ELBSecurityPolicy-TLS13-1-2-2021-06"))
            .describe("ALB security policy (TLS 1.2 and 1.3 by default)."),
        Attribute::new("wait_for_steady_state", Type::Bool).default(Value::Bool(true)).describe("Wait until every service's deployment completes."),
        Attribute::new("pin_image_digests", Type::Bool).default(Value::Bool(true)).describe(
            "Resolve each environment's `image_tag` to its digest at plan time (one `ecr:DescribeImages` per environment) and run the \
             digest. A tag that does not exist yet gives a warning and the service is created on the tag; the first plan after the \
             image is pushed pins it. `false`: task definitions name the tag, and a re-pushed tag reaches tasks only when they restart.",
        ),
        Attribute::new("cluster_arn", Type::String).computed().describe("ARN of the ECS cluster."),
        Attribute::new("repository_url", Type::String).computed().describe("URL of the ECR repository to push CxFlow images to."),
        Attribute::new("load_balancer_dns_name", Type::String).computed().describe("DNS name of the load balancer."),
        Attribute::new("execution_role_arns", Type::map(Type::String))
            .computed()
            .describe("Per environment: the task execution role, which reads only that environment's SSM path and writes only its log group."),
        Attribute::new("images", Type::map(Type::String))
            .computed()
            .describe("Per environment: the image its task definition runs, `<repository>@sha256:...` once the tag resolves (see `pin_image_digests`)."),
        Attribute::new("secret_keys", Type::map(Type::list(Type::String)))
            .computed()
            .describe("Per environment: every SSM key (relative to its `ssm_path_prefixes` entry) the service reads, sorted. Pass it to `cxflow_secret_sync.required_keys`."),
        Attribute::new("ci_policy_json", Type::String).computed().describe(
            "A least-privilege IAM policy for the CI job that builds and pushes the CxFlow image and writes the environments' SSM \
             parameters: ECR push and pull on this repository only, `ecr:GetAuthorizationToken`, `ssm:PutParameter` under each \
             environment's path, and `kms:Encrypt`/`kms:GenerateDataKey` through SSM for SecureStrings. `ci_role` gets exactly this policy.",
        ),
        Attribute::new("ci_role_arn", Type::String).computed().describe("ARN of the role `ci_role` creates; null without a `ci_role` block."),
        Attribute::new(
            "gitlab_webhooks",
            Type::map(Type::object([
                ("url", Type::String),
                ("push_events", Type::Bool),
                ("merge_requests_events", Type::Bool),
                ("enable_ssl_verification", Type::Bool),
                ("secret_token_parameter", Type::String),
            ])),
        )
        .computed()
        .describe(
            "Per environment: what to enter in the GitLab project's *Settings → Webhooks* (the provider cannot reach GitLab): the URL, \
             the trigger events (push and merge request), SSL verification on, and the SSM parameter holding the secret token.",
        ),
        Attribute::new("vpc_id", Type::String).computed().describe("The VPC the services run in."),
        Attribute::new("webhook_urls", Type::map(Type::String)).computed().describe("Per environment: the URL to give the Git host's webhook."),
        Attribute::new("service_arns", Type::map(Type::String)).computed().describe("Per environment: the ECS service ARN."),
        Attribute::new("ssm_path_prefixes", Type::map(Type::String))
            .computed()
            .describe("Per environment: the SSM path the service reads its secrets from (use as `cxflow_secret_sync.path_prefix`)."),
    ];
    let vpc = Block::new(vec![
        Attribute::new("cidr_block", Type::String)
            .default(Value::string("10.0.0.0/16"))
            .force_new()
            .check(Check::Ipv4Cidr)
            .describe("VPC CIDR, between /16 and /22. Public and private subnets are carved from it."),
        Attribute::new("az_count", Type::Number).default(Value::int(2)).force_new().check(Check::Int(2, MAX_AZS)).describe("Availability zones to spread subnets over."),
        Attribute::new("nat_gateways", Type::String)
            .default(Value::string("single"))
            .check(Check::OneOf(&["single", "per_az", "none"]))
            .describe("`single`, `per_az` or `none` (private subnets without internet access)."),
        Attribute::new("flow_log_bucket_arn", Type::String)
            .optional()
            .check(Check::Arn { service: "s3", resource: "" })
            .describe("S3 bucket ARN for VPC flow logs; none when unset."),
    ]);
    let network = Block::new(vec![
        Attribute::new("vpc_id", Type::String).required().check(Check::Matches("vpc-[0-9a-f]+", "a VPC ID such as vpc-0123456789abcdef0")).describe("Existing VPC."),
        Attribute::new("public_subnet_ids", Type::list(Type::String))
            .required()
            .check(Check::Items(2, 16))
            .describe("Public subnets (in at least two zones) for the load balancer."),
        Attribute::new("private_subnet_ids", Type::list(Type::String)).required().check(Check::Items(1, 16)).describe("Private subnets for the tasks."),
    ]);
    let ecr = Block::new(vec![
        Attribute::new("image_tag_mutability", Type::String).default(Value::string("MUTABLE")).check(Check::OneOf(&["MUTABLE", "IMMUTABLE"])).describe(
            "`MUTABLE` (default) or `IMMUTABLE`. Mutable, so that the seed's flow of re-pushing `latest` works; deployments stay \
                 reproducible because task definitions run the digest plan resolved (`pin_image_digests`).",
        ),
        Attribute::new("scan_on_push", Type::Bool).default(Value::Bool(true)).describe("Scan images on push."),
        Attribute::new("encryption_type", Type::String).default(Value::string("AES256")).force_new().check(Check::OneOf(&["AES256", "KMS"])).describe("`AES256` or `KMS`."),
        Attribute::new("kms_key_arn", Type::String).optional().force_new().check(Check::Arn { service: "kms", resource: "" }).describe("KMS key for `encryption_type = \"KMS\"`."),
        Attribute::new("keep_images", Type::Number)
            .default(Value::int(DEFAULT_KEEP_IMAGES))
            .check(Check::Int(1, 1000))
            .describe("Images kept by the lifecycle policy besides `latest`."),
    ]);
    let ci_role = Block::new(vec![
        Attribute::new("oidc_provider_arn", Type::String)
            .required()
            .check(Check::Arn { service: "iam", resource: "oidc-provider/" })
            .describe("The account's IAM OIDC provider for the CI system, e.g. `arn:aws:iam::123456789012:oidc-provider/gitlab.com` or `.../token.actions.githubusercontent.com`."),
        Attribute::new("subjects", Type::set(Type::String)).required().check(Check::Items(1, 50)).describe(
            "Token subjects allowed to assume the role. GitLab: `project_path:<group>/<project>:ref_type:branch:ref:<branch>`; \
             GitHub (provider `token.actions.githubusercontent.com`): `repo:<owner>/<repo>:ref:refs/heads/<branch>` or \
             `repo:<owner>/<repo>:environment:<name>`. `*` may stand for the rest after the project.",
        ),
        Attribute::new("audience", Type::String)
            .optional()
            .check(Check::Len(1, 256))
            .describe("The token's `aud`. Default `sts.amazonaws.com` for GitHub, `https://<host>` for GitLab (the `aud` of the job's `id_tokens`)."),
        Attribute::new("name", Type::String)
            .optional()
            .force_new()
            .check(Check::Matches("[A-Za-z0-9+=,.@_-]{1,64}", "an IAM role name of 1-64 letters, digits or +=,.@_-"))
            .describe("Role name. Default `<name>-ci`."),
    ]);
    Block::new(attrs)
        .with_blocks(vec![
            NestedBlock::new("vpc", Nesting::List, vpc.describe("Create a VPC with public and private subnets, NAT and routing.")).max(1),
            NestedBlock::new("network", Nesting::List, network.describe("Use an existing VPC instead of `vpc`.")).max(1),
            NestedBlock::new("ecr", Nesting::List, ecr.describe("ECR repository settings.")).max(1),
            NestedBlock::new("ci_role", Nesting::List, ci_role.describe("Create a role for the CI job, trusted through its OIDC token, with `ci_policy_json`.")).max(1),
        ])
        .describe(
            "The whole CxFlow deployment on ECS Fargate: network, an HTTPS load balancer (443 from the Git host's webhook CIDRs only, \
             default action a fixed 404), an ACM certificate validated through Route53, one alias record per environment, an ECR \
             repository, an ECS cluster, and per environment an execution role and a service reading its secrets from \
             `/<name>/<environment>/...` in SSM (the keys in `secret_keys`), running the digest its image tag resolves to. \
             Optionally the CI pusher's role (`ci_role`).",
        )
}

// ------------------------------------------------------------------ validation across attributes (no AWS calls)

fn env_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 11
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

fn fargate_memory_ok(cpu: i64, mem: i64) -> bool {
    crate::resources::ecs_fargate_service::memory_allowed(cpu, mem).is_ok()
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let name = c.get("name").as_str();
    let zone = c.get("dns_zone").as_str().map(|z| z.trim_end_matches('.').to_ascii_lowercase());
    if let (Some(dom), Some(z)) = (c.get("domain").as_str().map(|x| x.trim_end_matches('.').to_ascii_lowercase()), &zone) {
        if dom != *z && !dom.ends_with(&format!(".{z}")) {
            d.attr_error(
                Path::attr("domain"),
                "Domain outside the hosted zone",
                format!("{dom} is not inside the hosted zone {z}; the certificate and alias records must live in that zone."),
            );
        }
    }
    if let Some(envs) = c.get("environments").entries() {
        if envs.is_empty() {
            d.attr_error(Path::attr("environments"), "No environments", "Declare at least one environment.");
        }
        let mut prios: BTreeMap<i64, &str> = BTreeMap::new();
        let mut hosts: BTreeMap<String, &str> = BTreeMap::new();
        // Explicit host names claim theirs first, so a clash names the default one.
        let mut ordered: Vec<(&String, &Value)> = envs.iter().collect();
        ordered.sort_by_key(|(_, e)| e.get("hostname").is_null());
        for (env, e) in ordered {
            let p = Path::attr("environments").key(env.clone());
            if !env_name_ok(env) {
                d.attr_error(p.clone(), "Invalid environment name", format!("{env:?}: environment names are 1-11 lowercase letters, digits or hyphens, starting with a letter."));
            } else if let Some(n) = name {
                let tg = format!("{n}-{env}");
                if tg.len() > 32 {
                    d.attr_error(
                        p.clone(),
                        "Name too long",
                        format!("The target group name {tg:?} would be {} characters; AWS allows 32. Shorten name or the environment.", tg.len()),
                    );
                }
            }
            if let Some(other) = prios.insert(priority(env), env) {
                d.attr_error(p.clone(), "Listener rule priority clash", format!("Environments {other:?} and {env:?} map to the same listener rule priority; rename one."));
            }
            validate_environment_secrets(&mut d, &p, e);
            if let (Some(h), Some(dom)) = (e.get("hostname").as_str(), c.get("domain").as_str()) {
                let h = h.trim_end_matches('.').to_ascii_lowercase();
                let dom = dom.trim_end_matches('.').to_ascii_lowercase();
                let one_label = h.strip_suffix(&format!(".{dom}")).is_some_and(|l| !l.is_empty() && !l.contains('.'));
                if h != dom && !one_label {
                    d.attr_error(
                        p.then_attr("hostname"),
                        "Host name outside the certificate",
                        format!("{h} must be {dom} or one label under it (like {env}.{dom}): the certificate covers {dom} and *.{dom}, and a name beyond them would need a new certificate."),
                    );
                } else if let Some(other) = hosts.insert(h.clone(), env) {
                    d.attr_error(p.then_attr("hostname"), "Host name used twice", format!("Environments {other:?} and {env:?} are both served at {h}; each needs its own."));
                }
            } else if let Some(dom) = c.get("domain").as_str() {
                let h = format!("{env}.{}", dom.trim_end_matches('.').to_ascii_lowercase());
                if let Some(other) = hosts.insert(h.clone(), env) {
                    d.attr_error(p.clone(), "Host name used twice", format!("Environments {other:?} and {env:?} are both served at {h}; each needs its own."));
                }
            }
            let cpu = if e.get("cpu").is_null() { Some(DEFAULT_CPU) } else { e.get("cpu").as_i64() };
            let mem = if e.get("memory").is_null() { Some(DEFAULT_MEMORY) } else { e.get("memory").as_i64() };
            if let (Some(cpu), Some(mem)) = (cpu, mem) {
                if !fargate_memory_ok(cpu, mem) {
                    d.attr_error(p.then_attr("memory"), "Invalid Fargate size", format!("Fargate does not offer {cpu} CPU units with {mem} MiB; see the ECS task size table."));
                }
            }
        }
    }
    if let Some(ci) = c.get("ci_role").elements().and_then(|v| v.first()) {
        validate_ci_role(&mut d, ci);
    }
    let vpc = c.get("vpc").elements().and_then(|v| v.first()).cloned().unwrap_or(Value::Null);
    if c.get("network").elements().is_some_and(|n| !n.is_empty()) && !vpc.is_null() {
        d.attr_error(Path::attr("network"), "Conflicting arguments", "Give either a vpc block (create a network) or a network block (use an existing one), not both.");
    }
    if let Some(Ok(n)) = vpc.get("cidr_block").as_str().map(|c| c.parse::<Ipv4Net>()) {
        if !(16..=22).contains(&n.prefix_len()) {
            d.attr_error(
                Path::attr("vpc").index(0).then_attr("cidr_block"),
                "Unsuitable VPC CIDR",
                "The VPC CIDR must be between /16 and /22 so that subnets can be carved from it.",
            );
        }
    }
    d
}

/// An environment's secrets: every variable once, none also a plain variable.
fn validate_environment_secrets(d: &mut Diags, p: &Path, e: &Value) {
    let explicit: Option<BTreeMap<String, String>> = e.get("secrets").entries().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect());
    let mut vars: BTreeMap<String, String> = explicit.unwrap_or_else(default_secrets);
    for (i, k) in e.get("extra_secrets").elements().into_iter().flatten().enumerate() {
        let Some(k) = k.as_str() else { continue };
        let var = variable_of(k);
        if let Some(prev) = vars.insert(var.clone(), k.to_string()) {
            d.attr_error(
                p.then_attr("extra_secrets").index(i),
                "Secret variable set twice",
                format!("{k:?} would be passed as {var}, which already reads {prev:?}; set it in `secrets` under another variable name instead."),
            );
        }
    }
    for var in e.get("environment").entries().into_iter().flat_map(|m| m.keys()) {
        if vars.contains_key(var) {
            d.attr_error(
                p.then_attr("environment").key(var.clone()),
                "Variable is also a secret",
                format!("{var} is read from SSM (`secrets`); a plain value would be ignored by ECS. Remove one."),
            );
        }
    }
}

/// The CI role's subjects must name the project, in the token format of its provider.
fn validate_ci_role(d: &mut Diags, ci: &Value) {
    let p = Path::attr("ci_role").index(0);
    let Some(arn) = ci.get("oidc_provider_arn").as_str() else { return };
    let github = arn.ends_with(&format!(":oidc-provider/{GITHUB_OIDC_HOST}"));
    let (re, what) = if github {
        (r"^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:.+$", "a GitHub subject such as repo:example-org/cxflow-container:ref:refs/heads/main")
    } else {
        (r"^project_path:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+:.+$", "a GitLab subject such as project_path:example-group/cxflow-container:ref_type:branch:ref:main")
    };
    let re = regex::Regex::new(re).expect("subject pattern");
    for s in ci.get("subjects").elements().into_iter().flatten().filter_map(Value::as_str) {
        if !re.is_match(s) {
            d.attr_error(
                p.then_attr("subjects"),
                "Invalid token subject",
                format!("{s:?} is not {what}. The owner and project must be named in full, so that no other project's pipeline can assume the role."),
            );
        }
    }
}

// ------------------------------------------------------------------ the children

/// Subnet CIDRs: public ones first, then private, each a sixteenth of the VPC.
fn subnet_cidrs(vpc: &str, azs: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let net: Ipv4Net = vpc.parse().map_err(|_| format!("{vpc} is not a CIDR"))?;
    let new_len = (net.prefix_len() + 4).min(28);
    let subnets: Vec<Ipv4Net> = net.subnets(new_len).map_err(|e| e.to_string())?.take(azs * 2).collect();
    if subnets.len() < azs * 2 {
        return Err(format!("{vpc} is too small for {azs} zones"));
    }
    Ok((subnets[..azs].iter().map(|s| s.to_string()).collect(), subnets[azs..].iter().map(|s| s.to_string()).collect()))
}

fn repository_arn(cfg: &Cluster, c: &Common) -> String {
    c.fill(&format!("arn:{{partition}}:ecr:{{region}}:{{account}}:repository/{}", cfg.name))
}

fn parameters_arn(cfg: &Cluster, env: &str, c: &Common) -> String {
    c.fill(&format!("arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{}/*", cfg.ssm_prefix(env)))
}

/// Environment `env`'s execution role: its own SSM path and log group, nothing of another environment's.
fn execution_policy(cfg: &Cluster, env: &str, c: &Common) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadEnvironmentParameters", "Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"], "Resource": parameters_arn(cfg, env, c)},
            {"Sid": "DecryptThroughSsm", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": c.fill("arn:{partition}:kms:{region}:{account}:key/*"),
             "Condition": {"StringEquals": {"kms:ViaService": c.fill("ssm.{region}.amazonaws.com")}}},
            {"Sid": "PullCxFlowImages", "Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": repository_arn(cfg, c)},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": c.fill(&format!("arn:{{partition}}:logs:{{region}}:{{account}}:log-group:{}:*", cfg.log_group(env)))}
        ]
    })
}

/// What the CI job that pushes the image and writes the parameters may do (the seed's pusher, scoped).
pub fn ci_policy(cfg: &Cluster, c: &Common) -> serde_json::Value {
    let params: Vec<String> = cfg.environments.keys().map(|e| parameters_arn(cfg, e, c)).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PushCxFlowImages", "Effect": "Allow", "Action": [
                "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:GetDownloadUrlForLayer",
                "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
             "Resource": repository_arn(cfg, c)},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "WriteEnvironmentParameters", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": params},
            {"Sid": "EncryptThroughSsm", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": c.fill("arn:{partition}:kms:{region}:{account}:key/*"),
             "Condition": {"StringEquals": {"kms:ViaService": c.fill("ssm.{region}.amazonaws.com")}}}
        ]
    })
}

fn execution_role_name(cfg: &Cluster, env: &str) -> String {
    names::bounded(&format!("{}-{env}-execution", cfg.name), &format!("{}-{env}", cfg.name), "", 64, |ch| ch.is_ascii_alphanumeric() || "+=,.@-_".contains(ch))
}

fn ci_role_name(cfg: &Cluster, ci: &CiRole) -> String {
    ci.name.clone().unwrap_or_else(|| format!("{}-ci", cfg.name))
}

fn container_for(cfg: &Cluster, env: &str, e: &Environment, c: &Common) -> Container {
    let param = |k: &str| c.fill(&format!("arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{}/{k}", cfg.ssm_prefix(env)));
    let secrets: BTreeMap<String, String> = e.secret_map().iter().map(|(var, k)| (var.clone(), param(k))).collect();
    let image = cfg.image(env, e, c);
    // A digest does not say which tag it came from: the label does (import reads it back).
    let labels = image.contains("@sha256:").then(|| BTreeMap::from([(IMAGE_TAG_LABEL.to_string(), e.image_tag.clone())]));
    Container {
        name: CONTAINER.to_string(),
        image,
        port: Some(CONTAINER_PORT),
        essential: Some(true),
        environment: Some(e.environment.clone().unwrap_or_default()),
        secrets: Some(secrets),
        docker_labels: labels,
        ..Default::default()
    }
}

fn build_graph(cfg: &Cluster, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let mut nodes: Vec<Box<dyn Node<Aws>>> = Vec::new();

    // Network: created, or the user's.
    let (vpc, public, private): (Ref, Vec<Ref>, Vec<Ref>) = match cfg.vpc_settings() {
        Some(v) => {
            let azs = cfg.az_count();
            let cidr = v.cidr_block.clone().unwrap_or_else(|| "10.0.0.0/16".into());
            let (pub_cidrs, priv_cidrs) = subnet_cidrs(&cidr, azs).map_err(|m| Diags::from(Diagnostic::error("Invalid VPC CIDR", m).at(Path::attr("vpc"))))?;
            nodes.push(Box::new(VpcNode { c: c.clone(), cidr, name: cfg.name.clone() }));
            nodes.push(Box::new(InternetGatewayNode { c: c.clone(), name: cfg.name.clone() }));
            let mut public = Vec::new();
            let mut private = Vec::new();
            for i in 0..azs {
                for (is_pub, cidr, list) in [(true, &pub_cidrs[i], &mut public), (false, &priv_cidrs[i], &mut private)] {
                    let kind = if is_pub { "public" } else { "private" };
                    let key = format!("subnet_{kind}_{i}");
                    nodes.push(Box::new(SubnetNode { c: c.clone(), key: key.clone(), name: format!("{}-{kind}-{i}", cfg.name), cidr: cidr.clone(), az_index: i, public: is_pub }));
                    list.push(Ref::dep(key));
                }
            }
            nodes.push(Box::new(RouteTableNode {
                c: c.clone(),
                key: "route_public".into(),
                name: format!("{}-public", cfg.name),
                target_key: "internet_gateway".into(),
                subnet_keys: (0..azs).map(|i| format!("subnet_public_{i}")).collect(),
            }));
            let nats = match v.nat_gateways.as_deref().unwrap_or("single") {
                "per_az" => azs,
                "none" => 0,
                _ => 1,
            };
            for i in 0..nats {
                nodes.push(Box::new(ElasticIpNode { c: c.clone(), key: format!("eip_{i}"), name: format!("{}-nat-{i}", cfg.name) }));
                nodes.push(Box::new(NatGatewayNode {
                    c: c.clone(),
                    key: format!("nat_{i}"),
                    name: format!("{}-nat-{i}", cfg.name),
                    subnet_key: format!("subnet_public_{i}"),
                    eip_key: format!("eip_{i}"),
                }));
            }
            for t in 0..nats {
                let subnets = (0..azs).filter(|i| nats == 1 || *i == t).map(|i| format!("subnet_private_{i}")).collect();
                nodes.push(Box::new(RouteTableNode {
                    c: c.clone(),
                    key: format!("route_private_{t}"),
                    name: format!("{}-private-{t}", cfg.name),
                    target_key: format!("nat_{t}"),
                    subnet_keys: subnets,
                }));
            }
            if let Some(b) = v.flow_log_bucket_arn.clone() {
                nodes.push(Box::new(FlowLogNode { c: c.clone(), bucket_arn: b }));
            }
            (Ref::dep("vpc"), public, private)
        }
        None => {
            let n = cfg.network.first().cloned().unwrap_or_default();
            (Ref::lit(n.vpc_id), n.public_subnet_ids.into_iter().map(Ref::lit).collect(), n.private_subnet_ids.into_iter().map(Ref::lit).collect())
        }
    };
    let created_network = cfg.vpc_settings().is_some();

    // Edge: ALB security group, load balancer, certificate, HTTPS listener.
    nodes.push(Box::new(SecurityGroupNode {
        c: c.clone(),
        key: "alb_security_group".into(),
        name: format!("{}-alb", cfg.name),
        description: format!("{} load balancer: HTTPS from the Git host's webhook ranges", cfg.name),
        vpc: VpcOf::Vpc(vpc.clone()),
        ingress: cfg.webhook_source_cidrs.iter().map(|cidr| Rule::tcp(443, Ref::lit(cidr.clone()))).collect(),
        wanted: true,
    }));
    nodes.push(Box::new(LoadBalancerNode {
        c: c.clone(),
        name: format!("{}-alb", cfg.name),
        subnets: public.clone(),
        security_group: Ref::dep("alb_security_group"),
        after: if created_network { vec!["internet_gateway".into(), "route_public".into()] } else { vec![] },
    }));
    let (certificate, after) = match &cfg.certificate_arn {
        Some(arn) => (Ref::lit(arn.clone()), vec![]),
        None => {
            nodes.push(Box::new(CertificateNode { c: c.clone(), domain: cfg.domain.clone(), names: vec![format!("*.{}", cfg.domain)] }));
            nodes.push(Box::new(CertificateValidationNode { c: c.clone(), zone: cfg.dns_zone.clone(), timeout: cfg.certificate_timeout() }));
            (Ref::dep("certificate"), vec!["certificate_validation".to_string()])
        }
    };
    nodes.push(Box::new(HttpsListenerNode { c: c.clone(), certificate, tls_policy: cfg.tls_policy.clone().unwrap_or_else(|| DEFAULT_TLS_POLICY.into()), after }));

    // Platform: repository, cluster, execution role.
    let ecr = cfg.ecr.first().cloned().unwrap_or_default();
    nodes.push(Box::new(RepositoryNode {
        c: c.clone(),
        key: "repository".into(),
        spec: RepositorySpec {
            name: cfg.name.clone(),
            immutable: ecr.image_tag_mutability.as_deref() == Some("IMMUTABLE"),
            scan_on_push: ecr.scan_on_push.unwrap_or(true),
            encryption: ecr.encryption_type.clone().unwrap_or_else(|| "AES256".into()),
            kms_key: ecr.kms_key_arn.clone(),
            lifecycle: Some(keep_latest_policy(ecr.keep_images.unwrap_or(DEFAULT_KEEP_IMAGES))),
            policy: None,
            owns_policy: false,
        },
    }));
    nodes.push(Box::new(ClusterNode {
        c: c.clone(),
        key: "ecs_cluster".into(),
        name: cfg.name.clone(),
        container_insights: if cfg.container_insights.unwrap_or(true) { "enabled" } else { "disabled" }.into(),
        capacity_providers: Vec::new(),
        default_strategy: Vec::new(),
        exec: None,
        service_connect_namespace: None,
    }));
    // The execution role every environment shared before each got its own
    // (schema version 1): never wanted, so a state that records it deletes it.
    nodes.push(Box::new(RoleNode {
        c: c.clone(),
        key: "execution_role".into(),
        name: names::bounded(&format!("{}-execution", cfg.name), &cfg.name, "", 64, |ch| ch.is_ascii_alphanumeric() || "+=,.@-_".contains(ch)),
        path: "/".into(),
        description: String::new(),
        trust: service_trust("ecs-tasks.amazonaws.com", None),
        managed: Vec::new(),
        inline: BTreeMap::new(),
        wanted: false,
    }));
    // Always in the graph (unwanted without a `ci_role` block), so removing the block deletes the role and import can find it.
    let ci = cfg.ci_role.first().cloned().unwrap_or_default();
    nodes.push(Box::new(RoleNode {
        c: c.clone(),
        key: "ci_role".into(),
        name: ci_role_name(cfg, &ci),
        path: "/".into(),
        description: format!("CI pusher for {}, managed by terraform-provider-cxflow", c.owner),
        trust: ci.trust(),
        managed: Vec::new(),
        inline: BTreeMap::from([("cxflow-ci".to_string(), ci_policy(cfg, &c))]),
        wanted: !cfg.ci_role.is_empty(),
    }));

    // One service per environment.
    for (env, e) in &cfg.environments {
        let k = env_key(env);
        let svc = cfg.service_name(env);
        nodes.push(Box::new(RoleNode {
            c: c.clone(),
            key: format!("execution_role_{k}"),
            name: execution_role_name(cfg, env),
            path: "/".into(),
            description: format!("Managed by terraform-provider-cxflow for {} ({env})", c.owner),
            trust: service_trust("ecs-tasks.amazonaws.com", Some(json!({"StringEquals": {"aws:SourceAccount": c.account}}))),
            managed: Vec::new(),
            inline: BTreeMap::from([("cxflow-execution".to_string(), execution_policy(cfg, env, &c))]),
            wanted: true,
        }));
        nodes.push(Box::new(AliasRecordNode { c: c.clone(), key: format!("dns_{k}"), zone: cfg.dns_zone.clone(), fqdn: cfg.host(env) }));
        nodes.push(Box::new(LogGroupNode { c: c.clone(), key: format!("log_group_{k}"), name: cfg.log_group(env), retention_days: LOG_RETENTION_DAYS, retain: false }));
        nodes.push(Box::new(SecurityGroupNode {
            c: c.clone(),
            key: format!("task_security_group_{k}"),
            name: format!("{svc}-tasks"),
            description: format!("{svc} tasks: 8080 from the load balancer only"),
            vpc: VpcOf::Vpc(vpc.clone()),
            ingress: vec![Rule::tcp(CONTAINER_PORT as i32, Ref::dep("alb_security_group"))],
            wanted: true,
        }));
        nodes.push(Box::new(TargetGroupNode {
            c: c.clone(),
            key: format!("target_group_{k}"),
            name: svc.clone(),
            port: CONTAINER_PORT,
            protocol: crate::children::lb::DEFAULT_TG_PROTOCOL.into(),
            vpc: VpcOf::Vpc(vpc.clone()),
            health: HealthCheck::http(HEALTH_PATH, HEALTH_MATCHER),
            attributes: BTreeMap::new(),
            wanted: true,
        }));
        nodes.push(Box::new(ListenerRuleNode {
            c: c.clone(),
            key: format!("listener_rule_{k}"),
            listener: Ref::dep("https_listener"),
            target_group: Ref::dep(format!("target_group_{k}")),
            priority: priority(env),
            conditions: Conditions { host_headers: vec![cfg.host(env)], ..Default::default() },
            wanted: true,
        }));
        nodes.push(Box::new(TaskDefinitionNode {
            c: c.clone(),
            key: format!("task_definition_{k}"),
            family: svc.clone(),
            cpu: e.cpu.unwrap_or(DEFAULT_CPU),
            memory: e.memory.unwrap_or(DEFAULT_MEMORY),
            containers: vec![container_for(cfg, env, e, &c)],
            execution_role: Some(Ref::dep(format!("execution_role_{k}"))),
            task_role: None,
            log_group: Ref::dep(format!("log_group_{k}")),
            service_connect: false,
            runtime_platform: None,
            ephemeral_storage_gib: None,
            volumes: Vec::new(),
            adopts_foreign: false,
        }));
        let mut after = vec![format!("listener_rule_{k}"), "repository".to_string()];
        if created_network {
            after.extend((0..cfg.az_count()).map(|i| format!("subnet_private_{i}")));
        }
        nodes.push(Box::new(ServiceNode {
            c: c.clone(),
            key: format!("service_{k}"),
            cluster: Ref::dep("ecs_cluster"),
            name: svc.clone(),
            task_definition: Ref::dep(format!("task_definition_{k}")),
            desired_count: e.desired_count.unwrap_or(1),
            subnets: private.clone(),
            security_groups: vec![Ref::dep(format!("task_security_group_{k}"))],
            public_ip: false,
            exec: false,
            circuit_breaker: (true, true),
            service_connect: None,
            load_balancer: Some(LbTarget { target_group: Ref::dep(format!("target_group_{k}")), container: CONTAINER.into(), port: CONTAINER_PORT }),
            registry: None,
            wait: cfg.wait_for_steady_state.unwrap_or(true),
            after,
            extras: Default::default(),
        }));
    }
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

/// The longest chain of dependent AWS objects a create needs (for the benchmark's latency bound).
pub fn critical_path(cfg: &Cluster) -> Vec<String> {
    let c = Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, &cfg.name), tags: Default::default(), region: "us-east-1".into(), account: "123456789012".into() });
    build_graph(cfg, c).map(|g| g.critical_path()).unwrap_or_default()
}

// ------------------------------------------------------------------ outputs

fn per_env(planned: &Value, f: impl Fn(&str, &str) -> String) -> Value {
    match (planned.get("name").as_str(), planned.get("environments").entries()) {
        (Some(n), Some(envs)) => Value::Map(envs.keys().map(|e| (e.clone(), Value::string(f(n, e)))).collect()),
        _ => Value::Unknown,
    }
}

/// An environment's secrets as planned (defaults filled): variable → key; `None` while unknown.
fn planned_secrets(e: &Value) -> Option<BTreeMap<String, String>> {
    let mut m: BTreeMap<String, String> = match e.get("secrets") {
        Value::Null => default_secrets(),
        v => v.entries()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect::<Option<_>>()?,
    };
    match e.get("extra_secrets") {
        Value::Null => {}
        v => {
            for k in v.elements()? {
                let k = k.as_str()?;
                m.insert(variable_of(k), k.to_string());
            }
        }
    }
    Some(m)
}

/// Plan's lookups: each environment's image digest (one `ecr:DescribeImages`
/// per environment, concurrently), the CI policy (it names the account), and
/// a warning for environments still on the old webhook key.
async fn plan_lookups(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
    let mut d = Diags::new();
    let cfg: Cluster = match crate::framework::typed::from_value(&p.known_or_null()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let account = match crate::children::account_id(aws).await {
        Ok(a) => a,
        Err(e) => return Diagnostic::error("Could not determine the AWS account", e.to_string()).into(),
    };
    let c = Common { owner: crate::engine::Owner::new(TYPE_NAME, &cfg.name), tags: Default::default(), region: aws.region.clone(), account };
    p.set_attr("ci_policy_json", Value::string(ci_policy(&cfg, &c).to_string()));
    for (env, e) in &cfg.environments {
        if e.secret_map().get(WEBHOOK_TOKEN_VAR).map(String::as_str) == Some(LEGACY_WEBHOOK_KEY) {
            d.push(
                Diagnostic::warning(
                    "Environment reads the old webhook token key",
                    format!(
                        "{env} reads GITLAB_WEBHOOK_TOKEN from {prefix}/{LEGACY_WEBHOOK_KEY}, the key provider versions before the seed's names \
                         used (kept so its running service is not disturbed). The seed's pipeline writes {prefix}/gitlab/webhook_token: once \
                         that parameter exists, set this environment's `secrets` to the table in the docs to move.",
                        prefix = cfg.ssm_prefix(env)
                    ),
                )
                .at(Path::attr("environments").key(env.clone()).then_attr("secrets")),
            );
        }
    }
    let repo = cfg.repo_uri(&c);
    let pin = cfg.pin_image_digests.unwrap_or(true);
    let prior_images: BTreeMap<String, String> =
        prior.get("images").entries().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
    let repo_name = cfg.name.as_str();
    let lookups = cfg.environments.iter().map(|(env, e)| {
        let repo = repo.clone();
        async move {
            if !pin {
                return (env.clone(), Ok(None));
            }
            let r = crate::children::platform::image_digest(aws, None, repo_name, &e.image_tag).await.map(|d| d.map(|dg| format!("{repo}@{dg}")));
            (env.clone(), r)
        }
    });
    let mut images = BTreeMap::new();
    for (env, r) in futures::future::join_all(lookups).await {
        let e = &cfg.environments[&env];
        let at = Path::attr("environments").key(env.clone()).then_attr("image_tag");
        let image = match r {
            Ok(Some(pinned)) => pinned,
            Ok(None) if !pin => format!("{repo}:{}", e.image_tag),
            Ok(None) => {
                // A pin the tag resolved to before stays while the tag is gone (a lifecycle rule, a manual delete).
                let same_tag = prior.get("environments").get(&env).get("image_tag").as_str() == Some(e.image_tag.as_str());
                match prior_images.get(&env).filter(|i| same_tag && i.starts_with(&format!("{repo}@"))) {
                    Some(kept) => {
                        d.push(
                            Diagnostic::warning(
                                "Image tag not found",
                                format!("No image is tagged {:?} in repository {:?} any more; {env} keeps running {kept}.", e.image_tag, cfg.name),
                            )
                            .at(at),
                        );
                        kept.clone()
                    }
                    None => {
                        d.push(
                            Diagnostic::warning(
                                "Image tag not pushed yet",
                                format!(
                                    "No image is tagged {:?} in repository {:?} yet, so {env}'s service is created on the tag and starts tasks once it is pushed. \
                                     The first plan after the push pins its digest.",
                                    e.image_tag, cfg.name
                                ),
                            )
                            .at(at),
                        );
                        format!("{repo}:{}", e.image_tag)
                    }
                }
            }
            Err(err) => {
                d.push(
                    Diagnostic::error("Could not resolve the image tag", format!("{err}. Grant ecr:DescribeImages on the repository, or set pin_image_digests = false.")).at(at),
                );
                continue;
            }
        };
        images.insert(env, Value::string(image));
    }
    p.set_attr("images", Value::Map(images));
    d
}

fn opt(v: Option<impl Into<String>>) -> Value {
    v.map(|s| Value::string(s.into())).unwrap_or(Value::Null)
}

pub struct CxflowCluster;

#[async_trait]
impl Composite<Aws> for CxflowCluster {
    type State = Cluster;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;
    const EXTRA_TIMEOUTS: &'static [&'static str] = &["certificate"];

    fn block() -> Block {
        schema_block()
    }
    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }
    fn schema_version() -> i64 {
        2
    }
    fn derived(p: &mut Value) {
        p.set_attr("ssm_path_prefixes", per_env(p, |n, e| format!("/{n}/{e}")));
        let (urls, keys, hooks) = match (p.get("name").as_str(), p.get("domain").as_str(), p.get("environments").entries()) {
            (Some(name), Some(domain), Some(envs)) => {
                let mut urls = BTreeMap::new();
                let mut keys = BTreeMap::new();
                let mut hooks = BTreeMap::new();
                for (env, e) in envs {
                    let url = match e.get("hostname") {
                        Value::Unknown => Value::Unknown,
                        h => Value::string(format!("https://{}/", h.as_str().map(|h| h.trim_end_matches('.').to_string()).unwrap_or_else(|| format!("{env}.{domain}")))),
                    };
                    let secrets = planned_secrets(e);
                    let token = match &secrets {
                        Some(m) => m.get(WEBHOOK_TOKEN_VAR).map(|k| Value::string(format!("/{name}/{env}/{k}"))).unwrap_or(Value::Null),
                        None => Value::Unknown,
                    };
                    let mut listed: Option<Vec<String>> = secrets.map(|m| m.into_values().collect());
                    if let Some(l) = listed.as_mut() {
                        l.sort();
                        l.dedup();
                    }
                    keys.insert(env.clone(), listed.map(|l| Value::List(l.into_iter().map(Value::string).collect())).unwrap_or(Value::Unknown));
                    hooks.insert(
                        env.clone(),
                        Value::Object(BTreeMap::from([
                            ("url".to_string(), url.clone()),
                            ("push_events".to_string(), Value::Bool(true)),
                            ("merge_requests_events".to_string(), Value::Bool(true)),
                            ("enable_ssl_verification".to_string(), Value::Bool(true)),
                            ("secret_token_parameter".to_string(), token),
                        ])),
                    );
                    urls.insert(env.clone(), url);
                }
                (Value::Map(urls), Value::Map(keys), Value::Map(hooks))
            }
            _ => (Value::Unknown, Value::Unknown, Value::Unknown),
        };
        p.set_attr("webhook_urls", urls);
        p.set_attr("secret_keys", keys);
        p.set_attr("gitlab_webhooks", hooks);
    }
    async fn plan_lookups(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
        plan_lookups(aws, p, prior).await
    }
    fn owner_name(s: &Cluster) -> String {
        s.name.clone()
    }
    fn id(s: &Cluster) -> String {
        s.name.clone()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("name", "The deployment's name.")]
    }
    async fn graph(s: &Cluster, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        p.set_attr("cluster_arn", pc.identity("ecs_cluster"));
        let ci = p.get("ci_role").elements().is_some_and(|c| !c.is_empty());
        p.set_attr("ci_role_arn", if ci { pc.identity("ci_role") } else { Value::Null });
        let vpc = if pc.graph.node("vpc").is_some() {
            pc.identity("vpc")
        } else {
            p.get("network").elements().and_then(|n| n.first()).map(|n| n.get("vpc_id").clone()).unwrap_or(Value::Unknown)
        };
        p.set_attr("vpc_id", vpc);
        p.set_attr("load_balancer_dns_name", pc.output("load_balancer", "dns_name"));
        let repo = match (p.get("name").as_str(), pc.output("repository", "uri")) {
            (_, Value::String(u)) => Value::String(u),
            _ => Value::Unknown,
        };
        p.set_attr("repository_url", repo);
        let envs: Vec<String> = p.get("environments").entries().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        // Existing services keep their ARNs: only new environments' entries are unknown.
        let arns: BTreeMap<String, Value> = envs.iter().map(|e| (e.clone(), pc.identity(&format!("service_{}", env_key(e))))).collect();
        p.set_attr("service_arns", Value::Map(arns));
        let roles: BTreeMap<String, Value> = envs.iter().map(|e| (e.clone(), pc.identity(&format!("execution_role_{}", env_key(e))))).collect();
        p.set_attr("execution_role_arns", Value::Map(roles));
    }
    fn outputs(st: &mut Value, cfg: &Cluster, kids: &Kids<'_>) {
        st.set_attr("cluster_arn", opt(kids.id("ecs_cluster")));
        st.set_attr("ci_role_arn", opt(kids.id("ci_role")));
        // The CI policy names the account and region, which the ECS cluster's ARN carries (import has no plan to take it from).
        if let Some((region, account)) = kids.id("ecs_cluster").and_then(|a| {
            let parts: Vec<&str> = a.split(':').collect();
            (parts.len() > 5).then(|| (parts[3].to_string(), parts[4].to_string()))
        }) {
            let c = Common { owner: crate::engine::Owner::new(TYPE_NAME, &cfg.name), tags: Default::default(), region, account };
            st.set_attr("ci_policy_json", Value::string(ci_policy(cfg, &c).to_string()));
        }
        let roles = cfg.environments.keys().filter_map(|e| kids.id(&format!("execution_role_{}", env_key(e))).map(|a| (e.clone(), Value::string(a)))).collect();
        st.set_attr("execution_role_arns", Value::Map(roles));
        st.set_attr("vpc_id", if kids.id("vpc").is_some() { opt(kids.id("vpc")) } else { opt(cfg.network.first().map(|n| n.vpc_id.clone())) });
        let arns = cfg.environments.keys().filter_map(|e| kids.id(&format!("service_{}", env_key(e))).map(|a| (e.clone(), Value::string(a)))).collect();
        st.set_attr("service_arns", Value::Map(arns));
        st.set_attr("load_balancer_dns_name", opt(kids.output("load_balancer", "dns_name")));
        st.set_attr("repository_url", opt(kids.output("repository", "uri")));
    }

    fn import_seed(id: &str) -> Result<Cluster, Diags> {
        let name = id.trim();
        let ok = regex::Regex::new("^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$").map(|r| r.is_match(name)).unwrap_or(false);
        if !ok {
            return Err(Diagnostic::error("Invalid import ID", "Import a cxflow_cluster by its name, e.g. `terraform import cxflow_cluster.this cxflow`.").into());
        }
        Ok(Cluster { name: name.to_string(), vpc: vec![Vpc::default()], ..Default::default() })
    }
    fn import_identities(cfg: &Cluster, kids: &Kids<'_>) -> BTreeMap<String, crate::engine::Identity> {
        // The certificate the listener serves (when it is ours, its tags say so).
        let mut hints: BTreeMap<String, crate::engine::Identity> = kids
            .str_field("https_listener", "certificate")
            .filter(|c| c.starts_with("arn:"))
            .map(|c| BTreeMap::from([("certificate".to_string(), crate::engine::Identity::new(c))]))
            .unwrap_or_default();
        // A CI role under its default name, in the account an execution role's ARN names (taken only when its tags say it is ours).
        let exec = cfg.environments.keys().find_map(|e| kids.id(&format!("execution_role_{}", env_key(e))));
        if let Some(prefix) = exec.as_deref().and_then(|a| a.split_once(":role/")).map(|(p, _)| p) {
            if kids.id("ci_role").is_none() {
                hints.insert("ci_role".into(), crate::engine::Identity::new(format!("{prefix}:role/{}-ci", cfg.name)));
            }
        }
        hints
    }
    fn upgrade(version: i64, mut raw: serde_json::Value) -> serde_json::Value {
        // Before version 2 every environment read the old webhook token key:
        // it keeps reading it (see `secrets`), so an upgrade changes nothing in AWS.
        if version < 2 {
            if let Some(envs) = raw.get_mut("environments").and_then(|e| e.as_object_mut()) {
                for e in envs.values_mut().filter_map(|e| e.as_object_mut()) {
                    if e.get("secrets").is_none_or(|s| s.is_null()) {
                        let mut legacy = default_secrets();
                        legacy.insert(WEBHOOK_TOKEN_VAR.to_string(), LEGACY_WEBHOOK_KEY.to_string());
                        e.insert("secrets".into(), json!(legacy));
                    }
                }
            }
        }
        raw
    }
    async fn from_observed(aws: &Aws, seed: &Cluster, kids: &Kids<'_>) -> Result<Cluster, Diags> {
        read_config(aws, seed, kids).await
    }
}

// ------------------------------------------------------------------ import

fn import_err(e: impl std::fmt::Display) -> Diags {
    Diagnostic::error("Import failed", e.to_string()).into()
}

/// The configuration the observed children imply. Two things no child
/// observes are looked up: the services the cluster runs (its environments)
/// and the hosted zone the domain is in.
async fn read_config(aws: &Aws, seed: &Cluster, kids: &Kids<'_>) -> Result<Cluster, Diags> {
    let mut cfg = seed.clone();
    let default_tags = &aws.default_tags;
    if kids.id("ecs_cluster").is_none() {
        return Err(Diagnostic::error("Cannot import", format!("No ECS cluster {:?} owned by {TYPE_NAME}/{} exists.", cfg.name, cfg.name)).into());
    }
    if let Some(c) = kids.observed("ecs_cluster") {
        cfg.container_insights = (c.get("container_insights").and_then(|v| v.as_str()) != Some("enabled")).then_some(false);
        cfg.tags = Some(kids.user_tags("ecs_cluster", default_tags)).filter(|t| !t.is_empty());
    }
    // Environments: the services named <name>-<env> in the cluster, once the
    // domain their host names live under is known.
    if cfg.environments.is_empty() && !cfg.domain.is_empty() {
        let arns = aws.ecs().list_services().cluster(&cfg.name).send().await.map_err(|e| import_err(aws_err("ecs:ListServices", e)))?.service_arns().to_vec();
        let owner = format!("{TYPE_NAME}/{}", cfg.name);
        for chunk in arns.chunks(10) {
            let out = aws
                .ecs()
                .describe_services()
                .cluster(&cfg.name)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| import_err(aws_err("ecs:DescribeServices", e)))?;
            for svc in out.services().iter().filter(|s| s.status() == Some("ACTIVE") && crate::children::ecs::service_tags(s).get(crate::engine::OWNER_TAG) == Some(&owner)) {
                if let Some(env) = svc.service_name().and_then(|n| n.strip_prefix(&format!("{}-", cfg.name))) {
                    cfg.environments.insert(env.to_string(), Environment::default());
                }
            }
        }
    }
    let mut images = BTreeMap::new();
    let domain = cfg.domain.clone();
    for (env, e) in cfg.environments.iter_mut() {
        let k = env_key(env);
        if let Some(host) = kids.observed(&format!("listener_rule_{k}")).and_then(|r| r.get("conditions")).and_then(|c| c["host_headers"][0].as_str()) {
            e.hostname = (host != format!("{env}.{domain}")).then(|| host.to_string());
        }
        if let Some(svc) = kids.observed(&format!("service_{k}")) {
            e.desired_count = svc.get("desired_count").and_then(|v| v.as_i64());
        }
        if let Some(td) = kids.observed(&format!("task_definition_{k}")) {
            e.cpu = td.get("cpu").and_then(|v| v.as_str()).and_then(|c| c.parse().ok());
            e.memory = td.get("memory").and_then(|v| v.as_str()).and_then(|c| c.parse().ok());
            let container = td.get("containers").and_then(|c| c.as_array()).and_then(|a| a.iter().find(|c| c["name"] == CONTAINER)).cloned().unwrap_or_default();
            let image = container["image"].as_str().unwrap_or_default().to_string();
            e.image_tag = match container["dockerLabels"][IMAGE_TAG_LABEL].as_str() {
                Some(t) => t.to_string(),
                None => image.rsplit_once(':').map(|(_, t)| t.to_string()).unwrap_or_default(),
            };
            images.insert(env.clone(), image);
            // The default table's variables (and any not named after their key) are `secrets`; the rest were `extra_secrets`.
            let prefix = format!(":parameter/{}/{env}/", seed.name);
            let mut secrets = BTreeMap::new();
            let mut extra = Vec::new();
            for (var, from) in container["secrets"].as_object().into_iter().flatten() {
                let Some((_, key)) = from.as_str().and_then(|f| f.split_once(&prefix)) else { continue };
                if DEFAULT_SECRETS.iter().any(|(v, _)| v == var) || variable_of(key) != *var {
                    secrets.insert(var.clone(), key.to_string());
                } else {
                    extra.push(key.to_string());
                }
            }
            e.secrets = Some(secrets);
            e.extra_secrets = (!extra.is_empty()).then_some(extra);
            let vars: BTreeMap<String, String> =
                container["environment"].as_object().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
            e.environment = (!vars.is_empty()).then_some(vars);
        }
    }
    cfg.images = (!images.is_empty()).then_some(images);
    if let Some(role) = kids.observed("ci_role") {
        let st = &role.get("trust").map(|t| t["Statement"][0].clone()).unwrap_or_default();
        let arn = st["Principal"]["Federated"].as_str().unwrap_or_default().to_string();
        let host = arn.split_once(":oidc-provider/").map(|(_, h)| h.to_string()).unwrap_or_default();
        let cond = &st["Condition"];
        let subjects = ["StringEquals", "StringLike"]
            .iter()
            .find_map(|op| cond[op][format!("{host}:sub")].as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut ci = CiRole { oidc_provider_arn: arn, subjects, audience: None, name: None };
        let aud = cond["StringEquals"][format!("{host}:aud")].as_str().map(str::to_string);
        if aud.as_deref() != Some(ci.audience().as_str()) {
            ci.audience = aud;
        }
        let name = role.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
        if name != ci_role_name(&cfg, &ci) {
            ci.name = Some(name);
        }
        cfg.ci_role = vec![ci];
    }
    if let Some(l) = kids.observed("https_listener") {
        cfg.tls_policy = l.get("ssl_policy").and_then(|v| v.as_str()).filter(|p| *p != DEFAULT_TLS_POLICY).map(str::to_string);
        let cert = l.get("certificate").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        // The listener's certificate is the user's unless its tags say this resource requested it.
        cfg.certificate_arn = None;
        if kids.id("certificate").is_none() && cert.starts_with("arn:") {
            let tags = aws.acm().list_tags_for_certificate().certificate_arn(&cert).send().await.map_err(|e| import_err(aws_err("acm:ListTagsForCertificate", e)))?;
            let ours = tags.tags().iter().any(|t| t.key() == crate::engine::OWNER_TAG && t.value() == Some(format!("{TYPE_NAME}/{}", cfg.name).as_str()));
            if !ours {
                cfg.certificate_arn = Some(cert);
            }
        }
    }
    if let Some(c) = kids.observed("certificate") {
        cfg.domain = c.get("domain").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    } else if let Some(arn) = &cfg.certificate_arn {
        let d = aws.acm().describe_certificate().certificate_arn(arn).send().await.map_err(|e| import_err(aws_err("acm:DescribeCertificate", e)))?;
        cfg.domain = d.certificate().and_then(|c| c.domain_name()).unwrap_or_default().to_string();
    }
    if cfg.dns_zone.is_empty() && !cfg.domain.is_empty() {
        let zones = aws.route53().list_hosted_zones().send().await.map_err(|e| import_err(aws_err("route53:ListHostedZones", e)))?;
        cfg.dns_zone = zones
            .hosted_zones()
            .iter()
            .map(|z| z.name().trim_end_matches('.').to_string())
            .filter(|z| cfg.domain == *z || cfg.domain.ends_with(&format!(".{z}")))
            .max_by_key(|z| z.len())
            .unwrap_or_default();
    }
    if let Some(sg) = kids.observed("alb_security_group") {
        let mut cidrs: Vec<String> =
            sg.get("ingress").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|r| r.as_str()?.strip_prefix("tcp 443-443 from ").map(str::to_string)).collect();
        cidrs.sort();
        cfg.webhook_source_cidrs = cidrs;
    }
    if let Some(v) = kids.observed("vpc") {
        let azs = (0..MAX_AZS).take_while(|i| kids.id(&format!("subnet_public_{i}")).is_some()).count() as i64;
        let nats = (0..MAX_AZS).take_while(|i| kids.id(&format!("nat_{i}")).is_some()).count();
        cfg.vpc = vec![Vpc {
            cidr_block: v.get("cidr_block").and_then(|c| c.as_str()).map(str::to_string),
            az_count: (azs > 0 && azs != 2).then_some(azs),
            nat_gateways: match (kids.id("subnet_public_0").is_some(), nats) {
                (false, _) => None,
                (true, 0) => Some("none".to_string()),
                (true, 1) => None,
                _ => Some("per_az".to_string()),
            },
            flow_log_bucket_arn: kids.str_field("flow_log", "destination"),
        }];
    } else if kids.id("load_balancer").is_some() && kids.observed("vpc").is_none() && kids.id("vpc").is_none() {
        // The user's network: read back from the load balancer and the services.
        let lb = kids.observed("load_balancer");
        let mut public: Vec<String> = lb.and_then(|l| l.get("subnets")).and_then(|s| s.as_array()).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect();
        public.sort();
        let private: Vec<String> = cfg
            .environments
            .keys()
            .find_map(|e| kids.observed(&format!("service_{}", env_key(e))))
            .and_then(|s| s.get("subnets"))
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !public.iter().any(|s| s.starts_with('<')) && !public.is_empty() {
            let vpc_id = crate::children::network::vpc_of_subnet(aws, &public[0]).await.map_err(import_err)?;
            cfg.vpc = Vec::new();
            cfg.network = vec![ExistingNetwork { vpc_id, public_subnet_ids: public, private_subnet_ids: private }];
        }
    }
    if let Some(r) = kids.observed("repository") {
        let immutable = r.get("image_tag_mutability").and_then(|v| v.as_str()) == Some("IMMUTABLE");
        let scan = r.get("scan_on_push").and_then(|v| v.as_bool()).unwrap_or(true);
        let kms = r.get("encryption_type").and_then(|v| v.as_str()) == Some("KMS");
        let keep = r.get("lifecycle_policy").and_then(|p| p["rules"][1]["selection"]["countNumber"].as_i64());
        if immutable || !scan || kms || keep.is_some_and(|k| k != DEFAULT_KEEP_IMAGES) {
            cfg.ecr = vec![Ecr {
                image_tag_mutability: immutable.then(|| "IMMUTABLE".to_string()),
                scan_on_push: (!scan).then_some(false),
                encryption_type: kms.then(|| "KMS".to_string()),
                kms_key_arn: r.get("kms_key_in_use").and_then(|v| v.as_str()).map(str::to_string),
                keep_images: keep.filter(|k| *k != DEFAULT_KEEP_IMAGES),
            }];
        }
    }
    Ok(cfg)
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<CxflowCluster>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_carved_per_zone() {
        let (p, q) = subnet_cidrs("10.0.0.0/16", 2).unwrap();
        assert_eq!(p, vec!["10.0.0.0/20", "10.0.16.0/20"]);
        assert_eq!(q, vec!["10.0.32.0/20", "10.0.48.0/20"]);
    }

    #[test]
    fn priorities_are_stable_and_in_range() {
        for e in ["production", "staging", "dev", "qa"] {
            let p = priority(e);
            assert!((1..=49_000).contains(&p));
            assert_eq!(p, priority(e));
        }
    }

    #[test]
    fn ci_role_trust_follows_the_token_format() {
        let gh = CiRole {
            oidc_provider_arn: format!("arn:aws:iam::123456789012:oidc-provider/{GITHUB_OIDC_HOST}"),
            subjects: vec!["repo:example-org/cxflow-container:ref:refs/heads/main".into()],
            ..Default::default()
        };
        let t = gh.trust();
        let st = &t["Statement"][0];
        assert_eq!(st["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(st["Condition"]["StringEquals"][format!("{GITHUB_OIDC_HOST}:aud")], "sts.amazonaws.com");
        assert_eq!(st["Condition"]["StringEquals"][format!("{GITHUB_OIDC_HOST}:sub")], json!(["repo:example-org/cxflow-container:ref:refs/heads/main"]));
        let gl = CiRole {
            oidc_provider_arn: "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com".into(),
            subjects: vec!["project_path:group/cxflow-container:ref_type:branch:ref:*".into()],
            ..Default::default()
        };
        let t = gl.trust();
        let cond = &t["Statement"][0]["Condition"];
        assert_eq!(cond["StringEquals"]["gitlab.example.com:aud"], "https://gitlab.example.com");
        assert_eq!(cond["StringLike"]["gitlab.example.com:sub"], json!(["project_path:group/cxflow-container:ref_type:branch:ref:*"]));
        assert!(cond["StringEquals"].get("gitlab.example.com:sub").is_none(), "a wildcard subject is matched with StringLike only");
        let own = CiRole { audience: Some("cxflow".into()), ..gl };
        assert_eq!(own.trust()["Statement"][0]["Condition"]["StringEquals"]["gitlab.example.com:aud"], "cxflow");
    }

    #[test]
    fn environment_secrets_default_to_the_seed_and_extend() {
        let e = Environment { extra_secrets: Some(vec!["bitbucket/token".into()]), ..Default::default() };
        let m = e.secret_map();
        assert_eq!(m["GITLAB_WEBHOOK_TOKEN"], "gitlab/webhook_token");
        assert_eq!(m["BITBUCKET_TOKEN"], "bitbucket/token");
        assert_eq!(m.len(), 7);
        let own = Environment { secrets: Some(BTreeMap::from([("TOKEN".into(), "a/b".into())])), ..Default::default() };
        assert_eq!(own.secret_map().len(), 1, "an explicit table replaces the defaults");
    }

    #[test]
    fn fargate_sizes() {
        assert!(fargate_memory_ok(512, 2048));
        assert!(!fargate_memory_ok(512, 8192));
        assert!(!fargate_memory_ok(300, 1024));
    }
}
