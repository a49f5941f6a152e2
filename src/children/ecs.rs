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

/// One container of a task definition.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub port: Option<i64>,
    pub essential: Option<bool>,
    pub command: Option<Vec<String>>,
    pub environment: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, String>>,
    pub health_check: Option<HealthCheck>,
    /// Docker labels on the container.
    pub docker_labels: Option<BTreeMap<String, String>>,
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
        if let Some(p) = c.port {
            let mut pm = ecs::PortMapping::builder().container_port(p as i32).protocol(ecs::TransportProtocol::Tcp).name(&c.name);
            if service_connect {
                pm = pm.app_protocol(ecs::ApplicationProtocol::Http);
            }
            b = b.port_mappings(pm.build());
        }
        if let Some(cmd) = &c.command {
            b = b.set_command(Some(cmd.clone()));
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
        b = b.log_configuration(
            ecs::LogConfiguration::builder()
                .log_driver(ecs::LogDriver::Awslogs)
                .options("awslogs-group", log_group)
                .options("awslogs-region", region)
                .options("awslogs-stream-prefix", &c.name)
                .build()
                .map_err(bad)?,
        );
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

/// Container blocks as a canonical container spec describes them (for import).
pub fn containers_from_spec(defs: &[Json]) -> Vec<Container> {
    defs.iter()
        .map(|d| {
            let strs = |k: &str| d.get(k).and_then(Json::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect::<Vec<_>>());
            let map = |k: &str| d.get(k).and_then(Json::as_object).map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect::<BTreeMap<_, _>>());
            Container {
                name: d["name"].as_str().unwrap_or_default().to_string(),
                image: d["image"].as_str().unwrap_or_default().to_string(),
                port: d["portMappings"].get(0).and_then(|p| p["containerPort"].as_i64()),
                essential: Some(d.get("essential").and_then(Json::as_bool).unwrap_or(true)),
                command: strs("command"),
                environment: Some(map("environment").unwrap_or_default()),
                secrets: Some(map("secrets").unwrap_or_default()),
                docker_labels: map("dockerLabels"),
                health_check: d.get("healthCheck").map(|h| HealthCheck {
                    command: h["command"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default(),
                    interval: h["interval"].as_i64(),
                    timeout: h["timeout"].as_i64(),
                    retries: h["retries"].as_i64(),
                    start_period: h["startPeriod"].as_i64(),
                }),
            }
        })
        .collect()
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
        spec(json!({
            "family": self.family, "cpu": self.cpu.to_string(), "memory": self.memory.to_string(), "containers": defs,
            "execution_role": self.execution_role.as_ref().map(Ref::spec), "task_role": self.task_role.as_ref().map(Ref::spec),
            "tags": tags_json(&self.wanted_tags()),
        }))
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
        Ok(Some(spec(json!({
            "family": td.family(), "cpu": td.cpu(), "memory": td.memory(), "containers": defs,
            "execution_role": role(td.execution_role_arn(), &self.execution_role), "task_role": role(td.task_role_arn(), &self.task_role),
            "tags": tags_json(&tags_of(&tags)), "revision": td.revision(),
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        // Only tags change in place (anything else is a new revision, see replaced_by).
        ecs_retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.wanted_tags()).await?;
        let revision = id.id.rsplit(':').next().unwrap_or_default().to_string();
        Ok(Made::identity(id.clone()).with("revision", revision))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        self.remove(aws, &id.id).await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        ecs_release(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ service

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceConnectSpec {
    pub namespace: String,
    /// (port name, port) published under the service name.
    pub publish: Option<(String, i64)>,
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
    /// Wait for the deployment to complete after create and update.
    pub wait: bool,
    /// Children that must exist first although not referenced (a listener rule, NAT routes).
    pub after: Vec<String>,
}

/// The service if it exists (INACTIVE services are deleted ones).
pub async fn describe_service(aws: &Aws, cluster: &str, name: &str) -> Result<Option<ecs::Service>, AwsError> {
    let out = aws.ecs().describe_services().cluster(cluster).services(name).include(ecs::ServiceField::Tags).send().await.map_err(|e| aws_err("ecs:DescribeServices", e))?;
    Ok(out.services().iter().find(|s| s.status() != Some("INACTIVE")).cloned())
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
    fn service_connect_config(&self) -> Result<Option<ecs::ServiceConnectConfiguration>, NodeError> {
        let Some(sc) = &self.service_connect else { return Ok(None) };
        let mut b = ecs::ServiceConnectConfiguration::builder().enabled(true).namespace(&sc.namespace);
        if let Some((port_name, port)) = &sc.publish {
            let alias = ecs::ServiceConnectClientAlias::builder().port(*port as i32).build().map_err(|e| other(format!("internal error: {e}")))?;
            b = b.services(
                ecs::ServiceConnectService::builder()
                    .port_name(port_name)
                    .discovery_name(&self.name)
                    .client_aliases(alias)
                    .build()
                    .map_err(|e| other(format!("internal error: {e}")))?,
            );
        }
        Ok(Some(b.build()))
    }
    fn deployment(&self) -> ecs::DeploymentConfiguration {
        let (enable, rollback) = self.circuit_breaker;
        ecs::DeploymentConfiguration::builder().deployment_circuit_breaker(ecs::DeploymentCircuitBreaker::builder().enable(enable).rollback(rollback).build()).build()
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn lb_spec(&self) -> Json {
        self.load_balancer.as_ref().map(|l| json!([{"target_group": l.target_group.spec(), "container": l.container, "port": l.port}])).unwrap_or(json!([]))
    }
    fn sc_spec(&self) -> Json {
        match &self.service_connect {
            None => Json::Null,
            Some(sc) => json!({"namespace": sc.namespace, "publish": sc.publish}),
        }
    }

    /// Poll DescribeServices until the deployment completes and running = desired.
    async fn wait_steady(&self, aws: &Aws, cluster: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let what = format!("ECS service {} to reach a steady state", self.name);
        let events = Mutex::new(Vec::<String>::new());
        let res = until(&what, cx.remaining(), cx.cancel, Duration::from_secs(1), Duration::from_secs(10), || async {
            let svc = describe_service(aws, cluster, &self.name).await?.ok_or_else(|| other("the service disappeared while waiting for it"))?;
            *events.lock().unwrap_or_else(|e| e.into_inner()) = svc.events().iter().take(5).filter_map(|e| e.message().map(str::to_string)).collect();
            let primary = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
            let rollout = primary.and_then(|d| d.rollout_state());
            if rollout == Some(&ecs::DeploymentRolloutState::Failed) {
                let reason = primary.and_then(|d| d.rollout_state_reason()).unwrap_or("no reason given");
                return Err(other(format!("the deployment failed: {reason}. Latest service events: {}", quote_events(&events.lock().unwrap_or_else(|e| e.into_inner())))));
            }
            let status = format!(
                "{} of {} tasks running, {} pending, rollout {}",
                svc.running_count(),
                svc.desired_count(),
                svc.pending_count(),
                rollout.map(|r| r.as_str()).unwrap_or("unknown")
            );
            // Done when the only deployment has completed and enough tasks run (surplus ones are draining).
            let done = svc.running_count() >= svc.desired_count() && svc.deployments().len() <= 1 && matches!(rollout, None | Some(ecs::DeploymentRolloutState::Completed));
            Ok::<_, NodeError>(if done { Poll::Done(()) } else { Poll::Pending(status) })
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
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        format!("ECS service {} in cluster {}", self.name, self.cluster.spec())
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "cluster": self.cluster.spec(), "name": self.name, "task_definition": self.task_definition.spec(), "desired_count": self.desired_count,
            "subnets": ref_specs(&self.subnets), "security_groups": ref_specs(&self.security_groups), "assign_public_ip": self.public_ip,
            "enable_execute_command": self.exec, "circuit_breaker": {"enable": self.circuit_breaker.0, "rollback": self.circuit_breaker.1},
            "service_connect": self.sc_spec(), "load_balancers": self.lb_spec(), "tags": tags_json(&self.wanted_tags()),
        }))
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
            .launch_type(ecs::LaunchType::Fargate)
            .network_configuration(self.network(cx)?)
            .set_load_balancers(Some(self.load_balancers(cx)?).filter(|l| !l.is_empty()))
            .set_service_connect_configuration(self.service_connect_config()?)
            .enable_execute_command(self.exec)
            .deployment_configuration(self.deployment())
            .propagate_tags(ecs::PropagateTags::Service)
            .enable_ecs_managed_tags(true)
            // A retried create whose first answer was lost is the same request.
            .client_token(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .set_tags(Some(ecs_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("ecs:CreateService", e))?;
        let arn = out.service().and_then(|s| s.service_arn()).filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("ecs:CreateService"))?.to_string();
        tracing::info!(target: "cxflow::children::ecs", service = arn.as_str(), "service created");
        if self.wait {
            self.wait_steady(aws, &cluster, cx).await.map_err(|e| e.with_id(arn.clone()))?;
        }
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let cluster = self.cluster.resolve(cx).ok().or_else(|| cluster_of_service(&id.id).map(str::to_string)).unwrap_or_default();
        let svc = match describe_service(aws, &cluster, &self.name).await {
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
        if let Some(cb) = svc.deployment_configuration().and_then(|d| d.deployment_circuit_breaker()) {
            s.insert("circuit_breaker".into(), json!({"enable": cb.enable(), "rollback": cb.rollback()}));
        }
        if svc.enable_execute_command() || self.exec {
            s.insert("enable_execute_command".into(), json!(svc.enable_execute_command()));
        }
        if let Some(sc) = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.service_connect_configuration()) {
            let publish = sc.services().first().and_then(|p| Some((p.port_name().to_string(), i64::from(p.client_aliases().first()?.port()))));
            // ECS reports the namespace as an ARN; a configuration naming it by name cannot be told apart without a lookup.
            let ns = sc.namespace().unwrap_or_default();
            let ns = match &self.service_connect {
                Some(want) if ns == want.namespace || (ns.starts_with("arn:") && !want.namespace.starts_with("arn:")) => want.namespace.clone(),
                _ => ns.to_string(),
            };
            s.insert("service_connect".into(), if sc.enabled() { json!({"namespace": ns, "publish": publish}) } else { Json::Null });
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cluster = self.cluster.resolve(cx)?;
        let want = self.spec();
        let differs = |f: &str| base.get(f) != want.get(f);
        let mut u = aws.ecs().update_service().cluster(&cluster).service(&self.name);
        let mut any = false;
        if differs("desired_count") {
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
        if differs("enable_execute_command") {
            u = u.enable_execute_command(self.exec);
            any = true;
        }
        if differs("circuit_breaker") {
            u = u.deployment_configuration(self.deployment());
            any = true;
        }
        if any {
            u.send().await.map_err(|e| aws_err("ecs:UpdateService", e))?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => describe_service(aws, &cluster, &self.name).await?.map(|s| tags_of(s.tags())).unwrap_or_default(),
        };
        ecs_retag(aws, &id.id, &current, &self.wanted_tags()).await?;
        // Only what starts a deployment is waited for (a tag or count change is not one).
        let deploys = differs("task_definition") || differs("subnets") || differs("security_groups") || differs("assign_public_ip") || differs("service_connect");
        if self.wait && (deploys || differs("desired_count")) {
            self.wait_steady(aws, &cluster, cx).await?;
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
        res.map_err(|e| super::wait_err("service deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        ecs_release(aws, &id.id, cx).await
    }
}

/// The tags a service reports (for composites reading them back).
pub fn service_tags(s: &ecs::Service) -> BTreeMap<String, String> {
    tags_of(s.tags())
}
