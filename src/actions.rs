//! The provider's actions on ECS services: a new deployment, or a desired
//! count set now, each waiting for the service to be steady, and a one-off
//! task from the service's task definition (a database migration), waiting
//! for it to exit; each reports its progress while it waits. They change
//! AWS, never Terraform state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::wait::{Poll, WaitError, until};
use crate::aws::{Aws, aws_err, aws_err_hiding};
use crate::children::ecs::{describe_service, latest_events, primary_deployment, revision_of, steady_state};
use crate::framework::check::{Check, MAX_DURATION_SECS, parse_duration};
use crate::framework::{Action, Attribute, Block, Ctx, Diagnostic, Diags, Path, Progress, Schema, Type, Value};
use crate::resources::ecs_fargate_service::{CLUSTER_RE, CLUSTER_RULE, ENV_NAME_RE, ENV_NAME_RULE, NAME_RE, NAME_RULE};

pub fn all() -> Vec<Arc<dyn Action<Aws>>> {
    vec![Arc::new(ForceDeployment), Arc::new(Scale), Arc::new(RunTask)]
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The attributes that name a service and bound the wait (`wait_doc` says for what).
fn service_attributes(wait_doc: &str) -> Vec<Attribute> {
    vec![
        Attribute::new("cluster", Type::String).required().check(Check::Matches(CLUSTER_RE, CLUSTER_RULE)).describe("The ECS cluster's name or ARN."),
        Attribute::new("service", Type::String).required().check(Check::Matches(NAME_RE, NAME_RULE)).describe("The service's name."),
        Attribute::new("timeout", Type::String).optional().check(Check::Duration(MAX_DURATION_SECS)).describe(wait_doc),
    ]
}

const STEADY_WAIT_DOC: &str = "How long to wait for the service to be steady (default `20m`).";

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
            Block::new(service_attributes(STEADY_WAIT_DOC)).describe(
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
        let mut attrs = service_attributes(STEADY_WAIT_DOC);
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

/// `startedBy` of the tasks this action runs, so they can be recognised (ListTasks `startedBy`).
pub const RUN_TASK_STARTED_BY: &str = "cxflow_ecs_run_task";
const RUN_TASK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// RunTask: "A total of 8192 characters are allowed for overrides."
const MAX_OVERRIDES_CHARS: usize = 8192;
/// How many of the task's last log lines a failure quotes.
const LOG_LINES: i32 = 20;
const TASK_DEFINITION_RE: &str = r"[A-Za-z0-9_-]{1,255}(:[1-9][0-9]*)?|arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/[A-Za-z0-9_-]{1,255}:[1-9][0-9]*";
const TASK_DEFINITION_RULE: &str = "a task definition `family`, `family:revision` or ARN with its revision";

struct RunTask;

/// What the service runs: the task definition and how its tasks are placed.
struct Placement {
    task_definition: String,
    network: Option<aws_sdk_ecs::types::NetworkConfiguration>,
    launch_type: Option<aws_sdk_ecs::types::LaunchType>,
    strategy: Vec<aws_sdk_ecs::types::CapacityProviderStrategyItem>,
    platform_version: Option<String>,
}

/// The `command` and `environment` overrides of the configuration.
fn overrides_of(config: &Value) -> (Option<Vec<String>>, Vec<(String, String)>) {
    let command = config.get("command").elements().map(|e| e.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect());
    let env = config.get("environment").entries().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default();
    (command, env)
}

/// The container the action runs: the one named, else the first essential one
/// (ContainerDefinition.essential defaults to true).
fn pick_container(td: &aws_sdk_ecs::types::TaskDefinition, wanted: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = td.container_definitions().iter().filter_map(|c| c.name()).collect();
    match wanted {
        Some(w) if names.contains(&w) => Ok(w.to_string()),
        Some(w) => Err(format!("The task definition has no container {w}; its containers: {}.", names.join(", "))),
        None => td
            .container_definitions()
            .iter()
            .find(|c| c.essential().unwrap_or(true))
            .and_then(|c| c.name())
            .map(str::to_string)
            .ok_or_else(|| "The task definition has no essential container.".to_string()),
    }
}

/// The last lines (at most [`LOG_LINES`]) a container wrote to its awslogs
/// stream `<prefix>/<container>/<task-id>`, or why they could not be read;
/// None when the container does not log with awslogs.
async fn last_log_lines(aws: &Aws, td: &aws_sdk_ecs::types::TaskDefinition, container: &str, task_arn: &str) -> Option<String> {
    let def = td.container_definitions().iter().find(|c| c.name() == Some(container))?;
    let log = def.log_configuration().filter(|l| l.log_driver().as_str() == "awslogs")?;
    let opts = log.options()?;
    let group = opts.get("awslogs-group")?;
    let region = opts.get("awslogs-region").map(String::as_str).unwrap_or(aws.region.as_str());
    let task_id = task_id(task_arn);
    let Some(prefix) = opts.get("awslogs-stream-prefix") else {
        return Some(format!("Container {container} logs to {group} without a stream prefix: its stream is not named after the task."));
    };
    let stream = format!("{prefix}/{container}/{task_id}");
    let out = aws.logs_in(region).get_log_events().log_group_name(group).log_stream_name(&stream).start_from_head(false).limit(LOG_LINES).send().await;
    Some(match out {
        Ok(o) if o.events().is_empty() => format!("Container {container} wrote nothing to {group} {stream}."),
        Ok(o) => {
            let lines: Vec<&str> = o.events().iter().filter_map(|e| e.message()).collect();
            format!("Last log lines of {container} ({group} {stream}):\n  {}", lines.join("\n  "))
        }
        Err(e) => format!("Could not read the logs of {container} ({group} {stream}): {}", aws_err("logs:GetLogEvents", e)),
    })
}

impl RunTask {
    async fn placement(aws: &Aws, cluster: &str, service: &str, config: &Value) -> Result<Placement, Diags> {
        let svc = describe_service(aws, cluster, service).await.map_err(|e| failed("Could not read the service", e.to_string()))?;
        let Some(svc) = svc else {
            return Err(failed("ECS service not found", format!("There is no service {service} in the cluster {cluster} (ecs:DescribeServices).")));
        };
        let task_definition = match config.get("task_definition").as_str() {
            Some(td) => td.to_string(),
            None => svc
                .task_definition()
                .map(str::to_string)
                .ok_or_else(|| failed("No task definition", format!("The service {service} reports no task definition; set task_definition.")))?,
        };
        Ok(Placement {
            task_definition,
            network: svc.network_configuration().cloned(),
            launch_type: svc.launch_type().cloned(),
            strategy: svc.capacity_provider_strategy().to_vec(),
            platform_version: svc.platform_version().map(str::to_string),
        })
    }

    /// Stop the task after a timeout or cancellation and say whether that worked.
    async fn stop(aws: &Aws, cluster: &str, task_arn: &str, why: &str) -> String {
        match aws.ecs().stop_task().cluster(cluster).task(task_arn).reason(format!("{RUN_TASK_STARTED_BY}: {why}")).send().await {
            Ok(_) => format!("The task {task_arn} was stopped (ecs:StopTask)."),
            Err(e) => format!("The task {task_arn} could not be stopped and may still be running: {}", aws_err("ecs:StopTask", e)),
        }
    }
}

#[async_trait]
impl Action<Aws> for RunTask {
    fn type_name(&self) -> &'static str {
        "cxflow_ecs_run_task"
    }
    fn schema(&self) -> Schema {
        let mut attrs = service_attributes("How long to wait for the task to stop (default `30m`); when it runs out, the task is stopped.");
        attrs.extend([
            Attribute::new("container", Type::String)
                .optional()
                .check(Check::Matches(NAME_RE, NAME_RULE))
                .describe("The container whose command and environment are overridden (default: the task definition's first essential container)."),
            Attribute::new("command", Type::list(Type::String))
                .optional()
                .check(Check::Items(1, usize::MAX))
                .describe("The command the container runs instead of its own, e.g. `[\"bin/db/migrate\"]`."),
            Attribute::new("environment", Type::map(Type::String))
                .optional()
                // Terraform shows an action's configuration before invoking it.
                .sensitive()
                .check(Check::keys(Check::Matches(ENV_NAME_RE, ENV_NAME_RULE)))
                .describe("Environment variables set for this run, over the container's own. Sensitive: never shown in the plan or in messages; still, prefer the service's `secrets` for secrets."),
            Attribute::new("task_definition", Type::String)
                .optional()
                .check(Check::Matches(TASK_DEFINITION_RE, TASK_DEFINITION_RULE))
                .describe("The task definition to run (default: the one the service runs now)."),
        ]);
        Schema::new(
            0,
            Block::new(attrs).describe(
                "Runs a one-off task from an ECS service's task definition, in the service's subnets and security groups with its launch type or capacity providers \
                 (a database migration after an update, say), and waits for it to stop. Fails unless every essential container exits with code 0, \
                 quoting the exit code, the reason the task stopped and the container's last log lines (awslogs). \
                 The task is started by `cxflow_ecs_run_task`; on timeout or cancellation it is stopped.",
            ),
        )
    }
    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        let (command, env) = overrides_of(config);
        // The overrides as RunTask sends them (JSON), against AWS's limit on their size.
        if config.get("command").is_wholly_known() && config.get("environment").is_wholly_known() {
            let json = serde_json::json!({"command": command, "environment": env.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>()});
            let size = json.to_string().len();
            if size > MAX_OVERRIDES_CHARS {
                let at = if env.is_empty() { "command" } else { "environment" };
                d.attr_error(
                    Path::attr(at),
                    "Overrides too long",
                    format!("command and environment take {size} characters; ECS allows {MAX_OVERRIDES_CHARS} for a task's overrides."),
                );
            }
        }
        d
    }
    async fn invoke(&self, aws: &Aws, config: Value, progress: &Progress, ctx: Ctx) -> Diags {
        use aws_sdk_ecs::types::{ContainerOverride, KeyValuePair, TaskOverride};
        let (cluster, service) = target(&config);
        let timeout = config.get("timeout").as_str().and_then(parse_duration).unwrap_or(RUN_TASK_TIMEOUT);
        let place = match Self::placement(aws, &cluster, &service, &config).await {
            Ok(p) => p,
            Err(d) => return d,
        };
        let td = match aws.ecs().describe_task_definition().task_definition(&place.task_definition).send().await {
            Ok(o) => match o.task_definition {
                Some(td) => td,
                None => return failed("Task definition not found", format!("ecs:DescribeTaskDefinition returned no task definition {}.", place.task_definition)),
            },
            Err(e) => return failed("Could not read the task definition", aws_err("ecs:DescribeTaskDefinition", e).to_string()),
        };
        let container = match pick_container(&td, config.get("container").as_str()) {
            Ok(c) => c,
            Err(e) => return Diagnostic::error("Invalid container", e).at(Path::attr("container")).into(),
        };
        let (command, env) = overrides_of(&config);
        let secrets: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()).collect();
        let over = ContainerOverride::builder()
            .name(&container)
            .set_command(command)
            .set_environment(Some(env.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect::<Vec<_>>()).filter(|e| !e.is_empty()))
            .build();
        let td_arn = td.task_definition_arn().unwrap_or(&place.task_definition).to_string();
        let run = aws
            .ecs()
            .run_task()
            .cluster(&cluster)
            .task_definition(&td_arn)
            .count(1)
            .started_by(RUN_TASK_STARTED_BY)
            .overrides(TaskOverride::builder().container_overrides(over).build())
            .set_network_configuration(place.network)
            .set_launch_type(place.launch_type)
            .set_capacity_provider_strategy(Some(place.strategy).filter(|s| !s.is_empty()))
            .set_platform_version(place.platform_version)
            .send()
            .await;
        let out = match run {
            Ok(o) => o,
            Err(e) => return failed("Could not run the task", aws_err_hiding("ecs:RunTask", e, &secrets).to_string()),
        };
        if let Some(f) = out.failures().first() {
            let reason = [f.reason(), f.detail()].into_iter().flatten().collect::<Vec<_>>().join(": ");
            return failed("ECS could not start the task", format!("RunTask of {td_arn} in {cluster} failed: {reason} ({}).", f.arn().unwrap_or("no ARN")));
        }
        let Some(task_arn) = out.tasks().first().and_then(|t| t.task_arn()).map(str::to_string) else {
            return failed("ECS could not start the task", "ecs:RunTask answered neither a task nor a failure.");
        };
        progress.report(format!("{service}: task {task_arn} started ({container} of {})", revision_of(&td_arn)));

        let what = format!("ECS task {task_arn} to stop");
        let last = std::sync::Mutex::new(String::new());
        let res = until(&what, timeout, &ctx.cancel, Duration::from_secs(1), Duration::from_secs(10), || async {
            let out = aws.ecs().describe_tasks().cluster(&cluster).tasks(&task_arn).send().await.map_err(|e| aws_err("ecs:DescribeTasks", e).to_string())?;
            let Some(task) = out.tasks().first() else {
                let why = out.failures().first().and_then(|f| f.reason()).unwrap_or("not reported");
                return Err(format!("ecs:DescribeTasks does not know the task: {why}"));
            };
            let status = task.last_status().unwrap_or("unknown").to_string();
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if status != *l {
                progress.report(format!("{service}: task {} {status}", task_id(&task_arn)));
                *l = status.clone();
            }
            Ok::<_, String>(if status == "STOPPED" { Poll::Done(task.clone()) } else { Poll::Pending(format!("task {status}")) })
        })
        .await;
        let task = match res {
            Ok(t) => t,
            Err(WaitError::Timeout { waited, last }) => {
                let stopped = Self::stop(aws, &cluster, &task_arn, "timed out").await;
                return failed("ECS task did not stop in time", format!("Waited {}s for {what} ({last}). {stopped}", waited.as_secs()));
            }
            Err(WaitError::Cancelled) => {
                let stopped = Self::stop(aws, &cluster, &task_arn, "cancelled").await;
                return failed("Action cancelled", format!("Terraform asked the provider to stop. {stopped}"));
            }
            Err(WaitError::Failed(e)) => return failed("Could not follow the task", format!("{what}: {e}")),
        };

        let essential: Vec<&str> = td.container_definitions().iter().filter(|c| c.essential().unwrap_or(true)).filter_map(|c| c.name()).collect();
        let mut problems = Vec::new();
        for c in task.containers().iter().filter(|c| c.name().is_some_and(|n| essential.contains(&n))) {
            let name = c.name().unwrap_or_default();
            let why = match (c.exit_code(), c.reason()) {
                (Some(0), _) => continue,
                (Some(code), reason) => format!("container {name} exited with code {code}{}", reason.map(|r| format!(" ({r})")).unwrap_or_default()),
                (None, reason) => format!("container {name} has no exit code{}", reason.map(|r| format!(": {r}")).unwrap_or_default()),
            };
            let logs = last_log_lines(aws, &td, name, &task_arn).await.map(|l| format!("\n{l}")).unwrap_or_default();
            problems.push(format!("{why}.{logs}"));
        }
        if task.containers().is_empty() {
            problems.push("the task reports no containers.".to_string());
        }
        let stopped = format!("{}: {}", task.stop_code().map(|c| c.as_str()).unwrap_or("no stop code"), task.stopped_reason().unwrap_or("no reason given"));
        if problems.is_empty() {
            progress.report(format!("{service}: task {} exited 0", task_id(&task_arn)));
            return Diags::new();
        }
        failed("ECS task failed", format!("The task {task_arn} stopped ({stopped}): {}", problems.join("\n")))
    }
}

/// The task ID: the last part of its ARN.
fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
