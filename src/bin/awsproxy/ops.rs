//! What the proxy knows about AWS requests: which operation a request is
//! (service from the SigV4 credential scope, operation from the protocol's own
//! marker), fault rules and how they match, and protocol-correct error bodies.
//! Pure functions only; the server is in `cxflow-awsproxy.rs`.

use std::collections::BTreeMap;
use std::fmt;

/// The wire protocol a request speaks, which decides the shape of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson1_0/1_1: `X-Amz-Target: <Prefix>.<Operation>` (ECS, SSM, Logs, ECR, ACM, Service Discovery).
    Json,
    /// awsQuery: `Action=<Operation>` form field (IAM, ELBv2, STS).
    Query,
    /// ec2Query: like awsQuery with EC2's own error envelope.
    Ec2,
    /// restXml (Route53): operation from method and path.
    RestXml,
    /// restJson1: operation from method and path.
    RestJson,
    /// smithy rpcv2Cbor: `/service/<Service>/operation/<Operation>`.
    Cbor,
}

/// One AWS call as the proxy counts it: `service:Operation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub service: String,
    pub name: String,
    pub protocol: Protocol,
}

impl Operation {
    pub fn key(&self) -> String {
        format!("{}:{}", self.service, self.name)
    }
}

/// The signing name from a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, SignedHeaders=..., Signature=...`.
pub fn service_from_authorization(auth: &str) -> Option<String> {
    let cred = auth.split(['\u{20}', ',']).find_map(|p| p.trim().strip_prefix("Credential="))?;
    service_from_scope(cred)
}

/// `<key>/<date>/<region>/<service>/aws4_request` → `<service>`.
fn service_from_scope(cred: &str) -> Option<String> {
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() >= 5 && parts[parts.len() - 1] == "aws4_request" {
        let s = parts[parts.len() - 2];
        if !s.is_empty() {
            return Some(s.to_ascii_lowercase());
        }
    }
    None
}

