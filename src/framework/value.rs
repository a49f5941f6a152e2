//! Terraform's value model (cty): types, values with unknowns, and the two wire
//! encodings Terraform uses with providers: MessagePack for `DynamicValue`
//! and JSON for stored state handed to `UpgradeResourceState`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

use super::diag::{Path, Step};

/// A cty type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Number,
    String,
    /// `cty.DynamicPseudoType`: the concrete type travels with the value.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }
    pub fn object<I: IntoIterator<Item = (S, Type)>, S: Into<String>>(attrs: I) -> Type {
        Type::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The JSON type expression Terraform expects in a schema (`"string"`, `["list","string"]`, ...).
    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => Json::from("bool"),
            Type::Number => Json::from("number"),
            Type::String => Json::from("string"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec!["list".into(), t.to_json()]),
            Type::Set(t) => Json::Array(vec!["set".into(), t.to_json()]),
            Type::Map(t) => Json::Array(vec!["map".into(), t.to_json()]),
            Type::Object(attrs) => {
                let m: serde_json::Map<String, Json> = attrs.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                Json::Array(vec!["object".into(), Json::Object(m)])
            }
            Type::Tuple(elems) => Json::Array(vec!["tuple".into(), Json::Array(elems.iter().map(Type::to_json).collect())]),
        }
    }

    pub fn from_json(j: &Json) -> Result<Type, CodecError> {
        let bad = || CodecError::new(format!("invalid type expression {j}"));
        match j {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(bad()),
            },
            Json::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().ok_or_else(bad)?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or_else(bad)?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or_else(bad)?;
                        Ok(Type::Tuple(elems.iter().map(Type::from_json).collect::<Result<_, _>>()?))
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => write!(f, "bool"),
            Type::Number => write!(f, "number"),
            Type::String => write!(f, "string"),
            Type::Dynamic => write!(f, "any"),
            Type::List(t) => write!(f, "list of {t}"),
            Type::Set(t) => write!(f, "set of {t}"),
            Type::Map(t) => write!(f, "map of {t}"),
            Type::Object(_) => write!(f, "object"),
            Type::Tuple(_) => write!(f, "tuple"),
        }
    }
}

/// A cty value. Collections keep their elements in wire order; sets are
/// kept as a vector of distinct elements.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Unknown,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value whose type was dynamic on the wire; carries its concrete type.
    Dynamic(Type, Box<Value>),
}

#[derive(Debug, Clone)]
pub struct CodecError {
    pub msg: String,
    /// Where in the value it happened (attribute names, map keys, indices).
    pub path: Path,
}

impl CodecError {
    pub fn new(s: impl Into<String>) -> Self {
        CodecError { msg: s.into(), path: Path::root() }
    }
    /// The same error one level further out: `step` leads to where it was.
    fn within(mut self, step: Step) -> Self {
        self.path.0.insert(0, step);
        self
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.0.is_empty() { f.write_str(&self.msg) } else { write!(f, "{}: {}", self.path, self.msg) }
    }
}

