//! ECS children of a service: the Fargate task definition (a new revision per
//! change) and the service itself, with the steady-state wait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types as ecs;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Common, Ref, tag_diff};
use crate::aws::wait::{Poll, WaitError, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, Observed, Ownership};

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
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
}

pub fn ecs_tags(t: &BTreeMap<String, String>) -> Vec<ecs::Tag> {
    t.iter().map(|(k, v)| ecs::Tag::builder().key(k).value(v).build()).collect()
}

fn other(msg: impl Into<String>) -> NodeError {
    NodeError::other(msg)
}

async fn reconcile_ecs_tags(aws: &Aws, arn: &str, current: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> Result<(), NodeError> {
    let (add, remove) = tag_diff(current, desired);
    if !add.is_empty() {
        aws.ecs().tag_resource().resource_arn(arn).set_tags(Some(ecs_tags(&add))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.ecs().untag_resource().resource_arn(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecs:UntagResource", e))?;
    }
    Ok(())
}

// ------------------------------------------------------------------ task definition

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

/// The parts of a task definition this provider sets, in a comparable form
/// (the same function reads what AWS returns, so defaults line up).
fn td_canon(cpu: Option<&str>, memory: Option<&str>, exec: Option<&str>, task: Option<&str>, defs: &[ecs::ContainerDefinition]) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = defs
        .iter()
        .map(|d| {
            let env: BTreeMap<&str, &str> = d.environment().iter().map(|kv| (kv.name().unwrap_or_default(), kv.value().unwrap_or_default())).collect();
            let secrets: BTreeMap<&str, &str> = d.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
            let ports: Vec<(Option<i32>, Option<&str>, Option<&str>)> =
                d.port_mappings().iter().map(|p| (p.container_port(), p.name(), p.app_protocol().map(|a| a.as_str()))).collect();
            let health =
                d.health_check().map(|h| json!([h.command(), h.interval().unwrap_or(30), h.timeout().unwrap_or(5), h.retries().unwrap_or(3), h.start_period().unwrap_or(0)]));
            let log: Option<BTreeMap<&String, &String>> = d.log_configuration().and_then(|l| l.options()).map(|o| o.iter().collect());
            json!({
                "name": d.name(), "image": d.image(), "essential": d.essential().unwrap_or(true), "command": d.command(),
                "ports": ports, "env": env, "secrets": secrets, "health": health, "log": log,
            })
        })
        .collect();
    json!({"cpu": cpu, "memory": memory, "exec": exec, "task": task, "containers": containers})
}

/// Container blocks as a task definition describes them (for import).
pub fn containers_from_td(defs: &[ecs::ContainerDefinition]) -> Vec<Container> {
    defs.iter()
        .map(|d| Container {
            name: d.name().unwrap_or_default().to_string(),
            image: d.image().unwrap_or_default().to_string(),
            port: d.port_mappings().first().and_then(|p| p.container_port()).map(i64::from),
            essential: Some(d.essential().unwrap_or(true)),
            command: (!d.command().is_empty()).then(|| d.command().to_vec()),
            environment: Some(d.environment().iter().map(|kv| (kv.name().unwrap_or_default().to_string(), kv.value().unwrap_or_default().to_string())).collect()),
            secrets: Some(d.secrets().iter().map(|s| (s.name().to_string(), s.value_from().to_string())).collect()),
            health_check: d.health_check().map(|h| HealthCheck {
                command: h.command().to_vec(),
                interval: Some(h.interval().unwrap_or(30) as i64),
                timeout: Some(h.timeout().unwrap_or(5) as i64),
                retries: Some(h.retries().unwrap_or(3) as i64),
                start_period: Some(h.start_period().unwrap_or(0) as i64),
            }),
        })
        .collect()
}

fn td_active(td: &ecs::TaskDefinition) -> bool {
    td.status() == Some(&ecs::TaskDefinitionStatus::Active)
}

impl TaskDefinitionNode {
    fn roles(&self, cx: &Cx<'_>) -> Result<(Option<String>, Option<String>), NodeError> {
        let exec = self.execution_role.as_ref().map(|r| r.resolve(cx)).transpose()?;
        let task = self.task_role.as_ref().map(|r| r.resolve(cx)).transpose()?;
        Ok((exec, task))
    }
    async fn describe_td(aws: &Aws, id: &str) -> Result<Option<(ecs::TaskDefinition, Vec<ecs::Tag>)>, NodeError> {
        match aws.ecs().describe_task_definition().task_definition(id).include(ecs::TaskDefinitionField::Tags).send().await.map_err(|e| aws_err("ecs:DescribeTaskDefinition", e)) {
            Ok(o) => Ok(o.task_definition().cloned().map(|t| (t, o.tags().to_vec()))),
            Err(e) if e.is_not_found() || e.is_code(&["ClientException"]) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn definitions(&self, cx: &Cx<'_>) -> Result<Vec<ecs::ContainerDefinition>, NodeError> {
        container_definitions(&self.containers, self.service_connect, &self.log_group.resolve(cx)?, &self.c.region)
    }
    fn wanted_tags(&self) -> BTreeMap<String, String> {
        self.c.tags_for(&self.key, None)
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
    fn spec(&self) -> serde_json::Value {
        json!({
            "family": self.family, "cpu": self.cpu, "memory": self.memory, "containers": self.containers,
            "exec": self.execution_role.as_ref().map(Ref::spec), "task": self.task_role.as_ref().map(Ref::spec),
            "log_group": self.log_group.spec(), "service_connect": self.service_connect, "tags": self.wanted_tags(),
        })
    }
    /// Task definitions are immutable: a change registers a new revision.
    fn update_replaces(&self) -> bool {
        true
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        // Families are shared by design (every revision is its own object), so
        // only the latest revision carrying our tag is taken over; update then
        // re-registers if its content differs.
        let Some((td, tags)) = Self::describe_td(aws, &self.family).await? else { return Ok(Found::None) };
        let ours = self.c.owner.check(tags.iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))) == Ownership::Ours;
        Ok(match td.task_definition_arn() {
            Some(arn) if ours && td_active(&td) => Found::Owned(arn.to_string()),
            _ => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let (exec, task) = self.roles(cx)?;
        let out = aws
            .ecs()
            .register_task_definition()
            .family(&self.family)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .cpu(self.cpu.to_string())
            .memory(self.memory.to_string())
            .set_execution_role_arn(exec)
            .set_task_role_arn(task)
            .set_container_definitions(Some(self.definitions(cx)?))
            .set_tags(Some(ecs_tags(&self.wanted_tags())))
            .send()
            .await
            .map_err(|e| aws_err("ecs:RegisterTaskDefinition", e))?;
        let td = out.task_definition().ok_or_else(|| other("RegisterTaskDefinition returned no task definition"))?;
        Ok(Made::id(td.task_definition_arn().unwrap_or_default()).with("revision", td.revision().to_string()))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        Ok(match Self::describe_td(aws, id).await? {
            Some((td, _)) if td_active(&td) => Observed::InSync,
            _ => Observed::Gone,
        })
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let (exec, task) = self.roles(cx)?;
        if let Some((td, tags)) = Self::describe_td(aws, id).await? {
            let want = td_canon(Some(&self.cpu.to_string()), Some(&self.memory.to_string()), exec.as_deref(), task.as_deref(), &self.definitions(cx)?);
            let have = td_canon(td.cpu(), td.memory(), td.execution_role_arn(), td.task_role_arn(), td.container_definitions());
            if td_active(&td) && want == have {
                let current: BTreeMap<String, String> = tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
                reconcile_ecs_tags(aws, id, &current, &self.wanted_tags()).await?;
                return Ok(Made::id(id).with("revision", td.revision().to_string()));
            }
        }
        self.create(aws, cx).await
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.ecs().deregister_task_definition().task_definition(id).send().await.map_err(|e| aws_err("ecs:DeregisterTaskDefinition", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_code(&["ClientException"]) => {}
            Err(e) => return Err(e.into()),
        }
        // Deregistered revisions linger (INACTIVE) unless deleted; deleting is best effort.
        if let Err(e) = aws.ecs().delete_task_definitions().task_definitions(id).send().await.map_err(|e| aws_err("ecs:DeleteTaskDefinitions", e)) {
            tracing::warn!(target: "cxflow::children::ecs", task_definition = id, error = %e, "deregistered, but could not delete the revision");
        }
        Ok(())
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

fn sorted(v: &[String]) -> Vec<String> {
    let mut x = v.to_vec();
    x.sort();
    x.dedup();
    x
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
    fn cluster_id(&self, cx: &Cx<'_>) -> Result<String, NodeError> {
        self.cluster.resolve(cx)
    }
    fn wanted_tags(&self) -> BTreeMap<String, String> {
        self.c.tags_for(&self.key, None)
    }

    /// Poll DescribeServices until the deployment completes and running = desired.
    async fn wait_steady(&self, aws: &Aws, cluster: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let what = format!("ECS service {} to reach a steady state", self.name);
        let events = Mutex::new(Vec::<String>::new());
        let res = until(&what, cx.remaining(), cx.cancel, Duration::from_secs(1), Duration::from_secs(10), || async {
            let svc = describe_service(aws, cluster, &self.name).await?.ok_or_else(|| other("the service disappeared while waiting for it"))?;
            *events.lock().unwrap() = svc.events().iter().take(5).filter_map(|e| e.message().map(str::to_string)).collect();
            let primary = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
            let rollout = primary.and_then(|d| d.rollout_state());
            if rollout == Some(&ecs::DeploymentRolloutState::Failed) {
                let reason = primary.and_then(|d| d.rollout_state_reason()).unwrap_or("no reason given");
                return Err(other(format!("the deployment failed: {reason}. Latest service events: {}", quote_events(&events.lock().unwrap()))));
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
            Err(WaitError::Timeout { waited, last }) => Err(NodeError::timeout(what, waited, format!("{last}. Latest service events: {}", quote_events(&events.lock().unwrap())))),
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
    fn spec(&self) -> serde_json::Value {
        let specs = |v: &[Ref]| v.iter().map(Ref::spec).collect::<Vec<_>>();
        json!({
            "cluster": self.cluster.spec(), "name": self.name, "td": self.task_definition.spec(), "desired": self.desired_count,
            "subnets": specs(&self.subnets), "sgs": specs(&self.security_groups), "public_ip": self.public_ip, "exec": self.exec,
            "cb": self.circuit_breaker, "sc": self.service_connect,
            "lb": self.load_balancer.as_ref().map(|l| json!([l.target_group.spec(), l.container, l.port])), "tags": self.wanted_tags(),
        })
    }
    async fn adopt(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let cluster = self.cluster_id(cx)?;
        let svc = describe_service(aws, &cluster, &self.name)
            .await
            .map_err(|e| if is_cluster_missing(&e) { other(format!("ECS cluster {cluster:?} does not exist ({e})")) } else { NodeError::from(e) })?;
        let Some(svc) = svc else { return Ok(Found::None) };
        let arn = svc.service_arn().unwrap_or_default();
        Ok(self.c.owner.check(svc.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))).into_found(arn, &self.describe()))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cluster = self.cluster_id(cx)?;
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
            .set_tags(Some(ecs_tags(&self.wanted_tags())))
            .send()
            .await
            .map_err(|e| aws_err("ecs:CreateService", e))?;
        let arn = out.service().and_then(|s| s.service_arn()).ok_or_else(|| other("CreateService returned no service"))?.to_string();
        tracing::info!(target: "cxflow::children::ecs", service = arn.as_str(), "service created");
        if self.wait {
            self.wait_steady(aws, &cluster, cx).await.map_err(|e| e.with_id(arn.clone()))?;
        }
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, _id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Ok(cluster) = self.cluster_id(cx) else { return Ok(Observed::Gone) };
        let svc = match describe_service(aws, &cluster, &self.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Observed::Gone),
            Err(e) if is_cluster_missing(&e) => return Ok(Observed::Gone),
            Err(e) => return Err(e.into()),
        };
        let mut diffs = Vec::new();
        if i64::from(svc.desired_count()) != self.desired_count {
            diffs.push(format!("desired count is {}, configuration says {}", svc.desired_count(), self.desired_count));
        }
        if let Ok(td) = self.task_definition.resolve(cx) {
            if svc.task_definition() != Some(td.as_str()) {
                diffs.push(format!("it runs task definition {}, not {td}", svc.task_definition().unwrap_or("(none)")));
            }
        }
        if let Some(vpc) = svc.network_configuration().and_then(|n| n.awsvpc_configuration()) {
            if Self::resolve_all(&self.subnets, cx).is_ok_and(|s| sorted(vpc.subnets()) != s) {
                diffs.push("subnets differ".to_string());
            }
            if Self::resolve_all(&self.security_groups, cx).is_ok_and(|s| sorted(vpc.security_groups()) != s) {
                diffs.push("security groups differ".to_string());
            }
            let public = vpc.assign_public_ip().map(|a| a.as_str() == "ENABLED");
            if public.is_some_and(|p| p != self.public_ip) {
                diffs.push("public IP assignment differs".to_string());
            }
        }
        if let Some(t) = &self.load_balancer {
            if let Ok(tg) = t.target_group.resolve(cx) {
                if !svc.load_balancers().iter().any(|l| l.target_group_arn() == Some(tg.as_str())) {
                    diffs.push("it is not attached to its target group".to_string());
                }
            }
        }
        Ok(if diffs.is_empty() { Observed::InSync } else { Observed::Drifted(diffs.join("; ")) })
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cluster = self.cluster_id(cx)?;
        let out = aws
            .ecs()
            .update_service()
            .cluster(&cluster)
            .service(&self.name)
            .task_definition(self.task_definition.resolve(cx)?)
            .desired_count(self.desired_count as i32)
            .network_configuration(self.network(cx)?)
            .set_load_balancers(Some(self.load_balancers(cx)?))
            .set_service_connect_configuration(self.service_connect_config()?)
            .enable_execute_command(self.exec)
            .deployment_configuration(self.deployment())
            .send()
            .await
            .map_err(|e| aws_err("ecs:UpdateService", e))?;
        let arn = out.service().and_then(|s| s.service_arn()).unwrap_or(id).to_string();
        let tags = aws.ecs().list_tags_for_resource().resource_arn(&arn).send().await.map_err(|e| aws_err("ecs:ListTagsForResource", e))?;
        let current: BTreeMap<String, String> = tags.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
        reconcile_ecs_tags(aws, &arn, &current, &self.wanted_tags()).await?;
        if self.wait {
            self.wait_steady(aws, &cluster, cx).await?;
        }
        Ok(Made::id(arn))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        // The cluster from the service ARN (…:service/<cluster>/<name>) when the dependency is gone.
        let cluster = self.cluster_id(cx).ok().or_else(|| id.split(":service/").nth(1).and_then(|t| t.split('/').next()).map(str::to_string)).unwrap_or_default();
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
                Ok(Some(s)) => Ok(Poll::Pending(format!("status {}, {} tasks running", s.status().unwrap_or("?"), s.running_count()))),
                Err(e) if is_cluster_missing(&e) => Ok(Poll::Done(())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await;
        res.map_err(|e| super::wait_err("service deletion", e))
    }
}
