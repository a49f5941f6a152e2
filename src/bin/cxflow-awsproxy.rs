//! cxflow-awsproxy: a loopback HTTP proxy in front of an AWS stand-in (moto)
//! for tests and benchmarks. It counts calls per AWS operation, adds a fixed
//! latency to every call and injects faults (throttling, 500, 503, connection
//! resets, extra delay) at chosen rates on chosen operations, reproducibly
//! from a seed.
//!
//! ```text
//! cxflow-awsproxy --upstream http://127.0.0.1:5000 [--port 0] [--delay-ms 0]
//!                 [--fault 'op=ecs:CreateService,kind=500,rate=1.0'] ... [--seed 1]
//! ```
//!
//! First line on stdout: `listening 127.0.0.1:<port>`. Point SDK clients (or
//! the provider's `AWS_ENDPOINT_URL`) at `http://127.0.0.1:<port>`.
//!
//! Control API on the same port:
//!
//! | request | effect |
//! |---|---|
//! | `GET /__proxy/stats` | `{"total":N,"by_operation":{"ecs:CreateService":n},"faults":{"total":n,"by_kind":{},"by_operation":{}},"upstream_errors":n,"delay_ms":d,"rules":[...]}` |
//! | `POST /__proxy/reset` | zero the counters |
//! | `GET`/`POST /__proxy/faults` | read / replace the rules: a JSON list of rule objects (`{"op":"*","kind":"throttle","rate":0.1,"count":5,"ms":100}`) or rule strings, or `{"rules":[...],"seed":n}`; the generator is re-seeded |
//! | `GET`/`POST /__proxy/delay` | read / set the added latency: `{"ms":50}` or `50` |
//! | `GET /__proxy/calls` | the calls since the last reset, in arrival order: `[{"op":"ssm:PutParameter","start_us":n,"end_us":n,"status":200,"fault":null}]` (at most 100,000 kept) |
//! | `GET /__proxy/requests[?op=service:Operation]` | the request bodies since the last reset, in arrival order: `[{"op":"ecs:CreateService","body":"..."}]` (at most 32 MiB kept) |
//!
//! Fault kinds: `throttle`, `500`, `503` (protocol-correct error answers),
//! `reset` (the connection closes before the request reaches the upstream),
//! `lost` (the request reaches the upstream and takes effect, then the
//! connection closes instead of the answer: the client retries a call that
//! already happened), `slow` (extra delay), `echo` (a validation error
//! quoting the request's `Value`, as AWS's do) and `denied` (the protocol's
//! access-denied error: `AccessDenied`, `AccessDeniedException`, EC2's
//! `UnauthorizedOperation`). A rule with `outage=1` starts
//! an outage when it fires: every later call, of any operation, gets its
//! fault until the rules are replaced.
//!
//! Only loopback upstreams are accepted, and the proxy listens on 127.0.0.1 only.

#[path = "awsproxy/ops.rs"]
mod ops;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use ops::{FaultKind, Rule, Stats};

/// Calls kept for `GET /__proxy/calls` between resets.
const MAX_TIMELINE: usize = 100_000;
/// Request body bytes kept for `GET /__proxy/requests` between resets.
const MAX_RECORDED: usize = 32 * 1024 * 1024;
/// Largest request or response body the proxy buffers.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"];

const USAGE: &str = "usage: cxflow-awsproxy --upstream http://127.0.0.1:<port> [--port N] [--delay-ms N] [--fault SPEC]... [--seed N]\n\
  SPEC: op=<service:Operation|service:*|*>,kind=<throttle|500|503|reset|lost|slow|echo|denied>[,rate=0..1][,count=N][,ms=N][,outage=1]";

