//! `cxflow_ecs_fargate_service`: one ECS service on Fargate with everything it
//! needs — log group, execution and task roles, security group, optional
//! target group and listener rule, task definition and the service itself —
//! as one composite on the [`crate::engine::composite`] driver.
//!
//! Reading order: typed configuration → schema → validation (no AWS calls) →
//! derived names → IAM policies → the graph → outputs → import.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws::Aws;
use crate::children::ecs::{LbTarget, ServiceConnectSpec, ServiceNode, TaskDefinitionNode, containers_from_spec};
use crate::children::iam::{RoleNode, service_trust};
use crate::children::lb::{Conditions, HealthCheck as TgHealth, ListenerRuleNode, TargetGroupNode};
use crate::children::logs::LogGroupNode;
use crate::children::network::{Rule, SecurityGroupNode, VpcOf};
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren};
use crate::engine::{Graph, Identity, Node, Tags, names};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};

pub const TYPE_NAME: &str = "cxflow_ecs_fargate_service";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DEFAULT_LB_HEALTH_PATH: &str = "/";
const DEFAULT_LB_MATCHER: &str = "200-299";
const EXEC_POLICY_NAME: &str = "cxflow-execution";
const TASK_POLICY_NAME: &str = "cxflow-ecs-exec";
/// AWS tag values hold 256 characters; the ownership tag is `<type>/<cluster>/<name>`.
const MAX_OWNER_TAG: usize = 256;

// ------------------------------------------------------------------ typed configuration and state

/// The resource's attributes, typed. Configuration first, then computed values.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FargateService {
    pub name: String,
    pub cluster: String,
    pub cpu: i64,
    pub memory: i64,
    pub desired_count: Option<i64>,
    #[serde(default)]
    pub container: Vec<Container>,
    pub network: Option<Network>,
    pub load_balancer: Option<LoadBalancer>,
    pub service_connect: Option<ServiceConnect>,
    pub enable_execute_command: Option<bool>,
    pub deployment_circuit_breaker: Option<CircuitBreaker>,
    pub wait_for_steady_state: Option<bool>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    pub log_retention_days: Option<i64>,
    pub retain_logs: Option<bool>,
    pub tags: Option<BTreeMap<String, String>>,
    // computed
    pub service_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub task_definition_revision: Option<i64>,
    pub security_group_id: Option<String>,
    pub log_group_name: Option<String>,
    pub target_group_arn: Option<String>,
}

