//! Reliability: AWS faults, crashes, load and bad input, with nothing orphaned
//! and no secret leaked. `make test` runs a fast subset of each class;
//! `make reliability` (CXFLOW_RELIABILITY_FULL=1) runs the long versions and
//! prints the figures as a table.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "Rel-SECRET-Zq81-do-not-leak";

fn full() -> bool {
    std::env::var("CXFLOW_RELIABILITY_FULL").is_ok()
}

/// A Fargate service with a load balancer rule, plus a secret sync that
/// redeploys it: the children of both composites, and a secret to watch for.
fn service_config(name: &str, extra_provider: &str) -> String {
    let mut s = provider_block(extra_provider);
    s.push_str(&format!(
        r#"
variable "secret" {{
  type      = string
  ephemeral = true
  sensitive = true
}}
resource "cxflow_ecs_fargate_service" "svc" {{
  name          = "{name}"
  cluster       = "rel"
  cpu           = 256
  memory        = 512
  desired_count = 1
  container {{
    name  = "app"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"
    port  = 8080
    secrets = {{ TOKEN = "arn:aws:ssm:us-east-1:123456789012:parameter/rel/{name}/token" }}
  }}
  network {{
    subnet_ids = [var.subnet]
    ingress {{
      port        = 8080
      cidr_blocks = ["10.0.0.0/16"]
    }}
  }}
  load_balancer {{
    listener_arn = var.listener
    host_header  = "{name}.example.com"
    priority     = {prio}
  }}
}}
resource "cxflow_secret_sync" "s" {{
  path_prefix       = "/rel/{name}"
  secrets_wo        = {{ token = var.secret }}
  redeploy_services = [cxflow_ecs_fargate_service.svc.service_arn]
}}
variable "subnet" {{ type = string }}
variable "listener" {{ type = string }}
"#,
        prio = 1 + (name.len() * 7 + name.bytes().map(|b| b as usize).sum::<usize>()) % 4000
    ));
    s
}

/// A cluster, subnet and listener for services to run in; returns (subnet, listener ARN).
fn infrastructure(m: &Moto) -> (String, String) {
    block_on(async {
        let s = m.sdk();
        let ec2 = aws_sdk_ec2::Client::new(&s);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s);
        let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        let a = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.0.1.0/24").availability_zone("us-east-1a").send().await.unwrap().subnet.unwrap().subnet_id.unwrap();
        let b = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.0.2.0/24").availability_zone("us-east-1b").send().await.unwrap().subnet.unwrap().subnet_id.unwrap();
        aws_sdk_ecs::Client::new(&s).create_cluster().cluster_name("rel").send().await.unwrap();
        let lb = elb.create_load_balancer().name("rel").subnets(&a).subnets(&b).send().await.unwrap();
        let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let fixed = aws_sdk_elasticloadbalancingv2::types::Action::builder()
            .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::FixedResponse)
            .fixed_response_config(aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder().status_code("404").build())
            .build();
        let l = elb
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .default_actions(fixed)
            .send()
            .await
            .unwrap();
        (a, l.listeners()[0].listener_arn().unwrap().to_string())
    })
}

