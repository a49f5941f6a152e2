//! Schemas: attributes, nested attributes and blocks, with builders so a
//! resource's schema reads like its documentation. Also the plan-time walks
//! that only need the schema (unknown computed values, write-only nulling,
//! replacement detection).

use std::collections::BTreeMap;

use super::check::Check;
use super::diag::{Path, Step};
use super::value::{Type, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
    Group,
}

#[derive(Clone, Debug)]
pub enum AttrType {
    Plain(Type),
    Nested(Nesting, Vec<Attribute>),
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub write_only: bool,
    pub deprecated: Option<String>,
    /// A change to this attribute replaces the resource (provider-side only).
    pub force_new: bool,
    /// A computed value that stays as it was unless the resource is replaced.
    pub stable: bool,
    /// The value plan fills in when the configuration leaves the attribute unset.
    pub default: Option<Value>,
    /// Rules a configured value must follow (checked at validate time, written in the docs).
    pub checks: Vec<Check>,
}

impl Attribute {
    pub fn new(name: &str, ty: Type) -> Attribute {
        Attribute {
            name: name.to_string(),
            ty: AttrType::Plain(ty),
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecated: None,
            force_new: false,
            stable: false,
            default: None,
            checks: Vec::new(),
        }
    }
    pub fn nested(name: &str, nesting: Nesting, attrs: Vec<Attribute>) -> Attribute {
        let mut a = Attribute::new(name, Type::String);
        a.ty = AttrType::Nested(nesting, attrs);
        a
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    /// Optional and computed: the provider fills in a default when unset.
    pub fn defaulted(mut self) -> Self {
        self.optional = true;
        self.computed = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    /// Computed, and kept from prior state on updates (ids, ARNs).
    pub fn stable(mut self) -> Self {
        self.stable = true;
        self
    }
    /// Optional, with `v` planned when unset (the docs say so).
    pub fn default(mut self, v: Value) -> Self {
        self.optional = true;
        self.computed = true;
        self.default = Some(v);
        self
    }
    /// A rule the value must follow.
    pub fn check(mut self, c: Check) -> Self {
        self.checks.push(c);
        self
    }
    pub fn deprecated(mut self, msg: &str) -> Self {
        self.deprecated = Some(msg.to_string());
        self
    }
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    pub fn value_type(&self) -> Type {
        match &self.ty {
            AttrType::Plain(t) => t.clone(),
            AttrType::Nested(n, attrs) => {
                let obj = Type::Object(attrs.iter().map(|a| (a.name.clone(), a.value_type())).collect());
                wrap(*n, obj)
            }
        }
    }
}

fn wrap(n: Nesting, obj: Type) -> Type {
    match n {
        Nesting::Single | Nesting::Group => obj,
        Nesting::List => Type::list(obj),
        Nesting::Set => Type::set(obj),
        Nesting::Map => Type::map(obj),
    }
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn new(name: &str, nesting: Nesting, block: Block) -> NestedBlock {
        NestedBlock { name: name.to_string(), nesting, block, min_items: 0, max_items: 0 }
    }
    pub fn min(mut self, n: i64) -> Self {
        self.min_items = n;
        self
    }
    pub fn max(mut self, n: i64) -> Self {
        self.max_items = n;
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    pub description: String,
    pub deprecated: bool,
}

impl Block {
    pub fn new(attributes: Vec<Attribute>) -> Block {
        Block { attributes, ..Default::default() }
    }
    pub fn with_blocks(mut self, blocks: Vec<NestedBlock>) -> Self {
        self.blocks = blocks;
        self
    }
    pub fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self.attributes.iter().map(|a| (a.name.clone(), a.value_type())).collect();
        for b in &self.blocks {
            attrs.insert(b.name.clone(), wrap(b.nesting, b.block.value_type()));
        }
        Type::Object(attrs)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
    pub fn block(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// Names of write-only attributes anywhere in the block tree, as paths.
    pub fn write_only_paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        for a in &self.attributes {
            if a.write_only {
                out.push(Path::attr(&a.name));
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(version: i64, block: Block) -> Schema {
        Schema { version, block }
    }
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

/// Null every write-only attribute (top level and inside nested blocks):
/// Terraform requires planned and new state to hold null for them.
pub fn null_write_only(block: &Block, v: &mut Value) {
    let Value::Object(m) = v else { return };
    for a in &block.attributes {
        if a.write_only {
            m.insert(a.name.clone(), Value::Null);
        }
    }
    for b in &block.blocks {
        if let Some(child) = m.get_mut(&b.name) {
            for_each_block_object(child, |o| null_write_only(&b.block, o));
        }
    }
}

/// `v` with the write-only values of `config` put back, for code that acts
/// on them during plan or apply (the planned value itself holds none).
/// Blocks nested once (`Nesting::Single`) are followed; write-only attributes
/// in repeated blocks have no single place to go back to.
pub fn with_write_only(block: &Block, v: &Value, config: &Value) -> Value {
    let mut out = v.clone();
    let Value::Object(m) = &mut out else { return out };
    for a in block.attributes.iter().filter(|a| a.write_only) {
        m.insert(a.name.clone(), config.get(&a.name).clone());
    }
    for b in block.blocks.iter().filter(|b| b.nesting == Nesting::Single) {
        if let Some(child @ Value::Object(_)) = m.get(&b.name) {
            let filled = with_write_only(&b.block, child, config.get(&b.name));
            m.insert(b.name.clone(), filled);
        }
    }
    out
}

fn for_each_block_object(v: &mut Value, mut f: impl FnMut(&mut Value)) {
    match v {
        Value::Object(_) => f(v),
        Value::List(items) | Value::Set(items) => items.iter_mut().for_each(&mut f),
        Value::Map(m) => m.values_mut().for_each(&mut f),
        _ => {}
    }
}

/// Set every attribute the configuration left null to its declared default,
/// in nested attributes and blocks too.
pub fn fill_defaults(block: &Block, v: &mut Value) {
    let Value::Object(m) = v else { return };
    for a in &block.attributes {
        let slot = m.entry(a.name.clone()).or_insert(Value::Null);
        if slot.is_null() {
            if let Some(d) = &a.default {
                *slot = d.clone();
            }
        }
        if let AttrType::Nested(n, attrs) = &a.ty {
            let inner = Block::new(attrs.clone());
            match n {
                Nesting::Single | Nesting::Group => fill_defaults(&inner, slot),
                _ => for_each_block_object(slot, |o| fill_defaults(&inner, o)),
            }
        }
    }
    for b in &block.blocks {
        if let Some(child) = m.get_mut(&b.name) {
            for_each_block_object(child, |o| fill_defaults(&b.block, o));
        }
    }
}

/// For a create: every computed attribute the configuration left null becomes unknown.
pub fn mark_computed_unknown(block: &Block, v: &mut Value) {
    let Value::Object(m) = v else { return };
    for a in &block.attributes {
        if a.computed && !a.write_only && m.get(&a.name).is_none_or(Value::is_null) {
            m.insert(a.name.clone(), Value::Unknown);
        }
    }
    for b in &block.blocks {
        if let Some(child) = m.get_mut(&b.name) {
            for_each_block_object(child, |o| mark_computed_unknown(&b.block, o));
        }
    }
}

/// For an update that changes something: computed-only attributes that are not
/// `stable` become unknown (the provider will learn them during apply);
/// stable ones keep their prior value.
pub fn mark_volatile_unknown(block: &Block, planned: &mut Value) {
    let Value::Object(m) = planned else { return };
    for a in &block.attributes {
        if a.computed && !a.optional && !a.stable && !a.write_only {
            m.insert(a.name.clone(), Value::Unknown);
        }
    }
}

/// Paths of `force_new` attributes (top level and in nested blocks) whose value
/// differs between prior state and the proposed new state.
pub fn replace_paths(block: &Block, prior: &Value, proposed: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    walk_replace(block, prior, proposed, &Path::root(), &mut out);
    out
}

fn walk_replace(block: &Block, prior: &Value, proposed: &Value, at: &Path, out: &mut Vec<Path>) {
    for a in &block.attributes {
        if a.force_new && prior.get(&a.name) != proposed.get(&a.name) {
            out.push(at.then_attr(&a.name));
        }
    }
    for b in &block.blocks {
        let (p, n) = (prior.get(&b.name), proposed.get(&b.name));
        match (b.nesting, p, n) {
            (Nesting::Single | Nesting::Group, _, _) => walk_replace(&b.block, p, n, &at.then_attr(&b.name), out),
            (Nesting::List, Value::List(pi), Value::List(ni)) => {
                for (i, (x, y)) in pi.iter().zip(ni).enumerate() {
                    walk_replace(&b.block, x, y, &at.then_attr(&b.name).index(i), out);
                }
            }
            _ => {}
        }
    }
}

/// Compare two objects ignoring computed-only attributes: tells whether the
/// user's configuration changed anything relative to prior state.
pub fn config_differs(block: &Block, prior: &Value, proposed: &Value) -> bool {
    for a in &block.attributes {
        if a.write_only || (a.computed && !a.optional) {
            continue;
        }
        if prior.get(&a.name) != proposed.get(&a.name) {
            return true;
        }
    }
    block.blocks.iter().any(|b| prior.get(&b.name) != proposed.get(&b.name))
}

/// Find the value at a path (Null when absent).
pub fn value_at<'a>(v: &'a Value, path: &Path) -> &'a Value {
    static NULL: Value = Value::Null;
    let mut cur = v;
    for s in &path.0 {
        cur = match (s, cur) {
            (Step::Attr(a), _) | (Step::Key(a), _) if cur.entries().is_some() => cur.get(a),
            (Step::Index(i), _) if cur.elements().is_some() => cur.elements().unwrap().get(*i as usize).unwrap_or(&NULL),
            _ => return &NULL,
        };
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block::new(vec![
            Attribute::new("name", Type::String).required().force_new(),
            Attribute::new("arn", Type::String).computed().stable(),
            Attribute::new("version", Type::Number).computed(),
            Attribute::new("size", Type::Number).defaulted(),
            Attribute::new("secret_wo", Type::String).optional().write_only().sensitive(),
        ])
        .with_blocks(vec![
            NestedBlock::new(
                "container",
                Nesting::List,
                Block::new(vec![Attribute::new("image", Type::String).required(), Attribute::new("name", Type::String).required().force_new()]),
            )
            .min(1),
        ])
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn block_type_includes_nested_blocks() {
        let t = block().value_type();
        let Type::Object(attrs) = t else { panic!() };
        assert_eq!(attrs.get("container"), Some(&Type::list(Type::object([("image", Type::String), ("name", Type::String)]))));
        assert_eq!(attrs.len(), 6);
    }

    #[test]
    fn create_marks_computed_unknown_and_nulls_write_only() {
        let b = block();
        let mut v = obj(&[("name", Value::string("a")), ("secret_wo", Value::string("s3cret")), ("size", Value::Null)]);
        mark_computed_unknown(&b, &mut v);
        null_write_only(&b, &mut v);
        assert!(v.get("arn").is_unknown());
        assert!(v.get("size").is_unknown());
        assert!(v.get("secret_wo").is_null());
        assert_eq!(v.get("name").as_str(), Some("a"));
    }

    #[test]
    fn write_only_values_come_back_from_configuration_in_single_blocks() {
        let b = Block::new(vec![Attribute::new("name", Type::String).required(), Attribute::new("top_wo", Type::String).optional().write_only()])
            .with_blocks(vec![NestedBlock::new("signing", Nesting::Single, Block::new(vec![Attribute::new("key_wo", Type::String).optional().write_only()]))]);
        let planned = obj(&[("name", Value::string("a")), ("top_wo", Value::Null), ("signing", obj(&[("key_wo", Value::Null)]))]);
        let config = obj(&[("name", Value::string("a")), ("top_wo", Value::string("t")), ("signing", obj(&[("key_wo", Value::string("k"))]))]);
        let v = with_write_only(&b, &planned, &config);
        assert_eq!((v.get("top_wo").as_str(), v.get("signing").get("key_wo").as_str()), (Some("t"), Some("k")));
        assert!(planned.get("signing").get("key_wo").is_null(), "the planned value itself is untouched");
        let mut back = v;
        null_write_only(&b, &mut back);
        assert_eq!(back, planned);
    }

    #[test]
    fn replacement_paths_reach_into_blocks() {
        let b = block();
        let c = |n: &str| obj(&[("image", Value::string("img")), ("name", Value::string(n))]);
        let prior = obj(&[("name", Value::string("a")), ("container", Value::List(vec![c("x")]))]);
        let next = obj(&[("name", Value::string("b")), ("container", Value::List(vec![c("y")]))]);
        let paths: Vec<String> = replace_paths(&b, &prior, &next).iter().map(|p| p.to_string()).collect();
        assert_eq!(paths, vec!["name", "container[0].name"]);
        assert!(config_differs(&b, &prior, &next));
        assert!(!config_differs(&b, &prior, &prior));
    }

    #[test]
    fn value_at_follows_paths() {
        let v = obj(&[("container", Value::List(vec![obj(&[("image", Value::string("i"))])]))]);
        assert_eq!(value_at(&v, &Path::attr("container").index(0).then_attr("image")).as_str(), Some("i"));
        assert!(value_at(&v, &Path::attr("nope").index(3)).is_null());
    }
}
