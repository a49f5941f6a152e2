//! The provider's actions on ECS services: a new deployment, or a desired
//! count set now, each waiting for the service to be steady and reporting
//! its progress while it waits. They change AWS, never Terraform state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::wait::{Poll, WaitError, until};
use crate::aws::{Aws, aws_err};
use crate::children::ecs::{describe_service, latest_events, primary_deployment, steady_state};
use crate::framework::check::{Check, MAX_DURATION_SECS, parse_duration};
use crate::framework::{Action, Attribute, Block, Ctx, Diagnostic, Diags, Progress, Schema, Type, Value};
use crate::resources::ecs_fargate_service::{CLUSTER_RE, CLUSTER_RULE, NAME_RE, NAME_RULE};

pub fn all() -> Vec<Arc<dyn Action<Aws>>> {
    vec![Arc::new(ForceDeployment), Arc::new(Scale)]
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The attributes that name a service and bound the wait.
fn service_attributes() -> Vec<Attribute> {
    vec![
        Attribute::new("cluster", Type::String).required().check(Check::Matches(CLUSTER_RE, CLUSTER_RULE)).describe("The ECS cluster's name or ARN."),
        Attribute::new("service", Type::String).required().check(Check::Matches(NAME_RE, NAME_RULE)).describe("The service's name."),
        Attribute::new("timeout", Type::String).optional().check(Check::Duration(MAX_DURATION_SECS)).describe("How long to wait for the service to be steady (default `20m`)."),
    ]
}

/// The service named by the configuration: (cluster, service).
fn target(config: &Value) -> (String, String) {
    let s = |k: &str| config.get(k).as_str().unwrap_or_default().to_string();
    (s("cluster"), s("service"))
}

fn failed(summary: &str, detail: impl Into<String>) -> Diags {
    Diagnostic::error(summary, detail).into()
}

/// Wait until the service is steady, reporting each new status; fail with
/// the service's events when its deployment rolls back or time runs out.
async fn wait_steady(aws: &Aws, cluster: &str, service: &str, deployment: Option<String>, config: &Value, progress: &Progress, ctx: &Ctx) -> Diags {
    let timeout = config.get("timeout").as_str().and_then(parse_duration).unwrap_or(DEFAULT_TIMEOUT);
    let what = format!("ECS service {service} in {cluster} to be steady");
    let last = std::sync::Mutex::new((String::new(), String::new()));
    let res = until(&what, timeout, &ctx.cancel, Duration::from_secs(1), Duration::from_secs(10), || async {
        let svc = describe_service(aws, cluster, service).await.map_err(|e| e.to_string())?.ok_or_else(|| "the service disappeared while waiting for it".to_string())?;
        let events = latest_events(&svc);
        let poll = steady_state(&svc, deployment.as_deref(), None).map_err(|reason| format!("{reason}. Latest service events: {events}"))?;
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        l.1 = events;
        if let Poll::Pending(status) = &poll {
            if *status != l.0 {
                progress.report(format!("{service}: {status}"));
                l.0 = status.clone();
            }
        }
        Ok::<_, String>(poll)
    })
    .await;
    match res {
        Ok(()) => {
            progress.report(format!("{service}: steady"));
            Diags::new()
        }
        Err(WaitError::Timeout { waited, last: status }) => {
            let events = last.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
            failed("ECS service not steady in time", format!("Waited {}s for {what}: {status}. Latest service events: {events}", waited.as_secs()))
        }
        Err(WaitError::Cancelled) => failed("Action cancelled", "Terraform asked the provider to stop; the service keeps converging on its own."),
        Err(WaitError::Failed(e)) => failed("ECS deployment failed", format!("{what}: {e}")),
    }
}

struct ForceDeployment;

#[async_trait]
impl Action<Aws> for ForceDeployment {
    fn type_name(&self) -> &'static str {
        "cxflow_ecs_force_deployment"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(service_attributes()).describe(
                "Starts a new deployment of an ECS service with its current task definition (new tasks pull their images again, read their secrets again) \
                 and waits for it to be steady. Fails with the service's latest events when the deployment rolls back.",
            ),
        )
    }
    async fn invoke(&self, aws: &Aws, config: Value, progress: &Progress, ctx: Ctx) -> Diags {
        let (cluster, service) = target(&config);
        let out = match aws.ecs().update_service().cluster(&cluster).service(&service).force_new_deployment(true).send().await {
            Ok(o) => o,
            Err(e) => return failed("Could not start a deployment", aws_err("ecs:UpdateService", e).to_string()),
        };
        let id = primary_deployment(out.service());
        progress.report(format!("{service}: deployment {} started", id.as_deref().unwrap_or("unknown")));
        wait_steady(aws, &cluster, &service, id, &config, progress, &ctx).await
    }
}

struct Scale;

#[async_trait]
impl Action<Aws> for Scale {
    fn type_name(&self) -> &'static str {
        "cxflow_ecs_scale"
    }
    fn schema(&self) -> Schema {
        let mut attrs = service_attributes();
        attrs.push(Attribute::new("desired_count", Type::Number).required().check(Check::Int(0, 5000)).describe("The number of tasks the service should run now."));
        Schema::new(
            0,
            Block::new(attrs).describe(
                "Sets an ECS service's desired count now, outside the configuration, and waits for the service to be steady. \
                 A `cxflow_ecs_fargate_service` with `desired_count_managed_by = \"terraform\"` reports the new count as drift at its next refresh.",
            ),
        )
    }
    async fn invoke(&self, aws: &Aws, config: Value, progress: &Progress, ctx: Ctx) -> Diags {
        let (cluster, service) = target(&config);
        let Some(n) = config.get("desired_count").as_i64() else { return failed("Invalid desired_count", "desired_count must be a whole number.") };
        let Ok(count) = i32::try_from(n) else { return failed("Invalid desired_count", "desired_count is out of range.") };
        if let Err(e) = aws.ecs().update_service().cluster(&cluster).service(&service).desired_count(count).send().await {
            return failed("Could not scale the service", aws_err("ecs:UpdateService", e).to_string());
        }
        progress.report(format!("{service}: desired count set to {count}"));
        wait_steady(aws, &cluster, &service, None, &config, progress, &ctx).await
    }
}
