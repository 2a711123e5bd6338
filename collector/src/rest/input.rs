//! Request input every handler can trust: no NUL characters anywhere (PostgreSQL cannot store
//! them in text and SQLite truncates at them in places, so both backends refuse them alike,
//! before the database is asked), and JSON bodies whose errors name the field.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Refuses a path or query string holding an encoded NUL (`%00`), naming the parameter.
pub async fn reject_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) {
        return ApiError::invalid("path: must not contain NUL characters").into_response();
    }
    if let Some(query) = uri.query() {
        if let Some(pair) = query.split('&').find(|pair| has_encoded_nul(pair)) {
            let name = pair.split('=').next().unwrap_or(pair);
            let name = if has_encoded_nul(name) { "query" } else { name };
            return ApiError::invalid(format!("{name}: must not contain NUL characters"))
                .into_response();
        }
    }
    next.run(request).await
}

fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// A JSON body as `T`. Like axum's `Json`, but a NUL in any string is refused with the field's
/// path, and every error is ours (`{"error": ...}`, 400).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state)
            .await
            .map_err(|e| ApiError::invalid(format!("body: {}", e.body_text())))?;
        if let Some(field) = field_with_nul(&value, "") {
            return Err(ApiError::invalid(format!(
                "{field}: must not contain NUL characters"
            )));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid(describe(&e)))
    }
}

/// `field: what is wrong`, or `body: ...` when the body as a whole is wrong.
fn describe(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    let field = if path == "." { "body" } else { path.as_str() };
    format!("{field}: {}", error.inner())
}

/// The path (`comment`, `items[2].name`) of the first string, or key, holding a NUL.
pub(crate) fn field_with_nul(value: &Value, at: &str) -> Option<String> {
    let here = || {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| field_with_nul(item, &format!("{}[{i}]", here()))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(here());
            }
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            field_with_nul(item, &path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_field_holding_a_nul() {
        assert_eq!(field_with_nul(&json!({"name": "ok"}), ""), None);
        assert_eq!(
            field_with_nul(&json!({"name": "ok", "comment": "a\u{0}b"}), ""),
            Some("comment".into())
        );
        assert_eq!(
            field_with_nul(&json!({"items": [{"id": "x"}, {"id": "\u{0}"}]}), ""),
            Some("items[1].id".into())
        );
        assert_eq!(field_with_nul(&json!("\u{0}"), ""), Some("body".into()));
    }

    #[test]
    fn type_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Circuit {
            provisioned_mbps: f64,
        }
        let error =
            serde_path_to_error::deserialize::<_, Circuit>(json!({"provisioned_mbps": "x"}))
                .unwrap_err();
        assert!(
            describe(&error).starts_with("provisioned_mbps: invalid type"),
            "{}",
            describe(&error)
        );
        let error = serde_path_to_error::deserialize::<_, Circuit>(json!({})).unwrap_err();
        assert_eq!(describe(&error), "body: missing field `provisioned_mbps`");
    }

    #[test]
    fn finds_encoded_nuls_only() {
        assert!(has_encoded_nul("agent=a%00b"));
        assert!(!has_encoded_nul("agent=a%20b%0A"));
        assert!(!has_encoded_nul("limit=100"));
    }
}
