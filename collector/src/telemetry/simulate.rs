//! The telemetry simulator: realistic utilisation for many circuits (a diurnal curve, noise,
//! single-sample spikes and sustained maxouts), posted to a collector's batch endpoint at a
//! steady rate, for demos, load tests and detection tests. A seed gives the same circuits and
//! values; a start time too gives the same timestamps, so exactly the same samples.

use chrono::{DateTime, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The collector's HTTP base URL.
    pub url: String,
    pub circuits: u32,
    /// Samples per second, all circuits together.
    pub rate: u32,
    /// Every Kth sample of a circuit is a single spike over its capacity (0: never).
    pub spike_every: u32,
    /// Every Mth sample of a circuit starts a maxout sustained for `maxout_samples` (0: never).
    pub maxout_every: u32,
    pub maxout_samples: u32,
    /// Stop after this long (or after `samples`, whichever comes first).
    pub duration: Duration,
    pub samples: Option<u64>,
    /// Register the circuits (PUT /api/circuits/{id}) first, so their capacity is known.
    pub register: bool,
    pub seed: u64,
    /// Circuit ids are `<prefix><n>`.
    pub prefix: String,
    /// The account registered circuits belong to.
    pub account: Option<String>,
    /// API token: operator to post, admin to `register` too.
    pub token: Option<String>,
    /// Timestamps from this time on, `step` apart per circuit, instead of the time of posting.
    pub start: Option<DateTime<Utc>>,
    /// The time between one circuit's samples with `start` (default: circuits ÷ rate).
    pub step: Option<Duration>,
}

/// What the simulator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateReport {
    pub samples: u64,
    pub requests: u64,
    pub spikes: u64,
    pub maxout_samples: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Invalid(String),
}

/// One simulated circuit.
#[derive(Debug, Clone)]
pub struct Circuit {
    pub id: String,
    pub provisioned_mbps: f64,
    pub burst_mbps: f64,
    /// Mean utilisation at the daily peak, as a fraction of provisioned.
    level: f64,
    sent: u64,
    maxout_left: u32,
}

/// The circuits a seed gives: capacities from the common CVC/access sizes.
pub fn circuits(options: &SimulateOptions) -> Vec<Circuit> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    const SIZES: [f64; 6] = [100.0, 250.0, 500.0, 1000.0, 2000.0, 10_000.0];
    (0..options.circuits)
        .map(|n| {
            let provisioned_mbps = SIZES[rng.random_range(0..SIZES.len())];
            Circuit {
                id: format!("{}{n}", options.prefix),
                provisioned_mbps,
                burst_mbps: provisioned_mbps * 1.2,
                level: rng.random_range(0.35..0.8),
                sent: 0,
                maxout_left: 0,
            }
        })
        .collect()
}

/// The next sample of a circuit at `at`: the diurnal curve (lowest at 4 am, highest at 8 pm
/// UTC), ±10 % noise, and the configured spikes and maxouts. Returns (Mbps, kind).
pub fn next_value(
    circuit: &mut Circuit,
    at: DateTime<Utc>,
    options: &SimulateOptions,
    rng: &mut StdRng,
) -> (f64, Kind) {
    circuit.sent += 1;
    let n = circuit.sent;
    if circuit.maxout_left > 0 {
        circuit.maxout_left -= 1;
        return (
            circuit.burst_mbps * rng.random_range(1.0..1.1),
            Kind::Maxout,
        );
    }
    if options.maxout_every > 0 && n % u64::from(options.maxout_every) == 0 {
        circuit.maxout_left = options.maxout_samples.saturating_sub(1);
        return (
            circuit.burst_mbps * rng.random_range(1.0..1.1),
            Kind::Maxout,
        );
    }
    if options.spike_every > 0 && n % u64::from(options.spike_every) == 0 {
        return (circuit.burst_mbps * rng.random_range(1.0..1.2), Kind::Spike);
    }
    let hour = f64::from(at.hour()) + f64::from(at.minute()) / 60.0;
    // 0 at 04:00, 1 at 20:00.
    let phase = ((hour - 4.0).rem_euclid(24.0) / 16.0).min(1.0);
    let diurnal = 0.25 + 0.75 * (phase * std::f64::consts::FRAC_PI_2).sin();
    let noise = rng.random_range(0.9..1.1);
    let value = (circuit.provisioned_mbps * circuit.level * diurnal * noise)
        .min(circuit.provisioned_mbps * 0.95);
    (value.max(0.0), Kind::Normal)
}

