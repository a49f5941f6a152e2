//! cxflow_ecs_fargate_service end to end: the real Terraform CLI drives the
//! provider binary against a moto server; every claim is checked afterwards
//! with AWS SDK clients pointed at the same moto.
//!
//! Scenarios share one moto and one working directory each:
//! - `lifecycle`: create (every child checked), no-op plan, image update,
//!   desired count update, out-of-band deletes repaired one child at a time,
//!   import → empty plan, destroy leaves nothing tagged.
//! - `failures_and_adoption`: a cluster that does not exist (partial state,
//!   destroy cleans up), adoption of tagged leftovers after a "crash", a
//!   same-named untagged object refused with an import hint, the steady-state
//!   wait timing out.
//! - `validation`: bad configurations rejected by `terraform validate`.

mod common;

use std::collections::BTreeMap;

use common::aws::{Aws, LEASE_TAG, OWNER_TAG};
use common::*;
use cxflow::resources::ecs_fargate_service::Names;
use serde_json::Value as Json;

const CLUSTER: &str = "cruddur";
const IMAGE_V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/backend-flask:v1";
const IMAGE_V2: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/backend-flask:v2";
const PARAM_ARN: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/cruddur/backend-flask/CONNECTION_URL";
const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cruddur/rollbar-AbCdEf";

/// Moto's default VPC: two subnets, an ALB with an HTTP listener, and the cluster.
struct Fixture {
    subnets: Vec<String>,
    listener: String,
}

fn fixture(aws: &Aws, cluster: Option<&str>) -> Fixture {
    block_on(async {
        let (_, subnets, listener) = aws.alb_fixture("cruddur-alb").await;
        if let Some(c) = cluster {
            aws.ecs.create_cluster().cluster_name(c).send().await.unwrap();
        }
        Fixture { subnets, listener }
    })
}

/// The service configuration the lifecycle scenario evolves.
struct Svc<'a> {
    name: &'a str,
    cluster: &'a str,
    image: &'a str,
    desired: i64,
    load_balancer: bool,
    extra: &'a str,
}

impl<'a> Svc<'a> {
    fn new(name: &'a str) -> Svc<'a> {
        Svc { name, cluster: CLUSTER, image: IMAGE_V1, desired: 1, load_balancer: true, extra: "" }
    }
    fn hcl(&self, f: &Fixture) -> String {
        let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        let lb = if self.load_balancer {
            format!(
                r#"
  load_balancer {{
    listener_arn = "{}"
    host_header  = "api.example.com"
    priority     = 10
    health_check {{
      path    = "/api/health-check"
      matcher = "200-299"
    }}
  }}
"#,
                f.listener
            )
        } else {
            String::new()
        };
        let mut s = provider_block("  default_tags {\n    tags = { Team = \"platform\" }\n  }");
        s.push_str(&format!(
            r#"
resource "cxflow_ecs_fargate_service" "backend" {{
  name          = "{name}"
  cluster       = "{cluster}"
  cpu           = 256
  memory        = 512
  desired_count = {desired}
  enable_execute_command = true
  log_retention_days     = 1

  container {{
    name  = "backend-flask"
    image = "{image}"
    port  = 4567
    environment = {{
      FRONTEND_URL = "*"
      BACKEND_URL  = "*"
    }}
    secrets = {{
      CONNECTION_URL       = "{param}"
      ROLLBAR_ACCESS_TOKEN = "{secret}"
    }}
    health_check {{
      command      = ["CMD-SHELL", "python /backend-flask/bin/flask/health-check"]
      interval     = 30
      timeout      = 5
      retries      = 3
      start_period = 60
    }}
  }}

  container {{
    name      = "xray"
    image     = "public.ecr.aws/xray/aws-xray-daemon:latest"
    essential = false
  }}

  network {{
    subnet_ids       = [{subnets}]
    assign_public_ip = true
    ingress {{
      port        = 4567
      cidr_blocks = ["0.0.0.0/0"]
    }}
  }}
{lb}
  tags = {{
    App = "cruddur"
  }}
{extra}
}}
"#,
            name = self.name,
            cluster = self.cluster,
            desired = self.desired,
            image = self.image,
            param = PARAM_ARN,
            secret = SECRET_ARN,
            extra = self.extra,
        ));
        s
    }
}

fn children(wd: &Workdir) -> BTreeMap<String, String> {
    common::aws::children(wd, "cxflow_ecs_fargate_service", "backend")
}

fn policy(doc: &str) -> Json {
    serde_json::from_str(doc).unwrap_or_else(|_| serde_json::from_str(&urldecode(doc)).unwrap())
}

fn urldecode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The statement with `sid` from a policy document.
fn statement<'a>(doc: &'a Json, sid: &str) -> &'a Json {
    doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no statement {sid} in {doc}"))
}

fn describe_service(aws: &Aws, cluster: &str, name: &str) -> Option<aws_sdk_ecs::types::Service> {
    block_on(async {
        let d = aws.ecs.describe_services().cluster(cluster).services(name).include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap();
        d.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned()
    })
}

