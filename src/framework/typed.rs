//! The serde bridge: resource code reads configuration and writes state as
//! ordinary Rust structs. Values pass through plain JSON, guided by the
//! schema's type on the way back so absent attributes become null.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::diag::{Diagnostic, Diags, Path};
use super::value::{Type, Value};

/// Decode a wholly known value into `T`.
pub fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, Diags> {
    if !v.is_wholly_known() {
        return Err(Diagnostic::error(
            "Unexpected unknown value",
            "The provider received a value that is not yet known where a known value is required. This is a bug in the provider.",
        )
        .into());
    }
    let json = v.to_plain_json();
    serde_path_to_error::deserialize(&json).map_err(|e| {
        // serde's message may quote the offending input; keep only its shape.
        let path = path_in(v, e.path());
        let msg = redact_quoted(&e.inner().to_string());
        let d = Diagnostic::error("Invalid value", if path.0.is_empty() { msg } else { format!("{path}: {msg}") });
        if path.0.is_empty() { d.into() } else { d.at(path).into() }
    })
}

/// The attribute path of a serde error path: objects have attributes, maps
/// have keys, lists and sets have indices.
fn path_in(root: &Value, p: &serde_path_to_error::Path) -> Path {
    use serde_path_to_error::Segment;
    let mut out = Path::root();
    let mut cur = Some(root);
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => {
                out = out.index(*index);
                cur = cur.and_then(|c| c.elements()).and_then(|e| e.get(*index));
            }
            Segment::Map { key } => {
                out = if matches!(cur, Some(Value::Object(_))) { out.then_attr(key.clone()) } else { out.key(key.clone()) };
                cur = cur.and_then(|c| c.entries()).and_then(|m| m.get(key));
            }
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    out
}

/// Encode `t` as a value of type `ty`.
pub fn to_value<T: Serialize>(t: &T, ty: &Type) -> Result<Value, Diags> {
    let j = serde_json::to_value(t).map_err(|e| Diags::from(Diagnostic::error("Provider could not encode state", redact_quoted(&e.to_string()))))?;
    Value::from_plain_json(&j, ty).map_err(|e| Diagnostic::error("Provider could not encode state", redact_quoted(&e.to_string())).into())
}

/// Replace every double-quoted run in a message with `"…"`, so that input
/// values never travel inside error text.
pub fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for ch in msg.chars() {
        if ch == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Svc {
        name: String,
        cpu: i64,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        arn: Option<String>,
    }

    fn ty() -> Type {
        Type::object([("name", Type::String), ("cpu", Type::Number), ("tags", Type::map(Type::String)), ("arn", Type::String), ("extra", Type::String)])
    }

    #[test]
    fn round_trip_through_structs() {
        let s = Svc { name: "a".into(), cpu: 256, tags: [("k".into(), "v".into())].into(), arn: None };
        let v = to_value(&s, &ty()).unwrap();
        assert!(v.get("extra").is_null());
        assert!(v.get("arn").is_null());
        let back: Svc = from_value(&v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknowns_and_bad_shapes_are_errors_without_values() {
        let mut v = to_value(&Svc { name: "a".into(), cpu: 1, tags: BTreeMap::new(), arn: None }, &ty()).unwrap();
        v.set_attr("cpu", Value::Unknown);
        assert!(from_value::<Svc>(&v).is_err());
        v.set_attr("cpu", Value::string("hunter2-secret"));
        let err = from_value::<Svc>(&v).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(err.0[0].path.as_ref().map(|p| p.to_string()).as_deref(), Some("cpu"), "the error names the attribute");
    }
}
