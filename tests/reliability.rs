//! Reliability: AWS faults, crashes, load and bad input, with nothing orphaned
//! and no secret leaked. `make test` runs a fast subset of each class;
//! `make reliability` (CXFLOW_RELIABILITY_FULL=1) runs the long versions and
//! prints the figures as a table.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::aws::owned_leftovers;
use common::contract::provider_children;
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
        // One load balancer per call: a second of the same name in other subnets is a DuplicateLoadBalancerName.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let lb = elb.create_load_balancer().name(format!("rel-{n}")).subnets(&a).subnets(&b).send().await.unwrap();
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

fn no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} contains the secret value");
}

fn workdir_through(proxy: &Proxy, name: &str, extra_provider: &str, m: &Moto) -> Workdir {
    let (subnet, listener) = infrastructure(m);
    let mut wd = Workdir::through(proxy);
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
    let left = owned_leftovers(&moto);
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
        let left = owned_leftovers(&moto);
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
    let wd = Workdir::through(&proxy);
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

/// Configure's credential check rides out throttling (it runs at every
/// Terraform command, so a busy account would otherwise fail one in a few
/// hundred runs) but never retries credentials that are refused.
#[test]
fn the_credential_check_retries_throttling_and_not_refusals() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let wd = Workdir::through(&proxy);
    let mut cfg = provider_block("");
    cfg.push_str("resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/cxflow/check\"\n  parameters = { a = \"b\" }\n}\n");
    wd.write("main.tf", &cfg);
    let sts_calls = |p: &Proxy| p.stats()["by_operation"]["sts:GetCallerIdentity"].as_u64().unwrap_or(0);

    proxy.set_faults(serde_json::json!(["op=sts:GetCallerIdentity,kind=throttle,rate=1.0,count=4"]));
    wd.tf(&["plan"]).expect_ok("plan after four throttled credential checks");
    assert_eq!(proxy.stats()["faults"]["by_operation"]["sts:GetCallerIdentity"]["throttle"], 4, "{}", proxy.stats());
    assert_eq!(sts_calls(&proxy), 5, "four throttled answers, then one that passed");

    proxy.set_faults(serde_json::json!(["op=sts:GetCallerIdentity,kind=denied,rate=1.0"]));
    let before = sts_calls(&proxy);
    let r = wd.tf(&["plan"]);
    r.expect_fail("plan with refused credentials");
    assert!(r.all().contains("AWS credentials were rejected") && r.all().contains("AccessDenied"), "{}", r.all());
    assert_eq!(sts_calls(&proxy) - before, 1, "a refusal is not retried");
}

/// The in-flight bound (aws::inflight) holds, and calls queued behind it for
/// longer than the SDK's five-second stalled-stream grace still complete: one
/// call in flight and a second per call make the last of eight parameter
/// writes wait seven seconds. (The stalled-upload failure the bound caused in
/// 500-service applies did not reproduce at this size; docs/design.md says
/// why the upload guard is off.)
#[test]
fn calls_queued_behind_the_in_flight_bound_are_not_taken_for_stalled_uploads() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::through(&proxy);
    wd.env.insert("CXFLOW_MAX_CONCURRENT_CALLS".into(), "1".into());
    let mut cfg = provider_block("");
    let params: Vec<String> = (0..8).map(|i| format!("p{i} = \"v{i}\"")).collect();
    cfg.push_str(&format!("resource \"cxflow_secret_sync\" \"x\" {{\n  path_prefix = \"/cxflow/queued\"\n  parameters = {{ {} }}\n}}\n", params.join(", ")));
    wd.write("main.tf", &cfg);
    proxy.set_delay_ms(1000);
    wd.tf(&["apply", "-auto-approve"]).expect_ok("apply with one call in flight at a time");
    let puts = proxy.stats()["by_operation"]["ssm:PutParameter"].as_u64().unwrap_or(0);
    assert_eq!(puts, 8, "every parameter written once: {}", proxy.stats());
    let longest_overlap = {
        let calls = proxy.calls();
        let mut most = 0;
        for a in &calls {
            let (s, e) = (a["start_us"].as_u64().unwrap(), a["end_us"].as_u64().unwrap());
            most = most.max(calls.iter().filter(|b| b["start_us"].as_u64().unwrap() < e && b["end_us"].as_u64().unwrap() > s).count());
        }
        most
    };
    assert_eq!(longest_overlap, 1, "one call at a time reached AWS");
}

// ------------------------------------------------------------------ bad input

