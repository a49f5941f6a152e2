//! Small validation helpers over configuration values. Unknown values are
//! skipped: they are checked again once known (plan or apply).

use super::diag::{Diags, Path};
use super::value::Value;

/// Known string entries of a map attribute, with their paths.
pub fn map_entries<'a>(config: &'a Value, attr: &str) -> Vec<(Path, &'a str, &'a Value)> {
    config.get(attr).entries().map(|m| m.iter().map(|(k, v)| (Path::attr(attr).key(k.clone()), k.as_str(), v)).collect()).unwrap_or_default()
}

/// Known strings of a list/set attribute with their paths.
pub fn list_strings<'a>(config: &'a Value, attr: &str) -> Vec<(Path, &'a str)> {
    config.get(attr).elements().map(|items| items.iter().enumerate().filter_map(|(i, v)| v.as_str().map(|s| (Path::attr(attr).index(i), s))).collect()).unwrap_or_default()
}

/// Error unless `n` (when known) lies in `lo..=hi`.
pub fn int_range(d: &mut Diags, v: &Value, path: Path, lo: i64, hi: i64) {
    if let Value::Number(n) = v {
        match n.as_i64() {
            Some(i) if (lo..=hi).contains(&i) => {}
            _ => d.attr_error(path, "Value out of range", format!("Must be a whole number from {lo} to {hi}.")),
        }
    }
}
