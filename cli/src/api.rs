//! The collector's REST API, as JSON in and out. A refusal carries the collector's own message
//! (`{"error": {"code", "message"}}`) and its status, which decides the exit code.

use crate::config::Settings;
use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The collector answered, and said no.
    #[error("{message} (HTTP {status})")]
    Refused { status: u16, message: String },
    /// No usable answer: unreachable, timed out, or not JSON.
    #[error("{0}")]
    Transport(String),
}

pub struct Api {
    client: reqwest::Client,
    base: reqwest::Url,
    token: Option<String>,
}

impl Api {
    pub fn new(settings: &Settings) -> anyhow::Result<Api> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("netwarden-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            let ca =
                reqwest::Certificate::from_pem(pem).context("ca_file: not a PEM certificate")?;
            builder = builder.add_root_certificate(ca);
        }
        Ok(Api {
            client: builder.build().context("cannot make the HTTP client")?,
            base: settings.url.clone(),
            token: settings.token.clone(),
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PUT, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::DELETE, path, &[], None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| ApiError::Transport(format!("{path}: {e}")))?;
        let mut request = self.client.request(method, url.clone()).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            ApiError::Transport(format!(
                "cannot reach the collector at {}: {}",
                self.base,
                chain(&e)
            ))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::Transport(format!("reading the answer of {url}: {e}")))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match (status, json) {
                (StatusCode::NO_CONTENT, _) => Ok(Value::Null),
                (_, Some(json)) => Ok(json),
                (_, None) if text.is_empty() => Ok(Value::Null),
                (_, None) => Err(ApiError::Transport(format!(
                    "{url} did not answer JSON: {}",
                    text.chars().take(200).collect::<String>()
                ))),
            };
        }
        let message = json
            .as_ref()
            .and_then(|j| j["error"]["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect::<String>());
        Err(ApiError::Refused {
            status: status.as_u16(),
            message,
        })
    }
}

/// An error with its causes, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