/// (resource or provider snippet, attribute the diagnostic must name)
fn bad_inputs() -> Vec<(&'static str, String, &'static str)> {
    let svc = |body: &str| format!("resource \"cxflow_ecs_fargate_service\" \"x\" {{\n{body}\n}}\n");
    let base_container = "  container {\n    name  = \"app\"\n    image = \"nginx\"\n    port  = 80\n  }\n  network {\n    subnet_ids = [\"subnet-1\"]\n  }";
    let ok_svc = |extra: &str| svc(&format!("  name = \"svc\"\n  cluster = \"c\"\n  cpu = 256\n  memory = 512\n{base_container}\n{extra}"));
    // A setting inside the container block (after its port).
    let in_container = |body: &str| ok_svc("").replace("port  = 80\n  }", &format!("port  = 80\n    {body}\n  }}"));
    // A load_balancer block on a valid listener, with these settings.
    let lb =
        |body: &str| format!("  load_balancer {{\n    listener_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2\"\n    priority = 1\n{body}\n  }}");
    // A network_load_balancer block on a valid NLB, with these settings.
    let nlb =
        |body: &str| format!("  network_load_balancer {{\n    load_balancer_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/n/1\"\n{body}\n  }}");
    let sync = |body: &str| format!("resource \"cxflow_secret_sync\" \"x\" {{\n{body}\n}}\n");
    // A build pipeline with one setting replaced (`from` → `to`) or added at the top level.
    let pipeline = |from: &str, to: &str| {
        let ok = "resource \"cxflow_build_pipeline\" \"x\" {\n  name = \"p\"\n  source {\n    connection_arn = \"arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f\"\n    repository = \"org/repo\"\n    branch = \"prod\"\n  }\n  build {\n    image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"\n    repository_arn = \"arn:aws:ecr:us-east-1:123456789012:repository/r\"\n  }\n  deploy_ecs {\n    cluster = \"c\"\n    service = \"s\"\n  }\n}\n";
        if from.is_empty() { ok.replacen("  name = \"p\"\n", &format!("  name = \"p\"\n  {to}\n"), 1) } else { ok.replacen(from, to, 1) }
    };
    // A release pipeline with one setting replaced (`from` → `to`).
    let release = |from: &str, to: &str| {
        let ok = "resource \"cxflow_release_pipeline\" \"x\" {\n  name = \"rel\"\n  source {\n    connection_arn = \"arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f\"\n    repository = \"org/repo\"\n    branch = \"master\"\n  }\n  builders = {\n    amd64 = { buildspec = \"b.yml\" }\n  }\n  signing {\n    key_secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf\"\n    passphrase_secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:p-AbCdEf\"\n  }\n  publish {\n    bucket_arn = \"arn:aws:s3:::releases\"\n  }\n}\n";
        ok.replacen(from, to, 1)
    };
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
    let registry = |body: &str| {
        let has = |attr: &str| body.lines().any(|l| l.trim_start().starts_with(attr));
        let mut r = String::from("resource \"cxflow_image_registry\" \"x\" {\n");
        if !has("name") {
            r.push_str("  name = \"sample-image\"\n");
        }
        if !has("stages") {
            r.push_str("  stages = { development = {} }\n");
        }
        if !has("github") && !has("no_github") {
            r.push_str("  github {\n    repository = \"example-org/sample-image\"\n  }\n");
        }
        r.push_str(&body.replace("no_github\n", ""));
        r.push_str("\n}\n");
        r
    };
    vec![
        // image registry
        ("registry", registry("  name = \"Bad_Name\""), "name"),
        ("registry", registry("  stages = { Prod = {} }"), "Prod"),
        ("registry", registry("  stages = {}"), "stages"),
        ("registry", registry("  stages = { master = { developers = [\"admin\"] } }"), "developers"),
        ("registry", registry("  stages = { qa = { developers = [\"write\"] } }"), "developers"),
        ("registry", registry("  github {\n    repository = \"not a repository\"\n  }"), "repository"),
        (
            "registry",
            registry("  github {\n    repository = \"example-org/x\"\n    oidc_provider_arn = \"arn:aws:iam::123456789012:oidc-provider/gitlab.com\"\n  }"),
            "oidc_provider_arn",
        ),
        ("registry", registry("  stages = { master = { github_refs = [\"main\"] } }"), "github_refs"),
        ("registry", registry("  stages = { master = { github_environment = \"prod*\" } }"), "github_environment"),
        ("registry", registry("  stages = { qa = { github = [\"authorize\", \"write\"] } }"), "github_refs"),
        ("registry", registry("no_github\n  stages = { master = { github_refs = [\"refs/heads/master\"] } }"), "github_refs"),
        ("registry", registry("  stages = { master = { repository_name = \"Has Upper\" } }"), "repository_name"),
        (
            "registry",
            registry("  stages = { a = { developers = [\"authorize\"], repository_name = \"sample-image/b\" }, b = { developers = [\"authorize\"] } }"),
            "repository_name",
        ),
        ("registry", registry("  image_lifecycle {\n    keep_tagged = 0\n  }"), "keep_tagged"),
        ("registry", registry("  image_lifecycle {\n    expire_untagged_days = 5000\n  }"), "expire_untagged_days"),
        ("registry", registry("  image_lifecycle {\n    archive_old_tagged = true\n    expire_archived_days = 30\n  }"), "expire_archived_days"),
        ("registry", registry("  image_lifecycle {\n    expire_archived_days = 120\n  }"), "expire_archived_days"),
        ("registry", registry("  image_lifecycle {\n    archive_unpulled_days = 0\n  }"), "archive_unpulled_days"),
        ("registry", registry("  stages = { release = { pull_principals = [\"12345\"] } }"), "pull_principals"),
        ("registry", registry("  stages = { release = { pull_principals = [\"arn:aws:iam::111122223333:group/pullers\"] } }"), "pull_principals"),
        ("registry", registry("  members {\n    end_users = [\"bob\"]\n  }"), "end_users"),
        ("registry", registry("  members {\n    developers = [\"not a user!\"]\n  }"), "developers"),
        ("registry", registry("  deployment_role {\n    policy_json = \"not json\"\n  }"), "policy_json"),
        ("registry", registry("  deployment_role {\n    policy_json = jsonencode({ Version = \"2012-10-17\" })\n  }"), "policy_json"),
        ("registry", registry("  deployment_role {\n    policy_json = \"{}\"\n    branch = \"releases/*\"\n  }"), "branch"),
        (
            "registry",
            registry("no_github\n  stages = { qa = { developers = [\"authorize\"] } }\n  deployment_role {\n    policy_json = jsonencode({ Statement = [] })\n  }"),
            "deployment_role",
        ),
        ("registry", registry("  stages = { qa = { developers = [\"authorize\"] } }"), "github block names a repository"),
        ("registry", registry("  kms_key_arn = \"arn:aws:kms:us-east-1:123456789012:key/1\""), "kms_key_arn"),
        ("registry", registry("  scan_on_push = \"sometimes\""), "scan_on_push"),
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
        ("svc", ok_svc("  load_balancer {\n    host_header = \"a.example.com\"\n    priority = 1\n  }"), "listener_arn"),
        ("svc", ok_svc("  load_balancer {\n    target_group_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1\"\n    priority = 1\n  }"), "priority"),
        ("svc", ok_svc("  load_balancer {\n    target_group_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/a/1/2\"\n  }"), "target_group_arn"),
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
        // Task definitions in full: each bad value names its attribute.
        ("svc", in_container("port_mapping {\n      container_port = 8080\n    }"), "port"),
        ("svc", in_container("cpu = 99999"), "cpu"),
        ("svc", in_container("memory = 600"), "container"),
        ("svc", in_container("memory = 300\n    memory_reservation = 400"), "memory_reservation"),
        ("svc", in_container("depends_on {\n      container = \"ghost\"\n      condition = \"START\"\n    }"), "depends_on"),
        ("svc", in_container("depends_on {\n      container = \"app\"\n      condition = \"START\"\n    }"), "depends_on"),
        ("svc", in_container("depends_on {\n      container = \"app\"\n      condition = \"READY\"\n    }"), "condition"),
        ("svc", in_container("entry_point = \"not-a-list\""), "entry_point"),
        ("svc", in_container("user = \"bad user\""), "user"),
        ("svc", in_container("stop_timeout = 500"), "stop_timeout"),
        ("svc", in_container("ulimit {\n      name = \"files\"\n      soft_limit = 1\n      hard_limit = 2\n    }"), "name"),
        ("svc", in_container("ulimit {\n      name = \"nofile\"\n      soft_limit = 9\n      hard_limit = 2\n    }"), "soft_limit"),
        ("svc", in_container("linux_parameters {\n      capabilities {\n        add = [\"NET_ADMIN\"]\n      }\n    }"), "add"),
        ("svc", in_container("linux_parameters {\n      capabilities {\n        drop = [\"NOT_A_CAP\"]\n      }\n    }"), "drop"),
        ("svc", in_container("docker_labels = { \"cxflow.mine\" = \"x\" }"), "docker_labels"),
        ("svc", in_container("mount_point {\n      source_volume = \"nowhere\"\n      container_path = \"/data\"\n    }"), "source_volume"),
        ("svc", in_container("mount_point {\n      source_volume = \"v\"\n      container_path = \"relative\"\n    }"), "container_path"),
        ("svc", in_container("log_configuration {\n      log_driver = \"syslog\"\n    }"), "log_driver"),
        ("svc", in_container("log_configuration {\n      log_driver = \"splunk\"\n      secret_options = { token = \"plain\" }\n    }"), "secret_options"),
        ("svc", in_container("firelens_configuration {\n      type = \"logstash\"\n    }"), "type"),
        ("svc", in_container("image_policy = \"latest\""), "image_policy"),
        ("svc", in_container("image_policy = \"digest\""), "image_policy"),
        (
            "svc",
            in_container("port_mapping {\n      container_port = 53\n      protocol = \"udp\"\n      app_protocol = \"http\"\n    }").replace("port  = 80\n", ""),
            "app_protocol",
        ),
        ("svc", in_container("port_mapping {\n      container_port = 80\n      protocol = \"sctp\"\n    }").replace("port  = 80\n", ""), "protocol"),
        ("svc", ok_svc("  ephemeral_storage_gib = 10"), "ephemeral_storage_gib"),
        ("svc", ok_svc("  runtime_platform {\n    cpu_architecture = \"RISCV\"\n  }"), "cpu_architecture"),
        ("svc", ok_svc("  runtime_platform {\n    operating_system_family = \"WINDOWS_SERVER_2022_CORE\"\n  }"), "operating_system_family"),
        ("svc", ok_svc("  volume {\n    name = \"v\"\n  }\n  volume {\n    name = \"v\"\n  }"), "name"),
        ("svc", ok_svc("  volume {\n    name = \"v\"\n    efs {\n      file_system_id = \"nfs-1\"\n    }\n  }"), "file_system_id"),
        (
            "svc",
            ok_svc(
                "  volume {\n    name = \"v\"\n    efs {\n      file_system_id = \"fs-0123456789abcdef0\"\n      transit_encryption = false\n      iam_authorization = true\n    }\n  }",
            ),
            "transit_encryption",
        ),
        (
            "svc",
            ok_svc(
                "  volume {\n    name = \"v\"\n    efs {\n      file_system_id = \"fs-0123456789abcdef0\"\n      access_point_id = \"fsap-0123456789abcdef0\"\n      root_directory = \"/data\"\n    }\n  }",
            ),
            "root_directory",
        ),
        ("svc", ok_svc("  task_role_policy_json = \"{not json\""), "task_role_policy_json"),
        ("svc", ok_svc("  task_role_policy_json = jsonencode({ Statement = [] })"), "task_role_policy_json"),
        ("svc", ok_svc("  task_role_policy_arns = [\"arn:aws:iam::aws:role/x\"]"), "task_role_policy_arns"),
        (
            "svc",
            ok_svc("  task_role_arn = \"arn:aws:iam::123456789012:role/mine\"\n  task_role_policy_arns = [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]"),
            "task_role_policy_arns",
        ),
        ("svc", ok_svc("  secrets_kms_key_arns = [\"alias/aws/ssm\"]"), "secrets_kms_key_arns"),
        ("svc", ok_svc("  log_router {\n    type = \"vector\"\n  }"), "type"),
        // Service settings: autoscaling, capacity, deployments.
        ("svc", ok_svc("  autoscaling {\n    min = 5\n    max = 2\n  }"), "min"),
        ("svc", ok_svc("  autoscaling {\n    min = 2\n    max = 4\n  }"), "desired_count"),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 9000\n  }"), "max"),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    cpu_target = 150\n  }"), "cpu_target"),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    memory_target = 0\n  }"), "memory_target"),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    requests_per_target = 100\n  }"), "requests_per_target"),
        // Load balancing, Service Connect and Cloud Map in full.
        ("svc", ok_svc(&lb("    host_headers = [\"a\", \"b\", \"c\"]\n    path_patterns = [\"/a\", \"/b\"]\n    source_ips = [\"10.0.0.0/8\"]")), "load_balancer"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    source_ips = [\"10.0.0.0/33\"]")), "source_ips"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    health_check {\n      interval = 5\n      timeout = 5\n    }")), "timeout"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    health_check {\n      healthy_threshold = 11\n    }")), "healthy_threshold"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    health_check {\n      port = \"traffic\"\n    }")), "port"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    deregistration_delay = 3601")), "deregistration_delay"),
        ("svc", ok_svc(&lb("    host_header = \"a.example.com\"\n    stickiness {\n      duration = 0\n    }")), "duration"),
        ("svc", ok_svc(&lb("    http_header {\n      name = \"Bad Header\"\n      values = [\"1\"]\n    }")), "name"),
        ("svc", ok_svc(&format!("{}\n{}", lb("    host_header = \"a.example.com\""), nlb("    port = 9000"))), "network_load_balancer"),
        ("svc", ok_svc(&nlb("    port = 70000")), "network_load_balancer.port"),
        ("svc", ok_svc(&nlb("    port = 9000\n    container_port = 81")), "container_port 81"),
        ("svc", ok_svc("  service_connect {\n    namespace = \"mesh\"\n    service {\n      port_name = \"nope\"\n    }\n  }"), "port_name"),
        ("svc", ok_svc("  service_connect {\n    namespace = \"mesh\"\n    client_only = true\n    service {\n      port_name = \"app\"\n    }\n  }"), "client_only"),
        (
            "svc",
            ok_svc("  service_connect {\n    namespace = \"mesh\"\n    service {\n      port_name = \"app\"\n    }\n    service {\n      port_name = \"app\"\n    }\n  }"),
            "port_name",
        ),
        (
            "svc",
            ok_svc(
                "  service_connect {\n    namespace = \"mesh\"\n    service {\n      port_name = \"app\"\n      tls {\n        private_ca_arn = \"arn:aws:acm:us-east-1:123456789012:certificate/x\"\n        role_arn = \"arn:aws:iam::123456789012:role/r\"\n      }\n    }\n  }",
            ),
            "private_ca_arn",
        ),
        (
            "svc",
            ok_svc("  service_connect {\n    namespace = \"mesh\"\n    service {\n      port_name = \"app\"\n      client_alias {\n        port = 0\n      }\n    }\n  }"),
            "port",
        ),
        ("svc", ok_svc("  service_registry {\n    dns_record_type = \"A\"\n  }"), "registry_arn"),
        (
            "svc",
            ok_svc(
                "  service_registry {\n    namespace_id = \"ns-abcdefabcdefabcd\"\n    registry_arn = \"arn:aws:servicediscovery:us-east-1:123456789012:service/srv-abcdefabcdefabcd\"\n  }",
            ),
            "registry_arn",
        ),
        ("svc", ok_svc("  service_registry {\n    namespace_id = \"namespace-1\"\n  }"), "namespace_id"),
        ("svc", ok_svc("  service_registry {\n    namespace_id = \"ns-abcdefabcdefabcd\"\n    dns_record_type = \"CNAME\"\n  }"), "dns_record_type"),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    scale_in_cooldown = -1\n  }"), "scale_in_cooldown"),
        (
            "svc",
            ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"cron(0 22 * *)\"\n      max = 1\n    }\n  }"),
            "schedule",
        ),
        (
            "svc",
            ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(5 fortnights)\"\n      max = 1\n    }\n  }"),
            "schedule",
        ),
        (
            "svc",
            ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"at(tomorrow)\"\n      max = 1\n    }\n  }"),
            "schedule",
        ),
        (
            "svc",
            ok_svc(
                "  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(1 day)\"\n      min = 3\n      max = 1\n    }\n  }",
            ),
            "min",
        ),
        ("svc", ok_svc("  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(1 day)\"\n    }\n  }"), "scheduled_action"),
        (
            "svc",
            ok_svc(
                "  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(1 day)\"\n      max = 1\n    }\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(2 days)\"\n      max = 2\n    }\n  }",
            ),
            "name",
        ),
        (
            "svc",
            ok_svc(
                "  autoscaling {\n    min = 1\n    max = 2\n    scheduled_action {\n      name = \"n\"\n      schedule = \"rate(1 day)\"\n      timezone = \"Mars Time\"\n      max = 1\n    }\n  }",
            ),
            "timezone",
        ),
        ("svc", ok_svc("  capacity_provider_strategy {\n    capacity_provider = \"EC2\"\n  }"), "capacity_provider"),
        ("svc", ok_svc("  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n    weight = 2000\n  }"), "weight"),
        ("svc", ok_svc("  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n    base = -1\n  }"), "base"),
        (
            "svc",
            ok_svc(
                "  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n    base = 1\n  }\n  capacity_provider_strategy {\n    capacity_provider = \"FARGATE_SPOT\"\n    base = 1\n  }",
            ),
            "base",
        ),
        (
            "svc",
            ok_svc("  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n  }\n  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n  }"),
            "capacity_provider",
        ),
        ("svc", ok_svc("  capacity_provider_strategy {\n    capacity_provider = \"FARGATE\"\n    weight = 0\n  }"), "weight"),
        ("svc", ok_svc("  deployment {\n    minimum_healthy_percent = 150\n  }"), "minimum_healthy_percent"),
        ("svc", ok_svc("  deployment {\n    maximum_percent = 50\n  }"), "maximum_percent"),
        ("svc", ok_svc("  deployment {\n    alarms {\n      names = []\n    }\n  }"), "names"),
        ("svc", ok_svc("  deployment {\n    alarms {\n      rollback = true\n    }\n  }"), "names"),
        ("svc", ok_svc("  deployment {\n    alarms {\n      names = [\"\"]\n    }\n  }"), "names"),
        ("svc", ok_svc("  platform_version = \"newest\""), "platform_version"),
        ("svc", ok_svc("  health_check_grace_period = 30"), "health_check_grace_period"),
        ("svc", ok_svc("  propagate_tags = \"CLUSTER\""), "propagate_tags"),
        ("svc", ok_svc("  redeploy_trigger = \"no <angle> brackets\""), "redeploy_trigger"),
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
        // build pipeline
        ("pipeline", pipeline("name = \"p\"", "name = \"-p\""), "name"),
        ("pipeline", pipeline("connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f", "connection/not-a-uuid"), "connection_arn"),
        ("pipeline", pipeline("codestar-connections", "codecommit"), "connection_arn"),
        ("pipeline", pipeline("org/repo", "just-a-name"), "repository"),
        ("pipeline", pipeline("branch = \"prod\"", "branch = \"has space\""), "branch"),
        ("pipeline", pipeline("image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"", "image = \"Not An Image\""), "image"),
        (
            "pipeline",
            pipeline("image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"", "image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"\n    compute_type = \"HUGE\""),
            "compute_type",
        ),
        (
            "pipeline",
            pipeline("image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"", "image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"\n    timeout_minutes = 4"),
            "timeout_minutes",
        ),
        (
            "pipeline",
            pipeline("image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"", "image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"\n    timeout_minutes = 2161"),
            "timeout_minutes",
        ),
        ("pipeline", pipeline("image = \"aws/codebuild/amazonlinux2-x86_64-standard:4.0\"", "image = \"aws/codebuild/amazonlinux2-aarch64-standard:3.0\""), "environment_type"),
        ("pipeline", pipeline("repository/r", "role/r"), "repository_arn"),
        ("pipeline", pipeline("service = \"s\"", "service = \"s\"\n    file = \"imagedefinitions.yml\""), "file"),
        ("pipeline", pipeline("service = \"s\"", "service = \"s\"\n    pass_role_arns = [\"arn:aws:ecr:us-east-1:123456789012:repository/r\"]"), "pass_role_arns"),
        ("pipeline", pipeline("  deploy_ecs {\n    cluster = \"c\"\n    service = \"s\"\n  }\n", "  manual_approval = true\n"), "manual_approval"),
        ("pipeline", pipeline("", "artifact_expiration_days = 0"), "artifact_expiration_days"),
        // release pipeline
        ("release", release("amd64 = {", "Amd64 = {"), "Amd64"),
        ("release", release("amd64 = { buildspec = \"b.yml\" }", ""), "builders"),
        ("release", release("amd64 = { buildspec = \"b.yml\" }", &(1..=6).map(|i| format!("b{i} = {{ buildspec = \"b.yml\" }}\n")).collect::<String>()), "builders"),
        ("release", release("buildspec = \"b.yml\" }", "buildspec = \"b.yml\", environment_type = \"ARM_CONTAINER\" }"), "environment_type"),
        ("release", release("buildspec = \"b.yml\" }", "buildspec = \"b.yml\", artifact_variable = \"1bad\" }"), "artifact_variable"),
        ("release", release("secret:k-AbCdEf", "parameter/k"), "key_secret_arn"),
        ("release", release("secret:p-AbCdEf", "secret:k-AbCdEf"), "passphrase_secret_arn"),
        ("release", release("arn:aws:s3:::releases", "releases"), "bucket_arn"),
        ("release", release("    key_secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf\"\n", ""), "key_secret_arn"),
        ("release", release("  signing {\n", "  signing {\n    key_wo = \"k\"\n    secrets_wo_version = 1\n"), "key_wo"),
        (
            "release",
            release("    passphrase_secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:p-AbCdEf\"\n", "    passphrase_wo = \"p\"\n"),
            "secrets_wo_version",
        ),
        ("release", release("  signing {\n", "  signing {\n    secrets_wo_version = 0\n"), "secrets_wo_version"),
        ("release", release("  publish {\n", "  signing_image {\n    schedule = \"cron(0 12 * * MON *)\"\n  }\n  publish {\n"), "schedule"),
        ("release", release("  publish {\n", "  signing_image {\n    schedule = \"every day\"\n  }\n  publish {\n"), "schedule"),
        ("release", release("  signing {\n", "  signing_image {}\n  signing {\n    image = \"example/signer:1\"\n"), "image"),
        ("release", release("name = \"rel\"", "name = \"rel\"\n  log_retention_days = 2"), "log_retention_days"),
        // Explicit nulls where a value is required, and inside collections.
        ("svc", ok_svc("").replace("name = \"svc\"", "name = null"), "name"),
        ("svc", ok_svc("").replace("subnet_ids = [\"subnet-1\"]", "subnet_ids = [null]"), "subnet_ids"),
        ("svc", ok_svc("").replace("port  = 80\n  }", "port  = 80\n    environment = { A = null }\n  }"), "environment"),
        ("svc", ok_svc("  tags = { a = null }"), "tags"),
        ("cluster", cluster("environments = { prod = null }"), "environments"),
        ("sync", sync("  path_prefix = null\n  parameters = { a = \"b\" }"), "path_prefix"),
        ("sync", sync("  path_prefix = \"/p\"\n  redeploy_services = [null]"), "redeploy_services"),
        // Numbers the attribute cannot hold.
        ("sync", sync("  path_prefix = \"/p\"\n  secrets_wo_version = 1.5"), "secrets_wo_version"),
        ("svc", ok_svc("  desired_count = 1e400"), "desired_count"),
        // Durations: malformed, beyond any Instant, beyond the 24 h bound.
        ("svc", ok_svc("  timeouts {\n    create = \"9999999999999999999s\"\n  }"), "create"),
        ("svc", ok_svc("  timeouts {\n    update = \"25h\"\n  }"), "update"),
        (
            "cluster",
            {
                let c = cluster("");
                format!("{}  timeouts {{\n    delete = \"99999999999h\"\n  }}\n}}\n", &c[..c.len() - 2])
            },
            "delete",
        ),
        // Tags AWS refuses.
        ("svc", ok_svc("  tags = { Team = \"a\", team = \"b\" }"), "team"),
        ("svc", ok_svc("  tags = { \"\" = \"x\" }"), "tags"),
        ("sync", sync("  path_prefix = \"/p\"\n  parameters = { a = \"b\" }\n  tags = { \"cxflow:owner\" = \"me\" }"), "cxflow:owner"),
        // Names whose derived ownership tag would pass AWS's 256 characters.
        ("svc", ok_svc("").replace("name = \"svc\"", &format!("name = \"{}\"", "n".repeat(240))), "name"),
        // A prefix that would make `//key` names.
        ("sync", sync("  path_prefix = \"/\"\n  parameters = { a = \"b\" }"), "path_prefix"),
        // Secret references with wildcards would grant the execution role every parameter or secret.
        ("svc", ok_svc("").replace("port  = 80\n  }", "port  = 80\n    secrets = { DB = \"arn:aws:ssm:us-east-1:123456789012:parameter/*\" }\n  }"), "DB"),
        ("svc", ok_svc("").replace("port  = 80\n  }", "port  = 80\n    secrets = { DB = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:*\" }\n  }"), "DB"),
        // Actions and functions: the attribute or the function's parameter.
        ("action", "action \"cxflow_ecs_scale\" \"x\" {\n  config {\n    cluster = \"c\"\n    service = \"s\"\n    desired_count = -1\n  }\n}\n".into(), "desired_count"),
        ("action", "action \"cxflow_ecs_force_deployment\" \"x\" {\n  config {\n    cluster = \"no such/cluster\"\n    service = \"s\"\n  }\n}\n".into(), "cluster"),
        ("action", "action \"cxflow_ecs_force_deployment\" \"x\" {\n  config {\n    cluster = \"c\"\n    service = \"s\"\n    timeout = \"forever\"\n  }\n}\n".into(), "timeout"),
        ("function", "output \"x\" {\n  value = provider::cxflow::ecr_image_uri(\"123456789012\", \"us-east-1\", \"app\", \"bad tag!\")\n}\n".into(), "\"tag_or_digest\""),
        ("function", "output \"x\" {\n  value = provider::cxflow::ssm_parameter_arn(\"us-east-1\", \"123456789012\", \"a/b\")\n}\n".into(), "\"name\" parameter"),
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
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (kind, body, attr) in &cases {
        let wd = Workdir::through(&proxy);
        let (provider_extra, resource) = if *kind == "provider" {
            (provider_variant(attr), "resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/ok\"\n  parameters = { a = \"b\" }\n}\n".to_string())
        } else {
            ("", body.clone())
        };
        wd.write("main.tf", &(provider_block(provider_extra) + &resource));
        let r = wd.tf(&["plan"]);
        let out = r.all();
        if out.contains("panicked") || out.contains("Plugin did not respond") {
            failures.push(format!("{kind}/{attr}: the provider crashed:\n{out}"));
        }
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

/// The lint the contract suite runs on every composite's roles finds what it
/// must: a managed policy the docs do not list and a secret read on `*`.
#[test]
fn the_iam_lint_finds_what_it_must() {
    use common::iam::{RolePolicies, findings};
    let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameters","Resource":"*"}]}"#;
    let bad = RolePolicies { role: "r".into(), inline: vec![("p".into(), wide.into())], managed: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()] };
    let f = findings(&[bad]);
    assert!(f.iter().any(|x| x.contains("AdministratorAccess") && x.contains("docs/design.md does not list it")), "{f:?}");
    assert!(f.iter().any(|x| x.contains("grants ssm:GetParameters on *")), "{f:?}");
    let narrow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/x:*"}]}"#;
    let good = RolePolicies { role: "r".into(), inline: vec![("p".into(), narrow.into())], managed: vec![] };
    assert_eq!(findings(&[good]), Vec::<String>::new());
}