/// The value of `name` in an `application/x-www-form-urlencoded` string.
pub fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a request the classifier looks at.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header lookup by lowercase name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// Classify a request as one AWS operation.
pub fn classify(req: &RequestView<'_>) -> Operation {
    let service = (req.header)("authorization")
        .and_then(|a| service_from_authorization(&a))
        .or_else(|| req.query.and_then(|q| form_value(q, "X-Amz-Credential")).and_then(|c| service_from_scope(&c)))
        .unwrap_or_else(|| "unknown".to_string());

    if let Some(target) = (req.header)("x-amz-target") {
        let name = target.rsplit('.').next().unwrap_or(&target).to_string();
        return Operation { service, name, protocol: Protocol::Json };
    }
    if (req.header)("smithy-protocol").is_some_and(|p| p.eq_ignore_ascii_case("rpc-v2-cbor")) {
        let segs: Vec<&str> = req.path.split('/').collect();
        if let Some(i) = segs.iter().position(|s| *s == "operation") {
            if let Some(op) = segs.get(i + 1) {
                return Operation { service, name: op.to_string(), protocol: Protocol::Cbor };
            }
        }
    }
    let form = (req.header)("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let action = if form { form_value(&String::from_utf8_lossy(req.body), "Action") } else { None }.or_else(|| req.query.and_then(|q| form_value(q, "Action")));
    if let Some(name) = action {
        let protocol = if service == "ec2" { Protocol::Ec2 } else { Protocol::Query };
        return Operation { service, name, protocol };
    }
    let protocol = if service == "route53" || service == "s3" { Protocol::RestXml } else { Protocol::RestJson };
    let name = if service == "route53" { route53_operation(req.method, req.path) } else { None }.unwrap_or_else(|| format!("{} {}", req.method, normalize_path(req.path)));
    Operation { service, name, protocol }
}

/// Route53's REST operations by method and path (API version 2013-04-01).
fn route53_operation(method: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/2013-04-01/")?;
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let name = match (method, segs.as_slice()) {
        ("POST", ["hostedzone"]) => "CreateHostedZone",
        ("GET", ["hostedzone"]) => "ListHostedZones",
        ("GET", ["hostedzonesbyname"]) => "ListHostedZonesByName",
        ("GET", ["hostedzonesbyvpc"]) => "ListHostedZonesByVPC",
        ("GET", ["hostedzonecount"]) => "GetHostedZoneCount",
        ("GET", ["hostedzone", _]) => "GetHostedZone",
        ("POST", ["hostedzone", _]) => "UpdateHostedZoneComment",
        ("DELETE", ["hostedzone", _]) => "DeleteHostedZone",
        ("POST", ["hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", ["hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("POST", ["hostedzone", _, "associatevpc"]) => "AssociateVPCWithHostedZone",
        ("POST", ["hostedzone", _, "disassociatevpc"]) => "DisassociateVPCFromHostedZone",
        ("GET", ["hostedzone", _, "dnssec"]) => "GetDNSSEC",
        ("GET", ["change", _]) => "GetChange",
        ("POST", ["tags", _, _]) => "ChangeTagsForResource",
        ("GET", ["tags", _, _]) => "ListTagsForResource",
        ("POST", ["tags", _]) => "ListTagsForResources",
        ("POST", ["healthcheck"]) => "CreateHealthCheck",
        ("GET", ["healthcheck"]) => "ListHealthChecks",
        ("GET", ["healthcheck", _]) => "GetHealthCheck",
        ("POST", ["healthcheck", _]) => "UpdateHealthCheck",
        ("DELETE", ["healthcheck", _]) => "DeleteHealthCheck",
        ("GET", ["delegationset"]) => "ListReusableDelegationSets",
        ("GET", ["delegationset", _]) => "GetReusableDelegationSet",
        ("POST", ["queryloggingconfig"]) => "CreateQueryLoggingConfig",
        ("GET", ["queryloggingconfig"]) => "ListQueryLoggingConfigs",
        ("GET", ["queryloggingconfig", _]) => "GetQueryLoggingConfig",
        ("DELETE", ["queryloggingconfig", _]) => "DeleteQueryLoggingConfig",
        _ => return None,
    };
    Some(name.to_string())
}

/// A path with identifier-like segments replaced by `{id}`, so REST calls on
/// different objects count as one operation.
pub fn normalize_path(path: &str) -> String {
    let segs: Vec<String> = path
        .split('/')
        .map(|s| {
            let has_digit = s.chars().any(|c| c.is_ascii_digit());
            let date_like = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') && s.as_bytes().get(7) == Some(&b'-');
            if s.is_empty() || date_like || !has_digit { s.to_string() } else { "{id}".to_string() }
        })
        .collect();
    let p = segs.join("/");
    if p.is_empty() { "/".to_string() } else { p }
}

// ---------------------------------------------------------------------------
// Fault rules

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The protocol's throttling error.
    Throttle,
    /// HTTP 500 with the protocol's internal-error body.
    Internal,
    /// HTTP 503 with the protocol's unavailable body.
    Unavailable,
    /// Close the connection without answering.
    Reset,
    /// Forward the request, then close the connection instead of relaying
    /// the answer: the call took effect but the client never learns it did.
    Lost,
    /// Answer normally after an extra delay.
    Slow,
    /// A validation error that quotes the request's `Value` back, as AWS
    /// validation errors do ("Value '...' at 'value' failed to satisfy
    /// constraint"): for checking that echoed input never leaks.
    Echo,
    /// The caller's policy does not allow the operation (AWS's access-denied error of the protocol).
    Denied,
}

impl FaultKind {
    pub fn parse(s: &str) -> Result<FaultKind, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "throttle" | "throttling" => FaultKind::Throttle,
            "500" | "internal" => FaultKind::Internal,
            "503" | "unavailable" => FaultKind::Unavailable,
            "reset" => FaultKind::Reset,
            "lost" => FaultKind::Lost,
            "slow" => FaultKind::Slow,
            "echo" => FaultKind::Echo,
            "denied" => FaultKind::Denied,
            other => return Err(format!("unknown fault kind {other:?} (throttle, 500, 503, reset, lost, slow, echo, denied)")),
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Reset => "reset",
            FaultKind::Lost => "lost",
            FaultKind::Slow => "slow",
            FaultKind::Echo => "echo",
            FaultKind::Denied => "denied",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extra delay of a `slow` fault when the rule names none.
pub const DEFAULT_SLOW_MS: u64 = 1000;

/// One fault rule: which operations, what fault, how often.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// `*`, `service:*`, `*:Operation` or `service:Operation`; alternatives joined by `|`.
    pub op: String,
    pub kind: FaultKind,
    /// Probability in [0, 1] that a matching call gets the fault.
    pub rate: f64,
    /// At most this many injections (then the rule is spent).
    pub count: Option<u64>,
    /// Extra delay for `slow`.
    pub ms: u64,
    /// Injections so far.
    pub fired: u64,
    /// Once the rule fires, every later call (any operation) gets its fault: an outage.
    pub outage: bool,
}

impl Rule {
    /// Parse `op=ecs:CreateService,kind=500,rate=1.0[,count=N][,ms=N]`.
    pub fn parse(spec: &str) -> Result<Rule, String> {
        let mut op = None;
        let mut kind = None;
        let mut rate = 1.0;
        let mut count = None;
        let mut ms = DEFAULT_SLOW_MS;
        let mut outage = false;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("fault rule part {part:?} is not key=value"))?;
            match k.trim() {
                "op" => op = Some(v.trim().to_string()),
                "kind" => kind = Some(FaultKind::parse(v)?),
                "rate" => rate = v.trim().parse::<f64>().map_err(|_| format!("rate {v:?} is not a number"))?,
                "count" | "times" => count = Some(v.trim().parse::<u64>().map_err(|_| format!("count {v:?} is not a whole number"))?),
                "ms" | "delay_ms" => ms = v.trim().parse::<u64>().map_err(|_| format!("ms {v:?} is not a whole number"))?,
                "outage" => outage = matches!(v.trim(), "1" | "true" | "yes"),
                other => return Err(format!("unknown fault rule key {other:?} (op, kind, rate, count, ms, outage)")),
            }
        }
        let mut r = Rule::new(op.ok_or("fault rule needs op=")?, kind.ok_or("fault rule needs kind=")?, rate, count, ms)?;
        r.outage = outage;
        Ok(r)
    }

    pub fn new(op: String, kind: FaultKind, rate: f64, count: Option<u64>, ms: u64) -> Result<Rule, String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("rate {rate} is not between 0 and 1"));
        }
        if op.is_empty() {
            return Err("op is empty".into());
        }
        Ok(Rule { op, kind, rate, count, ms, fired: 0, outage: false })
    }

    /// A rule from its JSON form: `{"op":"ecs:CreateService","kind":"500","rate":1.0,"count":2,"ms":100}`,
    /// or a string in the command-line form.
    pub fn from_json(v: &serde_json::Value) -> Result<Rule, String> {
        if let Some(s) = v.as_str() {
            return Rule::parse(s);
        }
        let o = v.as_object().ok_or("a fault rule is an object or a string")?;
        for k in o.keys() {
            if !["op", "kind", "rate", "count", "times", "ms", "delay_ms", "fired", "outage"].contains(&k.as_str()) {
                return Err(format!("unknown fault rule key {k:?}"));
            }
        }
        let op = o.get("op").and_then(|x| x.as_str()).ok_or("fault rule needs \"op\"")?.to_string();
        let kind = match o.get("kind") {
            Some(serde_json::Value::String(s)) => FaultKind::parse(s)?,
            Some(serde_json::Value::Number(n)) => FaultKind::parse(&n.to_string())?,
            _ => return Err("fault rule needs \"kind\"".into()),
        };
        let rate = match o.get("rate") {
            None => 1.0,
            Some(x) => x.as_f64().ok_or("\"rate\" is a number")?,
        };
        let count = match o.get("count").or_else(|| o.get("times")) {
            None | Some(serde_json::Value::Null) => None,
            Some(x) => Some(x.as_u64().ok_or("\"count\" is a whole number")?),
        };
        let ms = match o.get("ms").or_else(|| o.get("delay_ms")) {
            None => DEFAULT_SLOW_MS,
            Some(x) => x.as_u64().ok_or("\"ms\" is a whole number")?,
        };
        let mut r = Rule::new(op, kind, rate, count, ms)?;
        r.outage = o.get("outage").and_then(|x| x.as_bool()).unwrap_or(false);
        Ok(r)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"op": self.op, "kind": self.kind.as_str(), "rate": self.rate, "count": self.count, "ms": self.ms, "fired": self.fired, "outage": self.outage})
    }

    /// Whether the rule's operation pattern covers `op`.
    pub fn matches(&self, op: &Operation) -> bool {
        self.op.split('|').map(str::trim).any(|pat| pattern_matches(pat, op))
    }

    pub fn spent(&self) -> bool {
        self.count.is_some_and(|c| self.fired >= c)
    }
}