/// Container blocks and their health checks: the shared ECS child kind's types.
pub use crate::children::ecs::{Container, HealthCheck};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Network {
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    pub assign_public_ip: Option<bool>,
    pub security_group_ids: Option<Vec<String>>,
    pub ingress: Option<Vec<Ingress>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Ingress {
    pub port: i64,
    pub cidr_blocks: Option<Vec<String>>,
    pub source_security_group_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadBalancer {
    pub listener_arn: String,
    pub host_header: Option<String>,
    pub path_pattern: Option<String>,
    pub priority: i64,
    pub container_name: Option<String>,
    pub health_check: Option<LbHealthCheck>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LbHealthCheck {
    pub path: Option<String>,
    pub matcher: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceConnect {
    pub namespace: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CircuitBreaker {
    pub enable: Option<bool>,
    pub rollback: Option<bool>,
}

impl FargateService {
    fn network(&self) -> Network {
        self.network.clone().unwrap_or_default()
    }
    fn exec_enabled(&self) -> bool {
        self.enable_execute_command.unwrap_or(false)
    }
    fn circuit_breaker(&self) -> (bool, bool) {
        let cb = self.deployment_circuit_breaker.clone().unwrap_or_default();
        (cb.enable.unwrap_or(true), cb.rollback.unwrap_or(true))
    }
    /// The container the load balancer sends traffic to, and its port.
    fn lb_target(&self) -> Option<(String, i64)> {
        let lb = self.load_balancer.as_ref()?;
        let c = match &lb.container_name {
            Some(n) => self.container.iter().find(|c| &c.name == n)?,
            None => self.container.iter().find(|c| c.port.is_some())?,
        };
        Some((c.name.clone(), c.port?))
    }
}

fn cluster_name(cluster: &str) -> &str {
    match cluster.rsplit_once(":cluster/") {
        Some((_, n)) => n,
        None => cluster,
    }
}

// ------------------------------------------------------------------ schema

const NAME_RE: &str = "[A-Za-z0-9_-]{1,255}";
const NAME_RULE: &str = "1 to 255 letters, digits, hyphens and underscores";
const RETENTION_DAYS: &[i64] = &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const ENV_NAME_RE: &str = "[A-Za-z_][A-Za-z0-9_]*";
const ENV_NAME_RULE: &str = "letters, digits and underscores, not starting with a digit";
const SG_RE: &str = "sg-[0-9a-f]+";
const SUBNET_RE: &str = "subnet-[0-9a-f]+";

fn attr(name: &str, ty: Type, doc: &str) -> Attribute {
    Attribute::new(name, ty).describe(doc)
}

fn schema_block() -> Block {
    let health_check = Block::new(vec![
        attr("command", Type::list(Type::String), "The check, as ECS runs it: `[\"CMD-SHELL\", \"curl -f http://localhost/health || exit 1\"]` or `[\"CMD\", \"/bin/check\"]`.")
            .required()
            .check(Check::Items(1, 100)),
        attr("interval", Type::Number, "Seconds between checks.").default(Value::int(30)).check(Check::Int(5, 300)),
        attr("timeout", Type::Number, "Seconds a check may take.").default(Value::int(5)).check(Check::Int(2, 60)),
        attr("retries", Type::Number, "Consecutive failures before the container is unhealthy.").default(Value::int(3)).check(Check::Int(1, 10)),
        attr("start_period", Type::Number, "Grace period in seconds after start during which failures do not count.").default(Value::int(0)).check(Check::Int(0, 300)),
    ])
    .describe("Container health check (ECS `healthCheck`).");

    let container = Block::new(vec![
        attr("name", Type::String, "Container name, unique within the service.").required().check(Check::Matches(NAME_RE, NAME_RULE)),
        attr(
            "image",
            Type::String,
            "Image to run, e.g. `123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest`. For ECR images the execution role may pull from exactly these repositories.",
        )
        .required()
        .check(Check::Matches(r"\S+", "an image reference without spaces")),
        attr("port", Type::Number, "TCP port the container listens on. Needed for a load balancer or Service Connect.").optional().check(Check::Int(1, 65535)),
        attr("essential", Type::Bool, "Whether the task stops when this container stops.").default(Value::Bool(true)),
        attr("command", Type::list(Type::String), "Overrides the image's command.").optional(),
        attr("environment", Type::map(Type::String), "Plain environment variables. Do not put secrets here: use `secrets`.")
            .default(Value::Map(BTreeMap::new()))
            .check(Check::keys(Check::Matches(ENV_NAME_RE, ENV_NAME_RULE))),
        attr(
            "secrets",
            Type::map(Type::String),
            "Environment variables filled from SSM parameters or Secrets Manager secrets at task start: name → ARN \
             (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME` or `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`, optionally with `:json-key::`). \
             The created execution role may read exactly these ARNs; wildcards are refused. The values never reach Terraform.",
        )
        .default(Value::Map(BTreeMap::new()))
        .check(Check::keys(Check::Matches(ENV_NAME_RE, ENV_NAME_RULE))),
    ])
    .with_blocks(vec![NestedBlock::new("health_check", Nesting::Single, health_check)])
    .describe("A container of the task. The first is usually the application; more are sidecars.");

    let ingress = Block::new(vec![
        attr("port", Type::Number, "TCP port to open.").required().check(Check::Int(1, 65535)),
        attr("cidr_blocks", Type::set(Type::String), "IPv4 or IPv6 CIDR blocks allowed to connect, e.g. `0.0.0.0/0`.").optional().check(Check::each(Check::Cidr)),
        attr("source_security_group_ids", Type::set(Type::String), "Security groups allowed to connect (e.g. the load balancer's).")
            .optional()
            .check(Check::each(Check::Matches(SG_RE, "a security group ID such as sg-0123456789abcdef0"))),
    ])
    .describe("An inbound rule of the created security group.");

    let network = Block::new(vec![
        attr("subnet_ids", Type::set(Type::String), "Subnets the tasks run in (all in one VPC).")
            .required()
            .check(Check::Items(1, 16))
            .check(Check::each(Check::Matches(SUBNET_RE, "a subnet ID such as subnet-0123456789abcdef0"))),
        attr("assign_public_ip", Type::Bool, "Give tasks public IPs (needed in public subnets without a NAT gateway to pull images).").default(Value::Bool(false)),
        attr("security_group_ids", Type::set(Type::String), "Use these security groups instead of creating one. When set, `ingress` must be empty.")
            .optional()
            .check(Check::Items(1, 5))
            .check(Check::each(Check::Matches(SG_RE, "a security group ID such as sg-0123456789abcdef0"))),
    ])
    .with_blocks(vec![NestedBlock::new("ingress", Nesting::Set, ingress)])
    .describe("Where tasks run (`awsvpc` networking).");

    let lb_health = Block::new(vec![
        attr("path", Type::String, "HTTP path the load balancer checks.")
            .default(Value::string(DEFAULT_LB_HEALTH_PATH))
            .check(Check::Matches("/.{0,1023}", "a path starting with / (at most 1024 characters)")),
        attr("matcher", Type::String, "HTTP codes that count as healthy: `200`, `200-299` or `200,204`.")
            .default(Value::string(DEFAULT_LB_MATCHER))
            .check(Check::Matches(r"\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*", "HTTP codes such as 200, 200-299 or 200,204")),
    ])
    .describe("Target group health check.");

    let load_balancer = Block::new(vec![
        attr("listener_arn", Type::String, "ARN of the HTTP(S) listener of an existing Application Load Balancer.")
            .required()
            .check(Check::Arn { service: "elasticloadbalancing", resource: "listener/" }),
        attr("host_header", Type::String, "Route requests for this host name, e.g. `api.example.com`.").optional().check(Check::Len(1, 128)),
        attr("path_pattern", Type::String, "Route requests whose path matches, e.g. `/api/*`.").optional().check(Check::Len(1, 128)),
        attr("priority", Type::Number, "Listener rule priority, unique on the listener.").required().check(Check::Int(1, 50000)),
        attr("container_name", Type::String, "Container that receives the traffic. Default: the first container with a `port`.").optional().computed(),
    ])
    .with_blocks(vec![NestedBlock::new("health_check", Nesting::Single, lb_health)])
    .describe("Put the service behind an existing load balancer: creates a target group (type `ip`) and a listener rule. Needs `host_header` or `path_pattern`.");

    let service_connect = Block::new(vec![
        attr("namespace", Type::String, "Cloud Map namespace (name or ARN). The first container with a port is published under the service name.")
            .required()
            .check(Check::Len(1, 1024)),
    ])
    .describe("Join ECS Service Connect.");

    let circuit_breaker = Block::new(vec![
        attr("enable", Type::Bool, "Stop a deployment whose tasks keep failing.").default(Value::Bool(true)),
        attr("rollback", Type::Bool, "Roll back to the last working deployment when the breaker trips.").default(Value::Bool(true)),
    ])
    .describe("ECS deployment circuit breaker. Without this block both are on.");

    Block::new(vec![
        attr("name", Type::String, "Service name; also the task definition family. Changing it replaces the service.")
            .required()
            .force_new()
            .check(Check::Matches(NAME_RE, NAME_RULE)),
        attr("cluster", Type::String, "ECS cluster name or ARN. Changing it replaces the service.").required().force_new().check(Check::Matches(
            r"[A-Za-z0-9_-]{1,255}|arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9_-]{1,255}",
            "an ECS cluster name (letters, digits, `-`, `_`) or a cluster ARN",
        )),
        attr("cpu", Type::Number, "Task CPU units. Each allows certain `memory` sizes (Fargate rules).").required().check(Check::IntIn(&[256, 512, 1024, 2048, 4096, 8192, 16384])),
        attr("memory", Type::Number, "Task memory in MiB, valid for `cpu` (e.g. 256 → 512–2048; 1024 → 2048–8192).").required().check(Check::Int(512, 122880)),
        attr("desired_count", Type::Number, "Number of tasks to keep running.").default(Value::int(1)).check(Check::Int(0, 5000)),
        attr("enable_execute_command", Type::Bool, "Allow `aws ecs execute-command` into tasks; adds the `ssmmessages` channel permissions to the created task role.")
            .default(Value::Bool(false)),
        attr("wait_for_steady_state", Type::Bool, "Wait until the deployment completes (running tasks = desired) before finishing.").default(Value::Bool(true)),
        attr("execution_role_arn", Type::String, "Task execution role. When unset, a least-privilege role is created (its ARN appears here).")
            .optional()
            .computed()
            .check(Check::Arn { service: "iam", resource: "role/" }),
        attr("task_role_arn", Type::String, "Role the application runs as. When unset, a role is created (its ARN appears here).")
            .optional()
            .computed()
            .check(Check::Arn { service: "iam", resource: "role/" }),
        attr("log_retention_days", Type::Number, "Days the CloudWatch log group keeps logs.").default(Value::int(30)).check(Check::IntIn(RETENTION_DAYS)),
        attr("retain_logs", Type::Bool, "Keep the log group when the service is destroyed.").default(Value::Bool(false)),
        attr("service_arn", Type::String, "ARN of the ECS service.").computed(),
        attr("task_definition_arn", Type::String, "ARN of the current task definition revision.").computed(),
        attr("task_definition_revision", Type::Number, "Revision number of the current task definition.").computed(),
        attr("security_group_id", Type::String, "ID of the created security group (null when `network.security_group_ids` is set).").computed(),
        attr("log_group_name", Type::String, "Name of the CloudWatch log group, `/cxflow/<cluster>/<service>`.").computed(),
        attr("target_group_arn", Type::String, "ARN of the created target group (null without `load_balancer`).").computed(),
    ])
    .with_blocks(vec![
        NestedBlock::new("container", Nesting::List, container).min(1),
        NestedBlock::new("network", Nesting::Single, network).min(1).max(1),
        NestedBlock::new("load_balancer", Nesting::Single, load_balancer),
        NestedBlock::new("service_connect", Nesting::Single, service_connect),
        NestedBlock::new("deployment_circuit_breaker", Nesting::Single, circuit_breaker),
    ])
    .describe(
        "An ECS service on Fargate with everything it needs: a CloudWatch log group, a least-privilege execution role, a task role, \
         a security group, optionally a target group and listener rule on an existing load balancer, the task definition and the service. \
         Every object carries the tag `cxflow:owner`. Apply waits for the deployment to reach a steady state.",
    )
}

// ------------------------------------------------------------------ validation across attributes (no AWS calls)

/// Fargate's CPU → allowed memory sizes: (cpu, min, max, step) in MiB.
const FARGATE_SIZES: &[(i64, i64, i64, i64)] = &[
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

pub fn memory_allowed(cpu: i64, memory: i64) -> Result<(), String> {
    match FARGATE_SIZES.iter().find(|s| s.0 == cpu) {
        None => Err(format!("cpu must be one of 256, 512, 1024, 2048, 4096, 8192 or 16384 (Fargate), not {cpu}.")),
        Some(&(_, min, max, step)) => {
            // 256 CPU allows 512, 1024 and 2048 exactly.
            let ok = if cpu == 256 { [512, 1024, 2048].contains(&memory) } else { memory >= min && memory <= max && (memory - min) % step == 0 };
            if ok { Ok(()) } else { Err(format!("With cpu = {cpu}, Fargate allows memory from {min} to {max} MiB in steps of {step}; {memory} is not allowed.")) }
        }
    }
}

/// A secret reference: the full ARN of one SSM parameter or Secrets Manager
/// secret (optionally with a JSON key, version stage and id), no wildcards.
pub fn secret_arn_ok(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"^arn:aws(-cn|-us-gov)?:(ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9_.\-/]+|secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]+(:[^:*?]*:[^:*?]*:[^:*?]*)?)$",
        )
        .unwrap()
    });
    re.is_match(s) && !s.contains('*') && !s.contains('?')
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    if let (Some(name), Some(cl)) = (c.get("name").as_str(), c.get("cluster").as_str()) {
        let owner = crate::engine::Owner::new(TYPE_NAME, &format!("{}/{name}", cluster_name(cl)));
        let n = owner.tag_value().chars().count();
        if n > MAX_OWNER_TAG {
            let room = MAX_OWNER_TAG - (n - name.chars().count());
            d.attr_error(
                Path::attr("name"),
                "Name too long",
                format!("name has {} characters; with cluster {:?} the ownership tag every child carries would have {n}, over AWS's {MAX_OWNER_TAG}-character limit for tag values: use at most {room} characters.", name.chars().count(), cluster_name(cl)),
            );
        }
    }
    if let (Some(cpu), Some(mem)) = (c.get("cpu").as_i64(), c.get("memory").as_i64()) {
        if FARGATE_SIZES.iter().any(|s| s.0 == cpu) {
            if let Err(e) = memory_allowed(cpu, mem) {
                d.attr_error(Path::attr("memory"), "Invalid Fargate CPU/memory combination", e);
            }
        }
    }

    // containers
    let containers = c.get("container");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ported: Vec<String> = Vec::new();
    for (i, ct) in containers.elements().unwrap_or_default().iter().enumerate() {
        let p = Path::attr("container").index(i);
        if let Some(n) = ct.get("name").as_str() {
            if let Some(first) = seen.insert(n.to_string(), i) {
                d.attr_error(p.then_attr("name"), "Duplicate container name", format!("container[{i}] has the same name as container[{first}]; container names must be unique."));
            }
            if !ct.get("port").is_null() {
                ported.push(n.to_string());
            }
        }
        let env = ct.get("environment").entries();
        for (k, v) in ct.get("secrets").entries().into_iter().flatten() {
            let kp = p.then_attr("secrets").key(k);
            if let Some(arn) = v.as_str() {
                if !secret_arn_ok(arn) {
                    d.attr_error(
                        kp.clone(),
                        "Invalid secret reference",
                        format!(
                            "{kp} must be the full ARN of one SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or Secrets Manager secret \
                             (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf, optionally :json-key::); wildcards are refused, since the execution role may read exactly what is referenced."
                        ),
                    );
                }
            }
            if env.is_some_and(|e| e.contains_key(k)) {
                d.attr_error(kp, "Variable set twice", format!("{k} is in both environment and secrets of this container."));
            }
        }
        let hc = ct.get("health_check");
        if let Some(Some(k)) = hc.get("command").elements().and_then(|c| c.first()).map(|x| x.as_str()) {
            if !["CMD", "CMD-SHELL", "NONE"].contains(&k) {
                d.attr_error(p.then_attr("health_check").then_attr("command").index(0), "Invalid health check command", "The first element must be CMD, CMD-SHELL or NONE.");
            }
        }
    }

    // network
    let net = c.get("network");
    if !net.is_null() {
        let np = Path::attr("network");
        let ingress = net.get("ingress").elements().unwrap_or_default();
        if !ingress.is_empty() && !net.get("security_group_ids").is_null() {
            d.attr_error(
                np.then_attr("ingress"),
                "Ingress with your own security groups",
                "ingress rules apply to the security group this resource creates; with security_group_ids set, manage rules on those groups instead.",
            );
        }
        for (i, r) in ingress.iter().enumerate() {
            let none = |a: &str| r.get(a).elements().is_some_and(|e| e.is_empty()) || r.get(a).is_null();
            if none("cidr_blocks") && none("source_security_group_ids") {
                d.attr_error(np.then_attr("ingress").index(i), "Ingress rule without a source", "An ingress rule needs cidr_blocks or source_security_group_ids.");
            }
        }
    }

    // load balancer
    let lb = c.get("load_balancer");
    if !lb.is_null() {
        let lp = Path::attr("load_balancer");
        if lb.get("host_header").is_null() && lb.get("path_pattern").is_null() {
            d.attr_error(
                lp.then_attr("host_header"),
                "Listener rule needs a condition",
                "Set host_header or path_pattern (or both) so the listener rule knows which requests to send to this service.",
            );
        }
        if containers.is_wholly_known() {
            match lb.get("container_name").as_str() {
                Some(cn) if !ported.iter().any(|p| p == cn) => {
                    d.attr_error(lp.then_attr("container_name"), "Unknown load balancer container", format!("container_name must name a container with a port; {cn:?} is not one."))
                }
                None if lb.get("container_name").is_null() && ported.is_empty() => {
                    d.attr_error(lp.clone(), "No container to send traffic to", "A load balancer needs a container with a port.")
                }
                _ => {}
            }
        }
    }
    d
}

// ------------------------------------------------------------------ derived names

/// Names of the children, derived deterministically from cluster and service
/// name so a retry after a crash finds (and adopts) what the first try made.
#[derive(Clone, Debug)]
pub struct Names {
    pub cluster: String,
    pub service: String,
    seed: String,
}

impl Names {
    pub fn new(cluster: &str, service: &str) -> Names {
        let cluster = cluster_name(cluster).to_string();
        Names { seed: format!("{TYPE_NAME}/{cluster}/{service}"), cluster, service: service.to_string() }
    }
    pub fn id(&self) -> String {
        format!("{}/{}", self.cluster, self.service)
    }
    pub fn log_group(&self) -> String {
        format!("/cxflow/{}/{}", self.cluster, self.service)
    }
    fn role(&self, suffix: &str) -> String {
        names::bounded(&self.service, &self.seed, suffix, 64, |c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    }
    pub fn execution_role(&self) -> String {
        self.role("-exec")
    }
    pub fn task_role(&self) -> String {
        self.role("-task")
    }
    pub fn security_group(&self) -> String {
        names::bounded(&format!("{}-{}", self.cluster, self.service), &self.seed, "", 255, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
    }
    /// Target group names hold 32 characters; the port is part of the seed
    /// because a target group's port cannot change (a new port means a new group).
    pub fn target_group(&self, port: i64) -> String {
        names::bounded(&self.service, &format!("{}:{port}", self.seed), "", 32, |c| c.is_ascii_alphanumeric())
    }
    pub fn family(&self) -> String {
        self.service.clone()
    }
}

// ------------------------------------------------------------------ IAM policies

/// What the execution role must be allowed to read.
#[derive(Clone, Debug, Default)]
struct ExecNeeds {
    /// SSM parameter ARNs and Secrets Manager secret ARNs the containers reference.
    parameters: Vec<String>,
    secrets: Vec<String>,
    /// ECR repositories the images come from: (region, account, repository).
    repositories: Vec<(String, String, String)>,
}

fn ecr_repository(image: &str) -> Option<(String, String, String)> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)").unwrap());
    re.captures(image).map(|c| (c[2].to_string(), c[1].to_string(), c[3].to_string()))
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut x = v.to_vec();
    x.sort();
    x.dedup();
    x
}

impl ExecNeeds {
    fn of(cfg: &FargateService) -> ExecNeeds {
        let mut n = ExecNeeds::default();
        for c in &cfg.container {
            for arn in c.secrets.iter().flat_map(|s| s.values()) {
                if arn.contains(":ssm:") {
                    n.parameters.push(arn.clone());
                } else {
                    // Secrets Manager references may carry `:json-key:version-stage:version-id`; the policy needs the secret itself.
                    n.secrets.push(arn.split(':').take(7).collect::<Vec<_>>().join(":"));
                }
            }
            if let Some(r) = ecr_repository(&c.image) {
                n.repositories.push(r);
            }
        }
        n.parameters = sorted(&n.parameters);
        n.secrets = sorted(&n.secrets);
        n.repositories = sorted(&n.repositories);
        n
    }
}

fn execution_policy(c: &Common, names: &Names, n: &ExecNeeds) -> serde_json::Value {
    let (p, region, account) = (c.partition(), &c.region, &c.account);
    let mut st = vec![json!({
        "Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": format!("arn:{p}:logs:{region}:{account}:log-group:{}:*", names.log_group())
    })];
    if !n.repositories.is_empty() {
        st.push(json!({"Sid": "EcrAuth", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}));
        let repos: Vec<String> = n.repositories.iter().map(|(r, a, name)| format!("arn:{p}:ecr:{r}:{a}:repository/{name}")).collect();
        st.push(json!({"Sid": "EcrPull", "Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"], "Resource": repos}));
    }
    if !n.parameters.is_empty() {
        st.push(json!({"Sid": "Parameters", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": n.parameters}));
    }
    if !n.secrets.is_empty() {
        st.push(json!({"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": n.secrets}));
    }
    let mut via = Vec::new();
    if !n.parameters.is_empty() {
        via.push(format!("ssm.{region}.amazonaws.com"));
    }
    if !n.secrets.is_empty() {
        via.push(format!("secretsmanager.{region}.amazonaws.com"));
    }
    if !via.is_empty() {
        st.push(json!({
            "Sid": "DecryptViaService", "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": format!("arn:{p}:kms:{region}:{account}:key/*"), "Condition": {"StringEquals": {"kms:ViaService": via}}
        }));
    }
    json!({"Version": "2012-10-17", "Statement": st})
}

fn ecs_exec_policy() -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EcsExec", "Effect": "Allow",
            "Action": ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
            "Resource": "*"
        }]
    })
}

