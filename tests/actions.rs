//! Actions through the bundled Terraform 1.15 (`terraform apply -invoke`)
//! on a service the provider made, checked with the AWS SDK: a forced
//! deployment yields a new deployment ID, a scale sets the desired count,
//! each reporting progress; bad configuration is refused at validate.

mod common;

use common::aws::Aws;
use common::*;

const CLUSTER: &str = "acts";

fn config(subnets: &[String], count: i64) -> String {
    with_trigger(subnets, count, None)
}

/// With `Some(tag)`, the service carries that tag and forces a deployment after every update.
fn with_trigger(subnets: &[String], count: i64, tag: Option<&str>) -> String {
    let extra = match tag {
        None => String::new(),
        Some(t) => format!(
            "  tags = {{ Release = \"{t}\" }}\n  lifecycle {{\n    action_trigger {{\n      events  = [after_update]\n      actions = [action.cxflow_ecs_force_deployment.web]\n    }}\n  }}\n"
        ),
    };
    let mut s = provider_block("");
    s.push_str(&cluster_and_service_hcl(CLUSTER, subnets, &extra));
    s.push_str(&format!(
        r#"
action "cxflow_ecs_force_deployment" "web" {{
  config {{
    cluster = "{CLUSTER}"
    service = "web"
    timeout = "2m"
  }}
}}

action "cxflow_ecs_scale" "web" {{
  config {{
    cluster       = "{CLUSTER}"
    service       = "web"
    desired_count = {count}
    timeout       = "2m"
  }}
}}
"#
    ));
    s
}

fn primary_deployment(aws: &Aws) -> (String, i32) {
    block_on(async {
        let out = aws.ecs.describe_services().cluster(CLUSTER).services("web").send().await.unwrap();
        let s = &out.services()[0];
        let d = s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).expect("a primary deployment");
        (d.id().unwrap().to_string(), s.desired_count())
    })
}

#[test]
fn invoke_force_deployment_and_scale() {
    let tf = bundled_terraform();
    // moto reports three tasks running for every service: steady up to three.
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "3")]);
    let aws = Aws::new(&moto);
    let (_, subnets, _) = block_on(aws.alb_fixture("acts-alb"));
    let wd = Workdir::new(&tf, Some(&moto));
    wd.write("main.tf", &config(&subnets, 2));
    wd.apply().expect_ok("apply");
    let (first, count) = primary_deployment(&aws);
    assert_eq!(count, 1);

    // ---- force a deployment: a new primary deployment, same desired count
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_force_deployment.web"]);
    r.expect_ok("invoke force deployment");
    let (second, count) = primary_deployment(&aws);
    assert_ne!(second, first, "a new deployment:\n{}", r.all());
    assert_eq!(count, 1);
    assert!(r.all().contains(&format!("web: deployment {second} started")), "progress names the deployment:\n{}", r.all());
    assert!(r.all().contains("web: steady"), "{}", r.all());

    // ---- scale now, outside the configuration
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_scale.web"]);
    r.expect_ok("invoke scale");
    assert_eq!(primary_deployment(&aws).1, 2, "{}", r.all());
    assert!(r.all().contains("web: desired count set to 2"), "{}", r.all());

    // ---- action_trigger: exactly one deployment per apply that updates the service, none otherwise
    wd.write("main.tf", &with_trigger(&subnets, 2, Some("r1")));
    let r = wd.apply();
    r.expect_ok("apply with a trigger");
    let (third, _) = primary_deployment(&aws);
    assert_ne!(third, second, "the update triggered a deployment:\n{}", r.all());
    assert_eq!(r.all().matches("deployment ecs-svc/").count(), 1, "exactly once:\n{}", r.all());
    let r = wd.apply();
    r.expect_ok("apply without changes");
    assert_eq!(primary_deployment(&aws).0, third, "no update, no deployment:\n{}", r.all());
    assert!(!r.all().contains("started"), "{}", r.all());

    // ---- a service that does not exist fails with AWS's reason
    wd.write("main.tf", &config(&subnets, 2).replace("service       = \"web\"", "service       = \"nope\""));
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_scale.web"]);
    r.expect_fail("scale a missing service");
    assert!(r.all().contains("ecs:UpdateService"), "{}", r.all());

    // ---- bad configuration is refused at validate, naming the attribute
    wd.write("main.tf", &config(&subnets, -1));
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate a negative desired_count");
    assert!(r.all().contains("desired_count"), "{}", r.all());

    wd.write("main.tf", &config(&subnets, 2));
    wd.destroy().expect_ok("destroy");
}

const RUNS: &str = "runs";
/// A value the task gets in its environment: it must never be echoed back.
const SECRET: &str = "s3cr3t-run-task-value";

fn run_task_config(subnets: &[String], service: &str) -> String {
    let mut s = provider_block("");
    s.push_str(&cluster_and_service_hcl(RUNS, subnets, ""));
    s.push_str(&format!(
        r#"
action "cxflow_ecs_run_task" "migrate" {{
  config {{
    cluster     = "{RUNS}"
    service     = "{service}"
    command     = ["sh", "-c", "echo migrating 3 tables; echo migrations done"]
    environment = {{ DATABASE_PASSWORD = "{SECRET}" }}
    timeout     = "2m"
  }}
}}

# The stand-in's task takes four DescribeTasks to stop: after 1s it still runs.
action "cxflow_ecs_run_task" "slow" {{
  config {{
    cluster = "{RUNS}"
    service = "{service}"
    timeout = "1s"
  }}
}}

action "cxflow_ecs_run_task" "broken" {{
  config {{
    cluster = "{RUNS}"
    service = "{service}"
    command = ["sh", "-c", "echo connecting; echo 'relation users does not exist'; exit 3"]
    timeout = "2m"
  }}
}}
"#
    ));
    s
}