// ------------------------------------------------------------------ ownership across states

/// A working directory (a state of its own) for `service_config(name)` on existing infrastructure.
fn workdir_on(proxy: &Proxy, name: &str, infra: &(String, String), extra_provider: &str) -> Workdir {
    let mut wd = Workdir::through(proxy);
    wd.env.insert("TF_VAR_secret".into(), SECRET.into());
    wd.env.insert("TF_VAR_subnet".into(), infra.0.clone());
    wd.env.insert("TF_VAR_listener".into(), infra.1.clone());
    wd.write("main.tf", &service_config(name, extra_provider));
    wd
}

/// Calls since the last reset that change something.
fn writes(proxy: &Proxy) -> Vec<String> {
    let stats = proxy.stats();
    let read = |op: &str| ["Describe", "List", "Get", "BatchGet"].iter().any(|p| op.split(':').nth(1).is_some_and(|o| o.starts_with(p)));
    stats["by_operation"].as_object().map(|o| o.keys().filter(|op| !read(op)).cloned().collect()).unwrap_or_default()
}

fn running_image(m: &Moto, cluster: &str, name: &str) -> String {
    block_on(async {
        let ecs = aws_sdk_ecs::Client::new(&m.sdk());
        let s = ecs.describe_services().cluster(cluster).services(name).send().await.unwrap();
        let td = s.services()[0].task_definition().unwrap().to_string();
        let d = ecs.describe_task_definition().task_definition(td).send().await.unwrap();
        d.task_definition().unwrap().container_definitions()[0].image().unwrap().to_string()
    })
}