fn task_definition(aws: &Aws, arn: &str) -> Option<aws_sdk_ecs::types::TaskDefinition> {
    block_on(async {
        aws.ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await
            .ok()
            .and_then(|o| o.task_definition().cloned())
            .filter(|t| t.status() == Some(&aws_sdk_ecs::types::TaskDefinitionStatus::Active))
    })
}

#[test]
fn lifecycle() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws, Some(CLUSTER));
    // Terraform reaches moto through the counting proxy, to check which calls an update makes.
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::new(&tf, Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    let names = Names::new(CLUSTER, "backend-flask");

    // ---- create
    let mut svc = Svc::new("backend-flask");
    // Bounded waits, so a regression fails in minutes instead of hanging for the default 20m.
    svc.extra = "  timeouts {\n    create = \"3m\"\n    update = \"3m\"\n    delete = \"3m\"\n  }\n";
    wd.write("main.tf", &svc.hcl(&f));
    wd.apply().expect_ok("create");
    let attrs = wd.state_attrs("cxflow_ecs_fargate_service", "backend");
    let kids = children(&wd);
    let keys: Vec<&str> = kids.keys().map(String::as_str).collect();
    assert_eq!(keys, ["execution_role", "listener_rule", "log_group", "security_group", "service", "target_group", "task_definition", "task_role"], "{attrs}");
    assert_eq!(attrs["id"], "cruddur/backend-flask");
    assert_eq!(attrs["drift"], serde_json::json!({}));
    assert_eq!(attrs["service_arn"], kids["service"].as_str());
    assert_eq!(attrs["task_definition_revision"], 1);
    assert_eq!(attrs["log_group_name"], "/cxflow/cruddur/backend-flask");
    let owner = format!("cxflow_ecs_fargate_service/{CLUSTER}/backend-flask");

    // The service: network, task definition, load balancer, tags.
    let s = describe_service(&aws, CLUSTER, "backend-flask").expect("service exists");
    assert_eq!(s.service_arn(), Some(kids["service"].as_str()));
    assert_eq!(s.desired_count(), 1);
    assert_eq!(s.task_definition(), Some(kids["task_definition"].as_str()));
    assert_eq!(s.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let vpc = s.network_configuration().unwrap().awsvpc_configuration().unwrap();
    assert_eq!(vpc.security_groups(), [kids["security_group"].clone()]);
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("ENABLED"));
    let mut sn = vpc.subnets().to_vec();
    sn.sort();
    assert_eq!(sn, f.subnets);
    let lb = &s.load_balancers()[0];
    assert_eq!((lb.target_group_arn(), lb.container_name(), lb.container_port()), (Some(kids["target_group"].as_str()), Some("backend-flask"), Some(4567)));
    let tags: BTreeMap<&str, &str> = s.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags.get(OWNER_TAG), Some(&owner.as_str()));
    assert_eq!(tags.get("App"), Some(&"cruddur"));
    assert_eq!(tags.get("Team"), Some(&"platform"), "provider default tags are merged");

    // Task definition contents.
    let td = task_definition(&aws, &kids["task_definition"]).expect("task definition is active");
    assert_eq!((td.cpu(), td.memory()), (Some("256"), Some("512")));
    assert_eq!(td.network_mode().map(|m| m.as_str()), Some("awsvpc"));
    assert_eq!(td.requires_compatibilities().iter().map(|c| c.as_str()).collect::<Vec<_>>(), ["FARGATE"]);
    assert_eq!(td.execution_role_arn(), Some(kids["execution_role"].as_str()));
    assert_eq!(td.task_role_arn(), Some(kids["task_role"].as_str()));
    let app = &td.container_definitions()[0];
    assert_eq!((app.name(), app.image(), app.essential()), (Some("backend-flask"), Some(IMAGE_V1), Some(true)));
    assert_eq!(app.port_mappings()[0].container_port(), Some(4567));
    let env: BTreeMap<&str, &str> = app.environment().iter().map(|e| (e.name().unwrap(), e.value().unwrap())).collect();
    assert_eq!(env, BTreeMap::from([("BACKEND_URL", "*"), ("FRONTEND_URL", "*")]));
    let secrets: BTreeMap<&str, &str> = app.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
    assert_eq!(secrets, BTreeMap::from([("CONNECTION_URL", PARAM_ARN), ("ROLLBAR_ACCESS_TOKEN", SECRET_ARN)]));
    let hc = app.health_check().unwrap();
    assert_eq!(
        (hc.command(), hc.interval(), hc.timeout(), hc.retries(), hc.start_period()),
        (&["CMD-SHELL".to_string(), "python /backend-flask/bin/flask/health-check".to_string()][..], Some(30), Some(5), Some(3), Some(60))
    );
    let log = app.log_configuration().unwrap();
    assert_eq!(log.log_driver().as_str(), "awslogs");
    assert_eq!(log.options().unwrap().get("awslogs-group").map(String::as_str), Some("/cxflow/cruddur/backend-flask"));
    let sidecar = &td.container_definitions()[1];
    assert_eq!((sidecar.name(), sidecar.essential()), (Some("xray"), Some(false)));

    // Roles and their least-privilege policies.
    block_on(async {
        let role = aws.iam.get_role().role_name(names.execution_role()).send().await.unwrap();
        let role = role.role().unwrap();
        assert_eq!(role.arn(), kids["execution_role"]);
        assert!(role.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == owner));
        let trust = policy(role.assume_role_policy_document().unwrap());
        assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ecs-tasks.amazonaws.com");
        let p = aws.iam.get_role_policy().role_name(names.execution_role()).policy_name("cxflow-execution").send().await.unwrap();
        let doc = policy(p.policy_document());
        assert_eq!(statement(&doc, "Parameters")["Action"], "ssm:GetParameters");
        assert_eq!(statement(&doc, "Parameters")["Resource"], serde_json::json!([PARAM_ARN]), "exactly the referenced parameter");
        assert_eq!(statement(&doc, "Secrets")["Resource"], serde_json::json!([SECRET_ARN]), "exactly the referenced secret");
        assert_eq!(statement(&doc, "Logs")["Resource"], "arn:aws:logs:us-east-1:123456789012:log-group:/cxflow/cruddur/backend-flask:*");
        assert_eq!(statement(&doc, "EcrAuth")["Resource"], "*");
        assert_eq!(
            statement(&doc, "EcrPull")["Resource"],
            serde_json::json!(["arn:aws:ecr:us-east-1:123456789012:repository/backend-flask"]),
            "only the referenced ECR repository"
        );
        // Secrets under AWS managed keys need no KMS grant (secrets_kms_key_arns names customer keys).
        assert!(!doc.to_string().contains("kms:"), "no KMS permission without a customer key: {doc}");
        assert!(!doc.to_string().contains("\"ssm:*\"") && !doc.to_string().contains("logs:*"), "no wildcard actions: {doc}");
        let task = aws.iam.get_role_policy().role_name(names.task_role()).policy_name("cxflow-ecs-exec").send().await.unwrap();
        let task = policy(task.policy_document());
        let actions: Vec<&str> = statement(&task, "EcsExec")["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(actions.iter().all(|a| a.starts_with("ssmmessages:") && a.ends_with("Channel")) && actions.len() == 4, "{actions:?}");
    });

    // Security group rules, log group retention, target group and rule.
    block_on(async {
        let sg = aws.ec2.describe_security_groups().group_ids(&kids["security_group"]).send().await.unwrap();
        let sg = &sg.security_groups()[0];
        let ingress: Vec<(Option<i32>, Vec<&str>)> = sg.ip_permissions().iter().map(|p| (p.from_port(), p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect())).collect();
        assert_eq!(ingress, vec![(Some(4567), vec!["0.0.0.0/0"])]);
        assert!(sg.tags().iter().any(|t| t.key() == Some(OWNER_TAG)));
        let lg = aws.logs.describe_log_groups().log_group_name_prefix("/cxflow/cruddur/backend-flask").send().await.unwrap();
        assert_eq!(lg.log_groups()[0].retention_in_days(), Some(1));
        let tg = aws.elb.describe_target_groups().target_group_arns(&kids["target_group"]).send().await.unwrap();
        let tg = &tg.target_groups()[0];
        assert!(tg.target_group_name().unwrap().len() <= 32);
        assert_eq!(tg.target_type().map(|t| t.as_str()), Some("ip"));
        assert_eq!(tg.port(), Some(4567));
        assert_eq!(tg.health_check_path(), Some("/api/health-check"));
        let rule = aws.elb.describe_rules().rule_arns(&kids["listener_rule"]).send().await.unwrap();
        let rule = &rule.rules()[0];
        assert_eq!(rule.priority(), Some("10"));
        let host = rule.conditions()[0].host_header_config().map(|h| h.values().to_vec()).unwrap_or_else(|| rule.conditions()[0].values().to_vec());
        assert_eq!(host, ["api.example.com"]);
        assert_eq!(rule.actions()[0].target_group_arn(), Some(kids["target_group"].as_str()));
    });

    // ---- nothing to do right after
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after create must be empty:\n{}", p.all());

    // ---- image update: a new revision, the service moves, the old one is deregistered
    svc.image = IMAGE_V2;
    wd.write("main.tf", &svc.hcl(&f));
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(p.stdout.contains("update in-place"), "{}", p.stdout);
    proxy.reset();
    let log = wd.path().join("image-update.log");
    wd.tf_env(&["apply", "-auto-approve"], &[("TF_LOG_PROVIDER", "INFO"), ("TF_LOG_PATH", log.to_str().unwrap())]).expect_ok("image update");
    for (op, n) in [
        ("ecs:RegisterTaskDefinition", 1),
        ("ecs:UpdateService", 1),
        ("ecs:DeregisterTaskDefinition", 1),
        ("ecs:CreateService", 0),
        ("iam:PutRolePolicy", 0),
        ("logs:CreateLogGroup", 0),
    ] {
        assert_eq!(proxy.count(op), n, "{op} during an image update: {}", proxy.stats());
    }
    // The engine counts the AWS calls of the children it works on through the
    // SDK interceptor: here the task definition and then the service, one
    // dependent chain, so the heaviest chain is all of them.
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("children applied")).unwrap_or_else(|| panic!("no `children applied` line in the provider log:\n{text}"));
    let field = |name: &str| -> u64 {
        let re = regex::Regex::new(&format!(r"\b{name}=(\d+)")).unwrap();
        re.captures(line).unwrap_or_else(|| panic!("{name} missing from {line}"))[1].parse().unwrap()
    };
    let (calls, chain) = (field("calls"), field("critical_path_calls"));
    assert!(calls >= 2, "RegisterTaskDefinition and UpdateService at least: {line}");
    assert_eq!(chain, calls, "task definition then service are one chain: {line}");
    assert!(calls < proxy.total(), "the engine's calls are a part of all calls the proxy saw ({}): {line}", proxy.total());
    let after = children(&wd);
    assert_ne!(after["task_definition"], kids["task_definition"]);
    assert_eq!(wd.state_attrs("cxflow_ecs_fargate_service", "backend")["task_definition_revision"], 2);
    for k in ["service", "log_group", "execution_role", "task_role", "security_group", "target_group", "listener_rule"] {
        assert_eq!(after[k], kids[k], "{k} must not change on an image update");
    }
    let s = describe_service(&aws, CLUSTER, "backend-flask").unwrap();
    assert_eq!(s.task_definition(), Some(after["task_definition"].as_str()));
    assert_eq!(task_definition(&aws, &after["task_definition"]).unwrap().container_definitions()[0].image(), Some(IMAGE_V2));
    assert!(task_definition(&aws, &kids["task_definition"]).is_none(), "the superseded revision is deregistered");
    assert!(!after.keys().any(|k| k.contains("superseded")));
    assert_eq!(wd.plan_code().code, 0);

    // ---- out-of-band delete of the log group: plan shows it, apply repairs only it
    block_on(async { aws.logs.delete_log_group().log_group_name("/cxflow/cruddur/backend-flask").send().await.unwrap() });
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(p.stdout.contains("log_group") && p.stdout.contains("deleted outside Terraform"), "{}", p.stdout);
    wd.apply().expect_ok("repair log group");
    assert_eq!(children(&wd), after, "identities are unchanged");
    block_on(async {
        let lg = aws.logs.describe_log_groups().log_group_name_prefix("/cxflow/cruddur/backend-flask").send().await.unwrap();
        assert_eq!(lg.log_groups()[0].retention_in_days(), Some(1), "recreated with its retention");
    });
    assert_eq!(task_definition(&aws, &after["task_definition"]).map(|t| t.revision()), Some(2), "no new task definition for a log group repair");
    assert_eq!(wd.plan_code().code, 0);

    // ---- out-of-band delete of the service: only the service is recreated
    block_on(async { aws.ecs.delete_service().cluster(CLUSTER).service("backend-flask").force(true).send().await.unwrap() });
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(p.stdout.contains("\"service\"") && p.stdout.contains("deleted outside Terraform"), "{}", p.stdout);
    wd.apply().expect_ok("repair service");
    let repaired = children(&wd);
    for k in ["log_group", "execution_role", "task_role", "security_group", "target_group", "listener_rule", "task_definition"] {
        assert_eq!(repaired[k], after[k], "{k} must not change when only the service is repaired");
    }
    let s = describe_service(&aws, CLUSTER, "backend-flask").expect("service recreated");
    assert_eq!((s.desired_count(), s.task_definition()), (1, Some(after["task_definition"].as_str())));
    assert_eq!(wd.plan_code().code, 0);

    // ---- desired count
    let before_scale = children(&wd);
    svc.desired = 2;
    wd.write("main.tf", &svc.hcl(&f));
    proxy.reset();
    wd.apply().expect_ok("scale");
    let stats = proxy.stats();
    let writes: Vec<&String> = stats["by_operation"].as_object().unwrap().keys().filter(|op| !op.contains(":Describe") && !op.contains(":List") && !op.contains(":Get")).collect();
    assert_eq!(writes, ["ecs:UpdateService"], "a desired count change is one UpdateService: {stats}");
    assert_eq!(proxy.count("ecs:UpdateService"), 1);
    assert_eq!(describe_service(&aws, CLUSTER, "backend-flask").unwrap().desired_count(), 2);
    assert_eq!(children(&wd), before_scale, "scaling touches no identity");
    assert_eq!(wd.plan_code().code, 0);

    // ---- a new name replaces the service, and the plan says which argument forces it
    let renamed = Svc { name: "backend-api", cluster: svc.cluster, image: svc.image, desired: svc.desired, load_balancer: svc.load_balancer, extra: svc.extra };
    wd.write("main.tf", &renamed.hcl(&f));
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(p.stdout.contains("must be replaced"), "{}", p.stdout);
    assert!(p.stdout.lines().any(|l| l.contains("~ name") && l.contains("# forces replacement")), "{}", p.stdout);
    wd.write("main.tf", &svc.hcl(&f));
    assert_eq!(wd.plan_code().code, 0);

    // ---- out-of-band change: scaled by hand → drift, apply puts it back
    block_on(async { aws.ecs.update_service().cluster(CLUSTER).service("backend-flask").desired_count(5).send().await.unwrap() });
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(p.stdout.contains("service.desired_count = 5 outside Terraform (configuration: 2)"), "drift names the child and the field: {}", p.stdout);
    wd.apply().expect_ok("repair drift");
    assert_eq!(describe_service(&aws, CLUSTER, "backend-flask").unwrap().desired_count(), 2);
    assert_eq!(wd.plan_code().code, 0);

    // ---- import: forget the resource, import it back, nothing to change
    // (AWS does not know `timeouts`, so the configuration imported into drops it.)
    let before_import = children(&wd);
    svc.extra = "";
    wd.write("main.tf", &svc.hcl(&f));
    wd.tf(&["state", "rm", "cxflow_ecs_fargate_service.backend"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_ecs_fargate_service.backend", "cruddur/backend-flask"]).expect_ok("import");
    assert_eq!(children(&wd), before_import, "import finds every child");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan right after import must be empty:\n{}", p.all());

    // ---- destroy leaves nothing tagged behind
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
    assert!(describe_service(&aws, CLUSTER, "backend-flask").is_none());
}

/// A small service for the failure scenarios (no load balancer unless asked).
fn small(name: &str, cluster: &str, f: &Fixture, body: &str) -> String {
    let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "backend" {{
  name    = "{name}"
  cluster = "{cluster}"
  cpu     = 512
  memory  = 1024

  container {{
    name  = "app"
    image = "{IMAGE_V1}"
    port  = 8080
    secrets = {{
      DB_URL = "{PARAM_ARN}"
    }}
  }}

  network {{
    subnet_ids = [{subnets}]
    ingress {{
      port        = 8080
      cidr_blocks = ["10.0.0.0/16"]
    }}
  }}
{body}
}}
"#
    ));
    s
}

