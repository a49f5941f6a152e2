//! `cxflow_cluster`: the whole CxFlow deployment on ECS Fargate as one
//! resource — network, HTTPS load balancer with an ACM certificate validated
//! in Route53, ECR repository, ECS cluster, execution role, and one service
//! per environment reading its secrets from `/<name>/<environment>/...`.
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
use crate::children::ecs::{Container, LbTarget, ServiceNode, TaskDefinitionNode};
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

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Environment {
    pub image_tag: String,
    pub desired_count: Option<i64>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    /// Extra SSM keys under the environment's prefix (e.g. `bitbucket/token`).
    pub extra_secrets: Option<Vec<String>>,
    pub environment: Option<BTreeMap<String, String>>,
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
    pub tags: Option<BTreeMap<String, String>>,
    /// Kept for the certificate validation wait (part of the standard `timeouts` block).
    pub timeouts: Option<BTreeMap<String, Option<String>>>,
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

const DNS_RE: &str = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?";

fn schema_block() -> Block {
    let env_attrs = vec![
        Attribute::new("image_tag", Type::String)
            .required()
            .check(Check::Matches("[A-Za-z0-9_.-]{1,128}", "an image tag of 1-128 letters, digits, `_`, `.` or `-`"))
            .describe("Tag of the CxFlow image in the cluster's ECR repository to run. Changing it rolls only this environment's tasks."),
        Attribute::new("desired_count", Type::Number).default(Value::int(1)).check(Check::Int(0, 1000)).describe("Number of tasks."),
        Attribute::new("cpu", Type::Number).default(Value::int(DEFAULT_CPU)).check(Check::IntIn(&[256, 512, 1024, 2048, 4096, 8192, 16384])).describe("Fargate CPU units."),
        Attribute::new("memory", Type::Number).default(Value::int(DEFAULT_MEMORY)).check(Check::Int(512, 122880)).describe("Fargate memory in MiB (valid for `cpu`)."),
        Attribute::new("extra_secrets", Type::list(Type::String))
            .optional()
            .check(Check::each(Check::Matches("[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,200}", "a key relative to /<name>/<environment>/, e.g. bitbucket/token")))
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
        Attribute::new("domain", Type::String)
            .required()
            .force_new()
            .check(Check::Matches(DNS_RE, "a DNS name such as cxflow.example.com"))
            .describe("Domain of the cluster inside `dns_zone`. Environment `<env>` is served at `<env>.<domain>`; the certificate covers `<domain>` and `*.<domain>`."),
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
        Attribute::new("image_tag_mutability", Type::String)
            .default(Value::string("IMMUTABLE"))
            .check(Check::OneOf(&["MUTABLE", "IMMUTABLE"]))
            .describe("`IMMUTABLE` or `MUTABLE`."),
        Attribute::new("scan_on_push", Type::Bool).default(Value::Bool(true)).describe("Scan images on push."),
        Attribute::new("encryption_type", Type::String).default(Value::string("AES256")).force_new().check(Check::OneOf(&["AES256", "KMS"])).describe("`AES256` or `KMS`."),
        Attribute::new("kms_key_arn", Type::String).optional().force_new().check(Check::Arn { service: "kms", resource: "" }).describe("KMS key for `encryption_type = \"KMS\"`."),
        Attribute::new("keep_images", Type::Number)
            .default(Value::int(DEFAULT_KEEP_IMAGES))
            .check(Check::Int(1, 1000))
            .describe("Images kept by the lifecycle policy besides `latest`."),
    ]);
    Block::new(attrs)
        .with_blocks(vec![
            NestedBlock::new("vpc", Nesting::List, vpc.describe("Create a VPC with public and private subnets, NAT and routing.")).max(1),
            NestedBlock::new("network", Nesting::List, network.describe("Use an existing VPC instead of `vpc`.")).max(1),
            NestedBlock::new("ecr", Nesting::List, ecr.describe("ECR repository settings.")).max(1),
        ])
        .describe(
            "The whole CxFlow deployment on ECS Fargate: network, an HTTPS load balancer (443 from the Git host's webhook CIDRs only, \
             default action a fixed 404), an ACM certificate validated through Route53, one alias record per environment, an ECR \
             repository, an ECS cluster, the execution role, and per environment a service reading its secrets from \
             `/<name>/<environment>/...` in SSM.",
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
        for (env, e) in envs {
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
            let cpu = if e.get("cpu").is_null() { Some(DEFAULT_CPU) } else { e.get("cpu").as_i64() };
            let mem = if e.get("memory").is_null() { Some(DEFAULT_MEMORY) } else { e.get("memory").as_i64() };
            if let (Some(cpu), Some(mem)) = (cpu, mem) {
                if !fargate_memory_ok(cpu, mem) {
                    d.attr_error(p.then_attr("memory"), "Invalid Fargate size", format!("Fargate does not offer {cpu} CPU units with {mem} MiB; see the ECS task size table."));
                }
            }
        }
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

fn execution_policy(cfg: &Cluster, c: &Common) -> serde_json::Value {
    let ssm: Vec<String> = cfg.environments.keys().map(|e| c.fill(&format!("arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{}/*", cfg.ssm_prefix(e)))).collect();
    let logs: Vec<String> = cfg.environments.keys().map(|e| c.fill(&format!("arn:{{partition}}:logs:{{region}}:{{account}}:log-group:{}:*", cfg.log_group(e)))).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadEnvironmentParameters", "Effect": "Allow", "Action": ["ssm:GetParameters", "ssm:GetParameter"], "Resource": ssm},
            {"Sid": "DecryptThroughSsm", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": c.fill("arn:{partition}:kms:{region}:{account}:key/*"),
             "Condition": {"StringEquals": {"kms:ViaService": c.fill("ssm.{region}.amazonaws.com")}}},
            {"Sid": "PullCxFlowImages", "Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": c.fill(&format!("arn:{{partition}}:ecr:{{region}}:{{account}}:repository/{}", cfg.name))},
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": logs}
        ]
    })
}

fn container_for(cfg: &Cluster, env: &str, e: &Environment, repo_uri: &str, c: &Common) -> Container {
    let param = |k: &str| c.fill(&format!("arn:{{partition}}:ssm:{{region}}:{{account}}:parameter{}/{k}", cfg.ssm_prefix(env)));
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

fn build_graph(cfg: &Cluster, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let repo_uri = format!("{}.dkr.ecr.{}.amazonaws.com/{}", c.account, c.region, cfg.name);
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
            immutable: ecr.image_tag_mutability.as_deref().unwrap_or("IMMUTABLE") == "IMMUTABLE",
            scan_on_push: ecr.scan_on_push.unwrap_or(true),
            encryption: ecr.encryption_type.clone().unwrap_or_else(|| "AES256".into()),
            kms_key: ecr.kms_key_arn.clone(),
            lifecycle: Some(keep_latest_policy(ecr.keep_images.unwrap_or(DEFAULT_KEEP_IMAGES))),
            policy: None,
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
    nodes.push(Box::new(RoleNode {
        c: c.clone(),
        key: "execution_role".into(),
        name: names::bounded(&format!("{}-execution", cfg.name), &cfg.name, "", 64, |ch| ch.is_ascii_alphanumeric() || "+=,.@-_".contains(ch)),
        path: "/".into(),
        description: format!("Managed by terraform-provider-cxflow for {}", c.owner),
        trust: service_trust("ecs-tasks.amazonaws.com", Some(json!({"StringEquals": {"aws:SourceAccount": c.account}}))),
        managed: Vec::new(),
        inline: BTreeMap::from([("cxflow-execution".to_string(), execution_policy(cfg, &c))]),
        wanted: true,
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
            vpc: VpcOf::Vpc(vpc.clone()),
            ingress: vec![Rule::tcp(CONTAINER_PORT as i32, Ref::dep("alb_security_group"))],
            wanted: true,
        }));
        nodes.push(Box::new(TargetGroupNode {
            c: c.clone(),
            key: format!("target_group_{k}"),
            name: svc.clone(),
            port: CONTAINER_PORT,
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
            containers: vec![container_for(cfg, env, e, &repo_uri, &c)],
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
    fn derived(p: &mut Value) {
        let domain = p.get("domain").as_str().map(str::to_string);
        p.set_attr("ssm_path_prefixes", per_env(p, |n, e| format!("/{n}/{e}")));
        let urls = match &domain {
            Some(d) => per_env(p, |_, e| format!("https://{e}.{d}/")),
            None => Value::Unknown,
        };
        p.set_attr("webhook_urls", urls);
    }
    fn owner_name(s: &Cluster) -> String {
        s.name.clone()
    }
    fn id(s: &Cluster) -> String {
        s.name.clone()
    }
    async fn graph(s: &Cluster, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        p.set_attr("cluster_arn", pc.identity("ecs_cluster"));
        p.set_attr("execution_role_arn", pc.identity("execution_role"));
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
    }
    fn outputs(st: &mut Value, cfg: &Cluster, kids: &Kids<'_>) {
        st.set_attr("cluster_arn", opt(kids.id("ecs_cluster")));
        st.set_attr("execution_role_arn", opt(kids.id("execution_role")));
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
    fn import_identities(_cfg: &Cluster, kids: &Kids<'_>) -> BTreeMap<String, crate::engine::Identity> {
        // The certificate the listener serves (when it is ours, its tags say so).
        kids.str_field("https_listener", "certificate")
            .filter(|c| c.starts_with("arn:"))
            .map(|c| BTreeMap::from([("certificate".to_string(), crate::engine::Identity::new(c))]))
            .unwrap_or_default()
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
    for (env, e) in cfg.environments.iter_mut() {
        let k = env_key(env);
        if let Some(svc) = kids.observed(&format!("service_{k}")) {
            e.desired_count = svc.get("desired_count").and_then(|v| v.as_i64());
        }
        if let Some(td) = kids.observed(&format!("task_definition_{k}")) {
            e.cpu = td.get("cpu").and_then(|v| v.as_str()).and_then(|c| c.parse().ok());
            e.memory = td.get("memory").and_then(|v| v.as_str()).and_then(|c| c.parse().ok());
            let container = td.get("containers").and_then(|c| c.as_array()).and_then(|a| a.iter().find(|c| c["name"] == CONTAINER)).cloned().unwrap_or_default();
            e.image_tag = container["image"].as_str().and_then(|i| i.rsplit_once(':')).map(|(_, t)| t.to_string()).unwrap_or_default();
            let prefix = format!(":parameter/{}/{env}/", seed.name);
            let known: Vec<&str> = CXFLOW_SECRETS.iter().map(|(k, _)| *k).collect();
            let extra: Vec<String> = container["secrets"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v.as_str()?.split_once(&prefix).map(|(_, k)| k.to_string())).filter(|k| !known.contains(&k.as_str())).collect())
                .unwrap_or_default();
            e.extra_secrets = (!extra.is_empty()).then_some(extra);
            let vars: BTreeMap<String, String> =
                container["environment"].as_object().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
            e.environment = (!vars.is_empty()).then_some(vars);
        }
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
        let mutable = r.get("image_tag_mutability").and_then(|v| v.as_str()) == Some("MUTABLE");
        let scan = r.get("scan_on_push").and_then(|v| v.as_bool()).unwrap_or(true);
        let kms = r.get("encryption_type").and_then(|v| v.as_str()) == Some("KMS");
        let keep = r.get("lifecycle_policy").and_then(|p| p["rules"][1]["selection"]["countNumber"].as_i64());
        if mutable || !scan || kms || keep.is_some_and(|k| k != DEFAULT_KEEP_IMAGES) {
            cfg.ecr = vec![Ecr {
                image_tag_mutability: mutable.then(|| "MUTABLE".to_string()),
                scan_on_push: (!scan).then_some(false),
                encryption_type: kms.then(|| "KMS".to_string()),
                kms_key_arn: r.get("kms_key").and_then(|v| v.as_str()).map(str::to_string),
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
    fn fargate_sizes() {
        assert!(fargate_memory_ok(512, 2048));
        assert!(!fargate_memory_ok(512, 8192));
        assert!(!fargate_memory_ok(300, 1024));
    }
}