#[test]
fn a_second_state_with_the_same_names_is_refused_before_any_write() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &[]);
    let infra = infrastructure(&moto);
    let a = workdir_on(&proxy, "shared", &infra, "");
    a.apply().expect_ok("state A creates the service and the secrets");
    let a_children = a.state_attrs("cxflow_ecs_fargate_service", "svc")["children"].clone();
    let before = Snapshot::take(&moto);

    // State B: the same names, another image.
    let b = workdir_on(&proxy, "shared", &infra, "");
    // (Without the redeploy link, so that both resources are planned and refused independently.)
    b.write("main.tf", &b.read("main.tf").replace("app:1", "app:2").replace("  redeploy_services = [cxflow_ecs_fargate_service.svc.service_arn]\n", ""));
    proxy.reset();
    let r = b.apply();
    r.expect_fail("state B over state A's names");
    let err = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(r.stderr.matches("Error: ").count(), 2, "one diagnostic per resource:\n{}", r.stderr);
    assert!(err.contains("already exists") && err.contains("another Terraform state has recorded"), "{err}");
    assert!(err.contains("terraform import cxflow_ecs_fargate_service.<name> rel/shared"), "{err}");
    assert!(err.contains("SSM parameter /rel/shared/token belongs to a cxflow_secret_sync//rel/shared that another Terraform state has recorded"), "{err}");
    assert!(err.contains("terraform import cxflow_secret_sync.<name> /rel/shared"), "{err}");
    assert!(writes(&proxy).is_empty(), "state B wrote nothing: {:?}", writes(&proxy));
    assert_eq!(Snapshot::take(&moto), before, "nothing changed in AWS");
    assert!(b.state_json()["resources"].as_array().is_none_or(|r| r.is_empty()), "state B records nothing");

    // A is untouched: its image, its plan; B's destroy touches nothing of A's.
    assert_eq!(running_image(&moto, "rel", "shared"), "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1");
    b.destroy().expect_ok("destroy of the empty state B");
    assert_eq!(Snapshot::take(&moto), before, "state B's destroy deleted nothing");
    assert_eq!(a.plan_code().code, 0, "state A still plans empty");
    assert_eq!(a.state_attrs("cxflow_ecs_fargate_service", "svc")["children"], a_children);
    a.destroy().expect_ok("destroy A");
    assert!(owned_leftovers(&moto).is_empty());
}

