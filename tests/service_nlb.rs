//! A cxflow_ecs_fargate_service behind a network load balancer, end to end
//! through the loopback proxy: the TCP target group and the TCP listener the
//! resource creates on a given NLB, read back with the SDK, planned empty,
//! changed in place with exactly one call (deregistration delay, listener
//! port), imported, destroyed (the NLB
//! stays); and a listener port another listener already has, refused before
//! anything is created.

mod common;

use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetTypeEnum};
use common::aws::Aws;
use common::*;

const CLUSTER: &str = "nlbc";

struct Fixture {
    vpc: String,
    subnets: Vec<String>,
    nlb: String,
}

fn fixture(aws: &Aws) -> Fixture {
    block_on(async {
        let vpcs = aws.ec2.describe_vpcs().send().await.unwrap();
        let vpc = vpcs.vpcs().iter().find(|v| v.is_default() == Some(true)).and_then(|v| v.vpc_id()).unwrap().to_string();
        let f = aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build();
        let subnets = aws.ec2.describe_subnets().filters(f).send().await.unwrap();
        let mut subnets: Vec<String> = subnets.subnets().iter().filter_map(|s| s.subnet_id().map(str::to_string)).collect();
        subnets.sort();
        subnets.truncate(2);
        let lb = aws.elb.create_load_balancer().name("edge-nlb").r#type(LoadBalancerTypeEnum::Network).set_subnets(Some(subnets.clone())).send().await.unwrap();
        let nlb = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        aws.ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        Fixture { vpc, subnets, nlb }
    })
}

fn config(f: &Fixture, name: &str, port: i64, deregistration_delay: i64) -> String {
    let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "{name}" {{
  name    = "{name}"
  cluster = "{CLUSTER}"
  cpu     = 256
  memory  = 512

  container {{
    name  = "app"
    image = "public.ecr.aws/nginx/nginx:1.27"
    port  = 8080
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
  network_load_balancer {{
    load_balancer_arn    = "{nlb}"
    port                 = {port}
    deregistration_delay = {deregistration_delay}
  }}
  health_check_grace_period = 30
}}
"#,
        nlb = f.nlb,
    ));
    s
}

fn listeners(aws: &Aws, nlb: &str) -> Vec<aws_sdk_elasticloadbalancingv2::types::Listener> {
    block_on(async { aws.elb.describe_listeners().load_balancer_arn(nlb).send().await.unwrap().listeners().to_vec() })
}

fn target_groups(aws: &Aws) -> Vec<aws_sdk_elasticloadbalancingv2::types::TargetGroup> {
    block_on(async { aws.elb.describe_target_groups().send().await.unwrap().target_groups().to_vec() })
}