/// Objects still tagged as owned by any cxflow composite, across the services the composites use.
fn owned_leftovers(m: &Moto) -> Vec<String> {
    block_on(async {
        let s = m.sdk();
        let mut left = Vec::new();
        let owned = |tags: Vec<(String, String)>| tags.iter().any(|(k, _)| k == "cxflow:owner");
        let logs = aws_sdk_cloudwatchlogs::Client::new(&s);
        for g in logs.describe_log_groups().send().await.unwrap().log_groups() {
            let arn = g.log_group_arn().map(str::to_string).unwrap_or_else(|| g.arn().unwrap_or_default().trim_end_matches(":*").to_string());
            let t = logs.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
            if owned(t.tags().cloned().unwrap_or_default().into_iter().collect()) {
                left.push(format!("log group {}", g.log_group_name().unwrap_or_default()));
            }
        }
        let iam = aws_sdk_iam::Client::new(&s);
        for r in iam.list_roles().send().await.unwrap().roles() {
            let t = iam.list_role_tags().role_name(r.role_name()).send().await.unwrap();
            if owned(t.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()) {
                left.push(format!("role {}", r.role_name()));
            }
        }
        let ec2 = aws_sdk_ec2::Client::new(&s);
        let f = aws_sdk_ec2::types::Filter::builder().name("tag-key").values("cxflow:owner").build();
        for g in ec2.describe_security_groups().filters(f).send().await.unwrap().security_groups() {
            left.push(format!("security group {}", g.group_id().unwrap_or_default()));
        }
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s);
        let tgs: Vec<String> = elb.describe_target_groups().send().await.unwrap().target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect();
        for chunk in tgs.chunks(20) {
            for d in elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.unwrap().tag_descriptions() {
                if d.tags().iter().any(|t| t.key() == Some("cxflow:owner")) {
                    left.push(format!("target group {}", d.resource_arn().unwrap_or_default()));
                }
            }
        }
        let ecs = aws_sdk_ecs::Client::new(&s);
        let svcs = ecs.list_services().cluster("rel").send().await.map(|o| o.service_arns().to_vec()).unwrap_or_default();
        for chunk in svcs.chunks(10) {
            let d = ecs.describe_services().cluster("rel").set_services(Some(chunk.to_vec())).include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap();
            for sv in d.services().iter().filter(|x| x.status() == Some("ACTIVE") && x.tags().iter().any(|t| t.key() == Some("cxflow:owner"))) {
                left.push(format!("service {}", sv.service_name().unwrap_or_default()));
            }
        }
        let tds = ecs.list_task_definitions().status(aws_sdk_ecs::types::TaskDefinitionStatus::Active).send().await.unwrap();
        for td in tds.task_definition_arns() {
            let d = ecs.describe_task_definition().task_definition(td).include(aws_sdk_ecs::types::TaskDefinitionField::Tags).send().await.unwrap();
            if d.tags().iter().any(|t| t.key() == Some("cxflow:owner")) {
                left.push(format!("task definition {td}"));
            }
        }
        let ssm = aws_sdk_ssm::Client::new(&s);
        let params = ssm.get_parameters_by_path().path("/rel").recursive(true).send().await.unwrap();
        for p in params.parameters() {
            left.push(format!("parameter {}", p.name().unwrap_or_default()));
        }
        left
    })
}

fn no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} contains the secret value");
}

fn workdir_through(proxy: &Proxy, name: &str, extra_provider: &str, m: &Moto) -> Workdir {
    let (subnet, listener) = infrastructure(m);
    let mut wd = Workdir::new(&bundled_terraform(), None);
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    wd.env.insert("TF_VAR_secret".into(), SECRET.into());
    wd.env.insert("TF_VAR_subnet".into(), subnet);
    wd.env.insert("TF_VAR_listener".into(), listener);
    wd.write("main.tf", &service_config(name, extra_provider));
    wd
}

// ------------------------------------------------------------------ the cluster example

const CLUSTER_SECRETS: &str = r#"{"production": {"checkmarx_username": "bot", "checkmarx_password": "Rel-SECRET-Zq81-do-not-leak", "checkmarx_token": "t", "gitlab_token": "g", "gitlab_webhook_token": "w"}}"#;

/// examples/cxflow-cluster (one environment) pointed at `endpoint`, deployment `name`.
fn cluster_workdir(m: &Moto, endpoint: &str, name: &str) -> Workdir {
    block_on(async {
        let r53 = aws_sdk_route53::Client::new(&m.sdk());
        let zones = r53.list_hosted_zones().send().await.unwrap();
        if !zones.hosted_zones().iter().any(|z| z.name() == "example.com.") {
            r53.create_hosted_zone().name("example.com").caller_reference("rel").send().await.unwrap();
        }
    });
    let mut wd = Workdir::new(&bundled_terraform(), None);
    copy_dir(&repo_root().join("examples/cxflow-cluster"), wd.path());
    wd.env.insert("AWS_ENDPOINT_URL".into(), endpoint.to_string());
    wd.env.insert("TF_VAR_cxflow_secrets".into(), CLUSTER_SECRETS.to_string());
    wd.write(
        "terraform.tfvars",
        &format!("region = \"us-east-1\"\nname = \"{name}\"\ndns_zone = \"example.com\"\ndomain = \"{name}.example.com\"\nenvironments = {{ production = {{ image_tag = \"stable\" }} }}\nwebhook_source_cidrs = [\"34.74.90.64/28\"]\ncheckmarx_url = \"https://checkmarx.example.com\"\n"),
    );
    wd.tf(&["get"]).expect_ok("terraform get");
    wd
}

