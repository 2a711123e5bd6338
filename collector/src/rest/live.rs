//! `/ws`: live events as JSON text messages with a `type` field. `?kinds=anomaly,maxout`
//! filters at connect; a client may change the filter later by sending
//! `{"kinds": ["device_status"]}`. The first message is `{"type":"hello","kinds":[...]}`; a
//! client too slow to keep up gets `{"type":"lagged","missed":N}` and carries on.

use super::AppState;
use crate::auth::guard::Caller;
use crate::auth::Guard;
use crate::error::ApiError;
use crate::events::{Published, KINDS};
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest message a client may send (a filter change).
const MAX_CLIENT_MESSAGE: usize = 4096;
/// How often an open socket's token is checked again: a revoked token's socket is closed.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Params {
    /// Comma-separated kinds to receive: `anomaly`, `alert`, `device_status`, `maxout`
    /// (default: all).
    kinds: Option<String>,
    /// Read by the auth layer; accepted here so it is not an unknown parameter.
    #[allow(dead_code)]
    token: Option<String>,
}

pub(crate) fn parse_kinds<'a>(
    names: impl Iterator<Item = &'a str>,
) -> Result<HashSet<&'static str>, String> {
    let mut kinds = HashSet::new();
    for name in names.map(str::trim).filter(|n| !n.is_empty()) {
        let known = KINDS
            .iter()
            .find(|k| **k == name)
            .ok_or_else(|| format!("kinds: {name:?} is not one of {}", KINDS.join(", ")))?;
        kinds.insert(*known);
    }
    if kinds.is_empty() {
        kinds.extend(KINDS.iter().copied());
    }
    Ok(kinds)
}

/// Live events over a WebSocket: JSON text messages with a `type` field (`hello`, `anomaly`,
/// `alert`, `device_status`, `maxout`, `lagged`). Send `{"kinds": [...]}` to change the filter.
#[utoipa::path(get, path = "/ws", tag = "system", params(Params),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or an unknown kind", body = crate::error::ErrorBody)))]
async fn upgrade(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let kinds =
        parse_kinds(params.kinds.as_deref().unwrap_or("").split(',')).map_err(ApiError::invalid)?;
    let ws = ws.map_err(|e| ApiError::invalid(format!("/ws: {}", e.body_text())))?;
    let events = state.engine.events.clone();
    let access = caller.map(|axum::Extension(c)| (state.auth.clone(), c));
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, events, kinds, access)))
}

fn hello(kinds: &HashSet<&'static str>) -> Message {
    let mut list: Vec<&str> = kinds.iter().copied().collect();
    list.sort_unstable();
    Message::Text(Utf8Bytes::from(
        serde_json::json!({"type": "hello", "kinds": list}).to_string(),
    ))
}

async fn serve(
    mut socket: WebSocket,
    events: crate::events::EventBus,
    mut kinds: HashSet<&'static str>,
    access: Option<(Arc<Guard>, Caller)>,
) {
    let mut receiver = events.subscribe();
    if socket.send(hello(&kinds)).await.is_err() {
        return;
    }
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    loop {
        tokio::select! {
            _ = recheck.tick() => {
                if let Some((guard, caller)) = &access {
                    if !guard.still_valid(caller).await {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame {
                                code: close_code::POLICY,
                                reason: Utf8Bytes::from_static("the token was revoked"),
                            })))
                            .await;
                        return;
                    }
                }
            }
            event = receiver.recv() => {
                let message = match event {
                    Ok(event) => match wanted(&event, &kinds) {
                        Some(text) => Message::Text(Utf8Bytes::from(text)),
                        None => continue,
                    },
                    Err(RecvError::Lagged(missed)) => Message::Text(Utf8Bytes::from(
                        serde_json::json!({"type": "lagged", "missed": missed}).to_string(),
                    )),
                    Err(RecvError::Closed) => return,
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reply = match change_filter(text.as_str()) {
                        Ok(new) => { kinds = new; hello(&kinds) }
                        Err(message) => Message::Text(Utf8Bytes::from(
                            serde_json::json!({"type": "error", "error": {"code": "invalid_argument", "message": message}}).to_string(),
                        )),
                    };
                    if socket.send(reply).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // pings are answered by the library; binary is ignored
            },
        }
    }
}

fn wanted(event: &Arc<Published>, kinds: &HashSet<&'static str>) -> Option<String> {
    kinds.contains(event.kind).then(|| event.json.clone())
}

fn change_filter(text: &str) -> Result<HashSet<&'static str>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        kinds: Vec<String>,
    }
    let filter: Filter =
        serde_json::from_str(text).map_err(|e| format!("expected {{\"kinds\": [...]}}: {e}"))?;
    parse_kinds(filter.kinds.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_default_to_all_and_unknown_ones_are_named() {
        assert_eq!(parse_kinds("".split(',')).unwrap().len(), KINDS.len());
        let some = parse_kinds("anomaly, maxout".split(',')).unwrap();
        assert!(some.contains("anomaly") && some.contains("maxout") && some.len() == 2);
        assert!(parse_kinds("anomaly,weather".split(','))
            .unwrap_err()
            .contains("\"weather\""));
        assert!(change_filter("{\"kinds\":[\"alert\"]}")
            .unwrap()
            .contains("alert"));
        assert!(change_filter("[1]").is_err());
    }
}
