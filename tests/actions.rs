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