fn pattern_matches(pat: &str, op: &Operation) -> bool {
    if pat == "*" {
        return true;
    }
    let (svc, name) = pat.split_once(':').unwrap_or((pat, "*"));
    (svc == "*" || svc.eq_ignore_ascii_case(&op.service)) && (name == "*" || name.eq_ignore_ascii_case(&op.name))
}

/// Pick the fault for a call: the first live rule that matches and whose draw
/// (`draw()` in [0, 1)) falls under its rate. A draw is taken for every
/// matching live rule in order, so a seeded generator gives the same faults
/// for the same sequence of calls.
/// The third value says whether the rule starts an outage.
pub fn pick_fault(rules: &mut [Rule], op: &Operation, mut draw: impl FnMut() -> f64) -> Option<(FaultKind, u64, bool)> {
    for r in rules.iter_mut() {
        if r.spent() || !r.matches(op) {
            continue;
        }
        if draw() < r.rate {
            r.fired += 1;
            return Some((r.kind, r.ms, r.outage));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Error responses

/// Status, headers and body of a protocol-correct error answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The `Value` a request carries (JSON member or form field), for `echo` faults.
pub fn request_value(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(text) {
        return m.iter().find(|(k, _)| k.eq_ignore_ascii_case("value")).and_then(|(_, v)| v.as_str().map(str::to_string));
    }
    form_value(text, "Value")
}

/// The answer for `kind` (not `reset`, `lost` or `slow`, which do not answer with an error).
/// `echo` quotes `value` (the request's) the way AWS validation errors quote input.
pub fn error_answer(kind: FaultKind, op: &Operation, request_id: &str, value: Option<&str>) -> Option<ErrorAnswer> {
    let echoed;
    let (status, code, message, sender) = match (kind, op.protocol) {
        (FaultKind::Echo, _) => {
            echoed = format!(
                "1 validation error detected: Value '{}' at 'value' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[^\\s]+$",
                value.unwrap_or_default()
            );
            (400, "ValidationException", echoed.as_str(), true)
        }
        (FaultKind::Denied, Protocol::Ec2) => (403, "UnauthorizedOperation", "You are not authorized to perform this operation. (injected by cxflow-awsproxy)", true),
        (FaultKind::Denied, Protocol::Json | Protocol::RestJson | Protocol::Cbor) => {
            (400, "AccessDeniedException", "User is not authorized to perform this action (injected by cxflow-awsproxy)", true)
        }
        (FaultKind::Denied, _) => (403, "AccessDenied", "User is not authorized to perform this action (injected by cxflow-awsproxy)", true),
        (FaultKind::Throttle, Protocol::Ec2) => (503, "RequestLimitExceeded", "Request limit exceeded.", true),
        (FaultKind::Throttle, Protocol::Json | Protocol::RestJson | Protocol::Cbor) => (400, "ThrottlingException", "Rate exceeded", true),
        (FaultKind::Throttle, _) => (400, "Throttling", "Rate exceeded", true),
        (FaultKind::Internal, Protocol::Ec2) => (500, "InternalError", "An internal error has occurred", false),
        (FaultKind::Internal, _) => (500, "InternalFailure", "The request processing has failed because of an unknown error (injected by cxflow-awsproxy)", false),
        (FaultKind::Unavailable, Protocol::Ec2) => (503, "Unavailable", "The server is overloaded and can't handle the request", false),
        (FaultKind::Unavailable, _) => (503, "ServiceUnavailable", "Service is unavailable (injected by cxflow-awsproxy)", false),
        (FaultKind::Reset | FaultKind::Lost | FaultKind::Slow, _) => return None,
    };
    let rid = request_id.to_string();
    let ans = match op.protocol {
        Protocol::Json | Protocol::RestJson | Protocol::Cbor => ErrorAnswer {
            status,
            headers: vec![
                ("content-type", if op.protocol == Protocol::Json { "application/x-amz-json-1.1" } else { "application/json" }.to_string()),
                ("x-amzn-errortype", format!("{code}:")),
                ("x-amzn-requestid", rid),
            ],
            body: serde_json::json!({"__type": code, "message": message}).to_string(),
        },
        Protocol::Ec2 => ErrorAnswer {
            status,
            headers: vec![("content-type", "text/xml;charset=UTF-8".to_string())],
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
            ),
        },
        Protocol::Query | Protocol::RestXml => {
            let ty = if sender { "Sender" } else { "Receiver" };
            ErrorAnswer {
                status,
                headers: vec![("content-type", "text/xml".to_string()), ("x-amzn-requestid", rid.clone())],
                body: format!("<ErrorResponse><Error><Type>{ty}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"),
            }
        }
    };
    Some(ans)
}

// ---------------------------------------------------------------------------
// Counters

/// Calls and faults seen since the last reset.
#[derive(Default, Debug)]
pub struct Stats {
    pub total: u64,
    pub by_operation: BTreeMap<String, u64>,
    pub faults_total: u64,
    pub faults_by_kind: BTreeMap<String, u64>,
    pub faults_by_operation: BTreeMap<String, BTreeMap<String, u64>>,
    pub upstream_errors: u64,
}

impl Stats {
    pub fn call(&mut self, op: &str) {
        self.total += 1;
        *self.by_operation.entry(op.to_string()).or_default() += 1;
    }
    pub fn fault(&mut self, op: &str, kind: FaultKind) {
        self.faults_total += 1;
        *self.faults_by_kind.entry(kind.as_str().to_string()).or_default() += 1;
        *self.faults_by_operation.entry(op.to_string()).or_default().entry(kind.as_str().to_string()).or_default() += 1;
    }
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "total": self.total,
            "by_operation": self.by_operation,
            "faults": {
                "total": self.faults_total,
                "by_kind": self.faults_by_kind,
                "by_operation": self.faults_by_operation,
            },
            "upstream_errors": self.upstream_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_with(method: &str, path: &str, query: Option<&str>, headers: &[(&str, &str)], body: &str) -> Operation {
        let owned: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        let f = move |name: &str| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        classify(&RequestView { method, path, query, header: &f, body: body.as_bytes() })
    }

    fn auth(service: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
    }

    #[test]
    fn service_comes_from_the_credential_scope() {
        assert_eq!(service_from_authorization(&auth("ssm")).as_deref(), Some("ssm"));
        assert_eq!(service_from_authorization(&auth("elasticloadbalancing")).as_deref(), Some("elasticloadbalancing"));
        assert_eq!(
            service_from_authorization("AWS4-HMAC-SHA256 Credential=AK/20250101/eu-west-2/servicediscovery/aws4_request,SignedHeaders=host,Signature=x").as_deref(),
            Some("servicediscovery")
        );
        assert_eq!(service_from_authorization("Bearer abc"), None);
        assert_eq!(service_from_authorization("AWS4-HMAC-SHA256 Credential=AK/20250101/ssm"), None);
    }

    #[test]
    fn json_protocols_use_the_target_header() {
        for (svc, target, want) in [
            ("ecs", "AmazonEC2ContainerServiceV20141113.CreateService", "CreateService"),
            ("ssm", "AmazonSSM.GetParameters", "GetParameters"),
            ("logs", "Logs_20140328.CreateLogGroup", "CreateLogGroup"),
            ("ecr", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories", "DescribeRepositories"),
            ("acm", "CertificateManager.RequestCertificate", "RequestCertificate"),
            ("servicediscovery", "Route53AutoNaming_v20170314.CreateService", "CreateService"),
        ] {
            let a = auth(svc);
            let op = classify_with("POST", "/", None, &[("Authorization", &a), ("X-Amz-Target", target), ("Content-Type", "application/x-amz-json-1.1")], "{}");
            assert_eq!(op, Operation { service: svc.into(), name: want.into(), protocol: Protocol::Json });
            assert_eq!(op.key(), format!("{svc}:{want}"));
        }
    }

    #[test]
    fn query_protocols_use_the_action_field() {
        let a = auth("ec2");
        let op = classify_with(
            "POST",
            "/",
            None,
            &[("Authorization", &a), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            "Action=DescribeVpcs&Version=2016-11-15",
        );
        assert_eq!(op, Operation { service: "ec2".into(), name: "DescribeVpcs".into(), protocol: Protocol::Ec2 });
        let a = auth("iam");
        let op =
            classify_with("POST", "/", None, &[("Authorization", &a), ("Content-Type", "application/x-www-form-urlencoded")], "Version=2010-05-08&Action=ListRoles&MaxItems=10");
        assert_eq!(op.key(), "iam:ListRoles");
        assert_eq!(op.protocol, Protocol::Query);
        let a = auth("sts");
        let op = classify_with("GET", "/", Some("Action=GetCallerIdentity&Version=2011-06-15"), &[("Authorization", &a)], "");
        assert_eq!(op.key(), "sts:GetCallerIdentity");
        let a = auth("elasticloadbalancing");
        let op = classify_with("POST", "/", None, &[("Authorization", &a), ("Content-Type", "application/x-www-form-urlencoded")], "Action=CreateTargetGroup&Name=a%2Bb");
        assert_eq!(op.key(), "elasticloadbalancing:CreateTargetGroup");
    }

    #[test]
    fn route53_rest_calls_map_to_operation_names() {
        let a = auth("route53");
        let h = [("Authorization", a.as_str())];
        assert_eq!(classify_with("POST", "/2013-04-01/hostedzone", None, &h, "<x/>").key(), "route53:CreateHostedZone");
        assert_eq!(classify_with("GET", "/2013-04-01/hostedzone/Z0123456789ABC", None, &h, "").key(), "route53:GetHostedZone");
        assert_eq!(classify_with("POST", "/2013-04-01/hostedzone/Z0123456789ABC/rrset/", None, &h, "").key(), "route53:ChangeResourceRecordSets");
        assert_eq!(classify_with("GET", "/2013-04-01/hostedzone/Z0123456789ABC/rrset", Some("maxitems=100"), &h, "").key(), "route53:ListResourceRecordSets");
        assert_eq!(classify_with("GET", "/2013-04-01/change/C12345", None, &h, "").key(), "route53:GetChange");
        assert_eq!(classify_with("GET", "/2013-04-01/tags/hostedzone/Z0123", None, &h, "").key(), "route53:ListTagsForResource");
        let op = classify_with("GET", "/2013-04-01/trafficpolicy/abc123/7", None, &h, "");
        assert_eq!(op.key(), "route53:GET /2013-04-01/trafficpolicy/{id}/{id}");
        assert_eq!(op.protocol, Protocol::RestXml);
    }

    #[test]
    fn unsigned_and_cbor_requests() {
        let op = classify_with("GET", "/", None, &[], "");
        assert_eq!(op.key(), "unknown:GET /");
        let a = auth("monitoring");
        let op = classify_with("POST", "/service/GraniteServiceVersion20100801/operation/PutMetricData", None, &[("Authorization", &a), ("smithy-protocol", "rpc-v2-cbor")], "");
        assert_eq!(op.key(), "monitoring:PutMetricData");
        assert_eq!(op.protocol, Protocol::Cbor);
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_value("a=1&Action=Describe%20Vpcs&b", "Action").as_deref(), Some("Describe Vpcs"));
        assert_eq!(form_value("a=1+2", "a").as_deref(), Some("1 2"));
        assert_eq!(form_value("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(form_value("a=%4", "a").as_deref(), Some("%4"));
        assert_eq!(form_value("a=1", "b"), None);
    }

    fn op(svc: &str, name: &str) -> Operation {
        Operation { service: svc.into(), name: name.into(), protocol: Protocol::Json }
    }

    #[test]
    fn rules_parse_from_the_command_line_form() {
        let r = Rule::parse("op=ecs:CreateService,kind=500,rate=1.0").unwrap();
        assert_eq!((r.op.as_str(), r.kind, r.rate, r.count), ("ecs:CreateService", FaultKind::Internal, 1.0, None));
        let r = Rule::parse("op=*, kind=throttle, rate=0.1, count=3").unwrap();
        assert_eq!((r.kind, r.rate, r.count), (FaultKind::Throttle, 0.1, Some(3)));
        let r = Rule::parse("op=ssm:*,kind=slow,ms=250").unwrap();
        assert_eq!((r.kind, r.ms), (FaultKind::Slow, 250));
        assert_eq!(Rule::parse("op=*,kind=503").unwrap().rate, 1.0);
        assert!(Rule::parse("op=*,kind=teapot").unwrap_err().contains("unknown fault kind"));
        assert!(Rule::parse("op=*,kind=500,rate=2").unwrap_err().contains("between 0 and 1"));
        assert!(Rule::parse("kind=500").unwrap_err().contains("op="));
        assert!(Rule::parse("op=*,kind=500,colour=red").unwrap_err().contains("colour"));
        assert!(Rule::parse("op=*,kind").is_err());
    }

    #[test]
    fn rules_parse_from_json() {
        let r = Rule::from_json(&serde_json::json!({"op": "iam:ListRoles", "kind": 503, "rate": 0.5, "count": 1})).unwrap();
        assert_eq!((r.kind, r.rate, r.count), (FaultKind::Unavailable, 0.5, Some(1)));
        let r = Rule::from_json(&serde_json::json!("op=*,kind=reset")).unwrap();
        assert_eq!(r.kind, FaultKind::Reset);
        assert!(Rule::from_json(&serde_json::json!({"op": "*"})).is_err());
        assert!(Rule::from_json(&serde_json::json!({"op": "*", "kind": "500", "extra": 1})).is_err());
        assert_eq!(Rule::from_json(&r.to_json()).unwrap().kind, FaultKind::Reset);
    }

    #[test]
    fn patterns_match_service_and_operation() {
        let r = |p: &str| Rule::parse(&format!("op={p},kind=500")).unwrap();
        let create = op("ecs", "CreateService");
        assert!(r("*").matches(&create));
        assert!(r("ecs:*").matches(&create));
        assert!(r("ecs").matches(&create));
        assert!(r("*:CreateService").matches(&create));
        assert!(r("ecs:CreateService").matches(&create));
        assert!(r("ECS:createservice").matches(&create));
        assert!(r("ssm:PutParameter|ecs:CreateService").matches(&create));
        assert!(!r("ecs:UpdateService").matches(&create));
        assert!(!r("servicediscovery:CreateService").matches(&create));
        assert!(!r("ssm:*").matches(&create));
    }

    #[test]
    fn pick_fault_respects_order_rate_and_count() {
        let mut rules = vec![Rule::parse("op=ecs:CreateService,kind=500,rate=1.0,count=2").unwrap(), Rule::parse("op=*,kind=throttle,rate=0.5").unwrap()];
        let create = op("ecs", "CreateService");
        let other = op("ssm", "GetParameter");
        // rate 1.0 always fires, until the count is spent; then the next rule draws.
        assert_eq!(pick_fault(&mut rules, &create, || 0.99), Some((FaultKind::Internal, DEFAULT_SLOW_MS, false)));
        assert_eq!(pick_fault(&mut rules, &create, || 0.99), Some((FaultKind::Internal, DEFAULT_SLOW_MS, false)));
        assert_eq!(pick_fault(&mut rules, &create, || 0.99), None);
        assert_eq!(pick_fault(&mut rules, &create, || 0.1).map(|f| f.0), Some(FaultKind::Throttle));
        assert_eq!(pick_fault(&mut rules, &other, || 0.5), None, "draw equal to the rate does not fire");
        assert_eq!(pick_fault(&mut rules, &other, || 0.49).map(|f| f.0), Some(FaultKind::Throttle));
        assert_eq!(rules[0].fired, 2);
        assert_eq!(rules[1].fired, 2);
        let mut none: Vec<Rule> = vec![Rule::parse("op=*,kind=500,rate=0").unwrap()];
        assert_eq!(pick_fault(&mut none, &create, || 0.0), None);
    }

    #[test]
    fn seeded_draws_are_reproducible() {
        let run = |seed: u64| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut rules = vec![Rule::parse("op=*,kind=throttle,rate=0.3").unwrap()];
            (0..200).map(|_| pick_fault(&mut rules, &op("ssm", "GetParameter"), || rng.f64()).is_some()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|x| **x).count();
        assert!((30..=90).contains(&hits), "about 30% of 200: {hits}");
    }

    #[test]
    fn error_answers_follow_each_protocol() {
        let json = error_answer(FaultKind::Throttle, &op("ecs", "CreateService"), "r1", None).unwrap();
        assert_eq!(json.status, 400);
        let body: serde_json::Value = serde_json::from_str(&json.body).unwrap();
        assert_eq!(body, serde_json::json!({"__type": "ThrottlingException", "message": "Rate exceeded"}));
        assert!(json.headers.iter().any(|(k, v)| *k == "x-amzn-errortype" && v.starts_with("ThrottlingException")));

        let q = Operation { service: "iam".into(), name: "ListRoles".into(), protocol: Protocol::Query };
        let a = error_answer(FaultKind::Throttle, &q, "r2", None).unwrap();
        assert_eq!(a.status, 400);
        assert!(a.body.contains("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"), "{}", a.body);

        let e = Operation { service: "ec2".into(), name: "DescribeVpcs".into(), protocol: Protocol::Ec2 };
        let a = error_answer(FaultKind::Throttle, &e, "r3", None).unwrap();
        assert_eq!(a.status, 503);
        assert!(a.body.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"), "{}", a.body);
        assert!(a.body.contains("<RequestID>r3</RequestID>"));

        let r = Operation { service: "route53".into(), name: "GetChange".into(), protocol: Protocol::RestXml };
        let a = error_answer(FaultKind::Throttle, &r, "r4", None).unwrap();
        assert!(a.body.contains("<Code>Throttling</Code>"));

        assert_eq!(error_answer(FaultKind::Internal, &q, "r", None).unwrap().status, 500);
        assert!(error_answer(FaultKind::Internal, &q, "r", None).unwrap().body.contains("<Type>Receiver</Type>"));
        assert_eq!(error_answer(FaultKind::Unavailable, &e, "r", None).unwrap().status, 503);
        assert_eq!(error_answer(FaultKind::Unavailable, &op("ssm", "X"), "r", None).unwrap().status, 503);
        assert!(error_answer(FaultKind::Reset, &q, "r", None).is_none());
        let echo = error_answer(FaultKind::Echo, &op("ssm", "PutParameter"), "r", Some("it's-secret")).unwrap();
        assert_eq!(echo.status, 400);
        assert!(echo.body.contains("ValidationException") && echo.body.contains("Value 'it's-secret' at 'value'"), "{}", echo.body);
        assert_eq!(request_value(br#"{"Name":"/a","Value":"v1"}"#).as_deref(), Some("v1"));
        assert_eq!(request_value(b"Action=X&Value=v%202").as_deref(), Some("v 2"));
        assert!(error_answer(FaultKind::Slow, &q, "r", None).is_none());
        let denied = error_answer(FaultKind::Denied, &q, "r", None).unwrap();
        assert_eq!(denied.status, 403);
        assert!(denied.body.contains("<Code>AccessDenied</Code>") && denied.body.contains("<Type>Sender</Type>"), "{}", denied.body);
        assert!(error_answer(FaultKind::Denied, &e, "r", None).unwrap().body.contains("<Code>UnauthorizedOperation</Code>"));
        assert!(error_answer(FaultKind::Denied, &op("ssm", "X"), "r", None).unwrap().body.contains("AccessDeniedException"));
        assert_eq!(FaultKind::parse("denied").unwrap(), FaultKind::Denied);
    }

    #[test]
    fn stats_count_calls_and_faults() {
        let mut s = Stats::default();
        s.call("ssm:PutParameter");
        s.call("ssm:PutParameter");
        s.call("ec2:DescribeVpcs");
        s.fault("ssm:PutParameter", FaultKind::Throttle);
        let j = s.to_json();
        assert_eq!(j["total"], 3);
        assert_eq!(j["by_operation"]["ssm:PutParameter"], 2);
        assert_eq!(j["faults"]["by_kind"]["throttle"], 1);
        assert_eq!(j["faults"]["by_operation"]["ssm:PutParameter"]["throttle"], 1);
    }
}