/// Workspaces of one working directory are separate states sharing one data
/// directory: the workspace that did not create the composite must not take
/// its objects for its own interrupted create.
#[test]
fn another_workspace_of_the_same_directory_is_refused() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let wd = Workdir::through(&proxy);
    wd.write("main.tf", &format!("{}\n{}", provider_block(""), include_str!("contract/cxflow_ecs_cluster.tf")));
    wd.apply().expect_ok("the default workspace creates the cluster");
    let before = Snapshot::take(&moto);
    wd.tf(&["workspace", "new", "other"]).expect_ok("workspace new");
    proxy.reset();
    let r = wd.apply();
    r.expect_fail("the other workspace over the default one's cluster");
    let err = r.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(err.contains("another Terraform state has recorded") && err.contains("terraform import cxflow_ecs_cluster.<name> contract"), "{err}");
    assert!(writes(&proxy).is_empty(), "the other workspace wrote nothing: {:?}", writes(&proxy));
    assert_eq!(Snapshot::take(&moto), before);
    wd.tf(&["workspace", "select", "default"]).expect_ok("workspace select");
    assert_eq!(wd.plan_code().code, 0, "the default workspace still plans empty");
    wd.destroy().expect_ok("destroy");
    assert!(owned_leftovers(&moto).is_empty());
}

