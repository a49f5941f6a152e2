//! Building AWS clients from the provider block, following the AWS provider's
//! conventions: region, profile, shared files, assume_role, per-service
//! endpoints (plus `AWS_ENDPOINT_URL[_<SERVICE>]`), default tags, retries.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::Deserialize;

use super::error::{AwsError, aws_err};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DefaultTags {
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The provider block, typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub shared_config_files: Option<Vec<String>>,
    pub shared_credentials_files: Option<Vec<String>>,
    pub assume_role: Option<AssumeRole>,
    pub endpoints: Option<BTreeMap<String, Option<String>>>,
    pub default_tags: Option<DefaultTags>,
    pub max_retries: Option<i64>,
    pub skip_credentials_validation: Option<bool>,
}

/// Services the provider talks to, by the key used in `endpoints { ... }` and
/// the suffix of `AWS_ENDPOINT_URL_<SERVICE>`.
pub const SERVICES: &[(&str, &str)] = &[
    ("acm", "ACM"),
    ("applicationautoscaling", "APPLICATION_AUTO_SCALING"),
    ("cloudtrail", "CLOUDTRAIL"),
    ("cloudwatchlogs", "CLOUDWATCH_LOGS"),
    ("codebuild", "CODEBUILD"),
    ("codepipeline", "CODEPIPELINE"),
    ("ec2", "EC2"),
    ("ecr", "ECR"),
    ("ecs", "ECS"),
    ("elbv2", "ELASTIC_LOAD_BALANCING_V2"),
    ("events", "EVENTBRIDGE"),
    ("iam", "IAM"),
    ("kms", "KMS"),
    ("route53", "ROUTE_53"),
    ("s3", "S3"),
    ("secretsmanager", "SECRETS_MANAGER"),
    ("servicediscovery", "SERVICEDISCOVERY"),
    ("ssm", "SSM"),
    ("sts", "STS"),
];

pub const DEFAULT_MAX_RETRIES: i64 = 8;

/// Go-style durations ("1h", "15m", "1h30m"), parsed without overflow.
pub use crate::framework::check::parse_duration;

/// Configured AWS access: the shared SDK configuration and one lazily built client per service.
pub struct Aws {
    pub sdk: SdkConfig,
    pub default_tags: BTreeMap<String, String>,
    pub region: String,
    pub account_id: OnceLock<String>,
    /// The region's availability zone names, sorted, once asked for (aws::Aws::zone_names).
    pub zones: tokio::sync::OnceCell<Vec<String>>,
    /// Reads coalesced across concurrent operations (refresh).
    pub(crate) reads: super::reads::Reads,
    endpoints: BTreeMap<String, String>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    ecs: OnceLock<aws_sdk_ecs::Client>,
    iam: OnceLock<aws_sdk_iam::Client>,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    logs: OnceLock<aws_sdk_cloudwatchlogs::Client>,
    elbv2: OnceLock<aws_sdk_elasticloadbalancingv2::Client>,
    route53: OnceLock<aws_sdk_route53::Client>,
    acm: OnceLock<aws_sdk_acm::Client>,
    ecr: OnceLock<aws_sdk_ecr::Client>,
    sd: OnceLock<aws_sdk_servicediscovery::Client>,
    aas: OnceLock<aws_sdk_applicationautoscaling::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    codebuild: OnceLock<aws_sdk_codebuild::Client>,
    codepipeline: OnceLock<aws_sdk_codepipeline::Client>,
    kms: OnceLock<aws_sdk_kms::Client>,
    cloudtrail: OnceLock<aws_sdk_cloudtrail::Client>,
    secretsmanager: OnceLock<aws_sdk_secretsmanager::Client>,
    events: OnceLock<aws_sdk_eventbridge::Client>,
    sts: OnceLock<aws_sdk_sts::Client>,
}

/// Counts every request attempt (retries included: each is a round trip)
/// against the engine's per-child scope; see [`crate::calls`].
#[derive(Debug)]
struct CountCalls;

impl aws_smithy_runtime_api::client::interceptors::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "cxflow::CountCalls"
    }
    fn read_before_transmit(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        crate::calls::record();
        Ok(())
    }
}

macro_rules! client {
    ($fn:ident, $field:ident, $krate:ident, $key:literal) => {
        pub fn $fn(&self) -> &$krate::Client {
            self.$field.get_or_init(|| {
                let mut b = $krate::config::Builder::from(&self.sdk);
                if let Some(url) = self.endpoints.get($key) {
                    b = b.endpoint_url(url);
                }
                $krate::Client::from_conf(b.interceptor(CountCalls).build())
            })
        }
    };
}