#[test]
fn service_behind_a_network_load_balancer() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws);
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());

    // 1. Create: a TCP target group of type ip and a TCP listener on port 9000 forwarding to it.
    wd.write("main.tf", &config(&f, "tcp", 9000, 60));
    wd.apply().expect_ok("apply");
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "tcp");
    let tg_arn = st["target_group_arn"].as_str().expect("target_group_arn").to_string();
    let listener_arn = st["listener_arn"].as_str().expect("listener_arn").to_string();
    assert_eq!(st["network_load_balancer"]["container_name"], "app", "the default container");
    assert_eq!(st["network_load_balancer"]["container_port"], 8080, "the container's first port");
    block_on(async {
        let tg = aws.elb.describe_target_groups().target_group_arns(&tg_arn).send().await.unwrap().target_groups()[0].clone();
        assert_eq!((tg.protocol(), tg.target_type(), tg.port()), (Some(&ProtocolEnum::Tcp), Some(&TargetTypeEnum::Ip), Some(8080)));
        assert_eq!(tg.vpc_id(), Some(f.vpc.as_str()));
        assert_eq!((tg.health_check_protocol(), tg.health_check_port()), (Some(&ProtocolEnum::Tcp), Some("traffic-port")));
        assert_eq!((tg.health_check_interval_seconds(), tg.health_check_timeout_seconds()), (Some(30), Some(10)));
        let attrs = aws.elb.describe_target_group_attributes().target_group_arn(&tg_arn).send().await.unwrap();
        let delay = attrs.attributes().iter().find(|a| a.key() == Some("deregistration_delay.timeout_seconds")).and_then(|a| a.value()).map(str::to_string);
        assert_eq!(delay.as_deref(), Some("60"));
    });
    let ls = listeners(&aws, &f.nlb);
    assert_eq!(ls.len(), 1, "one listener on the NLB: {ls:?}");
    let l = &ls[0];
    assert_eq!((l.listener_arn(), l.protocol(), l.port()), (Some(listener_arn.as_str()), Some(&ProtocolEnum::Tcp), Some(9000)));
    let action = &l.default_actions()[0];
    assert_eq!((action.r#type(), action.target_group_arn()), (Some(&ActionTypeEnum::Forward), Some(tg_arn.as_str())));
    block_on(async {
        let tags = aws.elb.describe_tags().resource_arns(&listener_arn).send().await.unwrap();
        let tags = tags.tag_descriptions()[0].tags();
        let tag = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
        assert_eq!(tag("cxflow:owner").as_deref(), Some("cxflow_ecs_fargate_service/nlbc/tcp"));
        assert_eq!(tag("cxflow:child").as_deref(), Some("nlb_listener"));
        let svc = aws.ecs.describe_services().cluster(CLUSTER).services("tcp").send().await.unwrap().services()[0].clone();
        let lb = &svc.load_balancers()[0];
        assert_eq!((lb.target_group_arn(), lb.container_name(), lb.container_port()), (Some(tg_arn.as_str()), Some("app"), Some(8080)));
        assert_eq!(svc.health_check_grace_period_seconds(), Some(30));
    });

    // 2. Nothing changed: an empty plan.
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after apply:\n{}", p.all());

    // 3. A deregistration delay change is exactly one ModifyTargetGroupAttributes.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, "tcp", 9000, 15));
    wd.apply().expect_ok("apply deregistration_delay = 15");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!(delta("elasticloadbalancing:ModifyTargetGroupAttributes"), 1);
    for op in [
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:ModifyListener",
        "ecs:UpdateService",
        "ecs:CreateService",
    ] {
        assert_eq!(delta(op), 0, "{op}");
    }
    block_on(async {
        let attrs = aws.elb.describe_target_group_attributes().target_group_arn(&tg_arn).send().await.unwrap();
        let delay = attrs.attributes().iter().find(|a| a.key() == Some("deregistration_delay.timeout_seconds")).and_then(|a| a.value()).map(str::to_string);
        assert_eq!(delay.as_deref(), Some("15"));
    });
    assert_eq!(wd.plan_code().code, 0, "converged");

    // 3b. Another listener port is one ModifyListener on the same listener.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, "tcp", 9001, 15));
    wd.apply().expect_ok("apply port = 9001");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!((delta("elasticloadbalancing:ModifyListener"), delta("elasticloadbalancing:CreateListener")), (1, 0));
    assert_eq!((delta("elasticloadbalancing:CreateTargetGroup"), delta("ecs:UpdateService")), (0, 0));
    let ls = listeners(&aws, &f.nlb);
    assert_eq!(ls.iter().map(|l| (l.listener_arn().unwrap_or_default(), l.port())).collect::<Vec<_>>(), [(listener_arn.as_str(), Some(9001))]);
    assert_eq!(wd.plan_code().code, 0, "converged on 9001");

    // 4. Import (state rm, import by name) recovers the block: an empty plan, the same children.
    let children = aws::children(&wd, "cxflow_ecs_fargate_service", "tcp");
    wd.tf(&["state", "rm", "cxflow_ecs_fargate_service.tcp"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_ecs_fargate_service.tcp", &format!("{CLUSTER}/tcp")]).expect_ok("import");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after import:\n{}", p.all());
    let imported = aws::children(&wd, "cxflow_ecs_fargate_service", "tcp");
    assert_eq!(aws::changed_keys(&children, &imported), Vec::<String>::new(), "the same children");
    assert_eq!(imported.get("nlb_listener"), Some(&listener_arn));
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "tcp");
    assert_eq!((st["listener_arn"].as_str(), st["target_group_arn"].as_str()), (Some(listener_arn.as_str()), Some(tg_arn.as_str())));

    // 5. Destroy removes the listener and the target group; the NLB stays.
    wd.destroy().expect_ok("destroy");
    assert!(listeners(&aws, &f.nlb).is_empty(), "the listener is gone");
    assert!(target_groups(&aws).iter().all(|t| t.target_group_arn() != Some(tg_arn.as_str())), "the target group is gone");
    let lbs = block_on(async { aws.elb.describe_load_balancers().load_balancer_arns(&f.nlb).send().await.unwrap().load_balancers().len() });
    assert_eq!(lbs, 1, "the NLB is the user's");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());

    // 6. A port another listener has: a clear error naming it, nothing created.
    let taken = block_on(async {
        let tg = aws.elb.create_target_group().name("theirs").protocol(ProtocolEnum::Tcp).port(80).vpc_id(&f.vpc).target_type(TargetTypeEnum::Ip).send().await.unwrap();
        let tg = tg.target_groups()[0].target_group_arn().unwrap().to_string();
        let fwd = aws_sdk_elasticloadbalancingv2::types::Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg).build();
        let l = aws.elb.create_listener().load_balancer_arn(&f.nlb).protocol(ProtocolEnum::Tcp).port(7000).default_actions(fwd).send().await.unwrap();
        l.listeners()[0].listener_arn().unwrap().to_string()
    });
    let groups_before = target_groups(&aws).len();
    let clash = Workdir::new(&bundled_terraform(), Some(&moto));
    clash.write("main.tf", &config(&f, "clash", 7000, 60));
    let r = clash.apply();
    r.expect_fail("apply on a taken port");
    let out = r.all();
    assert!(out.contains("port 7000") && out.contains("DuplicateListener") && out.contains(&taken), "the error names the port and the listener:\n{out}");
    assert_eq!(target_groups(&aws).len(), groups_before, "no target group made");
    assert_eq!(listeners(&aws, &f.nlb).len(), 1, "their listener only");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new(), "nothing orphaned");
}
