//! The resource identities of this provider's resources: the account and
//! region, then the names (in the order of the import ID's `/`-separated
//! parts) that find the resource there. Shared by the composite driver and
//! the resources that implement the framework's traits directly.

use crate::framework::{Diagnostic, Diags, IdentityAttribute, IdentitySchema, Type, Value};

pub const ACCOUNT: &str = "account_id";
pub const REGION: &str = "region";

/// Where a resource lives: account and region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// `account_id` and `region` (optional in an `import` block: the provider's
/// own are taken), then `parts`, each required.
pub fn schema(version: i64, parts: &[(&str, &str)]) -> IdentitySchema {
    let mut attributes = vec![
        IdentityAttribute {
            name: ACCOUNT.into(),
            ty: Type::String,
            required_for_import: false,
            description: "The AWS account ID. An `import` block may leave it out; it must then be the provider's account.".into(),
        },
        IdentityAttribute {
            name: REGION.into(),
            ty: Type::String,
            required_for_import: false,
            description: "The AWS region. An `import` block may leave it out; it must then be the provider's region.".into(),
        },
    ];
    attributes.extend(parts.iter().map(|(n, d)| IdentityAttribute { name: n.to_string(), ty: Type::String, required_for_import: true, description: d.to_string() }));
    IdentitySchema { version, attributes }
}

/// The identity of a resource in `scope` named by `parts`.
pub fn value(scope: &Scope, parts: &[(&str, String)]) -> Result<Value, Diags> {
    if let Some((n, _)) = parts.iter().find(|(_, v)| v.is_empty()) {
        // An identity is never empty: it would name nothing.
        return Err(Diagnostic::error("Internal error in the provider", format!("The resource identity's {n} is empty; nothing can be found by it.")).into());
    }
    let mut m: std::collections::BTreeMap<String, Value> = parts.iter().map(|(n, v)| (n.to_string(), Value::string(v))).collect();
    m.insert(ACCOUNT.into(), Value::string(&scope.account));
    m.insert(REGION.into(), Value::string(&scope.region));
    Ok(Value::Object(m))
}

/// The values of `names` an `import` block's identity gives, after checking
/// that it names the provider's account and region (or leaves them out):
/// this provider configuration reaches no other.
pub fn import_parts(identity: &Value, scope: &Scope, names: &[&str]) -> Result<Vec<String>, Diags> {
    let mut d = Diags::new();
    for (attr, ours) in [(ACCOUNT, &scope.account), (REGION, &scope.region)] {
        if let Some(v) = identity.get(attr).as_str() {
            if v != ours {
                d.error(
                    "Resource identity is out of reach",
                    format!("The identity's {attr} is {v:?}, but this provider configuration works in {ours:?}. Import it through a provider configured for {v:?}."),
                );
            }
        }
    }
    let mut out = Vec::new();
    for n in names {
        match identity.get(n).as_str().filter(|s| !s.is_empty()) {
            Some(v) => out.push(v.to_string()),
            None => d.error("Incomplete resource identity", format!("The identity must give {n}.")),
        }
    }
    if d.has_errors() { Err(d) } else { Ok(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope { account: "123456789012".into(), region: "eu-west-2".into() }
    }

    #[test]
    fn identity_names_scope_and_parts() {
        let v = value(&scope(), &[("cluster", "c".into()), ("name", "s".into())]).unwrap();
        assert_eq!(v.get("account_id").as_str(), Some("123456789012"));
        assert_eq!(v.get("region").as_str(), Some("eu-west-2"));
        assert_eq!(v.get("name").as_str(), Some("s"));
        let s = schema(0, &[("cluster", "The cluster."), ("name", "The service.")]);
        assert_eq!(s.value_type(), Type::object([("account_id", Type::String), ("region", Type::String), ("cluster", Type::String), ("name", Type::String)]));
        assert!(s.attributes.iter().filter(|a| a.required_for_import).map(|a| a.name.as_str()).eq(["cluster", "name"]));
    }

    #[test]
    fn empty_parts_are_refused() {
        assert!(value(&scope(), &[("name", String::new())]).is_err());
    }

    #[test]
    fn import_checks_account_and_region() {
        let obj = |pairs: &[(&str, &str)]| Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), Value::string(*v))).collect());
        assert_eq!(import_parts(&obj(&[("name", "x")]), &scope(), &["name"]).unwrap(), vec!["x"]);
        assert_eq!(import_parts(&obj(&[("name", "x"), ("region", "eu-west-2"), ("account_id", "123456789012")]), &scope(), &["name"]).unwrap(), vec!["x"]);
        let e = import_parts(&obj(&[("name", "x"), ("region", "us-east-1")]), &scope(), &["name"]).unwrap_err();
        assert!(e.0[0].detail.contains("us-east-1"), "{:?}", e.0);
        let e = import_parts(&obj(&[("cluster", "c")]), &scope(), &["cluster", "name"]).unwrap_err();
        assert!(e.0[0].detail.contains("name"), "{:?}", e.0);
    }
}
