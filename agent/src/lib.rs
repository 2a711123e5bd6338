//! Netwarden agent: probes targets, buffers every result in SQLite and streams it to the
//! collector. `main.rs` is a thin CLI over [`run`] so tests drive the real thing.

pub mod buffer;
pub mod config;
pub mod discovery;
pub mod icmp;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod speedtest;
pub mod targets;
pub mod uplink;
#[cfg(windows)]
pub mod winservice;

use buffer::{Buffer, SharedBuffer};
use config::{ProbePlan, Settings, Site, SpeedTestPlan};
use discovery::{DiscoveryOptions, Progress};
use icmp::{IcmpEngine, RateLimiter};
use netwarden_shared::tls::{cert_file_info, client_config};
use netwarden_shared::{AgentId, Record, RecordKind};
use probe::{probe_round, RttHints};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uplink::Uplink;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Tls(#[from] netwarden_shared::tls::TlsError),
    #[error(transparent)]
    Buffer(#[from] buffer::BufferError),
    #[error("the agent certificate {path} does not name a valid agent: {message}")]
    Identity { path: String, message: String },
    #[error("metrics.listen {addr}: cannot listen: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown`, then drains the buffer to the collector for up to the
/// configured drain timeout. Whatever is not acknowledged by then stays buffered.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), AgentError> {
    let cert = cert_file_info(&settings.tls.cert)?;
    let agent = AgentId::new(cert.common_name.clone()).map_err(|e| AgentError::Identity {
        path: settings.tls.cert.display().to_string(),
        message: e.to_string(),
    })?;
    let now = chrono::Utc::now().timestamp();
    if cert.not_after < now {
        tracing::error!(
            %agent,
            cert = %settings.tls.cert.display(),
            "the agent certificate has expired; the collector will refuse it. Issue a new one with `netwarden-collector pki issue-agent`"
        );
    } else if cert.not_after - now < 14 * 86_400 {
        tracing::warn!(%agent, days_left = (cert.not_after - now) / 86_400, "the agent certificate expires soon");
    }
    let tls = Arc::new(client_config(&settings.tls)?);
    let buffer = Buffer::open(&settings.buffer_path, settings.buffer_max_records)?;
    let stats = buffer.stats()?;
    tracing::info!(
        %agent,
        collector = %settings.collector_url,
        buffer = %settings.buffer_path.display(),
        backlog = stats.backlog,
        targets = settings.probe.targets.len(),
        "agent starting"
    );
    let buffer = SharedBuffer::new(buffer);

    let uplink = Uplink {
        url: settings.collector_url.clone(),
        server_name: settings.server_name.clone(),
        tls: tls.clone(),
        connect_timeout: settings.connect_timeout,
        config: settings.uplink.clone(),
        buffer: buffer.clone(),
    };
    let probing = shutdown.child_token();
    let rate = Arc::new(RateLimiter::new(settings.packets_per_second));
    // The plan may bring IPv6 targets at any time: with it on, IPv6 is opened too where it
    // can be (a host without it only logs so once).
    let need_v6 = settings.plan_pull
        || settings.probe.targets.iter().any(|t| t.is_ipv6())
        || settings
            .discovery
            .sites
            .iter()
            .any(|s| s.targets.iter().any(|t| t.is_ipv6()));
    let engine = Arc::new(LazyEngine::new(rate.clone(), need_v6));
    let open_ports = probe::liveness::OpenPorts::default();
    let mut workers = Vec::new();

    // What runs: agent.toml, merged with the plan (the cached one until the collector answers).
    let cached = if settings.plan_pull {
        plan::pull::cached(&buffer).await
    } else {
        None
    };
    if let Some(cached) = &cached {
        tracing::info!(
            version = cached.version,
            targets = cached.target_count(),
            "running the cached plan until the collector answers"
        );
    }
    let known = cached.as_ref().map_or(0, |p| p.version);
    let (plans, plan_rx) = tokio::sync::watch::channel(cached.unwrap_or_default());
    let enrolment = plan::enrolment::Enrolment::open(buffer.clone()).await;
    let runner = plan::runner::Runner::new(
        engine.clone(),
        buffer.clone(),
        open_ports.clone(),
        settings.discovery.options.clone(),
        enrolment.clone(),
        probing.clone(),
    );
    workers.push(tokio::spawn(plan::follow(
        plan::work::Local::of(&settings),
        plan_rx,
        !settings.plan_pull || known > 0,
        enrolment,
        runner,
        probing.clone(),
    )));
    if settings.plan_pull {
        let pull = plan::pull::PlanPull {
            url: settings.collector_url.clone(),
            server_name: settings.server_name.clone(),
            tls: tls.clone(),
            connect_timeout: settings.connect_timeout,
            buffer: buffer.clone(),
            plans,
        };
        workers.push(tokio::spawn(pull.run(known, probing.clone())));
    } else {
        // Kept open so the runner keeps its one (local) work until stopped.
        let stop = probing.clone();
        workers.push(tokio::spawn(async move {
            stop.cancelled().await;
            drop(plans);
        }));
    }
    if let Some(addr) = settings.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Metrics { addr, source })?;
        tracing::info!(%addr, "Prometheus metrics at /metrics");
        workers.push(tokio::spawn(metrics::serve(
            listener,
            buffer.clone(),
            agent.to_string(),
            probing.clone(),
        )));
    }
    let uplink_task = tokio::spawn(uplink.run(shutdown.clone()));

    shutdown.cancelled().await;
    probing.cancel();
    // The workers stop at once (a half-finished round is not recorded); then the uplink drains.
    for worker in workers {
        let _ = worker.await;
    }
    let _ = uplink_task.await;
    let stats = buffer.with(|b| b.stats()).await?;
    tracing::info!(
        backlog = stats.backlog,
        produced = stats.produced_total,
        dropped = stats.dropped_total,
        "agent stopped"
    );
    Ok(())
}