#[derive(Debug)]
struct Args {
    port: u16,
    upstream: String,
    delay_ms: u64,
    faults: Vec<Rule>,
    seed: u64,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args { port: 0, upstream: String::new(), delay_ms: 0, faults: Vec::new(), seed: 1 };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag {
            "--port" => a.port = value()?.parse().map_err(|_| "--port takes a port number".to_string())?,
            "--upstream" => a.upstream = value()?,
            "--delay-ms" => a.delay_ms = value()?.parse().map_err(|_| "--delay-ms takes a whole number".to_string())?,
            "--fault" => a.faults.push(Rule::parse(&value()?)?),
            "--seed" => a.seed = value()?.parse().map_err(|_| "--seed takes a whole number".to_string())?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.upstream.is_empty() {
        return Err(format!("--upstream is required\n{USAGE}"));
    }
    a.upstream = loopback_upstream(&a.upstream)?;
    Ok(a)
}

/// Accept only `http://<loopback>:<port>`; returns it without a trailing slash.
fn loopback_upstream(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("--upstream {url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--upstream {url:?}: only http:// upstreams are supported"));
    }
    let host = uri.host().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("--upstream {url:?}: refusing a non-loopback upstream (only 127.0.0.0/8, ::1 and localhost)"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("--upstream {url:?}: give scheme, host and port only"));
    }
    let port = uri.port_u16().ok_or_else(|| format!("--upstream {url:?}: give the port"))?;
    Ok(format!("http://{host}:{port}"))
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<Rule>>,
    seed: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    delay_ms: AtomicU64,
    stats: Mutex<Stats>,
    next_id: AtomicU64,
    /// When the proxy started: call times are microseconds since then.
    epoch: std::time::Instant,
    timeline: Mutex<Vec<Call>>,
    requests: Mutex<Recorded>,
    /// Set once an `outage` rule fires: every later call gets this fault.
    outage: Mutex<Option<FaultKind>>,
}

/// Request bodies as they arrived, for tests that check what a client sent.
#[derive(Default)]
struct Recorded {
    bytes: usize,
    list: Vec<(String, Bytes)>,
}

impl Recorded {
    fn push(&mut self, op: &str, body: &Bytes) {
        if self.bytes + body.len() <= MAX_RECORDED {
            self.bytes += body.len();
            self.list.push((op.to_string(), body.clone()));
        }
    }
}