/// Anything still tagged as owned by cluster `name`.
fn cluster_leftovers(m: &Moto, name: &str) -> Vec<String> {
    block_on(async {
        let s = m.sdk();
        let owner = format!("cxflow_cluster/{name}");
        let mut left = Vec::new();
        let ec2 = aws_sdk_ec2::Client::new(&s);
        let f = aws_sdk_ec2::types::Filter::builder().name("tag:cxflow:owner").values(&owner).build();
        left.extend(ec2.describe_vpcs().filters(f.clone()).send().await.unwrap().vpcs().iter().map(|v| format!("vpc {}", v.vpc_id().unwrap_or_default())));
        left.extend(ec2.describe_subnets().filters(f.clone()).send().await.unwrap().subnets().iter().map(|v| format!("subnet {}", v.subnet_id().unwrap_or_default())));
        left.extend(ec2.describe_security_groups().filters(f.clone()).send().await.unwrap().security_groups().iter().map(|v| format!("sg {}", v.group_id().unwrap_or_default())));
        left.extend(ec2.describe_addresses().filters(f.clone()).send().await.unwrap().addresses().iter().map(|v| format!("eip {}", v.allocation_id().unwrap_or_default())));
        left.extend(
            ec2.describe_nat_gateways()
                .filter(f.clone())
                .send()
                .await
                .unwrap()
                .nat_gateways()
                .iter()
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .map(|v| format!("nat {}", v.nat_gateway_id().unwrap_or_default())),
        );
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s);
        if elb.describe_load_balancers().names(format!("{name}-alb")).send().await.is_ok_and(|o| !o.load_balancers().is_empty()) {
            left.push(format!("load balancer {name}-alb"));
        }
        let ecs = aws_sdk_ecs::Client::new(&s);
        let c = ecs.describe_clusters().clusters(name).send().await.unwrap();
        if c.clusters().iter().any(|c| c.status() == Some("ACTIVE")) {
            left.push(format!("cluster {name}"));
        }
        let iam = aws_sdk_iam::Client::new(&s);
        for r in iam.list_roles().send().await.unwrap().roles() {
            let t = iam.list_role_tags().role_name(r.role_name()).send().await.unwrap();
            if t.tags().iter().any(|t| t.value() == owner) {
                left.push(format!("role {}", r.role_name()));
            }
        }
        let ecr = aws_sdk_ecr::Client::new(&s);
        if ecr.describe_repositories().repository_names(name).send().await.is_ok() {
            left.push(format!("repository {name}"));
        }
        left
    })
}

#[test]
fn cluster_example_under_faults() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &["--seed", "23"]);
    let wd = cluster_workdir(&moto, &proxy.endpoint(), "flaky");
    proxy.set_faults_seeded(serde_json::json!(["op=*,kind=throttle,rate=0.10", "op=*,kind=500,rate=0.02"]), 23);
    let applied = wd.apply();
    applied.expect_ok("cluster apply under 10% throttling and 2% 5xx");
    no_secret("cluster apply output", &applied.all());
    no_secret("cluster state", &wd.read("terraform.tfstate"));
    assert!(proxy.stats()["faults"]["total"].as_u64().unwrap_or(0) > 0, "faults were injected");
    let destroyed = wd.destroy();
    destroyed.expect_ok("cluster destroy under faults");
    let left = cluster_leftovers(&moto, "flaky");
    assert!(left.is_empty(), "left behind: {left:?}");
    println!("\n| cluster under faults | calls | injected faults |\n|---|---|---|\n| apply + destroy ok | {} | {} |", proxy.total(), proxy.stats()["faults"]["total"]);
}