impl Aws {
    client!(ssm, ssm, aws_sdk_ssm, "ssm");
    client!(ecs, ecs, aws_sdk_ecs, "ecs");
    client!(iam, iam, aws_sdk_iam, "iam");
    client!(ec2, ec2, aws_sdk_ec2, "ec2");
    client!(logs, logs, aws_sdk_cloudwatchlogs, "cloudwatchlogs");
    client!(elbv2, elbv2, aws_sdk_elasticloadbalancingv2, "elbv2");
    client!(route53, route53, aws_sdk_route53, "route53");
    client!(acm, acm, aws_sdk_acm, "acm");
    client!(ecr, ecr, aws_sdk_ecr, "ecr");
    client!(servicediscovery, sd, aws_sdk_servicediscovery, "servicediscovery");
    client!(autoscaling, aas, aws_sdk_applicationautoscaling, "applicationautoscaling");
    client!(sts, sts, aws_sdk_sts, "sts");
    client!(codebuild, codebuild, aws_sdk_codebuild, "codebuild");
    client!(codepipeline, codepipeline, aws_sdk_codepipeline, "codepipeline");
    client!(kms, kms, aws_sdk_kms, "kms");
    client!(cloudtrail, cloudtrail, aws_sdk_cloudtrail, "cloudtrail");
    client!(secretsmanager, secretsmanager, aws_sdk_secretsmanager, "secretsmanager");
    client!(events, events, aws_sdk_eventbridge, "events");

    /// CloudWatch Logs in `region`: the provider's own client there, else one
    /// for that region (a task definition may log to another region).
    pub fn logs_in(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        if region == self.region {
            return self.logs().clone();
        }
        let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk).region(aws_types::region::Region::new(region.to_string()));
        if let Some(url) = self.endpoints.get("cloudwatchlogs") {
            b = b.endpoint_url(url);
        }
        aws_sdk_cloudwatchlogs::Client::from_conf(b.interceptor(CountCalls).build())
    }

    /// S3 with path-style addressing whenever an endpoint is overridden: a
    /// stand-in on loopback has no `<bucket>.<host>` names to resolve.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(|| {
            let mut b = aws_sdk_s3::config::Builder::from(&self.sdk);
            if let Some(url) = self.endpoints.get("s3") {
                b = b.endpoint_url(url);
            }
            if self.endpoints.contains_key("s3") || self.sdk.endpoint_url().is_some() {
                b = b.force_path_style(true);
            }
            aws_sdk_s3::Client::from_conf(b.interceptor(CountCalls).build())
        })
    }

    /// Where calls to `service` go, for messages: the `endpoints` block, then
    /// `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then AWS itself.
    pub fn endpoint_for(&self, service: &str) -> String {
        describe_endpoint(&self.endpoints, service, &self.region)
    }

    /// The tags every child object gets: provider default tags, then the resource's own.
    pub fn merged_tags(&self, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut t = self.default_tags.clone();
        t.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        t
    }

    /// Build from the provider block. Does no network I/O.
    pub async fn build(s: &AwsSettings) -> Result<Aws, String> {
        let max_retries = s.max_retries.unwrap_or(DEFAULT_MAX_RETRIES).clamp(0, 100) as u32;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(max_retries + 1).with_max_backoff(Duration::from_secs(10)))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(Duration::from_secs(60)).build())
            // The SDK's guard against stalled uploads starts its clock before the request is handed
            // to the HTTP client, so a call queued behind the in-flight bound (aws::inflight) for a
            // few seconds failed as "0 B/s observed" in an apply of 500 services. Every request
            // body the provider sends is a small document in memory; downloads keep their guard.
            .stalled_stream_protection(aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig::enabled().upload_enabled(false).build());
        if let Some(r) = s.region.as_ref().filter(|r| !r.is_empty()) {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = s.profile.as_ref().filter(|p| !p.is_empty()) {
            loader = loader.profile_name(p);
        }
        let config_files = s.shared_config_files.clone().unwrap_or_default();
        let cred_files = s.shared_credentials_files.clone().unwrap_or_default();
        if !config_files.is_empty() || !cred_files.is_empty() {
            let mut pf = aws_runtime::env_config::file::EnvConfigFiles::builder();
            for f in &config_files {
                pf = pf.with_file(aws_runtime::env_config::file::EnvConfigFileKind::Config, expand_home(f));
            }
            for f in &cred_files {
                pf = pf.with_file(aws_runtime::env_config::file::EnvConfigFileKind::Credentials, expand_home(f));
            }
            if config_files.is_empty() {
                pf = pf.include_default_config_file(true);
            }
            if cred_files.is_empty() {
                pf = pf.include_default_credentials_file(true);
            }
            loader = loader.profile_files(pf.build());
        }
        let mut sdk = loader.load().await;
        // Every client shares one HTTP client, with a bound on what it has in flight (aws::inflight).
        let http = sdk.http_client().unwrap_or_else(super::inflight::shared_client);
        let http = match super::inflight::configured_bound() {
            Some(bound) => super::inflight::bounded(http, bound),
            None => http,
        };
        sdk = sdk.into_builder().http_client(http).build();
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| "No AWS region is set. Set `region` in the provider block, or AWS_REGION, or a region in the selected profile.".to_string())?;

        let endpoints: BTreeMap<String, String> = s.endpoints.clone().unwrap_or_default().into_iter().filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v))).collect();

        if let Some(ar) = &s.assume_role {
            let mut sts_conf = sdk.to_builder();
            if let Some(url) = endpoints.get("sts") {
                sts_conf = sts_conf.endpoint_url(url);
            }
            let mut b = aws_config::sts::AssumeRoleProvider::builder(&ar.role_arn)
                .session_name(ar.session_name.clone().unwrap_or_else(|| "terraform-provider-cxflow".to_string()))
                .configure(&sts_conf.build());
            if let Some(x) = &ar.external_id {
                b = b.external_id(x);
            }
            if let Some(d) = ar.duration.as_deref().and_then(parse_duration) {
                b = b.session_length(d);
            }
            let provider = b.build().await;
            sdk = sdk.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider)).build();
        }

        Ok(Aws {
            sdk,
            default_tags: s.default_tags.clone().and_then(|d| d.tags).unwrap_or_default(),
            region,
            account_id: OnceLock::new(),
            zones: tokio::sync::OnceCell::new(),
            reads: Default::default(),
            endpoints,
            ssm: OnceLock::new(),
            ecs: OnceLock::new(),
            iam: OnceLock::new(),
            ec2: OnceLock::new(),
            logs: OnceLock::new(),
            elbv2: OnceLock::new(),
            route53: OnceLock::new(),
            acm: OnceLock::new(),
            ecr: OnceLock::new(),
            sd: OnceLock::new(),
            aas: OnceLock::new(),
            s3: OnceLock::new(),
            codebuild: OnceLock::new(),
            codepipeline: OnceLock::new(),
            kms: OnceLock::new(),
            cloudtrail: OnceLock::new(),
            secretsmanager: OnceLock::new(),
            events: OnceLock::new(),
            sts: OnceLock::new(),
        })
    }

    /// STS GetCallerIdentity with short backoffs and a hard deadline, so a wrong
    /// endpoint or missing credentials fail fast with one clear message. Rejected
    /// credentials are never retried (the SDK does not retry them); throttling and
    /// dropped connections are, up to the provider's own attempt count but no more
    /// than `CREDENTIAL_CHECK_ATTEMPTS`, so a busy account does not fail configure.
    pub async fn validate_credentials(&self, deadline: Duration) -> Result<String, AwsError> {
        let configured = self.sdk.retry_config().map(|r| r.max_attempts()).unwrap_or(CREDENTIAL_CHECK_ATTEMPTS);
        let attempts = configured.clamp(1, CREDENTIAL_CHECK_ATTEMPTS);
        let mut b = aws_sdk_sts::config::Builder::from(&self.sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(attempts).with_max_backoff(Duration::from_secs(1)))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).operation_attempt_timeout(Duration::from_secs(10)).build());
        if let Some(url) = self.endpoints.get("sts") {
            b = b.endpoint_url(url);
        }
        let sts = aws_sdk_sts::Client::from_conf(b.build());
        let call = sts.get_caller_identity().send();
        match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(AwsError { unreachable: true, ..AwsError::new("sts:GetCallerIdentity", format!("no answer within {}s", deadline.as_secs())) }),
            Ok(Err(e)) => Err(aws_err("sts:GetCallerIdentity", e)),
            Ok(Ok(out)) => {
                let acct = out.account().unwrap_or_default().to_string();
                let _ = self.account_id.set(acct.clone());
                Ok(acct)
            }
        }
    }
}

