//! Deployments that fail and services that never drain, end to end through
//! cxflow_ecs_fargate_service: the steady-state wait fails the apply when
//! the circuit breaker stops or rolls back the deployment, quoting the
//! service events and naming the revision that runs; a destroy whose
//! service keeps draining stops at `timeouts.delete` with state telling
//! what still exists. The stand-in's opt-in task model
//! (`STANDIN_ECS_IMAGE_PULL`, `STANDIN_ECS_DRAIN_SECONDS`, scripts/standin/ecs.py)
//! makes tasks whose ECR image is missing fail to start and deleted
//! services drain for a while; with `STANDIN_ECS_ALARM_BAKE_SECONDS` a
//! deployment with alarms bakes before it completes, and fails when one of
//! its CloudWatch alarms goes into ALARM meanwhile.

mod common;

use common::aws::Aws;
use common::*;

const CLUSTER: &str = "failing";
const ACCOUNT: &str = "123456789012";

fn repository() -> String {
    format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/app")
}

/// A cluster, moto's default subnets, and the ECR repository `app` holding the tag `v1`.
fn fixture(aws: &Aws) -> Vec<String> {
    block_on(async {
        aws.ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        aws.ecr.create_repository().repository_name("app").send().await.unwrap();
        let manifest = r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}"#;
        aws.ecr.put_image().repository_name("app").image_manifest(manifest).image_tag("v1").send().await.unwrap();
        let subnets = aws.ec2.describe_subnets().send().await.unwrap();
        subnets.subnets().iter().filter_map(|s| s.subnet_id()).take(2).map(str::to_string).collect()
    })
}

fn config(subnets: &[String], tag: &str, rollback: bool, delete_timeout: &str) -> String {
    let subnets = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "api" {{
  name          = "api"
  cluster       = "{CLUSTER}"
  cpu           = 256
  memory        = 512
  desired_count = 2

  container {{
    name  = "app"
    image = "{repo}:{tag}"
    port  = 8080
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
  deployment_circuit_breaker {{
    enable   = true
    rollback = {rollback}
  }}
  timeouts {{
    delete = "{delete_timeout}"
  }}
}}
"#,
        repo = repository(),
    ));
    s
}

fn service(aws: &Aws) -> aws_sdk_ecs::types::Service {
    block_on(async { aws.ecs.describe_services().cluster(CLUSTER).services("api").send().await.unwrap().services()[0].clone() })
}

fn revision(arn: &str) -> &str {
    arn.rsplit_once(":task-definition/").map(|(_, r)| r).unwrap()
}

#[test]
fn failed_deployments_fail_the_apply_with_the_events() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2"), ("STANDIN_ECS_IMAGE_PULL", "check")]);
    let aws = Aws::new(&moto);
    let subnets = fixture(&aws);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));

    // 1. A deployment of an image that exists completes.
    wd.write("main.tf", &config(&subnets, "v1", true, "10m"));
    wd.apply().expect_ok("apply v1");
    let first = service(&aws).task_definition().unwrap().to_string();
    assert_eq!(revision(&first), "api:1");

    // 2. A tag that is not in the repository: the breaker trips and rolls back;
    //    the apply fails, quoting the events and naming the revision that runs.
    wd.write("main.tf", &config(&subnets, "missing", true, "10m"));
    let r = wd.apply();
    r.expect_fail("apply of an image that cannot be pulled");
    let text = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("was rolled back: the service now runs api:1"), "names the running revision:\n{text}");
    assert!(text.contains("deployment failed: tasks failed to start."), "quotes the breaker's event:\n{text}");
    assert!(text.contains("CannotPullContainerError"), "quotes the task failure:\n{text}");
    assert!(text.contains(&format!("{}:missing", repository())), "names the image:\n{text}");
    let svc = service(&aws);
    assert_eq!(svc.task_definition(), Some(first.as_str()), "AWS runs the old revision");
    // State tells the truth: the same service, and a plan that wants the new revision again.
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "api");
    assert_eq!(st["service_arn"].as_str(), svc.service_arn());
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "the failed change is still to do:\n{}", p.all());

    // 3. Without rollback the failed deployment stays primary: the apply says so.
    wd.write("main.tf", &config(&subnets, "missing", false, "10m"));
    let r = wd.apply();
    r.expect_fail("apply without rollback");
    let text = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("ECS deployment circuit breaker: tasks failed to start. (no deployment replaced it)"), "{text}");
    let primary = service(&aws);
    let d = primary.deployments().iter().find(|d| d.status() == Some("PRIMARY")).unwrap();
    assert_eq!(d.rollout_state().map(|s| s.as_str()), Some("FAILED"));
    assert!(revision(d.task_definition().unwrap()) != "api:1", "the failed revision is primary");

    // 4. Back to an image that exists: the apply converges, then plans empty.
    wd.write("main.tf", &config(&subnets, "v1", true, "10m"));
    wd.apply().expect_ok("apply v1 again");
    assert_eq!(wd.plan_code().code, 0, "converged");
    wd.destroy().expect_ok("destroy");
    assert_eq!(aws::owned_leftovers(&moto), Vec::<String>::new());
}