// ------------------------------------------------------------------ AWS faults

#[test]
fn faults_are_ridden_out_and_permanent_ones_fail_cleanly() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &["--seed", "11"]);
    let wd = workdir_through(&proxy, "flaky", "", &moto);

    // 10% throttling and 2% 5xx on every call: apply and destroy still succeed.
    proxy.set_faults_seeded(serde_json::json!(["op=*,kind=throttle,rate=0.10", "op=*,kind=500,rate=0.02"]), 11);
    let applied = wd.apply();
    applied.expect_ok("apply under 10% throttling and 2% 5xx");
    let faults = proxy.stats()["faults"]["total"].as_u64().unwrap_or(0);
    assert!(faults > 0, "the proxy injected faults during apply");
    assert_eq!(wd.plan_code().code, 0, "converged despite faults");
    wd.destroy().expect_ok("destroy under faults");
    let left = owned_leftovers(&moto);
    assert!(left.is_empty(), "left behind: {left:?}");
    no_secret("apply output under faults", &applied.all());
    no_secret("state", &wd.read("terraform.tfstate"));

    // A permanent failure on one operation: one clear diagnostic naming it,
    // then destroy leaves nothing owned.
    proxy.set_faults(serde_json::json!(["op=elasticloadbalancing:CreateTargetGroup,kind=500,rate=1.0"]));
    let wd = workdir_through(&proxy, "broken", "  max_retries = 1", &moto);
    let r = wd.apply();
    r.expect_fail("apply with CreateTargetGroup always failing");
    assert!(r.stderr.contains("CreateTargetGroup"), "the diagnostic names the operation:\n{}", r.stderr);
    assert_eq!(r.stderr.matches("Error: ").count(), 1, "one diagnostic:\n{}", r.stderr);
    let children = wd.state_attrs("cxflow_ecs_fargate_service", "svc")["children"].clone();
    assert!(children.as_object().is_some_and(|c| !c.is_empty()), "partial state records what exists: {children}");
    proxy.clear_faults();
    wd.destroy().expect_ok("destroy after the failed apply");
    let left = owned_leftovers(&moto);
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ------------------------------------------------------------------ crashes

/// PIDs of provider processes started by `parent` (the terraform launcher).
fn provider_children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let ppid: u32 = rest.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && comm.contains("terraform-pro") {
            out.push(pid);
        }
    }
    out
}

