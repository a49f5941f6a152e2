//! Application Auto Scaling for an ECS service: the scalable target (the
//! service's desired count between min and max), target tracking policies
//! and scheduled actions. None of them is taggable on its own terms: they
//! belong to the service they scale, which this composite owns, so `find`
//! reports them as derived from it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::types as aas;
use serde_json::json;

use super::{Common, Ref};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, spec};

const DIMENSION: aas::ScalableDimension = aas::ScalableDimension::EcsServiceDesiredCount;

fn gone(e: &AwsError) -> bool {
    e.is_not_found() || e.is_code(&["ObjectNotFoundException"])
}

/// A delete's answer: what is already gone is deleted.
fn deleted<T>(r: Result<T, AwsError>) -> Result<(), NodeError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if gone(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `service/<cluster>/<service>`, the resource ID Application Auto Scaling uses for an ECS service.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

pub struct ScalableTargetNode {
    pub c: Arc<Common>,
    pub key: String,
    pub resource_id: String,
    /// The service it scales (created first).
    pub service: String,
    pub min: i64,
    pub max: i64,
    pub wanted: bool,
}

impl ScalableTargetNode {
    async fn describe(aws: &Aws, id: &str) -> Result<Option<aas::ScalableTarget>, NodeError> {
        let out = aws
            .autoscaling()
            .describe_scalable_targets()
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_ids(id)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:DescribeScalableTargets", e))?;
        Ok(out.scalable_targets().first().cloned())
    }
    async fn register(&self, aws: &Aws) -> Result<Made, NodeError> {
        aws.autoscaling()
            .register_scalable_target()
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_id(&self.resource_id)
            .scalable_dimension(DIMENSION)
            .min_capacity(self.min as i32)
            .max_capacity(self.max as i32)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:RegisterScalableTarget", e))?;
        Ok(Made::id(&self.resource_id))
    }
}

#[async_trait]
impl Node<Aws> for ScalableTargetNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec![self.service.as_str()]
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("scalable target {}", self.resource_id)
    }
    fn spec(&self) -> Spec {
        spec(json!({"resource_id": self.resource_id, "min": self.min, "max": self.max}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["resource_id"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.resource_id))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec![self.service.as_str()]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        // The target of a service this composite owns is this composite's.
        Ok(match Self::describe(aws, &self.resource_id).await? {
            Some(_) => Found::Derived(Identity::new(&self.resource_id)),
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.register(aws).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        Ok(Self::describe(aws, &id.id).await?.map(|t| spec(json!({"resource_id": t.resource_id(), "min": t.min_capacity(), "max": t.max_capacity()}))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, _base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        // RegisterScalableTarget on an existing target changes its capacities: one call.
        self.register(aws).await
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // Deregistering also deletes the target's policies and scheduled actions.
        deleted(
            aws.autoscaling()
                .deregister_scalable_target()
                .service_namespace(aas::ServiceNamespace::Ecs)
                .resource_id(&id.id)
                .scalable_dimension(DIMENSION)
                .send()
                .await
                .map_err(|e| aws_err("application-autoscaling:DeregisterScalableTarget", e)),
        )
    }
}

/// What a target tracking policy follows.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    Cpu,
    Memory,
    /// Requests per target of this target group behind this load balancer
    /// (`app/<lb>/<id>`, from the listener ARN).
    AlbRequests {
        load_balancer: String,
        target_group: Ref,
    },
}

pub struct TargetTrackingNode {
    pub c: Arc<Common>,
    pub key: String,
    /// The policy's name, which is also its identity (with the target's resource ID it names it).
    pub name: String,
    pub resource_id: String,
    pub target_key: String,
    pub metric: Metric,
    pub target_value: f64,
    pub scale_in_cooldown: i64,
    pub scale_out_cooldown: i64,
    pub wanted: bool,
}

impl TargetTrackingNode {
    fn metric_spec(&self) -> serde_json::Value {
        match &self.metric {
            Metric::Cpu => json!("ECSServiceAverageCPUUtilization"),
            Metric::Memory => json!("ECSServiceAverageMemoryUtilization"),
            Metric::AlbRequests { load_balancer, target_group } => json!({"ALBRequestCountPerTarget": {"load_balancer": load_balancer, "target_group": target_group.spec()}}),
        }
    }
    async fn describe(&self, aws: &Aws, name: &str) -> Result<Option<aas::ScalingPolicy>, NodeError> {
        let out = aws
            .autoscaling()
            .describe_scaling_policies()
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_id(&self.resource_id)
            .scalable_dimension(DIMENSION)
            .policy_names(name)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:DescribeScalingPolicies", e))?;
        // Matched by name here too: the filter is not the only guard against another policy of the target.
        Ok(out.scaling_policies().iter().find(|p| p.policy_name() == name).cloned())
    }
    async fn put(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let bad = |e: aws_sdk_applicationautoscaling::error::BuildError| NodeError::other(format!("internal error building the scaling policy: {e}"));
        let (kind, label) = match &self.metric {
            Metric::Cpu => (aas::MetricType::EcsServiceAverageCpuUtilization, None),
            Metric::Memory => (aas::MetricType::EcsServiceAverageMemoryUtilization, None),
            Metric::AlbRequests { load_balancer, target_group } => {
                let tg = target_group.resolve(cx)?;
                let tg_part = tg.split_once(":targetgroup/").map(|(_, t)| format!("targetgroup/{t}")).unwrap_or(tg);
                (aas::MetricType::AlbRequestCountPerTarget, Some(format!("{load_balancer}/{tg_part}")))
            }
        };
        let metric = aas::PredefinedMetricSpecification::builder().predefined_metric_type(kind).set_resource_label(label).build().map_err(bad)?;
        let cfg = aas::TargetTrackingScalingPolicyConfiguration::builder()
            .target_value(self.target_value)
            .predefined_metric_specification(metric)
            .scale_in_cooldown(self.scale_in_cooldown as i32)
            .scale_out_cooldown(self.scale_out_cooldown as i32)
            .build()
            .map_err(bad)?;
        aws.autoscaling()
            .put_scaling_policy()
            .policy_name(&self.name)
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_id(&self.resource_id)
            .scalable_dimension(DIMENSION)
            .policy_type(aas::PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(cfg)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:PutScalingPolicy", e))?;
        Ok(Made::id(&self.name))
    }
}

#[async_trait]
impl Node<Aws> for TargetTrackingNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d = vec![self.target_key.as_str()];
        if let Metric::AlbRequests { target_group, .. } = &self.metric {
            d.extend(target_group.key());
        }
        d
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("scaling policy {} of {}", self.name, self.resource_id)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name, "metric": self.metric_spec(), "target_value": self.target_value,
            "scale_in_cooldown": self.scale_in_cooldown, "scale_out_cooldown": self.scale_out_cooldown,
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.name))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec![self.target_key.as_str()]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match self.describe(aws, &self.name).await? {
            Some(_) => Found::Derived(Identity::new(&self.name)),
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.put(aws, cx).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(p) = self.describe(aws, &id.id).await? else { return Ok(None) };
        let Some(t) = p.target_tracking_scaling_policy_configuration() else { return Ok(Some(spec(json!({"name": p.policy_name(), "metric": null})))) };
        let m = t.predefined_metric_specification();
        let metric = match m.map(|m| m.predefined_metric_type()) {
            Some(aas::MetricType::EcsServiceAverageCpuUtilization) => json!("ECSServiceAverageCPUUtilization"),
            Some(aas::MetricType::EcsServiceAverageMemoryUtilization) => json!("ECSServiceAverageMemoryUtilization"),
            Some(aas::MetricType::AlbRequestCountPerTarget) => {
                let label = m.and_then(|m| m.resource_label()).unwrap_or_default();
                let (lb, tg) = label.split_once("/targetgroup/").map(|(l, t)| (l.to_string(), format!("targetgroup/{t}"))).unwrap_or_default();
                let tg = match &self.metric {
                    Metric::AlbRequests { target_group, .. } => {
                        let full = cx.dep(target_group.key().unwrap_or_default()).ok().map(str::to_string);
                        if full.as_deref().is_some_and(|f| f.ends_with(&format!(":{tg}"))) { target_group.spec() } else { tg }
                    }
                    _ => tg,
                };
                json!({"ALBRequestCountPerTarget": {"load_balancer": lb, "target_group": tg}})
            }
            other => json!(other.map(|o| o.as_str().to_string())),
        };
        Ok(Some(spec(json!({
            "name": p.policy_name(), "metric": metric, "target_value": t.target_value(),
            "scale_in_cooldown": t.scale_in_cooldown().unwrap_or(300), "scale_out_cooldown": t.scale_out_cooldown().unwrap_or(300),
        }))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, _base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.put(aws, cx).await
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        deleted(
            aws.autoscaling()
                .delete_scaling_policy()
                .policy_name(&id.id)
                .service_namespace(aas::ServiceNamespace::Ecs)
                .resource_id(&self.resource_id)
                .scalable_dimension(DIMENSION)
                .send()
                .await
                .map_err(|e| aws_err("application-autoscaling:DeleteScalingPolicy", e)),
        )
    }
}

pub struct ScheduledActionNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub resource_id: String,
    pub target_key: String,
    /// `cron(...)`, `rate(...)` or `at(...)`.
    pub schedule: String,
    pub timezone: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub wanted: bool,
}

impl ScheduledActionNode {
    async fn describe(&self, aws: &Aws, name: &str) -> Result<Option<aas::ScheduledAction>, NodeError> {
        let out = aws
            .autoscaling()
            .describe_scheduled_actions()
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_id(&self.resource_id)
            .scalable_dimension(DIMENSION)
            .scheduled_action_names(name)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:DescribeScheduledActions", e))?;
        Ok(out.scheduled_actions().iter().find(|a| a.scheduled_action_name() == name).cloned())
    }
    async fn put(&self, aws: &Aws) -> Result<Made, NodeError> {
        let action = aas::ScalableTargetAction::builder().set_min_capacity(self.min.map(|v| v as i32)).set_max_capacity(self.max.map(|v| v as i32)).build();
        aws.autoscaling()
            .put_scheduled_action()
            .scheduled_action_name(&self.name)
            .service_namespace(aas::ServiceNamespace::Ecs)
            .resource_id(&self.resource_id)
            .scalable_dimension(DIMENSION)
            .schedule(&self.schedule)
            .set_timezone(self.timezone.clone())
            .scalable_target_action(action)
            .send()
            .await
            .map_err(|e| aws_err("application-autoscaling:PutScheduledAction", e))?;
        Ok(Made::id(&self.name))
    }
}

#[async_trait]
impl Node<Aws> for ScheduledActionNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec![self.target_key.as_str()]
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("scheduled action {} of {}", self.name, self.resource_id)
    }
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "schedule": self.schedule, "timezone": self.timezone.clone().unwrap_or_else(|| "UTC".into()), "min": self.min, "max": self.max}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.name))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec![self.target_key.as_str()]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match self.describe(aws, &self.name).await? {
            Some(_) => Found::Derived(Identity::new(&self.name)),
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.put(aws).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        Ok(self.describe(aws, &id.id).await?.map(|a| {
            let t = a.scalable_target_action();
            spec(json!({
                "name": a.scheduled_action_name(), "schedule": a.schedule(), "timezone": a.timezone().unwrap_or("UTC"),
                "min": t.and_then(|t| t.min_capacity()), "max": t.and_then(|t| t.max_capacity()),
            }))
        }))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, _base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.put(aws).await
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        deleted(
            aws.autoscaling()
                .delete_scheduled_action()
                .scheduled_action_name(&id.id)
                .service_namespace(aas::ServiceNamespace::Ecs)
                .resource_id(&self.resource_id)
                .scalable_dimension(DIMENSION)
                .send()
                .await
                .map_err(|e| aws_err("application-autoscaling:DeleteScheduledAction", e)),
        )
    }
}