/// Attempts of the configure-time credential check at most: enough to ride out
/// throttling (six throttles in a row at a 10% rate is one in a million), few
/// enough that a dead endpoint still fails within seconds.
const CREDENTIAL_CHECK_ATTEMPTS: u32 = 6;

fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => p.to_string(),
    }
}

pub fn describe_endpoint(endpoints: &BTreeMap<String, String>, service: &str, region: &str) -> String {
    if let Some(u) = endpoints.get(service) {
        return u.clone();
    }
    let env_suffix = SERVICES.iter().find(|(k, _)| *k == service).map(|(_, e)| *e).unwrap_or("");
    if let Ok(u) = std::env::var(format!("AWS_ENDPOINT_URL_{env_suffix}")) {
        if !u.is_empty() {
            return u;
        }
    }
    if let Ok(u) = std::env::var("AWS_ENDPOINT_URL") {
        if !u.is_empty() {
            return u;
        }
    }
    format!("https://{service}.{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("900s"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("abc"), None);
    }

    #[test]
    fn endpoint_block_wins() {
        let mut m = BTreeMap::new();
        m.insert("ssm".to_string(), "http://127.0.0.1:1".to_string());
        assert_eq!(describe_endpoint(&m, "ssm", "eu-west-2"), "http://127.0.0.1:1");
    }
}