/// Run `terraform apply` and SIGKILL the provider `after` into it. Returns (killed, output).
fn apply_and_kill(wd: &Workdir, after: Duration) -> (bool, String) {
    let mut cmd = Command::new(&wd.terraform);
    cmd.current_dir(wd.path()).args(["apply", "-auto-approve", "-no-color"]).stdin(std::process::Stdio::null());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    for (k, v) in &wd.env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let tf = child.id();
    let start = Instant::now();
    let mut killed = false;
    let mut seen_provider = false;
    while start.elapsed() < Duration::from_secs(60) {
        let pids = provider_children(tf);
        // Terraform starts the provider several times (schema, validate, plan,
        // apply): kill the instance alive once `after` has passed.
        if !pids.is_empty() {
            seen_provider = true;
        }
        if start.elapsed() >= after && !pids.is_empty() {
            for p in pids {
                let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
            }
            killed = true;
            break;
        }
        if seen_provider && pids.is_empty() && start.elapsed() > after + Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (killed, format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Kill points in milliseconds at the given fractions of an uninterrupted
/// apply of `wd` (applied, timed, then destroyed), so that they land inside
/// the apply however fast this machine and build are.
fn kill_points(wd: &Workdir, fractions: &[f64]) -> Vec<u64> {
    let start = Instant::now();
    wd.apply().expect_ok("uninterrupted apply, to time kill points");
    let took = start.elapsed().as_millis() as f64;
    wd.destroy().expect_ok("destroy after the timing apply");
    fractions.iter().map(|f| (took * f) as u64).collect()
}

/// `n` fractions evenly spread over (0, 1).
fn spread(n: usize) -> Vec<f64> {
    (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect()
}

#[test]
fn killed_mid_apply_the_next_apply_converges_without_orphans() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    // Latency stretches the apply so that kill points land inside it.
    let proxy = Proxy::start(&moto, &["--delay-ms", "40"]);
    let points = kill_points(&workdir_through(&proxy, "timing", "", &moto), &if full() { spread(24) } else { vec![0.25, 0.5, 0.75] });
    let mut killed_count = 0;
    let mut orphans = 0;
    for (i, ms) in points.iter().enumerate() {
        let wd = workdir_through(&proxy, &format!("crash{i}"), "", &moto);
        let (killed, out) = apply_and_kill(&wd, Duration::from_millis(*ms));
        no_secret("output of a killed apply", &out);
        if killed {
            killed_count += 1;
        }
        // The next apply converges: adopts what the killed one made, duplicates nothing.
        wd.apply().expect_ok(&format!("apply after a kill at {ms} ms"));
        assert_eq!(wd.plan_code().code, 0, "converged after a kill at {ms} ms");
        let dupes = block_on(async {
            let logs = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk());
            let g = logs.describe_log_groups().log_group_name_prefix(format!("/cxflow/rel/crash{i}")).send().await.unwrap();
            g.log_groups().len()
        });
        assert!(dupes <= 1, "no duplicate log groups after a kill at {ms} ms");
        no_secret("state after a kill", &wd.read("terraform.tfstate"));
        wd.destroy().expect_ok("destroy after a kill");
        let left = owned_leftovers(&moto);
        orphans += left.len();
        assert!(left.is_empty(), "orphans after a kill at {ms} ms: {left:?}");
    }
    // The cluster example: kill points spread over its apply.
    let cluster_points = kill_points(&cluster_workdir(&moto, &proxy.endpoint(), "timing"), &if full() { spread(10) } else { vec![0.5] });
    for (i, ms) in cluster_points.iter().enumerate() {
        let name = format!("crash{i}");
        let wd = cluster_workdir(&moto, &proxy.endpoint(), &name);
        let (killed, out) = apply_and_kill(&wd, Duration::from_millis(*ms));
        no_secret("output of a killed cluster apply", &out);
        if killed {
            killed_count += 1;
        }
        wd.apply().expect_ok(&format!("cluster apply after a kill at {ms} ms"));
        assert_eq!(wd.plan_code().code, 0, "cluster converged after a kill at {ms} ms");
        let vpcs = block_on(async {
            let ec2 = aws_sdk_ec2::Client::new(&moto.sdk());
            let f = aws_sdk_ec2::types::Filter::builder().name("tag:cxflow:owner").values(format!("cxflow_cluster/{name}")).build();
            ec2.describe_vpcs().filters(f).send().await.unwrap().vpcs().len()
        });
        assert_eq!(vpcs, 1, "exactly one VPC after a kill at {ms} ms");
        wd.destroy().expect_ok("cluster destroy after a kill");
        let left = cluster_leftovers(&moto, &name);
        orphans += left.len();
        assert!(left.is_empty(), "orphans after a cluster kill at {ms} ms: {left:?}");
    }
    let tried = points.len() + cluster_points.len();
    println!("\n| crash points tried | provider killed | orphans |\n|---|---|---|\n| {tried} | {killed_count} | {orphans} |");
    assert!(killed_count >= tried / 2, "most kill points hit a running provider ({killed_count}/{tried})");
}

// ------------------------------------------------------------------ load

#[test]
fn many_services_in_parallel_under_throttling() {
    let n = if full() { 20 } else { 4 };
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &["--seed", "5"]);
    let (subnet, listener) = infrastructure(&moto);
    let mut wd = Workdir::new(&bundled_terraform(), None);
    wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
    let mut cfg = provider_block("");
    cfg.push_str(&format!("locals {{\n  subnet = \"{subnet}\"\n  listener = \"{listener}\"\n}}\n"));
    cfg.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "svc" {{
  count   = {n}
  name    = "load-${{count.index}}"
  cluster = "rel"
  cpu     = 256
  memory  = 512
  container {{
    name  = "app"
    image = "nginx:1.27"
    port  = 80
  }}
  network {{
    subnet_ids = [local.subnet]
    ingress {{
      port        = 80
      cidr_blocks = ["10.0.0.0/16"]
    }}
  }}
  load_balancer {{
    listener_arn = local.listener
    path_pattern = "/load-${{count.index}}/*"
    priority     = 100 + count.index
  }}
}}
"#
    ));
    wd.write("main.tf", &cfg);
    proxy.set_faults_seeded(serde_json::json!(["op=*,kind=throttle,rate=0.10"]), 5);
    let start = Instant::now();
    let parallelism = format!("-parallelism={n}");
    wd.tf(&["apply", "-auto-approve", &parallelism]).expect_ok("parallel apply under throttling");
    let took = start.elapsed();
    let count = block_on(async {
        let ecs = aws_sdk_ecs::Client::new(&moto.sdk());
        ecs.list_services().cluster("rel").send().await.unwrap().service_arns().len()
    });
    assert_eq!(count, n, "every service exists");
    wd.tf(&["destroy", "-auto-approve", &parallelism]).expect_ok("parallel destroy under throttling");
    let left = owned_leftovers(&moto);
    assert!(left.is_empty(), "left behind: {left:?}");
    println!("\n| services | throttled calls | apply wall time |\n|---|---|---|\n| {n} | {} | {:.1}s |", proxy.stats()["faults"]["total"], took.as_secs_f64());
}

