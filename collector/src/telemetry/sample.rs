//! Telemetry samples from JSON, checked field by field with bounds: every error names the
//! field (and, in a batch, the item), and nothing of a rejected request is stored.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

/// Longest circuit id accepted.
pub const MAX_CIRCUIT_ID: usize = 64;
/// No circuit carries more than this (10 Tb/s); larger is a unit mistake.
pub const MAX_UTILIZATION_MBPS: f64 = 10_000_000.0;
/// How far back a timestamp may be (older data is a replay mistake, not telemetry).
pub const MAX_AGE_DAYS: i64 = 30;
/// How far ahead a timestamp may be (clock skew).
pub const MAX_SKEW_SECS: i64 = 300;

/// The slowest circuit there is (1 kb/s): below it utilisation percentages lose meaning (a
/// rate of 5e-324 Mb/s made every sample an infinite percentage).
pub const MIN_CIRCUIT_MBPS: f64 = 0.001;

/// Checks a circuit's provisioned rate and optional burst rate, naming the field at fault.
pub fn check_rates(provisioned: f64, burst: Option<f64>) -> Result<(), (&'static str, String)> {
    if !(MIN_CIRCUIT_MBPS..=MAX_UTILIZATION_MBPS).contains(&provisioned) {
        return Err((
            "provisioned_mbps",
            format!("{provisioned} must be from {MIN_CIRCUIT_MBPS} to {MAX_UTILIZATION_MBPS}"),
        ));
    }
    match burst {
        Some(b) if !(b >= provisioned && b <= MAX_UTILIZATION_MBPS) => Err((
            "burst_mbps",
            format!("{b} must be from provisioned_mbps to {MAX_UTILIZATION_MBPS}"),
        )),
        _ => Ok(()),
    }
}

/// What circuit, account and employee ids may be, said in errors.
pub const ID_RULE: &str = "must be 1 to 64 letters, digits or . _ : / -";

/// Whether `id` is a circuit, account or employee id: 1 to 64 of `[A-Za-z0-9._:/-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CIRCUIT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
}

pub use crate::domain::telemetry::TelemetrySample;

/// What is wrong with one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The item in a batch (0-based); `None` for a single sample.
    pub index: Option<usize>,
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "item {i}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

fn error(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        index: None,
        field,
        message: message.into(),
    }
}

/// One sample from a JSON object: `circuit_id`, `utilization_mbps` (≥ 0) and an optional
/// `timestamp` (RFC 3339, a naive ISO time taken as UTC, or Unix seconds; default `now`).
/// Other fields are ignored, as the MaxOut-Capacity API does.
pub fn from_json(value: &Value, now: DateTime<Utc>) -> Result<TelemetrySample, FieldError> {
    from_json_aged(value, now, Some(MAX_AGE_DAYS))
}

/// [`from_json`], with the oldest age accepted (`None`: any age).
pub fn from_json_aged(
    value: &Value,
    now: DateTime<Utc>,
    max_age_days: Option<i64>,
) -> Result<TelemetrySample, FieldError> {
    let object = value
        .as_object()
        .ok_or_else(|| error("body", "must be a JSON object"))?;
    let circuit_id = match object.get("circuit_id") {
        None | Some(Value::Null) => return Err(error("circuit_id", "is required")),
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return Err(error("circuit_id", "must be a string")),
    };
    let utilization_mbps = match object.get("utilization_mbps") {
        None | Some(Value::Null) => return Err(error("utilization_mbps", "is required")),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(error("utilization_mbps", "must be a number")),
    };
    let at = timestamp(object.get("timestamp"))?;
    check_aged(circuit_id, utilization_mbps, at, now, max_age_days)
}

/// The optional `timestamp` field: RFC 3339, a naive ISO time taken as UTC, or Unix seconds.
fn timestamp(value: Option<&Value>) -> Result<Option<DateTime<Utc>>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_time(text.trim())
            .map(Some)
            .ok_or_else(|| error("timestamp", format!("{text:?} is not an ISO 8601 time"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite())
            .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64))
            .map(Some)
            .ok_or_else(|| error("timestamp", "is not a Unix time")),
        Some(_) => Err(error(
            "timestamp",
            "must be an ISO 8601 string or Unix seconds",
        )),
    }
}

/// The fields of a well-formed single sample, borrowed from the body where it has no escapes.
#[derive(serde::Deserialize)]
struct Plain<'a> {
    #[serde(borrow)]
    circuit_id: std::borrow::Cow<'a, str>,
    utilization_mbps: f64,
    #[serde(default)]
    timestamp: Option<Value>,
}