#[test]
fn concurrent_creates_of_one_name_never_share_an_object() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let before = Snapshot::take(&moto);
    // Latency widens the window in which both applies create.
    let proxy = Proxy::start(&moto, &["--delay-ms", "30"]);
    let infra = infrastructure(&moto);
    let dirs = [workdir_on(&proxy, "race", &infra, ""), workdir_on(&proxy, "race", &infra, "")];
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs.iter().map(|wd| s.spawn(move || wd.apply())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = runs.iter().filter(|r| r.ok()).count();
    assert!(ok <= 1, "at most one of two concurrent creates of one name succeeds");
    let kids: Vec<BTreeMap<String, String>> =
        dirs.iter().map(|wd| serde_json::from_value(wd.state_attrs("cxflow_ecs_fargate_service", "svc")["children"].clone()).unwrap_or_default()).collect();
    let ids = |k: &BTreeMap<String, String>| k.values().cloned().collect::<std::collections::BTreeSet<_>>();
    assert!(ids(&kids[0]).is_disjoint(&ids(&kids[1])), "no object is recorded by both states: {kids:?}");
    for r in &runs {
        no_secret("a racing apply", &r.all());
    }
    for wd in &dirs {
        wd.destroy().expect_ok("destroy one racing state");
    }
    // What the losing state made it also deleted; nothing is left of either.
    let after = Snapshot::take(&moto);
    let left: Vec<String> = after.added_since(&before).into_iter().filter(|l| !l.contains("rel")).collect();
    let leftovers = owned_leftovers(&moto);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?} {left:?}");
    println!("\n| concurrent creates | succeeded | shared objects | leftovers |\n|---|---|---|---|\n| 2 | {ok} | 0 | 0 |");
}

