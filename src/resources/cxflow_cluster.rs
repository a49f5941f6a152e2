//! `cxflow_cluster`: the whole CxFlow deployment on ECS Fargate as one
//! resource — network, HTTPS load balancer with an ACM certificate validated
//! in Route53, ECR repository, ECS cluster, execution role, and one service
//! per environment reading its secrets from `/<name>/<environment>/...`.
//!
//! Read top to bottom: typed configuration → schema → validation (no AWS
//! calls) → the children and their dependencies → outputs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws::Aws;
use crate::aws::config::parse_duration;
use crate::children::ecs::{Container, LbTarget, ServiceNode, TaskDefinitionNode};
use crate::children::edge::{AliasRecordNode, CertificateNode, HttpsListenerNode, LoadBalancerNode};
use crate::children::iam::RoleNode;
use crate::children::lb::{ListenerRuleNode, TargetGroupNode};
use crate::children::logs::LogGroupNode;
use crate::children::network::{FlowLogNode, Ingress, InternetGatewayNode, NatGatewayNode, RouteTableNode, SecurityGroupNode, SubnetNode, VpcNode};
use crate::children::platform::{ClusterNode, RepositoryNode, RepositorySpec};
use crate::children::{Common, Ref, account_id};
use crate::engine::composite::{Composite, CompositeResource, Op, PlannedChildren, standard_attributes};
use crate::engine::{Graph, Node, Owner, Record, names};
use crate::framework::provider::Resource;
use crate::framework::validate::{int_range, list_strings};
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Schema, Type, Value};

pub const TYPE_NAME: &str = "cxflow_cluster";

const CONTAINER: &str = "cxflow";
const CONTAINER_PORT: i64 = 8080;
const HEALTH_PATH: &str = "/actuator/health";
const HEALTH_MATCHER: &str = "200-299";
const LOG_RETENTION_DAYS: i64 = 30;
const DEFAULT_CPU: i64 = 512;
const DEFAULT_MEMORY: i64 = 2048;
const DEFAULT_TLS_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_CERT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const MAX_AZS: i64 = 6;

/// The SSM parameters every CxFlow service reads: key under `/<name>/<env>/` → variable.
const CXFLOW_SECRETS: &[(&str, &str)] = &[
    ("checkmarx/username", "CHECKMARX_USERNAME"),
    ("checkmarx/password", "CHECKMARX_PASSWORD"),
    ("checkmarx/url", "CHECKMARX_BASE_URL"),
    ("checkmarx/token", "CHECKMARX_CLIENT_SECRET"),
    ("gitlab/token", "GITLAB_TOKEN"),
    ("gitlab/webhook-token", "GITLAB_WEBHOOK_TOKEN"),
];

