//! Resource identity on the wire: schemas and the identity objects that
//! travel beside state in read, plan, apply and import.

use super::convert::{decode, encode};
use super::tfplugin6 as pb;
use crate::framework::{Diags, IdentitySchema, Type, Value};

pub fn schema(s: &IdentitySchema) -> pb::ResourceIdentitySchema {
    pb::ResourceIdentitySchema {
        version: s.version,
        identity_attributes: s
            .attributes
            .iter()
            .map(|a| pb::resource_identity_schema::IdentityAttribute {
                name: a.name.clone(),
                r#type: serde_json::to_vec(&a.ty.to_json()).unwrap_or_default(),
                required_for_import: a.required_for_import,
                optional_for_import: !a.required_for_import,
                description: a.description.clone(),
            })
            .collect(),
    }
}

pub fn data(v: &Value, ty: &Type) -> Result<pb::ResourceIdentityData, Diags> {
    Ok(pb::ResourceIdentityData { identity_data: Some(encode(v, ty)?) })
}

/// Null when Terraform sent none.
pub fn read(d: Option<&pb::ResourceIdentityData>, ty: &Type) -> Result<Value, Diags> {
    decode(d.and_then(|d| d.identity_data.as_ref()), ty)
}
