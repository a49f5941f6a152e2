//! `cxflow_ecs_fargate_service`: one ECS service on Fargate with everything it
//! needs — log group, execution and task roles, security group, optional
//! target group and listener rule, task definition and the service itself —
//! as one composite resource on the [`crate::engine`].
//!
//! Log group, target group, listener rule, task definition and service are
//! the shared child kinds of [`crate::children`]; the two roles (policies
//! derived from what the containers reference, supplied ARNs) and the
//! security group (VPC found from a subnet, IPv6 and several sources per port)
//! are this resource's own.
//!
//! Reading order: typed configuration → schema → validation (no AWS calls) →
//! derived names → the resource's own children (roles, security group) →
//! the graph → plan / apply / read / import.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aws::config::parse_duration;
use crate::aws::wait::{self, Poll, WaitError};
use crate::aws::{Aws, AwsError, aws_err};
use crate::children::ecs::{LbTarget, ServiceConnectSpec, ServiceNode, TaskDefinitionNode, containers_from_td, describe_service};
use crate::children::iam::parse_policy;
use crate::children::lb::{ListenerRuleNode, TargetGroupNode, conditions_of, elb_tags_of, forward_target};
use crate::children::logs::LogGroupNode;
use crate::children::network::{ec2_tags, vpc_of_subnet};
use crate::children::{self, Ref, account_id, tag_diff};
use crate::engine::{self, Cx, Found, Graph, Made, Node, NodeError, Observed, Owner, Record, RunOpts, names};
use crate::framework::schema::{self, Schema};
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, Block, Ctx, Diagnostic, Diags, NestedBlock, Nesting, Path, PlanRequest, PlanResponse, ReadResponse, Resource, Type, Value, typed,
};

pub const TYPE_NAME: &str = "cxflow_ecs_fargate_service";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DEFAULT_DESIRED_COUNT: i64 = 1;
const DEFAULT_LOG_RETENTION: i64 = 30;
const DEFAULT_LB_HEALTH_PATH: &str = "/";
const DEFAULT_LB_MATCHER: &str = "200-299";
const EXEC_POLICY_NAME: &str = "cxflow-execution";
const TASK_POLICY_NAME: &str = "cxflow-ecs-exec";

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
    pub timeouts: Option<Timeouts>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    pub log_retention_days: Option<i64>,
    pub retain_logs: Option<bool>,
    pub tags: Option<BTreeMap<String, String>>,
    // computed
    pub id: Option<String>,
    pub service_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub task_definition_revision: Option<i64>,
    pub security_group_id: Option<String>,
    pub log_group_name: Option<String>,
    pub target_group_arn: Option<String>,
    pub children: Option<BTreeMap<String, String>>,
    pub drift: Option<BTreeMap<String, String>>,
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timeouts {
    pub create: Option<String>,
    pub update: Option<String>,
    pub delete: Option<String>,
}