/// `config` with `deployment { alarms { names = ["api-5xx"], rollback } }`.
fn alarm_config(subnets: &[String], tag: &str, rollback: bool) -> String {
    let alarms = format!("  deployment {{\n    alarms {{\n      names    = [\"{ALARM}\"]\n      rollback = {rollback}\n    }}\n  }}\n  timeouts {{");
    config(subnets, tag, true, "10m").replacen("  timeouts {", &alarms, 1)
}

const ALARM: &str = "api-5xx";

fn set_alarm(aws: &Aws, state: aws_sdk_cloudwatch::types::StateValue) {
    block_on(async { aws.cloudwatch.set_alarm_state().alarm_name(ALARM).state_value(state).state_reason("set by the test").send().await.unwrap() });
}

/// Apply while watching the service: once the apply's deployment of a
/// revision other than `running` is under way, the alarm goes into ALARM
/// (ECS ignores alarms already in ALARM when a deployment starts).
fn apply_while_the_alarm_goes_off(wd: &Workdir, aws: &Aws, running: &str) -> Run {
    std::thread::scope(|s| {
        let apply = s.spawn(|| wd.apply());
        let started = std::time::Instant::now();
        loop {
            let svc = service(aws);
            let primary = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
            if primary.is_some_and(|d| d.task_definition() != Some(running) && d.rollout_state() == Some(&aws_sdk_ecs::types::DeploymentRolloutState::InProgress)) {
                break;
            }
            assert!(!apply.is_finished(), "the apply ended before its deployment was seen");
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "no new deployment in 60 s");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        set_alarm(aws, aws_sdk_cloudwatch::types::StateValue::Alarm);
        apply.join().unwrap()
    })
}