impl std::error::Error for CodecError {}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Value {
        Value::Number(i.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// The value with every unknown inside it replaced by null (typed structs
    /// then see values not yet known as unset).
    pub fn known_or_null(&self) -> Value {
        match self {
            Value::Unknown => Value::Null,
            Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), x.known_or_null())).collect()),
            Value::Map(m) => Value::Map(m.iter().map(|(k, x)| (k.clone(), x.known_or_null())).collect()),
            Value::List(x) => Value::List(x.iter().map(Value::known_or_null).collect()),
            Value::Set(x) => Value::Set(x.iter().map(Value::known_or_null).collect()),
            Value::Tuple(x) => Value::Tuple(x.iter().map(Value::known_or_null).collect()),
            other => other.clone(),
        }
    }

    /// True when neither the value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().all(Value::is_wholly_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Dynamic(_, v) => v.as_str(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple.
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }
    /// Entries of a map or object.
    pub fn entries(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }
    /// Attribute of an object (Null when absent or when self is not an object).
    pub fn get(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) | Value::Map(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) | Value::Map(m) => m.get_mut(name),
            _ => None,
        }
    }
    pub fn set_attr(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_string(), v);
        }
    }

    // ---------------------------------------------------------------- msgpack

    /// Encode as MessagePack according to `ty` (the schema's type).
    pub fn to_msgpack(&self, ty: &Type) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        encode_mp(&mut out, self, ty)?;
        Ok(out)
    }

    /// Decode MessagePack produced by Terraform, guided by `ty`.
    pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
        let mut rd = bytes;
        let v = decode_mp(&mut rd, ty)?;
        if !rd.is_empty() {
            return Err(CodecError::new("trailing bytes after msgpack value"));
        }
        Ok(v)
    }

    // ------------------------------------------------------------------- json

    /// Decode the JSON form (as found in state files) guided by `ty`.
    pub fn from_json(j: &Json, ty: &Type) -> Result<Value, CodecError> {
        if j.is_null() {
            return Ok(Value::Null);
        }
        let mismatch = || CodecError::new(format!("expected {ty}, found {j}"));
        Ok(match ty {
            Type::Bool => Value::Bool(j.as_bool().ok_or_else(mismatch)?),
            Type::Number => match j {
                Json::Number(n) => Value::Number(n.clone()),
                Json::String(s) => Value::Number(parse_number(s).ok_or_else(mismatch)?),
                _ => return Err(mismatch()),
            },
            Type::String => match j {
                Json::String(s) => Value::String(s.clone()),
                Json::Number(n) => Value::String(n.to_string()),
                Json::Bool(b) => Value::String(b.to_string()),
                _ => return Err(mismatch()),
            },
            Type::List(et) | Type::Set(et) => {
                let arr = j.as_array().ok_or_else(mismatch)?;
                let items = arr.iter().map(|e| Value::from_json(e, et)).collect::<Result<Vec<_>, _>>()?;
                if matches!(ty, Type::Set(_)) { Value::Set(dedup(items)) } else { Value::List(items) }
            }
            Type::Tuple(ets) => {
                let arr = j.as_array().ok_or_else(mismatch)?;
                if arr.len() != ets.len() {
                    return Err(mismatch());
                }
                Value::Tuple(arr.iter().zip(ets).map(|(e, t)| Value::from_json(e, t)).collect::<Result<_, _>>()?)
            }
            Type::Map(et) => {
                let obj = j.as_object().ok_or_else(mismatch)?;
                Value::Map(obj.iter().map(|(k, v)| Ok((k.clone(), Value::from_json(v, et)?))).collect::<Result<_, CodecError>>()?)
            }
            Type::Object(attrs) => {
                let obj = j.as_object().ok_or_else(mismatch)?;
                let mut out = BTreeMap::new();
                for (name, at) in attrs {
                    let v = match obj.get(name) {
                        Some(x) => Value::from_json(x, at)?,
                        None => Value::Null,
                    };
                    out.insert(name.clone(), v);
                }
                Value::Object(out)
            }
            Type::Dynamic => {
                // State files store dynamic values as {"value": ..., "type": ...}.
                let obj = j.as_object().ok_or_else(mismatch)?;
                let t = Type::from_json(obj.get("type").ok_or_else(mismatch)?)?;
                let v = Value::from_json(obj.get("value").unwrap_or(&Json::Null), &t)?;
                Value::Dynamic(t, Box::new(v))
            }
        })
    }

    /// Plain JSON view of a wholly known value (sets and tuples become arrays).
    /// Unknown values become JSON null; callers check `is_wholly_known` first.
    pub fn to_plain_json(&self) -> Json {
        match self {
            Value::Null | Value::Unknown => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Json::Array(v.iter().map(Value::to_plain_json).collect()),
            Value::Map(m) | Value::Object(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_plain_json())).collect()),
            Value::Dynamic(_, v) => v.to_plain_json(),
        }
    }

    /// Build a value of type `ty` from plain JSON (the inverse of `to_plain_json`).
    /// Object attributes missing from the JSON become null.
    pub fn from_plain_json(j: &Json, ty: &Type) -> Result<Value, CodecError> {
        if let Type::Dynamic = ty {
            if j.is_null() {
                return Ok(Value::Null);
            }
            let t = infer_type(j);
            return Ok(Value::Dynamic(t.clone(), Box::new(Value::from_json(j, &t)?)));
        }
        Value::from_json(j, ty)
    }
}

