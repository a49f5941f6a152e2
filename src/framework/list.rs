//! List resources (Terraform 1.14+ `terraform query`): a `list` block's
//! configuration finds existing remote objects of a managed resource type,
//! each returned with its resource identity and, when asked, the object as
//! `import` would produce it (Terraform generates configuration from it).

use async_trait::async_trait;

use super::diag::Diags;
use super::provider::Ctx;
use super::schema::Schema;
use super::value::Value;

/// One object a list found.
#[derive(Clone, Debug)]
pub struct ListedItem {
    /// What `terraform query` prints for it.
    pub display_name: String,
    /// The managed resource's identity (its identity schema's type).
    pub identity: Value,
    /// The managed resource's state, when the request asked for it.
    pub object: Option<Value>,
    /// Warnings about this object, shown beside it.
    pub diags: Diags,
}

#[async_trait]
pub trait ListResource<C: Send + Sync + 'static>: Send + Sync {
    /// The managed resource type it lists (the same name).
    fn type_name(&self) -> &'static str;
    /// The schema of the `list` block's `config` block.
    fn schema(&self) -> Schema;
    /// Static validation of the `config` block (may contain unknowns). No AWS calls.
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }
    /// At most `limit` objects (when positive); `object` filled only when `include_resource`.
    async fn list(&self, client: &C, config: Value, include_resource: bool, limit: i64, ctx: Ctx) -> Result<Vec<ListedItem>, Diags>;
}