// ------------------------------------------------------------------ typed configuration and state

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Environment {
    pub image_tag: String,
    pub desired_count: Option<i64>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    /// Extra SSM keys under the environment's prefix (e.g. `bitbucket/token`).
    pub extra_secrets: Option<Vec<String>>,
    pub environment: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Vpc {
    pub cidr_block: Option<String>,
    pub az_count: Option<i64>,
    /// `single`, `per_az` or `none`.
    pub nat_gateways: Option<String>,
    pub flow_log_bucket_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct ExistingNetwork {
    pub vpc_id: String,
    pub public_subnet_ids: Vec<String>,
    pub private_subnet_ids: Vec<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Ecr {
    pub image_tag_mutability: Option<String>,
    pub scan_on_push: Option<bool>,
    pub encryption_type: Option<String>,
    pub kms_key_arn: Option<String>,
    pub keep_images: Option<i64>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Timeouts {
    pub create: Option<String>,
    pub update: Option<String>,
    pub delete: Option<String>,
    pub certificate: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
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
    #[serde(default)]
    pub timeouts: Vec<Timeouts>,
    pub tags: Option<BTreeMap<String, String>>,
    pub children: Option<BTreeMap<String, String>>,
    pub drift: Option<BTreeMap<String, String>>,
}

impl Cluster {
    fn host(&self, env: &str) -> String {
        format!("{env}.{}", self.domain)
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

fn schema_def() -> Schema {
    let env_attrs = vec![
        Attribute::new("image_tag", Type::String)
            .required()
            .describe("Tag of the CxFlow image in the cluster's ECR repository to run. Changing it rolls only this environment's tasks."),
        Attribute::new("desired_count", Type::Number).defaulted().describe("Number of tasks (default 1)."),
        Attribute::new("cpu", Type::Number).defaulted().describe("Fargate CPU units (default 512)."),
        Attribute::new("memory", Type::Number).defaulted().describe("Fargate memory in MiB (default 2048)."),
        Attribute::new("extra_secrets", Type::list(Type::String)).optional().describe(
            "More SSM keys under the environment's prefix to pass to CxFlow, e.g. `bitbucket/token` or `auth0/client-secret` (variable `BITBUCKET_TOKEN`, `AUTH0_CLIENT_SECRET`).",
        ),
        Attribute::new("environment", Type::map(Type::String)).optional().describe("Extra plain environment variables for the container."),
    ];
    let mut attrs = vec![
        Attribute::new("id", Type::String).computed().describe("The deployment's name."),
        Attribute::new("name", Type::String).required().force_new().describe(
            "Name of the deployment (lowercase letters, digits, hyphens; at most 20 characters). Prefixes every AWS object and the SSM paths `/<name>/<environment>/...`.",
        ),
        Attribute::new("dns_zone", Type::String).required().force_new().describe("An existing public Route53 hosted zone, e.g. `example.com`."),
        Attribute::new("domain", Type::String)
            .required()
            .force_new()
            .describe("Domain of the cluster inside `dns_zone`. Environment `<env>` is served at `<env>.<domain>`; the certificate covers `<domain>` and `*.<domain>`."),
        Attribute::nested("environments", Nesting::Map, env_attrs).required().describe("One CxFlow service per environment, keyed by environment name."),
        Attribute::new("webhook_source_cidrs", Type::set(Type::String))
            .required()
            .describe("CIDRs the Git host sends webhooks from. The load balancer accepts HTTPS (443) from these only."),
        Attribute::new("container_insights", Type::Bool).defaulted().describe("Enable ECS Container Insights on the cluster (default true)."),
        Attribute::new("certificate_arn", Type::String).optional().describe("Use this ACM certificate instead of requesting and validating one."),
        Attribute::new("tls_policy", Type::String).defaulted().describe("ALB security policy (default `ELBSecurityPolicy-TLS13-1-2-2021-06`: TLS 1.2 and 1.3)."),
        Attribute::new("wait_for_steady_state", Type::Bool).defaulted().describe("Wait until every service's deployment completes (default true)."),
        Attribute::new("tags", Type::map(Type::String)).optional().describe("Tags on every AWS object, merged over the provider's `default_tags`."),
        Attribute::new("cluster_arn", Type::String).computed().describe("ARN of the ECS cluster."),
        Attribute::new("repository_url", Type::String).computed().describe("URL of the ECR repository to push CxFlow images to."),
        Attribute::new("load_balancer_dns_name", Type::String).computed().describe("DNS name of the load balancer."),
        Attribute::new("execution_role_arn", Type::String).computed().describe("ARN of the task execution role."),
        Attribute::new("vpc_id", Type::String).computed().describe("The VPC the services run in."),
        Attribute::new("webhook_urls", Type::map(Type::String)).computed().describe("Per environment: the URL to give the Git host's webhook."),
        Attribute::new("service_arns", Type::map(Type::String)).computed().describe("Per environment: the ECS service ARN."),
        Attribute::new("ssm_path_prefixes", Type::map(Type::String))
            .computed()
            .describe("Per environment: the SSM path the service reads its secrets from (use as `cxflow_secret_sync.path_prefix`)."),
    ];
    attrs.extend(standard_attributes());
    let vpc = Block::new(vec![
        Attribute::new("cidr_block", Type::String)
            .optional()
            .describe("VPC CIDR (default `10.0.0.0/16`). Public and private /20-or-smaller subnets are carved from it.")
            .force_new(),
        Attribute::new("az_count", Type::Number).optional().describe("Availability zones to spread subnets over (default 2).").force_new(),
        Attribute::new("nat_gateways", Type::String).optional().describe("`single` (default), `per_az` or `none` (private subnets without internet access)."),
        Attribute::new("flow_log_bucket_arn", Type::String).optional().describe("S3 bucket ARN for VPC flow logs; none when unset."),
    ]);
    let network = Block::new(vec![
        Attribute::new("vpc_id", Type::String).required().describe("Existing VPC."),
        Attribute::new("public_subnet_ids", Type::list(Type::String)).required().describe("Public subnets (in at least two zones) for the load balancer."),
        Attribute::new("private_subnet_ids", Type::list(Type::String)).required().describe("Private subnets for the tasks."),
    ]);
    let ecr = Block::new(vec![
        Attribute::new("image_tag_mutability", Type::String).optional().describe("`IMMUTABLE` (default) or `MUTABLE`."),
        Attribute::new("scan_on_push", Type::Bool).optional().describe("Scan images on push (default true)."),
        Attribute::new("encryption_type", Type::String).optional().describe("`AES256` (default) or `KMS`.").force_new(),
        Attribute::new("kms_key_arn", Type::String).optional().describe("KMS key for `encryption_type = \"KMS\"`.").force_new(),
        Attribute::new("keep_images", Type::Number).optional().describe("Images kept by the lifecycle policy besides `latest` (default 5)."),
    ]);
    let timeouts = Block::new(
        ["create", "update", "delete", "certificate"]
            .iter()
            .map(|t| Attribute::new(t, Type::String).optional().describe(&format!("Limit for {t} (a duration such as `30m`).")))
            .collect(),
    );
    Schema::new(
        0,
        Block::new(attrs)
            .with_blocks(vec![
                NestedBlock::new("vpc", Nesting::List, vpc.describe("Create a VPC with public and private subnets, NAT and routing.")).max(1),
                NestedBlock::new("network", Nesting::List, network.describe("Use an existing VPC instead of `vpc`.")).max(1),
                NestedBlock::new("ecr", Nesting::List, ecr.describe("ECR repository settings.")).max(1),
                NestedBlock::new("timeouts", Nesting::List, timeouts).max(1),
            ])
            .describe(
                "The whole CxFlow deployment on ECS Fargate: network, an HTTPS load balancer (443 from the Git host's webhook CIDRs only, \
                 default action a fixed 404), an ACM certificate validated through Route53, one alias record per environment, an ECR \
                 repository, an ECS cluster, the execution role, and per environment a service reading its secrets from \
                 `/<name>/<environment>/...` in SSM.",
            ),
    )
}

// ------------------------------------------------------------------ validation (no AWS calls)

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !s.starts_with('-') && !s.ends_with('-')
}

fn env_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 11
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

fn dns_name_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-'))
}

fn fargate_memory_ok(cpu: i64, mem: i64) -> bool {
    match cpu {
        256 => [512, 1024, 2048].contains(&mem),
        512 => (1024..=4096).contains(&mem) && mem % 1024 == 0,
        1024 => (2048..=8192).contains(&mem) && mem % 1024 == 0,
        2048 => (4096..=16384).contains(&mem) && mem % 1024 == 0,
        4096 => (8192..=30720).contains(&mem) && mem % 1024 == 0,
        8192 => (16384..=61440).contains(&mem) && mem % 4096 == 0,
        16384 => (32768..=122880).contains(&mem) && mem % 8192 == 0,
        _ => false,
    }
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let name = c.get("name").as_str();
    if let Some(n) = name {
        if !name_ok(n) {
            d.attr_error(
                Path::attr("name"),
                "Invalid name",
                "name must be 1-20 lowercase letters, digits or hyphens, not starting or ending with a hyphen (it prefixes ALB and target group names, limited to 32 characters).",
            );
        }
    }
    let zone = c.get("dns_zone").as_str().map(|z| z.trim_end_matches('.').to_ascii_lowercase());
    if let Some(z) = &zone {
        if !dns_name_ok(z) {
            d.attr_error(Path::attr("dns_zone"), "Invalid hosted zone name", "dns_zone must be a DNS name such as example.com.");
        }
    }
    let domain = c.get("domain").as_str().map(|x| x.trim_end_matches('.').to_ascii_lowercase());
    if let Some(dom) = &domain {
        if !dns_name_ok(dom) {
            d.attr_error(Path::attr("domain"), "Invalid domain", "domain must be a DNS name such as cxflow.example.com.");
        } else if let Some(z) = &zone {
            if dom != z && !dom.ends_with(&format!(".{z}")) {
                d.attr_error(
                    Path::attr("domain"),
                    "Domain outside the hosted zone",
                    format!("{dom} is not inside the hosted zone {z}; the certificate and alias records must live in that zone."),
                );
            }
        }
    }
    if let Some(envs) = c.get("environments").entries() {
        if envs.is_empty() {
            d.attr_error(Path::attr("environments"), "No environments", "Declare at least one environment.");
        }
        let mut prios: BTreeMap<i64, &str> = BTreeMap::new();
        for (env, e) in envs {
            let p = Path::attr("environments").key(env.clone());
            if !env_name_ok(env) {
                d.attr_error(p.clone(), "Invalid environment name", format!("{env:?}: environment names are 1-11 lowercase letters, digits or hyphens, starting with a letter."));
            } else if let Some(n) = name.filter(|n| name_ok(n)) {
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
            if let Some(tag) = e.get("image_tag").as_str() {
                if tag.is_empty() || tag.len() > 128 || !tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
                    d.attr_error(p.then_attr("image_tag"), "Invalid image tag", "An image tag is 1-128 letters, digits, `_`, `.` or `-`.");
                }
            }
            int_range(&mut d, e.get("desired_count"), p.then_attr("desired_count"), 0, 1000);
            let cpu = e.get("cpu").as_i64().or(if e.get("cpu").is_null() { Some(DEFAULT_CPU) } else { None });
            let mem = e.get("memory").as_i64().or(if e.get("memory").is_null() { Some(DEFAULT_MEMORY) } else { None });
            if let (Some(cpu), Some(mem)) = (cpu, mem) {
                if !fargate_memory_ok(cpu, mem) {
                    d.attr_error(
                        p.then_attr("memory"),
                        "Invalid Fargate size",
                        format!("Fargate does not offer {cpu} CPU units with {mem} MiB. With 512 CPU, memory is 1024-4096 MiB in 1024 steps; see the ECS task size table."),
                    );
                }
            }
            for (i, k) in e.get("extra_secrets").elements().unwrap_or_default().iter().enumerate() {
                if let Some(k) = k.as_str() {
                    if k.is_empty() || k.starts_with('/') || !k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')) {
                        d.attr_error(p.then_attr("extra_secrets").index(i), "Invalid SSM key", "Keys are relative to /<name>/<environment>/, e.g. bitbucket/token.");
                    }
                }
            }
        }
    }
    for (path, cidr) in list_strings(c, "webhook_source_cidrs") {
        if cidr.parse::<Ipv4Net>().is_err() {
            d.attr_error(path, "Invalid CIDR", format!("{cidr:?} is not an IPv4 CIDR block such as 34.74.90.64/28."));
        }
    }
    let vpc = c.get("vpc").elements().and_then(|v| v.first()).cloned().unwrap_or(Value::Null);
    let has_network = c.get("network").elements().is_some_and(|n| !n.is_empty());
    if has_network && !vpc.is_null() {
        d.attr_error(Path::attr("network"), "Conflicting arguments", "Give either a vpc block (create a network) or a network block (use an existing one), not both.");
    }
    if !vpc.is_null() {
        let p = Path::attr("vpc").index(0);
        if let Some(cidr) = vpc.get("cidr_block").as_str() {
            match cidr.parse::<Ipv4Net>() {
                Ok(n) if n.prefix_len() <= 22 && n.prefix_len() >= 16 => {}
                Ok(_) => d.attr_error(p.then_attr("cidr_block"), "Unsuitable VPC CIDR", "The VPC CIDR must be between /16 and /22 so that subnets can be carved from it."),
                Err(_) => d.attr_error(p.then_attr("cidr_block"), "Invalid CIDR", format!("{cidr:?} is not an IPv4 CIDR block.")),
            }
        }
        int_range(&mut d, vpc.get("az_count"), p.then_attr("az_count"), 2, MAX_AZS);
        if let Some(n) = vpc.get("nat_gateways").as_str() {
            if !["single", "per_az", "none"].contains(&n) {
                d.attr_error(p.then_attr("nat_gateways"), "Invalid value", "nat_gateways is single, per_az or none.");
            }
        }
        if let Some(b) = vpc.get("flow_log_bucket_arn").as_str() {
            if !b.starts_with("arn:") || !b.contains(":s3:::") {
                d.attr_error(p.then_attr("flow_log_bucket_arn"), "Invalid bucket ARN", "flow_log_bucket_arn must be an S3 bucket ARN such as arn:aws:s3:::my-flow-logs.");
            }
        }
    }
    if let Some(arn) = c.get("certificate_arn").as_str() {
        if !arn.starts_with("arn:") || !arn.contains(":acm:") || !arn.contains(":certificate/") {
            d.attr_error(Path::attr("certificate_arn"), "Invalid certificate ARN", "certificate_arn must be an ACM certificate ARN.");
        }
    }
    if let Some(p) = c.get("tls_policy").as_str() {
        if !p.starts_with("ELBSecurityPolicy-") {
            d.attr_error(Path::attr("tls_policy"), "Invalid TLS policy", "tls_policy must name an ALB security policy such as ELBSecurityPolicy-TLS13-1-2-2021-06.");
        }
    }
    if let Some(e) = c.get("ecr").elements().and_then(|v| v.first()) {
        let p = Path::attr("ecr").index(0);
        if let Some(m) = e.get("image_tag_mutability").as_str() {
            if m != "MUTABLE" && m != "IMMUTABLE" {
                d.attr_error(p.then_attr("image_tag_mutability"), "Invalid value", "image_tag_mutability is MUTABLE or IMMUTABLE.");
            }
        }
        if let Some(t) = e.get("encryption_type").as_str() {
            if t != "AES256" && t != "KMS" {
                d.attr_error(p.then_attr("encryption_type"), "Invalid value", "encryption_type is AES256 or KMS.");
            }
        }
        int_range(&mut d, e.get("keep_images"), p.then_attr("keep_images"), 1, 1000);
    }
    if let Some(t) = c.get("timeouts").elements().and_then(|v| v.first()) {
        for k in ["create", "update", "delete", "certificate"] {
            if let Some(s) = t.get(k).as_str() {
                if parse_duration(s).is_none() {
                    d.attr_error(Path::attr("timeouts").index(0).then_attr(k), "Invalid duration", "Write durations like 30m or 1h.");
                }
            }
        }
    }
    d
}

// ------------------------------------------------------------------ the children

/// Subnet CIDRs: public ones first, then private, each a quarter of a zone's share.
fn subnet_cidrs(vpc: &str, azs: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let net: Ipv4Net = vpc.parse().map_err(|_| format!("{vpc} is not a CIDR"))?;
    let new_len = (net.prefix_len() + 4).min(28);
    let subnets: Vec<Ipv4Net> = net.subnets(new_len).map_err(|e| e.to_string())?.take(azs * 2).collect();
    if subnets.len() < azs * 2 {
        return Err(format!("{vpc} is too small for {azs} zones"));
    }
    Ok((subnets[..azs].iter().map(|s| s.to_string()).collect(), subnets[azs..].iter().map(|s| s.to_string()).collect()))
}

fn execution_policy(cfg: &Cluster) -> serde_json::Value {
    let ssm: Vec<String> = cfg.environments.keys().map(|e| format!("arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{}/*", cfg.ssm_prefix(e))).collect();
    let logs: Vec<String> = cfg.environments.keys().map(|e| format!("arn:{{partition}}:logs:{{region}}:{{account}}:log-group:{}:*", cfg.log_group(e))).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadEnvironmentParameters", "Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"], "Resource": ssm},
            {"Sid": "DecryptThroughSsm", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:{partition}:kms:{region}:{account}:key/*",
             "Condition": {"StringEquals": {"kms:ViaService": "ssm.{region}.amazonaws.com"}}},
            {"Sid": "PullCxFlowImages", "Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": format!("arn:{{partition}}:ecr:{{region}}:{{account}}:repository/{}", cfg.name)},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": logs}
        ]
    })
}

fn container_for(cfg: &Cluster, env: &str, e: &Environment, repo_uri: &str, account: &str, region: &str, partition: &str) -> Container {
    let param = |k: &str| format!("arn:{partition}:ssm:{region}:{account}:parameter{}/{k}", cfg.ssm_prefix(env));
    let mut secrets: BTreeMap<String, String> = CXFLOW_SECRETS.iter().map(|(k, var)| (var.to_string(), param(k))).collect();
    for k in e.extra_secrets.clone().unwrap_or_default() {
        let var: String = k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        secrets.insert(var, param(&k));
    }
    Container {
        name: CONTAINER.to_string(),
        image: format!("{repo_uri}:{}", e.image_tag),
        port: Some(CONTAINER_PORT),
        essential: Some(true),
        environment: Some(e.environment.clone().unwrap_or_default()),
        secrets: Some(secrets),
        ..Default::default()
    }
}

async fn build_graph(cfg: &Cluster, aws: &Aws) -> Result<Graph<Aws>, Diags> {
    let owner = Owner::new(TYPE_NAME, &cfg.name);
    let c: Arc<Common> = Common::new(aws, owner, &cfg.tags.clone().unwrap_or_default());
    let account = account_id(aws).await.map_err(|e| Diags::from(Diagnostic::error("Could not determine the AWS account", e.to_string())))?;
    let repo_uri = format!("{account}.dkr.ecr.{}.amazonaws.com/{}", aws.region, cfg.name);
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
                    let key = format!("subnet_{}_{i}", if is_pub { "public" } else { "private" });
                    nodes.push(Box::new(SubnetNode {
                        c: c.clone(),
                        key: key.clone(),
                        name: format!("{}-{}-{i}", cfg.name, if is_pub { "public" } else { "private" }),
                        cidr: cidr.clone(),
                        az_index: i,
                        public: is_pub,
                    }));
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
            let nat_mode = v.nat_gateways.clone().unwrap_or_else(|| "single".into());
            let nats = match nat_mode.as_str() {
                "per_az" => azs,
                "none" => 0,
                _ => 1,
            };
            for i in 0..nats {
                nodes.push(Box::new(NatGatewayNode { c: c.clone(), key: format!("nat_{i}"), name: format!("{}-nat-{i}", cfg.name), subnet_key: format!("subnet_public_{i}") }));
            }
            if nats > 0 {
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
        vpc: vpc.clone(),
        ingress: vec![Ingress { port: 443, cidrs: cfg.webhook_source_cidrs.clone(), source: None }],
    }));
    nodes.push(Box::new(LoadBalancerNode {
        c: c.clone(),
        name: format!("{}-alb", cfg.name),
        subnets: public.clone(),
        security_group: Ref::dep("alb_security_group"),
        after: if created_network { vec!["internet_gateway".into(), "route_public".into()] } else { vec![] },
    }));
    let certificate = match &cfg.certificate_arn {
        Some(arn) => Ref::lit(arn.clone()),
        None => {
            let t = cfg.timeouts.first().and_then(|t| t.certificate.as_deref()).and_then(parse_duration).unwrap_or(DEFAULT_CERT_TIMEOUT);
            nodes.push(Box::new(CertificateNode { c: c.clone(), domain: cfg.domain.clone(), zone: cfg.dns_zone.clone(), validation_timeout: t }));
            Ref::dep("certificate")
        }
    };
    nodes.push(Box::new(HttpsListenerNode { c: c.clone(), certificate, tls_policy: cfg.tls_policy.clone().unwrap_or_else(|| DEFAULT_TLS_POLICY.into()) }));

    // Platform: repository, cluster, execution role.
    let ecr = cfg.ecr.first().cloned().unwrap_or_default();
    nodes.push(Box::new(RepositoryNode {
        c: c.clone(),
        spec: RepositorySpec {
            name: cfg.name.clone(),
            immutable: ecr.image_tag_mutability.as_deref().unwrap_or("IMMUTABLE") == "IMMUTABLE",
            scan_on_push: ecr.scan_on_push.unwrap_or(true),
            encryption: ecr.encryption_type.clone().unwrap_or_else(|| "AES256".into()),
            kms_key: ecr.kms_key_arn.clone(),
            keep_images: ecr.keep_images.unwrap_or(5),
        },
    }));
    nodes.push(Box::new(ClusterNode { c: c.clone(), name: cfg.name.clone(), container_insights: cfg.container_insights.unwrap_or(true) }));
    nodes.push(Box::new(RoleNode {
        c: c.clone(),
        key: "execution_role".into(),
        name: names::bounded(&format!("{}-execution", cfg.name), &cfg.name, "", 64, |ch| ch.is_ascii_alphanumeric() || "+=,.@-_".contains(ch)),
        service: "ecs-tasks.amazonaws.com".into(),
        managed: vec!["arn:{partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".into()],
        inline_name: "cxflow-execution".into(),
        inline: execution_policy(cfg),
    }));

    // One service per environment.
    for (env, e) in &cfg.environments {
        let k = env_key(env);
        let svc = cfg.service_name(env);
        nodes.push(Box::new(AliasRecordNode { c: c.clone(), key: format!("dns_{k}"), zone: cfg.dns_zone.clone(), fqdn: cfg.host(env) }));
        nodes.push(Box::new(LogGroupNode { c: c.clone(), key: format!("log_group_{k}"), name: cfg.log_group(env), retention_days: LOG_RETENTION_DAYS, retain: false }));
        nodes.push(Box::new(SecurityGroupNode {
            c: c.clone(),
            key: format!("task_security_group_{k}"),
            name: format!("{svc}-tasks"),
            description: format!("{svc} tasks: 8080 from the load balancer only"),
            vpc: vpc.clone(),
            ingress: vec![Ingress { port: CONTAINER_PORT as i32, cidrs: vec![], source: Some(Ref::dep("alb_security_group")) }],
        }));
        nodes.push(Box::new(TargetGroupNode {
            c: c.clone(),
            key: format!("target_group_{k}"),
            name: svc.clone(),
            port: CONTAINER_PORT,
            vpc: vpc.clone(),
            health_path: HEALTH_PATH.into(),
            matcher: HEALTH_MATCHER.into(),
            wanted: true,
        }));
        nodes.push(Box::new(ListenerRuleNode {
            c: c.clone(),
            key: format!("listener_rule_{k}"),
            listener: Ref::dep("https_listener"),
            target_group: Ref::dep(format!("target_group_{k}")),
            priority: priority(env),
            host_header: Some(cfg.host(env)),
            path_pattern: None,
            wanted: true,
        }));
        nodes.push(Box::new(TaskDefinitionNode {
            c: c.clone(),
            key: format!("task_definition_{k}"),
            family: svc.clone(),
            cpu: e.cpu.unwrap_or(DEFAULT_CPU),
            memory: e.memory.unwrap_or(DEFAULT_MEMORY),
            containers: vec![container_for(cfg, env, e, &repo_uri, &account, &aws.region, c.partition())],
            execution_role: Some(Ref::dep("execution_role")),
            task_role: None,
            log_group: Ref::dep(format!("log_group_{k}")),
            service_connect: false,
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
            wait: cfg.wait_for_steady_state.unwrap_or(true),
            after,
        }));
    }
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

/// The longest chain of dependent AWS objects a create needs (for the benchmark's latency bound).
pub async fn critical_path(cfg: &Cluster, aws: &Aws) -> Vec<String> {
    build_graph(cfg, aws).await.map(|g| g.critical_path()).unwrap_or_default()
}

// ------------------------------------------------------------------ outputs

fn set_default(obj: &mut Value, name: &str, v: Value) {
    if let Value::Object(m) = obj {
        let e = m.entry(name.to_string()).or_insert(Value::Null);
        if e.is_null() {
            *e = v;
        }
    }
}

fn per_env(planned: &Value, f: impl Fn(&str, &str) -> String) -> Value {
    let name = planned.get("name").as_str();
    match (name, planned.get("environments").entries()) {
        (Some(n), Some(envs)) => Value::Map(envs.keys().map(|e| (e.clone(), Value::string(f(n, e)))).collect()),
        _ => Value::Unknown,
    }
}

fn strip_pipe(v: &str) -> String {
    v.split('|').next().unwrap_or(v).to_string()
}

pub struct CxflowCluster;

#[async_trait]
impl Composite<Aws> for CxflowCluster {
    type State = Cluster;
    const TYPE_NAME: &'static str = TYPE_NAME;

    fn schema() -> Schema {
        schema_def()
    }

    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }

    fn fill_defaults(p: &mut Value) {
        set_default(p, "container_insights", Value::Bool(true));
        set_default(p, "tls_policy", Value::string(DEFAULT_TLS_POLICY));
        set_default(p, "wait_for_steady_state", Value::Bool(true));
        if let Some(Value::Map(envs)) = p.get_mut("environments") {
            for e in envs.values_mut() {
                set_default(e, "desired_count", Value::int(1));
                set_default(e, "cpu", Value::int(DEFAULT_CPU));
                set_default(e, "memory", Value::int(DEFAULT_MEMORY));
            }
        }
    }

    fn derived(p: &mut Value) {
        let domain = p.get("domain").as_str().map(str::to_string);
        p.set_attr("id", p.get("name").clone());
        p.set_attr("ssm_path_prefixes", per_env(p, |n, e| format!("/{n}/{e}")));
        let urls = match &domain {
            Some(d) => per_env(p, |_, e| format!("https://{e}.{d}/")),
            None => Value::Unknown,
        };
        p.set_attr("webhook_urls", urls);
    }

    async fn graph(state: &Cluster, aws: &Aws) -> Result<Graph<Aws>, Diags> {
        build_graph(state, aws).await
    }

    fn children(state: &Cluster) -> Record {
        Record::from_map(state.children.clone().unwrap_or_default())
    }
    fn drift(state: &Cluster) -> BTreeMap<String, String> {
        state.drift.clone().unwrap_or_default()
    }
    fn owner(state: &Cluster) -> Owner {
        Owner::new(TYPE_NAME, &state.name)
    }
    async fn import_config(aws: &Aws, id: &str) -> Result<Cluster, Diags> {
        read_config(aws, id.trim()).await
    }
    fn import_hint(state: &Cluster) -> String {
        format!("terraform import {TYPE_NAME}.<name> {}", state.name)
    }
    fn timeout(state: &Cluster, op: Op) -> Duration {
        let t = state.timeouts.first();
        let s = match op {
            Op::Create => t.and_then(|t| t.create.clone()),
            Op::Update => t.and_then(|t| t.update.clone()),
            Op::Delete => t.and_then(|t| t.delete.clone()),
        };
        s.as_deref().and_then(parse_duration).unwrap_or(DEFAULT_TIMEOUT)
    }

    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        p.set_attr("cluster_arn", pc.identity("ecs_cluster"));
        p.set_attr("execution_role_arn", pc.identity("execution_role"));
        p.set_attr(
            "vpc_id",
            if pc.graph.node("vpc").is_some() {
                pc.identity("vpc")
            } else {
                p.get("network").elements().and_then(|n| n.first()).map(|n| n.get("vpc_id").clone()).unwrap_or(Value::Unknown)
            },
        );
        let lb = pc.identity("load_balancer");
        let keep = |attr: &str, p: &Value| if lb.is_unknown() || p.get(attr).is_null() { Value::Unknown } else { p.get(attr).clone() };
        let dns = keep("load_balancer_dns_name", p);
        p.set_attr("load_balancer_dns_name", dns);
        let repo = keep("repository_url", p);
        p.set_attr("repository_url", repo);
        let envs: Vec<String> = p.get("environments").entries().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        let arns: BTreeMap<String, Value> = envs.iter().map(|e| (e.clone(), pc.identity(&format!("service_{}", env_key(e))))).collect();
        // Existing services keep their ARNs: only new environments' entries are unknown.
        p.set_attr("service_arns", Value::Map(arns));
    }

    async fn outputs(aws: &Aws, st: &mut Value, cfg: &Cluster, record: &Record) {
        let get = |k: &str| record.get(k).map(|v| Value::string(strip_pipe(v))).unwrap_or(Value::Null);
        st.set_attr("cluster_arn", get("ecs_cluster"));
        st.set_attr("execution_role_arn", get("execution_role"));
        st.set_attr("vpc_id", if record.get("vpc").is_some() { get("vpc") } else { cfg.network.first().map(|n| Value::string(&n.vpc_id)).unwrap_or(Value::Null) });
        let arns = cfg.environments.keys().filter_map(|e| record.get(&format!("service_{}", env_key(e))).map(|a| (e.clone(), Value::string(a)))).collect();
        st.set_attr("service_arns", Value::Map(arns));
        // Names AWS assigns are read back; a failed read leaves them unknown to state as null.
        let mut dns = Value::Null;
        if let Some(arn) = record.get("load_balancer") {
            if let Ok(o) = aws.elbv2().describe_load_balancers().load_balancer_arns(arn).send().await {
                dns = o.load_balancers().first().and_then(|l| l.dns_name()).map(Value::string).unwrap_or(Value::Null);
            }
        }
        st.set_attr("load_balancer_dns_name", dns);
        let mut url = Value::Null;
        if let Some(name) = record.get("repository") {
            if let Ok(o) = aws.ecr().describe_repositories().repository_names(name).send().await {
                url = o.repositories().first().and_then(|r| r.repository_uri()).map(Value::string).unwrap_or(Value::Null);
            }
        }
        st.set_attr("repository_url", url);
    }
}

// ------------------------------------------------------------------ import

fn import_err(e: impl std::fmt::Display) -> Diags {
    Diagnostic::error("Import failed", e.to_string()).into()
}

/// Read an existing deployment's configuration back from AWS; attributes at
/// their defaults stay unset so that the usual configuration plans empty.
async fn read_config(aws: &Aws, name: &str) -> Result<Cluster, Diags> {
    use crate::aws::aws_err;
    if !name_ok(name) {
        return Err(Diagnostic::error("Invalid import ID", "Import a cxflow_cluster by its name, e.g. `terraform import cxflow_cluster.this cxflow`.").into());
    }
    let owner = Owner::new(TYPE_NAME, name);
    let ours = |tags: &[(String, String)]| owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) == crate::engine::Ownership::Ours;
    let ecs_tags = |t: &[aws_sdk_ecs::types::Tag]| t.iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))).collect::<Vec<_>>();

    let clusters = aws
        .ecs()
        .describe_clusters()
        .clusters(name)
        .include(aws_sdk_ecs::types::ClusterField::Settings)
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .map_err(|e| import_err(aws_err("ecs:DescribeClusters", e)))?;
    let cluster = clusters
        .clusters()
        .iter()
        .find(|c| c.status() != Some("INACTIVE") && ours(&ecs_tags(c.tags())))
        .ok_or_else(|| Diags::from(Diagnostic::error("Cannot import", format!("No ECS cluster {name:?} owned by {owner} exists."))))?;
    let insights = cluster.settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights")).and_then(|s| s.value()) == Some("enabled");
    let mut cfg = Cluster { name: name.to_string(), container_insights: (!insights).then_some(false), ..Default::default() };

    // Environments from the services and their task definitions.
    let mut private_subnets: Vec<String> = Vec::new();
    let arns = aws.ecs().list_services().cluster(name).send().await.map_err(|e| import_err(aws_err("ecs:ListServices", e)))?.service_arns().to_vec();
    for chunk in arns.chunks(10) {
        let out = aws
            .ecs()
            .describe_services()
            .cluster(name)
            .set_services(Some(chunk.to_vec()))
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| import_err(aws_err("ecs:DescribeServices", e)))?;
        for svc in out.services().iter().filter(|s| s.status() == Some("ACTIVE") && ours(&ecs_tags(s.tags()))) {
            let Some(env) = svc.service_name().and_then(|n| n.strip_prefix(&format!("{name}-"))) else { continue };
            if let Some(v) = svc.network_configuration().and_then(|n| n.awsvpc_configuration()) {
                private_subnets = v.subnets().to_vec();
                private_subnets.sort();
            }
            let td = aws
                .ecs()
                .describe_task_definition()
                .task_definition(svc.task_definition().unwrap_or_default())
                .send()
                .await
                .map_err(|e| import_err(aws_err("ecs:DescribeTaskDefinition", e)))?;
            let td = td.task_definition().cloned().unwrap_or_else(|| aws_sdk_ecs::types::TaskDefinition::builder().build());
            let container = td.container_definitions().iter().find(|c| c.name() == Some(CONTAINER));
            let image_tag = container.and_then(|c| c.image()).and_then(|i| i.rsplit_once(':')).map(|(_, t)| t.to_string()).unwrap_or_default();
            let prefix = format!(":parameter/{name}/{env}/");
            let known: Vec<&str> = CXFLOW_SECRETS.iter().map(|(k, _)| *k).collect();
            let extra: Vec<String> = container
                .map(|c| c.secrets().iter().filter_map(|s| s.value_from().split_once(&prefix).map(|(_, k)| k.to_string())).filter(|k| !known.contains(&k.as_str())).collect())
                .unwrap_or_default();
            let env_vars: BTreeMap<String, String> =
                container.map(|c| c.environment().iter().filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string()))).collect()).unwrap_or_default();
            let cpu = td.cpu().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CPU);
            let memory = td.memory().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_MEMORY);
            cfg.environments.insert(
                env.to_string(),
                Environment {
                    image_tag,
                    desired_count: Some(svc.desired_count() as i64),
                    cpu: Some(cpu),
                    memory: Some(memory),
                    extra_secrets: (!extra.is_empty()).then_some(extra),
                    environment: (!env_vars.is_empty()).then_some(env_vars),
                },
            );
        }
    }

    // The edge: listener (certificate, TLS policy, hosts) and the ALB's security group.
    let lbs = aws.elbv2().describe_load_balancers().names(format!("{name}-alb")).send().await.map_err(|e| import_err(aws_err("elasticloadbalancing:DescribeLoadBalancers", e)))?;
    let lb = lbs.load_balancers().first().cloned().ok_or_else(|| import_err(format!("load balancer {name}-alb not found")))?;
    let listeners = aws
        .elbv2()
        .describe_listeners()
        .load_balancer_arn(lb.load_balancer_arn().unwrap_or_default())
        .send()
        .await
        .map_err(|e| import_err(aws_err("elasticloadbalancing:DescribeListeners", e)))?;
    if let Some(l) = listeners.listeners().iter().find(|l| l.port() == Some(443)) {
        cfg.tls_policy = l.ssl_policy().filter(|p| *p != DEFAULT_TLS_POLICY).map(str::to_string);
        let cert = l.certificates().first().and_then(|c| c.certificate_arn()).unwrap_or_default().to_string();
        let d = aws.acm().describe_certificate().certificate_arn(&cert).send().await.map_err(|e| import_err(aws_err("acm:DescribeCertificate", e)))?;
        cfg.domain = d.certificate().and_then(|c| c.domain_name()).unwrap_or_default().to_string();
        let tags = aws.acm().list_tags_for_certificate().certificate_arn(&cert).send().await.map_err(|e| import_err(aws_err("acm:ListTagsForCertificate", e)))?;
        let cert_tags: Vec<(String, String)> = tags.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
        if !ours(&cert_tags) {
            cfg.certificate_arn = Some(cert);
        }
    }
    let zones = aws.route53().list_hosted_zones().send().await.map_err(|e| import_err(aws_err("route53:ListHostedZones", e)))?;
    cfg.dns_zone = zones
        .hosted_zones()
        .iter()
        .map(|z| z.name().trim_end_matches('.').to_string())
        .filter(|z| cfg.domain == *z || cfg.domain.ends_with(&format!(".{z}")))
        .max_by_key(|z| z.len())
        .unwrap_or_default();
    let vpc_id = lb.vpc_id().unwrap_or_default().to_string();
    let sgs = aws
        .ec2()
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values(format!("{name}-alb")).build())
        .filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .map_err(|e| import_err(aws_err("ec2:DescribeSecurityGroups", e)))?;
    cfg.webhook_source_cidrs = sgs
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .filter(|p| p.from_port() == Some(443))
        .flat_map(|p| p.ip_ranges())
        .filter_map(|r| r.cidr_ip().map(str::to_string))
        .collect();
    cfg.webhook_source_cidrs.sort();

    // Network: ours (tagged VPC) or the user's.
    let vpcs = aws.ec2().describe_vpcs().vpc_ids(&vpc_id).send().await.map_err(|e| import_err(aws_err("ec2:DescribeVpcs", e)))?;
    let vpc = vpcs.vpcs().first().cloned().unwrap_or_else(|| aws_sdk_ec2::types::Vpc::builder().build());
    let vpc_tags: Vec<(String, String)> = vpc.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
    if ours(&vpc_tags) {
        let owned = |key: &str| {
            vec![
                aws_sdk_ec2::types::Filter::builder().name(format!("tag:{}", crate::engine::OWNER_TAG)).values(owner.tag_value()).build(),
                aws_sdk_ec2::types::Filter::builder().name(format!("tag:{}", crate::children::CHILD_TAG)).values(key).build(),
            ]
        };
        let mut azs = 0;
        while aws.ec2().describe_subnets().set_filters(Some(owned(&format!("subnet_public_{azs}")))).send().await.map(|o| !o.subnets().is_empty()).unwrap_or(false) {
            azs += 1;
        }
        let nats = aws
            .ec2()
            .describe_nat_gateways()
            .filter(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc_id).build())
            .send()
            .await
            .map(|o| o.nat_gateways().iter().filter(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting"))).count())
            .unwrap_or(0);
        let flow = aws
            .ec2()
            .describe_flow_logs()
            .set_filter(Some(owned("flow_log")))
            .send()
            .await
            .ok()
            .and_then(|o| o.flow_logs().first().and_then(|f| f.log_destination()).map(str::to_string));
        cfg.vpc = vec![Vpc {
            cidr_block: vpc.cidr_block().map(str::to_string),
            az_count: (azs != 2).then_some(azs as i64),
            nat_gateways: match nats {
                0 => Some("none".to_string()),
                1 => None,
                _ => Some("per_az".to_string()),
            },
            flow_log_bucket_arn: flow,
        }];
    } else {
        let mut public: Vec<String> = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
        public.sort();
        cfg.network = vec![ExistingNetwork { vpc_id, public_subnet_ids: public, private_subnet_ids: private_subnets }];
    }

    // Repository settings.
    if let Ok(r) = aws.ecr().describe_repositories().repository_names(name).send().await {
        if let Some(repo) = r.repositories().first() {
            let mutable = repo.image_tag_mutability().map(|m| m.as_str() == "MUTABLE").unwrap_or(false);
            let scan = repo.image_scanning_configuration().map(|c| c.scan_on_push()).unwrap_or(true);
            let kms = repo.encryption_configuration().filter(|e| e.encryption_type().as_str() == "KMS");
            let keep = aws
                .ecr()
                .get_lifecycle_policy()
                .repository_name(name)
                .send()
                .await
                .ok()
                .and_then(|p| p.lifecycle_policy_text().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()))
                .and_then(|p| p["rules"][1]["selection"]["countNumber"].as_i64());
            if mutable || !scan || kms.is_some() || keep.is_some_and(|k| k != 5) {
                cfg.ecr = vec![Ecr {
                    image_tag_mutability: mutable.then(|| "MUTABLE".to_string()),
                    scan_on_push: (!scan).then_some(false),
                    encryption_type: kms.map(|_| "KMS".to_string()),
                    kms_key_arn: kms.and_then(|e| e.kms_key().map(str::to_string)),
                    keep_images: keep.filter(|k| *k != 5),
                }];
            }
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
    fn fargate_sizes() {
        assert!(fargate_memory_ok(512, 2048));
        assert!(!fargate_memory_ok(512, 8192));
        assert!(!fargate_memory_ok(300, 1024));
    }
}