/// Refuses a start whose samples the collector would refuse (more than 30 days old, or more
/// than 5 minutes ahead), before anything is posted.
fn check_timestamps(
    start: DateTime<Utc>,
    step: Duration,
    options: &SimulateOptions,
) -> Result<(), SimulateError> {
    let now = Utc::now();
    if start < now - chrono::Duration::days(super::sample::MAX_AGE_DAYS) {
        return Err(SimulateError::Invalid(format!(
            "--start: {start} is more than {} days ago; the collector refuses such samples",
            super::sample::MAX_AGE_DAYS
        )));
    }
    let total = options.samples.unwrap_or_else(|| {
        (f64::from(options.rate) * options.duration.as_secs_f64()).ceil() as u64
    });
    let per_circuit = total.div_ceil(u64::from(options.circuits));
    let last = sample_time(start, step, per_circuit.saturating_sub(1));
    if last > now + chrono::Duration::seconds(super::sample::MAX_SKEW_SECS) {
        return Err(SimulateError::Invalid(format!(
            "--start: the last samples would be stamped {last}, more than {} s ahead; start \
             earlier, or send fewer samples or a shorter --step",
            super::sample::MAX_SKEW_SECS
        )));
    }
    Ok(())
}

/// The time of a circuit's sample after `sent` earlier ones, counted from `start`.
fn sample_time(start: DateTime<Utc>, step: Duration, sent: u64) -> DateTime<Utc> {
    let offset = step.as_secs_f64() * sent as f64;
    start + chrono::Duration::milliseconds((offset * 1000.0).round() as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Spike,
    Maxout,
}

/// Runs the simulator against a collector until the duration (or sample count) is reached.
pub async fn run(options: &SimulateOptions) -> Result<SimulateReport, SimulateError> {
    if options.circuits == 0 || options.rate == 0 {
        return Err(SimulateError::Invalid(
            "--circuits and --rate must be at least 1".into(),
        ));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &options.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| SimulateError::Invalid("--token: not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SimulateError::Http(e.to_string()))?;
    let base = options.url.trim_end_matches('/');
    let mut circuits = circuits(options);
    if options.register {
        for c in &circuits {
            http.put(format!("{base}/api/circuits/{}", c.id))
                .json(
                    &json!({"provisioned_mbps": c.provisioned_mbps, "burst_mbps": c.burst_mbps,
                              "account": options.account}),
                )
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| SimulateError::Http(format!("registering {}: {e}", c.id)))?;
        }
    }
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let mut report = SimulateReport::default();
    // Ten requests a second, each carrying a tenth of a second's samples.
    let tick = Duration::from_millis(100);
    let per_tick = (options.rate as f64 / 10.0).max(1.0);
    let step = options.step.unwrap_or_else(|| {
        Duration::from_secs_f64(f64::from(options.circuits) / f64::from(options.rate))
    });
    if let Some(start) = options.start {
        check_timestamps(start, step, options)?;
    }
    let started = Instant::now();
    let mut owed = 0.0;
    let mut next_circuit = 0usize;
    let mut ticks = tokio::time::interval(tick);
    loop {
        ticks.tick().await;
        if started.elapsed() >= options.duration
            || options.samples.is_some_and(|max| report.samples >= max)
        {
            break;
        }
        owed += per_tick;
        let mut batch: Vec<Value> = Vec::new();
        let now = Utc::now();
        while owed >= 1.0
            && options
                .samples
                .is_none_or(|max| report.samples + (batch.len() as u64) < max)
        {
            owed -= 1.0;
            let count = circuits.len();
            let c = &mut circuits[next_circuit];
            next_circuit = (next_circuit + 1) % count;
            // With a start time, the circuit's nth sample is at start + (n - 1) × step;
            // otherwise now, with samples of one circuit in one batch at distinct, increasing
            // times.
            let at = match options.start {
                Some(start) => sample_time(start, step, c.sent),
                None => now + chrono::Duration::milliseconds(batch.len() as i64),
            };
            let (value, kind) = next_value(c, at, options, &mut rng);
            match kind {
                Kind::Spike => report.spikes += 1,
                Kind::Maxout => report.maxout_samples += 1,
                Kind::Normal => {}
            }
            batch.push(json!({"circuit_id": c.id, "utilization_mbps": (value * 100.0).round() / 100.0,
                              "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}));
        }
        if batch.is_empty() {
            continue;
        }
        let count = batch.len() as u64;
        let response = http
            .post(format!("{base}/api/v1/telemetry/batch"))
            .json(&Value::Array(batch))
            .send()
            .await
            .map_err(|e| SimulateError::Http(format!("posting a batch: {e}")))?;
        report.requests += 1;
        if response.status().is_success() {
            report.samples += count;
        } else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(SimulateError::Http(format!(
                "the collector refused a batch ({status}): {body}"
            )));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SimulateOptions {
        SimulateOptions {
            url: "http://127.0.0.1:1".into(),
            circuits: 20,
            rate: 100,
            spike_every: 10,
            maxout_every: 0,
            maxout_samples: 5,
            duration: Duration::from_secs(1),
            samples: None,
            register: false,
            seed: 42,
            prefix: "SIM-".into(),
            account: None,
            token: None,
            start: None,
            step: None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_circuits_and_values() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = || {
            let o = options();
            let mut cs = circuits(&o);
            let mut rng = StdRng::seed_from_u64(1);
            (0..50)
                .map(|i| next_value(&mut cs[i % 20], at, &o, &mut rng).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        let cs = circuits(&options());
        assert_eq!(cs.len(), 20);
        assert!(cs.iter().all(|c| c.burst_mbps > c.provisioned_mbps));
    }

    #[test]
    fn a_start_whose_samples_the_collector_would_refuse_is_refused_first() {
        let mut o = options();
        o.samples = Some(200); // 10 a circuit
        let step = Duration::from_secs(60);
        let now = Utc::now();
        let ok = now - chrono::Duration::hours(1);
        assert!(check_timestamps(ok, step, &o).is_ok());
        let ahead = check_timestamps(now, step, &o).unwrap_err().to_string();
        assert!(ahead.starts_with("--start: the last samples"), "{ahead}");
        let old = check_timestamps(now - chrono::Duration::days(31), step, &o)
            .unwrap_err()
            .to_string();
        assert!(old.contains("more than 30 days ago"), "{old}");
    }

    #[test]
    fn normal_samples_stay_under_capacity_and_spikes_and_maxouts_go_over() {
        let mut o = options();
        o.maxout_every = 7;
        o.spike_every = 5;
        let mut c = circuits(&o).remove(0);
        let mut rng = StdRng::seed_from_u64(3);
        let night = DateTime::parse_from_rfc3339("2026-11-21T04:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let evening = DateTime::parse_from_rfc3339("2026-11-21T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut kinds = Vec::new();
        for i in 0..40 {
            let at = if i % 2 == 0 { night } else { evening };
            let (value, kind) = next_value(&mut c, at, &o, &mut rng);
            match kind {
                Kind::Normal => assert!(value < c.provisioned_mbps, "{value}"),
                _ => assert!(value >= c.burst_mbps, "{value}"),
            }
            kinds.push(kind);
        }
        // A sustained maxout is maxout_samples in a row.
        let first = kinds.iter().position(|k| *k == Kind::Maxout).unwrap();
        assert!(
            kinds[first..first + 5].iter().all(|k| *k == Kind::Maxout),
            "{kinds:?}"
        );
        assert!(kinds.contains(&Kind::Spike));
    }
}
