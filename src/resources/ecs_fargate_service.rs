//! `cxflow_ecs_fargate_service`: one ECS service on Fargate with everything it
//! needs — log group, execution and task roles, security group, optional
//! target group with a listener rule (ALB) or a TCP listener (NLB), task
//! definition and the service itself —
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
use crate::children::discovery::CloudMapServiceNode;
use crate::children::ecs::{IMAGE_TAG_LABEL, LbTarget, Registry, ScService, ScTls, ServiceConnectSpec, ServiceNode, TaskDefinitionNode, containers_from_spec, task_settings_from};
use crate::children::iam::{RoleNode, service_trust};
use crate::children::lb::{Conditions, DEFAULT_TG_PROTOCOL, HealthCheck as TgHealth, ListenerRuleNode, NlbListenerNode, TargetGroupNode};
use crate::children::logs::{LogGroupNode, RETENTION_DAYS};
use crate::children::network::{Rule, SecurityGroupNode, VpcOf};
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren, Relinks, Unwanted};
use crate::engine::{Graph, Identity, Node, Tags, names};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};

pub const TYPE_NAME: &str = "cxflow_ecs_fargate_service";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const DEFAULT_LB_HEALTH_PATH: &str = "/";
const DEFAULT_LB_MATCHER: &str = "200-299";
/// HTTP health checks of a network load balancer's target group accept 200-399 (AWS's default there).
const DEFAULT_NLB_MATCHER: &str = "200-399";
const DEFAULT_DEREGISTRATION_DELAY: i64 = 300;
const DEFAULT_STICKINESS_SECONDS: i64 = 86400;
/// "You can specify up to five match evaluations per rule" (ALB listener rules).
const MAX_RULE_VALUES: usize = 5;
const EXEC_POLICY_NAME: &str = "cxflow-execution";
const TASK_POLICY_NAME: &str = "cxflow-ecs-exec";
const TASK_USER_POLICY_NAME: &str = "cxflow-task";
const TASK_EFS_POLICY_NAME: &str = "cxflow-efs";
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
    pub network_load_balancer: Option<NetworkLoadBalancer>,
    pub service_connect: Option<ServiceConnect>,
    pub service_registry: Option<ServiceRegistry>,
    pub enable_execute_command: Option<bool>,
    pub deployment_circuit_breaker: Option<CircuitBreaker>,
    pub wait_for_steady_state: Option<bool>,
    pub execution_role_arn: Option<String>,
    pub task_role_arn: Option<String>,
    pub log_retention_days: Option<i64>,
    pub retain_logs: Option<bool>,
    pub runtime_platform: Option<RuntimePlatform>,
    pub ephemeral_storage_gib: Option<i64>,
    #[serde(default)]
    pub volume: Vec<Volume>,
    pub log_router: Option<LogRouter>,
    pub task_role_policy_arns: Option<Vec<String>>,
    pub task_role_policy_json: Option<String>,
    pub secrets_kms_key_arns: Option<Vec<String>>,
    pub autoscaling: Option<Autoscaling>,
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityItem>,
    pub platform_version: Option<String>,
    pub deployment: Option<Deployment>,
    pub health_check_grace_period: Option<i64>,
    pub redeploy_trigger: Option<String>,
    pub propagate_tags: Option<String>,
    pub enable_ecs_managed_tags: Option<bool>,
    pub tags: Option<BTreeMap<String, String>>,
    // computed
    /// Per container: the image the task definition runs (a digest under `image_policy = "digest"`).
    pub images: Option<BTreeMap<String, String>>,
    pub service_arn: Option<String>,
    pub task_definition_arn: Option<String>,
    pub task_definition_revision: Option<i64>,
    pub security_group_id: Option<String>,
    pub log_group_name: Option<String>,
    pub target_group_arn: Option<String>,
    pub listener_arn: Option<String>,
}