/// Terraform wraps diagnostic text; compare with whitespace collapsed.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn log_group_exists(aws: &Aws, name: &str) -> bool {
    block_on(async { aws.logs.describe_log_groups().log_group_name_prefix(name).send().await.unwrap().log_groups().iter().any(|g| g.log_group_name() == Some(name)) })
}

fn role_arn(aws: &Aws, name: &str) -> Option<String> {
    block_on(async { aws.iam.get_role().role_name(name).send().await.ok().and_then(|r| r.role().map(|r| r.arn().to_string())) })
}

#[test]
fn failures_and_adoption() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws, Some(CLUSTER));
    let wd = Workdir::new(&tf, Some(&moto));

    // ---- halfway failure: the cluster does not exist, which only the service discovers
    let lb = format!("  load_balancer {{\n    listener_arn = \"{}\"\n    path_pattern = \"/ghost/*\"\n    priority     = 20\n  }}\n", f.listener);
    wd.write("main.tf", &small("ghost", "no-such-cluster", &f, &lb));
    let run = wd.apply();
    run.expect_fail("apply against a missing cluster");
    let err = flat(&run.all());
    assert!(err.contains("Could not create ECS service ghost in cluster no-such-cluster"), "{err}");
    assert!(err.contains("ECS cluster \"no-such-cluster\" does not exist"), "{err}");
    assert!(err.contains("recorded in state"), "{err}");
    let kids = children(&wd);
    let keys: Vec<&str> = kids.keys().map(String::as_str).collect();
    assert_eq!(keys, ["execution_role", "listener_rule", "log_group", "security_group", "target_group", "task_definition", "task_role"], "state lists what was created");
    let ghost = Names::new("no-such-cluster", "ghost");
    assert!(log_group_exists(&aws, &ghost.log_group()));
    assert_eq!(role_arn(&aws, &ghost.execution_role()).as_deref(), Some(kids["execution_role"].as_str()));
    assert!(task_definition(&aws, &kids["task_definition"]).is_some());
    wd.destroy().expect_ok("destroy after a failed create");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new(), "destroy removes every child the failed apply made");
    assert!(!log_group_exists(&aws, &ghost.log_group()));

    // ---- adoption after a crash: leftovers under our names that carry the
    // creation lease of an apply that is gone (here: one that lapsed) are taken over, not duplicated
    let names = Names::new(CLUSTER, "adopted");
    let owner = format!("cxflow_ecs_fargate_service/{CLUSTER}/adopted");
    let lapsed = "0123456789abcdef/elsewhere/1/0/1";
    let pre_role = block_on(async {
        aws.logs.create_log_group().log_group_name(names.log_group()).tags(OWNER_TAG, &owner).tags(LEASE_TAG, lapsed).send().await.unwrap();
        aws.logs.put_retention_policy().log_group_name(names.log_group()).retention_in_days(7).send().await.unwrap();
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let r = aws
            .iam
            .create_role()
            .role_name(names.execution_role())
            .assume_role_policy_document(trust)
            .tags(aws_sdk_iam::types::Tag::builder().key(OWNER_TAG).value(&owner).build().unwrap())
            .tags(aws_sdk_iam::types::Tag::builder().key(LEASE_TAG).value(lapsed).build().unwrap())
            .send()
            .await
            .unwrap();
        r.role().unwrap().arn().to_string()
    });
    wd.write("main.tf", &small("adopted", CLUSTER, &f, ""));
    wd.apply().expect_ok("apply adopts tagged leftovers");
    let kids = children(&wd);
    assert_eq!(kids["log_group"], names.log_group());
    assert_eq!(kids["execution_role"], pre_role, "the existing role is adopted");
    block_on(async {
        let lg = aws.logs.describe_log_groups().log_group_name_prefix(names.log_group()).send().await.unwrap();
        assert_eq!(lg.log_groups().len(), 1);
        assert_eq!(lg.log_groups()[0].retention_in_days(), Some(30), "the adopted group is brought to the configuration (default retention)");
        let p = aws.iam.get_role_policy().role_name(names.execution_role()).policy_name("cxflow-execution").send().await.unwrap();
        assert_eq!(statement(&policy(p.policy_document()), "Parameters")["Resource"], serde_json::json!([PARAM_ARN]));
        let roles = aws.iam.list_roles().send().await.unwrap();
        assert_eq!(roles.roles().iter().filter(|r| r.role_name().starts_with("adopted-")).count(), 2, "execution and task role, no duplicates");
    });
    assert!(describe_service(&aws, CLUSTER, "adopted").is_some());
    assert_eq!(wd.plan_code().code, 0);
    wd.destroy().expect_ok("destroy adopted");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());

    // ---- an untagged object under our name is refused, with the way out
    let squat = Names::new(CLUSTER, "squatter");
    block_on(async { aws.logs.create_log_group().log_group_name(squat.log_group()).send().await.unwrap() });
    wd.write("main.tf", &small("squatter", CLUSTER, &f, ""));
    let run = wd.apply();
    run.expect_fail("apply over an untagged log group");
    let err = flat(&run.all());
    assert!(err.contains("CloudWatch log group /cxflow/cruddur/squatter already exists"), "{err}");
    assert!(err.contains("has no cxflow:owner tag"), "{err}");
    assert!(err.contains("terraform import cxflow_ecs_fargate_service.<name> cruddur/squatter"), "{err}");
    assert!(!children(&wd).contains_key("log_group"), "the foreign log group is not recorded");
    assert!(!children(&wd).contains_key("service"), "nothing after the failure ran");
    wd.destroy().expect_ok("destroy after refusal");
    assert!(log_group_exists(&aws, &squat.log_group()), "the foreign object is left alone");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
    block_on(async { aws.logs.delete_log_group().log_group_name(squat.log_group()).send().await.unwrap() });

    // ---- the steady-state wait gives up with the service's own words, and keeps the service in state
    wd.write("main.tf", &small("stuck", CLUSTER, &f, "  desired_count = 2\n  timeouts {\n    create = \"20s\"\n  }\n"));
    let run = wd.apply();
    run.expect_fail("apply that never reaches a steady state");
    let err = flat(&run.all());
    assert!(err.contains("gave up waiting for ECS service stuck to reach a steady state"), "{err}");
    assert!(err.contains("1 of 2 tasks running") && err.contains("rollout IN_PROGRESS"), "{err}");
    assert!(err.contains("Latest service events"), "{err}");
    let kids = children(&wd);
    assert_eq!(
        describe_service(&aws, CLUSTER, "stuck").and_then(|s| s.service_arn().map(str::to_string)).as_deref(),
        Some(kids["service"].as_str()),
        "the service exists and is recorded"
    );
    wd.destroy().expect_ok("destroy stuck");
    assert!(describe_service(&aws, CLUSTER, "stuck").is_none());
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());

    // ---- user-supplied roles and security groups, Service Connect, circuit breaker, no wait
    let (user_role, user_sg) = block_on(async {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let r = aws.iam.create_role().role_name("CruddurServiceExecutionRole").assume_role_policy_document(trust).send().await.unwrap();
        let vpc = aws.ec2.describe_subnets().subnet_ids(&f.subnets[0]).send().await.unwrap().subnets()[0].vpc_id().unwrap().to_string();
        let sg = aws.ec2.create_security_group().group_name("crud-srv-sg").description("hand made").vpc_id(vpc).send().await.unwrap();
        (r.role().unwrap().arn().to_string(), sg.group_id().unwrap().to_string())
    });
    let body = format!(
        "  execution_role_arn    = \"{user_role}\"\n  wait_for_steady_state = false\n  service_connect {{\n    namespace = \"cruddur\"\n  }}\n  deployment_circuit_breaker {{\n    rollback = false\n  }}\n"
    );
    let cfg = small("connected", CLUSTER, &f, &body)
        .replace("    ingress {\n      port        = 8080\n      cidr_blocks = [\"10.0.0.0/16\"]\n    }\n", &format!("    security_group_ids = [\"{user_sg}\"]\n"));
    wd.write("main.tf", &cfg);
    wd.apply().expect_ok("apply with supplied role and security group");
    let kids = children(&wd);
    assert!(!kids.contains_key("execution_role") && !kids.contains_key("security_group"), "{kids:?}");
    let attrs = wd.state_attrs("cxflow_ecs_fargate_service", "backend");
    assert_eq!(attrs["execution_role_arn"], user_role.as_str());
    assert!(attrs["security_group_id"].is_null());
    let s = describe_service(&aws, CLUSTER, "connected").unwrap();
    assert_eq!(s.network_configuration().unwrap().awsvpc_configuration().unwrap().security_groups(), std::slice::from_ref(&user_sg));
    assert_eq!(task_definition(&aws, &kids["task_definition"]).unwrap().execution_role_arn(), Some(user_role.as_str()));
    assert_eq!(wd.plan_code().code, 0, "settings AWS does not echo back keep their configured values");
    wd.destroy().expect_ok("destroy connected");
    assert!(role_arn(&aws, "CruddurServiceExecutionRole").is_some(), "a supplied role is not ours to delete");
    block_on(async { assert_eq!(aws.ec2.describe_security_groups().group_ids(&user_sg).send().await.unwrap().security_groups().len(), 1) });
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
}