fn infer_type(j: &Json) -> Type {
    match j {
        Json::Bool(_) => Type::Bool,
        Json::Number(_) => Type::Number,
        Json::Array(a) => Type::Tuple(a.iter().map(infer_type).collect()),
        Json::Object(o) => Type::Object(o.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect()),
        _ => Type::String,
    }
}

fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn parse_number(s: &str) -> Option<serde_json::Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
}

// The cty msgpack encoding marks an unknown value as extension type 0 with
// a single zero byte of payload; refined unknowns use extension type 12.
const EXT_UNKNOWN: i8 = 0;
const EXT_UNKNOWN_REFINED: i8 = 12;

fn werr<E: fmt::Display>(e: E) -> CodecError {
    CodecError::new(format!("msgpack write: {e}"))
}

fn encode_mp(out: &mut Vec<u8>, v: &Value, ty: &Type) -> Result<(), CodecError> {
    use rmp::encode as enc;
    match v {
        Value::Null => {
            enc::write_nil(out).map_err(werr)?;
            return Ok(());
        }
        Value::Unknown => {
            enc::write_ext_meta(out, 1, EXT_UNKNOWN).map_err(werr)?;
            out.push(0);
            return Ok(());
        }
        _ => {}
    }
    if let Type::Dynamic = ty {
        // Dynamic: [type-json, value]
        let (t, inner) = match v {
            Value::Dynamic(t, inner) => (t.clone(), inner.as_ref().clone()),
            other => (infer_value_type(other), other.clone()),
        };
        enc::write_array_len(out, 2).map_err(werr)?;
        let tj = serde_json::to_vec(&t.to_json()).map_err(werr)?;
        enc::write_bin(out, &tj).map_err(werr)?;
        return encode_mp(out, &inner, &t);
    }
    let mismatch = || CodecError::new(format!("value {v:?} does not fit type {ty}"));
    match (v, ty) {
        (Value::Dynamic(_, inner), _) => encode_mp(out, inner, ty)?,
        (Value::Bool(b), Type::Bool) => enc::write_bool(out, *b).map_err(werr)?,
        (Value::Number(n), Type::Number) => {
            if let Some(i) = n.as_i64() {
                enc::write_sint(out, i).map_err(werr)?;
            } else if let Some(u) = n.as_u64() {
                enc::write_uint(out, u).map_err(werr)?;
            } else {
                enc::write_f64(out, n.as_f64().unwrap_or(0.0)).map_err(werr)?;
            }
        }
        (Value::String(s), Type::String) => enc::write_str(out, s).map_err(werr)?,
        (Value::Bool(b), Type::String) => enc::write_str(out, if *b { "true" } else { "false" }).map_err(werr)?,
        (Value::Number(n), Type::String) => enc::write_str(out, &n.to_string()).map_err(werr)?,
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::List(et) | Type::Set(et)) => {
            enc::write_array_len(out, items.len() as u32).map_err(werr)?;
            for i in items {
                encode_mp(out, i, et)?;
            }
        }
        (Value::List(items) | Value::Tuple(items), Type::Tuple(ets)) => {
            if items.len() != ets.len() {
                return Err(mismatch());
            }
            enc::write_array_len(out, items.len() as u32).map_err(werr)?;
            for (i, t) in items.iter().zip(ets) {
                encode_mp(out, i, t)?;
            }
        }
        (Value::Map(m) | Value::Object(m), Type::Map(et)) => {
            enc::write_map_len(out, m.len() as u32).map_err(werr)?;
            for (k, i) in m {
                enc::write_str(out, k).map_err(werr)?;
                encode_mp(out, i, et)?;
            }
        }
        (Value::Object(m) | Value::Map(m), Type::Object(attrs)) => {
            enc::write_map_len(out, attrs.len() as u32).map_err(werr)?;
            for (name, at) in attrs {
                enc::write_str(out, name).map_err(werr)?;
                encode_mp(out, m.get(name).unwrap_or(&Value::Null), at)?;
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn infer_value_type(v: &Value) -> Type {
    match v {
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) | Value::Null | Value::Unknown => Type::String,
        Value::List(items) => Type::list(items.first().map(infer_value_type).unwrap_or(Type::String)),
        Value::Set(items) => Type::set(items.first().map(infer_value_type).unwrap_or(Type::String)),
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_value_type).collect()),
        Value::Map(m) => Type::map(m.values().next().map(infer_value_type).unwrap_or(Type::String)),
        Value::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), infer_value_type(v))).collect()),
        Value::Dynamic(t, _) => t.clone(),
    }
}