// ------------------------------------------------------------------ the graph

fn role_is(arn: &str, name: &str) -> bool {
    arn.contains(":role/") && arn.rsplit('/').next() == Some(name)
}

/// Every child this resource can have, wanted or not, for configuration `cfg`.
fn build_graph(cfg: &FargateService, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let names = Names::new(&cfg.cluster, &cfg.name);
    let net = cfg.network();
    let subnet = net.subnet_ids.iter().min().cloned().unwrap_or_default();
    let supplied_exec = cfg.execution_role_arn.clone().filter(|a| !role_is(a, &names.execution_role()));
    let supplied_task = cfg.task_role_arn.clone().filter(|a| !role_is(a, &names.task_role()));
    let lb_target = cfg.lb_target();
    let lb_port = lb_target.as_ref().map(|t| t.1).unwrap_or(0);
    let lb = cfg.load_balancer.as_ref();
    let hc = lb.and_then(|l| l.health_check.clone()).unwrap_or_default();
    let first_port = cfg.container.iter().find(|c| c.port.is_some()).map(|c| (c.name.clone(), c.port.unwrap_or(0)));
    let role_ref = |supplied: &Option<String>, key: &str| Some(supplied.clone().map(Ref::Lit).unwrap_or_else(|| Ref::dep(key)));
    let security_groups = match &net.security_group_ids {
        Some(s) => sorted(s).into_iter().map(Ref::Lit).collect(),
        None => vec![Ref::dep("security_group")],
    };
    let trust = service_trust("ecs-tasks.amazonaws.com", Some(json!({"StringEquals": {"aws:SourceAccount": c.account}})));
    let mut task_inline = BTreeMap::new();
    if cfg.exec_enabled() {
        task_inline.insert(TASK_POLICY_NAME.to_string(), ecs_exec_policy());
    }
    let mut ingress = Vec::new();
    for r in net.ingress.iter().flatten() {
        for s in r.cidr_blocks.iter().flatten().chain(r.source_security_group_ids.iter().flatten()) {
            ingress.push(Rule::tcp(r.port as i32, Ref::lit(s.clone())));
        }
    }
    let description = format!("Managed by terraform-provider-cxflow for {}", c.owner);
    let nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(LogGroupNode {
            c: c.clone(),
            key: "log_group".into(),
            name: names.log_group(),
            retention_days: cfg.log_retention_days.unwrap_or(30),
            retain: cfg.retain_logs.unwrap_or(false),
        }),
        Box::new(RoleNode {
            c: c.clone(),
            key: "execution_role".into(),
            name: names.execution_role(),
            path: "/".into(),
            description: description.clone(),
            trust: trust.clone(),
            managed: Vec::new(),
            inline: BTreeMap::from([(EXEC_POLICY_NAME.to_string(), execution_policy(&c, &names, &ExecNeeds::of(cfg)))]),
            wanted: supplied_exec.is_none(),
        }),
        Box::new(RoleNode {
            c: c.clone(),
            key: "task_role".into(),
            name: names.task_role(),
            path: "/".into(),
            description,
            trust,
            managed: Vec::new(),
            inline: task_inline,
            wanted: supplied_task.is_none(),
        }),
        Box::new(SecurityGroupNode {
            c: c.clone(),
            key: "security_group".into(),
            name: names.security_group(),
            description: format!("ECS service {} (managed by cxflow)", names.id()),
            vpc: VpcOf::Subnet(subnet.clone()),
            ingress,
            wanted: net.security_group_ids.is_none(),
        }),
        Box::new(TargetGroupNode {
            c: c.clone(),
            key: "target_group".into(),
            name: names.target_group(lb_port),
            port: lb_port,
            vpc: VpcOf::Subnet(subnet),
            health: TgHealth::http(hc.path.as_deref().unwrap_or(DEFAULT_LB_HEALTH_PATH), hc.matcher.as_deref().unwrap_or(DEFAULT_LB_MATCHER)),
            attributes: BTreeMap::new(),
            wanted: lb.is_some(),
        }),
        Box::new(ListenerRuleNode {
            c: c.clone(),
            key: "listener_rule".into(),
            listener: Ref::Lit(lb.map(|l| l.listener_arn.clone()).unwrap_or_default()),
            target_group: Ref::dep("target_group"),
            priority: lb.map(|l| l.priority).unwrap_or(0),
            conditions: Conditions {
                host_headers: lb.and_then(|l| l.host_header.clone()).into_iter().collect(),
                path_patterns: lb.and_then(|l| l.path_pattern.clone()).into_iter().collect(),
                ..Default::default()
            },
            wanted: lb.is_some(),
        }),
        Box::new(TaskDefinitionNode {
            c: c.clone(),
            key: "task_definition".into(),
            family: names.family(),
            cpu: cfg.cpu,
            memory: cfg.memory,
            containers: cfg.container.clone(),
            execution_role: role_ref(&supplied_exec, "execution_role"),
            task_role: role_ref(&supplied_task, "task_role"),
            log_group: Ref::dep("log_group"),
            service_connect: cfg.service_connect.is_some(),
        }),
        Box::new(ServiceNode {
            c,
            key: "service".into(),
            cluster: Ref::Lit(cfg.cluster.clone()),
            name: cfg.name.clone(),
            task_definition: Ref::dep("task_definition"),
            desired_count: cfg.desired_count.unwrap_or(1),
            subnets: sorted(&net.subnet_ids).into_iter().map(Ref::Lit).collect(),
            security_groups,
            public_ip: net.assign_public_ip.unwrap_or(false),
            exec: cfg.exec_enabled(),
            circuit_breaker: cfg.circuit_breaker(),
            service_connect: cfg.service_connect.as_ref().map(|sc| ServiceConnectSpec { namespace: sc.namespace.clone(), publish: first_port }),
            load_balancer: lb_target.map(|(container, port)| LbTarget { target_group: Ref::dep("target_group"), container, port }),
            wait: cfg.wait_for_steady_state.unwrap_or(true),
            // A target group must be attached to a load balancer (by the rule) before a service can use it.
            after: if lb.is_some() { vec!["listener_rule".to_string()] } else { Vec::new() },
        }),
    ];
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

