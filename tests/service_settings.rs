//! Service settings through cxflow_ecs_fargate_service, end to end through
//! the loopback proxy (which counts the calls): autoscaling that Terraform
//! never fights, capacity providers, deployment settings, a redeploy
//! trigger; each read back, planned empty, updated in place with the exact
//! calls, and imported.

mod common;

use aws_sdk_applicationautoscaling as aas;
use common::aws::Aws;
use common::*;
use serde_json::Value as Json;

const CLUSTER: &str = "svcset";

struct Fixture {
    subnets: Vec<String>,
    listener: String,
}

fn fixture(aws: &Aws) -> Fixture {
    block_on(async {
        let (_, subnets, listener) = aws.alb_fixture("svcset-alb").await;
        aws.ecs.create_cluster().cluster_name(CLUSTER).capacity_providers("FARGATE").capacity_providers("FARGATE_SPOT").send().await.unwrap();
        Fixture { subnets, listener }
    })
}

struct Knobs<'a> {
    min: i64,
    spot_weight: i64,
    trigger: &'a str,
}

fn config(f: &Fixture, k: &Knobs<'_>) -> String {
    let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "web" {{
  name          = "web"
  cluster       = "{CLUSTER}"
  cpu           = 256
  memory        = 512
  desired_count = {min}

  container {{
    name  = "app"
    image = "public.ecr.aws/nginx/nginx:1.27"
    port  = 80
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
  load_balancer {{
    listener_arn = "{listener}"
    host_header  = "web.example.com"
    priority     = 10
  }}

  autoscaling {{
    min                 = {min}
    max                 = 4
    cpu_target          = 60
    requests_per_target = 500
    scale_in_cooldown   = 120
    scheduled_action {{
      name     = "night"
      schedule = "cron(0 22 * * ? *)"
      timezone = "Europe/Berlin"
      min      = 1
      max      = 2
    }}
  }}

  capacity_provider_strategy {{
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 1
  }}
  capacity_provider_strategy {{
    capacity_provider = "FARGATE_SPOT"
    weight            = {spot}
  }}
  platform_version = "1.4.0"

  deployment {{
    minimum_healthy_percent = 50
    maximum_percent         = 200
    alarms {{
      names = ["web-5xx"]
    }}
  }}
  health_check_grace_period = 60
  propagate_tags            = "TASK_DEFINITION"
  redeploy_trigger          = "{trigger}"
}}
"#,
        min = k.min,
        listener = f.listener,
        spot = k.spot_weight,
        trigger = k.trigger,
    ));
    s
}

fn service(aws: &Aws) -> aws_sdk_ecs::types::Service {
    block_on(async { aws.ecs.describe_services().cluster(CLUSTER).services("web").include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap().services()[0].clone() })
}

fn scaler(m: &Moto) -> aas::Client {
    aas::Client::new(&m.sdk())
}

