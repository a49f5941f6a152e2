//! Checks declared on attributes: the schema says what a valid value is, the
//! generic walk in [`validate`] applies it at `terraform validate` time with
//! the attribute's path, and the docs generator writes the same rule in
//! words. Unknown values are skipped (they are checked again once known).

use std::collections::BTreeMap;

use super::diag::{Diags, Path};
use super::schema::{AttrType, Attribute, Block, Nesting};
use super::value::{Type, Value};

/// The longest operation time limit accepted anywhere (`timeouts`, waits).
pub const MAX_DURATION_SECS: u64 = 24 * 3600;

/// One rule a value must follow.
#[derive(Clone, Debug)]
pub enum Check {
    /// A whole number from `.0` to `.1`.
    Int(i64, i64),
    /// A whole number from the list.
    IntIn(&'static [i64]),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A string of `.0` to `.1` characters.
    Len(usize, usize),
    /// A string matching the regular expression (anchored); `.1` says in words what is expected.
    Matches(&'static str, &'static str),
    /// A duration written like `30s`, `20m`, `1h30m`: at least one second, at most `.0` seconds.
    Duration(u64),
    /// An IPv4 or IPv6 CIDR block.
    Cidr,
    /// An IPv4 CIDR block.
    Ipv4Cidr,
    /// An ARN of `service` whose resource part starts with `resource` (empty: any).
    Arn { service: &'static str, resource: &'static str },
    /// A collection of `.0` to `.1` elements.
    Items(usize, usize),
    /// Every element of a list or set, every value of a map.
    Each(Box<Check>),
    /// Every key of a map.
    Keys(Box<Check>),
    /// AWS tags: keys 1-128 characters, values at most 256, no `aws:` or `cxflow:` keys, no two keys equal but for case.
    Tags,
    /// Anything else, as a function of the (known, non-null) value returning the problem; `.1` describes the rule for the docs.
    Custom(fn(&Value) -> Result<(), String>, &'static str),
}

/// Keys no user tag may use: `aws:` belongs to AWS, `cxflow:` to this provider's ownership tags.
pub const RESERVED_TAG_PREFIXES: &[&str] = &["aws:", "cxflow:"];

impl Check {
    pub fn each(c: Check) -> Check {
        Check::Each(Box::new(c))
    }
    pub fn keys(c: Check) -> Check {
        Check::Keys(Box::new(c))
    }

    /// The rule in words, for the docs: "Between 1 and 65535."
    pub fn describe(&self) -> String {
        match self {
            Check::Int(lo, hi) => format!("A whole number from {lo} to {hi}."),
            Check::IntIn(list) => format!("One of {}.", list.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")),
            Check::OneOf(list) => format!("One of {}.", list.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")),
            Check::Len(lo, hi) if lo == hi => format!("Exactly {lo} characters."),
            Check::Len(lo, hi) => format!("{lo} to {hi} characters."),
            Check::Matches(_, what) => format!("{}.", what.trim_end_matches('.')),
            Check::Duration(max) => format!("A duration such as `30s`, `20m` or `1h30m`, at most {}.", human_secs(*max)),
            Check::Cidr => "An IPv4 or IPv6 CIDR block.".into(),
            Check::Ipv4Cidr => "An IPv4 CIDR block.".into(),
            Check::Arn { service, resource: "" } => format!("An `{service}` ARN."),
            Check::Arn { service, resource } => format!("An `{service}` ARN of a `{resource}`."),
            Check::Items(lo, hi) if *hi == usize::MAX => format!("At least {lo} elements."),
            Check::Items(lo, hi) => format!("{lo} to {hi} elements."),
            Check::Each(c) => format!("Each element: {}", lower_first(&c.describe())),
            Check::Keys(c) => format!("Each key: {}", lower_first(&c.describe())),
            Check::Tags => {
                "Keys of 1 to 128 characters, values of at most 256; keys starting with `aws:` or `cxflow:` are reserved, and no two keys may differ only by case.".into()
            }
            Check::Custom(_, doc) => doc.to_string(),
        }
    }

    /// Check a known, non-null value. `quote` says whether the value may appear in the message.
    pub fn apply(&self, v: &Value, path: &Path, quote: bool, d: &mut Diags) {
        let shown = |v: &Value| -> String {
            match v.as_str() {
                Some(s) if quote && s.chars().count() <= 80 => format!(" ({s:?})"),
                _ => String::new(),
            }
        };
        match self {
            Check::Int(lo, hi) => match whole(v) {
                Some(Some(i)) if (*lo..=*hi).contains(&i) => {}
                Some(Some(i)) => d.attr_error(path.clone(), "Value out of range", format!("{path} must be a whole number from {lo} to {hi}, not {i}.")),
                Some(None) => d.attr_error(path.clone(), "Value out of range", format!("{path} must be a whole number from {lo} to {hi}.")),
                None => {}
            },
            Check::IntIn(list) => {
                if let Some(i) = whole(v) {
                    if !i.is_some_and(|i| list.contains(&i)) {
                        d.attr_error(path.clone(), "Value not allowed", format!("{path} must be one of {list:?}."));
                    }
                }
            }
            Check::OneOf(list) => {
                if let Some(s) = v.as_str() {
                    if !list.contains(&s) {
                        d.attr_error(path.clone(), "Value not allowed", format!("{path}{} must be one of {}.", shown(v), list.join(", ")));
                    }
                }
            }
            Check::Len(lo, hi) => {
                if let Some(s) = v.as_str() {
                    let n = s.chars().count();
                    if n < *lo || n > *hi {
                        d.attr_error(path.clone(), "Wrong length", format!("{path} must be {lo} to {hi} characters long; it has {n}."));
                    }
                }
            }
            Check::Matches(re, what) => {
                if let Some(s) = v.as_str() {
                    if !regex_for(re).is_match(s) {
                        d.attr_error(path.clone(), "Invalid value", format!("{path}{}: {}.", shown(v), what.trim_end_matches('.')));
                    }
                }
            }
            Check::Duration(max) => {
                if let Some(s) = v.as_str() {
                    match parse_duration(s) {
                        Some(t) if t.as_secs() >= 1 && t.as_secs() <= *max => {}
                        Some(_) => d.attr_error(path.clone(), "Duration out of range", format!("{path} must be from 1s to {}.", human_secs(*max))),
                        None => d.attr_error(path.clone(), "Invalid duration", format!("{path}{}: write a duration like 30s, 20m or 1h30m.", shown(v))),
                    }
                }
            }
            Check::Cidr | Check::Ipv4Cidr => {
                if let Some(s) = v.as_str() {
                    let ok = if matches!(self, Check::Cidr) { s.parse::<ipnet::IpNet>().is_ok() } else { s.parse::<ipnet::Ipv4Net>().is_ok() };
                    if !ok {
                        let want = if matches!(self, Check::Cidr) { "an IPv4 or IPv6 CIDR block such as 10.0.0.0/16" } else { "an IPv4 CIDR block such as 10.0.0.0/16" };
                        d.attr_error(path.clone(), "Invalid CIDR block", format!("{path}{} must be {want}.", shown(v)));
                    }
                }
            }
            Check::Arn { service, resource } => {
                if let Some(s) = v.as_str() {
                    if !arn_ok(s, service, resource) {
                        let what = if resource.is_empty() { String::new() } else { format!(" of a {resource}") };
                        d.attr_error(path.clone(), "Invalid ARN", format!("{path}{} must be an ARN of {service}{what} (arn:aws:{service}:...).", shown(v)));
                    }
                }
            }
            Check::Items(lo, hi) => {
                if let Some(n) = v.elements().map(<[Value]>::len).or_else(|| v.entries().map(BTreeMap::len)) {
                    if n < *lo || n > *hi {
                        let range = if *hi == usize::MAX { format!("at least {lo}") } else { format!("{lo} to {hi}") };
                        d.attr_error(path.clone(), "Wrong number of elements", format!("{path} must have {range} elements; it has {n}."));
                    }
                }
            }
            Check::Each(c) => {
                if let Some(items) = v.elements() {
                    for (i, x) in items.iter().enumerate() {
                        if x.is_wholly_known() && !x.is_null() {
                            c.apply(x, &path.index(i), quote, d);
                        }
                    }
                } else if let Some(m) = v.entries() {
                    for (k, x) in m {
                        if x.is_wholly_known() && !x.is_null() {
                            c.apply(x, &path.key(k.clone()), quote, d);
                        }
                    }
                }
            }
            Check::Keys(c) => {
                if let Some(m) = v.entries() {
                    for k in m.keys() {
                        c.apply(&Value::string(k), &path.key(k.clone()), true, d);
                    }
                }
            }
            Check::Tags => check_tags(v, path, d),
            Check::Custom(f, _) => {
                if let Err(m) = f(v) {
                    d.attr_error(path.clone(), "Invalid value", format!("{path}: {m}"));
                }
            }
        }
    }
}

/// `Some(Some(i))` for a whole number, `Some(None)` for another number (a
/// fraction, or beyond 64 bits), `None` for a value that is not a number.
fn whole(v: &Value) -> Option<Option<i64>> {
    match v {
        Value::Number(n) => Some(n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18).map(|f| f as i64))),
        _ => None,
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn human_secs(s: u64) -> String {
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn regex_for(re: &'static str) -> regex::Regex {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<&'static str, regex::Regex>>> = OnceLock::new();
    let mut c = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    c.entry(re).or_insert_with(|| regex::Regex::new(&format!("^(?:{re})$")).expect("checks use valid regular expressions")).clone()
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>`.
pub fn arn_ok(s: &str, service: &str, resource: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
        && parts[2] == service
        && !parts[5].is_empty()
        && (resource.is_empty() || parts[5].starts_with(resource))
        && !s.chars().any(char::is_whitespace)
}

/// Parse a Go-style duration ("1h", "15m", "900s", "1h30m"); None when it is
/// malformed or too long to represent. Never panics, whatever the input.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut seen = false;
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        seen = true;
    }
    if !num.is_empty() || !seen {
        return None;
    }
    Some(std::time::Duration::from_secs(total))
}

fn check_tags(v: &Value, path: &Path, d: &mut Diags) {
    let Some(m) = v.entries() else { return };
    let mut lower: BTreeMap<String, &str> = BTreeMap::new();
    for (k, x) in m {
        let p = path.key(k.clone());
        let n = k.chars().count();
        if n == 0 || n > 128 {
            d.attr_error(p.clone(), "Invalid tag key", format!("{path}: tag keys are 1 to 128 characters; {k:?} has {n}."));
        }
        if let Some(prefix) = RESERVED_TAG_PREFIXES.iter().find(|r| k.to_ascii_lowercase().starts_with(*r)) {
            d.attr_error(p.clone(), "Reserved tag key", format!("{path}: the tag key {k:?} is reserved (`{prefix}` keys belong to AWS or to this provider's ownership tags)."));
        }
        if let Some(other) = lower.insert(k.to_lowercase(), k) {
            d.attr_error(p.clone(), "Duplicate tag key", format!("{path}: {k:?} and {other:?} differ only by case; IAM and other services treat them as the same key."));
        }
        if let Some(s) = x.as_str() {
            if s.chars().count() > 256 {
                d.attr_error(p, "Tag value too long", format!("{path}: the value of tag {k:?} has {} characters; AWS allows at most 256.", s.chars().count()));
            }
        }
    }
}

/// Apply the schema to a configuration: required attributes must not be
/// null, collections must not hold null elements, and every declared
/// [`Check`] must pass. Every error names its attribute.
pub fn validate(block: &Block, config: &Value) -> Diags {
    let mut d = Diags::new();
    walk_block(block, config, &Path::root(), &mut d);
    d
}

fn walk_block(block: &Block, v: &Value, at: &Path, d: &mut Diags) {
    if !matches!(v, Value::Object(_)) {
        return;
    }
    for a in &block.attributes {
        walk_attribute(a, v.get(&a.name), &at.then_attr(&a.name), d);
    }
    for b in &block.blocks {
        let child = v.get(&b.name);
        let p = at.then_attr(&b.name);
        match b.nesting {
            Nesting::Single | Nesting::Group => walk_block(&b.block, child, &p, d),
            _ => each_element(child, &p, |x, xp| walk_block(&b.block, x, &xp, d)),
        }
    }
}

fn each_element(v: &Value, p: &Path, mut f: impl FnMut(&Value, Path)) {
    if let Some(items) = v.elements() {
        for (i, x) in items.iter().enumerate() {
            f(x, p.index(i));
        }
    } else if let Some(m) = v.entries() {
        for (k, x) in m {
            f(x, p.key(k.clone()));
        }
    }
}

fn walk_attribute(a: &Attribute, v: &Value, p: &Path, d: &mut Diags) {
    if v.is_unknown() {
        return;
    }
    if v.is_null() {
        if a.required {
            d.attr_error(p.clone(), "Missing value", format!("{p} is required and must not be null."));
        }
        return;
    }
    match &a.ty {
        AttrType::Plain(t) => null_elements(t, v, p, d),
        AttrType::Nested(nesting, attrs) => {
            let inner = Block::new(attrs.clone());
            match nesting {
                Nesting::Single | Nesting::Group => walk_block(&inner, v, p, d),
                _ => each_element(v, p, |x, xp| {
                    if x.is_null() {
                        d.attr_error(xp.clone(), "Missing value", format!("{xp} must not be null."));
                    } else {
                        walk_block(&inner, x, &xp, d);
                    }
                }),
            }
        }
    }
    if v.is_wholly_known() {
        for c in &a.checks {
            c.apply(v, p, !a.sensitive && !a.write_only, d);
        }
    }
}

/// Collections of primitives may not hold null: every AWS field they feed rejects it.
fn null_elements(t: &Type, v: &Value, p: &Path, d: &mut Diags) {
    let elem = match t {
        Type::List(e) | Type::Set(e) | Type::Map(e) => e,
        _ => return,
    };
    each_element(v, p, |x, xp| {
        if x.is_null() {
            d.attr_error(xp.clone(), "Missing value", format!("{xp} must not be null."));
        } else {
            null_elements(elem, x, &xp, d);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::NestedBlock;

    fn paths(d: &Diags) -> Vec<String> {
        d.0.iter().map(|x| x.path.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn block() -> Block {
        Block::new(vec![
            Attribute::new("name", Type::String).required().check(Check::Len(1, 5)),
            Attribute::new("count", Type::Number).optional().check(Check::Int(0, 10)),
            Attribute::new("ids", Type::set(Type::String)).optional().check(Check::each(Check::Matches("subnet-[0-9a-f]+", "a subnet ID such as subnet-0123abcd"))),
            Attribute::new("tags", Type::map(Type::String)).optional().check(Check::Tags),
            Attribute::nested("envs", Nesting::Map, vec![Attribute::new("tag", Type::String).required()]).optional(),
            Attribute::new("secret", Type::String).optional().sensitive().check(Check::Len(1, 3)),
        ])
        .with_blocks(vec![NestedBlock::new(
            "timeouts",
            Nesting::Single,
            Block::new(vec![Attribute::new("create", Type::String).optional().check(Check::Duration(MAX_DURATION_SECS))]),
        )])
    }

    #[test]
    fn nulls_are_refused_where_a_value_is_required_or_inside_collections() {
        let v = obj(&[
            ("name", Value::Null),
            ("ids", Value::Set(vec![Value::Null])),
            ("tags", Value::Map([("a".to_string(), Value::Null)].into())),
            ("envs", Value::Map([("prod".to_string(), Value::Null)].into())),
        ]);
        let p = paths(&validate(&block(), &v));
        assert_eq!(p, ["name", "ids[0]", "tags[\"a\"]", "envs[\"prod\"]"]);
    }

    #[test]
    fn checks_name_the_attribute_and_keep_sensitive_values_out() {
        let v = obj(&[
            ("name", Value::string("toolong")),
            ("count", Value::Number(serde_json::Number::from_f64(1.5).unwrap())),
            ("ids", Value::Set(vec![Value::string("sg-1")])),
            ("tags", Value::Map([("Team".to_string(), Value::string("a")), ("team".to_string(), Value::string("b")), (String::new(), Value::string("c"))].into())),
            ("secret", Value::string("hunter2")),
            ("timeouts", obj(&[("create", Value::string("9999999999999999999s"))])),
        ]);
        let d = validate(&block(), &v);
        let p = paths(&d);
        assert_eq!(p, ["name", "count", "ids[0]", "tags[\"\"]", "tags[\"team\"]", "secret", "timeouts.create"], "{d}");
        assert!(!d.to_string().contains("hunter2"), "{d}");
        assert!(d.to_string().contains("\"sg-1\""), "plain values are quoted: {d}");
    }

    #[test]
    fn durations_never_overflow() {
        assert_eq!(parse_duration("1h30m").map(|d| d.as_secs()), Some(5400));
        assert_eq!(parse_duration("9999999999999999999h"), None);
        assert_eq!(parse_duration("99999999999999999999999s"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn arns_are_checked_by_service_and_resource() {
        assert!(arn_ok("arn:aws:iam::123456789012:role/x", "iam", "role/"));
        assert!(!arn_ok("arn:aws:iam::123456789012:user/x", "iam", "role/"));
        assert!(!arn_ok("arn:aws:s3:::b", "iam", ""));
        assert!(!arn_ok("not-an-arn", "iam", ""));
    }

    #[test]
    fn rules_read_as_sentences() {
        assert_eq!(Check::Int(1, 65535).describe(), "A whole number from 1 to 65535.");
        assert_eq!(Check::Duration(MAX_DURATION_SECS).describe(), "A duration such as `30s`, `20m` or `1h30m`, at most 24h.");
        assert_eq!(Check::each(Check::Cidr).describe(), "Each element: an IPv4 or IPv6 CIDR block.");
    }
}
