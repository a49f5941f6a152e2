//! How a cxflow_ecs_fargate_service is reached, end to end through the
//! loopback proxy: the load balancer's target group and listener rule in
//! full (health check, deregistration delay, stickiness, several
//! conditions), Service Connect in full (named port, discovery name,
//! client alias, timeouts, TLS, its log configuration; client-only mode)
//! and a Cloud Map registry the resource creates; each read back with the
//! SDK, planned empty, updated in place with the exact calls, and imported.

mod common;

use common::aws::Aws;
use common::*;
use serde_json::Value as Json;

const CLUSTER: &str = "net";
const CA: &str = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0123abcd-4567-89ef-0123-456789abcdef";
const INFRA_ROLE: &str = "arn:aws:iam::123456789012:role/ecs-infrastructure";

struct Fixture {
    subnets: Vec<String>,
    listener: String,
    /// Service Connect's HTTP namespace (ARN) and the private DNS namespace of the registry (ID).
    sc_namespace: String,
    dns_namespace: String,
}

fn fixture(aws: &Aws) -> Fixture {
    block_on(async {
        let (vpc, subnets, listener) = aws.alb_fixture("net-alb").await;
        aws.ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        let op = aws.sd.create_http_namespace().name("shop-mesh").send().await.unwrap();
        let op = aws.sd.get_operation().operation_id(op.operation_id().unwrap()).send().await.unwrap();
        let id = op.operation().unwrap().targets().unwrap()[&aws_sdk_servicediscovery::types::OperationTargetType::Namespace].clone();
        let sc_namespace = aws.sd.get_namespace().id(&id).send().await.unwrap().namespace().unwrap().arn().unwrap().to_string();
        let op = aws.sd.create_private_dns_namespace().name("shop.local").vpc(&vpc).send().await.unwrap();
        let op = aws.sd.get_operation().operation_id(op.operation_id().unwrap()).send().await.unwrap();
        let dns_namespace = op.operation().unwrap().targets().unwrap()[&aws_sdk_servicediscovery::types::OperationTargetType::Namespace].clone();
        Fixture { subnets, listener, sc_namespace, dns_namespace }
    })
}

/// `interval` of the target group's health check; `client_only` Service Connect.
fn config(f: &Fixture, interval: i64, client_only: bool) -> String {
    let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let publish = if client_only {
        "    client_only = true\n".to_string()
    } else {
        format!(
            r#"    service {{
      port_name      = "http"
      discovery_name = "shop"
      client_alias {{
        port     = 80
        dns_name = "shop.internal"
      }}
      timeout {{
        idle_seconds        = 300
        per_request_seconds = 30
      }}
      tls {{
        private_ca_arn = "{CA}"
        role_arn       = "{INFRA_ROLE}"
      }}
    }}
"#
        )
    };
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "shop" {{
  name    = "shop"
  cluster = "{CLUSTER}"
  cpu     = 256
  memory  = 512

  container {{
    name  = "app"
    image = "public.ecr.aws/nginx/nginx:1.27"
    port_mapping {{
      container_port = 8080
      name           = "http"
      app_protocol   = "http"
    }}
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
  load_balancer {{
    listener_arn  = "{listener}"
    priority      = 20
    host_headers  = ["shop.example.com", "www.shop.example.com"]
    path_pattern  = "/api/*"
    source_ips    = ["10.0.0.0/8"]
    http_header {{
      name   = "X-Canary"
      values = ["1"]
    }}
    health_check {{
      path                = "/health"
      matcher             = "200"
      interval            = {interval}
      timeout             = 6
      healthy_threshold   = 3
      unhealthy_threshold = 4
      port                = "8080"
      protocol            = "HTTP"
    }}
    deregistration_delay = 30
    stickiness {{
      duration = 600
    }}
  }}
  service_connect {{
    namespace = "{sc_namespace}"
{publish}    log_configuration {{}}
  }}
  service_registry {{
    namespace_id    = "{dns_namespace}"
    dns_record_type = "A"
  }}
}}
"#,
        listener = f.listener,
        sc_namespace = f.sc_namespace,
        dns_namespace = f.dns_namespace,
    ));
    s
}

fn service(aws: &Aws) -> aws_sdk_ecs::types::Service {
    block_on(async { aws.ecs.describe_services().cluster(CLUSTER).services("shop").send().await.unwrap().services()[0].clone() })
}

fn primary_sc(s: &aws_sdk_ecs::types::Service) -> aws_sdk_ecs::types::ServiceConnectConfiguration {
    s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.service_connect_configuration()).cloned().expect("the primary deployment's Service Connect")
}