impl FargateService {
    fn desired_count(&self) -> i64 {
        self.desired_count.unwrap_or(DEFAULT_DESIRED_COUNT)
    }
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
    fn timeout(&self, op: &str) -> Duration {
        let t = self.timeouts.as_ref();
        let s = match op {
            "create" => t.and_then(|t| t.create.clone()),
            "update" => t.and_then(|t| t.update.clone()),
            _ => t.and_then(|t| t.delete.clone()),
        };
        s.as_deref().and_then(parse_duration).unwrap_or(DEFAULT_TIMEOUT)
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
    fn own_tags(&self) -> BTreeMap<String, String> {
        self.tags.clone().unwrap_or_default()
    }
}

fn cluster_name(cluster: &str) -> &str {
    match cluster.rsplit_once(":cluster/") {
        Some((_, n)) => n,
        None => cluster,
    }
}

// ------------------------------------------------------------------ schema

fn attr(name: &str, ty: Type, doc: &str) -> Attribute {
    Attribute::new(name, ty).describe(doc)
}

fn schema_def() -> Schema {
    let health_check = Block::new(vec![
        attr("command", Type::list(Type::String), "The check, as ECS runs it: `[\"CMD-SHELL\", \"curl -f http://localhost/health || exit 1\"]` or `[\"CMD\", \"/bin/check\"]`.")
            .required(),
        attr("interval", Type::Number, "Seconds between checks (5–300). Default `30`.").defaulted(),
        attr("timeout", Type::Number, "Seconds a check may take (2–60). Default `5`.").defaulted(),
        attr("retries", Type::Number, "Consecutive failures before the container is unhealthy (1–10). Default `3`.").defaulted(),
        attr("start_period", Type::Number, "Grace period in seconds after start during which failures do not count (0–300). Default `0`.").defaulted(),
    ])
    .describe("Container health check (ECS `healthCheck`).");

    let container = Block::new(vec![
        attr("name", Type::String, "Container name, unique within the service. Letters, digits, `-` and `_`.").required(),
        attr(
            "image",
            Type::String,
            "Image to run, e.g. `123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest`. For ECR images the execution role may pull from exactly these repositories.",
        )
        .required(),
        attr("port", Type::Number, "TCP port the container listens on (1–65535). Needed for a load balancer or Service Connect.").optional(),
        attr("essential", Type::Bool, "Whether the task stops when this container stops. Default `true`.").defaulted(),
        attr("command", Type::list(Type::String), "Overrides the image's command.").optional(),
        attr("environment", Type::map(Type::String), "Plain environment variables. Do not put secrets here: use `secrets`.").defaulted(),
        attr(
            "secrets",
            Type::map(Type::String),
            "Environment variables filled from SSM parameters or Secrets Manager secrets at task start: name → ARN \
             (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME` or `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`). \
             The created execution role may read exactly these ARNs; the values never reach Terraform.",
        )
        .defaulted(),
    ])
    .with_blocks(vec![NestedBlock::new("health_check", Nesting::Single, health_check)])
    .describe("A container of the task. The first is usually the application; more are sidecars.");

    let ingress = Block::new(vec![
        attr("port", Type::Number, "TCP port to open (1–65535).").required(),
        attr("cidr_blocks", Type::set(Type::String), "IPv4 or IPv6 CIDR blocks allowed to connect, e.g. `0.0.0.0/0`.").optional(),
        attr("source_security_group_ids", Type::set(Type::String), "Security groups allowed to connect (e.g. the load balancer's).").optional(),
    ])
    .describe("An inbound rule of the created security group.");

    let network = Block::new(vec![
        attr("subnet_ids", Type::set(Type::String), "Subnets the tasks run in (all in one VPC).").required(),
        attr("assign_public_ip", Type::Bool, "Give tasks public IPs (needed in public subnets without a NAT gateway to pull images). Default `false`.").defaulted(),
        attr("security_group_ids", Type::set(Type::String), "Use these security groups instead of creating one. When set, `ingress` must be empty.").optional(),
    ])
    .with_blocks(vec![NestedBlock::new("ingress", Nesting::Set, ingress)])
    .describe("Where tasks run (`awsvpc` networking).");

    let lb_health = Block::new(vec![
        attr("path", Type::String, "HTTP path the load balancer checks. Default `/`.").defaulted(),
        attr("matcher", Type::String, "HTTP codes that count as healthy: `200`, `200-299` or `200,204`. Default `200-299`.").defaulted(),
    ])
    .describe("Target group health check.");

    let load_balancer = Block::new(vec![
        attr("listener_arn", Type::String, "ARN of the HTTP(S) listener of an existing Application Load Balancer.").required(),
        attr("host_header", Type::String, "Route requests for this host name, e.g. `api.example.com`.").optional(),
        attr("path_pattern", Type::String, "Route requests whose path matches, e.g. `/api/*`.").optional(),
        attr("priority", Type::Number, "Listener rule priority (1–50000), unique on the listener.").required(),
        attr("container_name", Type::String, "Container that receives the traffic. Default: the first container with a `port`.").defaulted(),
    ])
    .with_blocks(vec![NestedBlock::new("health_check", Nesting::Single, lb_health)])
    .describe("Put the service behind an existing load balancer: creates a target group (type `ip`) and a listener rule. Needs `host_header` or `path_pattern`.");

    let service_connect =
        Block::new(vec![attr("namespace", Type::String, "Cloud Map namespace (name or ARN). The first container with a port is published under the service name.").required()])
            .describe("Join ECS Service Connect.");

    let circuit_breaker = Block::new(vec![
        attr("enable", Type::Bool, "Stop a deployment whose tasks keep failing. Default `true`.").defaulted(),
        attr("rollback", Type::Bool, "Roll back to the last working deployment when the breaker trips. Default `true`.").defaulted(),
    ])
    .describe("ECS deployment circuit breaker. Without this block both are on.");

    let timeouts = Block::new(vec![
        attr("create", Type::String, "How long a create may take, as a duration like `20m` or `1h`. Default `20m`.").optional(),
        attr("update", Type::String, "How long an update may take. Default `20m`.").optional(),
        attr("delete", Type::String, "How long a delete may take. Default `20m`.").optional(),
    ])
    .describe("Operation time limits. The steady-state wait counts towards them.");

    Schema::new(
        0,
        Block::new(vec![
            attr("name", Type::String, "Service name (1–255 letters, digits, `-`, `_`); also the task definition family. Changing it replaces the service.").required().force_new(),
            attr("cluster", Type::String, "ECS cluster name or ARN. Changing it replaces the service.").required().force_new(),
            attr("cpu", Type::Number, "Task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384. Each allows certain `memory` sizes (Fargate rules).").required(),
            attr("memory", Type::Number, "Task memory in MiB, valid for `cpu` (e.g. 256 → 512–2048; 1024 → 2048–8192).").required(),
            attr("desired_count", Type::Number, "Number of tasks to keep running. Default `1`.").defaulted(),
            attr(
                "enable_execute_command",
                Type::Bool,
                "Allow `aws ecs execute-command` into tasks; adds the `ssmmessages` channel permissions to the created task role. Default `false`.",
            )
            .defaulted(),
            attr("wait_for_steady_state", Type::Bool, "Wait until the deployment completes (running tasks = desired) before finishing. Default `true`.").defaulted(),
            attr("execution_role_arn", Type::String, "Task execution role. When unset, a least-privilege role is created (its ARN appears here).").defaulted(),
            attr("task_role_arn", Type::String, "Role the application runs as. When unset, a role is created (its ARN appears here).").defaulted(),
            attr("log_retention_days", Type::Number, "Days the CloudWatch log group keeps logs (1, 3, 5, 7, 14, 30, 60, 90, ...). Default `30`.").defaulted(),
            attr("retain_logs", Type::Bool, "Keep the log group when the service is destroyed. Default `false`.").defaulted(),
            attr("tags", Type::map(Type::String), "Tags for every created object, merged over the provider's `default_tags`.").defaulted(),
            attr("id", Type::String, "`<cluster name>/<service name>`; the import ID.").computed().stable(),
            attr("service_arn", Type::String, "ARN of the ECS service.").computed(),
            attr("task_definition_arn", Type::String, "ARN of the current task definition revision.").computed(),
            attr("task_definition_revision", Type::Number, "Revision number of the current task definition.").computed(),
            attr("security_group_id", Type::String, "ID of the created security group (null when `network.security_group_ids` is set).").computed(),
            attr("log_group_name", Type::String, "Name of the CloudWatch log group, `/cxflow/<cluster>/<service>`.").computed(),
            attr("target_group_arn", Type::String, "ARN of the created target group (null without `load_balancer`).").computed(),
            attr(
                "children",
                Type::map(Type::String),
                "Every AWS object this resource owns: child key → identity (ARN, ID or name). Destroy and later applies work from this record.",
            )
            .computed(),
            attr(
                "drift",
                Type::map(Type::String),
                "Children found deleted or changed outside Terraform at the last refresh: child key → what differs. Apply repairs exactly these.",
            )
            .computed(),
        ])
        .with_blocks(vec![
            NestedBlock::new("container", Nesting::List, container).min(1),
            NestedBlock::new("network", Nesting::Single, network).min(1).max(1),
            NestedBlock::new("load_balancer", Nesting::Single, load_balancer),
            NestedBlock::new("service_connect", Nesting::Single, service_connect),
            NestedBlock::new("deployment_circuit_breaker", Nesting::Single, circuit_breaker),
            NestedBlock::new("timeouts", Nesting::Single, timeouts),
        ])
        .describe(
            "An ECS service on Fargate with everything it needs: a CloudWatch log group, a least-privilege execution role, a task role, \
             a security group, optionally a target group and listener rule on an existing load balancer, the task definition and the service. \
             Every object carries the tag `cxflow:owner`. Apply waits for the deployment to reach a steady state.",
        ),
    )
}

// ------------------------------------------------------------------ validation (no AWS calls)

/// Fargate's CPU → allowed memory sizes: (min, max, step) in MiB.
const FARGATE_SIZES: &[(i64, i64, i64, i64)] = &[
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

const RETENTION_DAYS: &[i64] = &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

fn memory_allowed(cpu: i64, memory: i64) -> Result<(), String> {
    match FARGATE_SIZES.iter().find(|s| s.0 == cpu) {
        None => Err(format!("cpu must be one of 256, 512, 1024, 2048, 4096, 8192 or 16384 (Fargate), not {cpu}.")),
        Some(&(_, min, max, step)) => {
            // 256 CPU allows 512, 1024 and 2048 exactly.
            let ok = if cpu == 256 { [512, 1024, 2048].contains(&memory) } else { memory >= min && memory <= max && (memory - min) % step == 0 };
            if ok { Ok(()) } else { Err(format!("With cpu = {cpu}, Fargate allows memory from {min} to {max} MiB in steps of {step}; {memory} is not allowed.")) }
        }
    }
}

fn ecs_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn secret_arn_ok(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^arn:aws(-cn|-us-gov)?:(ssm:[a-z0-9-]+:\d{12}:parameter/\S+|secretsmanager:[a-z0-9-]+:\d{12}:secret:\S+)$").unwrap()).is_match(s)
}

fn env_name_ok(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && it.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn role_arn_ok(s: &str) -> bool {
    s.starts_with("arn:") && s.contains(":iam::") && s.contains(":role/")
}

/// An integer attribute, or an error when it is a non-integral number.
fn int_at(v: &Value, p: &Path, d: &mut Diags) -> Option<i64> {
    match v {
        Value::Number(_) => match v.as_i64() {
            Some(i) => Some(i),
            None => {
                d.attr_error(p.clone(), "Not a whole number", format!("{p} must be a whole number."));
                None
            }
        },
        _ => None,
    }
}

fn check_range(v: &Value, p: Path, lo: i64, hi: i64, d: &mut Diags) {
    if let Some(i) = int_at(v, &p, d) {
        if i < lo || i > hi {
            d.attr_error(p.clone(), "Value out of range", format!("{p} must be between {lo} and {hi}, not {i}."));
        }
    }
}

fn strings(v: &Value) -> Vec<(usize, Option<&str>)> {
    v.elements().map(|e| e.iter().enumerate().map(|(i, x)| (i, x.as_str())).collect()).unwrap_or_default()
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let name = c.get("name").as_str();
    if let Some(n) = name {
        if !ecs_name_ok(n) {
            d.attr_error(
                Path::attr("name"),
                "Invalid service name",
                format!("name must be 1 to 255 characters of letters, digits, hyphens and underscores; it has {} characters.", n.chars().count()),
            );
        }
    }
    if let Some(cl) = c.get("cluster").as_str() {
        let n = cluster_name(cl);
        if !ecs_name_ok(n) || (cl.starts_with("arn:") && !cl.contains(":ecs:")) {
            d.attr_error(Path::attr("cluster"), "Invalid cluster", "cluster must be an ECS cluster name (letters, digits, `-`, `_`) or a cluster ARN.");
        }
    }
    let cpu = int_at(c.get("cpu"), &Path::attr("cpu"), &mut d);
    let mem = int_at(c.get("memory"), &Path::attr("memory"), &mut d);
    if let Some(cpu) = cpu {
        if !FARGATE_SIZES.iter().any(|s| s.0 == cpu) {
            d.attr_error(Path::attr("cpu"), "Invalid Fargate CPU", memory_allowed(cpu, 0).unwrap_err());
        } else if let Some(mem) = mem {
            if let Err(e) = memory_allowed(cpu, mem) {
                d.attr_error(Path::attr("memory"), "Invalid Fargate CPU/memory combination", e);
            }
        }
    }
    check_range(c.get("desired_count"), Path::attr("desired_count"), 0, 100_000, &mut d);
    if let Some(r) = int_at(c.get("log_retention_days"), &Path::attr("log_retention_days"), &mut d) {
        if !RETENTION_DAYS.contains(&r) {
            d.attr_error(Path::attr("log_retention_days"), "Invalid log retention", format!("CloudWatch Logs keeps logs for one of {RETENTION_DAYS:?} days, not {r}."));
        }
    }
    for a in ["execution_role_arn", "task_role_arn"] {
        if let Some(s) = c.get(a).as_str() {
            if !role_arn_ok(s) {
                d.attr_error(Path::attr(a), "Invalid role ARN", format!("{a} must be an IAM role ARN like arn:aws:iam::123456789012:role/NAME."));
            }
        }
    }
    if let Some(tags) = c.get("tags").entries() {
        for k in tags.keys() {
            if k == engine::OWNER_TAG || k.starts_with("aws:") {
                d.attr_error(
                    Path::attr("tags").key(k),
                    "Reserved tag key",
                    format!("The tag key {k:?} is reserved (the provider sets {} itself; `aws:` belongs to AWS).", engine::OWNER_TAG),
                );
            }
        }
    }

    // containers
    let containers = c.get("container");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ported: Vec<String> = Vec::new();
    if let Some(items) = containers.elements() {
        if items.is_empty() {
            d.attr_error(Path::attr("container"), "No container", "A service needs at least one container block.");
        }
        for (i, ct) in items.iter().enumerate() {
            let p = Path::attr("container").index(i);
            if let Some(n) = ct.get("name").as_str() {
                if !ecs_name_ok(n) {
                    d.attr_error(p.then_attr("name"), "Invalid container name", "A container name is 1 to 255 letters, digits, hyphens and underscores.");
                }
                if let Some(first) = seen.insert(n.to_string(), i) {
                    d.attr_error(
                        p.then_attr("name"),
                        "Duplicate container name",
                        format!("container[{i}] has the same name as container[{first}]; container names must be unique."),
                    );
                }
                if !ct.get("port").is_null() {
                    ported.push(n.to_string());
                }
            }
            if ct.get("image").as_str().is_some_and(|s| s.trim().is_empty()) {
                d.attr_error(p.then_attr("image"), "Empty image", "image must name a container image.");
            }
            check_range(ct.get("port"), p.then_attr("port"), 1, 65535, &mut d);
            let env = ct.get("environment").entries();
            for (k, _) in env.into_iter().flatten() {
                if !env_name_ok(k) {
                    d.attr_error(
                        p.then_attr("environment").key(k),
                        "Invalid variable name",
                        "Environment variable names are letters, digits and underscores, not starting with a digit.",
                    );
                }
            }
            for (k, v) in ct.get("secrets").entries().into_iter().flatten() {
                let kp = p.then_attr("secrets").key(k);
                if !env_name_ok(k) {
                    d.attr_error(kp.clone(), "Invalid variable name", "Environment variable names are letters, digits and underscores, not starting with a digit.");
                }
                if let Some(arn) = v.as_str() {
                    if !secret_arn_ok(arn) {
                        d.attr_error(
                            kp.clone(),
                            "Invalid secret ARN",
                            "A secret must be the full ARN of an SSM parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME).",
                        );
                    }
                }
                if env.is_some_and(|e| e.contains_key(k)) {
                    d.attr_error(kp, "Variable set twice", format!("{k} is in both environment and secrets of this container."));
                }
            }
            let hc = ct.get("health_check");
            if !hc.is_null() {
                let hp = p.then_attr("health_check");
                let cmd = strings(hc.get("command"));
                if hc.get("command").elements().is_some() {
                    match cmd.first() {
                        None => d.attr_error(hp.then_attr("command"), "Empty health check command", "command needs at least the kind (CMD or CMD-SHELL) and the check."),
                        Some((_, Some(k))) if !["CMD", "CMD-SHELL", "NONE"].contains(k) => {
                            d.attr_error(hp.then_attr("command").index(0), "Invalid health check command", "The first element must be CMD, CMD-SHELL or NONE.")
                        }
                        _ => {}
                    }
                }
                check_range(hc.get("interval"), hp.then_attr("interval"), 5, 300, &mut d);
                check_range(hc.get("timeout"), hp.then_attr("timeout"), 2, 60, &mut d);
                check_range(hc.get("retries"), hp.then_attr("retries"), 1, 10, &mut d);
                check_range(hc.get("start_period"), hp.then_attr("start_period"), 0, 300, &mut d);
            }
        }
    }

    // network
    let net = c.get("network");
    if !net.is_null() {
        let np = Path::attr("network");
        if let Some(subnets) = net.get("subnet_ids").elements() {
            if subnets.is_empty() {
                d.attr_error(np.then_attr("subnet_ids"), "No subnets", "subnet_ids needs at least one subnet.");
            }
            for (i, s) in strings(net.get("subnet_ids")) {
                if s.is_some_and(|s| !s.starts_with("subnet-")) {
                    d.attr_error(np.then_attr("subnet_ids").index(i), "Invalid subnet ID", "Subnet IDs look like subnet-0123456789abcdef0.");
                }
            }
        }
        for (i, s) in strings(net.get("security_group_ids")) {
            if s.is_some_and(|s| !s.starts_with("sg-")) {
                d.attr_error(np.then_attr("security_group_ids").index(i), "Invalid security group ID", "Security group IDs look like sg-0123456789abcdef0.");
            }
        }
        if net.get("security_group_ids").elements().is_some_and(|e| e.is_empty()) {
            d.attr_error(np.then_attr("security_group_ids"), "No security groups", "Leave security_group_ids unset to have one created, or list at least one.");
        }
        let ingress = net.get("ingress").elements().unwrap_or_default();
        if !ingress.is_empty() && !net.get("security_group_ids").is_null() {
            d.attr_error(
                np.then_attr("ingress"),
                "Ingress with your own security groups",
                "ingress rules apply to the security group this resource creates; with security_group_ids set, manage rules on those groups instead.",
            );
        }
        for (i, r) in ingress.iter().enumerate() {
            let rp = np.then_attr("ingress").index(i);
            check_range(r.get("port"), rp.then_attr("port"), 1, 65535, &mut d);
            for (j, cidr) in strings(r.get("cidr_blocks")) {
                if let Some(cidr) = cidr {
                    if cidr.parse::<ipnet::IpNet>().is_err() {
                        d.attr_error(rp.then_attr("cidr_blocks").index(j), "Invalid CIDR block", "A CIDR block looks like 10.0.0.0/16 or 2001:db8::/32.");
                    }
                }
            }
            for (j, s) in strings(r.get("source_security_group_ids")) {
                if s.is_some_and(|s| !s.starts_with("sg-")) {
                    d.attr_error(rp.then_attr("source_security_group_ids").index(j), "Invalid security group ID", "Security group IDs look like sg-0123456789abcdef0.");
                }
            }
            let none = |a: &str| r.get(a).elements().is_some_and(|e| e.is_empty()) || r.get(a).is_null();
            if none("cidr_blocks") && none("source_security_group_ids") {
                d.attr_error(rp, "Ingress rule without a source", "An ingress rule needs cidr_blocks or source_security_group_ids.");
            }
        }
    }

    // load balancer
    let lb = c.get("load_balancer");
    if !lb.is_null() {
        let lp = Path::attr("load_balancer");
        if let Some(l) = lb.get("listener_arn").as_str() {
            if !(l.starts_with("arn:") && l.contains(":elasticloadbalancing:") && l.contains(":listener/")) {
                d.attr_error(
                    lp.then_attr("listener_arn"),
                    "Invalid listener ARN",
                    "listener_arn must be an ELBv2 listener ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/...).",
                );
            }
        }
        if lb.get("host_header").is_null() && lb.get("path_pattern").is_null() {
            d.attr_error(
                lp.clone(),
                "Listener rule needs a condition",
                "Set host_header or path_pattern (or both) so the listener rule knows which requests to send to this service.",
            );
        }
        check_range(lb.get("priority"), lp.then_attr("priority"), 1, 50000, &mut d);
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
        let hc = lb.get("health_check");
        if let Some(path) = hc.get("path").as_str() {
            if !path.starts_with('/') || path.len() > 1024 {
                d.attr_error(lp.then_attr("health_check").then_attr("path"), "Invalid health check path", "The path must start with / (at most 1024 characters).");
            }
        }
        if let Some(m) = hc.get("matcher").as_str() {
            static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
            let re = RE.get_or_init(|| regex::Regex::new(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$").unwrap());
            if !re.is_match(m) {
                d.attr_error(lp.then_attr("health_check").then_attr("matcher"), "Invalid matcher", "matcher looks like 200, 200-299 or 200,204.");
            }
        }
        if let (Some(n), Some(cl)) = (name, c.get("cluster").as_str()) {
            let tg = Names::new(cl, n).target_group(lb_port_hint(c));
            if !target_group_name_ok(&tg) {
                d.attr_error(
                    Path::attr("name"),
                    "Cannot derive a target group name",
                    format!("The derived target group name {tg:?} is not valid (1–32 letters, digits and hyphens)."),
                );
            }
        }
    }
    if !c.get("service_connect").is_null() && c.get("service_connect").get("namespace").as_str().is_some_and(|s| s.trim().is_empty()) {
        d.attr_error(Path::attr("service_connect").then_attr("namespace"), "Empty namespace", "namespace must name a Cloud Map namespace.");
    }
    let to = c.get("timeouts");
    for op in ["create", "update", "delete"] {
        if let Some(s) = to.get(op).as_str() {
            match parse_duration(s) {
                Some(t) if t.as_secs() > 0 => {}
                _ => d.attr_error(Path::attr("timeouts").then_attr(op), "Invalid duration", "Write a duration like 30s, 20m or 1h30m."),
            }
        }
    }
    d
}

/// The port the target group would use, from a configuration value (0 when unknown).
fn lb_port_hint(c: &Value) -> i64 {
    let want = c.get("load_balancer").get("container_name").as_str();
    c.get("container")
        .elements()
        .unwrap_or_default()
        .iter()
        .find(|ct| match want {
            Some(w) => ct.get("name").as_str() == Some(w),
            None => !ct.get("port").is_null(),
        })
        .and_then(|ct| ct.get("port").as_i64())
        .unwrap_or(0)
}

fn target_group_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
        && !n.starts_with("internal-")
}

// ------------------------------------------------------------------ derived names

/// Names of the children, derived deterministically from cluster and service
/// name so a retry after a crash finds (and adopts) what the first try made.
#[derive(Clone, Debug)]
pub struct Names {
    pub owner: Owner,
    pub cluster: String,
    pub service: String,
}

impl Names {
    pub fn new(cluster: &str, service: &str) -> Names {
        let cluster = cluster_name(cluster).to_string();
        Names { owner: Owner::new(TYPE_NAME, &format!("{cluster}/{service}")), cluster, service: service.to_string() }
    }
    pub fn id(&self) -> String {
        format!("{}/{}", self.cluster, self.service)
    }
    pub fn log_group(&self) -> String {
        format!("/cxflow/{}/{}", self.cluster, self.service)
    }
    fn role(&self, suffix: &str) -> String {
        names::bounded(&self.service, self.owner.tag_value(), suffix, 64, |c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    }
    pub fn execution_role(&self) -> String {
        self.role("-exec")
    }
    pub fn task_role(&self) -> String {
        self.role("-task")
    }
    pub fn security_group(&self) -> String {
        names::bounded(&format!("{}-{}", self.cluster, self.service), self.owner.tag_value(), "", 255, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
    }
    /// Target group names hold 32 characters; the port is part of the seed
    /// because a target group's port cannot change (a new port means a new group).
    pub fn target_group(&self, port: i64) -> String {
        names::bounded(&self.service, &format!("{}:{port}", self.owner.tag_value()), "", 32, |c| c.is_ascii_alphanumeric())
    }
    pub fn family(&self) -> String {
        self.service.clone()
    }
}

// ------------------------------------------------------------------ helpers for the resource's own children

/// What the roles and the security group share.
struct Common {
    names: Names,
    region: String,
    /// Provider default tags, the resource's tags and the ownership tag.
    tags: BTreeMap<String, String>,
    /// Known when the provider validated its credentials.
    account: Option<String>,
}

impl Common {
    fn partition(&self) -> &'static str {
        names::partition(&self.region)
    }
    fn owner(&self) -> &Owner {
        &self.names.owner
    }
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut x = v.to_vec();
    x.sort();
    x.dedup();
    x
}

fn other(msg: impl Into<String>) -> NodeError {
    NodeError::other(msg)
}

// ------------------------------------------------------------------ children: IAM roles

#[derive(Clone, Copy, PartialEq, Eq)]
enum RoleKind {
    Execution,
    Task,
}

/// What the execution role must be allowed to read.
#[derive(Clone, Debug, Default, Serialize)]
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

struct RoleNode {
    c: Arc<Common>,
    kind: RoleKind,
    /// A role the configuration supplies instead (then this child is not wanted).
    supplied: Option<String>,
    needs: ExecNeeds,
    exec_command: bool,
}

impl RoleNode {
    fn name(&self) -> String {
        match self.kind {
            RoleKind::Execution => self.c.names.execution_role(),
            RoleKind::Task => self.c.names.task_role(),
        }
    }
    fn policy_name(&self) -> &'static str {
        match self.kind {
            RoleKind::Execution => EXEC_POLICY_NAME,
            RoleKind::Task => TASK_POLICY_NAME,
        }
    }
    fn trust(&self, account: &str) -> serde_json::Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}}
            }]
        })
    }
    /// The inline policy, or None when the role needs none.
    fn policy(&self, account: &str) -> Option<serde_json::Value> {
        let p = self.c.partition();
        let region = &self.c.region;
        match self.kind {
            RoleKind::Task => self.exec_command.then(|| {
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "EcsExec",
                        "Effect": "Allow",
                        "Action": ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
                        "Resource": "*"
                    }]
                })
            }),
            RoleKind::Execution => {
                let log_group = self.c.names.log_group();
                let mut st = vec![json!({
                    "Sid": "Logs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": format!("arn:{p}:logs:{region}:{account}:log-group:{log_group}:*")
                })];
                let n = &self.needs;
                if !n.repositories.is_empty() {
                    st.push(json!({"Sid": "EcrAuth", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}));
                    let repos: Vec<String> = n.repositories.iter().map(|(r, a, name)| format!("arn:{p}:ecr:{r}:{a}:repository/{name}")).collect();
                    st.push(json!({
                        "Sid": "EcrPull",
                        "Effect": "Allow",
                        "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                        "Resource": repos
                    }));
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
                        "Sid": "DecryptViaService",
                        "Effect": "Allow",
                        "Action": "kms:Decrypt",
                        "Resource": format!("arn:{p}:kms:{region}:{account}:key/*"),
                        "Condition": {"StringEquals": {"kms:ViaService": via}}
                    }));
                }
                Some(json!({"Version": "2012-10-17", "Statement": st}))
            }
        }
    }
    async fn get(&self, aws: &Aws) -> Result<Option<aws_sdk_iam::types::Role>, NodeError> {
        match aws.iam().get_role().role_name(self.name()).send().await.map_err(|e| aws_err("iam:GetRole", e)) {
            Ok(o) => Ok(o.role),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn inline_policy(&self, aws: &Aws) -> Result<Option<serde_json::Value>, NodeError> {
        match aws.iam().get_role_policy().role_name(self.name()).policy_name(self.policy_name()).send().await.map_err(|e| aws_err("iam:GetRolePolicy", e)) {
            Ok(o) => Ok(parse_policy(o.policy_document())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Node<Aws> for RoleNode {
    fn key(&self) -> &str {
        match self.kind {
            RoleKind::Execution => "execution_role",
            RoleKind::Task => "task_role",
        }
    }
    fn wanted(&self) -> bool {
        self.supplied.is_none()
    }
    fn describe(&self) -> String {
        match self.kind {
            RoleKind::Execution => format!("IAM execution role {}", self.name()),
            RoleKind::Task => format!("IAM task role {}", self.name()),
        }
    }
    fn spec(&self) -> serde_json::Value {
        match self.kind {
            RoleKind::Execution => json!({"needs": self.needs, "log_group": self.c.names.log_group(), "tags": self.c.tags}),
            RoleKind::Task => json!({"exec": self.exec_command, "tags": self.c.tags}),
        }
    }
    fn planned_identity(&self) -> Option<String> {
        self.c.account.as_ref().map(|a| format!("arn:{}:iam::{a}:role/{}", self.c.partition(), self.name()))
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(role) = self.get(aws).await? else { return Ok(Found::None) };
        Ok(self.c.owner().check(role.tags().iter().map(|t| (t.key(), t.value()))).into_found(role.arn(), &self.describe()))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let account = account_id(aws).await?;
        let tags: Vec<aws_sdk_iam::types::Tag> = self.c.tags.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect();
        let out = aws
            .iam()
            .create_role()
            .role_name(self.name())
            .assume_role_policy_document(self.trust(&account).to_string())
            .description(format!("Managed by terraform-provider-cxflow for {}", self.c.owner()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_err("iam:CreateRole", e))?;
        let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
        self.update(aws, &arn, cx).await.map_err(|e| e.with_id(arn.clone()))
    }
    async fn read(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        if self.get(aws).await?.is_none() {
            return Ok(Observed::Gone);
        }
        let account = account_id(aws).await?;
        let want = self.policy(&account);
        let have = self.inline_policy(aws).await?;
        Ok(match (want, have) {
            (Some(w), Some(h)) if w == h => Observed::InSync,
            (None, None) => Observed::InSync,
            (Some(_), None) => Observed::Drifted(format!("inline policy {} is missing", self.policy_name())),
            (None, Some(_)) => Observed::Drifted(format!("inline policy {} should not exist", self.policy_name())),
            (Some(_), Some(_)) => Observed::Drifted(format!("inline policy {} differs from the one this resource manages", self.policy_name())),
        })
    }
    async fn update(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let account = account_id(aws).await?;
        let name = self.name();
        aws.iam()
            .update_assume_role_policy()
            .role_name(&name)
            .policy_document(self.trust(&account).to_string())
            .send()
            .await
            .map_err(|e| aws_err("iam:UpdateAssumeRolePolicy", e))?;
        match self.policy(&account) {
            Some(doc) => {
                aws.iam()
                    .put_role_policy()
                    .role_name(&name)
                    .policy_name(self.policy_name())
                    .policy_document(doc.to_string())
                    .send()
                    .await
                    .map_err(|e| aws_err("iam:PutRolePolicy", e))?;
            }
            None => match aws.iam().delete_role_policy().role_name(&name).policy_name(self.policy_name()).send().await.map_err(|e| aws_err("iam:DeleteRolePolicy", e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            },
        }
        let role = self.get(aws).await?.ok_or_else(|| other(format!("role {name} disappeared while being configured")))?;
        let current: BTreeMap<String, String> = role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
        let (add, remove) = tag_diff(&current, &self.c.tags);
        if !add.is_empty() {
            let tags: Vec<_> = add.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect();
            aws.iam().tag_role().role_name(&name).set_tags(Some(tags)).send().await.map_err(|e| aws_err("iam:TagRole", e))?;
        }
        if !remove.is_empty() {
            aws.iam().untag_role().role_name(&name).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("iam:UntagRole", e))?;
        }
        Ok(Made::id(role.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        let name = id.rsplit('/').next().unwrap_or(id).to_string();
        let iam = aws.iam();
        let gone = |e: &AwsError| e.is_not_found();
        match iam.list_role_policies().role_name(&name).send().await.map_err(|e| aws_err("iam:ListRolePolicies", e)) {
            Ok(out) => {
                for p in out.policy_names() {
                    match iam.delete_role_policy().role_name(&name).policy_name(p).send().await.map_err(|e| aws_err("iam:DeleteRolePolicy", e)) {
                        Ok(_) => {}
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let attached = iam.list_attached_role_policies().role_name(&name).send().await.map_err(|e| aws_err("iam:ListAttachedRolePolicies", e))?;
        for p in attached.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                iam.detach_role_policy().role_name(&name).policy_arn(arn).send().await.map_err(|e| aws_err("iam:DetachRolePolicy", e))?;
            }
        }
        match iam.delete_role().role_name(&name).send().await.map_err(|e| aws_err("iam:DeleteRole", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// ------------------------------------------------------------------ child: security group

/// One inbound rule: TCP port and source (CIDR or security group).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct Rule {
    port: i32,
    source: String,
}

fn rules_of(net: &Network) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for r in net.ingress.iter().flatten() {
        for s in r.cidr_blocks.iter().flatten().chain(r.source_security_group_ids.iter().flatten()) {
            out.insert(Rule { port: r.port as i32, source: s.clone() });
        }
    }
    out
}

fn rules_from_aws(perms: &[aws_sdk_ec2::types::IpPermission]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in perms {
        if p.ip_protocol() != Some("tcp") || p.from_port() != p.to_port() {
            continue;
        }
        let port = p.from_port().unwrap_or(0);
        for r in p.ip_ranges() {
            out.insert(Rule { port, source: r.cidr_ip().unwrap_or_default().to_string() });
        }
        for r in p.ipv6_ranges() {
            out.insert(Rule { port, source: r.cidr_ipv6().unwrap_or_default().to_string() });
        }
        for g in p.user_id_group_pairs() {
            out.insert(Rule { port, source: g.group_id().unwrap_or_default().to_string() });
        }
    }
    out
}

fn permission(r: &Rule) -> aws_sdk_ec2::types::IpPermission {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
    let b = IpPermission::builder().ip_protocol("tcp").from_port(r.port).to_port(r.port);
    let b = if r.source.starts_with("sg-") {
        b.user_id_group_pairs(UserIdGroupPair::builder().group_id(&r.source).build())
    } else if r.source.contains(':') {
        b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&r.source).build())
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(&r.source).build())
    };
    b.build()
}

struct SecurityGroupNode {
    c: Arc<Common>,
    supplied: bool,
    subnet: String,
    rules: BTreeSet<Rule>,
}

impl SecurityGroupNode {
    async fn describe_group(&self, aws: &Aws, id: &str) -> Result<Option<aws_sdk_ec2::types::SecurityGroup>, NodeError> {
        match aws.ec2().describe_security_groups().group_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeSecurityGroups", e)) {
            Ok(o) => Ok(o.security_groups().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Node<Aws> for SecurityGroupNode {
    fn key(&self) -> &str {
        "security_group"
    }
    fn wanted(&self) -> bool {
        !self.supplied
    }
    fn describe(&self) -> String {
        format!("security group {}", self.c.names.security_group())
    }
    fn spec(&self) -> serde_json::Value {
        json!({"rules": self.rules, "tags": self.c.tags})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        use aws_sdk_ec2::types::Filter;
        let vpc = vpc_of_subnet(aws, &self.subnet).await?;
        let out = aws
            .ec2()
            .describe_security_groups()
            .filters(Filter::builder().name("group-name").values(self.c.names.security_group()).build())
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .send()
            .await
            .map_err(|e| aws_err("ec2:DescribeSecurityGroups", e))?;
        let Some(g) = out.security_groups().first() else { return Ok(Found::None) };
        let id = g.group_id().unwrap_or_default();
        Ok(self.c.owner().check(g.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))).into_found(id, &self.describe()))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        use aws_sdk_ec2::types::{ResourceType, TagSpecification};
        let vpc = vpc_of_subnet(aws, &self.subnet).await?;
        let out = aws
            .ec2()
            .create_security_group()
            .group_name(self.c.names.security_group())
            .description(format!("ECS service {} (managed by cxflow)", self.c.names.id()))
            .vpc_id(vpc)
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::SecurityGroup).set_tags(Some(ec2_tags(&self.c.tags))).build())
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateSecurityGroup", e))?;
        let id = out.group_id().unwrap_or_default().to_string();
        self.update(aws, &id, cx).await.map_err(|e| e.with_id(id.clone()))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(g) = self.describe_group(aws, id).await? else { return Ok(Observed::Gone) };
        let have = rules_from_aws(g.ip_permissions());
        if have == self.rules {
            return Ok(Observed::InSync);
        }
        let fmt = |s: &BTreeSet<Rule>| s.iter().map(|r| format!("{} from {}", r.port, r.source)).collect::<Vec<_>>().join(", ");
        let extra: BTreeSet<Rule> = have.difference(&self.rules).cloned().collect();
        let missing: BTreeSet<Rule> = self.rules.difference(&have).cloned().collect();
        Ok(Observed::Drifted(format!("ingress rules differ (unexpected: [{}]; missing: [{}])", fmt(&extra), fmt(&missing))))
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let g = self.describe_group(aws, id).await?.ok_or_else(|| other(format!("security group {id} no longer exists")))?;
        let have = rules_from_aws(g.ip_permissions());
        let extra: Vec<_> = have.difference(&self.rules).map(permission).collect();
        let missing: Vec<_> = self.rules.difference(&have).map(permission).collect();
        if !extra.is_empty() {
            aws.ec2().revoke_security_group_ingress().group_id(id).set_ip_permissions(Some(extra)).send().await.map_err(|e| aws_err("ec2:RevokeSecurityGroupIngress", e))?;
        }
        if !missing.is_empty() {
            aws.ec2()
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(missing))
                .send()
                .await
                .map_err(|e| aws_err("ec2:AuthorizeSecurityGroupIngress", e))?;
        }
        let current: BTreeMap<String, String> = g.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
        let (add, remove) = tag_diff(&current, &self.c.tags);
        if !add.is_empty() {
            aws.ec2().create_tags().resources(id).set_tags(Some(ec2_tags(&add))).send().await.map_err(|e| aws_err("ec2:CreateTags", e))?;
        }
        if !remove.is_empty() {
            let keys: Vec<_> = remove.iter().map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build()).collect();
            aws.ec2().delete_tags().resources(id).set_tags(Some(keys)).send().await.map_err(|e| aws_err("ec2:DeleteTags", e))?;
        }
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        // Task network interfaces take a while to go after the service is deleted.
        let res = wait::until(&format!("security group {id} to be deletable"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || async {
            match aws.ec2().delete_security_group().group_id(id).send().await.map_err(|e| aws_err("ec2:DeleteSecurityGroup", e)) {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) if e.is_code(&["DependencyViolation"]) => Ok(Poll::Pending("network interfaces still use it".to_string())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await;
        wait_result(res)
    }
}

fn wait_result<T>(r: Result<T, WaitError<NodeError>>) -> Result<T, NodeError> {
    match r {
        Ok(v) => Ok(v),
        Err(WaitError::Failed(e)) => Err(e),
        Err(WaitError::Cancelled) => Err(NodeError::cancelled()),
        Err(WaitError::Timeout { waited, last }) => Err(NodeError::timeout("the operation", waited, last)),
    }
}

// ------------------------------------------------------------------ the graph

fn role_is(arn: &str, name: &str) -> bool {
    arn.contains(":role/") && arn.rsplit('/').next() == Some(name)
}

/// Every child this resource can have, wanted or not, for configuration `cfg`.
fn build_graph(cfg: &FargateService, aws: &Aws) -> Result<Graph<Aws>, Diags> {
    graph_for(cfg, &aws.region, &aws.default_tags, aws.account_id.get().cloned())
}

fn graph_for(cfg: &FargateService, region: &str, default_tags: &BTreeMap<String, String>, account: Option<String>) -> Result<Graph<Aws>, Diags> {
    let names = Names::new(&cfg.cluster, &cfg.name);
    let c = Arc::new(Common { tags: names.owner.child_tags(default_tags, &cfg.own_tags()), region: region.to_string(), account, names: names.clone() });
    // The shared child kinds add the ownership and child-key tags themselves.
    let mut merged = default_tags.clone();
    merged.extend(cfg.own_tags());
    let sc = Arc::new(children::Common { owner: names.owner.clone(), tags: merged, region: region.to_string() });
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

    let nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(LogGroupNode {
            c: sc.clone(),
            key: "log_group".into(),
            name: names.log_group(),
            retention_days: cfg.log_retention_days.unwrap_or(DEFAULT_LOG_RETENTION),
            retain: cfg.retain_logs.unwrap_or(false),
        }),
        Box::new(RoleNode { c: c.clone(), kind: RoleKind::Execution, supplied: supplied_exec.clone(), needs: ExecNeeds::of(cfg), exec_command: false }),
        Box::new(RoleNode { c: c.clone(), kind: RoleKind::Task, supplied: supplied_task.clone(), needs: ExecNeeds::default(), exec_command: cfg.exec_enabled() }),
        Box::new(SecurityGroupNode { c, supplied: net.security_group_ids.is_some(), subnet: subnet.clone(), rules: rules_of(&net) }),
        Box::new(TargetGroupNode {
            c: sc.clone(),
            key: "target_group".into(),
            name: names.target_group(lb_port),
            port: lb_port,
            vpc: Ref::Lit(subnet),
            health_path: hc.path.unwrap_or_else(|| DEFAULT_LB_HEALTH_PATH.into()),
            matcher: hc.matcher.unwrap_or_else(|| DEFAULT_LB_MATCHER.into()),
            wanted: lb.is_some(),
        }),
        Box::new(ListenerRuleNode {
            c: sc.clone(),
            key: "listener_rule".into(),
            listener: Ref::Lit(lb.map(|l| l.listener_arn.clone()).unwrap_or_default()),
            target_group: Ref::dep("target_group"),
            priority: lb.map(|l| l.priority).unwrap_or(0),
            host_header: lb.and_then(|l| l.host_header.clone()),
            path_pattern: lb.and_then(|l| l.path_pattern.clone()),
            wanted: lb.is_some(),
        }),
        Box::new(TaskDefinitionNode {
            c: sc.clone(),
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
            c: sc,
            key: "service".into(),
            cluster: Ref::Lit(cfg.cluster.clone()),
            name: cfg.name.clone(),
            task_definition: Ref::dep("task_definition"),
            desired_count: cfg.desired_count(),
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
/// needs (for benchmarks: the least number of sequential rounds of AWS calls),
/// e.g. `["log_group", "task_definition", "service"]`. Needs no AWS access.
pub fn critical_path(cfg: &FargateService) -> Vec<String> {
    graph_for(cfg, "us-east-1", &BTreeMap::new(), None).map(|g| g.critical_path()).unwrap_or_default()
}

// ------------------------------------------------------------------ plan / apply / read / import

/// Attributes only the provider sets.
const COMPUTED: &[&str] = &["id", "service_arn", "task_definition_arn", "task_definition_revision", "security_group_id", "log_group_name", "target_group_arn", "children", "drift"];

/// Why a child is listed in `drift` after an apply that stopped early.
const UNFINISHED: &str = "the last apply stopped before this child was brought up to date";

pub struct EcsFargateService;

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(EcsFargateService)
}

fn known_or_null(v: &Value) -> Value {
    match v {
        Value::Unknown => Value::Null,
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), known_or_null(x))).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, x)| (k.clone(), known_or_null(x))).collect()),
        Value::List(x) => Value::List(x.iter().map(known_or_null).collect()),
        Value::Set(x) => Value::Set(x.iter().map(known_or_null).collect()),
        other => other.clone(),
    }
}

fn typed_config(v: &Value) -> Result<FargateService, Diags> {
    typed::from_value(&known_or_null(v))
}

/// Whether every configuration attribute (computed ones aside) is known.
fn config_known(v: &Value) -> bool {
    let mut c = v.clone();
    for a in COMPUTED.iter().chain(["execution_role_arn", "task_role_arn"].iter()) {
        c.set_attr(a, Value::Null);
    }
    c.is_wholly_known()
}

fn set_default(obj: &mut Value, name: &str, v: Value) {
    if let Value::Object(m) = obj {
        let e = m.entry(name.to_string()).or_insert(Value::Null);
        if e.is_null() {
            *e = v;
        }
    }
}

fn empty_map() -> Value {
    Value::Map(BTreeMap::new())
}

/// Fill optional+computed attributes the configuration left unset with their defaults.
fn fill_defaults(p: &mut Value) {
    set_default(p, "desired_count", Value::int(DEFAULT_DESIRED_COUNT));
    set_default(p, "enable_execute_command", Value::Bool(false));
    set_default(p, "wait_for_steady_state", Value::Bool(true));
    set_default(p, "log_retention_days", Value::int(DEFAULT_LOG_RETENTION));
    set_default(p, "retain_logs", Value::Bool(false));
    set_default(p, "tags", empty_map());
    // The load balancer's default container: the first with a port.
    let lb_container = p.get("container").elements().map(|cs| match cs.iter().find(|c| !c.get("port").is_null()) {
        Some(c) if c.get("port").is_unknown() => Value::Unknown,
        Some(c) => c.get("name").clone(),
        None => Value::Null,
    });
    if let Some(Value::List(cs)) = p.get_mut("container") {
        for c in cs {
            set_default(c, "essential", Value::Bool(true));
            set_default(c, "environment", empty_map());
            set_default(c, "secrets", empty_map());
            if let Some(h) = c.get_mut("health_check").filter(|h| matches!(h, Value::Object(_))) {
                set_default(h, "interval", Value::int(30));
                set_default(h, "timeout", Value::int(5));
                set_default(h, "retries", Value::int(3));
                set_default(h, "start_period", Value::int(0));
            }
        }
    }
    if let Some(n) = p.get_mut("network").filter(|n| matches!(n, Value::Object(_))) {
        set_default(n, "assign_public_ip", Value::Bool(false));
    }
    if let Some(lb) = p.get_mut("load_balancer").filter(|n| matches!(n, Value::Object(_))) {
        set_default(lb, "container_name", lb_container.unwrap_or(Value::Unknown));
        if let Some(h) = lb.get_mut("health_check").filter(|h| matches!(h, Value::Object(_))) {
            set_default(h, "path", Value::string(DEFAULT_LB_HEALTH_PATH));
            set_default(h, "matcher", Value::string(DEFAULT_LB_MATCHER));
        }
    }
    if let Some(cb) = p.get_mut("deployment_circuit_breaker").filter(|n| matches!(n, Value::Object(_))) {
        set_default(cb, "enable", Value::Bool(true));
        set_default(cb, "rollback", Value::Bool(true));
    }
}

fn revision_of(td_arn: &str) -> Option<i64> {
    td_arn.rsplit(':').next().and_then(|r| r.parse().ok())
}

fn opt_str(s: Option<&str>) -> Value {
    s.map(Value::string).unwrap_or(Value::Null)
}

/// A child's identity as the plan can promise it: null when not wanted, the
/// recorded one when it stays, the predictable one when it is created, else unknown.
fn planned_child(key: &str, s: &engine::PlanSummary, g: &Graph<Aws>, record: &Record) -> Value {
    let Some(node) = g.node(key) else { return Value::Unknown };
    if !node.wanted() {
        return Value::Null;
    }
    if s.create.contains(key) {
        return node.planned_identity().map(Value::string).unwrap_or(Value::Unknown);
    }
    if s.new_identity.contains(key) {
        return Value::Unknown;
    }
    record.get(key).map(Value::string).unwrap_or(Value::Unknown)
}

fn plan_change(aws: &Aws, req: PlanRequest) -> PlanResponse {
    let block = schema_def().block;
    let mut resp = PlanResponse { private: req.prior_private.clone(), ..Default::default() };
    if req.proposed.is_null() {
        resp.planned = Value::Null;
        return resp;
    }
    let mut planned = req.proposed.clone();
    fill_defaults(&mut planned);
    // Roles: what the configuration says; otherwise ours, computed below.
    for a in ["execution_role_arn", "task_role_arn"] {
        planned.set_attr(a, req.config.get(a).clone());
    }
    let creating = req.prior.is_null();
    if !creating {
        resp.requires_replace = schema::replace_paths(&block, &req.prior, &planned);
    }
    let fresh = creating || !resp.requires_replace.is_empty();
    let names = match (planned.get("cluster").as_str(), planned.get("name").as_str()) {
        (Some(c), Some(n)) => Some(Names::new(c, n)),
        _ => None,
    };
    planned.set_attr("id", names.as_ref().map(|n| Value::string(n.id())).unwrap_or(Value::Unknown));
    planned.set_attr("log_group_name", names.as_ref().map(|n| Value::string(n.log_group())).unwrap_or(Value::Unknown));
    planned.set_attr("drift", empty_map());

    let prior: Option<FargateService> = if fresh { None } else { typed::from_value(&req.prior).ok() };
    let record = Record::from_map(prior.as_ref().and_then(|p| p.children.clone()).unwrap_or_default());
    let drifted: BTreeSet<String> = prior.as_ref().and_then(|p| p.drift.clone()).unwrap_or_default().into_keys().collect();

    let summary = if config_known(&planned) {
        match typed_config(&planned).and_then(|d| build_graph(&d, aws)) {
            Ok(g) => {
                let pg = prior.as_ref().and_then(|p| build_graph(p, aws).ok());
                let s = engine::plan(&g, pg.as_ref(), &record, &drifted);
                tracing::debug!(target: "cxflow::resources::ecs_fargate_service", create = ?s.create, update = ?s.update, delete = ?s.delete, "planned children");
                Some((s, g))
            }
            Err(d) => {
                resp.diags.extend(d);
                None
            }
        }
    } else {
        None
    };
    let children = ["service_arn", "task_definition_arn", "security_group_id", "target_group_arn"];
    match &summary {
        Some((s, g)) => {
            planned.set_attr("service_arn", planned_child("service", s, g, &record));
            let td = planned_child("task_definition", s, g, &record);
            planned.set_attr("task_definition_revision", td.as_str().and_then(revision_of).map(Value::int).unwrap_or(Value::Unknown));
            planned.set_attr("task_definition_arn", td);
            planned.set_attr("security_group_id", planned_child("security_group", s, g, &record));
            planned.set_attr("target_group_arn", planned_child("target_group", s, g, &record));
            for (a, k) in [("execution_role_arn", "execution_role"), ("task_role_arn", "task_role")] {
                if planned.get(a).is_null() {
                    planned.set_attr(a, planned_child(k, s, g, &record));
                }
            }
            let changes = s.changes_record() || record.has_superseded();
            planned.set_attr("children", if changes { Value::Unknown } else { record.to_value() });
        }
        None => {
            for a in children.iter().chain(["task_definition_revision", "children"].iter()) {
                planned.set_attr(a, Value::Unknown);
            }
            for a in ["execution_role_arn", "task_role_arn"] {
                if planned.get(a).is_null() {
                    planned.set_attr(a, Value::Unknown);
                }
            }
        }
    }
    resp.planned = planned;
    resp
}

/// Set the computed attributes of `st` from the record of what exists.
fn fill_state(st: &mut Value, cfg: &FargateService, record: &Record, drift: BTreeMap<String, String>) {
    let names = Names::new(&cfg.cluster, &cfg.name);
    st.set_attr("id", Value::string(names.id()));
    st.set_attr("log_group_name", opt_str(record.get("log_group")));
    st.set_attr("service_arn", opt_str(record.get("service")));
    let td = record.get("task_definition");
    st.set_attr("task_definition_arn", opt_str(td));
    st.set_attr("task_definition_revision", td.and_then(revision_of).map(Value::int).unwrap_or(Value::Null));
    st.set_attr("security_group_id", opt_str(record.get("security_group")));
    st.set_attr("target_group_arn", opt_str(record.get("target_group")));
    for (a, k, own) in [("execution_role_arn", "execution_role", names.execution_role()), ("task_role_arn", "task_role", names.task_role())] {
        let supplied = st.get(a).as_str().is_some_and(|arn| !role_is(arn, &own));
        if !supplied {
            st.set_attr(a, opt_str(record.get(k)));
        }
    }
    st.set_attr("children", record.to_value());
    st.set_attr("drift", Value::Map(drift.into_iter().map(|(k, v)| (k, Value::string(v))).collect()));
}

fn opts_for(cfg: &FargateService, ctx: &Ctx, op: &str) -> RunOpts {
    let names = Names::new(&cfg.cluster, &cfg.name);
    RunOpts::new(names.owner.clone(), ctx.cancel.clone(), cfg.timeout(op)).import_hint(format!("terraform import {TYPE_NAME}.<name> {}", names.id()))
}

async fn apply_change(aws: &Aws, req: ApplyRequest) -> ApplyResponse {
    if req.planned.is_null() {
        return destroy_all(aws, req.prior, &req.ctx).await;
    }
    let desired = match typed_config(&req.planned) {
        Ok(d) => d,
        Err(d) => return ApplyResponse { new_state: req.prior, diags: d, ..Default::default() },
    };
    let creating = req.prior.is_null();
    let prior: Option<FargateService> = if creating {
        None
    } else {
        match typed::from_value(&req.prior) {
            Ok(p) => Some(p),
            Err(d) => return ApplyResponse { new_state: req.prior, diags: d, ..Default::default() },
        }
    };
    let graph = match build_graph(&desired, aws) {
        Ok(g) => g,
        Err(d) => return ApplyResponse { new_state: req.prior, diags: d, ..Default::default() },
    };
    let prior_graph = prior.as_ref().and_then(|p| build_graph(p, aws).ok());
    let record = Record::from_map(prior.as_ref().and_then(|p| p.children.clone()).unwrap_or_default());
    let drifted: BTreeSet<String> = prior.as_ref().and_then(|p| p.drift.clone()).unwrap_or_default().into_keys().collect();
    let opts = opts_for(&desired, &req.ctx, if creating { "create" } else { "update" });
    tracing::info!(target: "cxflow::resources::ecs_fargate_service", service = desired.name.as_str(), critical_path = ?graph.critical_path(), "applying");
    let out = engine::apply(aws, &graph, prior_graph.as_ref(), record, &drifted, &opts).await;
    if creating && out.record.is_empty() {
        // Nothing exists: nothing to record.
        return ApplyResponse { new_state: Value::Null, diags: out.diags, ..Default::default() };
    }
    let drift: BTreeMap<String, String> = out.unfinished.iter().filter(|k| out.record.get(k).is_some()).map(|k| (k.clone(), UNFINISHED.to_string())).collect();
    let mut st = known_or_null(&req.planned);
    fill_state(&mut st, &desired, &out.record, drift);
    if out.ok() { ApplyResponse::ok(st) } else { ApplyResponse::partial(st, out.diags) }
}

async fn destroy_all(aws: &Aws, prior: Value, ctx: &Ctx) -> ApplyResponse {
    let cur: FargateService = match typed::from_value(&prior) {
        Ok(c) => c,
        Err(d) => return ApplyResponse { new_state: prior, diags: d, ..Default::default() },
    };
    let graph = match build_graph(&cur, aws) {
        Ok(g) => g,
        Err(d) => return ApplyResponse { new_state: prior, diags: d, ..Default::default() },
    };
    let record = Record::from_map(cur.children.clone().unwrap_or_default());
    let out = engine::destroy(aws, &graph, record, &opts_for(&cur, ctx, "delete")).await;
    if out.ok() {
        return ApplyResponse::ok(Value::Null);
    }
    let mut st = prior;
    fill_state(&mut st, &cur, &out.record, cur.drift.clone().unwrap_or_default());
    ApplyResponse::partial(st, out.diags)
}

async fn read_state(aws: &Aws, state: Value, private: Vec<u8>, ctx: Ctx) -> ReadResponse {
    let fail = |state: Value, d: Diags| ReadResponse { new_state: state, private: private.clone(), diags: d };
    let cur: FargateService = match typed::from_value(&state) {
        Ok(c) => c,
        Err(d) => return fail(state, d),
    };
    let graph = match build_graph(&cur, aws) {
        Ok(g) => g,
        Err(d) => return fail(state, d),
    };
    let record = Record::from_map(cur.children.clone().unwrap_or_default());
    let mut opts = opts_for(&cur, &ctx, "update");
    opts.deadline = std::time::Instant::now() + Duration::from_secs(300);
    let r = engine::refresh(aws, &graph, record.clone(), &opts).await;
    if r.diags.has_errors() {
        return fail(state, r.diags);
    }
    if r.record.is_empty() && !record.is_empty() {
        tracing::info!(target: "cxflow::resources::ecs_fargate_service", service = cur.name.as_str(), "every child is gone: the service no longer exists");
        return ReadResponse { new_state: Value::Null, private, diags: r.diags };
    }
    // Unfinished children stay marked until an apply completes them.
    let mut drift: BTreeMap<String, String> = cur.drift.clone().unwrap_or_default().into_iter().filter(|(k, v)| v == UNFINISHED && r.record.get(k).is_some()).collect();
    drift.extend(r.drift);
    let mut st = state;
    fill_state(&mut st, &cur, &r.record, drift);
    ReadResponse { new_state: st, private, diags: r.diags }
}

// ------------------------------------------------------------------ import

/// `<cluster>/<service>`; the cluster may be a name or an ARN.
fn parse_import_id(id: &str) -> Option<(String, String)> {
    let (c, s) = id.trim().rsplit_once('/')?;
    (!c.is_empty() && !s.is_empty()).then(|| (c.to_string(), s.to_string()))
}

async fn import_service(aws: &Aws, id: &str) -> Result<Value, Diags> {
    let err = |summary: &str, detail: String| -> Diags { Diagnostic::error(summary, detail).into() };
    let aws_fail = |e: AwsError| err("Import failed", e.to_string());
    let (cluster, service) = parse_import_id(id).ok_or_else(|| err("Invalid import ID", "Import with `<cluster>/<service>`, e.g. `cruddur/backend-flask`.".to_string()))?;
    let names = Names::new(&cluster, &service);
    let owner = names.owner.clone();
    let ours = |tags: Vec<(&str, &str)>| owner.check(tags) == engine::Ownership::Ours;
    let svc = describe_service(aws, &cluster, &service)
        .await
        .map_err(aws_fail)?
        .ok_or_else(|| err("Cannot import", format!("There is no active ECS service {service:?} in cluster {cluster:?}.")))?;
    let mut record = Record::new();
    record.set("service", svc.service_arn().unwrap_or_default());

    // Task definition → size, containers, roles.
    let td_arn = svc.task_definition().unwrap_or_default().to_string();
    let out = aws
        .ecs()
        .describe_task_definition()
        .task_definition(&td_arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| aws_fail(aws_err("ecs:DescribeTaskDefinition", e)))?;
    let td = out.task_definition().ok_or_else(|| err("Import failed", format!("Task definition {td_arn} was not found.")))?;
    if ours(out.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect()) {
        record.set("task_definition", &td_arn);
    }
    let exec_role = td.execution_role_arn().map(str::to_string);
    let task_role = td.task_role_arn().map(str::to_string);
    let mut exec_command = svc.enable_execute_command();
    for (arn, key, own) in [(&exec_role, "execution_role", names.execution_role()), (&task_role, "task_role", names.task_role())] {
        let Some(arn) = arn.as_ref().filter(|a| role_is(a, &own)) else { continue };
        if let Ok(r) = aws.iam().get_role().role_name(&own).send().await {
            if let Some(role) = r.role() {
                if ours(role.tags().iter().map(|t| (t.key(), t.value())).collect()) {
                    record.set(key, arn.clone());
                }
            }
        }
        if key == "task_role" {
            if let Ok(p) = aws.iam().get_role_policy().role_name(&own).policy_name(TASK_POLICY_NAME).send().await {
                exec_command |= parse_policy(p.policy_document()).is_some_and(|d| d.to_string().contains("ssmmessages:"));
            }
        }
    }

    // Log group.
    let mut retention = None;
    let lg = aws.logs().describe_log_groups().log_group_name_prefix(names.log_group()).send().await.map_err(|e| aws_fail(aws_err("logs:DescribeLogGroups", e)))?;
    if let Some(g) = lg.log_groups().iter().find(|g| g.log_group_name() == Some(names.log_group().as_str())) {
        retention = g.retention_in_days().map(i64::from);
        let arn = g.log_group_arn().map(str::to_string).or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string())).unwrap_or_default();
        let tags = aws.logs().list_tags_for_resource().resource_arn(&arn).send().await.map_err(|e| aws_fail(aws_err("logs:ListTagsForResource", e)))?;
        let tags = tags.tags().cloned().unwrap_or_default();
        if ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()) {
            record.set("log_group", names.log_group());
        }
    }

    // Network: our security group (rules become `ingress`) or the user's groups.
    let vpc = svc.network_configuration().and_then(|n| n.awsvpc_configuration());
    let subnets = vpc.map(|v| sorted(v.subnets())).unwrap_or_default();
    let sgs = vpc.map(|v| sorted(v.security_groups())).unwrap_or_default();
    let mut network = Network {
        subnet_ids: subnets,
        assign_public_ip: Some(vpc.and_then(|v| v.assign_public_ip()).is_some_and(|a| a.as_str() == "ENABLED")),
        security_group_ids: Some(sgs.clone()),
        ingress: None,
    };
    if let [sg] = sgs.as_slice() {
        let out = aws.ec2().describe_security_groups().group_ids(sg).send().await.map_err(|e| aws_fail(aws_err("ec2:DescribeSecurityGroups", e)))?;
        if let Some(g) = out.security_groups().first() {
            if ours(g.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect()) {
                record.set("security_group", sg);
                network.security_group_ids = None;
                let mut by_port: BTreeMap<i32, Ingress> = BTreeMap::new();
                for r in rules_from_aws(g.ip_permissions()) {
                    let e = by_port.entry(r.port).or_insert_with(|| Ingress { port: r.port as i64, ..Default::default() });
                    let list = if r.source.starts_with("sg-") { &mut e.source_security_group_ids } else { &mut e.cidr_blocks };
                    list.get_or_insert_with(Vec::new).push(r.source);
                }
                network.ingress = (!by_port.is_empty()).then(|| by_port.into_values().collect());
            }
        }
    }

    // Load balancer: our target group and the rule that forwards to it.
    let mut load_balancer = None;
    if let Some(l) = svc.load_balancers().first() {
        let tg_arn = l.target_group_arn().unwrap_or_default();
        let tgs = aws.elbv2().describe_target_groups().target_group_arns(tg_arn).send().await.map_err(|e| aws_fail(aws_err("elasticloadbalancing:DescribeTargetGroups", e)))?;
        let tg_tags = elb_tags_of(aws, tg_arn).await.map_err(|e| err("Import failed", e.to_string()))?;
        if let (Some(tg), true) = (tgs.target_groups().first(), ours(tg_tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())) {
            record.set("target_group", tg_arn);
            let path = tg.health_check_path().unwrap_or(DEFAULT_LB_HEALTH_PATH).to_string();
            let matcher = tg.matcher().and_then(|m| m.http_code()).unwrap_or(DEFAULT_LB_MATCHER).to_string();
            let health_check = (path != DEFAULT_LB_HEALTH_PATH || matcher != DEFAULT_LB_MATCHER).then(|| LbHealthCheck { path: Some(path), matcher: Some(matcher) });
            let mut lb = LoadBalancer { container_name: l.container_name().map(str::to_string), health_check, ..Default::default() };
            'found: for lb_arn in tg.load_balancer_arns() {
                let listeners =
                    aws.elbv2().describe_listeners().load_balancer_arn(lb_arn).send().await.map_err(|e| aws_fail(aws_err("elasticloadbalancing:DescribeListeners", e)))?;
                for listener in listeners.listeners() {
                    let Some(la) = listener.listener_arn() else { continue };
                    let rules = aws.elbv2().describe_rules().listener_arn(la).send().await.map_err(|e| aws_fail(aws_err("elasticloadbalancing:DescribeRules", e)))?;
                    for rule in rules.rules() {
                        if forward_target(rule).as_deref() != Some(tg_arn) || rule.is_default() == Some(true) {
                            continue;
                        }
                        let arn = rule.rule_arn().unwrap_or_default();
                        let tags = elb_tags_of(aws, arn).await.map_err(|e| err("Import failed", e.to_string()))?;
                        if ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()) {
                            record.set("listener_rule", arn);
                            let (host, path) = conditions_of(rule);
                            lb.listener_arn = la.to_string();
                            lb.priority = rule.priority().and_then(|p| p.parse().ok()).unwrap_or(0);
                            lb.host_header = host;
                            lb.path_pattern = path;
                            break 'found;
                        }
                    }
                }
            }
            if !lb.listener_arn.is_empty() {
                load_balancer = Some(lb);
            }
        }
    }

    // Settings ECS may not report keep their defaults.
    let cb = svc.deployment_configuration().and_then(|d| d.deployment_circuit_breaker());
    let deployment_circuit_breaker = cb.filter(|b| !(b.enable() && b.rollback())).map(|b| CircuitBreaker { enable: Some(b.enable()), rollback: Some(b.rollback()) });
    let service_connect = svc
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.service_connect_configuration())
        .filter(|s| s.enabled())
        .and_then(|s| s.namespace())
        .map(|n| ServiceConnect { namespace: n.to_string() });
    let tags: BTreeMap<String, String> = svc
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .filter(|(k, v)| k != engine::OWNER_TAG && k != children::CHILD_TAG && !k.starts_with("aws:") && aws.default_tags.get(k) != Some(v))
        .collect();

    let cfg = FargateService {
        name: service.clone(),
        cluster: cluster.clone(),
        cpu: td.cpu().and_then(|c| c.parse().ok()).unwrap_or(0),
        memory: td.memory().and_then(|c| c.parse().ok()).unwrap_or(0),
        desired_count: Some(svc.desired_count() as i64),
        container: containers_from_td(td.container_definitions()),
        network: Some(network),
        load_balancer,
        service_connect,
        enable_execute_command: Some(exec_command),
        deployment_circuit_breaker,
        wait_for_steady_state: Some(true),
        timeouts: None,
        execution_role_arn: exec_role,
        task_role_arn: task_role,
        log_retention_days: Some(retention.unwrap_or(DEFAULT_LOG_RETENTION)),
        retain_logs: Some(false),
        tags: Some(tags),
        ..Default::default()
    };
    let mut st = typed::to_value(&cfg, &schema_def().value_type())?;
    fill_state(&mut st, &cfg, &record, BTreeMap::new());
    tracing::info!(target: "cxflow::resources::ecs_fargate_service", id, children = ?record.as_map().keys().collect::<Vec<_>>(), "imported");
    Ok(st)
}