#[test]
fn alarms_that_go_off_fail_the_apply_with_the_events() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2"), ("STANDIN_ECS_ALARM_BAKE_SECONDS", "8")]);
    let aws = Aws::new(&moto);
    let subnets = fixture(&aws);
    block_on(async {
        let m = aws.cloudwatch.put_metric_alarm().alarm_name(ALARM).namespace("AWS/ApplicationELB").metric_name("HTTPCode_Target_5XX_Count");
        let m = m.statistic(aws_sdk_cloudwatch::types::Statistic::Sum).period(60).evaluation_periods(1).threshold(5.0);
        m.comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold).send().await.unwrap();
    });
    set_alarm(&aws, aws_sdk_cloudwatch::types::StateValue::Ok);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));

    // 1. With the alarm OK the first deployment bakes, then completes.
    wd.write("main.tf", &alarm_config(&subnets, "v1", true));
    wd.apply().expect_ok("apply v1");
    let svc = service(&aws);
    let first = svc.task_definition().unwrap().to_string();
    assert_eq!(revision(&first), "api:1");
    let alarms = svc.deployment_configuration().and_then(|d| d.alarms()).expect("the service has deployment alarms");
    assert_eq!((alarms.alarm_names(), alarms.enable(), alarms.rollback()), (&[ALARM.to_string()][..], true, true));

    // 2. The alarm goes off during the next deployment: ECS fails it and rolls
    //    back; the apply fails, quoting the events, naming the alarm and the revision that runs.
    wd.write("main.tf", &alarm_config(&subnets, "v2", true));
    let r = apply_while_the_alarm_goes_off(&wd, &aws, &first);
    r.expect_fail("apply during which the alarm goes off");
    let text = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains(&format!("failed: ECS deployment alarm(s) in ALARM state: {ALARM}.")), "names the alarm:\n{text}");
    assert!(text.contains("the service rolled back and now runs api:1"), "names the running revision:\n{text}");
    assert!(text.contains(&format!("deployment failed: alarm(s) {ALARM} in ALARM state.")), "quotes the failure event:\n{text}");
    assert!(text.contains("rolling back to deployment ecs-svc/"), "quotes the rollback event:\n{text}");
    let svc = service(&aws);
    assert_eq!(svc.task_definition(), Some(first.as_str()), "AWS runs the old revision");
    let failed = svc.deployments().iter().find(|d| d.rollout_state() == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Failed)).expect("the failed deployment");
    assert_eq!(revision(failed.task_definition().unwrap()), "api:2");
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "api");
    assert_eq!(st["service_arn"].as_str(), svc.service_arn());
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "the failed change is still to do:\n{}", p.all());

    // 3. Without rollback the failed deployment stays primary: the apply says so.
    set_alarm(&aws, aws_sdk_cloudwatch::types::StateValue::Ok);
    wd.write("main.tf", &alarm_config(&subnets, "v2", false));
    let r = apply_while_the_alarm_goes_off(&wd, &aws, &first);
    r.expect_fail("apply without rollback during which the alarm goes off");
    let text = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains(&format!("ECS deployment alarm(s) in ALARM state: {ALARM}. (no deployment replaced it)")), "{text}");
    let svc = service(&aws);
    let d = svc.deployments().iter().find(|d| d.status() == Some("PRIMARY")).unwrap();
    assert_eq!(d.rollout_state().map(|s| s.as_str()), Some("FAILED"));
    assert!(revision(d.task_definition().unwrap()) != "api:1", "the failed revision is primary");
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "the failed deployment is still to do:\n{}", p.all());

    // 4. The alarm back to OK: the next deployment bakes and completes; the apply converges.
    set_alarm(&aws, aws_sdk_cloudwatch::types::StateValue::Ok);
    wd.write("main.tf", &alarm_config(&subnets, "v3", true));
    wd.apply().expect_ok("apply v3 with the alarm OK");
    let svc = service(&aws);
    let [d] = svc.deployments() else { panic!("one deployment once completed: {:?}", svc.deployments()) };
    assert_eq!(d.rollout_state().map(|s| s.as_str()), Some("COMPLETED"));
    assert_eq!(d.task_definition(), svc.task_definition());
    assert!(!matches!(svc.task_definition().map(revision), Some("api:1") | None), "a new revision runs");
    assert_eq!(wd.plan_code().code, 0, "converged");
    wd.destroy().expect_ok("destroy");
    assert_eq!(aws::owned_leftovers(&moto), Vec::<String>::new());
}

#[test]
fn a_service_that_never_drains_stops_at_the_delete_timeout() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "2"), ("STANDIN_ECS_DRAIN_SECONDS", "25")]);
    let aws = Aws::new(&moto);
    let subnets = fixture(&aws);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &config(&subnets, "v1", true, "5s"));
    wd.apply().expect_ok("apply");
    let arn = service(&aws).service_arn().unwrap().to_string();

    // 1. The tasks outlive the delete timeout: the destroy fails, saying what still runs.
    let started = std::time::Instant::now();
    let r = wd.destroy();
    r.expect_fail("destroy of a service that keeps draining");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "bounded by the delete timeout, took {:?}", started.elapsed());
    let text = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("the service to drain (raise timeouts.delete to wait longer)"), "{text}");
    assert!(text.contains("status DRAINING, 2 tasks still running"), "says what still runs:\n{text}");

    // 2. State still records what exists: the service and what it needs.
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "api");
    assert_eq!(st["service_arn"].as_str(), Some(arn.as_str()), "the service is still in state");
    let kids = aws::children(&wd, "cxflow_ecs_fargate_service", "api");
    let td = kids.get("task_definition").expect("the task definition is still recorded").clone();
    block_on(async {
        let d = aws.ecs.describe_task_definition().task_definition(&td).send().await.unwrap();
        assert_eq!(d.task_definition().and_then(|t| t.status()).map(|s| s.as_str()), Some("ACTIVE"), "kept while the service drains");
        let groups = aws.logs.describe_log_groups().log_group_name_prefix(format!("/cxflow/{CLUSTER}/api")).send().await.unwrap();
        assert_eq!(groups.log_groups().len(), 1, "the log group is kept while the service drains");
    });
    assert_eq!(service(&aws).status(), Some("DRAINING"));

    // 3. Once drained, the next destroy finishes and leaves nothing.
    while service(&aws).status() == Some("DRAINING") {
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "the stand-in drains in 25 s");
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    wd.destroy().expect_ok("destroy after draining");
    assert_eq!(aws::owned_leftovers(&moto), Vec::<String>::new());
}