/// One sample from a request body. A well-formed object is read straight into its fields
/// (no JSON tree per request); anything else goes through [`from_json`], whose errors name the
/// field, so both ways accept and refuse exactly the same bodies.
pub fn from_bytes(body: &[u8], now: DateTime<Utc>) -> Result<TelemetrySample, FieldError> {
    // serde would also read a struct from an array; only objects take the direct way.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        if let Ok(plain) = serde_json::from_slice::<Plain>(body) {
            let at = timestamp(plain.timestamp.as_ref())?;
            return check(&plain.circuit_id, plain.utilization_mbps, at, now);
        }
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| error("body", format!("is not JSON: {e}")))?;
    from_json(&value, now)
}

/// Checks one sample's values, whatever they came from (JSON, protobuf); `at` `None` is now.
/// Samples older than [`MAX_AGE_DAYS`] are refused: history is loaded with
/// `netwarden-collector import telemetry`, which evaluates it in time order.
pub fn check(
    circuit_id: &str,
    utilization_mbps: f64,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<TelemetrySample, FieldError> {
    check_aged(circuit_id, utilization_mbps, at, now, Some(MAX_AGE_DAYS))
}

/// [`check`], with the oldest age accepted (`None`: any age, for history).
pub fn check_aged(
    circuit_id: &str,
    utilization_mbps: f64,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_age_days: Option<i64>,
) -> Result<TelemetrySample, FieldError> {
    // ASCII whitespace only, as the API document's pattern says.
    let circuit_id = circuit_id.trim_matches([' ', '\t', '\n', '\r']);
    if !valid_id(circuit_id) {
        return Err(error("circuit_id", ID_RULE));
    }
    if !utilization_mbps.is_finite() || utilization_mbps < 0.0 {
        return Err(error(
            "utilization_mbps",
            "must be a number greater than or equal to 0",
        ));
    }
    if utilization_mbps > MAX_UTILIZATION_MBPS {
        return Err(error(
            "utilization_mbps",
            format!("{utilization_mbps} is more than {MAX_UTILIZATION_MBPS} Mbps"),
        ));
    }
    let at = at.unwrap_or(now);
    if at > now + Duration::seconds(MAX_SKEW_SECS) {
        return Err(error("timestamp", format!("{at} is in the future")));
    }
    if let Some(days) = max_age_days {
        if at < now - Duration::days(days) {
            return Err(error(
                "timestamp",
                format!(
                    "{at} is more than {days} days old: load history with `netwarden-collector import telemetry FILE`"
                ),
            ));
        }
    }
    Ok(TelemetrySample {
        circuit_id: circuit_id.to_string(),
        utilization_mbps,
        at,
    })
}

/// A time as the API takes it: RFC 3339, or a naive ISO time taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|naive| naive.and_utc())
}

/// Most samples one batch request may carry.
pub const MAX_BATCH: usize = 100_000;

