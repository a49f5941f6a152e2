//! `cxflow_ssm_secret` (ephemeral): reads one SSM parameter, decrypted, for the
//! length of a Terraform run. The value is never written to plan or state, so
//! one environment's secrets can seed another's `secrets_wo`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::aws::{Aws, aws_err};
use crate::framework::provider::{Ctx, EphemeralResource};
use crate::framework::{Attribute, Block, Diagnostic, Diags, Path, Schema, Type, Value};

pub const TYPE_NAME: &str = "cxflow_ssm_secret";

pub struct SsmSecret;

impl SsmSecret {
    fn block() -> Block {
        Block::new(vec![
            Attribute::new("name", Type::String).required().describe("Full name of the SSM parameter, e.g. `/cxflow/production/gitlab/token`."),
            Attribute::new("value", Type::String).computed().sensitive().describe("The decrypted value."),
            Attribute::new("version", Type::Number).computed().describe("The parameter's SSM version."),
            Attribute::new("arn", Type::String).computed().describe("The parameter's ARN."),
        ])
        .describe("Reads one SSM parameter (decrypting SecureStrings) during a run without storing it, for use in write-only arguments such as `cxflow_secret_sync.secrets_wo`.")
    }
}

#[async_trait]
impl EphemeralResource<Aws> for SsmSecret {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(0, Self::block())
    }

    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        if let Some(n) = config.get("name").as_str() {
            if !n.starts_with('/') || n.ends_with('/') || n.contains("//") {
                d.attr_error(Path::attr("name"), "Invalid parameter name", "name must be a full SSM path such as /cxflow/production/gitlab/token.");
            }
        }
        d
    }

    async fn open(&self, aws: &Aws, config: Value, _ctx: Ctx) -> Result<Value, Diags> {
        let name = config.get("name").as_str().unwrap_or_default().to_string();
        let out = aws.ssm().get_parameter().name(&name).with_decryption(true).send().await.map_err(|e| {
            let e = aws_err("ssm:GetParameter", e);
            Diags::from(Diagnostic::error("Could not read SSM parameter", format!("{name}: {e}")).at(Path::attr("name")))
        })?;
        let p = out.parameter().ok_or_else(|| Diags::from(Diagnostic::error("Could not read SSM parameter", format!("{name}: empty answer"))))?;
        let mut v = config.clone();
        v.set_attr("value", Value::string(p.value().unwrap_or_default()));
        v.set_attr("version", Value::int(p.version()));
        v.set_attr("arn", Value::string(p.arn().unwrap_or_default()));
        Ok(v)
    }
}

pub fn resource() -> Arc<dyn EphemeralResource<Aws>> {
    Arc::new(SsmSecret)
}