#[test]
fn validation() {
    let tf = bundled_terraform();
    // No moto and no credentials: validation never calls AWS.
    let wd = Workdir::new(&tf, None);
    let long = "x".repeat(300);
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "sizes" {{
  name    = "sizes"
  cluster = "c"
  cpu     = 256
  memory  = 4096
  container {{
    name  = "app"
    image = "nginx"
  }}
  network {{
    subnet_ids = ["subnet-1"]
  }}
}}

resource "cxflow_ecs_fargate_service" "long" {{
  name    = "{long}"
  cluster = "c"
  cpu     = 1024
  memory  = 3072
  container {{
    name  = "app"
    image = "nginx"
    port  = 70000
  }}
  network {{
    subnet_ids = ["subnet-1"]
    ingress {{
      port        = 80
      cidr_blocks = ["10.0.0.0/33"]
    }}
  }}
  timeouts {{
    create = "soon"
  }}
}}

resource "cxflow_ecs_fargate_service" "secrets" {{
  name    = "secrets"
  cluster = "c"
  cpu     = 512
  memory  = 1024
  container {{
    name    = "app"
    image   = "nginx"
    port    = 80
    secrets = {{
      DB_URL = "postgres://user:pw@db/app"
    }}
  }}
  container {{
    name  = "app"
    image = "envoy"
  }}
  network {{
    subnet_ids = ["subnet-1"]
  }}
  load_balancer {{
    listener_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2"
    priority     = 5
  }}
}}
"#
    ));
    wd.write("main.tf", &s);
    let run = wd.tf(&["validate"]);
    run.expect_fail("validate");
    let out = run.all();
    // Each error names its attribute: Terraform quotes the offending line.
    let expect = [
        ("Invalid Fargate CPU/memory combination", "memory  = 4096"),
        ("With cpu = 256, Fargate allows memory from 512 to 2048 MiB", "memory  = 4096"),
        ("name: 1 to 255 letters", "name    = \"xxxx"),
        ("Name too long", "name    = \"xxxx"),
        ("Value out of range", "port  = 70000"),
        ("Invalid CIDR block", "cidr_blocks = [\"10.0.0.0/33\"]"),
        ("Invalid duration", "create = \"soon\""),
        ("Invalid secret reference", "DB_URL = "),
        ("Duplicate container name", "name  = \"app\""),
        ("Listener rule needs a condition", "cxflow_ecs_fargate_service.secrets"),
    ];
    for (msg, line) in expect {
        let at = out.find(msg).unwrap_or_else(|| panic!("missing {msg:?} in:\n{out}"));
        // The quoted source line comes between the summary and the next error.
        let block_end = out[at..].find("\nError:").map(|e| at + e).unwrap_or(out.len());
        let block_start = out[..at].rfind("Error:").unwrap_or(0);
        assert!(out[block_start..block_end].contains(line), "{msg:?} should point at `{line}`:\n{}", &out[block_start..block_end]);
    }
    // The value appears only where Terraform quotes the configuration line, never in the provider's message.
    for l in out.lines().filter(|l| l.contains("postgres://")) {
        let quoted = l.trim_start().split_once(':').is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        assert!(quoted, "the provider echoed a malformed secret reference: {l}");
    }
    // 1024 CPU with 3072 MiB is valid: no error for the `long` resource's size.
    assert!(!out.contains("With cpu = 1024"), "{out}");
}