fn rerr<E: fmt::Debug>(e: E) -> CodecError {
    CodecError::new(format!("msgpack read: {e:?}"))
}

fn take<'a>(rd: &mut &'a [u8], n: usize) -> Result<&'a [u8], CodecError> {
    if rd.len() < n {
        return Err(CodecError::new("msgpack read: unexpected end of input"));
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

fn read_string(rd: &mut &[u8], marker: rmp::Marker) -> Result<String, CodecError> {
    use rmp::Marker as M;
    let len = match marker {
        M::FixStr(n) => n as usize,
        M::Str8 | M::Bin8 => take(rd, 1)?[0] as usize,
        M::Str16 | M::Bin16 => u16::from_be_bytes(take(rd, 2)?.try_into().unwrap()) as usize,
        M::Str32 | M::Bin32 => u32::from_be_bytes(take(rd, 4)?.try_into().unwrap()) as usize,
        other => return Err(CodecError::new(format!("msgpack read: expected string, found {other:?}"))),
    };
    let bytes = take(rd, len)?;
    String::from_utf8(bytes.to_vec()).map_err(rerr)
}

fn read_len(rd: &mut &[u8], marker: rmp::Marker) -> Result<usize, CodecError> {
    use rmp::Marker as M;
    Ok(match marker {
        M::FixArray(n) | M::FixMap(n) => n as usize,
        M::Array16 | M::Map16 => u16::from_be_bytes(take(rd, 2)?.try_into().unwrap()) as usize,
        M::Array32 | M::Map32 => u32::from_be_bytes(take(rd, 4)?.try_into().unwrap()) as usize,
        other => return Err(CodecError::new(format!("msgpack read: expected collection, found {other:?}"))),
    })
}

/// Skip an extension payload and report whether it was an unknown marker.
fn read_ext(rd: &mut &[u8], marker: rmp::Marker) -> Result<Option<Value>, CodecError> {
    use rmp::Marker as M;
    let len = match marker {
        M::FixExt1 => 1,
        M::FixExt2 => 2,
        M::FixExt4 => 4,
        M::FixExt8 => 8,
        M::FixExt16 => 16,
        M::Ext8 => take(rd, 1)?[0] as usize,
        M::Ext16 => u16::from_be_bytes(take(rd, 2)?.try_into().unwrap()) as usize,
        M::Ext32 => u32::from_be_bytes(take(rd, 4)?.try_into().unwrap()) as usize,
        _ => return Ok(None),
    };
    let code = take(rd, 1)?[0] as i8;
    take(rd, len)?;
    if code == EXT_UNKNOWN || code == EXT_UNKNOWN_REFINED { Ok(Some(Value::Unknown)) } else { Err(CodecError::new(format!("msgpack read: unsupported extension type {code}"))) }
}

fn decode_mp(rd: &mut &[u8], ty: &Type) -> Result<Value, CodecError> {
    use rmp::Marker as M;
    let marker = rmp::decode::read_marker(rd).map_err(rerr)?;
    if let M::Null = marker {
        return Ok(Value::Null);
    }
    if let Some(v) = read_ext(rd, marker)? {
        return Ok(v);
    }
    let mismatch = |m: M| CodecError::new(format!("msgpack read: {m:?} does not fit type {ty}"));
    match ty {
        Type::Dynamic => {
            let n = read_len(rd, marker)?;
            if n != 2 {
                return Err(mismatch(marker));
            }
            let m2 = rmp::decode::read_marker(rd).map_err(rerr)?;
            let tj = read_string(rd, m2)?;
            let t = Type::from_json(&serde_json::from_str(&tj).map_err(rerr)?)?;
            let v = decode_mp(rd, &t)?;
            Ok(Value::Dynamic(t, Box::new(v)))
        }
        Type::Bool => match marker {
            M::True => Ok(Value::Bool(true)),
            M::False => Ok(Value::Bool(false)),
            m => Err(mismatch(m)),
        },
        Type::Number => read_number(rd, marker).map(Value::Number),
        Type::String => Ok(Value::String(read_string(rd, marker)?)),
        Type::List(et) | Type::Set(et) => {
            let n = read_len(rd, marker)?;
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                items.push(decode_mp(rd, et).map_err(|e| e.within(Step::Index(i as i64)))?);
            }
            Ok(if matches!(ty, Type::Set(_)) { Value::Set(items) } else { Value::List(items) })
        }
        Type::Tuple(ets) => {
            let n = read_len(rd, marker)?;
            if n != ets.len() {
                return Err(mismatch(marker));
            }
            Ok(Value::Tuple(ets.iter().map(|t| decode_mp(rd, t)).collect::<Result<_, _>>()?))
        }
        Type::Map(et) => {
            let n = read_len(rd, marker)?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let km = rmp::decode::read_marker(rd).map_err(rerr)?;
                let k = read_string(rd, km)?;
                let v = decode_mp(rd, et).map_err(|e| e.within(Step::Key(k.clone())))?;
                m.insert(k, v);
            }
            Ok(Value::Map(m))
        }
        Type::Object(attrs) => {
            let n = read_len(rd, marker)?;
            let mut m: BTreeMap<String, Value> = attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
            for _ in 0..n {
                let km = rmp::decode::read_marker(rd).map_err(rerr)?;
                let k = read_string(rd, km)?;
                let at = attrs.get(&k).ok_or_else(|| CodecError::new(format!("msgpack read: unexpected attribute {k:?}")))?;
                let v = decode_mp(rd, at).map_err(|e| e.within(Step::Attr(k.clone())))?;
                m.insert(k, v);
            }
            Ok(Value::Object(m))
        }
    }
}