// ------------------------------------------------------------------ bad input

/// (resource or provider snippet, attribute the diagnostic must name)
fn bad_inputs() -> Vec<(&'static str, String, &'static str)> {
    let svc = |body: &str| format!("resource \"cxflow_ecs_fargate_service\" \"x\" {{\n{body}\n}}\n");
    let base_container = "  container {\n    name  = \"app\"\n    image = \"nginx\"\n    port  = 80\n  }\n  network {\n    subnet_ids = [\"subnet-1\"]\n  }";
    let ok_svc = |extra: &str| svc(&format!("  name = \"svc\"\n  cluster = \"c\"\n  cpu = 256\n  memory = 512\n{base_container}\n{extra}"));
    let sync = |body: &str| format!("resource \"cxflow_secret_sync\" \"x\" {{\n{body}\n}}\n");
    let cluster = |over: &str| {
        let mut m: BTreeMap<&str, String> = BTreeMap::new();
        m.insert("name", "\"cxflow\"".into());
        m.insert("dns_zone", "\"example.com\"".into());
        m.insert("domain", "\"cxflow.example.com\"".into());
        m.insert("environments", "{ production = { image_tag = \"stable\" } }".into());
        m.insert("webhook_source_cidrs", "[\"34.74.90.64/28\"]".into());
        for line in over.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let k: &'static str = Box::leak(k.trim().to_string().into_boxed_str());
                m.insert(k, v.trim().to_string());
            }
        }
        let body: String = m.iter().map(|(k, v)| format!("  {k} = {v}\n")).collect();
        format!("resource \"cxflow_cluster\" \"x\" {{\n{body}}}\n")
    };
    vec![
        // provider block
        ("provider", String::new(), "max_retries"),
        ("provider", String::new(), "role_arn"),
        ("provider", String::new(), "duration"),
        ("provider", String::new(), "sts"),
        ("provider", String::new(), "shared_config_files"),
        // Fargate service
        ("svc", ok_svc("").replace("cpu = 256", "cpu = 300"), "cpu"),
        ("svc", ok_svc("").replace("memory = 512", "memory = 4096"), "memory"),
        ("svc", ok_svc("").replace("port  = 80", "port  = 70000"), "port"),
        ("svc", ok_svc("").replace("name = \"svc\"", &format!("name = \"{}\"", "n".repeat(260))), "name"),
        ("svc", ok_svc("  desired_count = -1"), "desired_count"),
        ("svc", ok_svc("  log_retention_days = 2"), "log_retention_days"),
        ("svc", ok_svc("  timeouts {\n    create = \"soon\"\n  }"), "create"),
        ("svc", ok_svc("  execution_role_arn = \"not-an-arn\""), "execution_role_arn"),
        ("svc", ok_svc("  load_balancer {\n    listener_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2\"\n    priority = 1\n  }"), "host_header"),
        (
            "svc",
            ok_svc(
                "  load_balancer {\n    listener_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2\"\n    host_header = \"a.example.com\"\n    priority = 0\n  }",
            ),
            "priority",
        ),
        (
            "svc",
            ok_svc("").replace("subnet_ids = [\"subnet-1\"]", "subnet_ids = [\"subnet-1\"]\n    ingress {\n      port = 80\n      cidr_blocks = [\"10.0.0.0/33\"]\n    }"),
            "cidr_blocks",
        ),
        ("svc", ok_svc("  container {\n    name = \"app\"\n    image = \"nginx\"\n  }"), "container"),
        ("svc", ok_svc("").replace("port  = 80\n  }", "port  = 80\n    secrets = { A = \"plain-text-not-an-arn\" }\n  }"), "secrets"),
        ("svc", ok_svc("  unknown_argument = 1"), "unknown_argument"),
        ("svc", ok_svc("").replace("cpu = 256", "cpu = \"lots\""), "cpu"),
        ("svc", svc("  cluster = \"c\"\n  cpu = 256\n  memory = 512"), "name"),
        // secret sync
        ("sync", sync("  path_prefix = \"no-slash\""), "path_prefix"),
        ("sync", sync("  path_prefix = \"/ends/\""), "path_prefix"),
        ("sync", sync("  path_prefix = \"/aws/reserved\""), "path_prefix"),
        ("sync", sync("  path_prefix = \"/a//b\""), "path_prefix"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = { \"/lead\" = \"v\" }"), "/lead"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = { \"has space\" = \"v\" }"), "has space"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = { \"empty\" = \"\" }"), "empty"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = { \"dup\" = \"v\" }\n  secrets_wo = { \"dup\" = \"w\" }"), "dup"),
        ("sync", sync("  path_prefix = \"/p\"\n  kms_key_id = \"my-key\""), "kms_key_id"),
        ("sync", sync("  path_prefix = \"/p\"\n  redeploy_services = [\"nope\"]"), "redeploy_services"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = \"not-a-map\""), "parameters"),
        ("sync", sync("  parameters = { a = \"b\" }"), "path_prefix"),
        // cluster
        ("cluster", cluster("name = \"Bad_Name\""), "name"),
        ("cluster", cluster("name = \"a-name-longer-than-twenty\""), "name"),
        ("cluster", cluster("domain = \"cxflow.example.org\""), "domain"),
        ("cluster", cluster("dns_zone = \"not a zone\""), "dns_zone"),
        ("cluster", cluster("webhook_source_cidrs = [\"300.1.1.1/32\"]"), "webhook_source_cidrs"),
        ("cluster", cluster("environments = { Prod = { image_tag = \"stable\" } }"), "Prod"),
        ("cluster", cluster("environments = { production = { image_tag = \"bad tag!\" } }"), "image_tag"),
        ("cluster", cluster("environments = { production = { image_tag = \"s\", cpu = 512, memory = 512 } }"), "memory"),
        ("cluster", cluster("environments = { production = { image_tag = \"s\", desired_count = 5000 } }"), "desired_count"),
        ("cluster", cluster("environments = {}"), "environments"),
        ("cluster", cluster("certificate_arn = \"arn:aws:iam::1:role/x\""), "certificate_arn"),
        ("cluster", cluster("tls_policy = \"TLSv1\""), "tls_policy"),
        ("cluster", cluster("environments = { verylongenvironment = { image_tag = \"s\" } }"), "verylongenvironment"),
    ]
}