/// The ICMP engine, opened on first use and again after a failure: missing privileges are
/// reported every interval instead of ending the agent (which would only crash-loop under a
/// service manager while the uplink still has a backlog to drain).
pub struct LazyEngine {
    rate: Arc<RateLimiter>,
    need_v6: bool,
    engine: tokio::sync::Mutex<Option<Arc<IcmpEngine>>>,
}

impl LazyEngine {
    pub fn new(rate: Arc<RateLimiter>, need_v6: bool) -> Self {
        LazyEngine {
            rate,
            need_v6,
            engine: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Option<Arc<IcmpEngine>> {
        let mut slot = self.engine.lock().await;
        if let Some(engine) = slot.as_ref() {
            return Some(engine.clone());
        }
        match icmp::open_engine(true, self.need_v6, self.rate.clone()) {
            Ok(engine) => Some(slot.insert(Arc::new(engine)).clone()),
            Err(err) => {
                tracing::error!("{err}");
                None
            }
        }
    }
}

/// Sleeps until `next`, then moves it on by `interval` (skipping ahead after an overrun
/// rather than firing catch-up runs). False when stopped.
async fn tick(
    next: &mut tokio::time::Instant,
    interval: std::time::Duration,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => return false,
        _ = tokio::time::sleep_until(*next) => {}
    }
    *next += interval;
    let now = tokio::time::Instant::now();
    if *next < now {
        *next = now + interval;
    }
    true
}

async fn store(buffer: &SharedBuffer, records: Vec<Record>, what: &str) {
    let count = records.len();
    match buffer.push(records).await {
        Ok(0) => tracing::debug!(results = count, "{what} buffered"),
        Ok(dropped) => tracing::warn!(dropped, "buffer full: dropped the oldest records"),
        Err(err) => tracing::error!(error = %err, "cannot write {what} to the buffer"),
    }
}

/// Probes every interval and writes each round to the buffer; a target no ping reached is
/// checked for other evidence first (ARP, a known open port: `probe::liveness`). The targets
/// may change while it runs (a plan edit): each round probes the list as it is then.
pub(crate) async fn probe_loop(
    plan: tokio::sync::watch::Receiver<ProbePlan>,
    engine: Arc<LazyEngine>,
    buffer: SharedBuffer,
    open_ports: probe::liveness::OpenPorts,
    stop: CancellationToken,
) {
    let interval = plan.borrow().interval;
    let mut next = tokio::time::Instant::now();
    let mut hints = RttHints::new();
    let rate = engine.rate.clone();
    while tick(&mut next, interval, &stop).await {
        let plan = plan.borrow().clone();
        if plan.targets.is_empty() {
            continue;
        }
        let Some(engine) = engine.get().await else {
            continue;
        };
        let round = async {
            let mut records = probe_round(&engine, &plan, &mut hints).await?;
            probe::liveness::corroborate(&mut records, &open_ports, rate.clone()).await;
            Ok::<_, icmp::EngineError>(records)
        };
        let records = tokio::select! {
            _ = stop.cancelled() => return,
            records = round => records,
        };
        match records {
            Ok(records) => store(&buffer, records, "probe round").await,
            Err(err) => tracing::error!(error = %err, "probe round failed"),
        }
    }
}

/// Checks one `tcp` check's ports every interval and buffers a record per target and port.
pub(crate) async fn port_loop(
    plan: tokio::sync::watch::Receiver<probe::tcp::PortPlan>,
    buffer: SharedBuffer,
    stop: CancellationToken,
) {
    let interval = plan.borrow().interval;
    let mut next = tokio::time::Instant::now();
    while tick(&mut next, interval, &stop).await {
        let plan = plan.borrow().clone();
        if plan.targets.is_empty() {
            continue;
        }
        let records = tokio::select! {
            _ = stop.cancelled() => return,
            records = probe::tcp::check_round(&plan) => records,
        };
        store(&buffer, records, "port checks").await;
    }
}

/// Sweeps one site every interval and buffers each live host as a discovery record; the
/// open ports found are what the probe loop may try for a target no ping reaches.
pub(crate) async fn discovery_loop(
    site: Site,
    options: DiscoveryOptions,
    engine: Arc<LazyEngine>,
    buffer: SharedBuffer,
    open_ports: probe::liveness::OpenPorts,
    enrolment: plan::enrolment::Enrolment,
    stop: CancellationToken,
) {
    let mut next = tokio::time::Instant::now();
    while tick(&mut next, site.interval, &stop).await {
        let Some(icmp) = engine.get().await else {
            continue;
        };
        let sweep = discovery::discover(
            &icmp,
            engine.rate.clone(),
            site.targets.clone(),
            &options,
            Arc::new(Progress::default()),
        );
        let report = tokio::select! {
            _ = stop.cancelled() => return,
            report = sweep => report,
        };
        let mut report = match report {
            Ok(report) => report,
            Err(err) => {
                tracing::error!(site = %site.name, error = %err, "discovery failed");
                continue;
            }
        };
        if !site.ignore.is_empty() {
            report
                .hosts
                .retain(|h| !site.ignore.iter().any(|net| net.contains(&h.address)));
        }
        if let Some(rule) = &site.enrol {
            let found = report
                .hosts
                .iter()
                .filter(|h| !h.local && rule.matches(h))
                .map(|h| h.address)
                .collect();
            enrolment.enrol(&site.name, &rule.policy(), found).await;
        }
        if let Some(err) = &report.arp_error {
            tracing::warn!(site = %site.name, error = %err, "ARP sweep failed; ICMP results only (ARP needs root or CAP_NET_RAW)");
        }
        tracing::info!(
            site = %site.name,
            addresses = report.addresses,
            hosts = report.hosts.len(),
            seconds = report.elapsed.as_secs_f64(),
            "discovery sweep done"
        );
        {
            let mut known = open_ports.lock().unwrap_or_else(|e| e.into_inner());
            for host in &report.hosts {
                known.insert(host.address, host.open_ports.clone());
            }
        }
        // One time for the whole sweep: with the site's name it tells the collector which hosts
        // one sweep found (the first sweep of a site is its baseline, not new devices).
        let observed_at = chrono::Utc::now();
        let records = report
            .hosts
            .into_iter()
            .map(|mut host| {
                host.site = Some(site.name.clone());
                Record {
                    record_id: 0,
                    observed_at,
                    kind: RecordKind::Discovery(host),
                }
            })
            .collect();
        store(&buffer, records, "discovery").await;
    }
}

pub(crate) async fn speedtest_loop(
    plan: SpeedTestPlan,
    buffer: SharedBuffer,
    stop: CancellationToken,
) {
    let client = match speedtest::client(plan.timeout) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the speed-test HTTP client");
            return;
        }
    };
    let mut next = tokio::time::Instant::now();
    while tick(&mut next, plan.interval, &stop).await {
        let results = tokio::select! {
            _ = stop.cancelled() => return,
            results = speedtest::run(&client, &plan) => results,
        };
        for r in &results {
            match &r.error {
                None => tracing::info!(url = %r.url, mbps = r.mbps, bytes = r.bytes, "speed test"),
                Some(err) => tracing::warn!(url = %r.url, error = %err, "speed test failed"),
            }
        }
        let observed_at = chrono::Utc::now();
        let records = results
            .into_iter()
            .map(|t| Record {
                record_id: 0,
                observed_at,
                kind: RecordKind::SpeedTest(t),
            })
            .collect();
        store(&buffer, records, "speed tests").await;
    }
}