/// A batch: a JSON array of samples, or NDJSON (one object per line). All or nothing: the
/// first bad item is the error, naming its index (0-based) and field.
pub fn batch_from_bytes(
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<TelemetrySample>, FieldError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let values: Vec<Value> = match first {
        None => return Err(error("body", "is empty")),
        Some(b'[') => serde_json::from_slice(body)
            .map_err(|e| error("body", format!("is not a JSON array of samples: {e}")))?,
        Some(_) => {
            let mut values = Vec::new();
            for (n, line) in body.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                values.push(serde_json::from_slice(line).map_err(|e| FieldError {
                    index: Some(values.len()),
                    field: "body",
                    message: format!("line {} is not a JSON object: {e}", n + 1),
                })?);
                if values.len() > MAX_BATCH {
                    break;
                }
            }
            values
        }
    };
    if values.is_empty() {
        return Err(error("body", "holds no samples"));
    }
    if values.len() > MAX_BATCH {
        return Err(error(
            "body",
            format!("more than {MAX_BATCH} samples; split the batch"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            from_json(v, now).map_err(|mut e| {
                e.index = Some(i);
                e
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_direct_way_accepts_and_refuses_what_the_tree_does() {
        let bodies: &[&str] = &[
            r#"{"circuit_id":"CIR-1","utilization_mbps":12.5}"#,
            r#" {"circuit_id":" CIR-1\t","utilization_mbps":12,"extra":[1,{"a":null}]}"#,
            r#"{"circuit_id":"CIR\u002d1","utilization_mbps":1e3,"timestamp":null}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5,"timestamp":"2026-11-21T05:00:00Z"}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5,"timestamp":1795748400.5}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5,"timestamp":"yesterday"}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5,"timestamp":true}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":-1}"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":"5"}"#,
            r#"{"circuit_id":"CIR 1","utilization_mbps":5}"#,
            r#"{"circuit_id":null,"utilization_mbps":5}"#,
            r#"{"circuit_id":"A","circuit_id":"B","utilization_mbps":5}"#,
            r#"{"utilization_mbps":5}"#,
            r#"["CIR-1",5]"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5} trailing"#,
            r#"{"circuit_id":"CIR-1","utilization_mbps":5"#,
            "",
        ];
        for body in bodies {
            let by_tree = serde_json::from_slice::<Value>(body.as_bytes())
                .map_err(|e| error("body", format!("is not JSON: {e}")))
                .and_then(|value| from_json(&value, now()));
            assert_eq!(from_bytes(body.as_bytes(), now()), by_tree, "{body}");
        }
        let duplicate = from_bytes(
            br#"{"circuit_id":"A","circuit_id":"B","utilization_mbps":5}"#,
            now(),
        );
        assert_eq!(
            duplicate.unwrap().circuit_id,
            "B",
            "the last duplicate wins, as in the tree"
        );
    }

    #[test]
    fn a_good_sample_with_and_without_a_timestamp() {
        let s = from_json(
            &json!({"circuit_id": "CIR-1", "utilization_mbps": 950.5}),
            now(),
        )
        .unwrap();
        assert_eq!(s.at, now());
        assert_eq!(s.utilization_mbps, 950.5);
        for ts in [
            json!("2026-11-21T05:55:00Z"),
            json!("2026-11-21T05:55:00"),
            json!(1_795_240_500),
        ] {
            let s = from_json(
                &json!({"circuit_id": "CIR-1", "utilization_mbps": 1, "timestamp": ts}),
                now(),
            )
            .unwrap();
            assert_eq!(s.at.timestamp(), 1_795_240_500, "{ts}");
        }
    }

    #[test]
    fn bad_samples_name_the_field() {
        let cases = [
            (json!([1]), "body"),
            (json!({"utilization_mbps": 1}), "circuit_id"),
            (
                json!({"circuit_id": 5, "utilization_mbps": 1}),
                "circuit_id",
            ),
            (
                json!({"circuit_id": "a b", "utilization_mbps": 1}),
                "circuit_id",
            ),
            (json!({"circuit_id": "c"}), "utilization_mbps"),
            (
                json!({"circuit_id": "c", "utilization_mbps": -1}),
                "utilization_mbps",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": "10"}),
                "utilization_mbps",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": 1e12}),
                "utilization_mbps",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": 1, "timestamp": "soon"}),
                "timestamp",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": 1, "timestamp": "2030-01-01T00:00:00Z"}),
                "timestamp",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": 1, "timestamp": "2020-01-01T00:00:00Z"}),
                "timestamp",
            ),
            (
                json!({"circuit_id": "c", "utilization_mbps": 1, "timestamp": true}),
                "timestamp",
            ),
        ];
        for (value, field) in cases {
            let err = from_json(&value, now()).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn batches_are_arrays_or_ndjson_and_all_or_nothing() {
        let array =
            br#"[{"circuit_id":"a","utilization_mbps":1},{"circuit_id":"b","utilization_mbps":2}]"#;
        assert_eq!(batch_from_bytes(array, now()).unwrap().len(), 2);
        let ndjson = b"{\"circuit_id\":\"a\",\"utilization_mbps\":1}\n\n{\"circuit_id\":\"b\",\"utilization_mbps\":2}\n";
        assert_eq!(batch_from_bytes(ndjson, now()).unwrap().len(), 2);
        let bad = br#"[{"circuit_id":"a","utilization_mbps":1},{"circuit_id":"b","utilization_mbps":-2}]"#;
        let err = batch_from_bytes(bad, now()).unwrap_err();
        assert_eq!((err.index, err.field), (Some(1), "utilization_mbps"));
        assert_eq!(
            err.to_string(),
            "item 1: utilization_mbps: must be a number greater than or equal to 0"
        );
        let err = batch_from_bytes(
            b"{\"circuit_id\":\"a\",\"utilization_mbps\":1}\n{oops\n",
            now(),
        )
        .unwrap_err();
        assert!(err.message.contains("line 2"), "{err}");
        assert_eq!(batch_from_bytes(b"  ", now()).unwrap_err().field, "body");
        assert_eq!(
            batch_from_bytes(b"[]", now()).unwrap_err().message,
            "holds no samples"
        );
    }
}
