//! Resource identity (Terraform 1.12+): a small object, beside the state,
//! that names the remote object a resource instance manages. Terraform keeps
//! it in state, shows it in `terraform show -json`, and imports by it with
//! `import { to = ..., identity = { ... } }`.

use super::diag::{Diagnostic, Diags};
use super::value::{Type, Value};

#[derive(Clone, Debug)]
pub struct IdentityAttribute {
    pub name: String,
    pub ty: Type,
    /// An `import` block must name it; otherwise it may (the provider fills it in).
    pub required_for_import: bool,
    pub description: String,
}

#[derive(Clone, Debug, Default)]
pub struct IdentitySchema {
    /// Raised when the layout changes; `UpgradeResourceIdentity` converts older ones.
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
}

impl IdentitySchema {
    pub fn value_type(&self) -> Type {
        Type::object(self.attributes.iter().map(|a| (a.name.clone(), a.ty.clone())))
    }

    /// Read a stored identity written under this layout, dropping attributes it no longer has.
    pub fn read_json(&self, raw: &serde_json::Value) -> Result<Value, Diags> {
        let mut cleaned = raw.clone();
        if let Some(obj) = cleaned.as_object_mut() {
            obj.retain(|k, _| self.attributes.iter().any(|a| &a.name == k));
        }
        Value::from_json(&cleaned, &self.value_type())
            .map_err(|e| Diagnostic::error("Could not read the stored resource identity", super::typed::redact_quoted(&e.to_string())).into())
    }

    /// The string attributes an `import` block's identity must name, checked
    /// for presence (Terraform checks the types).
    pub fn missing_for_import(&self, identity: &Value) -> Vec<&str> {
        self.attributes.iter().filter(|a| a.required_for_import && identity.get(&a.name).as_str().is_none_or(str::is_empty)).map(|a| a.name.as_str()).collect()
    }
}

/// A resource that has an identity (Terraform's "resource identity" feature).
#[async_trait::async_trait]
pub trait ResourceIdentity<C: Send + Sync + 'static>: Send + Sync {
    fn identity_schema(&self) -> IdentitySchema;
    /// The identity of the object a (non-null) state manages.
    async fn identity_of(&self, client: &C, state: &Value) -> Result<Value, Diags>;
    /// The import ID an `import` block's identity names.
    async fn import_id(&self, client: &C, identity: &Value) -> Result<String, Diags>;
    /// Convert an identity stored under schema `version` to the current layout.
    fn upgrade_identity(&self, _version: i64, raw: &serde_json::Value) -> Result<Value, Diags> {
        self.identity_schema().read_json(raw)
    }
}
