//! Conversions between framework types and their protobuf messages.

use super::tfplugin6 as pb;
use crate::framework::diag::{Diagnostic, Diags, Path, Severity, Step};
use crate::framework::schema::{AttrType, Attribute, Block, NestedBlock, Nesting, Schema};
use crate::framework::value::{Type, Value};

pub fn diag(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error as i32,
            Severity::Warning => pb::diagnostic::Severity::Warning as i32,
        },
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.path.as_ref().filter(|p| !p.0.is_empty()).map(path),
    }
}

pub fn diags(d: &Diags) -> Vec<pb::Diagnostic> {
    d.0.iter().map(diag).collect()
}

pub fn path(p: &Path) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    Step::Attr(a) => Selector::AttributeName(a.clone()),
                    Step::Key(k) => Selector::ElementKeyString(k.clone()),
                    Step::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

fn markdown() -> i32 {
    pb::StringKind::Markdown as i32
}

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    let (ty, nested) = match &a.ty {
        AttrType::Plain(t) => (serde_json::to_vec(&t.to_json()).unwrap_or_default(), None),
        AttrType::Nested(n, attrs) => {
            let nesting = match n {
                Nesting::Single | Nesting::Group => pb::schema::object::NestingMode::Single,
                Nesting::List => pb::schema::object::NestingMode::List,
                Nesting::Set => pb::schema::object::NestingMode::Set,
                Nesting::Map => pb::schema::object::NestingMode::Map,
            };
            #[allow(deprecated)]
            let obj = pb::schema::Object { attributes: attrs.iter().map(attribute).collect(), nesting: nesting as i32, min_items: 0, max_items: 0 };
            (Vec::new(), Some(obj))
        }
    };
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: ty,
        description: a.description.clone(),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: markdown(),
        deprecated: a.deprecated.is_some(),
        nested_type: nested,
        write_only: a.write_only,
        deprecation_message: a.deprecated.clone().unwrap_or_default(),
    }
}

fn nested_block(b: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode as M;
    let nesting = match b.nesting {
        Nesting::Single => M::Single,
        Nesting::List => M::List,
        Nesting::Set => M::Set,
        Nesting::Map => M::Map,
        Nesting::Group => M::Group,
    };
    pb::schema::NestedBlock { type_name: b.name.clone(), block: Some(block(&b.block, 0)), nesting: nesting as i32, min_items: b.min_items, max_items: b.max_items }
}

fn block(b: &Block, version: i64) -> pb::schema::Block {
    pb::schema::Block {
        version,
        attributes: b.attributes.iter().map(attribute).collect(),
        block_types: b.blocks.iter().map(nested_block).collect(),
        description: b.description.clone(),
        description_kind: markdown(),
        deprecated: b.deprecated,
        deprecation_message: String::new(),
    }
}

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema { version: s.version, block: Some(block(&s.block, s.version)) }
}

/// Decode a DynamicValue (msgpack preferred, JSON accepted). Absent means null.
pub fn decode(v: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value, Diags> {
    let Some(v) = v else { return Ok(Value::Null) };
    let res = if !v.msgpack.is_empty() {
        Value::from_msgpack(&v.msgpack, ty)
    } else if !v.json.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&v.json).map_err(|e| crate::framework::value::CodecError::new(e.to_string())).and_then(|j| Value::from_json(&j, ty))
    } else {
        Ok(Value::Null)
    };
    res.map_err(|e| {
        // A value that has no place in the provider's types (a number beyond
        // any range): name the attribute, like a validation error would.
        let d = Diagnostic::error("Invalid value", format!("{}: {}", e.path, crate::framework::typed::redact_quoted(&e.msg)));
        if e.path.0.is_empty() { d.into() } else { d.at(e.path).into() }
    })
}

pub fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diags> {
    v.to_msgpack(ty)
        .map(|msgpack| pb::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::error("Could not encode value for Terraform", crate::framework::typed::redact_quoted(&e.to_string())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_carry_attribute_paths() {
        let d = Diagnostic::error("Invalid key", "bad").at(Path::attr("secrets_wo").key("a//b"));
        let p = diag(&d);
        assert_eq!(p.severity, pb::diagnostic::Severity::Error as i32);
        let steps = p.attribute.unwrap().steps;
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].selector, Some(pb::attribute_path::step::Selector::ElementKeyString("a//b".into())));
    }

    #[test]
    fn schema_marks_write_only_and_markdown() {
        let s = Schema::new(1, Block::new(vec![Attribute::new("secrets_wo", Type::map(Type::String)).optional().sensitive().write_only()]));
        let p = schema(&s);
        let a = &p.block.unwrap().attributes[0];
        assert!(a.write_only && a.sensitive && a.optional);
        assert_eq!(a.r#type, br#"["map","string"]"#.to_vec());
        assert_eq!(a.description_kind, pb::StringKind::Markdown as i32);
    }
}
