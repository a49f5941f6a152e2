//! The `cxflow` provider: its provider block and the list of resources.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::Aws;
use crate::aws::config::{AwsSettings, SERVICES, parse_duration};
use crate::framework::{Attribute, Block, Ctx, Diagnostic, Diags, EphemeralResource, NestedBlock, Nesting, Path, Provider, Resource, Schema, Type, Value, typed};
use crate::resources;

pub struct CxflowProvider;

/// How long configure may spend proving the credentials and endpoint work.
pub const CREDENTIAL_CHECK_DEADLINE: Duration = Duration::from_secs(20);

#[async_trait]
impl Provider for CxflowProvider {
    type Client = Aws;

    fn type_name(&self) -> &'static str {
        "cxflow"
    }

    fn schema(&self) -> Schema {
        let endpoints = SERVICES
            .iter()
            .map(|(k, env)| Attribute::new(k, Type::String).optional().describe(&format!("Endpoint URL for {k}. Overrides `AWS_ENDPOINT_URL_{env}` and `AWS_ENDPOINT_URL`.")))
            .collect();
        Schema::new(
            0,
            Block::new(vec![
                Attribute::new("region", Type::String).optional().describe("AWS region. Defaults to `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's region."),
                Attribute::new("profile", Type::String).optional().describe("Named profile from the shared configuration files. Defaults to `AWS_PROFILE`."),
                Attribute::new("shared_config_files", Type::list(Type::String)).optional().describe("Paths of shared config files (default `~/.aws/config`)."),
                Attribute::new("shared_credentials_files", Type::list(Type::String)).optional().describe("Paths of shared credentials files (default `~/.aws/credentials`)."),
                Attribute::new("max_retries", Type::Number).optional().describe("Retries for a failed or throttled AWS call, with jittered exponential backoff. Default 8."),
                Attribute::new("skip_credentials_validation", Type::Bool).optional().describe("Skip the STS GetCallerIdentity check at configure time."),
            ])
            .with_blocks(vec![
                NestedBlock::new(
                    "assume_role",
                    Nesting::List,
                    Block::new(vec![
                        Attribute::new("role_arn", Type::String).required().describe("ARN of the role to assume."),
                        Attribute::new("session_name", Type::String).optional().describe("Session name (default `terraform-provider-cxflow`)."),
                        Attribute::new("external_id", Type::String).optional().describe("External ID the role's trust policy requires."),
                        Attribute::new("duration", Type::String).optional().describe("Session length as a duration such as `1h` or `15m`."),
                    ]),
                )
                .max(1),
                NestedBlock::new("endpoints", Nesting::List, Block::new(endpoints).describe("Per-service endpoint URLs, e.g. for a local AWS stand-in.")).max(1),
                NestedBlock::new(
                    "default_tags",
                    Nesting::List,
                    Block::new(vec![Attribute::new("tags", Type::map(Type::String)).optional().describe("Tags added to every object the provider creates.")]),
                )
                .max(1),
            ])
            .describe("The `cxflow` provider runs containerised services on AWS ECS Fargate. It reads credentials from the standard AWS chain (environment, shared files, SSO, instance roles)."),
        )
    }

    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        if let Some(n) = config.get("max_retries").as_i64() {
            if !(0..=100).contains(&n) {
                d.attr_error(Path::attr("max_retries"), "Invalid max_retries", "max_retries must be between 0 and 100.");
            }
        }
        if let Some(items) = config.get("assume_role").elements() {
            for (i, ar) in items.iter().enumerate() {
                let p = Path::attr("assume_role").index(i);
                if let Some(arn) = ar.get("role_arn").as_str() {
                    if !arn.starts_with("arn:") || !arn.contains(":role/") {
                        d.attr_error(p.then_attr("role_arn"), "Invalid role ARN", "role_arn must look like arn:aws:iam::123456789012:role/NAME.");
                    }
                }
                if let Some(dur) = ar.get("duration").as_str() {
                    match parse_duration(dur) {
                        Some(x) if (900..=43200).contains(&x.as_secs()) => {}
                        _ => d.attr_error(p.then_attr("duration"), "Invalid duration", "duration must be between 15m and 12h, written like 1h or 15m."),
                    }
                }
            }
        }
        if let Some(items) = config.get("endpoints").elements() {
            for (i, e) in items.iter().enumerate() {
                for (k, v) in e.entries().into_iter().flatten() {
                    if let Some(url) = v.as_str() {
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            d.attr_error(Path::attr("endpoints").index(i).then_attr(k), "Invalid endpoint URL", "An endpoint must be an http:// or https:// URL.");
                        }
                    }
                }
            }
        }
        d
    }

    async fn configure(&self, config: Value, _terraform_version: &str, _ctx: Ctx) -> Result<Aws, Diags> {
        // A provider block may hold values known only after apply; the SDK's own defaults stand in for them.
        let mut cfg = config.known_or_null();
        // Blocks arrive as lists of at most one element; the settings struct wants the element.
        for name in ["assume_role", "endpoints", "default_tags"] {
            let first = cfg.get(name).elements().and_then(|e| e.first().cloned()).unwrap_or(Value::Null);
            cfg.set_attr(name, first);
        }
        let settings: AwsSettings = typed::from_value(&cfg)?;
        let aws = Aws::build(&settings).await.map_err(|m| Diags::from(Diagnostic::error("Invalid AWS configuration", m)))?;
        if !settings.skip_credentials_validation.unwrap_or(false) {
            if let Err(e) = aws.validate_credentials(CREDENTIAL_CHECK_DEADLINE).await {
                let endpoint = aws.endpoint_for("sts");
                let profile = settings.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok()).unwrap_or_else(|| "default".into());
                let (summary, hint) = if e.unreachable {
                    ("Cannot reach the AWS STS endpoint", "Check the endpoint URL and that the service is running, or set skip_credentials_validation = true.")
                } else {
                    ("AWS credentials were rejected", "Check the profile, the environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or assume_role.")
                };
                return Err(Diagnostic::error(
                    summary,
                    format!("Validating credentials with STS GetCallerIdentity at {endpoint} (profile {profile:?}, region {}) failed: {e}. {hint}", aws.region),
                )
                .into());
            }
        }
        tracing::info!(target: "cxflow::provider", region = aws.region.as_str(), "provider configured");
        Ok(aws)
    }

    fn resources(&self) -> Vec<Arc<dyn Resource<Aws>>> {
        resources::all()
    }

    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Aws>>> {
        resources::all_ephemeral()
    }

    fn data_sources(&self) -> Vec<Arc<dyn crate::framework::DataSource<Aws>>> {
        crate::data_sources::all()
    }

    fn actions(&self) -> Vec<Arc<dyn crate::framework::Action<Aws>>> {
        crate::actions::all()
    }

    fn list_resources(&self) -> Vec<Arc<dyn crate::framework::ListResource<Aws>>> {
        resources::all_list()
    }

    fn functions(&self) -> Vec<Arc<dyn crate::framework::Function>> {
        crate::functions::all()
    }
}