/// The longest chain of dependent children a create of this configuration
/// needs, e.g. `["log_group", "task_definition", "service"]`. Needs no AWS access.
pub fn critical_path(cfg: &FargateService) -> Vec<String> {
    let c = Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "x"), tags: Tags::new(), region: "us-east-1".into(), account: "123456789012".into() });
    build_graph(cfg, c).map(|g| g.critical_path()).unwrap_or_default()
}

fn revision_of(td_arn: &str) -> Option<i64> {
    td_arn.rsplit(':').next().and_then(|r| r.parse().ok())
}

fn opt(v: Option<String>) -> Value {
    v.map(Value::string).unwrap_or(Value::Null)
}

/// `<cluster>/<service>`, a service ARN (`arn:aws:ecs:...:service/<cluster>/<service>`)
/// or a cluster ARN followed by `/<service>`.
pub fn parse_import_id(id: &str) -> Option<(String, String)> {
    let id = id.trim();
    if let Some(rest) = id.strip_prefix("arn:") {
        if let Some((prefix, path)) = rest.split_once(":service/") {
            let (cluster, service) = path.split_once('/')?;
            return Some((format!("arn:{prefix}:cluster/{cluster}"), service.to_string()));
        }
        let (cluster_arn, service) = id.rsplit_once('/')?;
        return (cluster_arn.contains(":cluster/") && !service.is_empty()).then(|| (cluster_arn.to_string(), service.to_string()));
    }
    let (cluster, service) = id.split_once('/')?;
    (!cluster.is_empty() && !service.is_empty() && !service.contains('/')).then(|| (cluster.to_string(), service.to_string()))
}

