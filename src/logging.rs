//! The process's log output: env_logger's plain text, or one JSON object
//! per line for log collectors. `RUST_LOG` chooses what is logged either way.
//!
//! A JSON line has `timestamp` (RFC 3339, UTC, milliseconds), `level`,
//! `target` and `message`, then the record's key-values (`log`'s `kv`) as
//! keys of their own, so that `jq .status` or a collector's field index
//! reads them directly. A key-value named like one of the four is kept
//! under `field_<name>` instead of replacing it.

use std::io::Write;

use log::kv::{self, VisitSource, VisitValue};
use serde_json::{Map, Value};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The keys every JSON line has; a key-value of the same name is renamed.
const RESERVED: [&str; 4] = ["timestamp", "level", "target", "message"];

/// Starts logging in `format`, at `info` unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = json_line(&buf.timestamp_millis().to_string(), record);
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// One record as a JSON object, stamped `timestamp`.
pub fn json_line(timestamp: &str, record: &log::Record<'_>) -> String {
    let mut object = Map::new();
    object.insert("timestamp".into(), timestamp.into());
    object.insert(
        "level".into(),
        record.level().as_str().to_ascii_lowercase().into(),
    );
    object.insert("target".into(), record.target().into());
    object.insert("message".into(), record.args().to_string().into());
    // Collecting into a map cannot fail.
    let _ = record.key_values().visit(&mut Fields(&mut object));
    Value::Object(object).to_string()
}

/// Collects a record's key-values into the line's object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let key = key.as_str();
        let key = if RESERVED.contains(&key) {
            format!("field_{key}")
        } else {
            key.to_owned()
        };
        let mut json = Value::Null;
        value.visit(Json(&mut json))?;
        self.0.insert(key, json);
        Ok(())
    }
}

/// One key-value's value as JSON: numbers, booleans and strings as
/// themselves, `None` as null, anything else as its text.
struct Json<'a>(&'a mut Value);

impl<'v> VisitValue<'v> for Json<'_> {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        *self.0 = Value::String(value.to_string());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), kv::Error> {
        *self.0 = Value::Null;
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        *self.0 = value.into();
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        *self.0 = value.into();
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        *self.0 = value.into();
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        *self.0 = value.into();
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        *self.0 = value.into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_has_the_four_keys_and_the_fields() {
        let fields: &[(&str, kv::Value<'_>)] = &[
            ("status", kv::Value::from(404_u64)),
            ("route", kv::Value::from("/api/x/{id}")),
            ("took_ms", kv::Value::from(1.5_f64)),
            ("session_id", kv::Value::null()),
            ("message", kv::Value::from("shadowed")),
        ];
        let record = log::Record::builder()
            .args(format_args!("GET /api/x/{{id}} 404"))
            .level(log::Level::Info)
            .target("flacstream::access")
            .key_values(&fields)
            .build();
        let line = json_line("2026-01-02T03:04:05.006Z", &record);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2026-01-02T03:04:05.006Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "flacstream::access");
        assert_eq!(v["message"], "GET /api/x/{id} 404");
        assert_eq!(v["status"], 404);
        assert_eq!(v["route"], "/api/x/{id}");
        assert_eq!(v["took_ms"], 1.5);
        assert!(v["session_id"].is_null());
        assert_eq!(v["field_message"], "shadowed");
    }

    #[test]
    fn a_message_with_newlines_and_quotes_stays_one_line() {
        let record = log::Record::builder()
            .args(format_args!("a \"b\"\nc"))
            .level(log::Level::Warn)
            .target("t")
            .build();
        let line = json_line("t0", &record);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], "a \"b\"\nc");
        assert_eq!(v["level"], "warn");
    }
}
