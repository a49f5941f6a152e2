//! ECS children of a service: the Fargate task definition (a new revision per
//! change) and the service itself, with the steady-state wait.
//!
//! A task definition's spec is its container definitions in one canonical
//! JSON form, made by the same function from what the provider would send
//! and from what AWS reports, with AWS's own defaults (essential, protocol
//! tcp, the host port of awsvpc mode, empty lists) left out: equivalent
//! definitions never differ, and a revision registers only when something in
//! it changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types as ecs;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::{Common, Ref, observed_refs, ref_specs, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::wait::{Poll, WaitError, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, LEASE_TAG, Made, Node, NodeError, Spec, Tags, spec};

/// One container of a task definition. Field names are the HCL names of
/// `cxflow_ecs_fargate_service`'s `container` block.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// The simple form of one TCP port mapping named after the container.
    pub port: Option<i64>,
    #[serde(default)]
    pub port_mapping: Vec<PortMapping>,
    pub essential: Option<bool>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub entry_point: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub readonly_root_filesystem: Option<bool>,
    pub stop_timeout: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, String>>,
    pub health_check: Option<HealthCheck>,
    /// Docker labels on the container.
    pub docker_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub depends_on: Vec<DependsOn>,
    #[serde(default)]
    pub ulimit: Vec<Ulimit>,
    pub linux_parameters: Option<LinuxParameters>,
    #[serde(default)]
    pub mount_point: Vec<MountPoint>,
    /// Another log driver than the default awslogs to the service's log group.
    pub log_configuration: Option<LogConfiguration>,
    pub firelens_configuration: Option<Firelens>,
    /// `config` (default), `digest` or `external`: who decides the image (see the resource docs).
    pub image_policy: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PortMapping {
    pub container_port: i64,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DependsOn {
    pub container: String,
    pub condition: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LinuxParameters {
    pub init_process_enabled: Option<bool>,
    pub capabilities: Option<Capabilities>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Capabilities {
    pub add: Option<Vec<String>>,
    pub drop: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LogConfiguration {
    pub log_driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub secret_options: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Firelens {
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Option<BTreeMap<String, String>>,
}

/// A task volume: EFS when `efs` is set, else a bind volume on the task's ephemeral storage.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    pub name: String,
    pub efs: Option<EfsVolume>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EfsVolume {
    pub file_system_id: String,
    pub root_directory: Option<String>,
    pub transit_encryption: Option<bool>,
    pub access_point_id: Option<String>,
    pub iam_authorization: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RuntimePlatform {
    pub cpu_architecture: Option<String>,
    pub operating_system_family: Option<String>,
}

impl Container {
    /// Every port mapping: the `port_mapping` blocks, or the simple `port`
    /// (TCP, named after the container).
    pub fn port_mappings(&self) -> Vec<PortMapping> {
        if !self.port_mapping.is_empty() {
            return self.port_mapping.clone();
        }
        self.port.map(|p| vec![PortMapping { container_port: p, protocol: None, name: Some(self.name.clone()), app_protocol: None }]).unwrap_or_default()
    }
    /// The first TCP port, for a load balancer or Service Connect: (mapping name, port).
    pub fn first_tcp_port(&self) -> Option<(String, i64)> {
        self.port_mappings().into_iter().find(|p| p.protocol.as_deref().unwrap_or("tcp") == "tcp").map(|p| (p.name.unwrap_or_else(|| self.name.clone()), p.container_port))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
}

pub fn ecs_tags(t: &Tags) -> Vec<ecs::Tag> {
    t.iter().map(|(k, v)| ecs::Tag::builder().key(k).value(v).build()).collect()
}

fn tags_of(t: &[ecs::Tag]) -> Tags {
    user_visible(t.iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))))
}

fn other(msg: impl Into<String>) -> NodeError {
    NodeError::other(msg)
}

async fn ecs_retag(aws: &Aws, arn: &str, current: &Tags, desired: &Tags) -> Result<(), NodeError> {
    let (add, remove) = tag_diff(current, desired);
    if !add.is_empty() {
        aws.ecs().tag_resource().resource_arn(arn).set_tags(Some(ecs_tags(&add))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.ecs().untag_resource().resource_arn(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecs:UntagResource", e))?;
    }
    Ok(())
}

async fn ecs_release(aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
    let (k, v) = cx.recorded_tag();
    aws.ecs().tag_resource().resource_arn(arn).set_tags(Some(ecs_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
    Ok(())
}

/// Replace every string equal to a dependency's identity with `<key>`.
fn refs_back(v: &mut Json, deps: &[(String, String)]) {
    match v {
        Json::String(s) => {
            if let Some((k, _)) = deps.iter().find(|(_, id)| id == s) {
                *s = format!("<{k}>");
            }
        }
        Json::Array(a) => a.iter_mut().for_each(|x| refs_back(x, deps)),
        Json::Object(m) => m.values_mut().for_each(|x| refs_back(x, deps)),
        _ => {}
    }
}

// ------------------------------------------------------------------ task definition

/// Container definitions as the provider sends them, with `log_group` in the
/// awslogs options (a name, or `<key>` when building the spec).
pub fn container_definitions(containers: &[Container], service_connect: bool, log_group: &str, region: &str) -> Result<Vec<ecs::ContainerDefinition>, NodeError> {
    let bad = |e: aws_sdk_ecs::error::BuildError| other(format!("internal error building the task definition: {e}"));
    let mut out = Vec::new();
    for c in containers {
        let mut b = ecs::ContainerDefinition::builder().name(&c.name).image(&c.image).essential(c.essential.unwrap_or(true));
        let simple = c.port_mapping.is_empty();
        for p in c.port_mappings() {
            let proto = if p.protocol.as_deref() == Some("udp") { ecs::TransportProtocol::Udp } else { ecs::TransportProtocol::Tcp };
            let mut pm = ecs::PortMapping::builder().container_port(p.container_port as i32).protocol(proto).set_name(p.name.clone());
            match p.app_protocol.as_deref() {
                Some(a) => pm = pm.app_protocol(ecs::ApplicationProtocol::from(a)),
                // The simple form speaks HTTP to Service Connect.
                None if simple && service_connect => pm = pm.app_protocol(ecs::ApplicationProtocol::Http),
                None => {}
            }
            b = b.port_mappings(pm.build());
        }
        if let Some(v) = c.cpu {
            b = b.cpu(v as i32);
        }
        b = b.set_memory(c.memory.map(|v| v as i32)).set_memory_reservation(c.memory_reservation.map(|v| v as i32));
        b = b.set_entry_point(c.entry_point.clone()).set_command(c.command.clone());
        b = b.set_working_directory(c.working_directory.clone()).set_user(c.user.clone());
        b = b.set_readonly_root_filesystem(c.readonly_root_filesystem.filter(|r| *r)).set_stop_timeout(c.stop_timeout.map(|v| v as i32));
        for u in &c.ulimit {
            b = b
                .ulimits(ecs::Ulimit::builder().name(ecs::UlimitName::from(u.name.as_str())).soft_limit(u.soft_limit as i32).hard_limit(u.hard_limit as i32).build().map_err(bad)?);
        }
        if let Some(lp) = &c.linux_parameters {
            let mut l = ecs::LinuxParameters::builder().set_init_process_enabled(lp.init_process_enabled);
            if let Some(caps) = &lp.capabilities {
                l = l.capabilities(ecs::KernelCapabilities::builder().set_add(caps.add.clone()).set_drop(caps.drop.clone()).build());
            }
            b = b.linux_parameters(l.build());
        }
        for m in &c.mount_point {
            b = b.mount_points(ecs::MountPoint::builder().source_volume(&m.source_volume).container_path(&m.container_path).read_only(m.read_only.unwrap_or(false)).build());
        }
        for d in &c.depends_on {
            b = b.depends_on(ecs::ContainerDependency::builder().container_name(&d.container).condition(ecs::ContainerCondition::from(d.condition.as_str())).build().map_err(bad)?);
        }
        if let Some(f) = &c.firelens_configuration {
            b = b.firelens_configuration(
                ecs::FirelensConfiguration::builder()
                    .r#type(ecs::FirelensConfigurationType::from(f.kind.as_str()))
                    .set_options(f.options.clone().filter(|o| !o.is_empty()).map(|o| o.into_iter().collect()))
                    .build()
                    .map_err(bad)?,
            );
        }
        for (k, v) in c.environment.iter().flatten() {
            b = b.environment(ecs::KeyValuePair::builder().name(k).value(v).build());
        }
        for (k, v) in c.secrets.iter().flatten() {
            b = b.secrets(ecs::Secret::builder().name(k).value_from(v).build().map_err(bad)?);
        }
        if let Some(l) = c.docker_labels.as_ref().filter(|l| !l.is_empty()) {
            b = b.set_docker_labels(Some(l.clone().into_iter().collect()));
        }
        if let Some(h) = &c.health_check {
            b = b.health_check(
                ecs::HealthCheck::builder()
                    .set_command(Some(h.command.clone()))
                    .interval(h.interval.unwrap_or(30) as i32)
                    .timeout(h.timeout.unwrap_or(5) as i32)
                    .retries(h.retries.unwrap_or(3) as i32)
                    .start_period(h.start_period.unwrap_or(0) as i32)
                    .build()
                    .map_err(bad)?,
            );
        }
        let log = match &c.log_configuration {
            Some(l) => {
                let mut lb = ecs::LogConfiguration::builder()
                    .log_driver(ecs::LogDriver::from(l.log_driver.as_str()))
                    .set_options(l.options.clone().filter(|o| !o.is_empty()).map(|o| o.into_iter().collect()));
                for (k, v) in l.secret_options.iter().flatten() {
                    lb = lb.secret_options(ecs::Secret::builder().name(k).value_from(v).build().map_err(bad)?);
                }
                lb.build().map_err(bad)?
            }
            None => ecs::LogConfiguration::builder()
                .log_driver(ecs::LogDriver::Awslogs)
                .options("awslogs-group", log_group)
                .options("awslogs-region", region)
                .options("awslogs-stream-prefix", &c.name)
                .build()
                .map_err(bad)?,
        };
        b = b.log_configuration(log);
        out.push(b.build());
    }
    Ok(out)
}

fn put(m: &mut serde_json::Map<String, Json>, k: &str, v: Json) {
    let empty = match &v {
        Json::Null => true,
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert(k.to_string(), v);
    }
}

/// One container definition in the canonical form both sides compare in.
pub fn canon_container(d: &ecs::ContainerDefinition) -> Json {
    let mut m = serde_json::Map::new();
    put(&mut m, "name", json!(d.name()));
    put(&mut m, "image", json!(d.image()));
    if d.essential() == Some(false) {
        m.insert("essential".into(), json!(false));
    }
    if d.cpu() != 0 {
        m.insert("cpu".into(), json!(d.cpu()));
    }
    put(&mut m, "memory", json!(d.memory()));
    put(&mut m, "memoryReservation", json!(d.memory_reservation()));
    let ports: Vec<Json> = d
        .port_mappings()
        .iter()
        .map(|p| {
            let mut pm = serde_json::Map::new();
            put(&mut pm, "containerPort", json!(p.container_port()));
            // awsvpc mode: the host port is the container port.
            if p.host_port().is_some() && p.host_port() != p.container_port() {
                pm.insert("hostPort".into(), json!(p.host_port()));
            }
            if let Some(proto) = p.protocol().filter(|p| p.as_str() != "tcp") {
                pm.insert("protocol".into(), json!(proto.as_str()));
            }
            put(&mut pm, "name", json!(p.name()));
            put(&mut pm, "appProtocol", json!(p.app_protocol().map(|a| a.as_str())));
            Json::Object(pm)
        })
        .collect();
    put(&mut m, "portMappings", json!(ports));
    put(&mut m, "command", json!(d.command()));
    put(&mut m, "entryPoint", json!(d.entry_point()));
    put(&mut m, "workingDirectory", json!(d.working_directory()));
    put(&mut m, "user", json!(d.user()));
    let env: BTreeMap<&str, &str> = d.environment().iter().map(|kv| (kv.name().unwrap_or_default(), kv.value().unwrap_or_default())).collect();
    put(&mut m, "environment", json!(env));
    let secrets: BTreeMap<&str, &str> = d.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
    put(&mut m, "secrets", json!(secrets));
    if d.readonly_root_filesystem() == Some(true) {
        m.insert("readonlyRootFilesystem".into(), json!(true));
    }
    let ulimits: Vec<Json> = d.ulimits().iter().map(|u| json!({"name": u.name().as_str(), "softLimit": u.soft_limit(), "hardLimit": u.hard_limit()})).collect();
    put(&mut m, "ulimits", json!(ulimits));
    if let Some(lp) = d.linux_parameters() {
        let mut l = serde_json::Map::new();
        if lp.init_process_enabled() == Some(true) {
            l.insert("initProcessEnabled".into(), json!(true));
        }
        if let Some(c) = lp.capabilities() {
            let mut caps = serde_json::Map::new();
            put(&mut caps, "add", json!(c.add()));
            put(&mut caps, "drop", json!(c.drop()));
            put(&mut l, "capabilities", Json::Object(caps));
        }
        put(&mut m, "linuxParameters", Json::Object(l));
    }
    put(&mut m, "stopTimeout", json!(d.stop_timeout()));
    put(&mut m, "dockerLabels", json!(d.docker_labels()));
    let mounts: Vec<Json> =
        d.mount_points().iter().map(|p| json!({"sourceVolume": p.source_volume(), "containerPath": p.container_path(), "readOnly": p.read_only().unwrap_or(false)})).collect();
    put(&mut m, "mountPoints", json!(mounts));
    let deps: Vec<Json> = d.depends_on().iter().map(|x| json!({"containerName": x.container_name(), "condition": x.condition().as_str()})).collect();
    put(&mut m, "dependsOn", json!(deps));
    if let Some(h) = d.health_check() {
        m.insert(
            "healthCheck".into(),
            json!({"command": h.command(), "interval": h.interval().unwrap_or(30), "timeout": h.timeout().unwrap_or(5), "retries": h.retries().unwrap_or(3), "startPeriod": h.start_period().unwrap_or(0)}),
        );
    }
    if let Some(l) = d.log_configuration() {
        let mut lc = serde_json::Map::new();
        lc.insert("logDriver".into(), json!(l.log_driver().as_str()));
        put(&mut lc, "options", json!(l.options()));
        let so: BTreeMap<&str, &str> = l.secret_options().iter().map(|s| (s.name(), s.value_from())).collect();
        put(&mut lc, "secretOptions", json!(so));
        m.insert("logConfiguration".into(), Json::Object(lc));
    }
    if let Some(f) = d.firelens_configuration() {
        let mut fc = serde_json::Map::new();
        fc.insert("type".into(), json!(f.r#type().as_str()));
        put(&mut fc, "options", json!(f.options()));
        m.insert("firelensConfiguration".into(), Json::Object(fc));
    }
    Json::Object(m)
}

/// The Docker label that records the tag a digest-pinned image was resolved from.
pub const IMAGE_TAG_LABEL: &str = "cxflow.image-tag";

/// Container blocks as a canonical container spec describes them (for import).
/// `log_group` is how the spec names the default log group (`<log_group>`).
pub fn containers_from_spec(defs: &[Json], log_group: &str, service_connect: bool) -> Vec<Container> {
    defs.iter()
        .map(|d| {
            let strs = |v: &Json| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>());
            let map = |v: &Json| v.as_object().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect::<BTreeMap<_, _>>());
            let int = |k: &str| d.get(k).and_then(Json::as_i64);
            let name = d["name"].as_str().unwrap_or_default().to_string();
            let mappings: Vec<PortMapping> = d["portMappings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| PortMapping {
                    container_port: p["containerPort"].as_i64().unwrap_or_default(),
                    protocol: p["protocol"].as_str().map(str::to_string),
                    name: p["name"].as_str().map(str::to_string),
                    app_protocol: p["appProtocol"].as_str().map(str::to_string),
                })
                .collect();
            // One TCP mapping named after the container (HTTP at most, as Service Connect gives it) is the simple `port`.
            let app_ok = |a: Option<&str>| a.is_none() || (service_connect && a == Some("http"));
            let simple = match mappings.as_slice() {
                [m] if m.protocol.is_none() && m.name.as_deref() == Some(name.as_str()) && app_ok(m.app_protocol.as_deref()) => Some(m.container_port),
                _ => None,
            };
            let mut labels = map(&d["dockerLabels"]).unwrap_or_default();
            let tag = labels.remove(IMAGE_TAG_LABEL);
            let image = d["image"].as_str().unwrap_or_default().to_string();
            let (image, policy) = match (tag, image.split_once("@sha256:")) {
                (Some(t), Some((repo, _))) => (format!("{repo}:{t}"), Some("digest".to_string())),
                _ => (image, None),
            };
            let log = &d["logConfiguration"];
            let default_log = log["logDriver"] == "awslogs" && log["options"]["awslogs-group"] == log_group && log["options"]["awslogs-stream-prefix"] == name.as_str();
            let lp = &d["linuxParameters"];
            Container {
                image,
                image_policy: policy,
                port: simple,
                port_mapping: if simple.is_some() { Vec::new() } else { mappings },
                essential: Some(d.get("essential").and_then(Json::as_bool).unwrap_or(true)),
                cpu: int("cpu"),
                memory: int("memory"),
                memory_reservation: int("memoryReservation"),
                entry_point: strs(&d["entryPoint"]),
                command: strs(&d["command"]),
                working_directory: d["workingDirectory"].as_str().map(str::to_string),
                user: d["user"].as_str().map(str::to_string),
                readonly_root_filesystem: d["readonlyRootFilesystem"].as_bool(),
                stop_timeout: int("stopTimeout"),
                environment: Some(map(&d["environment"]).unwrap_or_default()),
                secrets: Some(map(&d["secrets"]).unwrap_or_default()),
                health_check: d.get("healthCheck").map(|h| HealthCheck {
                    command: strs(&h["command"]).unwrap_or_default(),
                    interval: h["interval"].as_i64(),
                    timeout: h["timeout"].as_i64(),
                    retries: h["retries"].as_i64(),
                    start_period: h["startPeriod"].as_i64(),
                }),
                docker_labels: Some(labels).filter(|l| !l.is_empty()),
                depends_on: d["dependsOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| DependsOn { container: x["containerName"].as_str().unwrap_or_default().into(), condition: x["condition"].as_str().unwrap_or_default().into() })
                    .collect(),
                ulimit: d["ulimits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| Ulimit {
                        name: u["name"].as_str().unwrap_or_default().into(),
                        soft_limit: u["softLimit"].as_i64().unwrap_or(0),
                        hard_limit: u["hardLimit"].as_i64().unwrap_or(0),
                    })
                    .collect(),
                linux_parameters: lp.as_object().map(|_| LinuxParameters {
                    init_process_enabled: lp["initProcessEnabled"].as_bool(),
                    capabilities: lp["capabilities"].as_object().map(|_| Capabilities { add: strs(&lp["capabilities"]["add"]), drop: strs(&lp["capabilities"]["drop"]) }),
                }),
                mount_point: d["mountPoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| MountPoint {
                        source_volume: m["sourceVolume"].as_str().unwrap_or_default().into(),
                        container_path: m["containerPath"].as_str().unwrap_or_default().into(),
                        read_only: m["readOnly"].as_bool().filter(|r| *r),
                    })
                    .collect(),
                log_configuration: (!log.is_null() && !default_log).then(|| LogConfiguration {
                    log_driver: log["logDriver"].as_str().unwrap_or_default().into(),
                    options: map(&log["options"]),
                    secret_options: map(&log["secretOptions"]),
                }),
                firelens_configuration: d["firelensConfiguration"]
                    .as_object()
                    .map(|f| Firelens { kind: f.get("type").and_then(Json::as_str).unwrap_or_default().into(), options: f.get("options").and_then(map) }),
                name,
            }
        })
        .collect()
}

/// The task-level settings beyond size and roles, in canonical form; only
/// what differs from Fargate's defaults appears (X86_64 Linux, 20 GiB).
fn task_extras(runtime: Option<&RuntimePlatform>, storage: Option<i64>, volumes: &[Volume]) -> serde_json::Map<String, Json> {
    let mut m = serde_json::Map::new();
    let arch = runtime.and_then(|r| r.cpu_architecture.clone()).unwrap_or_else(|| "X86_64".into());
    let os = runtime.and_then(|r| r.operating_system_family.clone()).unwrap_or_else(|| "LINUX".into());
    if arch != "X86_64" || os != "LINUX" {
        m.insert("runtime_platform".into(), json!({"cpu_architecture": arch, "operating_system_family": os}));
    }
    if let Some(g) = storage.filter(|g| *g > 20) {
        m.insert("ephemeral_storage_gib".into(), json!(g));
    }
    let mut vols: Vec<Json> = volumes
        .iter()
        .map(|v| match &v.efs {
            None => json!({"name": v.name}),
            Some(e) => json!({"name": v.name, "efs": {
                "file_system_id": e.file_system_id, "root_directory": e.root_directory.clone().unwrap_or_else(|| "/".into()),
                "transit_encryption": e.transit_encryption.unwrap_or(false), "access_point_id": e.access_point_id,
                "iam_authorization": e.iam_authorization.unwrap_or(false),
            }}),
        })
        .collect();
    vols.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if !vols.is_empty() {
        m.insert("volumes".into(), Json::Array(vols));
    }
    m
}

fn volumes_of(td: &ecs::TaskDefinition) -> Vec<Volume> {
    td.volumes()
        .iter()
        .map(|v| Volume {
            name: v.name().unwrap_or_default().to_string(),
            efs: v.efs_volume_configuration().map(|e| EfsVolume {
                file_system_id: e.file_system_id().to_string(),
                root_directory: e.root_directory().map(str::to_string),
                transit_encryption: Some(e.transit_encryption().map(|t| t.as_str()) == Some("ENABLED")),
                access_point_id: e.authorization_config().and_then(|a| a.access_point_id()).map(str::to_string),
                iam_authorization: Some(e.authorization_config().and_then(|a| a.iam()).map(|i| i.as_str()) == Some("ENABLED")),
            }),
        })
        .collect()
}

/// The task-level settings of an observed task definition, as the configuration gives them (for import).
pub fn task_settings_from(td: &crate::engine::Spec) -> (Option<RuntimePlatform>, Option<i64>, Vec<Volume>) {
    let rp = td.get("runtime_platform").map(|r| RuntimePlatform {
        cpu_architecture: r["cpu_architecture"].as_str().map(str::to_string),
        operating_system_family: r["operating_system_family"].as_str().map(str::to_string).filter(|o| o != "LINUX"),
    });
    let storage = td.get("ephemeral_storage_gib").and_then(Json::as_i64);
    let vols = td
        .get("volumes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|v| Volume {
            name: v["name"].as_str().unwrap_or_default().into(),
            efs: v["efs"].as_object().map(|_| {
                let e = &v["efs"];
                EfsVolume {
                    file_system_id: e["file_system_id"].as_str().unwrap_or_default().into(),
                    root_directory: e["root_directory"].as_str().filter(|r| *r != "/").map(str::to_string),
                    transit_encryption: e["transit_encryption"].as_bool().filter(|t| *t),
                    access_point_id: e["access_point_id"].as_str().map(str::to_string),
                    iam_authorization: e["iam_authorization"].as_bool().filter(|t| *t),
                }
            }),
        })
        .collect();
    (rp, storage, vols)
}

fn sdk_volume(v: &Volume) -> ecs::Volume {
    let efs = v.efs.as_ref().and_then(|e| {
        let on = |b: Option<bool>| if b.unwrap_or(false) { Some(ecs::EfsTransitEncryption::Enabled) } else { None };
        let auth = (e.access_point_id.is_some() || e.iam_authorization.unwrap_or(false)).then(|| {
            ecs::EfsAuthorizationConfig::builder()
                .set_access_point_id(e.access_point_id.clone())
                .set_iam(e.iam_authorization.unwrap_or(false).then_some(ecs::EfsAuthorizationConfigIam::Enabled))
                .build()
        });
        ecs::EfsVolumeConfiguration::builder()
            .file_system_id(&e.file_system_id)
            .set_root_directory(e.root_directory.clone())
            .set_transit_encryption(on(e.transit_encryption))
            .set_authorization_config(auth)
            .build()
            .ok()
    });
    ecs::Volume::builder().name(&v.name).set_efs_volume_configuration(efs).build()
}

fn td_active(td: &ecs::TaskDefinition) -> bool {
    td.status() == Some(&ecs::TaskDefinitionStatus::Active)
}

pub struct TaskDefinitionNode {
    pub c: Arc<Common>,
    pub key: String,
    pub family: String,
    pub cpu: i64,
    pub memory: i64,
    pub containers: Vec<Container>,
    pub execution_role: Option<Ref>,
    pub task_role: Option<Ref>,
    /// The log group's name (its identity when it is a child).
    pub log_group: Ref,
    /// Port mappings get an HTTP app protocol for Service Connect.
    pub service_connect: bool,
    pub runtime_platform: Option<RuntimePlatform>,
    pub ephemeral_storage_gib: Option<i64>,
    pub volumes: Vec<Volume>,
    /// CI registers revisions of this family that the composite adopts
    /// (`image_policy = "external"`): their tags are CI's and not compared,
    /// and a delete also deregisters earlier revisions this composite owns.
    pub adopts_foreign: bool,
}

impl TaskDefinitionNode {
    async fn describe_td(aws: &Aws, id: &str) -> Result<Option<(ecs::TaskDefinition, Vec<ecs::Tag>)>, NodeError> {
        match aws.ecs().describe_task_definition().task_definition(id).include(ecs::TaskDefinitionField::Tags).send().await.map_err(|e| aws_err("ecs:DescribeTaskDefinition", e)) {
            Ok(o) => Ok(o.task_definition().cloned().map(|t| (t, o.tags().to_vec()))),
            Err(e) if e.is_not_found() || e.is_code(&["ClientException"]) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn canon_defs(defs: &[ecs::ContainerDefinition]) -> Json {
        Json::Array(defs.iter().map(canon_container).collect())
    }
    /// The deps whose identities appear inside the definition, for mapping them back.
    fn ref_ids(&self, cx: &Cx<'_>) -> Vec<(String, String)> {
        [&Some(self.log_group.clone()), &self.execution_role, &self.task_role]
            .into_iter()
            .flatten()
            .filter_map(|r| r.key().and_then(|k| cx.dep(k).ok().map(|id| (k.to_string(), id.to_string()))))
            .collect()
    }
    fn roles(&self, cx: &Cx<'_>) -> Result<(Option<String>, Option<String>), NodeError> {
        let exec = self.execution_role.as_ref().map(|r| r.resolve(cx)).transpose()?;
        let task = self.task_role.as_ref().map(|r| r.resolve(cx)).transpose()?;
        Ok((exec, task))
    }
    async fn register(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let (exec, task) = self.roles(cx)?;
        let defs = container_definitions(&self.containers, self.service_connect, &self.log_group.resolve(cx)?, &self.c.region)?;
        let req = aws
            .ecs()
            .register_task_definition()
            .family(&self.family)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .cpu(self.cpu.to_string())
            .memory(self.memory.to_string())
            .set_execution_role_arn(exec)
            .set_task_role_arn(task)
            .set_container_definitions(Some(defs))
            .set_runtime_platform(self.runtime_platform.as_ref().map(|r| {
                ecs::RuntimePlatform::builder()
                    .set_cpu_architecture(r.cpu_architecture.as_deref().map(ecs::CpuArchitecture::from))
                    .set_operating_system_family(r.operating_system_family.as_deref().map(ecs::OsFamily::from))
                    .build()
            }))
            .set_ephemeral_storage(self.ephemeral_storage_gib.map(|g| ecs::EphemeralStorage::builder().size_in_gib(g as i32).build()))
            .set_volumes(Some(self.volumes.iter().map(sdk_volume).collect()).filter(|v: &Vec<_>| !v.is_empty()))
            .set_tags(Some(ecs_tags(&self.c.create_tags(&self.key, None, cx))))
            .send();
        let (out, attempts) = crate::calls::counted(req).await;
        let out = out.map_err(|e| aws_err("ecs:RegisterTaskDefinition", e))?;
        let td = out.task_definition().ok_or_else(|| NodeError::no_identity("ecs:RegisterTaskDefinition"))?;
        let arn = td.task_definition_arn().filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("ecs:RegisterTaskDefinition"))?.to_string();
        if attempts > 1 {
            // A retry after a lost answer registered a second revision: the first is this apply's too.
            self.deregister_duplicates(aws, &arn, cx).await.map_err(|e| e.with_id(&arn))?;
        }
        Ok(Made::id(&arn).with("revision", td.revision().to_string()))
    }
    async fn deregister_duplicates(&self, aws: &Aws, keep: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let list = aws
            .ecs()
            .list_task_definitions()
            .family_prefix(&self.family)
            .status(ecs::TaskDefinitionStatus::Active)
            .sort(ecs::SortOrder::Desc)
            .send()
            .await
            .map_err(|e| aws_err("ecs:ListTaskDefinitions", e))?;
        let lease = cx.lease.tag_value();
        for arn in list.task_definition_arns().iter().filter(|a| *a != keep).take(5) {
            if let Some((_, tags)) = Self::describe_td(aws, arn).await? {
                if tags_of(&tags).get(LEASE_TAG) == Some(&lease) {
                    tracing::warn!(target: "cxflow::children::ecs", duplicate = arn.as_str(), kept = keep, "a retried registration made a second revision: deregistering it");
                    self.remove(aws, arn).await?;
                }
            }
        }
        Ok(())
    }
    async fn remove(&self, aws: &Aws, arn: &str) -> Result<(), NodeError> {
        match aws.ecs().deregister_task_definition().task_definition(arn).send().await.map_err(|e| aws_err("ecs:DeregisterTaskDefinition", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_code(&["ClientException"]) => {}
            Err(e) => return Err(e.into()),
        }
        // Deregistered revisions linger (INACTIVE) unless deleted.
        match aws.ecs().delete_task_definitions().task_definitions(arn).send().await.map_err(|e| aws_err("ecs:DeleteTaskDefinitions", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() || e.is_code(&["ClientException"]) => Ok(()),
            Err(e) => {
                tracing::warn!(target: "cxflow::children::ecs", task_definition = arn, error = %e, "deregistered, but ecs:DeleteTaskDefinitions failed; the revision stays INACTIVE");
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Node<Aws> for TaskDefinitionNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.log_group.key().into_iter().collect();
        d.extend(self.execution_role.as_ref().and_then(Ref::key));
        d.extend(self.task_role.as_ref().and_then(Ref::key));
        d
    }
    fn describe(&self) -> String {
        format!("task definition {}", self.family)
    }
    fn spec(&self) -> Spec {
        let defs = container_definitions(&self.containers, self.service_connect, &self.log_group.spec(), &self.c.region).map(|d| Self::canon_defs(&d)).unwrap_or(Json::Null);
        let mut s = json!({
            "family": self.family, "cpu": self.cpu.to_string(), "memory": self.memory.to_string(), "containers": defs,
            "execution_role": self.execution_role.as_ref().map(Ref::spec), "task_role": self.task_role.as_ref().map(Ref::spec),
            "tags": tags_json(&self.wanted_tags()),
        });
        if self.adopts_foreign {
            s.as_object_mut().expect("object").remove("tags");
        }
        s.as_object_mut().expect("object").extend(task_extras(self.runtime_platform.as_ref(), self.ephemeral_storage_gib, &self.volumes));
        spec(s)
    }
    /// Task definitions are immutable: any change but tags registers a new revision.
    fn replaced_by(&self) -> &'static [&'static str] {
        &["*"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        // Families are shared by design (every revision is its own object): only
        // the latest active revision is considered.
        let Some((td, tags)) = Self::describe_td(aws, &self.family).await? else { return Ok(Found::None) };
        Ok(match td.task_definition_arn() {
            Some(arn) if td_active(&td) => Found::Tagged(Identity::new(arn), tags_of(&tags)),
            _ => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.register(aws, cx).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some((td, tags)) = Self::describe_td(aws, &id.id).await? else { return Ok(None) };
        if !td_active(&td) {
            return Ok(None);
        }
        let refs = self.ref_ids(cx);
        let mut defs = Self::canon_defs(td.container_definitions());
        refs_back(&mut defs, &refs);
        let role = |arn: Option<&str>, r: &Option<Ref>| arn.map(|a| r.as_ref().map(|r| r.observed(a, cx)).unwrap_or_else(|| a.to_string()));
        let runtime = td.runtime_platform().map(|r| RuntimePlatform {
            cpu_architecture: r.cpu_architecture().map(|a| a.as_str().to_string()),
            operating_system_family: r.operating_system_family().map(|o| o.as_str().to_string()),
        });
        let mut s = json!({
            "family": td.family(), "cpu": td.cpu(), "memory": td.memory(), "containers": defs,
            "execution_role": role(td.execution_role_arn(), &self.execution_role), "task_role": role(td.task_role_arn(), &self.task_role),
            "tags": tags_json(&tags_of(&tags)), "revision": td.revision(),
        });
        s.as_object_mut().expect("object").extend(task_extras(runtime.as_ref(), td.ephemeral_storage().map(|e| i64::from(e.size_in_gib())), &volumes_of(&td)));
        if self.adopts_foreign {
            s.as_object_mut().expect("object").remove("tags");
        }
        Ok(Some(spec(s)))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        // Only tags change in place (anything else is a new revision, see replaced_by).
        ecs_retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.wanted_tags()).await?;
        let revision = id.id.rsplit(':').next().unwrap_or_default().to_string();
        Ok(Made::identity(id.clone()).with("revision", revision))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        self.remove(aws, &id.id).await?;
        if self.adopts_foreign {
            let revision = id.id.rsplit(':').next().and_then(|r| r.parse::<i32>().ok()).unwrap_or(0);
            self.sweep_owned(aws, revision).await?;
        }
        Ok(())
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        ecs_release(aws, &id.id, cx).await
    }
}

impl TaskDefinitionNode {
    /// Revisions this composite registered before it adopted one of CI's: the
    /// record names only the adopted one, so a delete of revision `below`
    /// finds the earlier ones by their ownership tag (the newest hundred of
    /// the family). Later revisions are left: one may be the live one.
    async fn sweep_owned(&self, aws: &Aws, below: i32) -> Result<(), NodeError> {
        let owner = self.c.owner.tag_value().to_string();
        let list = aws
            .ecs()
            .list_task_definitions()
            .family_prefix(&self.family)
            .status(ecs::TaskDefinitionStatus::Active)
            .sort(ecs::SortOrder::Desc)
            .max_results(100)
            .send()
            .await
            .map_err(|e| aws_err("ecs:ListTaskDefinitions", e))?;
        for arn in list.task_definition_arns() {
            let Some((td, tags)) = Self::describe_td(aws, arn).await? else { continue };
            if td.family() == Some(self.family.as_str()) && td.revision() < below && tags_of(&tags).get(crate::engine::OWNER_TAG) == Some(&owner) {
                self.remove(aws, arn).await?;
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ service

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceConnectSpec {
    pub namespace: String,
    /// The ports published; none: a client only.
    pub services: Vec<ScService>,
    /// Service Connect's own log configuration (log driver, options).
    pub log: Option<(String, BTreeMap<String, String>)>,
}

/// One port published through Service Connect.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScService {
    pub port_name: String,
    pub discovery_name: String,
    pub ingress_port_override: Option<i64>,
    /// (port, DNS name) clients use; no DNS name: `<discovery name>.<namespace>`.
    pub aliases: Vec<(i64, Option<String>)>,
    pub idle_timeout: Option<i64>,
    pub per_request_timeout: Option<i64>,
    pub tls: Option<ScTls>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScTls {
    pub private_ca_arn: String,
    pub kms_key: Option<String>,
    pub role_arn: Option<String>,
}

impl ScService {
    fn to_aws(&self) -> Result<ecs::ServiceConnectService, NodeError> {
        let bad = |e: aws_sdk_ecs::error::BuildError| other(format!("internal error building the Service Connect configuration: {e}"));
        let mut b = ecs::ServiceConnectService::builder()
            .port_name(&self.port_name)
            .discovery_name(&self.discovery_name)
            .set_ingress_port_override(self.ingress_port_override.map(|p| p as i32));
        for (port, dns) in &self.aliases {
            b = b.client_aliases(ecs::ServiceConnectClientAlias::builder().port(*port as i32).set_dns_name(dns.clone()).build().map_err(bad)?);
        }
        if self.idle_timeout.is_some() || self.per_request_timeout.is_some() {
            b = b.timeout(
                ecs::TimeoutConfiguration::builder()
                    .set_idle_timeout_seconds(self.idle_timeout.map(|v| v as i32))
                    .set_per_request_timeout_seconds(self.per_request_timeout.map(|v| v as i32))
                    .build(),
            );
        }
        if let Some(t) = &self.tls {
            b = b.tls(
                ecs::ServiceConnectTlsConfiguration::builder()
                    .issuer_certificate_authority(ecs::ServiceConnectTlsCertificateAuthority::builder().aws_pca_authority_arn(&t.private_ca_arn).build())
                    .set_kms_key(t.kms_key.clone())
                    .set_role_arn(t.role_arn.clone())
                    .build(),
            );
        }
        b.build().map_err(bad)
    }
    fn spec(&self) -> Json {
        json!({
            "port_name": self.port_name, "discovery_name": self.discovery_name, "ingress_port_override": self.ingress_port_override,
            "aliases": self.aliases.iter().map(|(p, d)| json!({"port": p, "dns_name": d})).collect::<Vec<_>>(),
            "timeout": {"idle": self.idle_timeout, "per_request": self.per_request_timeout},
            "tls": self.tls.as_ref().map(|t| json!({"private_ca_arn": t.private_ca_arn, "kms_key": t.kms_key, "role_arn": t.role_arn})),
        })
    }
    /// A service as ECS reports it, in the shape of `spec` (a DNS name ECS
    /// filled in where the configuration has none is not compared).
    pub fn observed(s: &ecs::ServiceConnectService, want: Option<&ScService>) -> Json {
        let aliases: Vec<Json> = s
            .client_aliases()
            .iter()
            .map(|a| {
                let configured = want.and_then(|w| w.aliases.iter().find(|(p, _)| *p == i64::from(a.port()))).map(|(_, d)| d.is_some()).unwrap_or(true);
                json!({"port": a.port(), "dns_name": if configured { a.dns_name() } else { None }})
            })
            .collect();
        let t = s.timeout();
        let tls =
            s.tls().map(|t| json!({"private_ca_arn": t.issuer_certificate_authority().and_then(|c| c.aws_pca_authority_arn()), "kms_key": t.kms_key(), "role_arn": t.role_arn()}));
        json!({
            "port_name": s.port_name(), "discovery_name": s.discovery_name().unwrap_or(s.port_name()), "ingress_port_override": s.ingress_port_override(),
            "aliases": aliases,
            "timeout": {"idle": t.and_then(|t| t.idle_timeout_seconds()), "per_request": t.and_then(|t| t.per_request_timeout_seconds())},
            "tls": tls,
        })
    }
}

/// The Cloud Map service the tasks register in; a container and port for SRV records.
#[derive(Clone, Debug, PartialEq)]
pub struct Registry {
    pub arn: Ref,
    pub container: Option<(String, i64)>,
}

/// Where the load balancer sends traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct LbTarget {
    pub target_group: Ref,
    pub container: String,
    pub port: i64,
}

pub struct ServiceNode {
    pub c: Arc<Common>,
    pub key: String,
    /// Cluster name or ARN.
    pub cluster: Ref,
    pub name: String,
    pub task_definition: Ref,
    pub desired_count: i64,
    pub subnets: Vec<Ref>,
    pub security_groups: Vec<Ref>,
    pub public_ip: bool,
    pub exec: bool,
    /// (enable, rollback) of the deployment circuit breaker.
    pub circuit_breaker: (bool, bool),
    pub service_connect: Option<ServiceConnectSpec>,
    pub load_balancer: Option<LbTarget>,
    pub registry: Option<Registry>,
    /// Wait for the deployment to complete after create and update.
    pub wait: bool,
    /// Children that must exist first although not referenced (a listener rule, NAT routes).
    pub after: Vec<String>,
    pub extras: ServiceExtras,
}

/// The service settings beyond the basics, with AWS's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceExtras {
    /// An autoscaler owns the desired count: it is set on create only and never compared.
    pub scaled: bool,
    /// (capacity provider, weight, base); empty: launch type FARGATE.
    pub capacity: Vec<(String, i64, i64)>,
    pub platform_version: String,
    pub minimum_healthy_percent: i64,
    pub maximum_percent: i64,
    /// CloudWatch alarms that fail a deployment, and whether they roll it back.
    pub alarms: Option<(Vec<String>, bool)>,
    pub health_check_grace_period: i64,
    pub propagate_tags: String,
    pub managed_tags: bool,
    /// `redeploy_trigger`, kept in the tag `cxflow:redeploy`: a change forces a new deployment.
    pub redeploy: Option<String>,
}

impl Default for ServiceExtras {
    fn default() -> Self {
        ServiceExtras {
            scaled: false,
            capacity: Vec::new(),
            platform_version: "LATEST".into(),
            minimum_healthy_percent: 100,
            maximum_percent: 200,
            alarms: None,
            health_check_grace_period: 0,
            propagate_tags: "SERVICE".into(),
            managed_tags: true,
            redeploy: None,
        }
    }
}

/// A capacity provider strategy in canonical form: launch type FARGATE (no
/// strategy) is the strategy of FARGATE alone, weight 1.
fn capacity_spec(items: &[(String, i64, i64)]) -> Json {
    if items.is_empty() {
        return json!([{"provider": "FARGATE", "weight": 1, "base": 0}]);
    }
    json!(items.iter().map(|(p, w, b)| json!({"provider": p, "weight": w, "base": b})).collect::<Vec<_>>())
}

/// The tag that carries a service's redeploy trigger.
pub const REDEPLOY_TAG: &str = "cxflow:redeploy";

/// The service if it exists (INACTIVE services are deleted ones).
pub async fn describe_service(aws: &Aws, cluster: &str, name: &str) -> Result<Option<ecs::Service>, AwsError> {
    Ok(find_service(aws, cluster, name).await?.ok())
}

/// The service, or why DescribeServices did not return one: AWS's failure
/// reason (and detail), or `INACTIVE` for a deleted service.
pub async fn find_service(aws: &Aws, cluster: &str, name: &str) -> Result<Result<ecs::Service, String>, AwsError> {
    let out = aws.ecs().describe_services().cluster(cluster).services(name).include(ecs::ServiceField::Tags).send().await.map_err(|e| aws_err("ecs:DescribeServices", e))?;
    if let Some(s) = out.services().iter().find(|s| s.status() != Some("INACTIVE")) {
        return Ok(Ok(s.clone()));
    }
    let failure = out.failures().iter().find_map(|f| {
        let reason = f.reason()?;
        Some(match f.detail() {
            Some(d) => format!("{reason} ({d})"),
            None => reason.to_string(),
        })
    });
    let deleted = (!out.services().is_empty()).then(|| "INACTIVE (the service was deleted)".to_string());
    Ok(Err(failure.or(deleted).unwrap_or_else(|| "no service and no failure returned".to_string())))
}

/// Whether a service is steady: the deployment this apply or action started
/// (`deployment`, the id CreateService/UpdateService answered; the primary
/// one when unknown) has completed, it is the only one and enough tasks run
/// (surplus ones are draining). Else how far it is; an error when that
/// deployment failed or was rolled back (circuit breaker, alarms: the
/// rollback deployment completing must not read as success), naming the
/// revision now running. `wanted` is the task definition it rolls out.
pub fn steady_state(svc: &ecs::Service, deployment: Option<&str>, wanted: Option<&str>) -> Result<Poll<()>, String> {
    let primary = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
    let ours = match deployment {
        Some(id) => svc.deployments().iter().find(|d| d.id() == Some(id)),
        None => primary,
    };
    let running = primary.and_then(|d| d.task_definition()).map(revision_of).unwrap_or("an unknown revision");
    if let Some(d) = ours.filter(|d| d.rollout_state() == Some(&ecs::DeploymentRolloutState::Failed)) {
        let reason = d.rollout_state_reason().unwrap_or("no reason given");
        let now = if d.status() == Some("PRIMARY") { "no deployment replaced it".to_string() } else { format!("the service rolled back and now runs {running}") };
        return Err(format!("the deployment {} failed: {reason} ({now})", d.id().unwrap_or("?")));
    }
    // Our deployment is gone and another revision is primary: it was rolled back.
    let replaced = primary.and_then(|d| d.task_definition()).is_some_and(|td| wanted.is_some_and(|w| w != td));
    if let (Some(id), None, true) = (deployment, ours, replaced) {
        return Err(format!("the deployment {id} was rolled back: the service now runs {running}"));
    }
    let rollout = primary.and_then(|d| d.rollout_state());
    let status =
        format!("{} of {} tasks running, {} pending, rollout {}", svc.running_count(), svc.desired_count(), svc.pending_count(), rollout.map(|r| r.as_str()).unwrap_or("unknown"));
    let done = svc.running_count() >= svc.desired_count() && svc.deployments().len() <= 1 && matches!(rollout, None | Some(ecs::DeploymentRolloutState::Completed));
    Ok(if done { Poll::Done(()) } else { Poll::Pending(status) })
}

/// The latest service events, quoted for an error message.
pub fn latest_events(svc: &ecs::Service) -> String {
    quote_events(&svc.events().iter().take(5).filter_map(|e| e.message().map(str::to_string)).collect::<Vec<_>>())
}

/// The PRIMARY deployment a CreateService/UpdateService answer reports.
pub fn primary_deployment(svc: Option<&ecs::Service>) -> Option<String> {
    svc?.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id()).map(str::to_string)
}

/// `family:revision` of a task definition ARN.
pub fn revision_of(arn: &str) -> &str {
    arn.rsplit_once(":task-definition/").map(|(_, r)| r).unwrap_or(arn)
}

fn quote_events(ev: &[String]) -> String {
    if ev.is_empty() { "(none reported)".to_string() } else { ev.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join("; ") }
}

pub fn is_cluster_missing(e: &AwsError) -> bool {
    e.is_code(&["ClusterNotFoundException"])
}

/// The cluster name of a service ARN (`…:service/<cluster>/<name>`).
pub fn cluster_of_service(arn: &str) -> Option<&str> {
    arn.split(":service/").nth(1).and_then(|t| t.split('/').next())
}

impl ServiceNode {
    fn resolve_all(refs: &[Ref], cx: &Cx<'_>) -> Result<Vec<String>, NodeError> {
        let mut v = refs.iter().map(|r| r.resolve(cx)).collect::<Result<Vec<_>, _>>()?;
        v.sort();
        v.dedup();
        Ok(v)
    }
    fn network(&self, cx: &Cx<'_>) -> Result<ecs::NetworkConfiguration, NodeError> {
        let vpc = ecs::AwsVpcConfiguration::builder()
            .set_subnets(Some(Self::resolve_all(&self.subnets, cx)?))
            .set_security_groups(Some(Self::resolve_all(&self.security_groups, cx)?))
            .assign_public_ip(if self.public_ip { ecs::AssignPublicIp::Enabled } else { ecs::AssignPublicIp::Disabled })
            .build()
            .map_err(|e| other(format!("internal error building the network configuration: {e}")))?;
        Ok(ecs::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
    }
    fn load_balancers(&self, cx: &Cx<'_>) -> Result<Vec<ecs::LoadBalancer>, NodeError> {
        let Some(t) = &self.load_balancer else { return Ok(Vec::new()) };
        Ok(vec![ecs::LoadBalancer::builder().target_group_arn(t.target_group.resolve(cx)?).container_name(&t.container).container_port(t.port as i32).build()])
    }
    fn registries(&self, cx: &Cx<'_>) -> Result<Vec<ecs::ServiceRegistry>, NodeError> {
        let Some(r) = &self.registry else { return Ok(Vec::new()) };
        let (name, port) = r.container.clone().unzip();
        Ok(vec![ecs::ServiceRegistry::builder().registry_arn(r.arn.resolve(cx)?).set_container_name(name).set_container_port(port.map(|p| p as i32)).build()])
    }
    fn registry_spec(&self) -> Json {
        json!(self.registry.iter().map(|r| json!({"arn": r.arn.spec(), "container": r.container})).collect::<Vec<_>>())
    }
    fn service_connect_config(&self) -> Result<Option<ecs::ServiceConnectConfiguration>, NodeError> {
        let Some(sc) = &self.service_connect else { return Ok(None) };
        let mut b = ecs::ServiceConnectConfiguration::builder().enabled(true).namespace(&sc.namespace);
        for svc in &sc.services {
            b = b.services(svc.to_aws()?);
        }
        if let Some((driver, options)) = &sc.log {
            let log = ecs::LogConfiguration::builder()
                .log_driver(ecs::LogDriver::from(driver.as_str()))
                .set_options(Some(options.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
                .build()
                .map_err(|e| other(format!("internal error building the Service Connect log configuration: {e}")))?;
            b = b.log_configuration(log);
        }
        Ok(Some(b.build()))
    }
    fn deployment(&self) -> ecs::DeploymentConfiguration {
        let (enable, rollback) = self.circuit_breaker;
        let x = &self.extras;
        let alarms =
            x.alarms.as_ref().and_then(|(names, rollback)| ecs::DeploymentAlarms::builder().set_alarm_names(Some(names.clone())).enable(true).rollback(*rollback).build().ok());
        ecs::DeploymentConfiguration::builder()
            .deployment_circuit_breaker(ecs::DeploymentCircuitBreaker::builder().enable(enable).rollback(rollback).build())
            .minimum_healthy_percent(x.minimum_healthy_percent as i32)
            .maximum_percent(x.maximum_percent as i32)
            .set_alarms(alarms)
            .build()
    }
    fn strategy(&self) -> Result<Vec<ecs::CapacityProviderStrategyItem>, NodeError> {
        self.extras
            .capacity
            .iter()
            .map(|(p, w, b)| {
                ecs::CapacityProviderStrategyItem::builder().capacity_provider(p).weight(*w as i32).base(*b as i32).build().map_err(|e| other(format!("internal error: {e}")))
            })
            .collect()
    }
    fn extras_spec(&self) -> Json {
        let x = &self.extras;
        json!({
            "capacity": capacity_spec(&x.capacity),
            "platform_version": x.platform_version,
            "deployment": {"minimum_healthy_percent": x.minimum_healthy_percent, "maximum_percent": x.maximum_percent,
                           "alarms": x.alarms.as_ref().map(|(n, r)| json!({"names": n, "rollback": r}))},
            "health_check_grace_period": x.health_check_grace_period,
            "propagate_tags": x.propagate_tags, "managed_tags": x.managed_tags, "redeploy": x.redeploy,
            // Not observable: a change of owner is seen against the prior configuration.
            "desired_count_owner": if x.scaled { "autoscaling" } else { "terraform" },
        })
    }
    fn wanted_tags(&self) -> Tags {
        let mut t = self.c.tags_for(&self.key, None);
        if let Some(r) = &self.extras.redeploy {
            t.insert(REDEPLOY_TAG.to_string(), r.clone());
        }
        t
    }
    fn create_tags(&self, cx: &Cx<'_>) -> Tags {
        let mut t = self.c.create_tags(&self.key, None, cx);
        if let Some(r) = &self.extras.redeploy {
            t.insert(REDEPLOY_TAG.to_string(), r.clone());
        }
        t
    }
    fn lb_spec(&self) -> Json {
        self.load_balancer.as_ref().map(|l| json!([{"target_group": l.target_group.spec(), "container": l.container, "port": l.port}])).unwrap_or(json!([]))
    }
    fn sc_spec(&self) -> Json {
        match &self.service_connect {
            None => Json::Null,
            Some(sc) => json!({
                "namespace": sc.namespace, "services": sc.services.iter().map(ScService::spec).collect::<Vec<_>>(),
                "log": sc.log.as_ref().map(|(d, o)| json!({"driver": d, "options": o})),
            }),
        }
    }

    /// Poll DescribeServices until the deployment this apply started
    /// (`deployment`, the id CreateService/UpdateService answered) completes
    /// and running = desired. Fails when that deployment fails or is rolled
    /// back (circuit breaker or alarms), naming the revision now running.
    async fn wait_steady(&self, aws: &Aws, cluster: &str, deployment: Option<String>, cx: &Cx<'_>) -> Result<(), NodeError> {
        let what = format!("ECS service {} to reach a steady state", self.name);
        let events = Mutex::new(Vec::<String>::new());
        let wanted = self.task_definition.resolve(cx).ok();
        let res = until(&what, cx.remaining(), cx.cancel, Duration::from_secs(1), Duration::from_secs(10), || async {
            let svc = describe_service(aws, cluster, &self.name).await?.ok_or_else(|| other("the service disappeared while waiting for it"))?;
            *events.lock().unwrap_or_else(|e| e.into_inner()) = svc.events().iter().take(5).filter_map(|e| e.message().map(str::to_string)).collect();
            steady_state(&svc, deployment.as_deref(), wanted.as_deref())
                .map_err(|reason| other(format!("{reason}. Latest service events: {}", quote_events(&events.lock().unwrap_or_else(|e| e.into_inner())))))
        })
        .await;
        match res {
            Ok(()) => {
                tracing::info!(target: "cxflow::children::ecs", service = self.name.as_str(), "service reached a steady state");
                Ok(())
            }
            Err(WaitError::Timeout { waited, last }) => {
                Err(NodeError::timeout(what, waited, format!("{last}. Latest service events: {}", quote_events(&events.lock().unwrap_or_else(|e| e.into_inner())))))
            }
            Err(WaitError::Cancelled) => Err(NodeError::cancelled()),
            Err(WaitError::Failed(e)) => Err(e),
        }
    }
}

#[async_trait]
impl Node<Aws> for ServiceNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.cluster.key().into_iter().chain(self.task_definition.key()).collect();
        d.extend(self.subnets.iter().filter_map(Ref::key));
        d.extend(self.security_groups.iter().filter_map(Ref::key));
        d.extend(self.load_balancer.as_ref().and_then(|l| l.target_group.key()));
        d.extend(self.registry.as_ref().and_then(|r| r.arn.key()));
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        format!("ECS service {} in cluster {}", self.name, self.cluster.spec())
    }
    fn spec(&self) -> Spec {
        let mut s = spec(json!({
            "cluster": self.cluster.spec(), "name": self.name, "task_definition": self.task_definition.spec(), "desired_count": self.desired_count,
            "subnets": ref_specs(&self.subnets), "security_groups": ref_specs(&self.security_groups), "assign_public_ip": self.public_ip,
            "enable_execute_command": self.exec, "circuit_breaker": {"enable": self.circuit_breaker.0, "rollback": self.circuit_breaker.1},
            "service_connect": self.sc_spec(), "load_balancers": self.lb_spec(), "service_registries": self.registry_spec(), "tags": tags_json(&self.wanted_tags()),
        }));
        if let Json::Object(x) = self.extras_spec() {
            s.extend(x);
        }
        // The scaler's count is not the configuration's: neither side of a diff holds it.
        if self.extras.scaled {
            s.remove("desired_count");
        }
        s
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["cluster", "name", "load_balancers"]
    }
    fn find_deps(&self) -> Vec<&str> {
        self.cluster.key().into_iter().collect()
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let cluster = self.cluster.resolve(cx)?;
        let svc = match describe_service(aws, &cluster, &self.name).await {
            Ok(s) => s,
            Err(e) if is_cluster_missing(&e) => return Err(other(format!("ECS cluster {cluster:?} does not exist ({e})"))),
            Err(e) => return Err(e.into()),
        };
        Ok(match svc {
            None => Found::None,
            Some(s) => Found::Tagged(Identity::new(s.service_arn().unwrap_or_default()), tags_of(s.tags())),
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cluster = self.cluster.resolve(cx)?;
        let out = aws
            .ecs()
            .create_service()
            .cluster(&cluster)
            .service_name(&self.name)
            .task_definition(self.task_definition.resolve(cx)?)
            .desired_count(self.desired_count as i32)
            .set_launch_type(self.extras.capacity.is_empty().then_some(ecs::LaunchType::Fargate))
            .set_capacity_provider_strategy(Some(self.strategy()?).filter(|s| !s.is_empty()))
            .platform_version(&self.extras.platform_version)
            .set_health_check_grace_period_seconds((self.load_balancer.is_some()).then_some(self.extras.health_check_grace_period as i32))
            .network_configuration(self.network(cx)?)
            .set_load_balancers(Some(self.load_balancers(cx)?).filter(|l| !l.is_empty()))
            .set_service_connect_configuration(self.service_connect_config()?)
            .set_service_registries(Some(self.registries(cx)?).filter(|r| !r.is_empty()))
            .enable_execute_command(self.exec)
            .deployment_configuration(self.deployment())
            .propagate_tags(ecs::PropagateTags::from(self.extras.propagate_tags.as_str()))
            .enable_ecs_managed_tags(self.extras.managed_tags)
            // A retried create whose first answer was lost is the same request.
            .client_token(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .set_tags(Some(ecs_tags(&self.create_tags(cx))))
            .send()
            .await
            .map_err(|e| aws_err("ecs:CreateService", e))?;
        let arn = out.service().and_then(|s| s.service_arn()).filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("ecs:CreateService"))?.to_string();
        tracing::info!(target: "cxflow::children::ecs", service = arn.as_str(), "service created");
        if self.wait {
            self.wait_steady(aws, &cluster, primary_deployment(out.service()), cx).await.map_err(|e| e.with_id(arn.clone()))?;
        }
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let cluster = self.cluster.resolve(cx).ok().or_else(|| cluster_of_service(&id.id).map(str::to_string)).unwrap_or_default();
        let svc = match aws.read_service(&cluster, &self.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) if is_cluster_missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // The cluster is where the service was found: it cannot have moved, so it is not reported.
        let mut s = spec(json!({
            "name": svc.service_name(), "desired_count": svc.desired_count(), "tags": tags_json(&tags_of(svc.tags())),
            "running_count": svc.running_count(),
        }));
        // Under autoscaling the scaler's count is not the configuration's to compare.
        if self.extras.scaled {
            s.remove("desired_count");
        }
        let dc = svc.deployment_configuration();
        let alarms = dc.and_then(|d| d.alarms()).filter(|a| a.enable()).map(|a| json!({"names": a.alarm_names(), "rollback": a.rollback()}));
        let strategy: Vec<(String, i64, i64)> =
            svc.capacity_provider_strategy().iter().map(|c| (c.capacity_provider().to_string(), i64::from(c.weight()), i64::from(c.base()))).collect();
        s.insert("capacity".into(), capacity_spec(&strategy));
        s.insert("platform_version".into(), json!(svc.platform_version().unwrap_or("LATEST")));
        s.insert(
            "deployment".into(),
            json!({"minimum_healthy_percent": dc.and_then(|d| d.minimum_healthy_percent()).unwrap_or(100), "maximum_percent": dc.and_then(|d| d.maximum_percent()).unwrap_or(200), "alarms": alarms}),
        );
        s.insert("health_check_grace_period".into(), json!(svc.health_check_grace_period_seconds().unwrap_or(0)));
        s.insert("propagate_tags".into(), json!(svc.propagate_tags().map(|p| p.as_str()).unwrap_or("NONE")));
        s.insert("managed_tags".into(), json!(svc.enable_ecs_managed_tags()));
        s.insert("redeploy".into(), json!(svc.tags().iter().find(|t| t.key() == Some(REDEPLOY_TAG)).and_then(|t| t.value())));
        if let Some(td) = svc.task_definition() {
            s.insert("task_definition".into(), json!(self.task_definition.observed(td, cx)));
        }
        if let Some(vpc) = svc.network_configuration().and_then(|n| n.awsvpc_configuration()) {
            s.insert("subnets".into(), json!(observed_refs(vpc.subnets(), &self.subnets, cx)));
            s.insert("security_groups".into(), json!(observed_refs(vpc.security_groups(), &self.security_groups, cx)));
            if let Some(p) = vpc.assign_public_ip() {
                s.insert("assign_public_ip".into(), json!(p.as_str() == "ENABLED"));
            }
        }
        let lbs: Vec<Json> = svc
            .load_balancers()
            .iter()
            .map(|l| {
                let tg = l.target_group_arn().unwrap_or_default();
                let tg = self.load_balancer.as_ref().map(|t| t.target_group.observed(tg, cx)).unwrap_or_else(|| tg.to_string());
                json!({"target_group": tg, "container": l.container_name(), "port": l.container_port()})
            })
            .collect();
        s.insert("load_balancers".into(), json!(lbs));
        let registries: Vec<Json> = svc
            .service_registries()
            .iter()
            .map(|r| {
                let arn = r.registry_arn().unwrap_or_default();
                let arn = self.registry.as_ref().map(|w| w.arn.observed(arn, cx)).unwrap_or_else(|| arn.to_string());
                let container = r.container_name().zip(r.container_port()).map(|(n, p)| json!([n, p])).unwrap_or(Json::Null);
                json!({"arn": arn, "container": container})
            })
            .collect();
        s.insert("service_registries".into(), json!(registries));
        if let Some(cb) = svc.deployment_configuration().and_then(|d| d.deployment_circuit_breaker()) {
            s.insert("circuit_breaker".into(), json!({"enable": cb.enable(), "rollback": cb.rollback()}));
        }
        if svc.enable_execute_command() || self.exec {
            s.insert("enable_execute_command".into(), json!(svc.enable_execute_command()));
        }
        if let Some(sc) = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.service_connect_configuration()) {
            let want = self.service_connect.as_ref();
            let services: Vec<Json> = sc.services().iter().map(|p| ScService::observed(p, want.and_then(|w| w.services.iter().find(|x| x.port_name == p.port_name())))).collect();
            let log = sc
                .log_configuration()
                .map(|l| json!({"driver": l.log_driver().as_str(), "options": l.options().map(|o| o.iter().collect::<BTreeMap<_, _>>()).unwrap_or_default()}));
            // ECS reports the namespace as an ARN; a configuration naming it by name cannot be told apart without a lookup.
            let ns = sc.namespace().unwrap_or_default();
            let ns = match &self.service_connect {
                Some(want) if ns == want.namespace || (ns.starts_with("arn:") && !want.namespace.starts_with("arn:")) => want.namespace.clone(),
                _ => ns.to_string(),
            };
            s.insert("service_connect".into(), if sc.enabled() { json!({"namespace": ns, "services": services, "log": log}) } else { Json::Null });
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cluster = self.cluster.resolve(cx)?;
        let want = self.spec();
        let differs = |f: &str| base.get(f) != want.get(f);
        let mut u = aws.ecs().update_service().cluster(&cluster).service(&self.name);
        let mut any = false;
        // Under autoscaling the count is the scaler's (observation leaves it out); back from
        // autoscaling, the configured count is authoritative again.
        let count_changed = !self.extras.scaled && differs("desired_count");
        if count_changed {
            u = u.desired_count(self.desired_count as i32);
            any = true;
        }
        if differs("task_definition") {
            u = u.task_definition(self.task_definition.resolve(cx)?);
            any = true;
        }
        if differs("subnets") || differs("security_groups") || differs("assign_public_ip") {
            u = u.network_configuration(self.network(cx)?);
            any = true;
        }
        if differs("service_connect") {
            u = u.set_service_connect_configuration(Some(self.service_connect_config()?.unwrap_or_else(|| ecs::ServiceConnectConfiguration::builder().enabled(false).build())));
            any = true;
        }
        if differs("service_registries") {
            u = u.set_service_registries(Some(self.registries(cx)?));
            any = true;
        }
        if differs("enable_execute_command") {
            u = u.enable_execute_command(self.exec);
            any = true;
        }
        if differs("circuit_breaker") || differs("deployment") {
            u = u.deployment_configuration(self.deployment());
            any = true;
        }
        if differs("capacity") {
            // Moving between a launch type and a strategy needs a new deployment.
            let mut items = self.strategy()?;
            if items.is_empty() {
                // Launch type FARGATE is this strategy; a service cannot go back to a launch type in place.
                items =
                    vec![ecs::CapacityProviderStrategyItem::builder().capacity_provider("FARGATE").weight(1).base(0).build().map_err(|e| other(format!("internal error: {e}")))?];
            }
            u = u.set_capacity_provider_strategy(Some(items)).force_new_deployment(true);
            any = true;
        }
        if differs("platform_version") {
            u = u.platform_version(&self.extras.platform_version);
            any = true;
        }
        if differs("health_check_grace_period") && self.load_balancer.is_some() {
            u = u.health_check_grace_period_seconds(self.extras.health_check_grace_period as i32);
            any = true;
        }
        if differs("propagate_tags") {
            u = u.propagate_tags(ecs::PropagateTags::from(self.extras.propagate_tags.as_str()));
            any = true;
        }
        if differs("managed_tags") {
            u = u.enable_ecs_managed_tags(self.extras.managed_tags);
            any = true;
        }
        if differs("redeploy") {
            u = u.force_new_deployment(true);
            any = true;
        }
        let mut started = None;
        if any {
            let out = u.send().await.map_err(|e| aws_err("ecs:UpdateService", e))?;
            started = primary_deployment(out.service());
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => describe_service(aws, &cluster, &self.name).await?.map(|s| tags_of(s.tags())).unwrap_or_default(),
        };
        ecs_retag(aws, &id.id, &current, &self.wanted_tags()).await?;
        // Only what starts a deployment is waited for (a tag or count change is not one).
        let deploys = differs("task_definition")
            || differs("subnets")
            || differs("security_groups")
            || differs("assign_public_ip")
            || differs("service_connect")
            || differs("service_registries")
            || differs("capacity")
            || differs("platform_version")
            || differs("redeploy");
        if self.wait && (deploys || count_changed) {
            self.wait_steady(aws, &cluster, started, cx).await?;
        }
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        // The cluster from the service ARN when the dependency is gone.
        let cluster = self.cluster.resolve(cx).ok().or_else(|| cluster_of_service(&id.id).map(str::to_string)).unwrap_or_default();
        let name = &self.name;
        let svc = match describe_service(aws, &cluster, name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) if is_cluster_missing(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if svc.status() == Some("ACTIVE") && svc.desired_count() > 0 {
            match aws.ecs().update_service().cluster(&cluster).service(name).desired_count(0).send().await.map_err(|e| aws_err("ecs:UpdateService", e)) {
                Ok(_) => {}
                Err(e) if e.is_code(&["ServiceNotActiveException", "ServiceNotFoundException"]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match aws.ecs().delete_service().cluster(&cluster).service(name).force(true).send().await.map_err(|e| aws_err("ecs:DeleteService", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_code(&["ServiceNotActiveException"]) => {}
            Err(e) => return Err(e.into()),
        }
        let res = until(&format!("ECS service {name} to drain"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || async {
            match describe_service(aws, &cluster, name).await {
                Ok(None) => Ok(Poll::Done(())),
                Ok(Some(s)) => Ok(Poll::Pending(format!("status {}, {} tasks still running", s.status().unwrap_or("?"), s.running_count()))),
                Err(e) if is_cluster_missing(&e) => Ok(Poll::Done(())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await;
        res.map_err(|e| super::wait_err("the service to drain (raise timeouts.delete to wait longer)", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        ecs_release(aws, &id.id, cx).await
    }
}

/// The tags a service reports (for composites reading them back).
pub fn service_tags(s: &ecs::Service) -> BTreeMap<String, String> {
    tags_of(s.tags())
}
