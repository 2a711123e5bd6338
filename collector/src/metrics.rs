//! Prometheus metrics for the collector's own health, served at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub batches: Family<Labels, Counter>,
    pub records: Counter,
    pub rejected: Family<Labels, Counter>,
    pub tls_refused: Family<Labels, Counter>,
    pub connections_refused: Family<Labels, Counter>,
    pub connections_idle_closed: Family<Labels, Counter>,
    pub revoked_closed: Counter,
    pub streams: Gauge,
    /// The fleet plan version this collector hands agents (0: none).
    pub plan_version: Gauge,
    /// Agents following the plan over this collector.
    pub plan_streams: Gauge,
    pub commit_seconds: Histogram,
    pub agent_backlog: Family<Labels, Gauge<u64, AtomicU64>>,
    pub agent_dropped: Family<Labels, Gauge<u64, AtomicU64>>,
    pub agent_last_seen: Family<Labels, Gauge<i64>>,
    pub cacti_graphs: Family<Labels, Counter>,
    pub cacti_last_success: Family<Labels, Gauge<i64>>,
    pub cacti_unparsed_graphs: Family<Labels, Gauge<i64>>,
    pub telemetry_late: Family<Labels, Counter>,
    pub poi_maxouts: Family<Labels, Counter>,
    pub kpi_intervals: Family<Labels, Counter>,
    pub kpi_rows: Family<Labels, Counter>,
    pub kpi_unreadable: Gauge,
    pub notifications: Family<Labels, Counter>,
    pub anomalies: Family<Labels, Counter>,
    /// The network itself (`/metrics/network`): targets, ports, speed tests.
    pub network: std::sync::Arc<crate::network_metrics::NetworkMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("netwarden");
        let batches = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_batches",
            "Batches ingested, by outcome (stored, duplicate)",
            batches.clone(),
        );
        let records = Counter::default();
        registry.register(
            "ingest_records",
            "Records stored from agent batches",
            records.clone(),
        );
        let rejected = Family::<Labels, Counter>::default();
        registry.register(
            "ingest_rejected",
            "Batches or messages refused, by reason (invalid, clock, identity, too_large, decode, storage, refused_by_store)",
            rejected.clone(),
        );
        let tls_refused = Family::<Labels, Counter>::default();
        registry.register(
            "grpc_connections_refused",
            "gRPC connections refused before any request, by reason",
            tls_refused.clone(),
        );
        let connections_refused = Family::<Labels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept because the listener was at its connection limit, by listener",
            connections_refused.clone(),
        );
        let connections_idle_closed = Family::<Labels, Counter>::default();
        registry.register(
            "connections_idle_closed",
            "Connections closed after their idle timeout without a stream or request, by listener",
            connections_idle_closed.clone(),
        );
        let revoked_closed = Counter::default();
        registry.register(
            "revoked_connections_closed",
            "Open agent connections closed because their certificate or agent was revoked",
            revoked_closed.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "ingest_streams",
            "Agent ingest streams open now",
            streams.clone(),
        );
        let plan_version = Gauge::default();
        registry.register(
            "plan_version",
            "The fleet plan version this collector hands agents (0: no plan)",
            plan_version.clone(),
        );
        let plan_streams = Gauge::default();
        registry.register(
            "plan_streams",
            "Agents following the fleet plan over this collector now",
            plan_streams.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "ingest_commit_seconds",
            "Time from a batch reaching the database queue to its commit",
            commit_seconds.clone(),
        );
        let agent_backlog = Family::<Labels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "agent_buffer_backlog",
            "Records waiting in an agent's buffer, as last reported",
            agent_backlog.clone(),
        );
        let agent_dropped = Family::<Labels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "agent_buffer_dropped",
            "Records an agent's full buffer dropped since it was created, as last reported",
            agent_dropped.clone(),
        );
        let cacti_graphs = Family::<Labels, Counter>::default();
        registry.register(
            "cacti_graphs",
            "Cacti graph fetches, by source and outcome (fetched, skipped, failed)",
            cacti_graphs.clone(),
        );
        let agent_last_seen = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "agent_last_seen_timestamp_seconds",
            "When this collector last stored a batch from the agent (Prometheus alerts on silence)",
            agent_last_seen.clone(),
        );
        let cacti_last_success = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "cacti_last_success_timestamp_seconds",
            "When a scrape of the source last fetched every graph",
            cacti_last_success.clone(),
        );
        let cacti_unparsed_graphs = Family::<Labels, Gauge<i64>>::default();
        registry.register(
            "cacti_unparsed_graphs",
            "Graphs of the source's last scrape whose titles name no POI",
            cacti_unparsed_graphs.clone(),
        );
        let telemetry_late = Family::<Labels, Counter>::default();
        registry.register(
            "telemetry_late_samples",
            "Telemetry samples older than their circuit's newest: reordered (within the horizon, evaluated in place) or beyond_horizon (stored, not evaluated)",
            telemetry_late.clone(),
        );
        let poi_maxouts = Family::<Labels, Counter>::default();
        registry.register(
            "poi_maxouts",
            "POI maxout events created, by source and direction",
            poi_maxouts.clone(),
        );
        let kpi_intervals = Family::<Labels, Counter>::default();
        registry.register(
            "kpi_intervals_computed",
            "KPI intervals computed (again), by granularity (5m, 1h)",
            kpi_intervals.clone(),
        );
        let kpi_rows = Family::<Labels, Counter>::default();
        registry.register(
            "kpi_rows",
            "Flow file rows read, by outcome (counted, skipped)",
            kpi_rows.clone(),
        );
        let kpi_unreadable = Gauge::default();
        registry.register(
            "kpi_unreadable_files",
            "Flow files the last KPI run could not read",
            kpi_unreadable.clone(),
        );
        let notifications = Family::<Labels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by channel and status (sent, failed, retry, deferred, no_contact, suppressed)",
            notifications.clone(),
        );
        let anomalies = Family::<Labels, Counter>::default();
        registry.register(
            "anomalies_opened",
            "Anomalies opened, by kind and severity",
            anomalies.clone(),
        );
        Metrics {
            registry,
            batches,
            records,
            rejected,
            tls_refused,
            connections_refused,
            connections_idle_closed,
            revoked_closed,
            streams,
            plan_version,
            plan_streams,
            commit_seconds,
            agent_backlog,
            agent_dropped,
            agent_last_seen,
            cacti_graphs,
            cacti_last_success,
            cacti_unparsed_graphs,
            telemetry_late,
            poi_maxouts,
            kpi_intervals,
            kpi_rows,
            kpi_unreadable,
            notifications,
            anomalies,
            network: Default::default(),
        }
    }

    pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
        vec![(key, value.into())]
    }

    pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