/// Container blocks and their parts: the shared ECS child kind's types.
pub use crate::children::ecs::{Container, HealthCheck, RuntimePlatform, Volume};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Autoscaling {
    pub min: i64,
    pub max: i64,
    pub cpu_target: Option<f64>,
    pub memory_target: Option<f64>,
    pub requests_per_target: Option<f64>,
    pub scale_in_cooldown: Option<i64>,
    pub scale_out_cooldown: Option<i64>,
    #[serde(default)]
    pub scheduled_action: Vec<ScheduledAction>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScheduledAction {
    pub name: String,
    pub schedule: String,
    pub timezone: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CapacityItem {
    pub capacity_provider: String,
    pub weight: Option<i64>,
    pub base: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub minimum_healthy_percent: Option<i64>,
    pub maximum_percent: Option<i64>,
    pub alarms: Option<Alarms>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Alarms {
    #[serde(default)]
    pub names: Vec<String>,
    pub rollback: Option<bool>,
}

/// A FireLens log router: a Fluent Bit (or Fluentd) sidecar the other containers log through.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LogRouter {
    pub image: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
    pub container_log_options: Option<BTreeMap<String, String>>,
    pub memory_reservation: Option<i64>,
}

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
    pub listener_arn: Option<String>,
    /// An existing target group: then no target group or listener rule is created.
    pub target_group_arn: Option<String>,
    pub host_header: Option<String>,
    pub path_pattern: Option<String>,
    pub host_headers: Option<Vec<String>>,
    pub path_patterns: Option<Vec<String>>,
    pub source_ips: Option<Vec<String>>,
    #[serde(default)]
    pub http_header: Vec<HttpHeader>,
    pub priority: Option<i64>,
    pub container_name: Option<String>,
    pub health_check: Option<LbHealthCheck>,
    pub deregistration_delay: Option<i64>,
    pub stickiness: Option<Stickiness>,
}

/// A TCP listener of its own on an existing network load balancer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NetworkLoadBalancer {
    pub load_balancer_arn: String,
    pub port: i64,
    pub container_name: Option<String>,
    pub container_port: Option<i64>,
    pub health_check: Option<NlbHealthCheck>,
    pub deregistration_delay: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NlbHealthCheck {
    pub path: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub port: Option<String>,
}

impl NlbHealthCheck {
    /// TCP connects unless a path asks for HTTP requests (AWS's defaults where unset).
    fn effective(&self) -> TgHealth {
        let d = TgHealth::tcp();
        let (protocol, path, matcher) = match &self.path {
            Some(p) => ("HTTP".to_string(), p.clone(), DEFAULT_NLB_MATCHER.to_string()),
            None => (d.protocol.clone(), d.path.clone(), d.matcher.clone()),
        };
        TgHealth {
            path,
            matcher,
            protocol,
            interval: self.interval.unwrap_or(d.interval),
            timeout: self.timeout.unwrap_or(d.timeout),
            healthy_threshold: self.healthy_threshold.unwrap_or(d.healthy_threshold),
            unhealthy_threshold: self.unhealthy_threshold.unwrap_or(d.unhealthy_threshold),
            port: self.port.clone().unwrap_or(d.port),
        }
    }
    /// The block import writes: none when AWS holds the defaults.
    fn from_observed(h: &serde_json::Value) -> Option<NlbHealthCheck> {
        let d = TgHealth::tcp();
        let n = |k: &str, dflt: i64| h[k].as_i64().unwrap_or(dflt);
        let path = (h["protocol"].as_str() == Some("HTTP")).then(|| h["path"].as_str().unwrap_or("/").to_string());
        let seen = NlbHealthCheck {
            path,
            interval: Some(n("interval", d.interval)),
            timeout: Some(n("timeout", d.timeout)),
            healthy_threshold: Some(n("healthy_threshold", d.healthy_threshold)),
            unhealthy_threshold: Some(n("unhealthy_threshold", d.unhealthy_threshold)),
            port: Some(h["port"].as_str().unwrap_or(&d.port).to_string()),
        };
        (seen.effective() != d).then_some(seen)
    }
}

impl NetworkLoadBalancer {
    /// Only the deregistration delay: TCP target groups have no cookie stickiness.
    fn attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("deregistration_delay.timeout_seconds".to_string(), self.deregistration_delay.unwrap_or(DEFAULT_DEREGISTRATION_DELAY).to_string())])
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpHeader {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stickiness {
    pub enabled: Option<bool>,
    pub duration: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LbHealthCheck {
    pub path: Option<String>,
    pub matcher: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub port: Option<String>,
    pub protocol: Option<String>,
}

impl LbHealthCheck {
    /// The target group's health check, AWS's defaults where unset.
    fn effective(&self) -> TgHealth {
        let d = TgHealth::http(DEFAULT_LB_HEALTH_PATH, DEFAULT_LB_MATCHER);
        TgHealth {
            path: self.path.clone().unwrap_or(d.path),
            matcher: self.matcher.clone().unwrap_or(d.matcher),
            interval: self.interval.unwrap_or(d.interval),
            timeout: self.timeout.unwrap_or(d.timeout),
            healthy_threshold: self.healthy_threshold.unwrap_or(d.healthy_threshold),
            unhealthy_threshold: self.unhealthy_threshold.unwrap_or(d.unhealthy_threshold),
            port: self.port.clone().unwrap_or(d.port),
            protocol: self.protocol.clone().unwrap_or(d.protocol),
        }
    }
    /// The block import writes: none when AWS holds the defaults.
    fn from_observed(h: &serde_json::Value) -> Option<LbHealthCheck> {
        let d = TgHealth::http(DEFAULT_LB_HEALTH_PATH, DEFAULT_LB_MATCHER);
        let st = |k: &str, dflt: &str| h[k].as_str().unwrap_or(dflt).to_string();
        let n = |k: &str, dflt: i64| h[k].as_i64().unwrap_or(dflt);
        let seen = TgHealth {
            path: st("path", &d.path),
            matcher: st("matcher", &d.matcher),
            interval: n("interval", d.interval),
            timeout: n("timeout", d.timeout),
            healthy_threshold: n("healthy_threshold", d.healthy_threshold),
            unhealthy_threshold: n("unhealthy_threshold", d.unhealthy_threshold),
            port: st("port", &d.port),
            protocol: st("protocol", &d.protocol),
        };
        (seen != d).then_some(LbHealthCheck {
            path: Some(seen.path),
            matcher: Some(seen.matcher),
            interval: Some(seen.interval),
            timeout: Some(seen.timeout),
            healthy_threshold: Some(seen.healthy_threshold),
            unhealthy_threshold: Some(seen.unhealthy_threshold),
            port: Some(seen.port),
            protocol: Some(seen.protocol),
        })
    }
}

impl LoadBalancer {
    /// The listener rule's conditions: the single and the list forms together.
    fn conditions(&self) -> Conditions {
        let join = |one: &Option<String>, many: &Option<Vec<String>>| -> Vec<String> {
            let mut v: Vec<String> = one.iter().chain(many.iter().flatten()).cloned().collect();
            v.dedup();
            v
        };
        Conditions {
            host_headers: join(&self.host_header, &self.host_headers),
            path_patterns: join(&self.path_pattern, &self.path_patterns),
            http_headers: self.http_header.iter().map(|h| (h.name.clone(), h.values.clone())).collect(),
            source_ips: self.source_ips.clone().unwrap_or_default(),
        }
    }
    /// Target group attributes, always all of them (AWS's defaults when unset) so import reads them back.
    fn attributes(&self) -> BTreeMap<String, String> {
        let st = self.stickiness.clone();
        let enabled = st.as_ref().map(|s| s.enabled.unwrap_or(true)).unwrap_or(false);
        let duration = st.as_ref().and_then(|s| s.duration).unwrap_or(DEFAULT_STICKINESS_SECONDS);
        BTreeMap::from([
            ("deregistration_delay.timeout_seconds".to_string(), self.deregistration_delay.unwrap_or(DEFAULT_DEREGISTRATION_DELAY).to_string()),
            ("stickiness.enabled".to_string(), enabled.to_string()),
            ("stickiness.type".to_string(), "lb_cookie".to_string()),
            ("stickiness.lb_cookie.duration_seconds".to_string(), duration.to_string()),
        ])
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceConnect {
    pub namespace: String,
    pub client_only: Option<bool>,
    #[serde(default)]
    pub service: Vec<ScServiceCfg>,
    pub log_configuration: Option<ScLog>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceRegistry {
    pub registry_arn: Option<String>,
    pub namespace_id: Option<String>,
    pub name: Option<String>,
    pub dns_record_type: Option<String>,
    pub dns_ttl: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScServiceCfg {
    pub port_name: String,
    pub discovery_name: Option<String>,
    pub ingress_port_override: Option<i64>,
    #[serde(default)]
    pub client_alias: Vec<ScAlias>,
    pub timeout: Option<ScTimeout>,
    pub tls: Option<ScTlsCfg>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScAlias {
    pub port: i64,
    pub dns_name: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScTimeout {
    pub idle_seconds: Option<i64>,
    pub per_request_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScTlsCfg {
    pub private_ca_arn: String,
    pub kms_key_arn: Option<String>,
    pub role_arn: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScLog {
    pub log_driver: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
}

impl FargateService {
    /// Service Connect as the service node sends it: the `service` blocks,
    /// or (neither blocks nor `client_only`) the first TCP port published
    /// under the service's name; an `awslogs` log configuration without
    /// options logs to the service's log group.
    fn service_connect_spec(&self, log_group: &str, region: &str) -> Option<ServiceConnectSpec> {
        let sc = self.service_connect.as_ref()?;
        let services = if !sc.service.is_empty() {
            sc.service
                .iter()
                .map(|s| {
                    let port = self.container.iter().flat_map(Container::port_mappings).find(|p| p.name.as_deref() == Some(s.port_name.as_str())).map(|p| p.container_port);
                    let aliases = if s.client_alias.is_empty() {
                        port.map(|p| vec![(p, None)]).unwrap_or_default()
                    } else {
                        s.client_alias.iter().map(|a| (a.port, a.dns_name.clone())).collect()
                    };
                    ScService {
                        port_name: s.port_name.clone(),
                        discovery_name: s.discovery_name.clone().unwrap_or_else(|| s.port_name.clone()),
                        ingress_port_override: s.ingress_port_override,
                        aliases,
                        idle_timeout: s.timeout.as_ref().and_then(|t| t.idle_seconds),
                        per_request_timeout: s.timeout.as_ref().and_then(|t| t.per_request_seconds),
                        tls: s.tls.as_ref().map(|t| ScTls { private_ca_arn: t.private_ca_arn.clone(), kms_key: t.kms_key_arn.clone(), role_arn: Some(t.role_arn.clone()) }),
                    }
                })
                .collect()
        } else if sc.client_only.unwrap_or(false) {
            Vec::new()
        } else {
            self.container.iter().find_map(Container::first_tcp_port).map(|p| vec![self.default_sc_service(p)]).unwrap_or_default()
        };
        let log = sc.log_configuration.as_ref().map(|l| {
            let driver = l.log_driver.clone().unwrap_or_else(|| "awslogs".into());
            let mut options = l.options.clone().unwrap_or_default();
            if driver == "awslogs" && options.is_empty() {
                options = BTreeMap::from([
                    ("awslogs-group".to_string(), log_group.to_string()),
                    ("awslogs-region".to_string(), region.to_string()),
                    ("awslogs-stream-prefix".to_string(), "service-connect".to_string()),
                ]);
            }
            (driver, options)
        });
        Some(ServiceConnectSpec { namespace: sc.namespace.clone(), services, log })
    }
    /// The port published when no `service` block says otherwise.
    fn default_sc_service(&self, (port_name, port): (String, i64)) -> ScService {
        ScService {
            port_name,
            discovery_name: self.name.clone(),
            ingress_port_override: None,
            aliases: vec![(port, None)],
            idle_timeout: None,
            per_request_timeout: None,
            tls: None,
        }
    }
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
    /// The log group the containers log to, and whether the service creates it.
    fn log_group(&self) -> (String, bool) {
        let own = Names::new(&self.cluster, &self.name).log_group();
        match &self.log_group_name {
            Some(g) if *g != own => (g.clone(), false),
            _ => (own, true),
        }
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
        if let Some(nlb) = &self.network_load_balancer {
            let tcp_ports =
                |c: &Container| -> Vec<i64> { c.port_mappings().into_iter().filter(|p| p.protocol.as_deref().unwrap_or("tcp") == "tcp").map(|p| p.container_port).collect() };
            let c = match (&nlb.container_name, nlb.container_port) {
                (Some(n), _) => self.container.iter().find(|c| &c.name == n)?,
                (None, Some(p)) => self.container.iter().find(|c| tcp_ports(c).contains(&p))?,
                (None, None) => self.container.iter().find(|c| c.first_tcp_port().is_some())?,
            };
            let port = nlb.container_port.or_else(|| c.first_tcp_port().map(|p| p.1))?;
            return Some((c.name.clone(), port));
        }
        let lb = self.load_balancer.as_ref()?;
        let c = match &lb.container_name {
            Some(n) => self.container.iter().find(|c| &c.name == n)?,
            None => self.container.iter().find(|c| c.first_tcp_port().is_some())?,
        };
        Some((c.name.clone(), c.first_tcp_port()?.1))
    }
    /// Whether CI deploys images of some container (`image_policy = "external"`).
    fn ci_owns_images(&self) -> bool {
        self.container.iter().any(|c| c.image_policy.as_deref() == Some("external"))
    }
    /// The containers as the task definition has them: images as plan
    /// resolved them, and the log router with the others logging through it.
    fn effective_containers(&self) -> Vec<Container> {
        let mut out: Vec<Container> = Vec::new();
        if let Some(r) = &self.log_router {
            out.push(Container {
                name: LOG_ROUTER.to_string(),
                image: r.image.clone().unwrap_or_else(|| DEFAULT_LOG_ROUTER_IMAGE.to_string()),
                essential: Some(true),
                memory_reservation: Some(r.memory_reservation.unwrap_or(50)),
                firelens_configuration: Some(crate::children::ecs::Firelens { kind: r.kind.clone().unwrap_or_else(|| "fluentbit".into()), options: r.options.clone() }),
                ..Default::default()
            });
        }
        for c in &self.container {
            let mut c = c.clone();
            if let Some(img) = self.images.as_ref().and_then(|m| m.get(&c.name)) {
                if c.image_policy.as_deref() == Some("digest") && img.contains("@sha256:") {
                    let tag = c.image.rsplit_once(':').map(|(_, t)| t.to_string()).unwrap_or_default();
                    c.docker_labels.get_or_insert_with(BTreeMap::new).insert(IMAGE_TAG_LABEL.to_string(), tag);
                }
                c.image = img.clone();
            }
            if let (Some(r), None) = (&self.log_router, &c.log_configuration) {
                c.log_configuration =
                    Some(crate::children::ecs::LogConfiguration { log_driver: "awsfirelens".into(), options: r.container_log_options.clone(), secret_options: None });
            }
            out.push(c);
        }
        out
    }
}

fn cluster_name(cluster: &str) -> &str {
    match cluster.rsplit_once(":cluster/") {
        Some((_, n)) => n,
        None => cluster,
    }
}

// ------------------------------------------------------------------ schema

pub const NAME_RE: &str = "[A-Za-z0-9_-]{1,255}";
pub const NAME_RULE: &str = "1 to 255 letters, digits, hyphens and underscores";
pub const CLUSTER_RE: &str = r"[A-Za-z0-9_-]{1,255}|arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/[A-Za-z0-9_-]{1,255}";
pub const CLUSTER_RULE: &str = "an ECS cluster name (letters, digits, `-`, `_`) or a cluster ARN";
pub const ENV_NAME_RE: &str = "[A-Za-z_][A-Za-z0-9_]*";
pub const ENV_NAME_RULE: &str = "letters, digits and underscores, not starting with a digit";
const SG_RE: &str = "sg-[0-9a-f]+";
const ULIMITS: &[&str] = &["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"];
const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];
const DEFAULT_LOG_ROUTER_IMAGE: &str = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable";
const LOG_ROUTER: &str = "log_router";
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

    let port_mapping = Block::new(vec![
        attr("container_port", Type::Number, "Port the container listens on.").required().check(Check::Int(1, 65535)),
        attr("protocol", Type::String, "`tcp` or `udp`.").default(Value::string("tcp")).check(Check::OneOf(&["tcp", "udp"])),
        attr("name", Type::String, "Name of the mapping (Service Connect refers to it).")
            .optional()
            .check(Check::Matches("[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?", "1-64 lowercase letters, digits or hyphens")),
        attr("app_protocol", Type::String, "`http`, `http2` or `grpc` (for Service Connect metrics and routing).").optional().check(Check::OneOf(&["http", "http2", "grpc"])),
    ])
    .describe("A port mapping; use several for several ports (instead of `port`).");
    let depends_on = Block::new(vec![
        attr("container", Type::String, "Name of another container of the task.").required().check(Check::Matches(NAME_RE, NAME_RULE)),
        attr("condition", Type::String, "`START`, `COMPLETE`, `SUCCESS` or `HEALTHY` (that container has a `health_check`).")
            .required()
            .check(Check::OneOf(&["START", "COMPLETE", "SUCCESS", "HEALTHY"])),
    ])
    .describe("Start this container only once another reached a condition.");
    let ulimit = Block::new(vec![
        attr("name", Type::String, "The limit, e.g. `nofile`.").required().check(Check::OneOf(ULIMITS)),
        attr("soft_limit", Type::Number, "Soft limit.").required().check(Check::Int(0, 1_048_576)),
        attr("hard_limit", Type::Number, "Hard limit (at least `soft_limit`).").required().check(Check::Int(0, 1_048_576)),
    ])
    .describe("A resource limit of the container's processes.");
    let capabilities = Block::new(vec![
        attr("add", Type::list(Type::String), "Capabilities to add. Fargate allows only `SYS_PTRACE`.").optional().check(Check::each(Check::OneOf(&["SYS_PTRACE"]))),
        attr("drop", Type::list(Type::String), "Capabilities to drop, e.g. `ALL` or `NET_RAW`.").optional().check(Check::each(Check::OneOf(CAPABILITIES))),
    ])
    .describe("Linux capabilities.");
    let linux_parameters = Block::new(vec![attr("init_process_enabled", Type::Bool, "Run an init process (PID 1) that reaps zombies and forwards signals.").optional()])
        .with_blocks(vec![NestedBlock::new("capabilities", Nesting::Single, capabilities)])
        .describe("Linux settings of the container.");
    let mount_point = Block::new(vec![
        attr("source_volume", Type::String, "Name of a `volume` block of the service.").required().check(Check::Matches(NAME_RE, NAME_RULE)),
        attr("container_path", Type::String, "Where the volume appears in the container.").required().check(Check::Matches("/.{0,4095}", "an absolute path")),
        attr("read_only", Type::Bool, "Mount read-only.").default(Value::Bool(false)),
    ])
    .describe("Mount a volume into the container.");
    let log_configuration = Block::new(vec![
        attr("log_driver", Type::String, "`awslogs`, `awsfirelens`, `splunk` or `fluentd` (what Fargate supports).").required().check(Check::OneOf(&[
            "awslogs",
            "awsfirelens",
            "splunk",
            "fluentd",
        ])),
        attr("options", Type::map(Type::String), "Options of the driver.").optional(),
        attr(
            "secret_options",
            Type::map(Type::String),
            "Driver options filled from SSM parameters or Secrets Manager secrets: name → ARN (the execution role may read exactly these).",
        )
        .optional(),
    ])
    .describe("Log with another driver than the default (awslogs into the service's log group, or FireLens when `log_router` is set).");
    let firelens = Block::new(vec![
        attr("type", Type::String, "`fluentbit` or `fluentd`.").required().check(Check::OneOf(&["fluentbit", "fluentd"])),
        attr("options", Type::map(Type::String), "FireLens options, e.g. `enable-ecs-log-metadata`.").optional(),
    ])
    .describe("Make this container a FireLens log router (`log_router` does this for you).");

    let container = Block::new(vec![
        attr("name", Type::String, "Container name, unique within the service.").required().check(Check::Matches(NAME_RE, NAME_RULE)),
        attr(
            "image",
            Type::String,
            "Image to run, e.g. `123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest`. For ECR images the execution role may pull from exactly these repositories.",
        )
        .required()
        .check(Check::Matches(r"\S+", "an image reference without spaces")),
        attr(
            "port",
            Type::Number,
            "TCP port the container listens on (the simple form of one `port_mapping` named after the container). Needed for a load balancer or Service Connect.",
        )
        .optional()
        .check(Check::Int(1, 65535)),
        attr(
            "image_policy",
            Type::String,
            "Who decides the image. `config`: the configured image; a revision deployed outside Terraform is drift and apply restores the \
             configured one. `digest`: plan resolves the configured ECR tag to its digest (`ecr:DescribeImages`) and the task definition \
             runs `<repository>@sha256:...`, so a re-pushed tag shows in the plan as a new digest. `external`: CI owns the image; a \
             revision CI deployed is not drift, and when Terraform registers a new revision for another change it carries the image \
             running now (the `images` output shows which).",
        )
        .default(Value::string("config"))
        .check(Check::OneOf(&["config", "digest", "external"])),
        attr("essential", Type::Bool, "Whether the task stops when this container stops.").default(Value::Bool(true)),
        attr("cpu", Type::Number, "CPU units reserved for this container; all containers' together at most the task's `cpu`.").optional().check(Check::Int(0, 16384)),
        attr("memory", Type::Number, "Hard memory limit in MiB; the container is killed above it. All containers' limits together at most the task's `memory`.")
            .optional()
            .check(Check::Int(6, 122880)),
        attr("memory_reservation", Type::Number, "Soft memory limit in MiB (at most `memory`).").optional().check(Check::Int(6, 122880)),
        attr("entry_point", Type::list(Type::String), "Overrides the image's entry point.").optional(),
        attr("command", Type::list(Type::String), "Overrides the image's command.").optional(),
        attr("working_directory", Type::String, "Working directory of the command.").optional().check(Check::Len(1, 4096)),
        attr("user", Type::String, "User (and group) to run as: `1000`, `1000:1000` or a name.")
            .optional()
            .check(Check::Matches(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?", "a user, uid, user:group or uid:gid")),
        attr("readonly_root_filesystem", Type::Bool, "Mount the root file system read-only (write to volumes instead).").default(Value::Bool(false)),
        attr("stop_timeout", Type::Number, "Seconds between SIGTERM and SIGKILL when the task stops.").optional().check(Check::Int(2, 120)),
        attr("docker_labels", Type::map(Type::String), "Docker labels on the container. Keys starting with `cxflow.` are the provider's.")
            .optional()
            .check(Check::keys(Check::Matches(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,254}", "a label key of letters, digits, `_`, `.`, `/` or `-`"))),
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
    .with_blocks(vec![
        NestedBlock::new("health_check", Nesting::Single, health_check),
        NestedBlock::new("port_mapping", Nesting::List, port_mapping).max(100),
        NestedBlock::new("depends_on", Nesting::List, depends_on).max(10),
        NestedBlock::new("ulimit", Nesting::List, ulimit).max(20),
        NestedBlock::new("linux_parameters", Nesting::Single, linux_parameters),
        NestedBlock::new("mount_point", Nesting::List, mount_point).max(50),
        NestedBlock::new("log_configuration", Nesting::Single, log_configuration),
        NestedBlock::new("firelens_configuration", Nesting::Single, firelens),
    ])
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
        attr("interval", Type::Number, "Seconds between checks.").default(Value::int(30)).check(Check::Int(5, 300)),
        attr("timeout", Type::Number, "Seconds without an answer that count as a failed check (less than `interval`).").default(Value::int(5)).check(Check::Int(2, 120)),
        attr("healthy_threshold", Type::Number, "Consecutive successes before a target is healthy.").default(Value::int(5)).check(Check::Int(2, 10)),
        attr("unhealthy_threshold", Type::Number, "Consecutive failures before a target is unhealthy.").default(Value::int(2)).check(Check::Int(2, 10)),
        attr("port", Type::String, "`traffic-port` (the port traffic arrives on) or a port number.")
            .default(Value::string("traffic-port"))
            .check(Check::Matches(r"traffic-port|[1-9][0-9]{0,4}", "traffic-port or a port number")),
        attr("protocol", Type::String, "`HTTP` or `HTTPS`.").default(Value::string("HTTP")).check(Check::OneOf(&["HTTP", "HTTPS"])),
    ])
    .describe("Target group health check.");
    let http_header = Block::new(vec![
        attr("name", Type::String, "Header name, e.g. `X-Canary`.")
            .required()
            .check(Check::Matches("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}", "an HTTP header name (at most 40 characters)")),
        attr("values", Type::list(Type::String), "Values that match (`*` and `?` wildcards).").required().check(Check::Items(1, 5)).check(Check::each(Check::Len(1, 128))),
    ])
    .describe("Route requests carrying this header with one of these values.");
    let stickiness = Block::new(vec![
        attr("enabled", Type::Bool, "Send a client's requests to the same task (load balancer cookie).").default(Value::Bool(true)),
        attr("duration", Type::Number, "Seconds the cookie keeps a client on its task.").default(Value::int(DEFAULT_STICKINESS_SECONDS)).check(Check::Int(1, 604800)),
    ])
    .describe("Sticky sessions with the load balancer's cookie.");

    let load_balancer = Block::new(vec![
        attr(
            "listener_arn",
            Type::String,
            "ARN of the HTTP(S) listener of an existing Application Load Balancer: the service creates a target group and a listener rule on it. \
             Required unless `target_group_arn` is set.",
        )
        .optional()
        .check(Check::Arn { service: "elasticloadbalancing", resource: "listener/" }),
        attr(
            "target_group_arn",
            Type::String,
            "ARN of an existing target group (made elsewhere, already attached to its load balancer) the service registers its tasks with. \
             The service then creates no target group and no listener rule: leave `listener_arn`, `priority`, the conditions, `health_check` and \
             `stickiness` unset (`deregistration_delay` does not apply). Import sets it for a service made by hand.",
        )
        .optional()
        .check(Check::Arn { service: "elasticloadbalancing", resource: "targetgroup/" }),
        attr("host_header", Type::String, "Route requests for this host name, e.g. `api.example.com`.").optional().check(Check::Len(1, 128)),
        attr("path_pattern", Type::String, "Route requests whose path matches, e.g. `/api/*`.").optional().check(Check::Len(1, 128)),
        attr("host_headers", Type::list(Type::String), "More host names (any of them matches; with `host_header`).")
            .optional()
            .check(Check::Items(1, 5))
            .check(Check::each(Check::Len(1, 128))),
        attr("path_patterns", Type::list(Type::String), "More path patterns (any of them matches; with `path_pattern`).")
            .optional()
            .check(Check::Items(1, 5))
            .check(Check::each(Check::Len(1, 128))),
        attr("source_ips", Type::list(Type::String), "Route requests from these CIDR blocks only.").optional().check(Check::Items(1, 5)).check(Check::each(Check::Cidr)),
        attr("deregistration_delay", Type::Number, "Seconds a stopping task keeps its connections (target group `deregistration_delay`).")
            .default(Value::int(DEFAULT_DEREGISTRATION_DELAY))
            .check(Check::Int(0, 3600)),
        attr("priority", Type::Number, "Listener rule priority, unique on the listener. Required with `listener_arn`.").optional().check(Check::Int(1, 50000)),
        attr("container_name", Type::String, "Container that receives the traffic. Default: the first container with a `port`.").optional().computed(),
    ])
    .with_blocks(vec![
        NestedBlock::new("health_check", Nesting::Single, lb_health),
        NestedBlock::new("http_header", Nesting::List, http_header).max(5),
        NestedBlock::new("stickiness", Nesting::Single, stickiness),
    ])
    .describe(
        "Put the service behind an existing load balancer: creates a target group (type `ip`) and a listener rule. The rule needs at least one condition \
         (host names, path patterns, HTTP headers, source IPs; every condition given must match, any value of one does); at most five values in all.",
    );

    let nlb_health = Block::new(vec![
        attr("path", Type::String, "Check with HTTP GET requests to this path (healthy: 200-399). Unset: a TCP connect check.")
            .optional()
            .check(Check::Matches("/.{0,1023}", "a path starting with / (at most 1024 characters)")),
        attr("interval", Type::Number, "Seconds between checks.").default(Value::int(30)).check(Check::Int(5, 300)),
        attr("timeout", Type::Number, "Seconds without an answer that count as a failed check.").default(Value::int(10)).check(Check::Int(2, 120)),
        attr("healthy_threshold", Type::Number, "Consecutive successes before a target is healthy.").default(Value::int(5)).check(Check::Int(2, 10)),
        attr("unhealthy_threshold", Type::Number, "Consecutive failures before a target is unhealthy.").default(Value::int(2)).check(Check::Int(2, 10)),
        attr("port", Type::String, "`traffic-port` (the port traffic arrives on) or a port number.")
            .default(Value::string("traffic-port"))
            .check(Check::Matches(r"traffic-port|[1-9][0-9]{0,4}", "traffic-port or a port number")),
    ])
    .describe("Target group health check: TCP connects by default, HTTP with `path`.");
    let network_load_balancer = Block::new(vec![
        attr("load_balancer_arn", Type::String, "ARN of an existing Network Load Balancer (`...:loadbalancer/net/...`).")
            .required()
            .check(Check::Arn { service: "elasticloadbalancing", resource: "loadbalancer/net/" }),
        attr("port", Type::Number, "Port of the TCP listener this resource creates on the load balancer; no other listener may have it.").required().check(Check::Int(1, 65535)),
        attr("container_name", Type::String, "Container that receives the traffic. Default: the container with `container_port`, else the first with a port.")
            .optional()
            .computed(),
        attr("container_port", Type::Number, "TCP port of that container the traffic goes to. Default: the container's first port.")
            .optional()
            .computed()
            .check(Check::Int(1, 65535)),
        attr("deregistration_delay", Type::Number, "Seconds a stopping task keeps its connections (target group `deregistration_delay`).")
            .default(Value::int(DEFAULT_DEREGISTRATION_DELAY))
            .check(Check::Int(0, 3600)),
    ])
    .with_blocks(vec![NestedBlock::new("health_check", Nesting::Single, nlb_health)])
    .describe(
        "Put the service behind an existing Network Load Balancer: creates a TCP target group (type `ip`) and a TCP listener of its own on `port` \
         forwarding to it (an NLB listener has no rules to share, and the listeners you manage are left alone). Excludes `load_balancer`.",
    );

    let sc_alias = Block::new(vec![
        attr("port", Type::Number, "Port clients connect to.").required().check(Check::Int(1, 65535)),
        attr("dns_name", Type::String, "Name clients use. Default: `<discovery_name>.<namespace>`.")
            .optional()
            .check(Check::Matches("[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?", "a DNS name")),
    ])
    .describe("How clients in the namespace reach this port.");
    let sc_timeout = Block::new(vec![
        attr("idle_seconds", Type::Number, "Seconds a connection may stay idle (0 turns the timeout off).").optional().check(Check::Int(0, 2147483647)),
        attr("per_request_seconds", Type::Number, "Seconds a request may take (HTTP, HTTP2 and gRPC).").optional().check(Check::Int(0, 2147483647)),
    ])
    .describe("Service Connect proxy timeouts.");
    let sc_tls = Block::new(vec![
        attr("private_ca_arn", Type::String, "AWS Private CA that issues the proxies' certificates.")
            .required()
            .check(Check::Arn { service: "acm-pca", resource: "certificate-authority/" }),
        attr("kms_key_arn", Type::String, "KMS key that encrypts the private keys. Default: an AWS owned key.").optional().check(Check::Arn { service: "kms", resource: "" }),
        attr("role_arn", Type::String, "The ECS infrastructure role ECS uses for TLS (trusted by `ecs.amazonaws.com`).")
            .required()
            .check(Check::Arn { service: "iam", resource: "role/" }),
    ])
    .describe("TLS between Service Connect proxies.");
    let sc_service = Block::new(vec![
        attr("port_name", Type::String, "A named port mapping of a container (the simple `port` is named after its container).").required().check(Check::Len(1, 64)),
        attr("discovery_name", Type::String, "Name in Cloud Map. Default: `port_name`.")
            .optional()
            .check(Check::Matches("[A-Za-z0-9]([A-Za-z0-9_-]{0,62}[A-Za-z0-9])?", "letters, digits, - and _ (at most 64)")),
        attr("ingress_port_override", Type::Number, "Port the proxy listens on. Default: the container port.").optional().check(Check::Int(1, 65535)),
    ])
    .with_blocks(vec![
        NestedBlock::new("client_alias", Nesting::List, sc_alias).max(5),
        NestedBlock::new("timeout", Nesting::Single, sc_timeout),
        NestedBlock::new("tls", Nesting::Single, sc_tls),
    ])
    .describe("A port this service publishes.");
    let sc_log = Block::new(vec![
        attr("log_driver", Type::String, "Log driver of the Service Connect proxy.").default(Value::string("awslogs")).check(Check::OneOf(&[
            "awslogs",
            "awsfirelens",
            "splunk",
            "fluentd",
            "json-file",
            "syslog",
            "journald",
            "gelf",
        ])),
        attr("options", Type::map(Type::String), "Driver options. Default for `awslogs`: the service's log group, stream prefix `service-connect`.").optional(),
    ])
    .describe("Where the Service Connect proxy logs.");
    let service_registry = Block::new(vec![
        attr("registry_arn", Type::String, "An existing Cloud Map service to register the tasks in.")
            .optional()
            .check(Check::Arn { service: "servicediscovery", resource: "service/" }),
        attr("namespace_id", Type::String, "A Cloud Map namespace (`ns-…`) to create the service's own Cloud Map service in.")
            .optional()
            .check(Check::Matches("ns-[a-z0-9]{16,64}", "a namespace ID such as ns-abcdef0123456789")),
        attr("name", Type::String, "Name of the created Cloud Map service. Default: the service's name.")
            .optional()
            .computed()
            .check(Check::Matches("[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?", "letters, digits, - and _ (at most 63)")),
        attr("dns_record_type", Type::String, "`A` (each task's IP) or `SRV` (IP and port) records in a DNS namespace; unset for HTTP namespaces (API discovery only).")
            .optional()
            .check(Check::OneOf(&["A", "SRV"])),
        attr("dns_ttl", Type::Number, "TTL of the DNS records, in seconds.").default(Value::int(10)).check(Check::Int(0, 2147483647)),
    ])
    .describe("Register the tasks in Cloud Map: set `registry_arn` (an existing service) or `namespace_id` (the resource creates one).");
    let service_connect = Block::new(vec![
        attr("namespace", Type::String, "Cloud Map namespace (name or ARN).").required().check(Check::Len(1, 1024)),
        attr(
            "client_only",
            Type::Bool,
            "Only call other services, publish no port. Without it and without `service` blocks, the first TCP port is published under the service's name.",
        )
        .default(Value::Bool(false)),
    ])
    .with_blocks(vec![NestedBlock::new("service", Nesting::List, sc_service).max(10), NestedBlock::new("log_configuration", Nesting::Single, sc_log)])
    .describe("Join ECS Service Connect.");

    let circuit_breaker = Block::new(vec![
        attr("enable", Type::Bool, "Stop a deployment whose tasks keep failing.").default(Value::Bool(true)),
        attr("rollback", Type::Bool, "Roll back to the last working deployment when the breaker trips.").default(Value::Bool(true)),
    ])
    .describe("ECS deployment circuit breaker. Without this block both are on.");

    let runtime_platform = Block::new(vec![
        attr("cpu_architecture", Type::String, "`X86_64` or `ARM64` (Graviton).").default(Value::string("X86_64")).check(Check::OneOf(&["X86_64", "ARM64"])),
        attr("operating_system_family", Type::String, "`LINUX`, or a Windows Server family (needs `cpu` of at least 1024).")
            .default(Value::string("LINUX"))
            .check(Check::OneOf(&["LINUX", "WINDOWS_SERVER_2019_FULL", "WINDOWS_SERVER_2019_CORE", "WINDOWS_SERVER_2022_FULL", "WINDOWS_SERVER_2022_CORE"])),
    ])
    .describe("CPU architecture and operating system of the tasks.");
    let efs = Block::new(vec![
        attr("file_system_id", Type::String, "EFS file system, e.g. `fs-0123456789abcdef0`.")
            .required()
            .check(Check::Matches("fs-[0-9a-f]{8,40}", "an EFS file system ID such as fs-0123456789abcdef0")),
        attr("root_directory", Type::String, "Directory of the file system to mount (`/` with an access point).")
            .optional()
            .check(Check::Matches("/.{0,4095}", "an absolute path")),
        attr("transit_encryption", Type::Bool, "Encrypt traffic to EFS (required for IAM authorization and access points).").default(Value::Bool(true)),
        attr("access_point_id", Type::String, "An EFS access point, e.g. `fsap-0123456789abcdef0`.")
            .optional()
            .check(Check::Matches("fsap-[0-9a-f]{8,40}", "an access point ID such as fsap-0123456789abcdef0")),
        attr(
            "iam_authorization",
            Type::Bool,
            "Authorize with the task role: it gets `elasticfilesystem:ClientMount` (and `ClientWrite` unless every mount is read-only) on this file system.",
        )
        .default(Value::Bool(false)),
    ])
    .describe("Mount an EFS file system.");
    let volume = Block::new(vec![attr("name", Type::String, "Volume name, referred to by `mount_point.source_volume`.").required().check(Check::Matches(NAME_RE, NAME_RULE))])
        .with_blocks(vec![NestedBlock::new("efs", Nesting::Single, efs)])
        .describe("A task volume: EFS with an `efs` block, else a bind volume on the task's ephemeral storage (shared by its containers).");
    let log_router = Block::new(vec![
        attr("image", Type::String, "The router image.").default(Value::string(DEFAULT_LOG_ROUTER_IMAGE)).check(Check::Matches(r"\S+", "an image reference without spaces")),
        attr("type", Type::String, "`fluentbit` or `fluentd`.").default(Value::string("fluentbit")).check(Check::OneOf(&["fluentbit", "fluentd"])),
        attr("options", Type::map(Type::String), "FireLens options of the router, e.g. `config-file-type` and `config-file-value`.").optional(),
        attr("container_log_options", Type::map(Type::String), "The `awsfirelens` options of every other container without a `log_configuration`, e.g. `Name = \"cloudwatch\"`. The task role needs what the output writes to (`task_role_policy_json`).")
            .optional(),
        attr("memory_reservation", Type::Number, "Soft memory limit of the router in MiB.").default(Value::int(50)).check(Check::Int(6, 4096)),
    ])
    .describe("Add a FireLens log router container `log_router` (logging itself to the service's log group) and send the other containers' logs through it.");

    let scheduled = Block::new(vec![
        attr("name", Type::String, "Action name, unique within the service.").required().check(Check::Matches("[A-Za-z0-9_-]{1,200}", "1-200 letters, digits, `_` or `-`")),
        attr("schedule", Type::String, "`cron(minutes hours day-of-month month day-of-week year)`, `rate(5 minutes)` or `at(2026-12-24T18:00:00)`.")
            .required()
            .check(Check::Custom(schedule_ok, "cron(...) with six fields, rate(N unit) or at(yyyy-mm-ddThh:mm:ss)")),
        attr("timezone", Type::String, "IANA time zone of the schedule, e.g. `Europe/Berlin`; UTC when unset.")
            .optional()
            .check(Check::Matches(r"[A-Za-z_]+(/[A-Za-z0-9_+-]+)*", "an IANA time zone such as Europe/Berlin")),
        attr("min", Type::Number, "New minimum at that time.").optional().check(Check::Int(0, 5000)),
        attr("max", Type::Number, "New maximum at that time.").optional().check(Check::Int(0, 5000)),
    ])
    .describe("Change min and max on a schedule.");
    let autoscaling = Block::new(vec![
        attr("min", Type::Number, "Fewest tasks.").required().check(Check::Int(0, 5000)),
        attr("max", Type::Number, "Most tasks.").required().check(Check::Int(1, 5000)),
        attr("cpu_target", Type::Number, "Target average CPU utilization in percent.").optional().check(Check::Custom(percent_ok, "a percentage above 0, at most 100")),
        attr("memory_target", Type::Number, "Target average memory utilization in percent.").optional().check(Check::Custom(percent_ok, "a percentage above 0, at most 100")),
        attr("requests_per_target", Type::Number, "Target ALB requests per task per minute (with `load_balancer`: the target group this service created).")
            .optional()
            .check(Check::Int(1, 1_000_000)),
        attr("scale_in_cooldown", Type::Number, "Seconds after a scale-in before another.").default(Value::int(300)).check(Check::Int(0, 86400)),
        attr("scale_out_cooldown", Type::Number, "Seconds after a scale-out before another.").default(Value::int(300)).check(Check::Int(0, 86400)),
    ])
    .with_blocks(vec![NestedBlock::new("scheduled_action", Nesting::List, scheduled).max(50)])
    .describe(
        "Application Auto Scaling of the task count. While it is on, `desired_count` is only the count a new service starts with: a \
         count the scaler set is never drift and never reverted; changing min or max applies them; removing the block makes \
         `desired_count` authoritative again.",
    );
    let capacity = Block::new(vec![
        attr("capacity_provider", Type::String, "`FARGATE` or `FARGATE_SPOT`.").required().check(Check::OneOf(&["FARGATE", "FARGATE_SPOT"])),
        attr("weight", Type::Number, "Relative share of tasks beyond the bases.").default(Value::int(1)).check(Check::Int(0, 1000)),
        attr("base", Type::Number, "Tasks placed on this provider first (one provider may have a base).").default(Value::int(0)).check(Check::Int(0, 100_000)),
    ])
    .describe("Run on Fargate and/or Fargate Spot (instead of the launch type FARGATE); changed in place with a new deployment.");
    let alarms = Block::new(vec![
        attr("names", Type::list(Type::String), "CloudWatch alarms that fail the deployment when they go off.")
            .required()
            .check(Check::Items(1, 10))
            .check(Check::each(Check::Len(1, 255))),
        attr("rollback", Type::Bool, "Roll back a deployment an alarm failed.").default(Value::Bool(true)),
    ])
    .describe("Deployment alarms.");
    let deployment = Block::new(vec![
        attr("minimum_healthy_percent", Type::Number, "Running tasks kept during a deployment, in percent of the desired count.")
            .default(Value::int(100))
            .check(Check::Int(0, 100)),
        attr("maximum_percent", Type::Number, "Tasks allowed during a deployment, in percent of the desired count.").default(Value::int(200)).check(Check::Int(100, 200)),
    ])
    .with_blocks(vec![NestedBlock::new("alarms", Nesting::Single, alarms)])
    .describe("How deployments roll (the circuit breaker is `deployment_circuit_breaker`).");

    Block::new(vec![
        attr("name", Type::String, "Service name; also the task definition family. Changing it replaces the service.")
            .required()
            .force_new()
            .check(Check::Matches(NAME_RE, NAME_RULE)),
        attr("cluster", Type::String, "ECS cluster name or ARN. Changing it replaces the service.").required().force_new().check(Check::Matches(CLUSTER_RE, CLUSTER_RULE)),
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
        attr("ephemeral_storage_gib", Type::Number, "Task ephemeral storage in GiB (Fargate gives 20 when unset).").optional().check(Check::Int(21, 200)),
        attr(
            "task_role_policy_arns",
            Type::set(Type::String),
            "Managed policies attached to the created task role, e.g. `arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess`. Policies attached outside Terraform are left alone.",
        )
        .optional()
        .check(Check::each(Check::Arn { service: "iam", resource: "policy/" })),
        attr(
            "task_role_policy_json",
            Type::String,
            "An inline policy document for the created task role (`cxflow-task`), next to the ECS Exec and EFS permissions the provider adds.",
        )
        .optional()
        .check(Check::Custom(policy_document_ok, "an IAM policy document: JSON with `Version` \"2012-10-17\" and a non-empty `Statement`")),
        attr(
            "secrets_kms_key_arns",
            Type::set(Type::String),
            "Customer managed KMS keys that encrypt the referenced secrets. The execution role may `kms:Decrypt` exactly these, through SSM and \
             Secrets Manager only; without them it gets no KMS permission (AWS managed keys need none).",
        )
        .optional()
        .check(Check::each(Check::Arn { service: "kms", resource: "key/" })),
        attr("platform_version", Type::String, "Fargate platform version, e.g. `1.4.0`.").default(Value::string("LATEST")).check(Check::Matches(r"LATEST|\d+\.\d+\.\d+", "LATEST or a version such as 1.4.0")),
        attr("health_check_grace_period", Type::Number, "Seconds the service ignores failing load balancer health checks after a task starts (with `load_balancer`).")
            .default(Value::int(0))
            .check(Check::Int(0, 2_147_483_647)),
        attr("redeploy_trigger", Type::String, "Any value, e.g. a timestamp or a commit; changing it forces a new deployment with nothing else changing. Kept in the service's tag `cxflow:redeploy`.")
            .optional()
            .check(Check::Len(1, 256))
            .check(Check::Matches(r"[\p{L}\p{N} _.:/=+@-]+", "letters, digits, spaces or _ . : / = + - @ (a tag value)")),
        attr("propagate_tags", Type::String, "Copy tags to tasks from the `SERVICE`, the `TASK_DEFINITION`, or `NONE`.").default(Value::string("SERVICE")).check(Check::OneOf(&["SERVICE", "TASK_DEFINITION", "NONE"])),
        attr("enable_ecs_managed_tags", Type::Bool, "Tag tasks with the cluster and service names (`aws:ecs:*`).").default(Value::Bool(true)),
        attr("desired_count_managed_by", Type::String, "`autoscaling` when an `autoscaling` block owns the count (`desired_count` is then the initial count only, and a count the scaler set is never reverted), else `terraform`.")
            .computed(),
        attr(
            "images",
            Type::map(Type::String),
            "Per container: the image the task definition runs (the resolved digest under `image_policy = \"digest\"`, the running image under `external`).",
        )
        .computed(),
        attr("service_arn", Type::String, "ARN of the ECS service.").computed(),
        attr("task_definition_arn", Type::String, "ARN of the current task definition revision.").computed(),
        attr("task_definition_revision", Type::Number, "Revision number of the current task definition.").computed(),
        attr("security_group_id", Type::String, "ID of the created security group (null when `network.security_group_ids` is set).").computed(),
        attr(
            "log_group_name",
            Type::String,
            "CloudWatch log group the containers log to. When unset, the service creates `/cxflow/<cluster>/<service>` (its name appears here); \
             when set to another name, that existing group is used and none is created (`log_retention_days` and `retain_logs` then do not apply). \
             Import sets it for a service whose containers log to a group it did not create.",
        )
        .optional()
        .computed()
        .check(Check::Matches(r"[\.\-_/#A-Za-z0-9]{1,512}", "a log group name: letters, digits and . - _ / #, at most 512 characters")),
        attr("target_group_arn", Type::String, "ARN of the created target group (null without `load_balancer` or `network_load_balancer`).").computed(),
        attr("listener_arn", Type::String, "ARN of the TCP listener created on the network load balancer (null without `network_load_balancer`).").computed(),
    ])
    .with_blocks(vec![
        NestedBlock::new("container", Nesting::List, container).min(1),
        NestedBlock::new("network", Nesting::Single, network).min(1).max(1),
        NestedBlock::new("load_balancer", Nesting::Single, load_balancer),
        NestedBlock::new("network_load_balancer", Nesting::Single, network_load_balancer),
        NestedBlock::new("service_connect", Nesting::Single, service_connect),
        NestedBlock::new("service_registry", Nesting::Single, service_registry),
        NestedBlock::new("deployment_circuit_breaker", Nesting::Single, circuit_breaker),
        NestedBlock::new("runtime_platform", Nesting::Single, runtime_platform),
        NestedBlock::new("volume", Nesting::List, volume).max(20),
        NestedBlock::new("log_router", Nesting::Single, log_router),
        NestedBlock::new("autoscaling", Nesting::Single, autoscaling),
        NestedBlock::new("capacity_provider_strategy", Nesting::List, capacity).max(6),
        NestedBlock::new("deployment", Nesting::Single, deployment),
    ])
    .describe(
        "An ECS service on Fargate with everything it needs: a CloudWatch log group, a least-privilege execution role, a task role, \
         a security group, optionally a target group and a listener rule on an existing application load balancer (or a TCP listener on an \
         existing network load balancer), the task definition and the service. \
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

/// Every memory size (MiB) Fargate allows with `cpu`, smallest first.
pub fn memory_options(cpu: i64) -> Option<Vec<i64>> {
    let &(_, min, max, step) = FARGATE_SIZES.iter().find(|s| s.0 == cpu)?;
    Some((min..=max).step_by(step as usize).filter(|m| memory_allowed(cpu, *m).is_ok()).collect())
}

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

fn percent_ok(v: &Value) -> Result<(), String> {
    match v {
        Value::Number(n) if n.as_f64().is_some_and(|f| f > 0.0 && f <= 100.0) => Ok(()),
        Value::Number(_) => Err("must be above 0 and at most 100".into()),
        _ => Ok(()),
    }
}

/// Application Auto Scaling schedules: `cron()` with six fields, `rate()`, `at()`.
fn schedule_ok(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    let inner = |p: &str| s.strip_prefix(p).and_then(|r| r.strip_suffix(')'));
    if let Some(c) = inner("cron(") {
        let n = c.split_whitespace().count();
        return if n == 6 { Ok(()) } else { Err(format!("a cron expression has six fields (minutes hours day-of-month month day-of-week year), not {n}")) };
    }
    if let Some(r) = inner("rate(") {
        let ok = regex::Regex::new(r"^\d+ (minute|minutes|hour|hours|day|days)$").map(|re| re.is_match(r)).unwrap_or(false);
        return if ok { Ok(()) } else { Err("rate() takes a number and minute(s), hour(s) or day(s)".into()) };
    }
    if let Some(a) = inner("at(") {
        let ok = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$").map(|re| re.is_match(a)).unwrap_or(false);
        return if ok { Ok(()) } else { Err("at() takes yyyy-mm-ddThh:mm:ss".into()) };
    }
    Err("must be cron(...), rate(...) or at(...)".into())
}

/// Autoscaling, capacity and deployment settings across attributes.
fn validate_service_settings(d: &mut Diags, c: &Value) {
    let a = c.get("autoscaling");
    if !a.is_null() {
        let p = Path::attr("autoscaling");
        if let (Some(min), Some(max)) = (a.get("min").as_i64(), a.get("max").as_i64()) {
            if min > max {
                d.attr_error(p.then_attr("min"), "min above max", format!("min ({min}) must be at most max ({max})."));
            }
            // Unset means the default, 1.
            let count = if c.get("desired_count").is_null() { Some(1) } else { c.get("desired_count").as_i64() };
            if let Some(n) = count {
                if n < min || n > max {
                    d.attr_error(
                        Path::attr("desired_count"),
                        "Initial count outside the bounds",
                        format!("desired_count ({n}) must lie within autoscaling min ({min}) and max ({max})."),
                    );
                }
            }
        }
        if !a.get("requests_per_target").is_null() && (c.get("load_balancer").is_null() || !c.get("load_balancer").get("target_group_arn").is_null()) {
            d.attr_error(
                p.then_attr("requests_per_target"),
                "No target group to count requests of",
                "requests_per_target scales on the target group this resource creates: add a load_balancer block with listener_arn (not target_group_arn).",
            );
        }
        let mut names = Vec::new();
        for (i, s) in a.get("scheduled_action").elements().unwrap_or_default().iter().enumerate() {
            let sp = p.then_attr("scheduled_action").index(i);
            if let Some(n) = s.get("name").as_str() {
                if names.contains(&n) {
                    d.attr_error(sp.then_attr("name"), "Duplicate scheduled action", format!("{n:?} is declared twice."));
                }
                names.push(n);
            }
            if let (Some(min), Some(max)) = (s.get("min").as_i64(), s.get("max").as_i64()) {
                if min > max {
                    d.attr_error(sp.then_attr("min"), "min above max", format!("min ({min}) must be at most max ({max})."));
                }
            }
            if s.get("min").is_null() && s.get("max").is_null() {
                d.attr_error(sp.clone(), "Scheduled action changes nothing", "Give min, max or both.");
            }
        }
    }
    let items = c.get("capacity_provider_strategy").elements().unwrap_or_default();
    if !items.is_empty() {
        let p = Path::attr("capacity_provider_strategy");
        let mut seen = Vec::new();
        let (mut bases, mut weight) = (0, 0);
        for (i, it) in items.iter().enumerate() {
            if let Some(cp) = it.get("capacity_provider").as_str() {
                if seen.contains(&cp) {
                    d.attr_error(p.index(i).then_attr("capacity_provider"), "Provider listed twice", format!("{cp} appears twice in the strategy."));
                }
                seen.push(cp);
            }
            if it.get("base").as_i64().unwrap_or(0) > 0 {
                bases += 1;
                if bases > 1 {
                    d.attr_error(p.index(i).then_attr("base"), "Several bases", "Only one capacity provider of a strategy may have a base.");
                }
            }
            weight += it.get("weight").as_i64().unwrap_or(1);
        }
        if weight == 0 {
            d.attr_error(p.index(0).then_attr("weight"), "No weight", "At least one capacity provider needs a weight above 0.");
        }
    }
    if c.get("health_check_grace_period").as_i64().is_some_and(|g| g > 0) && c.get("load_balancer").is_null() && c.get("network_load_balancer").is_null() {
        d.attr_error(
            Path::attr("health_check_grace_period"),
            "Grace period without a load balancer",
            "health_check_grace_period applies to load balancer health checks: add a load_balancer or network_load_balancer block, or remove it.",
        );
    }
}

/// An IAM policy document: JSON, `Version` 2012-10-17, a non-empty `Statement`.
fn policy_document_ok(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    let j: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("is not JSON ({e})"))?;
    if j["Version"] != "2012-10-17" {
        return Err("needs \"Version\": \"2012-10-17\"".into());
    }
    match &j["Statement"] {
        serde_json::Value::Array(a) if !a.is_empty() => Ok(()),
        serde_json::Value::Object(_) => Ok(()),
        _ => Err("needs a non-empty \"Statement\"".into()),
    }
}

/// Containers, their sizes, dependencies and mounts, and the task's volumes (no AWS calls).
fn validate_containers(d: &mut Diags, c: &Value) {
    let Some(cts) = c.get("container").elements() else { return };
    let task_cpu = c.get("cpu").as_i64();
    let task_mem = c.get("memory").as_i64();
    let names: BTreeMap<&str, usize> = cts.iter().enumerate().filter_map(|(i, ct)| ct.get("name").as_str().map(|n| (n, i))).collect();
    let volumes: Vec<&str> = c.get("volume").elements().unwrap_or_default().iter().filter_map(|v| v.get("name").as_str()).collect();
    let (mut cpu_sum, mut mem_sum) = (0i64, 0i64);
    let mut edges: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, ct) in cts.iter().enumerate() {
        let p = Path::attr("container").index(i);
        let mappings = ct.get("port_mapping").elements().unwrap_or_default();
        if !ct.get("port").is_null() && !mappings.is_empty() {
            d.attr_error(p.then_attr("port"), "Conflicting arguments", "Give either port (one TCP port) or port_mapping blocks, not both.");
        }
        let mut seen_ports = BTreeMap::new();
        for (j, m) in mappings.iter().enumerate() {
            if let (Some(port), Some(proto)) = (m.get("container_port").as_i64(), m.get("protocol").as_str().or(Some("tcp"))) {
                if seen_ports.insert((port, proto.to_string()), j).is_some() {
                    d.attr_error(p.then_attr("port_mapping").index(j).then_attr("container_port"), "Duplicate port mapping", format!("{port}/{proto} is mapped twice."));
                }
            }
            if m.get("protocol").as_str() == Some("udp") && !m.get("app_protocol").is_null() {
                d.attr_error(p.then_attr("port_mapping").index(j).then_attr("app_protocol"), "App protocol on UDP", "app_protocol applies to TCP mappings only.");
            }
        }
        let (mem, res) = (ct.get("memory").as_i64(), ct.get("memory_reservation").as_i64());
        if let (Some(m), Some(r)) = (mem, res) {
            if r > m {
                d.attr_error(p.then_attr("memory_reservation"), "Reservation above the limit", format!("memory_reservation ({r}) must be at most memory ({m})."));
            }
        }
        cpu_sum += ct.get("cpu").as_i64().unwrap_or(0);
        mem_sum += mem.or(res).unwrap_or(0);
        if ct.get("image_policy").as_str() == Some("digest") {
            if let Some(img) = ct.get("image").as_str() {
                if ecr_repository(img).is_none() || img.contains('@') {
                    d.attr_error(
                        p.then_attr("image_policy"),
                        "Digest pinning needs an ECR tag",
                        format!("image_policy = \"digest\" resolves a tag in ECR; {img:?} is not <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>."),
                    );
                }
            }
        }
        for (j, dep) in ct.get("depends_on").elements().unwrap_or_default().iter().enumerate() {
            let dp = p.then_attr("depends_on").index(j);
            let Some(target) = dep.get("container").as_str() else { continue };
            match names.get(target) {
                None => d.attr_error(dp.then_attr("container"), "Unknown container", format!("depends_on names {target:?}, which is not a container of this service.")),
                Some(&k) if k == i => {
                    d.attr_error(dp.then_attr("container"), "Container depends on itself", format!("depends_on names {target:?} itself; a container cannot wait for itself."))
                }
                Some(&k) => {
                    edges.entry(i).or_default().push(k);
                    let cond = dep.get("condition").as_str().unwrap_or_default();
                    let other = &cts[k];
                    if cond == "HEALTHY" && other.get("health_check").is_null() {
                        d.attr_error(dp.then_attr("condition"), "No health check to wait for", format!("HEALTHY needs a health_check on container {target:?}."));
                    }
                    if ["COMPLETE", "SUCCESS"].contains(&cond) && other.get("essential").as_bool().unwrap_or(true) {
                        d.attr_error(
                            dp.then_attr("condition"),
                            "Waiting for an essential container to exit",
                            format!("{cond} needs {target:?} to be essential = false: the task stops when an essential container exits."),
                        );
                    }
                }
            }
        }
        let mut ulimit_names = Vec::new();
        for (j, u) in ct.get("ulimit").elements().unwrap_or_default().iter().enumerate() {
            if let (Some(soft), Some(hard)) = (u.get("soft_limit").as_i64(), u.get("hard_limit").as_i64()) {
                if soft > hard {
                    d.attr_error(
                        p.then_attr("ulimit").index(j).then_attr("soft_limit"),
                        "Soft limit above hard limit",
                        format!("soft_limit ({soft}) must be at most hard_limit ({hard})."),
                    );
                }
            }
            if let Some(n) = u.get("name").as_str() {
                if ulimit_names.contains(&n) {
                    d.attr_error(p.then_attr("ulimit").index(j).then_attr("name"), "Duplicate ulimit", format!("{n} is limited twice."));
                }
                ulimit_names.push(n);
            }
        }
        for (j, m) in ct.get("mount_point").elements().unwrap_or_default().iter().enumerate() {
            if let Some(v) = m.get("source_volume").as_str() {
                if !volumes.contains(&v) {
                    d.attr_error(p.then_attr("mount_point").index(j).then_attr("source_volume"), "Unknown volume", format!("{v:?} is not a volume block of this service."));
                }
            }
        }
        if let Some(l) = ct.get("docker_labels").entries() {
            if l.keys().any(|k| k.starts_with("cxflow.")) {
                d.attr_error(p.then_attr("docker_labels"), "Reserved label", "Labels starting with cxflow. belong to the provider.");
            }
        }
        if ct.get("name").as_str() == Some(LOG_ROUTER) && !c.get("log_router").is_null() {
            d.attr_error(
                p.then_attr("name"),
                "Name taken by the log router",
                format!("With a log_router block the provider adds a container named {LOG_ROUTER}; rename this one."),
            );
        }
        for (k, v) in ct.get("log_configuration").get("secret_options").entries().into_iter().flatten() {
            if v.as_str().is_some_and(|a| !secret_arn_ok(a)) {
                d.attr_error(
                    p.then_attr("log_configuration").then_attr("secret_options").key(k),
                    "Invalid secret reference",
                    "Give the full ARN of one SSM parameter or Secrets Manager secret.",
                );
            }
        }
    }
    if let (Some(t), true) = (task_cpu, cpu_sum > 0) {
        if cpu_sum > t {
            d.attr_error(Path::attr("container"), "Containers need more CPU than the task has", format!("The containers reserve {cpu_sum} CPU units together; the task has {t}."));
        }
    }
    let router_mem = if c.get("log_router").is_null() { 0 } else { c.get("log_router").get("memory_reservation").as_i64().unwrap_or(50) };
    if let (Some(t), true) = (task_mem, mem_sum > 0) {
        if mem_sum + router_mem > t {
            d.attr_error(
                Path::attr("container"),
                "Containers need more memory than the task has",
                format!("The containers' memory limits come to {} MiB together; the task has {t}.", mem_sum + router_mem),
            );
        }
    }
    // depends_on must not loop.
    fn visit(n: usize, edges: &BTreeMap<usize, Vec<usize>>, state: &mut BTreeMap<usize, u8>) -> Option<usize> {
        state.insert(n, 1);
        for &m in edges.get(&n).into_iter().flatten() {
            match state.get(&m) {
                Some(1) => return Some(m),
                Some(_) => {}
                None => {
                    if let Some(x) = visit(m, edges, state) {
                        return Some(x);
                    }
                }
            }
        }
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for &n in edges.keys() {
        if !state.contains_key(&n) {
            if let Some(m) = visit(n, &edges, &mut state) {
                let name = cts[m].get("name").as_str().unwrap_or_default();
                d.attr_error(Path::attr("container").index(m).then_attr("depends_on"), "Dependency cycle", format!("Container {name:?} waits, through depends_on, for itself."));
                break;
            }
        }
    }
    let mut seen = BTreeMap::new();
    for (i, v) in c.get("volume").elements().unwrap_or_default().iter().enumerate() {
        let vp = Path::attr("volume").index(i);
        if let Some(n) = v.get("name").as_str() {
            if seen.insert(n.to_string(), i).is_some() {
                d.attr_error(vp.then_attr("name"), "Duplicate volume name", format!("Volume {n:?} is declared twice."));
            }
        }
        let efs = v.get("efs");
        if !efs.is_null() {
            let tls = efs.get("transit_encryption").as_bool().unwrap_or(true);
            if !tls && (efs.get("iam_authorization").as_bool() == Some(true) || !efs.get("access_point_id").is_null()) {
                d.attr_error(
                    vp.then_attr("efs").then_attr("transit_encryption"),
                    "Transit encryption required",
                    "IAM authorization and access points need transit_encryption = true.",
                );
            }
            if !efs.get("access_point_id").is_null() && efs.get("root_directory").as_str().is_some_and(|r| r != "/") {
                d.attr_error(
                    vp.then_attr("efs").then_attr("root_directory"),
                    "Root directory with an access point",
                    "With an access point the access point sets the directory; leave root_directory unset or /.",
                );
            }
        }
    }
    let os = c.get("runtime_platform").get("operating_system_family").as_str();
    if os.is_some_and(|o| o.starts_with("WINDOWS")) && task_cpu.is_some_and(|cpu| cpu < 1024) {
        d.attr_error(Path::attr("runtime_platform").then_attr("operating_system_family"), "Windows needs more CPU", "Fargate runs Windows tasks with cpu of at least 1024.");
    }
    let supplied_task_role = !c.get("task_role_arn").is_null();
    for a in ["task_role_policy_arns", "task_role_policy_json"] {
        if supplied_task_role && !c.get(a).is_null() {
            d.attr_error(
                Path::attr(a),
                "Policy for a role of your own",
                format!("{a} applies to the task role this resource creates; with task_role_arn set, attach policies to that role instead."),
            );
        }
    }
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    validate_containers(&mut d, c);
    validate_service_settings(&mut d, c);
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
            // A port: the simple `port`, or a TCP port_mapping (what a load balancer can send to).
            let tcp_mapping = ct.get("port_mapping").elements().unwrap_or_default().iter().any(|m| m.get("protocol").as_str().unwrap_or("tcp") == "tcp");
            if !ct.get("port").is_null() || tcp_mapping {
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

    validate_service_connect(&mut d, c);
    let reg = c.get("service_registry");
    if !reg.is_null() {
        let rp = Path::attr("service_registry");
        let (arn, ns) = (reg.get("registry_arn"), reg.get("namespace_id"));
        if arn.is_wholly_known() && ns.is_wholly_known() && arn.is_null() == ns.is_null() {
            d.attr_error(
                rp.then_attr("registry_arn"),
                "Which Cloud Map service?",
                "Set exactly one of registry_arn (an existing Cloud Map service) and namespace_id (create one).",
            );
        }
        if !arn.is_null() && (!reg.get("name").is_null() || !reg.get("dns_record_type").is_null()) {
            d.attr_error(
                rp.then_attr("name"),
                "Settings of a service you did not create",
                "name and dns_record_type describe the Cloud Map service created with namespace_id; an existing registry_arn keeps its own.",
            );
        }
        if reg.get("dns_record_type").as_str() == Some("SRV") && containers.is_wholly_known() && ported.is_empty() {
            d.attr_error(rp.then_attr("dns_record_type"), "SRV records need a port", "SRV records name a port: give a container a port, or use A records.");
        }
    }

    validate_network_load_balancer(&mut d, c);

    // load balancer
    let lb = c.get("load_balancer");
    let existing_tg = !lb.get("target_group_arn").is_null();
    if !lb.is_null() {
        let lp = Path::attr("load_balancer");
        if existing_tg {
            for k in ["listener_arn", "priority", "host_header", "path_pattern", "host_headers", "path_patterns", "source_ips", "http_header", "health_check", "stickiness"] {
                let set = match lb.get(k) {
                    Value::Null => false,
                    Value::List(v) => !v.is_empty(),
                    _ => true,
                };
                if set {
                    d.attr_error(
                        lp.then_attr(k),
                        "Not used with target_group_arn",
                        format!("{k} configures the target group and listener rule the service creates; with target_group_arn it uses an existing target group and creates neither. Remove {k}, or target_group_arn."),
                    );
                }
            }
        } else {
            for k in ["listener_arn", "priority"] {
                if lb.get(k).is_null() {
                    d.attr_error(
                        lp.then_attr(k),
                        format!("Missing {k}"),
                        format!("load_balancer needs {k} (the listener rule the service creates), or target_group_arn (an existing target group)."),
                    );
                }
            }
        }
    }
    if !lb.is_null() && !existing_tg {
        let lp = Path::attr("load_balancer");
        let count = |k: &str| match lb.get(k) {
            Value::Null => Some(0),
            Value::String(_) => Some(1),
            Value::List(v) => Some(v.len()),
            _ => None,
        };
        let headers = match lb.get("http_header") {
            Value::List(hs) => hs.iter().map(|h| if let Value::List(v) = h.get("values") { Some(v.len()) } else { None }).sum::<Option<usize>>(),
            Value::Null => Some(0),
            _ => None,
        };
        let counts: Option<Vec<usize>> = ["host_header", "path_pattern", "host_headers", "path_patterns", "source_ips"].iter().map(|k| count(k)).chain([headers]).collect();
        if let Some(counts) = counts {
            let total: usize = counts.iter().sum();
            if total == 0 {
                d.attr_error(
                    lp.then_attr("host_header"),
                    "Listener rule needs a condition",
                    "Set host_header, path_pattern, host_headers, path_patterns, source_ips or an http_header block so the listener rule knows which requests to send to this service.",
                );
            } else if total > MAX_RULE_VALUES {
                d.attr_error(
                    lp.clone(),
                    "Too many listener rule conditions",
                    format!(
                        "The load_balancer conditions have {total} values; a listener rule matches at most {MAX_RULE_VALUES} in all (host names, paths, header values, source IPs)."
                    ),
                );
            }
        }
        let hc = lb.get("health_check");
        if let (Some(t), Some(i)) = (hc.get("timeout").as_i64(), hc.get("interval").as_i64()) {
            if t >= i {
                d.attr_error(lp.then_attr("health_check").then_attr("timeout"), "Health check timeout too long", format!("timeout ({t} s) must be less than interval ({i} s)."));
            }
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

/// `network_load_balancer`: not with `load_balancer`; its container and port exist (no AWS calls).
fn validate_network_load_balancer(d: &mut Diags, c: &Value) {
    let nlb = c.get("network_load_balancer");
    if nlb.is_null() {
        return;
    }
    let np = Path::attr("network_load_balancer");
    if !c.get("load_balancer").is_null() {
        d.attr_error(
            np.clone(),
            "Conflicting load balancer blocks",
            "Give either load_balancer (a listener rule on an ALB listener) or network_load_balancer (a TCP listener on an NLB), not both.",
        );
    }
    let hc = nlb.get("health_check");
    if let (Some(t), Some(i)) = (hc.get("timeout").as_i64(), hc.get("interval").as_i64()) {
        if t > i {
            d.attr_error(np.then_attr("health_check").then_attr("timeout"), "Health check timeout too long", format!("timeout ({t} s) must be at most interval ({i} s)."));
        }
    }
    let containers = c.get("container");
    if !containers.is_wholly_known() {
        return;
    }
    // Container name → its TCP ports (the simple `port`, or TCP port_mapping blocks).
    let ports: Vec<(String, Vec<i64>)> = containers
        .elements()
        .unwrap_or_default()
        .iter()
        .filter_map(|ct| {
            let mappings = ct.get("port_mapping").elements().unwrap_or_default();
            let tcp: Vec<i64> = if mappings.is_empty() {
                ct.get("port").as_i64().into_iter().collect()
            } else {
                mappings.iter().filter(|m| m.get("protocol").as_str().unwrap_or("tcp") == "tcp").filter_map(|m| m.get("container_port").as_i64()).collect()
            };
            Some((ct.get("name").as_str()?.to_string(), tcp))
        })
        .collect();
    let (name, port) = (nlb.get("container_name"), nlb.get("container_port"));
    match (name.as_str(), port.as_i64()) {
        (Some(n), p) => match ports.iter().find(|(cn, _)| cn == n) {
            Some((_, tcp)) if tcp.is_empty() => {
                d.attr_error(np.then_attr("container_name"), "Unknown load balancer container", format!("container_name must name a container with a port; {n:?} has none."))
            }
            None => d.attr_error(np.then_attr("container_name"), "Unknown load balancer container", format!("container_name must name a container with a port; {n:?} is not one.")),
            Some((_, tcp)) => {
                if let Some(p) = p.filter(|p| !tcp.contains(p)) {
                    d.attr_error(np.then_attr("container_port"), "Not a port of the container", format!("container_port {p} is not a TCP port of container {n:?}."));
                }
            }
        },
        (None, Some(p)) if name.is_null() && !ports.iter().any(|(_, tcp)| tcp.contains(&p)) => {
            d.attr_error(np.then_attr("container_port"), "Not a port of any container", format!("container_port {p} is not a TCP port of any container of this service."))
        }
        (None, None) if name.is_null() && port.is_null() && ports.iter().all(|(_, tcp)| tcp.is_empty()) => {
            d.attr_error(np.clone(), "No container to send traffic to", "A network load balancer needs a container with a TCP port.")
        }
        _ => {}
    }
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
    /// A TCP target group's name: the protocol is part of the seed too, so
    /// moving a service between an ALB and an NLB makes a group under a new name.
    pub fn tcp_target_group(&self, port: i64) -> String {
        names::bounded(&self.service, &format!("{}:{port}:tcp", self.seed), "", 32, |c| c.is_ascii_alphanumeric())
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
    /// Customer managed keys the secrets are encrypted with.
    kms_keys: Vec<String>,
    /// The log group the containers write to.
    log_group: String,
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
        let mut n = ExecNeeds { log_group: cfg.log_group().0, ..Default::default() };
        for c in &cfg.container {
            let log_secrets = c.log_configuration.iter().flat_map(|l| l.secret_options.iter().flat_map(|s| s.values()));
            for arn in c.secrets.iter().flat_map(|s| s.values()).chain(log_secrets) {
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
        if let Some(r) = cfg.log_router.as_ref().and_then(|r| r.image.as_deref()).and_then(ecr_repository) {
            n.repositories.push(r);
        }
        n.kms_keys = sorted(&cfg.secrets_kms_key_arns.clone().unwrap_or_default());
        n.parameters = sorted(&n.parameters);
        n.secrets = sorted(&n.secrets);
        n.repositories = sorted(&n.repositories);
        n
    }
}

fn execution_policy(c: &Common, n: &ExecNeeds) -> serde_json::Value {
    let (p, region, account) = (c.partition(), &c.region, &c.account);
    let mut st = vec![json!({
        "Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": format!("arn:{p}:logs:{region}:{account}:log-group:{}:*", n.log_group)
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
    // AWS managed keys need no grant: only the customer keys named may be used, and only through those services.
    if !via.is_empty() && !n.kms_keys.is_empty() {
        st.push(json!({
            "Sid": "DecryptViaService", "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": n.kms_keys, "Condition": {"StringEquals": {"kms:ViaService": via}}
        }));
    }
    let _ = account;
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

/// EFS client access for volumes with IAM authorization: mount, and write
/// unless every mount of that volume is read-only; limited to the access point when one is named.
fn efs_policy(c: &Common, cfg: &FargateService) -> Option<serde_json::Value> {
    let mut st = Vec::new();
    for v in &cfg.volume {
        let Some(e) = v.efs.as_ref().filter(|e| e.iam_authorization.unwrap_or(false)) else { continue };
        let mounts: Vec<_> = cfg.container.iter().flat_map(|ct| ct.mount_point.iter()).filter(|m| m.source_volume == v.name).collect();
        let mut actions = vec!["elasticfilesystem:ClientMount"];
        if mounts.iter().any(|m| !m.read_only.unwrap_or(false)) {
            actions.push("elasticfilesystem:ClientWrite");
        }
        let mut s = json!({
            "Sid": format!("Efs{}", v.name.chars().filter(char::is_ascii_alphanumeric).collect::<String>()),
            "Effect": "Allow", "Action": actions,
            "Resource": format!("arn:{}:elasticfilesystem:{}:{}:file-system/{}", c.partition(), c.region, c.account, e.file_system_id),
        });
        if let Some(ap) = &e.access_point_id {
            s["Condition"] =
                json!({"ArnEquals": {"elasticfilesystem:AccessPointArn": format!("arn:{}:elasticfilesystem:{}:{}:access-point/{ap}", c.partition(), c.region, c.account)}});
        }
        st.push(s);
    }
    (!st.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": st}))
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
    let (log_group, own_log_group) = cfg.log_group();
    let lb_port = lb_target.as_ref().map(|t| t.1).unwrap_or(0);
    let lb = cfg.load_balancer.as_ref();
    let nlb = cfg.network_load_balancer.as_ref();
    let reg = cfg.service_registry.as_ref();
    let health = match nlb {
        Some(n) => n.health_check.clone().unwrap_or_default().effective(),
        None => lb.and_then(|l| l.health_check.clone()).unwrap_or_default().effective(),
    };
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
    if let Some(doc) = cfg.task_role_policy_json.as_deref().and_then(|j| serde_json::from_str(j).ok()) {
        task_inline.insert(TASK_USER_POLICY_NAME.to_string(), doc);
    }
    if let Some(doc) = efs_policy(&c, cfg) {
        task_inline.insert(TASK_EFS_POLICY_NAME.to_string(), doc);
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
            name: log_group.clone(),
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
            inline: BTreeMap::from([(EXEC_POLICY_NAME.to_string(), execution_policy(&c, &ExecNeeds::of(cfg)))]),
            wanted: supplied_exec.is_none(),
        }),
        Box::new(RoleNode {
            c: c.clone(),
            key: "task_role".into(),
            name: names.task_role(),
            path: "/".into(),
            description: description.clone(),
            trust,
            managed: sorted(&cfg.task_role_policy_arns.clone().unwrap_or_default()),
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
            name: if nlb.is_some() { names.tcp_target_group(lb_port) } else { names.target_group(lb_port) },
            port: lb_port,
            protocol: if nlb.is_some() { "TCP".into() } else { DEFAULT_TG_PROTOCOL.into() },
            vpc: VpcOf::Subnet(subnet),
            health,
            attributes: nlb.map(NetworkLoadBalancer::attributes).or_else(|| lb.map(LoadBalancer::attributes)).unwrap_or_default(),
            wanted: lb.is_some_and(|l| l.target_group_arn.is_none()) || nlb.is_some(),
        }),
        Box::new(NlbListenerNode {
            c: c.clone(),
            key: "nlb_listener".into(),
            load_balancer: nlb.map(|n| n.load_balancer_arn.clone()).unwrap_or_default(),
            port: nlb.map(|n| n.port).unwrap_or(0),
            target_group: Ref::dep("target_group"),
            wanted: nlb.is_some(),
        }),
        Box::new(ListenerRuleNode {
            c: c.clone(),
            key: "listener_rule".into(),
            listener: Ref::Lit(lb.and_then(|l| l.listener_arn.clone()).unwrap_or_default()),
            target_group: Ref::dep("target_group"),
            priority: lb.and_then(|l| l.priority).unwrap_or(0),
            conditions: lb.map(LoadBalancer::conditions).unwrap_or_default(),
            wanted: lb.is_some_and(|l| l.target_group_arn.is_none()),
        }),
        Box::new(TaskDefinitionNode {
            c: c.clone(),
            key: "task_definition".into(),
            family: names.family(),
            cpu: cfg.cpu,
            memory: cfg.memory,
            containers: cfg.effective_containers(),
            execution_role: role_ref(&supplied_exec, "execution_role"),
            task_role: role_ref(&supplied_task, "task_role"),
            log_group: if own_log_group { Ref::dep("log_group") } else { Ref::Lit(log_group.clone()) },
            service_connect: cfg.service_connect.is_some(),
            runtime_platform: cfg.runtime_platform.clone(),
            ephemeral_storage_gib: cfg.ephemeral_storage_gib,
            volumes: cfg.volume.clone(),
            adopts_foreign: cfg.ci_owns_images(),
        }),
        Box::new(CloudMapServiceNode {
            c: c.clone(),
            key: "registry".into(),
            name: reg.and_then(|r| r.name.clone()).unwrap_or_else(|| cfg.name.clone()),
            namespace_id: reg.and_then(|r| r.namespace_id.clone()).unwrap_or_default(),
            dns: reg.and_then(|r| r.dns_record_type.clone().map(|t| (t, r.dns_ttl.unwrap_or(10)))),
            description,
            wanted: reg.is_some_and(|r| r.namespace_id.is_some()),
        }),
        Box::new(ServiceNode {
            c: c.clone(),
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
            service_connect: cfg.service_connect_spec(&log_group, &c.region),
            load_balancer: lb_target.map(|(container, port)| LbTarget {
                target_group: lb.and_then(|l| l.target_group_arn.clone()).map(Ref::Lit).unwrap_or_else(|| Ref::dep("target_group")),
                container,
                port,
            }),
            registry: reg.map(|r| Registry {
                arn: r.registry_arn.clone().map(Ref::Lit).unwrap_or_else(|| Ref::dep("registry")),
                container: (r.dns_record_type.as_deref() == Some("SRV"))
                    .then(|| cfg.container.iter().find_map(|ct| ct.first_tcp_port().map(|(_, p)| (ct.name.clone(), p))))
                    .flatten(),
            }),
            wait: cfg.wait_for_steady_state.unwrap_or(true),
            // A target group must be attached to a load balancer (by the rule or the listener) before a service can use it.
            after: if lb.is_some_and(|l| l.target_group_arn.is_none()) {
                vec!["listener_rule".to_string()]
            } else if nlb.is_some() {
                vec!["nlb_listener".to_string()]
            } else {
                Vec::new()
            },
            extras: service_extras(cfg),
        }),
    ];
    let mut nodes: Vec<Box<dyn Node<Aws>>> =
        nodes.into_iter().map(|n| if n.key() == "log_group" && !own_log_group { Box::new(Unwanted(n)) as Box<dyn Node<Aws>> } else { n }).collect();
    nodes.extend(autoscaling_nodes(cfg, &c, &names));
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

fn service_extras(cfg: &FargateService) -> crate::children::ecs::ServiceExtras {
    let d = cfg.deployment.clone().unwrap_or_default();
    crate::children::ecs::ServiceExtras {
        scaled: cfg.autoscaling.is_some(),
        capacity: cfg.capacity_provider_strategy.iter().map(|i| (i.capacity_provider.clone(), i.weight.unwrap_or(1), i.base.unwrap_or(0))).collect(),
        platform_version: cfg.platform_version.clone().unwrap_or_else(|| "LATEST".into()),
        minimum_healthy_percent: d.minimum_healthy_percent.unwrap_or(100),
        maximum_percent: d.maximum_percent.unwrap_or(200),
        alarms: d.alarms.map(|a| (a.names, a.rollback.unwrap_or(true))),
        health_check_grace_period: cfg.health_check_grace_period.unwrap_or(0),
        propagate_tags: cfg.propagate_tags.clone().unwrap_or_else(|| "SERVICE".into()),
        managed_tags: cfg.enable_ecs_managed_tags.unwrap_or(true),
        redeploy: cfg.redeploy_trigger.clone(),
    }
}

/// The scalable target and its target tracking policies are always in the
/// graph (unwanted without autoscaling), so removing the block deletes them
/// and import can find them; scheduled actions are keyed by name.
fn autoscaling_nodes(cfg: &FargateService, c: &Arc<Common>, names: &Names) -> Vec<Box<dyn Node<Aws>>> {
    use crate::children::autoscaling::{Metric, ScalableTargetNode, ScheduledActionNode, TargetTrackingNode, resource_id};
    let a = cfg.autoscaling.clone();
    let on = a.is_some();
    let a = a.unwrap_or_default();
    let rid = resource_id(&names.cluster, &names.service);
    let mut out: Vec<Box<dyn Node<Aws>>> =
        vec![Box::new(ScalableTargetNode { c: c.clone(), key: "scalable_target".into(), resource_id: rid.clone(), service: "service".into(), min: a.min, max: a.max, wanted: on })];
    let lb = cfg
        .load_balancer
        .as_ref()
        .and_then(|l| l.listener_arn.as_deref()?.split_once(":listener/").map(|(_, rest)| rest.rsplit_once('/').map(|(lb, _)| lb.to_string()).unwrap_or_default()));
    let policies = [
        ("scaling_cpu", "cpu", Metric::Cpu, a.cpu_target),
        ("scaling_memory", "memory", Metric::Memory, a.memory_target),
        ("scaling_requests", "requests", Metric::AlbRequests { load_balancer: lb.unwrap_or_default(), target_group: Ref::dep("target_group") }, a.requests_per_target),
    ];
    for (key, suffix, metric, target) in policies {
        out.push(Box::new(TargetTrackingNode {
            c: c.clone(),
            key: key.into(),
            name: format!("{}-{suffix}", names.service),
            resource_id: rid.clone(),
            target_key: "scalable_target".into(),
            metric,
            target_value: target.unwrap_or(0.0),
            scale_in_cooldown: a.scale_in_cooldown.unwrap_or(300),
            scale_out_cooldown: a.scale_out_cooldown.unwrap_or(300),
            wanted: on && target.is_some(),
        }));
    }
    for s in &a.scheduled_action {
        out.push(Box::new(ScheduledActionNode {
            c: c.clone(),
            key: format!("schedule_{}", s.name.to_ascii_lowercase().replace('-', "_")),
            name: s.name.clone(),
            resource_id: rid.clone(),
            target_key: "scalable_target".into(),
            schedule: s.schedule.clone(),
            timezone: s.timezone.clone(),
            min: s.min,
            max: s.max,
            wanted: on,
        }));
    }
    out
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

// ------------------------------------------------------------------ images at plan time

/// Plan's `images`: per container the configured image, or under
/// `image_policy = "digest"` the digest its ECR tag resolves to now (one
/// `ecr:DescribeImages` per such container, concurrently).
async fn plan_images(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
    let mut d = Diags::new();
    let cfg: FargateService = match crate::framework::typed::from_value(&p.known_or_null()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let prior_images = prior.get("images").entries().cloned().unwrap_or_default();
    // Under `external` the images are the ones the current revision runs (CI's, once refresh followed it).
    let running: BTreeMap<String, String> = match prior.get("images").entries() {
        Some(m) if cfg.ci_owns_images() => m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect(),
        _ => BTreeMap::new(),
    };
    let lookups = cfg.container.iter().enumerate().map(|(i, c)| async move {
        if c.image_policy.as_deref() != Some("digest") {
            return (i, Ok(None));
        }
        let Some((region, account, repo)) = ecr_repository(&c.image) else { return (i, Ok(None)) };
        if region != aws.region {
            return (i, Err(format!("{} is in {region}; digests are resolved in the provider's region {}", c.image, aws.region)));
        }
        let tag = c.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        let r = crate::children::platform::image_digest(aws, Some(&account), &repo, tag).await;
        (i, r.map_err(|e| e.to_string()).map(|dg| dg.map(|dg| format!("{}@{dg}", c.image.rsplit_once(':').map(|(r, _)| r).unwrap_or(&c.image)))))
    });
    let mut images = BTreeMap::new();
    for (i, r) in futures::future::join_all(lookups).await {
        let c = &cfg.container[i];
        let at = Path::attr("container").index(i).then_attr("image");
        if c.image_policy.as_deref() == Some("external") {
            images.insert(c.name.clone(), Value::string(running.get(&c.name).cloned().unwrap_or_else(|| c.image.clone())));
            continue;
        }
        let image = match r {
            Ok(Some(pinned)) => pinned,
            Ok(None) if c.image_policy.as_deref() != Some("digest") => c.image.clone(),
            Ok(None) => match prior_images.get(&c.name).and_then(Value::as_str).filter(|i| i.contains("@sha256:")) {
                // The tag went away (a lifecycle rule, a manual delete): the last pin stays.
                Some(kept)
                    if prior.get("container").elements().and_then(|cs| cs.iter().find(|x| x.get("name").as_str() == Some(&c.name))).map(|x| x.get("image").as_str())
                        == Some(Some(&c.image)) =>
                {
                    d.push(Diagnostic::warning("Image tag not found", format!("{} does not exist in ECR any more; container {} keeps running {kept}.", c.image, c.name)).at(at));
                    kept.to_string()
                }
                _ => {
                    d.push(
                        Diagnostic::warning(
                            "Image tag not pushed yet",
                            format!("{} does not exist in ECR yet: the task definition names the tag until a plan after the push pins its digest.", c.image),
                        )
                        .at(at),
                    );
                    c.image.clone()
                }
            },
            Err(e) => {
                d.push(Diagnostic::error("Could not resolve the image tag", format!("{e}. Grant ecr:DescribeImages on the repository, or use image_policy = \"config\".")).at(at));
                continue;
            }
        };
        images.insert(c.name.clone(), Value::string(image));
    }
    p.set_attr("images", Value::Map(images));
    d
}

/// For import: the scheduled actions of a scalable target, which no child observes until the configuration names them.
async fn scheduled_actions(aws: &Aws, resource_id: &str) -> Result<Vec<ScheduledAction>, Diags> {
    use aws_sdk_applicationautoscaling::types as aas;
    let out = aws
        .autoscaling()
        .describe_scheduled_actions()
        .service_namespace(aas::ServiceNamespace::Ecs)
        .resource_id(resource_id)
        .scalable_dimension(aas::ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .map_err(|e| Diags::from(Diagnostic::error("Import failed", crate::aws::aws_err("application-autoscaling:DescribeScheduledActions", e).to_string())))?;
    Ok(out
        .scheduled_actions()
        .iter()
        .map(|a| ScheduledAction {
            name: a.scheduled_action_name().to_string(),
            schedule: a.schedule().to_string(),
            timezone: a.timezone().filter(|t| *t != "UTC").map(str::to_string),
            min: a.scalable_target_action().and_then(|t| t.min_capacity()).map(i64::from),
            max: a.scalable_target_action().and_then(|t| t.max_capacity()).map(i64::from),
        })
        .collect())
}

/// Container → image of a task definition revision.
async fn running_images(aws: &Aws, td: &str) -> Result<BTreeMap<String, String>, Diags> {
    let o = aws
        .ecs()
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .map_err(|e| Diags::from(Diagnostic::error("Could not read the running task definition", crate::aws::aws_err("ecs:DescribeTaskDefinition", e).to_string())))?;
    Ok(o.task_definition().map(|t| t.container_definitions().iter().filter_map(|c| Some((c.name()?.to_string(), c.image()?.to_string()))).collect()).unwrap_or_default())
}

/// The network load balancer's default container and port: the container
/// with `container_port`, else the first with a TCP port; that container's
/// first TCP port. Unknown while the containers are.
fn nlb_plan_defaults(p: &mut Value) {
    if !matches!(p.get("network_load_balancer"), Value::Object(_)) {
        return;
    }
    let containers = p.get("container").clone();
    let nlb = p.get("network_load_balancer").clone();
    // Per container: its name and TCP ports (None while unknown).
    let ports: Option<Vec<(Value, Option<Vec<i64>>)>> = containers.elements().map(|cs| {
        cs.iter()
            .map(|ct| {
                let mappings = ct.get("port_mapping");
                let tcp = if !mappings.is_wholly_known() || !ct.get("port").is_wholly_known() {
                    None
                } else if mappings.elements().is_some_and(|m| !m.is_empty()) {
                    Some(
                        mappings
                            .elements()
                            .unwrap_or_default()
                            .iter()
                            .filter(|m| m.get("protocol").as_str().unwrap_or("tcp") == "tcp")
                            .filter_map(|m| m.get("container_port").as_i64())
                            .collect(),
                    )
                } else {
                    Some(ct.get("port").as_i64().into_iter().collect())
                };
                (ct.get("name").clone(), tcp)
            })
            .collect()
    });
    let (name, port) = (nlb.get("container_name").clone(), nlb.get("container_port").clone());
    let chosen = match (&ports, &name, port.as_i64()) {
        (None, _, _) => None,
        (Some(ps), Value::String(n), _) => ps.iter().find(|(cn, _)| cn.as_str() == Some(n.as_str())),
        (Some(ps), Value::Null, want) if !port.is_unknown() => {
            let mut found = None;
            for entry in ps {
                match &entry.1 {
                    None => break,
                    Some(tcp) if want.map_or(!tcp.is_empty(), |w| tcp.contains(&w)) => {
                        found = Some(entry);
                        break;
                    }
                    _ => {}
                }
            }
            found
        }
        _ => None,
    };
    let Some(n) = p.get_mut("network_load_balancer") else { return };
    if name.is_null() {
        n.set_attr("container_name", chosen.map(|c| c.0.clone()).unwrap_or(Value::Unknown));
    }
    if port.is_null() {
        let first = chosen.and_then(|c| c.1.as_ref()).map(|tcp| tcp.first().map(|p| Value::int(*p)).unwrap_or(Value::Null));
        n.set_attr("container_port", first.unwrap_or(Value::Unknown));
    }
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
    const CONFIG_OR_CHILD: &'static [(&'static str, &'static str)] = &[("execution_role_arn", "execution_role"), ("task_role_arn", "task_role"), ("log_group_name", "log_group")];

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
        nlb_plan_defaults(p);
    }
    fn derived(p: &mut Value) {
        let names = match (p.get("cluster").as_str(), p.get("name").as_str()) {
            (Some(c), Some(n)) => Some(Names::new(c, n)),
            _ => None,
        };
        if p.get("log_group_name").is_null() {
            p.set_attr("log_group_name", names.as_ref().map(|n| Value::string(n.log_group())).unwrap_or(Value::Unknown));
        }
        let by = match p.get("autoscaling") {
            Value::Unknown => Value::Unknown,
            Value::Null => Value::string("terraform"),
            _ => Value::string("autoscaling"),
        };
        p.set_attr("desired_count_managed_by", by);
    }
    async fn plan_lookups(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
        plan_images(aws, p, prior).await
    }
    fn owner_name(s: &FargateService) -> String {
        Names::new(&s.cluster, &s.name).id()
    }
    fn id(s: &FargateService) -> String {
        Names::new(&s.cluster, &s.name).id()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("cluster", "The ECS cluster's name."), ("name", "The service's name.")]
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
        let existing = p.get("load_balancer").get("target_group_arn").clone();
        p.set_attr("target_group_arn", if existing.is_null() { pc.identity("target_group") } else { existing });
        p.set_attr("listener_arn", pc.identity("nlb_listener"));
    }
    fn outputs(st: &mut Value, cfg: &FargateService, kids: &Kids<'_>) {
        let names = Names::new(&cfg.cluster, &cfg.name);
        let own_group = names.log_group();
        let existing = st.get("log_group_name").as_str().filter(|g| *g != own_group).map(str::to_string);
        st.set_attr("log_group_name", opt(existing.or_else(|| kids.id("log_group"))));
        st.set_attr("service_arn", opt(kids.id("service")));
        let td = kids.id("task_definition");
        st.set_attr("task_definition_revision", td.as_deref().and_then(revision_of).map(Value::int).unwrap_or(Value::Null));
        st.set_attr("task_definition_arn", opt(td));
        st.set_attr("security_group_id", opt(kids.id("security_group")));
        let existing = cfg.load_balancer.as_ref().and_then(|l| l.target_group_arn.clone());
        st.set_attr("target_group_arn", opt(existing.or_else(|| kids.id("target_group"))));
        st.set_attr("listener_arn", opt(kids.id("nlb_listener")));
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
    async fn refresh_relinks(aws: &Aws, cfg: &FargateService, kids: &Kids<'_>) -> Result<Relinks, Diags> {
        // CI deployed a revision of the family: with images left to CI, that
        // revision is the service's task definition now, and its images are the ones running.
        let family = format!(":task-definition/{}:", Names::new(&cfg.cluster, &cfg.name).family());
        let Some(td) = kids.str_field("service", "task_definition").filter(|td| cfg.ci_owns_images() && td.starts_with("arn:") && td.contains(&family)) else {
            return Ok(Relinks::default());
        };
        let running = running_images(aws, &td).await?;
        let mut images = cfg.images.clone().unwrap_or_default();
        for c in cfg.container.iter().filter(|c| c.image_policy.as_deref() == Some("external")) {
            if let Some(i) = running.get(&c.name) {
                images.insert(c.name.clone(), i.clone());
            }
        }
        Ok(Relinks {
            identities: BTreeMap::from([("task_definition".to_string(), Identity::new(&td))]),
            attributes: vec![("images".to_string(), Value::Map(images.into_iter().map(|(k, v)| (k, Value::string(v))).collect()))],
        })
    }
    fn adopts_untagged(key: &str) -> bool {
        // The service the import ID names, made by hand, and the revision of its own family it runs.
        matches!(key, "service" | "task_definition")
    }
    fn import_identities(cfg: &FargateService, kids: &Kids<'_>) -> BTreeMap<String, Identity> {
        // The revision the service runs, not the family's latest; another family's is not this service's.
        let family = format!(":task-definition/{}:", Names::new(&cfg.cluster, &cfg.name).family());
        let mut hints: BTreeMap<String, Identity> = kids
            .str_field("service", "task_definition")
            .filter(|t| t.starts_with("arn:") && t.contains(&family))
            .map(|t| BTreeMap::from([("task_definition".to_string(), Identity::new(t))]))
            .unwrap_or_default();
        // Autoscaling children have names that follow from the service's.
        if kids.id("service").is_some() {
            let n = Names::new(&cfg.cluster, &cfg.name);
            hints.insert("scalable_target".into(), Identity::new(crate::children::autoscaling::resource_id(&n.cluster, &n.service)));
            for (key, suffix) in [("scaling_cpu", "cpu"), ("scaling_memory", "memory"), ("scaling_requests", "requests")] {
                if kids.id("scalable_target").is_some() {
                    hints.insert(key.into(), Identity::new(format!("{}-{suffix}", n.service)));
                }
            }
        }
        hints
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
            cfg.service_connect = svc.get("service_connect").filter(|sc| sc.is_object()).map(|sc| service_connect_of(&cfg, sc));
            if let Some(arn) = svc["service_registries"].get(0).and_then(|r| r["arn"].as_str()) {
                // A Cloud Map service this resource made becomes its namespace_id again (found by name, adopted by its tags).
                let owner = crate::engine::Owner::new(TYPE_NAME, &format!("{}/{}", cluster_name(&cfg.cluster), cfg.name));
                let seen = crate::children::discovery::describe_service(aws, arn).await.map_err(|e| Diags::from(Diagnostic::error("Import failed", e.to_string())))?;
                cfg.service_registry = Some(match seen {
                    Some((ns, name, dns, tags)) if tags.get(crate::engine::OWNER_TAG).map(String::as_str) == Some(owner.tag_value()) => ServiceRegistry {
                        namespace_id: Some(ns),
                        name: Some(name),
                        dns_ttl: Some(dns.as_ref().map(|d| d.1).unwrap_or(10)),
                        dns_record_type: dns.map(|d| d.0),
                        registry_arn: None,
                    },
                    _ => ServiceRegistry { registry_arn: Some(arn.to_string()), dns_ttl: Some(10), ..Default::default() },
                });
            }
            if let Some(lb) = svc.get("load_balancers").and_then(|l| l.get(0)).cloned() {
                // A TCP target group is behind a network load balancer's listener.
                let (tcp, lbs) = match (kids.observed("target_group"), lb["target_group"].as_str()) {
                    (Some(tg), _) => (tg.get("protocol").and_then(|p| p.as_str()) == Some("TCP"), Vec::new()),
                    (None, Some(arn)) if arn.starts_with("arn:") => {
                        let seen = crate::children::lb::target_group_summary(aws, arn).await.map_err(|e| Diags::from(Diagnostic::error("Import failed", e.to_string())))?;
                        seen.map(|(p, lbs)| (p == "TCP", lbs)).unwrap_or_default()
                    }
                    _ => (false, Vec::new()),
                };
                if tcp {
                    let mut n = cfg.network_load_balancer.clone().unwrap_or_default();
                    n.container_name = lb["container"].as_str().map(str::to_string);
                    n.container_port = lb["port"].as_i64();
                    if n.load_balancer_arn.is_empty() {
                        n.load_balancer_arn = lbs.into_iter().find(|a| a.contains(":loadbalancer/net/")).unwrap_or_default();
                    }
                    cfg.network_load_balancer = Some(n);
                    cfg.load_balancer = None;
                } else {
                    let mut l = cfg.load_balancer.clone().unwrap_or_default();
                    l.container_name = lb["container"].as_str().map(str::to_string);
                    // A target group under another name than this service's is not its own (a service made by hand): a reference.
                    let port = lb["port"].as_i64().unwrap_or_default();
                    l.target_group_arn =
                        lb["target_group"].as_str().filter(|arn| arn.starts_with("arn:") && arn.split('/').nth(1) != Some(names.target_group(port).as_str())).map(str::to_string);
                    cfg.load_balancer = Some(l);
                }
            }
            cfg.tags = Some(kids.user_tags("service", default_tags)).filter(|t| !t.is_empty());
            let cap: Vec<CapacityItem> = svc
                .get("capacity")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .map(|c| CapacityItem { capacity_provider: c["provider"].as_str().unwrap_or_default().into(), weight: c["weight"].as_i64(), base: c["base"].as_i64() })
                .collect();
            let launch_type = cap.len() == 1 && cap[0].capacity_provider == "FARGATE" && cap[0].weight == Some(1) && cap[0].base == Some(0);
            cfg.capacity_provider_strategy = if launch_type { Vec::new() } else { cap };
            cfg.platform_version = svc.get("platform_version").and_then(|v| v.as_str()).map(str::to_string);
            let d = svc.get("deployment").cloned().unwrap_or_default();
            cfg.deployment = Some(Deployment {
                minimum_healthy_percent: d["minimum_healthy_percent"].as_i64(),
                maximum_percent: d["maximum_percent"].as_i64(),
                alarms: d["alarms"].as_object().map(|a| Alarms { names: strs(a.get("names")), rollback: a.get("rollback").and_then(|r| r.as_bool()) }),
            })
            .filter(|d| d.minimum_healthy_percent != Some(100) || d.maximum_percent != Some(200) || d.alarms.is_some());
            cfg.health_check_grace_period = svc.get("health_check_grace_period").and_then(|v| v.as_i64());
            cfg.propagate_tags = svc.get("propagate_tags").and_then(|v| v.as_str()).map(str::to_string);
            cfg.enable_ecs_managed_tags = svc.get("managed_tags").and_then(|v| v.as_bool());
        }
        let scheduled = match kids.id("scalable_target") {
            Some(rid) => scheduled_actions(aws, &rid).await?,
            None => Vec::new(),
        };
        cfg.redeploy_trigger = kids.observed("service").and_then(|s| s.get("redeploy")).and_then(|v| v.as_str()).map(str::to_string);
        cfg.autoscaling = kids.observed("scalable_target").map(|t| {
            let target = |key: &str| kids.observed(key).and_then(|p| p.get("target_value")).and_then(|v| v.as_f64());
            let cooldown = |f: &str| ["scaling_cpu", "scaling_memory", "scaling_requests"].iter().find_map(|k| kids.observed(k).and_then(|p| p.get(f)).and_then(|v| v.as_i64()));
            Autoscaling {
                min: t.get("min").and_then(|v| v.as_i64()).unwrap_or(0),
                max: t.get("max").and_then(|v| v.as_i64()).unwrap_or(1),
                cpu_target: target("scaling_cpu"),
                memory_target: target("scaling_memory"),
                requests_per_target: target("scaling_requests"),
                scale_in_cooldown: cooldown("scale_in_cooldown"),
                scale_out_cooldown: cooldown("scale_out_cooldown"),
                scheduled_action: scheduled,
            }
        });
        // Under autoscaling the count is the scaler's; the configuration's is the count a new service starts with, min.
        if let Some(a) = &cfg.autoscaling {
            cfg.desired_count = Some(a.min);
        }
        if let Some(td) = kids.observed("task_definition") {
            cfg.cpu = td.get("cpu").and_then(|v| v.as_str()).and_then(|c| c.parse().ok()).unwrap_or(cfg.cpu);
            cfg.memory = td.get("memory").and_then(|v| v.as_str()).and_then(|c| c.parse().ok()).unwrap_or(cfg.memory);
            let defs = td.get("containers").and_then(|c| c.as_array()).map(Vec::as_slice).unwrap_or_default();
            // Containers that all log to one group this service did not create: that group is the service's.
            if kids.id("log_group").is_none() {
                let groups: std::collections::BTreeSet<&str> = defs
                    .iter()
                    .filter(|d| d["logConfiguration"]["logDriver"] == "awslogs" && d["logConfiguration"]["options"]["awslogs-stream-prefix"] == d["name"])
                    .filter_map(|d| d["logConfiguration"]["options"]["awslogs-group"].as_str())
                    .collect();
                if let [g] = groups.into_iter().collect::<Vec<_>>()[..] {
                    cfg.log_group_name = Some(g.to_string()).filter(|g| g != "<log_group>");
                }
            }
            let log_group = cfg.log_group_name.clone().filter(|g| *g != names.log_group()).unwrap_or_else(|| "<log_group>".to_string());
            let mut containers = containers_from_spec(defs, &log_group, cfg.service_connect.is_some());
            // The images the definition runs, before the digest is turned back into the configured tag.
            let images: BTreeMap<String, String> = defs.iter().filter_map(|d| Some((d["name"].as_str()?.to_string(), d["image"].as_str()?.to_string()))).collect();
            cfg.log_router = None;
            if let Some(i) = containers.iter().position(|c| c.name == LOG_ROUTER && c.firelens_configuration.is_some()) {
                let r = containers.remove(i);
                let f = r.firelens_configuration.clone().unwrap_or_default();
                let opts = containers.iter().find_map(|c| c.log_configuration.as_ref().filter(|l| l.log_driver == "awsfirelens").map(|l| l.options.clone()));
                cfg.log_router = Some(LogRouter {
                    image: Some(r.image).filter(|i| i != DEFAULT_LOG_ROUTER_IMAGE),
                    kind: Some(f.kind).filter(|k| k != "fluentbit"),
                    options: f.options,
                    container_log_options: opts.flatten(),
                    memory_reservation: r.memory_reservation.filter(|m| *m != 50),
                });
                let router_opts = cfg.log_router.as_ref().and_then(|r| r.container_log_options.clone());
                for c in containers.iter_mut() {
                    if c.log_configuration.as_ref().is_some_and(|l| l.log_driver == "awsfirelens" && l.options == router_opts && l.secret_options.is_none()) {
                        c.log_configuration = None;
                    }
                }
            }
            cfg.container = containers;
            cfg.images = Some(cfg.container.iter().filter_map(|c| Some((c.name.clone(), images.get(&c.name)?.clone()))).collect());
            let (rp, storage, vols) = task_settings_from(td);
            cfg.runtime_platform = rp;
            cfg.ephemeral_storage_gib = storage;
            cfg.volume = vols;
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
        if let (Some(tg), Some(n)) = (kids.observed("target_group"), cfg.network_load_balancer.as_mut()) {
            n.health_check = NlbHealthCheck::from_observed(&tg["health_check"]);
            n.deregistration_delay = tg["attributes"]["deregistration_delay.timeout_seconds"].as_str().and_then(|v| v.parse().ok());
        }
        if let (Some(l), Some(n)) = (kids.observed("nlb_listener"), cfg.network_load_balancer.as_mut()) {
            n.port = l.get("port").and_then(|v| v.as_i64()).unwrap_or(n.port);
            if let Some(lb) = l.get("load_balancer").and_then(|v| v.as_str()) {
                n.load_balancer_arn = lb.to_string();
            }
        }
        if let Some(tg) = kids.observed("target_group") {
            if let Some(lb) = cfg.load_balancer.as_mut() {
                lb.health_check = LbHealthCheck::from_observed(&tg["health_check"]);
                let attr = |k: &str| tg["attributes"][k].as_str().map(str::to_string);
                lb.deregistration_delay = attr("deregistration_delay.timeout_seconds").and_then(|v| v.parse().ok());
                if attr("stickiness.enabled").as_deref() == Some("true") {
                    lb.stickiness = Some(Stickiness { enabled: Some(true), duration: attr("stickiness.lb_cookie.duration_seconds").and_then(|v| v.parse().ok()) });
                }
            }
        }
        if let Some(rule) = kids.observed("listener_rule") {
            if let Some(lb) = cfg.load_balancer.as_mut() {
                lb.listener_arn = rule.get("listener").and_then(|v| v.as_str()).map(str::to_string);
                lb.priority = rule.get("priority").and_then(|v| v.as_i64());
                // One value reads back as the single form, several as the list.
                let values =
                    |k: &str| -> Vec<String> { rule["conditions"][k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default() };
                let (hosts, paths) = (values("host_headers"), values("path_patterns"));
                (lb.host_header, lb.host_headers) = if hosts.len() == 1 { (hosts.first().cloned(), None) } else { (None, Some(hosts).filter(|h| !h.is_empty())) };
                (lb.path_pattern, lb.path_patterns) = if paths.len() == 1 { (paths.first().cloned(), None) } else { (None, Some(paths).filter(|p| !p.is_empty())) };
                lb.source_ips = Some(values("source_ips")).filter(|v| !v.is_empty());
                lb.http_header = rule["conditions"]["http_headers"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(name, v)| HttpHeader {
                                name: name.clone(),
                                values: v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        if let (Some(_), Some(arn)) = (kids.observed("task_role"), kids.id("task_role")) {
            // What is attached becomes configuration: import cannot tell the provider's policies from others'.
            let role = arn.rsplit('/').next().unwrap_or_default();
            let (managed, doc) =
                crate::children::iam::role_policies(aws, role, TASK_USER_POLICY_NAME).await.map_err(|e| Diags::from(Diagnostic::error("Import failed", e.to_string())))?;
            cfg.task_role_policy_arns = (!managed.is_empty()).then_some(managed);
            cfg.task_role_policy_json = doc.map(|d| d.to_string());
        }
        if let Some(role) = kids.observed("execution_role") {
            let stmts = role.get("inline_policies").and_then(|p| p[EXEC_POLICY_NAME]["Statement"].as_array().cloned()).unwrap_or_default();
            cfg.secrets_kms_key_arns = stmts.iter().find(|s| s["Sid"] == "DecryptViaService").map(|s| match &s["Resource"] {
                serde_json::Value::String(r) => vec![r.clone()],
                r => strs(Some(r)),
            });
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

/// `list "cxflow_ecs_fargate_service"`: every Fargate service of a cluster,
/// optionally by name prefix and tags, as `import` of `<cluster>/<name>`
/// gives it: services this provider made with their children (found by
/// their ownership tags), services made by hand with the task definition
/// revision of their own family they run, and the log group, roles and
/// security groups they reference as configuration. Services another
/// resource owns (their `cxflow:owner` tag names it) are left out.
pub struct ServiceList;

pub fn list_schema_attrs(what: &str) -> Vec<Attribute> {
    vec![
        Attribute::new("name_prefix", Type::String).optional().describe(&format!("Only {what} whose name starts with this.")),
        Attribute::new("tags", Type::map(Type::String)).optional().describe(&format!("Only {what} carrying all of these tags (key and value).")),
    ]
}

/// Whether a found object passes a list's `name_prefix` and `tags` filters.
pub fn list_filters_pass(config: &Value, name: &str, tags: &BTreeMap<String, String>) -> bool {
    let prefix_ok = config.get("name_prefix").as_str().is_none_or(|p| name.starts_with(p));
    let tags_ok = match config.get("tags") {
        Value::Map(want) => want.iter().all(|(k, v)| tags.get(k).map(String::as_str) == v.as_str()),
        _ => true,
    };
    prefix_ok && tags_ok
}

#[async_trait]
impl crate::framework::ListResource<Aws> for ServiceList {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }
    fn schema(&self) -> crate::framework::Schema {
        let mut attrs = vec![Attribute::new("cluster", Type::String).required().describe("Name or ARN of the ECS cluster whose services are listed.")];
        attrs.extend(list_schema_attrs("services"));
        crate::framework::Schema::new(
            0,
            Block::new(attrs).describe(
                "Finds the Fargate services of an ECS cluster and lists each as one `cxflow_ecs_fargate_service`, exactly as `import` of \
                 `<cluster>/<name>` produces it. A service made by hand (the AWS CLI or console) comes with the task definition revision it runs; \
                 the log group, roles and security groups it references become `log_group_name`, `execution_role_arn`, `task_role_arn` and \
                 `network.security_group_ids`, which the imported resource uses and never changes. Services another resource of this provider owns are left out.",
            ),
        )
    }
    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        if let Some(c) = config.get("cluster").as_str() {
            if cluster_name(c).is_empty() || !cluster_name(c).chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                d.attr_error(Path::attr("cluster"), "Invalid cluster", format!("cluster must be an ECS cluster name or ARN (letters, digits, - and _), not {c:?}."));
            }
        }
        d
    }
    async fn list(&self, aws: &Aws, config: Value, include_resource: bool, limit: i64, ctx: crate::framework::provider::Ctx) -> Result<Vec<crate::framework::ListedItem>, Diags> {
        let cluster = config.get("cluster").as_str().unwrap_or_default().to_string();
        let mut arns = Vec::new();
        let mut pages = aws.ecs().list_services().cluster(&cluster).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| list_error(&cluster, crate::aws::aws_err("ecs:ListServices", e)))?;
            arns.extend(page.service_arns().iter().cloned());
        }
        let mut out = Vec::new();
        for batch in arns.chunks(10) {
            let seen = aws
                .ecs()
                .describe_services()
                .cluster(&cluster)
                .set_services(Some(batch.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| list_error(&cluster, crate::aws::aws_err("ecs:DescribeServices", e)))?;
            for svc in seen.services() {
                let name = svc.service_name().unwrap_or_default();
                let tags: BTreeMap<String, String> = svc.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                let fargate = svc.launch_type().map(|l| l.as_str() == "FARGATE").unwrap_or(true);
                let own = Names::new(cluster_name(&cluster), name);
                let theirs = tags.get(crate::engine::OWNER_TAG).is_some_and(|o| *o != crate::engine::Owner::new(TYPE_NAME, &own.id()).tag_value());
                if svc.status() != Some("ACTIVE") || !fargate || theirs || !list_filters_pass(&config, name, &tags) {
                    continue;
                }
                if limit > 0 && out.len() as i64 >= limit {
                    return Ok(out);
                }
                out.push(crate::engine::composite::list_item::<Aws, EcsFargateService>(aws, &own.id(), own.id(), include_resource, &ctx).await?);
            }
        }
        Ok(out)
    }
}

fn list_error(cluster: &str, e: crate::aws::AwsError) -> Diags {
    Diags::from(Diagnostic::error(format!("Could not list the services of ECS cluster {cluster}"), e.to_string()))
}

pub fn list_resource() -> Arc<dyn crate::framework::ListResource<Aws>> {
    Arc::new(ServiceList)
}

/// Service Connect: each `service` names a named port mapping, once; aliases
/// are unique; `client_only` publishes nothing.
fn validate_service_connect(d: &mut Diags, c: &Value) {
    let sc = c.get("service_connect");
    if sc.is_null() {
        return;
    }
    let sp = Path::attr("service_connect");
    let services = sc.get("service").elements().unwrap_or_default();
    if sc.get("client_only").as_bool() == Some(true) && !services.is_empty() {
        d.attr_error(sp.then_attr("client_only"), "Client only, yet publishing", "client_only publishes no port: remove it or the service blocks.");
    }
    let containers = c.get("container");
    // Port names the containers declare: named port_mapping blocks, or the simple `port` (named after its container).
    let named: Option<Vec<String>> = containers.is_wholly_known().then(|| {
        containers
            .elements()
            .unwrap_or_default()
            .iter()
            .flat_map(|ct| {
                let mappings = ct.get("port_mapping").elements().unwrap_or_default();
                if mappings.is_empty() {
                    ct.get("port").as_i64().and(ct.get("name").as_str()).map(str::to_string).into_iter().collect::<Vec<_>>()
                } else {
                    mappings.iter().filter_map(|m| m.get("name").as_str().map(str::to_string)).collect()
                }
            })
            .collect()
    });
    if services.is_empty() && sc.get("client_only").as_bool() == Some(false) && named.as_ref().is_some_and(|n| n.is_empty()) {
        d.attr_error(
            sp.clone(),
            "Nothing to publish",
            "Service Connect publishes the first TCP port, and no container has one: add a port, a service block, or set client_only = true.",
        );
    }
    let mut seen_ports: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in services.iter().enumerate() {
        let mut seen_aliases: BTreeMap<(i64, Option<String>), usize> = BTreeMap::new();
        let p = sp.then_attr("service").index(i);
        if let Some(pn) = s.get("port_name").as_str() {
            if let Some(n) = &named {
                if !n.iter().any(|x| x == pn) {
                    d.attr_error(
                        p.then_attr("port_name"),
                        "Unknown port name",
                        format!(
                            "port_name {pn:?} is not a named port mapping of any container (named: {}). Name one with port_mapping {{ name = ... }}.",
                            if n.is_empty() { "none".to_string() } else { n.join(", ") }
                        ),
                    );
                }
            }
            if let Some(first) = seen_ports.insert(pn.to_string(), i) {
                d.attr_error(p.then_attr("port_name"), "Port published twice", format!("service[{i}] publishes the same port as service[{first}]."));
            }
        }
        for (j, a) in s.get("client_alias").elements().unwrap_or_default().iter().enumerate() {
            if let Some(port) = a.get("port").as_i64() {
                if let Some(first) = seen_aliases.insert((port, a.get("dns_name").as_str().map(str::to_string)), j) {
                    d.attr_error(
                        p.then_attr("client_alias").index(j),
                        "Client alias given twice",
                        format!("client_alias[{j}] has the same port and DNS name as client_alias[{first}]."),
                    );
                }
            }
        }
    }
}

/// The `service_connect` block import writes for what ECS reports (the
/// shape of `ServiceConnectSpec`): the default publication reads back as no
/// `service` block.
fn service_connect_of(cfg: &FargateService, sc: &serde_json::Value) -> ServiceConnect {
    let mut out = ServiceConnect { namespace: sc["namespace"].as_str().unwrap_or_default().to_string(), ..Default::default() };
    let services = sc["services"].as_array().cloned().unwrap_or_default();
    let default = cfg.container.iter().find_map(Container::first_tcp_port).map(|p| cfg.default_sc_service(p));
    let n = |v: &serde_json::Value| v.as_i64();
    let is_default = services.len() == 1
        && default.as_ref().is_some_and(|d| {
            let s = &services[0];
            s["port_name"] == d.port_name.as_str()
                && s["discovery_name"] == d.discovery_name.as_str()
                && s["aliases"] == json!([{"port": d.aliases[0].0, "dns_name": null}])
                && s["ingress_port_override"].is_null()
                && s["tls"].is_null()
                && s["timeout"]["idle"].is_null()
                && s["timeout"]["per_request"].is_null()
        });
    if services.is_empty() {
        out.client_only = Some(true);
    } else if !is_default {
        out.service = services
            .iter()
            .map(|s| {
                let port_name = s["port_name"].as_str().unwrap_or_default().to_string();
                let discovery = s["discovery_name"].as_str().map(str::to_string).filter(|d| *d != port_name);
                let timeout = (!s["timeout"]["idle"].is_null() || !s["timeout"]["per_request"].is_null())
                    .then(|| ScTimeout { idle_seconds: n(&s["timeout"]["idle"]), per_request_seconds: n(&s["timeout"]["per_request"]) });
                let tls = s["tls"].as_object().map(|t| ScTlsCfg {
                    private_ca_arn: t.get("private_ca_arn").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                    kms_key_arn: t.get("kms_key").and_then(|v| v.as_str()).map(str::to_string),
                    role_arn: t.get("role_arn").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                });
                let client_alias = s["aliases"]
                    .as_array()
                    .map(|a| a.iter().map(|x| ScAlias { port: x["port"].as_i64().unwrap_or(0), dns_name: x["dns_name"].as_str().map(str::to_string) }).collect())
                    .unwrap_or_default();
                ScServiceCfg { port_name, discovery_name: discovery, ingress_port_override: n(&s["ingress_port_override"]), client_alias, timeout, tls }
            })
            .collect();
    }
    if let Some(l) = sc["log"].as_object() {
        let driver = l.get("driver").and_then(|v| v.as_str()).unwrap_or("awslogs").to_string();
        let options: BTreeMap<String, String> =
            l.get("options").and_then(|o| o.as_object()).map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
        let derived = driver == "awslogs" && options.get("awslogs-stream-prefix").map(String::as_str) == Some("service-connect") && options.len() == 3;
        out.log_configuration = Some(ScLog { log_driver: Some(driver), options: (!derived).then_some(options) });
    }
    out
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
        let doc = execution_policy(&c, &ExecNeeds::of(&cfg())).to_string();
        assert!(doc.contains("arn:aws:ssm:eu-west-2:123456789012:parameter/x/A"), "{doc}");
        assert!(doc.contains("\"arn:aws:secretsmanager:eu-west-2:123456789012:secret:db-AbCdEf\""), "the JSON key suffix is cut: {doc}");
        assert!(doc.contains("arn:aws:ecr:eu-west-2:123456789012:repository/backend-flask"), "{doc}");
        assert!(!doc.contains("kms:") && !doc.contains("\"ssm:*\""), "no KMS grant without a customer key: {doc}");
        let key = "arn:aws:kms:eu-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let with_key = FargateService { secrets_kms_key_arns: Some(vec![key.into()]), ..cfg() };
        let doc: serde_json::Value = execution_policy(&c, &ExecNeeds::of(&with_key));
        let kms = doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "DecryptViaService").unwrap();
        assert_eq!(kms["Resource"], json!([key]));
        assert_eq!(kms["Condition"]["StringEquals"]["kms:ViaService"], json!(["ssm.eu-west-2.amazonaws.com", "secretsmanager.eu-west-2.amazonaws.com"]));
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
    fn network_load_balancer_is_validated_before_any_call() {
        const NLB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/edge/0123456789abcdef";
        let nlb = |port: i64, container_port: Option<i64>| NetworkLoadBalancer { load_balancer_arn: NLB.into(), port, container_port, ..Default::default() };
        let alb = LoadBalancer {
            listener_arn: Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2".into()),
            priority: Some(1),
            host_header: Some("a.example.com".into()),
            ..Default::default()
        };
        let ty = crate::engine::composite::schema_of::<Aws, EcsFargateService>();
        let paths = |c: FargateService| -> Vec<String> {
            let v = crate::framework::typed::to_value(&c, &ty.value_type()).unwrap();
            let mut d = validate_config(&v);
            d.0.extend(crate::framework::check::validate(&ty.block, &v).0);
            d.0.iter().filter(|x| x.severity == crate::framework::diag::Severity::Error).map(|x| x.path.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
        };
        assert_eq!(paths(FargateService { network_load_balancer: Some(nlb(9000, None)), ..cfg() }), Vec::<String>::new(), "a valid block");
        assert_eq!(paths(FargateService { network_load_balancer: Some(nlb(9000, Some(4567))), ..cfg() }), Vec::<String>::new(), "the container's port");
        for (c, want) in [
            (FargateService { network_load_balancer: Some(nlb(9000, None)), load_balancer: Some(alb), ..cfg() }, "network_load_balancer"),
            (FargateService { network_load_balancer: Some(nlb(70000, None)), ..cfg() }, "network_load_balancer.port"),
            (FargateService { network_load_balancer: Some(nlb(0, None)), ..cfg() }, "network_load_balancer.port"),
            (FargateService { network_load_balancer: Some(nlb(9000, Some(81))), ..cfg() }, "network_load_balancer.container_port"),
            (
                FargateService { network_load_balancer: Some(NetworkLoadBalancer { container_name: Some("nope".into()), ..nlb(9000, None) }), ..cfg() },
                "network_load_balancer.container_name",
            ),
            (
                FargateService { network_load_balancer: Some(NetworkLoadBalancer { load_balancer_arn: NLB.replace("/net/", "/app/"), ..nlb(9000, None) }), ..cfg() },
                "network_load_balancer.load_balancer_arn",
            ),
        ] {
            assert_eq!(paths(c), [want.to_string()], "{want}");
        }
    }

    #[test]
    fn network_load_balancer_graph_keeps_alb_names() {
        let c = Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "x"), tags: Tags::new(), region: "us-east-1".into(), account: "123456789012".into() });
        let n = Names::new("cruddur", "backend-flask");
        let alb = FargateService { load_balancer: Some(LoadBalancer { listener_arn: Some("arn:l".into()), priority: Some(1), ..Default::default() }), ..cfg() };
        let g = build_graph(&alb, c.clone()).unwrap();
        let tg = g.node("target_group").unwrap().spec();
        assert_eq!(tg["name"], json!(n.target_group(4567)), "ALB target groups keep their names");
        assert!(tg.get("protocol").is_none(), "ALB target group specs are as before: {tg:?}");
        assert!(!g.node("nlb_listener").unwrap().wanted());
        let nlb = FargateService {
            network_load_balancer: Some(NetworkLoadBalancer { load_balancer_arn: "arn:nlb".into(), port: 9000, deregistration_delay: Some(30), ..Default::default() }),
            ..cfg()
        };
        let g = build_graph(&nlb, c).unwrap();
        let tg = g.node("target_group").unwrap().spec();
        assert_eq!((tg["protocol"].as_str(), tg["port"].as_i64()), (Some("TCP"), Some(4567)));
        assert_ne!(tg["name"], json!(n.target_group(4567)), "a TCP group has a name of its own");
        assert_eq!(tg["health_check"]["protocol"], "TCP");
        assert_eq!(tg["attributes"], json!({"deregistration_delay.timeout_seconds": "30"}));
        let l = g.node("nlb_listener").unwrap();
        assert!(l.wanted() && l.deps() == ["target_group"]);
        assert_eq!((l.spec()["port"].as_i64(), l.spec()["target_group"].as_str()), (Some(9000), Some("<target_group>")));
        assert!(g.node("service").unwrap().deps().contains(&"nlb_listener"), "the service waits for the listener");
        assert!(!g.node("listener_rule").unwrap().wanted());
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