#[async_trait]
impl Resource<Aws> for EcsFargateService {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }
    fn schema(&self) -> Schema {
        schema_def()
    }
    fn validate(&self, config: &Value) -> Diags {
        validate_config(config)
    }
    async fn plan(&self, aws: &Aws, req: PlanRequest) -> PlanResponse {
        plan_change(aws, req)
    }
    async fn apply(&self, aws: &Aws, req: ApplyRequest) -> ApplyResponse {
        apply_change(aws, req).await
    }
    async fn read(&self, aws: &Aws, state: Value, private: Vec<u8>, ctx: Ctx) -> ReadResponse {
        read_state(aws, state, private, ctx).await
    }
    async fn import(&self, aws: &Aws, id: &str, _ctx: Ctx) -> Result<Value, Diags> {
        import_service(aws, id).await
    }
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
        assert!(target_group_name_ok(&n.target_group(4567)), "{}", n.target_group(4567));
        assert_ne!(n.target_group(4567), n.target_group(8080), "a new port means a new target group");
        assert!(n.execution_role().len() <= 64 && n.execution_role().ends_with("-exec"));
        assert_ne!(Names::new("a", "svc").execution_role(), Names::new("b", "svc").execution_role(), "same service name in two clusters");
        assert_eq!(n.log_group(), format!("/cxflow/cruddur/{long}"));
    }

    #[test]
    fn execution_policy_is_scoped_to_what_the_containers_reference() {
        let c = cfg();
        let node = RoleNode {
            c: Arc::new(Common { names: Names::new("cruddur", "backend-flask"), region: "eu-west-2".into(), tags: BTreeMap::new(), account: None }),
            kind: RoleKind::Execution,
            supplied: None,
            needs: ExecNeeds::of(&c),
            exec_command: false,
        };
        let doc = node.policy("123456789012").unwrap().to_string();
        assert!(doc.contains("arn:aws:ssm:eu-west-2:123456789012:parameter/x/A"), "{doc}");
        assert!(doc.contains("\"arn:aws:secretsmanager:eu-west-2:123456789012:secret:db-AbCdEf\""), "the JSON key suffix is cut: {doc}");
        assert!(doc.contains("arn:aws:ecr:eu-west-2:123456789012:repository/backend-flask"), "{doc}");
        assert!(doc.contains("kms:ViaService") && !doc.contains("\"ssm:*\""), "{doc}");
        let task = RoleNode { kind: RoleKind::Task, exec_command: false, ..node };
        assert!(task.policy("1").is_none(), "no ECS Exec, no task policy");
    }

    #[test]
    fn critical_path_is_log_group_task_definition_service() {
        assert_eq!(critical_path(&cfg()), ["log_group", "task_definition", "service"]);
    }

    #[test]
    fn validation_names_the_attribute() {
        let mut v = typed::to_value(&cfg(), &schema_def().value_type()).unwrap();
        v.set_attr("memory", Value::int(4096));
        let d = validate_config(&v);
        assert_eq!(d.0.len(), 1, "{d}");
        assert_eq!(d.0[0].path.as_ref().unwrap().to_string(), "memory");
        let mut v = typed::to_value(&cfg(), &schema_def().value_type()).unwrap();
        if let Some(Value::List(cs)) = v.get_mut("container") {
            cs[0].set_attr("secrets", Value::Map([("A".to_string(), Value::string("s3cr3t-value"))].into()));
        }
        let d = validate_config(&v);
        assert_eq!(d.0[0].path.as_ref().unwrap().to_string(), "container[0].secrets[\"A\"]");
        assert!(!d.to_string().contains("s3cr3t-value"));
        // Unknown values are not judged.
        v.set_attr("cpu", Value::Unknown);
        v.set_attr("name", Value::Unknown);
        assert!(validate_config(&v).0.iter().all(|x| x.path.as_ref().unwrap().to_string() != "cpu"));
    }

    #[test]
    fn import_ids_take_names_or_arns() {
        assert_eq!(parse_import_id("cruddur/backend"), Some(("cruddur".into(), "backend".into())));
        assert_eq!(parse_import_id("arn:aws:ecs:eu-west-2:1:cluster/cruddur/backend"), Some(("arn:aws:ecs:eu-west-2:1:cluster/cruddur".into(), "backend".into())));
        assert_eq!(parse_import_id("backend"), None);
        assert_eq!(crate::children::lb::listener_of_rule("arn:aws:elasticloadbalancing:r:1:listener-rule/app/lb/1/2/3"), "arn:aws:elasticloadbalancing:r:1:listener/app/lb/1/2");
    }
}
