//! Data sources: objects Terraform reads at plan time (or at apply, when the
//! configuration depends on values not yet known) and never manages.

use async_trait::async_trait;

use super::diag::Diags;
use super::provider::Ctx;
use super::schema::Schema;
use super::value::Value;

#[async_trait]
pub trait DataSource<C: Send + Sync + 'static>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Static validation of configuration (may contain unknowns). No AWS calls.
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }
    /// Read the object the wholly known `config` names: the config with every
    /// computed attribute filled in. An object that does not exist is an error.
    async fn read(&self, client: &C, config: Value, ctx: Ctx) -> Result<Value, Diags>;
}