// ------------------------------------------------------------------ the composite

pub struct EcsFargateService;

fn strs(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|x| x.as_array()).map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[async_trait]
impl Composite<Aws> for EcsFargateService {
    type State = FargateService;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;
    const CONFIG_OR_CHILD: &'static [(&'static str, &'static str)] = &[("execution_role_arn", "execution_role"), ("task_role_arn", "task_role")];

    fn block() -> Block {
        schema_block()
    }
    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }
    fn plan_defaults(p: &mut Value) {
        // The load balancer's default container: the first with a port.
        let lb_container = p.get("container").elements().map(|cs| match cs.iter().find(|c| !c.get("port").is_null()) {
            Some(c) if c.get("port").is_unknown() => Value::Unknown,
            Some(c) => c.get("name").clone(),
            None => Value::Null,
        });
        if let Some(lb) = p.get_mut("load_balancer").filter(|n| matches!(n, Value::Object(_))) {
            if lb.get("container_name").is_null() {
                lb.set_attr("container_name", lb_container.unwrap_or(Value::Unknown));
            }
        }
    }
    fn derived(p: &mut Value) {
        let names = match (p.get("cluster").as_str(), p.get("name").as_str()) {
            (Some(c), Some(n)) => Some(Names::new(c, n)),
            _ => None,
        };
        p.set_attr("log_group_name", names.as_ref().map(|n| Value::string(n.log_group())).unwrap_or(Value::Unknown));
    }
    fn owner_name(s: &FargateService) -> String {
        Names::new(&s.cluster, &s.name).id()
    }
    fn id(s: &FargateService) -> String {
        Names::new(&s.cluster, &s.name).id()
    }
    async fn graph(s: &FargateService, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        p.set_attr("service_arn", pc.identity("service"));
        let td = pc.identity("task_definition");
        p.set_attr("task_definition_revision", td.as_str().and_then(revision_of).map(Value::int).unwrap_or(Value::Unknown));
        p.set_attr("task_definition_arn", td);
        p.set_attr("security_group_id", pc.identity("security_group"));
        p.set_attr("target_group_arn", pc.identity("target_group"));
    }
    fn outputs(st: &mut Value, cfg: &FargateService, kids: &Kids<'_>) {
        let names = Names::new(&cfg.cluster, &cfg.name);
        st.set_attr("log_group_name", opt(kids.id("log_group")));
        st.set_attr("service_arn", opt(kids.id("service")));
        let td = kids.id("task_definition");
        st.set_attr("task_definition_revision", td.as_deref().and_then(revision_of).map(Value::int).unwrap_or(Value::Null));
        st.set_attr("task_definition_arn", opt(td));
        st.set_attr("security_group_id", opt(kids.id("security_group")));
        st.set_attr("target_group_arn", opt(kids.id("target_group")));
        for (a, k, own) in [("execution_role_arn", "execution_role", names.execution_role()), ("task_role_arn", "task_role", names.task_role())] {
            let configured = st.get(a).as_str().filter(|arn| !role_is(arn, &own)).map(str::to_string);
            st.set_attr(a, opt(configured.or_else(|| kids.id(k))));
        }
    }

    fn import_seed(id: &str) -> Result<FargateService, Diags> {
        let (cluster, name) = parse_import_id(id)
            .ok_or_else(|| Diags::from(Diagnostic::error("Invalid import ID", format!("Import a {TYPE_NAME} as <cluster>/<service> or by its service ARN, not {id:?}."))))?;
        Ok(FargateService { name, cluster, cpu: 256, memory: 512, container: Vec::new(), network: Some(Network::default()), ..Default::default() })
    }
    fn import_identities(_cfg: &FargateService, kids: &Kids<'_>) -> BTreeMap<String, Identity> {
        // The revision the service runs, not the family's latest.
        kids.str_field("service", "task_definition")
            .filter(|t| t.starts_with("arn:"))
            .map(|t| BTreeMap::from([("task_definition".to_string(), Identity::new(t))]))
            .unwrap_or_default()
    }
    async fn from_observed(aws: &Aws, seed: &FargateService, kids: &Kids<'_>) -> Result<FargateService, Diags> {
        let default_tags = &aws.default_tags;
        let mut cfg = seed.clone();
        let names = Names::new(&cfg.cluster, &cfg.name);
        if let Some(svc) = kids.observed("service") {
            cfg.desired_count = svc.get("desired_count").and_then(|v| v.as_i64());
            let mut net = cfg.network();
            net.subnet_ids = strs(svc.get("subnets"));
            net.assign_public_ip = Some(svc.get("assign_public_ip").and_then(|v| v.as_bool()).unwrap_or(false));
            let sgs = strs(svc.get("security_groups"));
            net.security_group_ids = if kids.id("security_group").is_some_and(|sg| sgs == [sg.clone()]) || sgs == ["<security_group>"] { None } else { Some(sgs) };
            cfg.network = Some(net);
            cfg.enable_execute_command = Some(svc.get("enable_execute_command").and_then(|v| v.as_bool()).unwrap_or(false));
            cfg.deployment_circuit_breaker = svc
                .get("circuit_breaker")
                .filter(|cb| !(cb["enable"] == true && cb["rollback"] == true))
                .map(|cb| CircuitBreaker { enable: cb["enable"].as_bool(), rollback: cb["rollback"].as_bool() });
            cfg.service_connect = svc.get("service_connect").and_then(|sc| sc["namespace"].as_str()).map(|n| ServiceConnect { namespace: n.to_string() });
            if let Some(lb) = svc.get("load_balancers").and_then(|l| l.get(0)) {
                let mut l = cfg.load_balancer.clone().unwrap_or_default();
                l.container_name = lb["container"].as_str().map(str::to_string);
                cfg.load_balancer = Some(l);
            }
            cfg.tags = Some(kids.user_tags("service", default_tags)).filter(|t| !t.is_empty());
        }
        if let Some(td) = kids.observed("task_definition") {
            cfg.cpu = td.get("cpu").and_then(|v| v.as_str()).and_then(|c| c.parse().ok()).unwrap_or(cfg.cpu);
            cfg.memory = td.get("memory").and_then(|v| v.as_str()).and_then(|c| c.parse().ok()).unwrap_or(cfg.memory);
            cfg.container = containers_from_spec(td.get("containers").and_then(|c| c.as_array()).map(Vec::as_slice).unwrap_or_default());
            for (field, attr, own) in [("execution_role", &mut cfg.execution_role_arn, names.execution_role()), ("task_role", &mut cfg.task_role_arn, names.task_role())] {
                *attr = td.get(field).and_then(|v| v.as_str()).filter(|a| a.starts_with("arn:") && !role_is(a, &own)).map(str::to_string);
            }
            if let Some(lb) = cfg.load_balancer.as_mut() {
                // The port the load balancer sends to names the target group.
                if lb.container_name.is_none() {
                    lb.container_name = cfg.container.iter().find(|c| c.port.is_some()).map(|c| c.name.clone());
                }
            }
        }
        if let Some(tg) = kids.observed("target_group") {
            let (path, matcher) = (tg["health_check"]["path"].as_str().unwrap_or(DEFAULT_LB_HEALTH_PATH), tg["health_check"]["matcher"].as_str().unwrap_or(DEFAULT_LB_MATCHER));
            if let Some(lb) = cfg.load_balancer.as_mut() {
                lb.health_check =
                    (path != DEFAULT_LB_HEALTH_PATH || matcher != DEFAULT_LB_MATCHER).then(|| LbHealthCheck { path: Some(path.into()), matcher: Some(matcher.into()) });
            }
        }
        if let Some(rule) = kids.observed("listener_rule") {
            if let Some(lb) = cfg.load_balancer.as_mut() {
                lb.listener_arn = rule.get("listener").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                lb.priority = rule.get("priority").and_then(|v| v.as_i64()).unwrap_or(0);
                lb.host_header = rule["conditions"]["host_headers"].get(0).and_then(|v| v.as_str()).map(str::to_string);
                lb.path_pattern = rule["conditions"]["path_patterns"].get(0).and_then(|v| v.as_str()).map(str::to_string);
            }
        }
        if let Some(lg) = kids.observed("log_group") {
            cfg.log_retention_days = lg.get("retention_in_days").and_then(|v| v.as_i64());
        }
        if let Some(sg) = kids.observed("security_group") {
            let mut by_port: BTreeMap<i64, Ingress> = BTreeMap::new();
            for r in strs(sg.get("ingress")) {
                let Some((head, src)) = r.split_once(" from ") else { continue };
                let Some(port) = head.strip_prefix("tcp ").and_then(|p| p.split('-').next()).and_then(|p| p.parse::<i64>().ok()) else { continue };
                let e = by_port.entry(port).or_insert_with(|| Ingress { port, ..Default::default() });
                let list = if src.starts_with("sg-") { &mut e.source_security_group_ids } else { &mut e.cidr_blocks };
                list.get_or_insert_with(Vec::new).push(src.to_string());
            }
            if let Some(net) = cfg.network.as_mut() {
                net.ingress = (!by_port.is_empty()).then(|| by_port.into_values().collect());
            }
        }
        Ok(cfg)
    }
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<EcsFargateService>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FargateService {
        FargateService {
            name: "backend-flask".into(),
            cluster: "cruddur".into(),
            cpu: 256,
            memory: 512,
            container: vec![Container {
                name: "app".into(),
                image: "123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest".into(),
                port: Some(4567),
                secrets: Some(BTreeMap::from([
                    ("A".into(), "arn:aws:ssm:eu-west-2:123456789012:parameter/x/A".into()),
                    ("B".into(), "arn:aws:secretsmanager:eu-west-2:123456789012:secret:db-AbCdEf:password::".into()),
                ])),
                ..Default::default()
            }],
            network: Some(Network { subnet_ids: vec!["subnet-1".into()], ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn fargate_sizes_follow_the_table() {
        for (cpu, mem, ok) in [
            (256, 512, true),
            (256, 2048, true),
            (256, 4096, false),
            (512, 4096, true),
            (1024, 3072, true),
            (1024, 1024, false),
            (2048, 16384, true),
            (4096, 30720, true),
            (4096, 8704, false),
            (8192, 20480, true),
            (8192, 18432, false),
            (16384, 122880, true),
            (300, 512, false),
        ] {
            assert_eq!(memory_allowed(cpu, mem).is_ok(), ok, "cpu {cpu} memory {mem}");
        }
    }

    #[test]
    fn derived_names_fit_aws_limits() {
        let long = "a".repeat(255);
        let n = Names::new("arn:aws:ecs:eu-west-2:123456789012:cluster/cruddur", &long);
        assert_eq!(n.cluster, "cruddur");
        let tg = n.target_group(4567);
        assert!(tg.len() <= 32 && tg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{tg}");
        assert_ne!(n.target_group(4567), n.target_group(8080), "a new port means a new target group");
        assert!(n.execution_role().len() <= 64 && n.execution_role().ends_with("-exec"));
        assert_ne!(Names::new("a", "svc").execution_role(), Names::new("b", "svc").execution_role(), "same service name in two clusters");
        assert_eq!(n.log_group(), format!("/cxflow/cruddur/{long}"));
    }

    #[test]
    fn execution_policy_is_scoped_to_what_the_containers_reference() {
        let c = Common { owner: crate::engine::Owner::new(TYPE_NAME, "x"), tags: Tags::new(), region: "eu-west-2".into(), account: "123456789012".into() };
        let doc = execution_policy(&c, &Names::new("cruddur", "backend-flask"), &ExecNeeds::of(&cfg())).to_string();
        assert!(doc.contains("arn:aws:ssm:eu-west-2:123456789012:parameter/x/A"), "{doc}");
        assert!(doc.contains("\"arn:aws:secretsmanager:eu-west-2:123456789012:secret:db-AbCdEf\""), "the JSON key suffix is cut: {doc}");
        assert!(doc.contains("arn:aws:ecr:eu-west-2:123456789012:repository/backend-flask"), "{doc}");
        assert!(doc.contains("kms:ViaService") && !doc.contains("\"ssm:*\""), "{doc}");
    }

    #[test]
    fn secret_references_refuse_wildcards() {
        assert!(secret_arn_ok("arn:aws:ssm:us-east-1:123456789012:parameter/app/db"));
        assert!(secret_arn_ok("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::"));
        for bad in [
            "arn:aws:ssm:us-east-1:123456789012:parameter/*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/?b",
            "plain",
        ] {
            assert!(!secret_arn_ok(bad), "{bad}");
        }
    }

    #[test]
    fn critical_path_is_log_group_task_definition_service() {
        assert_eq!(critical_path(&cfg()), ["log_group", "task_definition", "service"]);
    }

    #[test]
    fn owner_tags_stay_within_aws_limits() {
        let mut v = crate::framework::typed::to_value(&cfg(), &crate::engine::composite::schema_of::<Aws, EcsFargateService>().value_type()).unwrap();
        v.set_attr("name", Value::string("n".repeat(240)));
        let d = validate_config(&v);
        assert_eq!(d.0.iter().map(|x| x.path.as_ref().unwrap().to_string()).collect::<Vec<_>>(), ["name"], "{d}");
    }

    #[test]
    fn import_ids_take_names_or_arns() {
        assert_eq!(parse_import_id("cruddur/backend"), Some(("cruddur".into(), "backend".into())));
        assert_eq!(parse_import_id("arn:aws:ecs:eu-west-2:1:service/cruddur/backend"), Some(("arn:aws:ecs:eu-west-2:1:cluster/cruddur".into(), "backend".into())));
        assert_eq!(parse_import_id("arn:aws:ecs:eu-west-2:1:cluster/cruddur/backend"), Some(("arn:aws:ecs:eu-west-2:1:cluster/cruddur".into(), "backend".into())));
        assert_eq!(parse_import_id("backend"), None);
        assert_eq!(crate::children::lb::listener_of_rule("arn:aws:elasticloadbalancing:r:1:listener-rule/app/lb/1/2/3"), "arn:aws:elasticloadbalancing:r:1:listener/app/lb/1/2");
    }
}