fn read_number(rd: &mut &[u8], marker: rmp::Marker) -> Result<serde_json::Number, CodecError> {
    use rmp::Marker as M;
    let be = |rd: &mut &[u8], n: usize| -> Result<u64, CodecError> {
        let b = take(rd, n)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64))
    };
    Ok(match marker {
        M::FixPos(n) => (n as i64).into(),
        M::FixNeg(n) => (n as i64).into(),
        M::U8 => be(rd, 1)?.into(),
        M::U16 => be(rd, 2)?.into(),
        M::U32 => be(rd, 4)?.into(),
        M::U64 => be(rd, 8)?.into(),
        M::I8 => (be(rd, 1)? as u8 as i8 as i64).into(),
        M::I16 => (be(rd, 2)? as u16 as i16 as i64).into(),
        M::I32 => (be(rd, 4)? as u32 as i32 as i64).into(),
        M::I64 => (be(rd, 8)? as i64).into(),
        M::F32 => num_from_f64(f32::from_bits(be(rd, 4)? as u32) as f64)?,
        M::F64 => num_from_f64(f64::from_bits(be(rd, 8)?))?,
        m @ (M::FixStr(_) | M::Str8 | M::Str16 | M::Str32) => {
            let s = read_string(rd, m)?;
            parse_number(&s).ok_or_else(|| CodecError::new(format!("the number {s} is out of range (at most about 1.8e308)")))?
        }
        m => return Err(CodecError::new(format!("msgpack read: {m:?} is not a number"))),
    })
}