#[test]
fn service_settings_in_full() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "4")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws);
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());

    // 1. Create, and read everything back.
    wd.write("main.tf", &config(&f, &Knobs { min: 1, spot_weight: 3, trigger: "release-1" }));
    wd.apply().expect_ok("apply");
    let svc = service(&aws);
    let arn = svc.service_arn().unwrap().to_string();
    let strategy: Vec<(&str, i32, i32)> = svc.capacity_provider_strategy().iter().map(|c| (c.capacity_provider(), c.weight(), c.base())).collect();
    assert_eq!(strategy, vec![("FARGATE", 1, 1), ("FARGATE_SPOT", 3, 0)]);
    assert!(svc.launch_type().is_none(), "a strategy, not a launch type");
    assert_eq!(svc.platform_version(), Some("1.4.0"));
    let dc = svc.deployment_configuration().unwrap();
    assert_eq!((dc.minimum_healthy_percent(), dc.maximum_percent()), (Some(50), Some(200)));
    let alarms = dc.alarms().unwrap();
    assert_eq!((alarms.alarm_names(), alarms.enable(), alarms.rollback()), (&["web-5xx".to_string()][..], true, true));
    assert_eq!(svc.health_check_grace_period_seconds(), Some(60));
    assert_eq!(svc.propagate_tags().map(|p| p.as_str()), Some("TASK_DEFINITION"));
    assert!(svc.tags().iter().any(|t| t.key() == Some("cxflow:redeploy") && t.value() == Some("release-1")));
    let aas = scaler(&moto);
    let rid = format!("service/{CLUSTER}/web");
    block_on(async {
        let t = aas.describe_scalable_targets().service_namespace(aas::types::ServiceNamespace::Ecs).resource_ids(&rid).send().await.unwrap();
        let t = &t.scalable_targets()[0];
        assert_eq!((t.min_capacity(), t.max_capacity()), (1, 4));
        let p = aas.describe_scaling_policies().service_namespace(aas::types::ServiceNamespace::Ecs).resource_id(&rid).send().await.unwrap();
        let mut names: Vec<&str> = p.scaling_policies().iter().map(|p| p.policy_name()).collect();
        names.sort();
        assert_eq!(names, vec!["web-cpu", "web-requests"]);
        let req = p.scaling_policies().iter().find(|p| p.policy_name() == "web-requests").unwrap().target_tracking_scaling_policy_configuration().unwrap();
        assert_eq!(req.target_value(), 500.0);
        assert_eq!(req.scale_in_cooldown(), Some(120));
        let label = req.predefined_metric_specification().unwrap().resource_label().unwrap();
        assert!(label.starts_with("app/svcset-alb/") && label.contains("/targetgroup/"), "{label}");
        let s = aas.describe_scheduled_actions().service_namespace(aas::types::ServiceNamespace::Ecs).resource_id(&rid).send().await.unwrap();
        let night = &s.scheduled_actions()[0];
        assert_eq!((night.schedule(), night.timezone()), ("cron(0 22 * * ? *)", Some("Europe/Berlin")));
        assert_eq!(night.scalable_target_action().and_then(|a| a.max_capacity()), Some(2));
    });
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "web");
    assert_eq!(st["desired_count_managed_by"], "autoscaling");

    // 2. Nothing changed: an empty plan.
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after apply:\n{}", p.all());

    // 3. The scaler sets the count: never drift, never reverted, over three applies.
    block_on(async { aws.ecs.update_service().cluster(CLUSTER).service("web").desired_count(3).send().await.unwrap() });
    for i in 0..3 {
        let p = wd.plan_code();
        assert_eq!(p.code, 0, "a count the scaler set is not drift (round {i}):\n{}", p.all());
        wd.apply().expect_ok("apply with the scaler's count");
        assert_eq!(service(&aws).desired_count(), 3, "kept after apply {i}");
    }

    // 4. A min change is one RegisterScalableTarget, and nothing else writes.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, &Knobs { min: 2, spot_weight: 3, trigger: "release-1" }));
    wd.apply().expect_ok("apply min = 2");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!(delta("application-autoscaling:RegisterScalableTarget"), 1);
    assert_eq!(delta("ecs:UpdateService"), 0, "the scaler's count is left alone");
    block_on(async {
        let t = aas.describe_scalable_targets().service_namespace(aas::types::ServiceNamespace::Ecs).resource_ids(&rid).send().await.unwrap();
        assert_eq!(t.scalable_targets()[0].min_capacity(), 2);
    });

    // 5. A strategy change is one UpdateService, no replacement.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, &Knobs { min: 2, spot_weight: 1, trigger: "release-1" }));
    wd.apply().expect_ok("apply the new strategy");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!((delta("ecs:UpdateService"), delta("ecs:CreateService"), delta("ecs:DeleteService")), (1, 0, 0));
    let svc = service(&aws);
    assert_eq!(svc.service_arn(), Some(arn.as_str()));
    assert_eq!(svc.capacity_provider_strategy()[1].weight(), 1);

    // 6. A new redeploy trigger is exactly one new deployment.
    let primary = |s: &aws_sdk_ecs::types::Service| s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id()).map(str::to_string);
    let first = primary(&service(&aws));
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, &Knobs { min: 2, spot_weight: 1, trigger: "release-2" }));
    wd.apply().expect_ok("apply the redeploy trigger");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!(delta("ecs:UpdateService"), 1);
    assert_ne!(primary(&service(&aws)), first, "a new deployment");
    let sent = proxy.requests("ecs:UpdateService");
    let last: Json = serde_json::from_str(sent.last().unwrap()).unwrap();
    assert_eq!(last["forceNewDeployment"], true, "the request forced a deployment: {last}");
    assert_eq!(wd.plan_code().code, 0);

    // 7. Import recovers every setting (the scaler's count included): an empty plan.
    let imp = Workdir::new(&bundled_terraform(), Some(&moto));
    imp.write("main.tf", &config(&f, &Knobs { min: 2, spot_weight: 1, trigger: "release-2" }));
    imp.tf(&["import", "cxflow_ecs_fargate_service.web", &format!("{CLUSTER}/web")]).expect_ok("import");
    let p = imp.plan_code();
    assert_eq!(p.code, 0, "plan after import:\n{}", p.all());

    // 8. Autoscaling off: desired_count is authoritative again.
    let off = config(&f, &Knobs { min: 2, spot_weight: 1, trigger: "release-2" });
    let start = off.find("  autoscaling {").unwrap();
    let end = start + off[start..].find("\n  }\n").unwrap() + 5;
    wd.write("main.tf", &format!("{}{}", &off[..start], &off[end..]));
    let p = wd.tf(&["plan"]);
    wd.apply().expect_ok("apply without autoscaling");
    let shown = p.all();
    assert_eq!(service(&aws).desired_count(), 2, "back to the configured count:\n{shown}\n{:?}", proxy.requests("ecs:UpdateService").last());
    block_on(async {
        let t = aas.describe_scalable_targets().service_namespace(aas::types::ServiceNamespace::Ecs).resource_ids(&rid).send().await.unwrap();
        assert!(t.scalable_targets().is_empty(), "the scalable target is gone");
    });
    assert_eq!(wd.state_attrs("cxflow_ecs_fargate_service", "web")["desired_count_managed_by"], "terraform");

    // 9. Destroy leaves nothing tagged.
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
}
