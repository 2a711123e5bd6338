//! The HTTP listener, served by hyper with budgets `axum::serve` does not have: a cap on
//! connections (more are closed at accept), a header-read timeout (a client that connects and
//! sends half a request, or nothing, is closed), and a request timeout. Without them ~1,000
//! half-sent requests, with no credential at all, used up the file descriptors.

use crate::config::HttpLimits;
use crate::error::{ApiError, ErrorCode};
use crate::grpc::conns::{ConnLimits, Registry};
use crate::metrics::Metrics;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(), String> {
    let registry = Registry::new(
        "http",
        ConnLimits {
            max_connections: limits.max_connections,
            max_handshakes: limits.max_connections,
            idle_timeout: None,
        },
        metrics,
    );
    let connections = TaskTracker::new();
    loop {
        let (tcp, _remote) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = registry.try_slot() else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, stop) = (app.clone(), stop.clone());
        connections.spawn(async move {
            let _slot = slot;
            let timeout = limits.request_timeout;
            let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let request = request.map(axum::body::Body::new);
                    let response = match tokio::time::timeout(timeout, app.oneshot(request)).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => ApiError::new(
                            ErrorCode::Unavailable,
                            format!("the request was not answered within {} s (http.request_timeout_secs)", timeout.as_secs()),
                        )
                        .into_response(),
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "HTTP connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}