/// The tasks the action started, described.
fn run_tasks(aws: &Aws) -> Vec<aws_sdk_ecs::types::Task> {
    block_on(async {
        let arns = aws.ecs.list_tasks().cluster(RUNS).started_by("cxflow_ecs_run_task").send().await.unwrap().task_arns().to_vec();
        if arns.is_empty() {
            return vec![];
        }
        aws.ecs.describe_tasks().cluster(RUNS).set_tasks(Some(arns)).send().await.unwrap().tasks().to_vec()
    })
}

#[test]
fn invoke_run_task() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "3")]);
    let aws = Aws::new(&moto);
    let (_, subnets, _) = block_on(aws.alb_fixture("runs-alb"));
    let wd = Workdir::new(&tf, Some(&moto));
    wd.write("main.tf", &run_task_config(&subnets, "web"));
    wd.apply().expect_ok("apply");

    // ---- a migration that succeeds: one stopped task with our overrides, in the service's network
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_run_task.migrate"]);
    r.expect_ok("invoke run task");
    let tasks = run_tasks(&aws);
    assert_eq!(tasks.len(), 1, "{}", r.all());
    let task = &tasks[0];
    let arn = task.task_arn().unwrap();
    assert_eq!(task.last_status(), Some("STOPPED"), "{}", r.all());
    assert_eq!(task.started_by(), Some("cxflow_ecs_run_task"));
    assert_eq!(task.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let over = &task.overrides().unwrap().container_overrides()[0];
    assert_eq!(over.name(), Some("app"));
    assert_eq!(over.command(), ["sh", "-c", "echo migrating 3 tables; echo migrations done"]);
    assert_eq!(over.environment().iter().map(|e| (e.name().unwrap(), e.value().unwrap())).collect::<Vec<_>>(), [("DATABASE_PASSWORD", SECRET)]);
    let subnet = task.attachments()[0].details().iter().find(|d| d.name() == Some("subnetId")).and_then(|d| d.value()).unwrap().to_string();
    assert!(subnets.contains(&subnet), "the task runs in the service's subnets: {subnet}");
    assert_eq!(task.containers().iter().map(|c| c.exit_code()).collect::<Vec<_>>(), [Some(0)]);
    let out = r.all();
    assert!(out.contains(&format!("web: task {arn} started (app of web:")), "{out}");
    let id = arn.rsplit('/').next().unwrap();
    assert!(out.contains(&format!("web: task {id} STOPPED")), "each status is reported:\n{out}");
    assert!(out.contains(&format!("web: task {id} exited 0")), "{out}");
    assert!(!out.contains(SECRET), "the environment override is never shown:\n{out}");

    // ---- a failing migration fails the apply with its exit code and last log lines
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_run_task.broken"]);
    r.expect_fail("invoke a failing run task");
    let out = r.all();
    assert!(out.contains("container app exited with code 3"), "{out}");
    assert!(out.contains("EssentialContainerExited"), "{out}");
    assert!(out.contains("connecting") && out.contains("relation users does not exist"), "the task's last log lines:\n{out}");
    let tasks = run_tasks(&aws);
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().any(|t| t.containers().iter().any(|c| c.exit_code() == Some(3))));

    // ---- out of time: the task is stopped, and the error says so
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_run_task.slow"]);
    r.expect_fail("invoke a run task that outlives its timeout");
    assert!(r.all().contains("ECS task did not stop in time"), "{}", r.all());
    assert!(r.all().contains("was stopped (ecs:StopTask)"), "{}", r.all());
    let tasks = run_tasks(&aws);
    assert_eq!(tasks.len(), 3);
    let stopped = tasks.iter().find(|t| t.stop_code().map(|c| c.as_str()) == Some("UserInitiated")).expect("a task stopped by the action");
    assert_eq!(stopped.stopped_reason(), Some("cxflow_ecs_run_task: timed out"));

    // ---- a service that does not exist
    wd.write("main.tf", &run_task_config(&subnets, "nope"));
    let r = wd.tf(&["apply", "-auto-approve", "-invoke=action.cxflow_ecs_run_task.migrate"]);
    r.expect_fail("run a task of a missing service");
    assert!(r.all().contains("There is no service nope in the cluster runs"), "{}", r.all());
    // No new task: the same three tasks as before.
    let arns = |ts: &[aws_sdk_ecs::types::Task]| ts.iter().filter_map(|t| t.task_arn().map(str::to_string)).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(arns(&run_tasks(&aws)), arns(&tasks), "no task started");

    // ---- bad configuration is refused at validate, naming the attribute
    for (bad, attr) in
        [("command = []", "command"), ("environment = { \"1X\" = \"v\" }", "environment"), ("task_definition = \"web:0\"", "task_definition"), ("container = \"a b\"", "container")]
    {
        wd.write("bad.tf", &format!("action \"cxflow_ecs_run_task\" \"bad\" {{\n  config {{\n    cluster = \"{RUNS}\"\n    service = \"web\"\n    {bad}\n  }}\n}}\n"));
        let r = wd.tf(&["validate"]);
        r.expect_fail(&format!("validate {bad}"));
        assert!(r.all().contains(attr), "{bad}: {}", r.all());
    }
    wd.write("bad.tf", "");

    wd.write("main.tf", &run_task_config(&subnets, "web"));
    wd.destroy().expect_ok("destroy");
}
