//! The contracts between the protocol layer and provider code: a provider,
//! its managed resources and its ephemeral resources (data sources and
//! actions have their own files). The protocol layer is
//! generic over these traits and never sees AWS.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::diag::{Diagnostic, Diags, Path};
use super::schema::{self, Schema};
use super::value::Value;

/// What the Terraform client told us it can do.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCaps {
    pub deferral_allowed: bool,
    pub write_only_attributes_allowed: bool,
}

/// Per-call context: cancelled when Terraform sends StopProvider.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    pub cancel: CancellationToken,
}

pub struct PlanRequest {
    pub prior: Value,
    pub proposed: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
    pub ctx: Ctx,
}

#[derive(Default)]
pub struct PlanResponse {
    pub planned: Value,
    pub requires_replace: Vec<Path>,
    pub private: Vec<u8>,
    pub diags: Diags,
}

pub struct ApplyRequest {
    pub prior: Value,
    pub planned: Value,
    pub config: Value,
    pub planned_private: Vec<u8>,
    pub ctx: Ctx,
}

#[derive(Default)]
pub struct ApplyResponse {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diags: Diags,
}

impl ApplyResponse {
    pub fn ok(new_state: Value) -> Self {
        ApplyResponse { new_state, ..Default::default() }
    }
    /// Partial progress plus the error that stopped it: Terraform records
    /// `new_state`, so nothing created so far is forgotten.
    pub fn partial(new_state: Value, diags: Diags) -> Self {
        ApplyResponse { new_state, diags, ..Default::default() }
    }
}

#[derive(Default)]
pub struct ReadResponse {
    /// Null when the object is gone.
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diags: Diags,
}

#[async_trait]
pub trait Resource<C: Send + Sync + 'static>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Static validation of configuration (may contain unknowns). No AWS calls.
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }

    /// Plan a change. The default suits resources whose computed attributes
    /// are all either `stable` (kept) or recomputed on change.
    async fn plan(&self, _client: &C, req: PlanRequest) -> PlanResponse {
        default_plan(&self.schema(), req)
    }

    async fn apply(&self, client: &C, req: ApplyRequest) -> ApplyResponse;
    async fn read(&self, client: &C, state: Value, private: Vec<u8>, ctx: Ctx) -> ReadResponse;

    /// The resource's identity, when it has one (Terraform 1.12+).
    fn identity(&self) -> Option<&dyn super::identity::ResourceIdentity<C>> {
        None
    }

    async fn import(&self, _client: &C, _id: &str, _ctx: Ctx) -> Result<Value, Diags> {
        Err(Diagnostic::error("Import not supported", format!("{} cannot be imported.", self.type_name())).into())
    }

    /// Upgrade stored JSON state to the current schema. The default reads it
    /// with the current schema's type (attributes the schema no longer has are dropped).
    fn upgrade(&self, _version: i64, raw: &serde_json::Value) -> Result<Value, Diags> {
        let schema = self.schema();
        let ty = schema.value_type();
        let mut cleaned = raw.clone();
        if let (Some(obj), super::value::Type::Object(attrs)) = (cleaned.as_object_mut(), &ty) {
            obj.retain(|k, _| attrs.contains_key(k));
        }
        Value::from_json(&cleaned, &ty).map_err(|e| Diagnostic::error("Could not read stored state", super::typed::redact_quoted(&e.to_string())).into())
    }
}

/// The common plan: create marks computed attributes unknown; an update that
/// changes configuration recomputes volatile computed values and reports
/// `force_new` changes; otherwise the prior state stands.
pub fn default_plan(schema: &Schema, req: PlanRequest) -> PlanResponse {
    let block = &schema.block;
    let mut planned = req.proposed.clone();
    let mut resp = PlanResponse { private: req.prior_private, ..Default::default() };
    if planned.is_null() {
        // destroy
        resp.planned = Value::Null;
        return resp;
    }
    if req.prior.is_null() {
        schema::mark_computed_unknown(block, &mut planned);
    } else if schema::config_differs(block, &req.prior, &planned) {
        resp.requires_replace = schema::replace_paths(block, &req.prior, &planned);
        if resp.requires_replace.is_empty() {
            schema::mark_volatile_unknown(block, &mut planned);
        } else {
            schema::mark_computed_unknown(block, &mut planned);
        }
    }
    schema::null_write_only(block, &mut planned);
    resp.planned = planned;
    resp
}

#[async_trait]
pub trait EphemeralResource<C: Send + Sync + 'static>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }
    /// Produce the result object. It is never written to state or plan.
    async fn open(&self, client: &C, config: Value, ctx: Ctx) -> Result<Value, Diags>;
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    type Client: Send + Sync + 'static;

    /// The provider's local name, the prefix of every resource type.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value) -> Diags {
        Diags::new()
    }
    async fn configure(&self, config: Value, terraform_version: &str, ctx: Ctx) -> Result<Self::Client, Diags>;
    fn resources(&self) -> Vec<Arc<dyn Resource<Self::Client>>>;
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Self::Client>>> {
        Vec::new()
    }
    fn data_sources(&self) -> Vec<Arc<dyn super::data_source::DataSource<Self::Client>>> {
        Vec::new()
    }
    /// Actions (Terraform 1.14+).
    fn actions(&self) -> Vec<Arc<dyn super::action::Action<Self::Client>>> {
        Vec::new()
    }
    /// List resources for `terraform query` (Terraform 1.14+), each named after the managed resource it lists.
    fn list_resources(&self) -> Vec<Arc<dyn super::list::ListResource<Self::Client>>> {
        Vec::new()
    }
    /// Provider functions; they need no configured client.
    fn functions(&self) -> Vec<Arc<dyn super::function::Function>> {
        Vec::new()
    }
}