fn num_from_f64(f: f64) -> Result<serde_json::Number, CodecError> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok((f as i64).into());
    }
    serde_json::Number::from_f64(f).ok_or_else(|| CodecError::new("msgpack read: non-finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_type() -> Type {
        Type::object([
            ("name", Type::String),
            ("count", Type::Number),
            ("on", Type::Bool),
            ("tags", Type::map(Type::String)),
            ("ids", Type::set(Type::String)),
            ("items", Type::list(Type::object([("port", Type::Number)]))),
            ("any", Type::Dynamic),
        ])
    }

    #[test]
    fn msgpack_round_trip_with_unknowns() {
        let ty = sample_type();
        let mut v = Value::Object(BTreeMap::new());
        v.set_attr("name", Value::string("svc"));
        v.set_attr("count", Value::int(-3));
        v.set_attr("on", Value::Unknown);
        v.set_attr("tags", Value::Map([("a".to_string(), Value::string("b"))].into()));
        v.set_attr("ids", Value::Set(vec![Value::string("x"), Value::Unknown]));
        v.set_attr("items", Value::List(vec![Value::Object([("port".to_string(), Value::int(4567))].into())]));
        v.set_attr("any", Value::Dynamic(Type::String, Box::new(Value::string("dyn"))));
        let bytes = v.to_msgpack(&ty).unwrap();
        let back = Value::from_msgpack(&bytes, &ty).unwrap();
        assert_eq!(back, v);
        assert!(!back.is_wholly_known());
    }

    #[test]
    fn unknown_is_fixext1_type_zero() {
        assert_eq!(Value::Unknown.to_msgpack(&Type::String).unwrap(), vec![0xd4, 0, 0]);
        // A refined unknown (extension 12 with a map payload) also decodes as unknown.
        let refined = [0xc7, 0x03, 12, 0x81, 0x01, 0xc3];
        assert_eq!(Value::from_msgpack(&refined, &Type::String).unwrap(), Value::Unknown);
    }

    #[test]
    fn numbers_decode_from_every_msgpack_form() {
        for (bytes, want) in [
            (vec![0x05], 5i64),
            (vec![0xff], -1),
            (vec![0xcd, 0x01, 0x00], 256),
            (vec![0xd2, 0xff, 0xff, 0xff, 0xfe], -2),
            (vec![0xcb, 0x40, 0x59, 0, 0, 0, 0, 0, 0], 100),
            (vec![0xa2, b'4', b'2'], 42),
        ] {
            assert_eq!(Value::from_msgpack(&bytes, &Type::Number).unwrap().as_i64(), Some(want));
        }
        let f = Value::from_msgpack(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], &Type::Number).unwrap();
        assert_eq!(f, Value::Number(serde_json::Number::from_f64(1.5).unwrap()));
    }

    #[test]
    fn type_json_round_trip() {
        let ty = sample_type();
        assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
        assert_eq!(Type::list(Type::String).to_json(), serde_json::json!(["list", "string"]));
    }

    #[test]
    fn json_state_decoding_fills_missing_attributes_with_null() {
        let ty = sample_type();
        let j = serde_json::json!({"name": "svc", "count": 2, "ids": ["a", "a", "b"], "any": {"value": 3, "type": "number"}});
        let v = Value::from_json(&j, &ty).unwrap();
        assert_eq!(v.get("name").as_str(), Some("svc"));
        assert_eq!(v.get("count").as_i64(), Some(2));
        assert!(v.get("tags").is_null());
        assert_eq!(v.get("ids").elements().unwrap().len(), 2);
        assert_eq!(v.get("any"), &Value::Dynamic(Type::Number, Box::new(Value::int(3))));
        assert!(Value::from_json(&serde_json::json!({"count": "x"}), &ty).is_err());
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(Value::from_msgpack(&[0xc3], &Type::String).is_err());
        assert!(Value::from_msgpack(&[0x01, 0x02], &Type::Number).is_err());
        let obj = Type::object([("a", Type::String)]);
        // {"b": "x"} has an attribute the schema does not know.
        assert!(Value::from_msgpack(&[0x81, 0xa1, b'b', 0xa1, b'x'], &obj).is_err());
    }
}