#[test]
fn load_balancing_service_connect_and_discovery_in_full() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws);
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());

    // 1. Create, and read everything back.
    wd.write("main.tf", &config(&f, 15, false));
    wd.apply().expect_ok("apply");
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "shop");
    let tg_arn = st["target_group_arn"].as_str().unwrap().to_string();
    block_on(async {
        let tg = aws.elb.describe_target_groups().target_group_arns(&tg_arn).send().await.unwrap();
        let tg = &tg.target_groups()[0];
        assert_eq!((tg.health_check_path(), tg.matcher().and_then(|m| m.http_code())), (Some("/health"), Some("200")));
        assert_eq!((tg.health_check_interval_seconds(), tg.health_check_timeout_seconds()), (Some(15), Some(6)));
        assert_eq!((tg.healthy_threshold_count(), tg.unhealthy_threshold_count()), (Some(3), Some(4)));
        assert_eq!((tg.health_check_port(), tg.health_check_protocol().map(|p| p.as_str())), (Some("8080"), Some("HTTP")));
        let attrs = aws.elb.describe_target_group_attributes().target_group_arn(&tg_arn).send().await.unwrap();
        let attr = |k: &str| attrs.attributes().iter().find(|a| a.key() == Some(k)).and_then(|a| a.value()).map(str::to_string);
        assert_eq!(attr("deregistration_delay.timeout_seconds").as_deref(), Some("30"));
        assert_eq!(attr("stickiness.enabled").as_deref(), Some("true"));
        assert_eq!(attr("stickiness.lb_cookie.duration_seconds").as_deref(), Some("600"));
        let rules = aws.elb.describe_rules().listener_arn(&f.listener).send().await.unwrap();
        let rule = rules.rules().iter().find(|r| r.priority() == Some("20")).expect("the listener rule");
        let mut fields: Vec<&str> = rule.conditions().iter().filter_map(|c| c.field()).collect();
        fields.sort();
        assert_eq!(fields, vec!["host-header", "http-header", "path-pattern", "source-ip"]);
        for c in rule.conditions() {
            match c.field() {
                Some("host-header") => assert_eq!(c.host_header_config().unwrap().values(), ["shop.example.com", "www.shop.example.com"]),
                Some("path-pattern") => assert_eq!(c.path_pattern_config().unwrap().values(), ["/api/*"]),
                Some("source-ip") => assert_eq!(c.source_ip_config().unwrap().values(), ["10.0.0.0/8"]),
                _ => {
                    let h = c.http_header_config().unwrap();
                    assert_eq!((h.http_header_name(), h.values()), (Some("X-Canary"), &["1".to_string()][..]));
                }
            }
        }
    });
    let svc = service(&aws);
    let sc = primary_sc(&svc);
    assert_eq!(sc.namespace(), Some(f.sc_namespace.as_str()));
    let published = &sc.services()[0];
    assert_eq!((published.port_name(), published.discovery_name()), ("http", Some("shop")));
    let alias = &published.client_aliases()[0];
    assert_eq!((alias.port(), alias.dns_name()), (80, Some("shop.internal")));
    let timeout = published.timeout().unwrap();
    assert_eq!((timeout.idle_timeout_seconds(), timeout.per_request_timeout_seconds()), (Some(300), Some(30)));
    let tls = published.tls().unwrap();
    assert_eq!((tls.issuer_certificate_authority().and_then(|c| c.aws_pca_authority_arn()), tls.role_arn()), (Some(CA), Some(INFRA_ROLE)));
    let log = sc.log_configuration().unwrap();
    assert_eq!(log.log_driver().as_str(), "awslogs");
    let options = log.options().unwrap();
    assert_eq!(options["awslogs-group"], format!("/cxflow/{CLUSTER}/shop"));
    assert_eq!(options["awslogs-stream-prefix"], "service-connect");
    let registry = svc.service_registries()[0].registry_arn().unwrap().to_string();
    block_on(async {
        let id = registry.rsplit('/').next().unwrap();
        let cm = aws.sd.get_service().id(id).send().await.unwrap();
        let cm = cm.service().unwrap();
        assert_eq!((cm.name(), cm.namespace_id()), (Some("shop"), Some(f.dns_namespace.as_str())));
        let record = &cm.dns_config().unwrap().dns_records()[0];
        assert_eq!((record.r#type().as_str(), record.ttl()), ("A", 10));
    });

    // 2. Nothing changed: an empty plan.
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after apply:\n{}", p.all());

    // 3. A health check change is one ModifyTargetGroup: no new group, no new deployment.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, 20, false));
    wd.apply().expect_ok("apply interval = 20");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!(delta("elasticloadbalancing:ModifyTargetGroup"), 1);
    assert_eq!((delta("elasticloadbalancing:CreateTargetGroup"), delta("ecs:UpdateService"), delta("ecs:CreateService")), (0, 0, 0));

    // 4. Client only: one UpdateService, which publishes nothing.
    let before = proxy.stats();
    wd.write("main.tf", &config(&f, 20, true));
    wd.apply().expect_ok("apply client_only");
    let delta = |op: &str| proxy.count(op) - before["by_operation"][op].as_u64().unwrap_or(0);
    assert_eq!((delta("ecs:UpdateService"), delta("ecs:CreateService")), (1, 0));
    let sent: Json = serde_json::from_str(proxy.requests("ecs:UpdateService").last().unwrap()).unwrap();
    assert_eq!(sent["serviceConnectConfiguration"]["enabled"], true, "{sent}");
    assert!(sent["serviceConnectConfiguration"].get("services").is_none(), "no port published: {sent}");
    assert!(primary_sc(&service(&aws)).services().is_empty());
    assert_eq!(wd.plan_code().code, 0, "converged");

    // 5. Import recovers all of it: an empty plan.
    let imp = Workdir::new(&bundled_terraform(), Some(&moto));
    imp.write("main.tf", &config(&f, 20, true));
    imp.tf(&["import", "cxflow_ecs_fargate_service.shop", &format!("{CLUSTER}/shop")]).expect_ok("import");
    let p = imp.plan_code();
    assert_eq!(p.code, 0, "plan after import:\n{}", p.all());
    assert_eq!(aws::children(&imp, "cxflow_ecs_fargate_service", "shop").get("registry"), Some(&registry), "the Cloud Map service is the import's child");

    // 6. Destroy leaves nothing tagged, the Cloud Map service included.
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
    block_on(async {
        let left = aws.sd.list_services().send().await.unwrap();
        assert!(left.services().iter().all(|s| s.name() != Some("shop")), "the Cloud Map service is gone");
    });
}