/// One call as `GET /__proxy/calls` reports it.
struct Call {
    op: String,
    start_us: u64,
    end_us: u64,
    /// HTTP status answered; 0 for a reset.
    status: u16,
    fault: Option<FaultKind>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
    fn record(&self, op: String, start_us: u64, status: u16, fault: Option<FaultKind>) {
        let end_us = self.now_us();
        let mut t = self.timeline.lock().unwrap();
        if t.len() < MAX_TIMELINE {
            t.push(Call { op, start_us, end_us, status, fault });
        }
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetConnection {}

type Answer = Result<Response<Full<Bytes>>, ResetConnection>;

fn simple(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")));
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    simple(status, "application/json", format!("{v}\n"))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Answer {
    if req.uri().path().starts_with("/__proxy/") {
        return Ok(control(&shared, req).await);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(simple(StatusCode::BAD_REQUEST, "text/plain", format!("cxflow-awsproxy: could not read the request body: {e}\n"))),
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let op = ops::classify(&ops::RequestView { method: parts.method.as_str(), path: parts.uri.path(), query: parts.uri.query(), header: &header, body: &body });
    let key = op.key();
    let start_us = shared.now_us();
    shared.stats.lock().unwrap().call(&key);
    shared.requests.lock().unwrap().push(&key, &body);

    let delay = shared.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }

    let fault = {
        let mut rules = shared.rules.lock().unwrap();
        let mut outage = shared.outage.lock().unwrap();
        if let Some(k) = *outage {
            Some((k, ops::DEFAULT_SLOW_MS))
        } else if rules.is_empty() {
            None
        } else {
            let mut rng = shared.rng.lock().unwrap();
            let f = ops::pick_fault(&mut rules, &op, || rng.f64());
            if let Some((k, _, true)) = f {
                *outage = Some(k);
            }
            f.map(|(k, ms, _)| (k, ms))
        }
    };
    if let Some((kind, ms)) = fault {
        shared.stats.lock().unwrap().fault(&key, kind);
        match kind {
            FaultKind::Reset => {
                shared.record(key, start_us, 0, Some(kind));
                return Err(ResetConnection);
            }
            FaultKind::Lost => {
                let answered = forward(&shared, parts, body).await;
                shared.record(key, start_us, 0, Some(kind));
                drop(answered);
                return Err(ResetConnection);
            }
            FaultKind::Slow => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => {
                let rid = format!("cxflow-awsproxy-{}", shared.next_id.fetch_add(1, Ordering::Relaxed));
                if let Some(ans) = ops::error_answer(kind, &op, &rid, ops::request_value(&body).as_deref()) {
                    let mut r = Response::new(Full::new(Bytes::from(ans.body)));
                    *r.status_mut() = StatusCode::from_u16(ans.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    for (k, v) in ans.headers {
                        if let Ok(v) = HeaderValue::from_str(&v) {
                            r.headers_mut().insert(HeaderName::from_static(k), v);
                        }
                    }
                    r.headers_mut().insert(HeaderName::from_static("x-cxflow-proxy-fault"), HeaderValue::from_static(kind.as_str()));
                    shared.record(key, start_us, r.status().as_u16(), Some(kind));
                    return Ok(r);
                }
            }
        }
    }

    let r = forward(&shared, parts, body).await;
    shared.record(key, start_us, r.status().as_u16(), fault.map(|f| f.0));
    Ok(r)
}

async fn forward(shared: &Shared, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let uri: Uri = match format!("{}{}", shared.upstream, pq).parse() {
        Ok(u) => u,
        Err(e) => return simple(StatusCode::BAD_REQUEST, "text/plain", format!("cxflow-awsproxy: bad request target: {e}\n")),
    };
    let mut up = Request::new(Full::new(body));
    *up.method_mut() = parts.method;
    *up.uri_mut() = uri;
    for (k, v) in parts.headers.iter() {
        // The body is already here: no `Expect: 100-continue` round to the upstream.
        if !HOP_BY_HOP.contains(&k.as_str()) && k != hyper::header::EXPECT {
            up.headers_mut().append(k.clone(), v.clone());
        }
    }
    let resp = match shared.client.request(up).await {
        Ok(r) => r,
        Err(e) => {
            shared.stats.lock().unwrap().upstream_errors += 1;
            return simple(StatusCode::BAD_GATEWAY, "text/plain", format!("cxflow-awsproxy: upstream {} failed: {e}\n", shared.upstream));
        }
    };
    let (rparts, rbody) = resp.into_parts();
    let bytes = match Limited::new(rbody, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            shared.stats.lock().unwrap().upstream_errors += 1;
            return simple(StatusCode::BAD_GATEWAY, "text/plain", format!("cxflow-awsproxy: reading the upstream answer failed: {e}\n"));
        }
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = rparts.status;
    for (k, v) in rparts.headers.iter() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            r.headers_mut().append(k.clone(), v.clone());
        }
    }
    r
}

async fn control(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches("/__proxy/").trim_end_matches('/').to_string();
    let query = req.uri().query().map(str::to_string);
    let body = match Limited::new(req.into_body(), 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": format!("could not read the body: {e}")})),
    };
    let parse_body = || -> Result<serde_json::Value, String> { serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}")) };
    let bad = |e: String| json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e}));
    match (method, path.as_str()) {
        (Method::GET, "stats") => {
            let mut v = shared.stats.lock().unwrap().to_json();
            v["delay_ms"] = shared.delay_ms.load(Ordering::Relaxed).into();
            v["rules"] = shared.rules.lock().unwrap().iter().map(Rule::to_json).collect();
            json(StatusCode::OK, &v)
        }
        (Method::GET, "calls") => {
            let t = shared.timeline.lock().unwrap();
            let list: Vec<serde_json::Value> =
                t.iter().map(|c| serde_json::json!({"op": c.op, "start_us": c.start_us, "end_us": c.end_us, "status": c.status, "fault": c.fault.map(|f| f.as_str())})).collect();
            json(StatusCode::OK, &serde_json::Value::Array(list))
        }
        (Method::GET, "requests") => {
            let want = query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("op="))).map(ops::percent_decode);
            let r = shared.requests.lock().unwrap();
            let list: Vec<serde_json::Value> = r
                .list
                .iter()
                .filter(|(op, _)| want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(op)))
                .map(|(op, b)| serde_json::json!({"op": op, "body": String::from_utf8_lossy(b)}))
                .collect();
            json(StatusCode::OK, &serde_json::Value::Array(list))
        }
        (Method::POST, "reset") => {
            *shared.stats.lock().unwrap() = Stats::default();
            shared.timeline.lock().unwrap().clear();
            *shared.requests.lock().unwrap() = Recorded::default();
            json(StatusCode::OK, &serde_json::json!({"reset": true}))
        }
        (Method::GET, "faults") => json(StatusCode::OK, &serde_json::Value::Array(shared.rules.lock().unwrap().iter().map(Rule::to_json).collect())),
        (Method::POST, "faults") => {
            let v = match parse_body() {
                Ok(v) => v,
                Err(e) => return bad(e),
            };
            let (list, seed) = match &v {
                serde_json::Value::Array(a) => (a.clone(), None),
                serde_json::Value::Object(o) => (o.get("rules").and_then(|r| r.as_array()).cloned().unwrap_or_default(), o.get("seed").and_then(|s| s.as_u64())),
                _ => return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": "expected a list of rules or {\"rules\": [...], \"seed\": n}"})),
            };
            let mut rules = Vec::with_capacity(list.len());
            for r in &list {
                match Rule::from_json(r) {
                    Ok(r) => rules.push(r),
                    Err(e) => return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e})),
                }
            }
            if let Some(s) = seed {
                shared.seed.store(s, Ordering::Relaxed);
            }
            let seed = shared.seed.load(Ordering::Relaxed);
            let out: Vec<serde_json::Value> = rules.iter().map(Rule::to_json).collect();
            *shared.rules.lock().unwrap() = rules;
            *shared.outage.lock().unwrap() = None;
            *shared.rng.lock().unwrap() = fastrand::Rng::with_seed(seed);
            json(StatusCode::OK, &serde_json::json!({"rules": out, "seed": seed}))
        }
        (Method::GET, "delay") => json(StatusCode::OK, &serde_json::json!({"ms": shared.delay_ms.load(Ordering::Relaxed)})),
        (Method::POST, "delay") => {
            let v = match parse_body() {
                Ok(v) => v,
                Err(e) => return bad(e),
            };
            let Some(ms) = v.as_u64().or_else(|| v.get("ms").and_then(|m| m.as_u64())) else {
                return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": "expected {\"ms\": n} or n"}));
            };
            shared.delay_ms.store(ms, Ordering::Relaxed);
            json(StatusCode::OK, &serde_json::json!({"ms": ms}))
        }
        (m, p) => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": format!("no control endpoint {m} /__proxy/{p}; try GET stats, GET calls, GET requests, POST reset, GET/POST faults, GET/POST delay")}),
        ),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    std::process::exit(rt.block_on(run(args)));
}

