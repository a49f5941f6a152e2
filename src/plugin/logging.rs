//! Logging: `tracing` events written to stderr as the JSON lines go-plugin
//! understands (`@level`, `@message`, `@timestamp`, `@module` and fields), so
//! Terraform forwards them under `TF_LOG` / `TF_LOG_PROVIDER` at the right level.
//!
//! Only events from this crate are written. Dependencies such as the AWS SDK
//! log request and response bodies at trace level, and a body can carry a
//! secret (an SSM PutParameter value), so their events never reach stderr.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

const TIMESTAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Our crate's targets all start with this (the library crate is `cxflow`).
const OWN_TARGET: &str = "cxflow";

/// Level chosen from `TF_LOG_PROVIDER_CXFLOW`, `TF_LOG_PROVIDER`, then `TF_LOG`;
/// warnings and errors otherwise. `None` means off.
pub fn level_from_env(get: impl Fn(&str) -> Option<String>) -> Option<Level> {
    let raw = ["TF_LOG_PROVIDER_CXFLOW", "TF_LOG_PROVIDER", "TF_LOG"].iter().find_map(|k| get(k).filter(|v| !v.trim().is_empty()));
    match raw.map(|s| s.trim().to_ascii_uppercase()).as_deref() {
        None => Some(Level::WARN),
        Some("TRACE") | Some("JSON") => Some(Level::TRACE),
        Some("DEBUG") => Some(Level::DEBUG),
        Some("INFO") => Some(Level::INFO),
        Some("WARN") => Some(Level::WARN),
        Some("ERROR") => Some(Level::ERROR),
        Some("OFF") => None,
        Some(_) => Some(Level::TRACE),
    }
}

pub fn init() {
    let level = level_from_env(|k| std::env::var(k).ok());
    let layer = HclogLayer { max: level };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

pub struct HclogLayer {
    max: Option<Level>,
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

struct JsonVisitor {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().to_string(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let s = format!("{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.fields.insert(field.name().to_string(), s.into());
        }
    }
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        match &self.max {
            Some(max) => meta.level() <= max && meta.target().starts_with(OWN_TARGET),
            None => false,
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_line(event);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
    }
}

fn format_line(event: &Event<'_>) -> String {
    let meta = event.metadata();
    let mut v = JsonVisitor { message: String::new(), fields: serde_json::Map::new() };
    event.record(&mut v);
    let mut obj = serde_json::Map::new();
    obj.insert("@level".into(), level_name(meta.level()).into());
    obj.insert("@message".into(), v.message.into());
    obj.insert("@module".into(), format!("provider.cxflow.{}", meta.target().trim_start_matches("cxflow::")).into());
    // go-plugin parses this field with exactly six fractional digits; any
    // other layout makes it print the whole line raw at debug level.
    let ts = time::OffsetDateTime::now_utc().format(TIMESTAMP).unwrap_or_default();
    obj.insert("@timestamp".into(), ts.into());
    for (k, val) in v.fields {
        obj.insert(k, val);
    }
    let mut s = serde_json::Value::Object(obj).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_terraform_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(level_from_env(env(&[])), Some(Level::WARN));
        assert_eq!(level_from_env(env(&[("TF_LOG", "debug")])), Some(Level::DEBUG));
        assert_eq!(level_from_env(env(&[("TF_LOG", "debug"), ("TF_LOG_PROVIDER", "TRACE")])), Some(Level::TRACE));
        assert_eq!(level_from_env(env(&[("TF_LOG_PROVIDER_CXFLOW", "off"), ("TF_LOG", "trace")])), None);
    }

    #[test]
    fn lines_are_hclog_json() {
        use std::sync::{Arc, Mutex};
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Capture {
            fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
                self.0.lock().unwrap().push(format_line(event));
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "cxflow::engine", child = "log_group", "created");
        });
        let got = lines.lock().unwrap();
        let j: serde_json::Value = serde_json::from_str(got[0].trim()).unwrap();
        assert_eq!(j["@level"], "info");
        assert_eq!(j["@message"], "created");
        assert_eq!(j["@module"], "provider.cxflow.engine");
        assert_eq!(j["child"], "log_group");
        let ts = j["@timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2006-01-02T15:04:05.000000Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.');
    }
}