// ------------------------------------------------------------------ lost answers

/// Create calls of a Fargate service with a secret sync. (Each composite's own
/// creates lose an answer in the contract suite, tests/contract.rs.)
const SERVICE_CREATES: &[&str] = &[
    "logs:CreateLogGroup",
    "logs:PutRetentionPolicy",
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "ec2:CreateSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:CreateRule",
    "ecs:RegisterTaskDefinition",
    "ecs:CreateService",
    "ssm:PutParameter",
];

/// Lose the first answer to each create call, apply until it converges
/// (each apply after a failure continues where the last stopped), and check
/// that every rule fired, nothing was duplicated, and destroy leaves
/// exactly what was there before.
fn lost_answers_converge(moto: &Moto, proxy: &Proxy, wd: &Workdir, creates: &[&str], what: &str) -> (usize, usize) {
    let before = Snapshot::take(moto);
    let rules: Vec<String> = creates.iter().map(|op| format!("op={op},kind=lost,count=1")).collect();
    proxy.set_faults(serde_json::json!(rules));
    let mut applies = 0;
    let mut failed = 0;
    loop {
        applies += 1;
        let r = wd.apply();
        no_secret("apply with lost answers", &r.all());
        if r.ok() {
            break;
        }
        failed += 1;
        assert!(applies < creates.len() + 2, "{what}: no convergence after {applies} applies:\n{}", r.stderr);
    }
    let fired = proxy.stats()["rules"].as_array().unwrap().iter().filter(|r| r["fired"] == 1).count();
    assert_eq!(fired, creates.len(), "{what}: every create lost one answer: {}", proxy.stats()["rules"]);
    assert_eq!(wd.plan_code().code, 0, "{what}: converged");
    proxy.clear_faults();
    wd.destroy().expect_ok(&format!("{what}: destroy after lost answers"));
    let after = Snapshot::take(moto);
    assert_eq!(after.added_since(&before), Vec::<String>::new(), "{what}: destroy leaves nothing, duplicates included");
    (applies, failed)
}