fn provider_variant(attr: &str) -> &'static str {
    match attr {
        "max_retries" => "  max_retries = 500",
        "role_arn" => "  assume_role {\n    role_arn = \"not-a-role\"\n  }",
        "duration" => "  assume_role {\n    role_arn = \"arn:aws:iam::123456789012:role/x\"\n    duration = \"1y\"\n  }",
        "sts" => "  endpoints {\n    sts = \"ftp://127.0.0.1\"\n  }",
        _ => "  shared_config_files = \"not-a-list\"",
    }
}

#[test]
fn bad_input_fails_before_any_aws_call() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let cases = bad_inputs();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (kind, body, attr) in &cases {
        let mut wd = Workdir::new(&bundled_terraform(), None);
        wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
        let (provider_extra, resource) = if *kind == "provider" {
            (provider_variant(attr), "resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/ok\"\n  parameters = { a = \"b\" }\n}\n".to_string())
        } else {
            ("", body.clone())
        };
        wd.write("main.tf", &(provider_block(provider_extra) + &resource));
        let r = wd.tf(&["plan"]);
        let out = r.all();
        if r.ok() {
            failures.push(format!("{kind}/{attr}: plan succeeded"));
        } else if !out.contains(attr) {
            failures
                .push(format!("{kind}/{attr}: the diagnostic does not name {attr:?}:\n{}", out.lines().filter(|l| !l.trim().is_empty()).take(12).collect::<Vec<_>>().join("\n")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    assert_eq!(proxy.total(), 0, "no AWS call for bad input: {}", proxy.stats());
    println!("\n| invalid configurations | named the attribute | AWS calls |\n|---|---|---|\n| {} | {} | 0 |", cases.len(), cases.len());
}

// ------------------------------------------------------------------ IAM policies

#[test]
fn generated_policies_pass_the_iam_linter() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &[]);
    let wd = workdir_through(&proxy, "lint", "", &moto);
    let mut cfg = wd.read("main.tf");
    cfg = cfg.replace("  desired_count = 1\n", "  desired_count = 1\n  enable_execute_command = true\n");
    wd.write("main.tf", &cfg);
    wd.apply().expect_ok("apply for policy lint");
    let policies: Vec<(String, String)> = block_on(async {
        let iam = aws_sdk_iam::Client::new(&moto.sdk());
        let mut out = Vec::new();
        for r in iam.list_roles().send().await.unwrap().roles() {
            for name in iam.list_role_policies().role_name(r.role_name()).send().await.unwrap().policy_names() {
                let d = iam.get_role_policy().role_name(r.role_name()).policy_name(name).send().await.unwrap();
                let doc = cxflow::children::iam::parse_policy(d.policy_document()).map(|v| v.to_string()).unwrap_or_default();
                out.push((format!("{}/{name}", r.role_name()), doc));
            }
        }
        out
    });
    assert!(policies.len() >= 2, "execution and task role policies: {policies:?}");
    let linter = repo_root().join(".tools/venv/bin/parliament");
    for (name, doc) in &policies {
        let out = Command::new(&linter).args(["--string", doc, "--json"]).stdin(std::process::Stdio::null()).output().unwrap();
        let findings = String::from_utf8_lossy(&out.stdout);
        assert!(findings.trim().is_empty(), "parliament findings for {name}:\n{findings}\n{doc}");
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        for st in v["Statement"].as_array().unwrap() {
            let actions: Vec<String> = match &st["Action"] {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => vec![],
            };
            let star = st["Resource"] == "*" || st["Resource"].as_array().is_some_and(|a| a.iter().any(|r| r == "*"));
            for a in &actions {
                let forbidden = a == "ssm:*"
                    || a == "kms:Decrypt"
                    || a == "secretsmanager:GetSecretValue"
                    || a == "ecr:*"
                    || a.starts_with("ecr:Put")
                    || a.starts_with("ecr:Upload")
                    || a.starts_with("ecr:InitiateLayer")
                    || a.starts_with("ecr:CompleteLayer");
                assert!(!(star && forbidden), "{name} grants {a} on *: {doc}");
            }
        }
    }
    wd.destroy().expect_ok("destroy after lint");
}