async fn run(args: Args) -> i32 {
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cxflow-awsproxy: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return 1;
        }
    };
    let addr = listener.local_addr().expect("local address");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
    let shared = Arc::new(Shared {
        upstream: args.upstream.clone(),
        client,
        rules: Mutex::new(args.faults),
        seed: AtomicU64::new(args.seed),
        rng: Mutex::new(fastrand::Rng::with_seed(args.seed)),
        delay_ms: AtomicU64::new(args.delay_ms),
        stats: Mutex::new(Stats::default()),
        next_id: AtomicU64::new(1),
        epoch: std::time::Instant::now(),
        timeline: Mutex::new(Vec::new()),
        requests: Mutex::new(Recorded::default()),
        outage: Mutex::new(None),
    });
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {addr}");
        let _ = out.flush();
    }
    eprintln!("cxflow-awsproxy: forwarding {addr} -> {}", args.upstream);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cxflow-awsproxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            // An error here is a reset fault or a client that went away.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn upstream_must_be_loopback_http() {
        assert_eq!(loopback_upstream("http://127.0.0.1:5000").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(loopback_upstream("http://127.1.2.3:5000/").unwrap(), "http://127.1.2.3:5000");
        assert_eq!(loopback_upstream("http://localhost:80").unwrap(), "http://localhost:80");
        assert_eq!(loopback_upstream("http://[::1]:5000").unwrap(), "http://[::1]:5000");
        for bad in
            ["http://10.0.0.1:5000", "http://192.168.1.1:80", "http://example.com:80", "https://127.0.0.1:443", "http://127.0.0.1", "http://127.0.0.1:5000/x", "127.0.0.1:5000"]
        {
            assert!(loopback_upstream(bad).is_err(), "{bad} refused");
        }
        assert!(loopback_upstream("http://8.8.8.8:53").unwrap_err().contains("non-loopback"));
    }

    #[test]
    fn arguments_parse() {
        let a = args(&[
            "--upstream",
            "http://127.0.0.1:5000",
            "--port=0",
            "--delay-ms",
            "50",
            "--fault",
            "op=*,kind=throttle,rate=0.1",
            "--fault=op=ecs:CreateService,kind=500",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!((a.port, a.delay_ms, a.seed, a.faults.len()), (0, 50, 9, 2));
        assert_eq!(a.faults[1].kind, FaultKind::Internal);
        assert!(args(&["--port", "1"]).unwrap_err().contains("--upstream is required"));
        assert!(args(&["--upstream", "http://1.2.3.4:5"]).is_err());
        assert!(args(&["--upstream", "http://127.0.0.1:5", "--fault", "op=*"]).is_err());
        assert!(args(&["--upstream", "http://127.0.0.1:5", "--bogus"]).unwrap_err().contains("unknown argument"));
        assert!(args(&["--upstream"]).unwrap_err().contains("needs a value"));
    }
}