/// Concurrent refreshes share their reads (DescribeServices per cluster,
/// DescribeSecurityGroups, the account's role listing instead of GetRole per
/// role), and a shared read still sees every change made outside Terraform,
/// each reported against its own resource. The read window is widened so
/// that all five refreshes land in one batch whatever the machine's speed.
#[test]
fn batched_refresh_sees_every_change_outside_terraform() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let f = fixture(&aws, Some(CLUSTER));
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::new(&tf, Some(&moto));
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    wd.env.insert("CXFLOW_READ_WINDOW_MS".into(), "400".into());
    let subnets = f.subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut hcl = provider_block("");
    for i in 0..5 {
        hcl.push_str(&format!(
            r#"
resource "cxflow_ecs_fargate_service" "s{i}" {{
  name                  = "batch-{i}"
  cluster               = "{CLUSTER}"
  cpu                   = 256
  memory                = 512
  task_role_policy_arns = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
  tags                  = {{ team = "payments" }}
  container {{
    name  = "app"
    image = "{IMAGE_V1}"
    port  = 8080
  }}
  network {{
    subnet_ids = [{subnets}]
    ingress {{
      port        = 8080
      cidr_blocks = ["10.0.0.0/16"]
    }}
  }}
}}
"#
        ));
    }
    wd.write("main.tf", &hcl);
    wd.apply().expect_ok("create five services");
    proxy.reset();
    assert_eq!(wd.plan_code().code, 0, "nothing changed yet");
    // Ten roles in one batch: the account's listing, not a read per role.
    assert_eq!(proxy.count("iam:GetRole"), 0, "{}", proxy.stats());
    assert_eq!(proxy.count("iam:GetRolePolicy"), 0, "{}", proxy.stats());
    assert!(proxy.count("iam:GetAccountAuthorizationDetails") >= 1, "{}", proxy.stats());
    assert_eq!(proxy.count("ecs:DescribeServices"), 1, "five services of one cluster, one call: {}", proxy.stats());
    assert_eq!(proxy.count("ec2:DescribeSecurityGroups"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("logs:DescribeLogGroups"), 1, "{}", proxy.stats());

    let role = |i: usize, key: &str| {
        let kids = common::aws::children(&wd, "cxflow_ecs_fargate_service", &format!("s{i}"));
        kids[key].rsplit('/').next().unwrap().to_string()
    };
    let (exec0, task1, task2, task3, task4) = (role(0, "execution_role"), role(1, "task_role"), role(2, "task_role"), role(3, "task_role"), role(4, "task_role"));
    let sg4 = common::aws::children(&wd, "cxflow_ecs_fargate_service", "s4")["security_group"].clone();
    block_on(async {
        let iam = &aws.iam;
        let pols = iam.list_role_policies().role_name(&exec0).send().await.unwrap();
        let name = pols.policy_names()[0].clone();
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#;
        iam.put_role_policy().role_name(&exec0).policy_name(name).policy_document(doc).send().await.unwrap();
        iam.update_role().role_name(&task1).description("edited by hand").send().await.unwrap();
        iam.detach_role_policy().role_name(&task2).policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").send().await.unwrap();
        iam.detach_role_policy().role_name(&task3).policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").send().await.unwrap();
        iam.delete_role().role_name(&task3).send().await.unwrap();
        iam.tag_role().role_name(&task4).tags(aws_sdk_iam::types::Tag::builder().key("team").value("search").build().unwrap()).send().await.unwrap();
        aws.ecs.update_service().cluster(CLUSTER).service("batch-3").desired_count(3).send().await.unwrap();
        aws.logs.put_retention_policy().log_group_name("/cxflow/cruddur/batch-2").retention_in_days(7).send().await.unwrap();
        let perm = aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        aws.ec2.authorize_security_group_ingress().group_id(&sg4).ip_permissions(perm).send().await.unwrap();
    });
    proxy.reset();
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    let out = flat(&p.stdout);
    // Each change is reported, on the resource it belongs to.
    let block = |i: usize| -> String {
        let start = out.find(&format!("cxflow_ecs_fargate_service.s{i} will be updated in-place")).unwrap_or_else(|| panic!("s{i} is planned: {out}"));
        let rest = &out[start + 10..];
        let end = rest.find("cxflow_ecs_fargate_service.s").map(|e| e + start + 10).unwrap_or(out.len());
        out[start..end].to_string()
    };
    assert!(block(0).contains("execution_role.inline_policies[") && block(0).contains("logs:*"), "{}", block(0));
    assert!(block(1).contains("task_role.description = edited by hand outside Terraform"), "{}", block(1));
    assert!(block(2).contains("task_role.managed_policies = [] outside Terraform"), "{}", block(2));
    assert!(block(2).contains("log_group.retention_in_days = 7 outside Terraform (configuration: 30)"), "{}", block(2));
    assert!(block(3).contains("task_role") && block(3).contains("deleted outside Terraform"), "{}", block(3));
    assert!(block(3).contains("service.desired_count = 3 outside Terraform (configuration: 1)"), "{}", block(3));
    // (Terraform shows the message as an HCL string: its quotes are escaped.)
    assert!(block(4).contains(r#"task_role.tags[\"team\"] = search outside Terraform (configuration: payments)"#), "{}", block(4));
    assert!(block(4).contains("security_group.ingress"), "{}", block(4));
    for i in 0..3 {
        assert!(!block(i).contains("desired_count = 3"), "s{i} is not blamed for s3's count: {}", block(i));
    }
    assert_eq!(proxy.count("ecs:DescribeServices"), 1, "{}", proxy.stats());
    assert_eq!(proxy.count("iam:GetRole"), 0, "{}", proxy.stats());

    // One apply puts everything back; then nothing is left to change.
    wd.apply().expect_ok("repair");
    assert_eq!(wd.plan_code().code, 0, "after the repair");

    // A caller that may not list the account's roles reads them one by one, and still sees drift.
    block_on(async { aws.iam.update_role().role_name(&task1).description("edited again").send().await.unwrap() });
    proxy.set_faults(serde_json::json!([{"op": "iam:GetAccountAuthorizationDetails", "kind": "denied", "rate": 1.0}]));
    proxy.reset();
    let p = wd.plan_code();
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(flat(&p.stdout).contains("task_role.description = edited again outside Terraform"), "{}", p.stdout);
    assert_eq!(proxy.count("iam:GetAccountAuthorizationDetails"), 1, "tried once, then not again: {}", proxy.stats());
    assert_eq!(proxy.count("iam:GetRole"), 10, "{}", proxy.stats());
    proxy.set_faults(serde_json::json!([]));
    wd.apply().expect_ok("repair again");
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
}
