//! Turning SDK errors into messages a person can act on, without ever
//! relaying a value the request carried (AWS validation errors echo input).

use std::fmt;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

/// A failed AWS call: which operation, the error code (when AWS sent one) and a message.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub operation: String,
    pub code: Option<String>,
    pub message: String,
    /// True when the request never got an answer (connection refused, DNS, timeout).
    pub unreachable: bool,
}

impl AwsError {
    pub fn is_code(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
    /// The usual "does not exist" codes across services.
    pub fn is_not_found(&self) -> bool {
        self.is_code(&[
            "ParameterNotFound",
            "ResourceNotFoundException",
            "NoSuchEntity",
            "ClusterNotFoundException",
            "ServiceNotFoundException",
            "TargetGroupNotFound",
            "RuleNotFound",
            "ListenerNotFound",
            "LoadBalancerNotFound",
            "InvalidGroup.NotFound",
            "InvalidVpcID.NotFound",
            "InvalidSubnetID.NotFound",
            "RepositoryNotFoundException",
            "ImageNotFoundException",
            "NoSuchHostedZone",
            "NamespaceNotFound",
            "PipelineNotFoundException",
            "NoSuchBucket",
            "TrailNotFoundException",
        ]) || self.message.contains("not found")
            || self.message.contains("does not exist")
    }
    /// The usual "that name is taken" codes: a create whose first answer was
    /// lost gets one of these when the SDK retries it.
    pub fn is_already_exists(&self) -> bool {
        self.is_code(&[
            "EntityAlreadyExists",
            "InvalidGroup.Duplicate",
            "DuplicateTargetGroupName",
            "DuplicateLoadBalancerName",
            "DuplicateListener",
            "PriorityInUse",
            "RepositoryAlreadyExistsException",
            "ResourceAlreadyExistsException",
            "ParameterAlreadyExists",
            "Resource.AlreadyAssociated",
            "ConflictingDomainExists",
            "NamespaceAlreadyExists",
            "ServiceAlreadyExists",
            "ResourceExistsException",
            "BucketAlreadyOwnedByYou",
            "PipelineNameInUseException",
            "ResourceAlreadyExistsException",
            "TrailAlreadyExistsException",
        ])
    }
    pub fn new(operation: &str, message: impl Into<String>) -> AwsError {
        AwsError { operation: operation.to_string(), code: None, message: message.into(), unreachable: false }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{} failed: {c}: {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl std::error::Error for AwsError {}

/// Map any SDK error. `operation` names the API call, e.g. "ssm:PutParameter".
pub fn aws_err<E, R>(operation: &str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    aws_err_hiding(operation, err, &[])
}

/// [`aws_err`] for calls that carried secret values: every value (and every
/// run of 8 or more of its characters) is scrubbed from the message before
/// the usual redaction of echoed input runs, so a value the redaction would
/// cut short (a quote inside it) never leaks in part.
pub fn aws_err_hiding<E, R>(operation: &str, err: SdkError<E, R>, secrets: &[&str]) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let (code, message, unreachable) = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            (e.code().map(str::to_string), e.message().unwrap_or("no message").to_string(), false)
        }
        SdkError::DispatchFailure(df) => {
            let what = if df.is_timeout() {
                "timed out connecting"
            } else if df.is_io() {
                "could not connect (nothing answered)"
            } else {
                "request could not be sent"
            };
            (None, format!("{what}: {}", source_chain(&err)), true)
        }
        SdkError::TimeoutError(_) => (None, "timed out waiting for an answer".to_string(), true),
        SdkError::ResponseError(_) => (None, format!("unreadable response: {}", source_chain(&err)), false),
        SdkError::ConstructionFailure(_) => (None, format!("request could not be built: {}", source_chain(&err)), false),
        _ => (None, source_chain(&err), false),
    };
    AwsError { operation: operation.to_string(), code, message: redact_echoed_values(&scrub(&message, secrets)), unreachable }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// AWS validation messages quote the offending input ("Value 'x' at 'value'
/// failed to satisfy constraint"). Drop every quoted run after "Value".
pub fn redact_echoed_values(msg: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r#"(?s)(?i)(value\s*)('[^']*'|"[^"]*"|\[[^\]]*\])"#).unwrap());
    re.replace_all(msg, "${1}'(redacted)'").into_owned()
}

/// Shortest run of a secret's characters that counts as part of it.
const SCRUB_WINDOW: usize = 8;

/// Remove `secrets` from a message: every occurrence of a whole value, and
/// every stretch of the message made of runs of at least 8 consecutive
/// characters of one (so a value split by quoting or truncation is caught
/// too). Values shorter than 8 characters are removed where they occur whole.
pub fn scrub(msg: &str, secrets: &[&str]) -> String {
    let chars: Vec<char> = msg.chars().collect();
    let mut hidden = vec![false; chars.len()];
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let sc: Vec<char> = s.chars().collect();
        let w = SCRUB_WINDOW.min(sc.len());
        let windows: std::collections::HashSet<&[char]> = sc.windows(w).collect();
        for p in 0..chars.len().saturating_sub(w - 1) {
            if windows.contains(&chars[p..p + w]) {
                hidden[p..p + w].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    let mut out = String::with_capacity(msg.len());
    let mut i = 0;
    while i < chars.len() {
        if hidden[i] {
            out.push_str("(redacted)");
            while i < chars.len() && hidden[i] {
                i += 1;
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_are_redacted() {
        let m = "1 validation error detected: Value 'hunter2' at 'value' failed to satisfy constraint";
        let r = redact_echoed_values(m);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("at 'value' failed"), "{r}");
        assert_eq!(scrub("a s3cret b", &["s3cret", ""]), "a (redacted) b");
    }

    #[test]
    fn secrets_are_scrubbed_whole_and_in_part_before_redaction() {
        let tricky = ["abc'tail-of-secret", "line1\nline2-with-more", "back\\slash\\secret", "grüße-aus-köln-🔑-geheim", "quote\"d-secret-value"];
        for s in tricky {
            // AWS echoes the value; a cut at a quote leaves the tail.
            let echoed = format!("1 validation error: Value '{s}' at 'value' failed");
            let tail: String = s.chars().skip(s.chars().count() / 2).collect();
            for msg in [echoed, format!("something about {tail} here")] {
                let out = redact_echoed_values(&scrub(&msg, &[s]));
                let sc: Vec<char> = s.chars().collect();
                for w in sc.windows(8) {
                    let part: String = w.iter().collect();
                    assert!(!out.contains(&part), "{part:?} of {s:?} survived in {out:?}");
                }
            }
        }
        assert_eq!(scrub("nothing secret", &["zzzzzzzzzz"]), "nothing secret");
    }
}