#[test]
fn a_lost_answer_to_any_create_is_retried_without_orphans() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let proxy = Proxy::start(&moto, &[]);
    let infra = infrastructure(&moto);
    let wd = workdir_on(&proxy, "lossy", &infra, "");
    let (svc_applies, svc_failed) = lost_answers_converge(&moto, &proxy, &wd, SERVICE_CREATES, "service");
    println!(
        "\n| lost answers | create calls | applies to converge | applies that failed | leftovers |\n|---|---|---|---|---|\n| service + secret sync | {} | {svc_applies} | {svc_failed} | 0 |",
        SERVICE_CREATES.len()
    );
}

// ------------------------------------------------------------------ secret sync: outages, echoed secrets

#[test]
fn an_outage_after_the_writes_loses_no_parameter() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = Workdir::through(&proxy);
    let keys = ["checkmarx/username", "checkmarx/password", "checkmarx/token", "gitlab/token", "gitlab/webhook_token", "bitbucket/token"];
    let mut cfg = provider_block("  max_retries = 1");
    cfg.push_str("variable \"s\" {\n  type      = map(string)\n  ephemeral = true\n  sensitive = true\n}\n");
    cfg.push_str("resource \"cxflow_secret_sync\" \"s\" {\n  path_prefix = \"/outage/prod\"\n  secrets_wo  = var.s\n}\n");
    wd.write("main.tf", &cfg);
    let values: BTreeMap<&str, String> = keys.iter().map(|k| (*k, format!("{SECRET}-{k}"))).collect();
    wd.env.insert("TF_VAR_s".into(), serde_json::to_string(&values).unwrap());
    // Every call fails from the first one after the writes on.
    proxy.set_faults(serde_json::json!(["op=ssm:AddTagsToResource,kind=500,outage=1"]));
    let r = wd.apply();
    r.expect_fail("apply into an outage");
    no_secret("apply into an outage", &r.all());
    let st = wd.state_attrs("cxflow_secret_sync", "s");
    let recorded: Vec<&str> = st["secret_versions"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    assert_eq!(recorded, want, "every parameter written is in state: {st}");
    proxy.clear_faults();
    wd.destroy().expect_ok("destroy after the outage");
    let left = block_on(async { aws_sdk_ssm::Client::new(&moto.sdk()).get_parameters_by_path().path("/outage").recursive(true).send().await.unwrap().parameters().len() });
    assert_eq!(left, 0, "destroy deletes every parameter under the record");
}

#[test]
fn an_aws_error_echoing_a_secret_shows_no_part_of_it() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    let secrets = ["abc'tail-of-secret-Qx7", "line1\nline2-of-secret-Wm3", "back\\slash\\secret-Zp9", "grüße-aus-köln-🔑-geheim-Yt2", "quo\"ted-secret-value-Rk5"];
    for (i, secret) in secrets.iter().enumerate() {
        let mut wd = Workdir::through(&proxy);
        let mut cfg = provider_block("  max_retries = 0");
        cfg.push_str("variable \"s\" {\n  type      = string\n  ephemeral = true\n  sensitive = true\n}\n");
        cfg.push_str(&format!("resource \"cxflow_secret_sync\" \"s\" {{\n  path_prefix = \"/echo/n{i}\"\n  secrets_wo  = {{ token = var.s }}\n}}\n"));
        wd.write("main.tf", &cfg);
        wd.env.insert("TF_VAR_s".into(), secret.to_string());
        proxy.set_faults(serde_json::json!(["op=ssm:PutParameter,kind=echo"]));
        let r = wd.tf_env(&["apply", "-auto-approve"], &[("TF_LOG", "trace"), ("TF_LOG_PATH", "trace.log")]);
        r.expect_fail("a write AWS refuses, quoting the value");
        let trace = wd.read("trace.log");
        for text in [r.all(), wd.read("terraform.tfstate"), trace] {
            let chars: Vec<char> = secret.chars().collect();
            for w in chars.windows(8) {
                let part: String = w.iter().collect();
                assert!(!text.contains(&part), "{part:?} of secret {i} leaked:\n{}", text.lines().filter(|l| l.contains(&part)).take(3).collect::<Vec<_>>().join("\n"));
            }
        }
        assert!(r.all().contains("(redacted)"), "the message says something was hidden:\n{}", r.all());
    }
    proxy.clear_faults();
}
