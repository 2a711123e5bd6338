//! The agent's optional Prometheus endpoint (`[metrics] listen`): its buffer's counters, read
//! at each scrape, so a Prometheus near the agent sees a backlog growing while the collector or
//! the WAN is down, which the collector itself cannot report.

use crate::buffer::{BufferStats, SharedBuffer};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Scrape {
    buffer: SharedBuffer,
    agent: String,
}

/// Serves GET /metrics on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    buffer: SharedBuffer,
    agent: String,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape { buffer, agent });
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %err, "the metrics endpoint stopped");
    }
}

async fn metrics(State(scrape): State<Scrape>) -> impl IntoResponse {
    match scrape.buffer.with(|b| b.stats()).await {
        Ok(stats) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(&stats, &scrape.agent),
        ),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            format!("# the buffer cannot be read: {err}\n"),
        ),
    }
}

/// The Prometheus text format.
pub fn render(stats: &BufferStats, agent: &str) -> String {
    let label = agent.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{agent=\"{label}\"}} {value}\n"
        ));
    };
    metric(
        "netwarden_agent_buffer_backlog",
        "gauge",
        "Records waiting for the collector's acknowledgement",
        stats.backlog,
    );
    metric(
        "netwarden_agent_records_produced_total",
        "counter",
        "Records written to the buffer since it was created",
        stats.produced_total,
    );
    metric(
        "netwarden_agent_records_dropped_total",
        "counter",
        "Records the full buffer dropped (oldest first)",
        stats.dropped_total,
    );
    metric(
        "netwarden_agent_records_rejected_total",
        "counter",
        "Records the collector refused as malformed (kept aside)",
        stats.rejected_total,
    );
    out.push_str(&format!(
        "# HELP netwarden_agent_info The agent's version\n# TYPE netwarden_agent_info gauge\n\
         netwarden_agent_info{{agent=\"{label}\",version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_each_counter_with_the_agent_label() {
        let stats = BufferStats {
            backlog: 7,
            produced_total: 100,
            dropped_total: 2,
            rejected_total: 1,
        };
        let text = render(&stats, "branch-\"7\"");
        assert!(text.contains("netwarden_agent_buffer_backlog{agent=\"branch-\\\"7\\\"\"} 7\n"));
        assert!(text
            .contains("netwarden_agent_records_produced_total{agent=\"branch-\\\"7\\\"\"} 100\n"));
        assert!(text.contains("# TYPE netwarden_agent_records_dropped_total counter\n"));
        assert!(
            text.contains("netwarden_agent_records_rejected_total{agent=\"branch-\\\"7\\\"\"} 1\n")
        );
    }
}
