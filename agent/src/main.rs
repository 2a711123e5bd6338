use anyhow::Result;
use clap::{Parser, Subcommand};
use netwarden_agent::config::{ProbePlan, Settings};
use netwarden_agent::discovery::{self, DiscoveryOptions, DiscoveryReport, Progress};
use netwarden_agent::icmp::{self, IcmpEngine, OpenError, RateLimiter};
use netwarden_agent::probe::tcp::{self, PortPlan};
use netwarden_agent::probe::{probe_round, RttHints};
use netwarden_agent::targets::{self, PortError, TargetError};
use netwarden_shared::{DiscoveryMethod, PortState, RecordKind};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "netwarden-agent", version, about = "Netwarden agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: probe, discover, test speed, buffer, stream to the collector.
    Run(ConfigArg),
    /// Check a configuration file (and the certificates it names) and exit.
    Validate(ConfigArg),
    /// Run as the Windows service (the service manager starts this; the MSI registers it).
    #[cfg(windows)]
    Service(ConfigArg),
    /// Add or remove the Windows Firewall rule that lets ICMP echo replies in (the MSI runs
    /// this at install and uninstall).
    #[cfg(windows)]
    Firewall {
        #[arg(value_parser = ["add", "remove"])]
        action: String,
    },
    /// Ping hosts (addresses or CIDR prefixes) once and print each one's round statistics.
    Probe {
        #[arg(required = true, value_name = "HOST|CIDR")]
        hosts: Vec<String>,
        #[arg(long, short = 'c', default_value_t = 5)]
        count: u32,
        /// Milliseconds between two pings to the same host.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// The longest wait for a reply (the wait adapts to each host's RTT below this).
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Packets per second, all hosts together.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Allow prefixes larger than a /16.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print only the summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Connect once to TCP ports of hosts (addresses or CIDR prefixes), as a plan's `tcp`
    /// check does, and print each port's state: open (with the connect time), refused,
    /// timeout or unreachable.
    Ports {
        #[arg(required = true, value_name = "HOST|CIDR")]
        hosts: Vec<String>,
        /// Ports: numbers, names (ssh, https...) or ranges.
        #[arg(long, short, value_delimiter = ',', required = true)]
        ports: Vec<String>,
        /// The longest wait for a connection to be accepted.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Allow prefixes larger than a /16.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        /// Print only the summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run one speed test, as a planned one runs, and print each direction's result: against
    /// a Netwarden server (`--url`, with `--token-file` for a collector) or any HTTP(S) server
    /// (`--download-url`, `--upload-url`).
    Speedtest {
        /// A Netwarden speed-test server's base URL (the collector's HTTP address).
        #[arg(long)]
        url: Option<String>,
        /// Any file to fetch instead of the server's /speedtest/download.
        #[arg(long)]
        download_url: Option<String>,
        /// Any URL that accepts a POST instead of the server's /speedtest/upload.
        #[arg(long)]
        upload_url: Option<String>,
        #[arg(long, default_value_t = 25_000_000)]
        download_bytes: u64,
        #[arg(long, default_value_t = 10_000_000)]
        upload_bytes: u64,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// A collector API token, sent only to `--url`'s host.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Find the live hosts in CIDR prefixes: ICMP sweep, ARP on attached subnets, vendor,
    /// reverse DNS and open TCP ports.
    Discover {
        #[arg(required = true, value_name = "CIDR")]
        cidrs: Vec<String>,
        /// Packets per second, ICMP, ARP and TCP together.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// TCP ports to check on live hosts: numbers, names (ssh, https...) or ranges.
        #[arg(long, value_delimiter = ',', default_value = "22,80,443")]
        ports: Vec<String>,
        /// Probes per address and method; later ones only to addresses still silent.
        #[arg(long, default_value_t = 2)]
        attempts: u32,
        /// The longest wait for a reply (the wait adapts to the RTTs seen below this).
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Skip reverse-DNS lookups.
        #[arg(long)]
        no_dns: bool,
        /// Ask this DNS server (IP or IP:PORT) for names instead of the system's resolvers.
        #[arg(long, value_name = "IP[:PORT]", value_parser = parse_dns_server)]
        dns_server: Option<SocketAddr>,
        /// ICMP only, no ARP.
        #[arg(long)]
        no_arp: bool,
        /// Allow prefixes larger than a /16.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    #[arg(
        long,
        short,
        env = "NETWARDEN_AGENT_CONFIG",
        default_value = "/etc/netwarden/agent.toml"
    )]
    config: PathBuf,
}

/// Exit codes: 2 for bad input (as clap uses for usage errors), 77 (EX_NOPERM) when the
/// privileges for ICMP are missing, 1 for anything else.
fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(windows)]
    if let Command::Service(args) = &cli.command {
        // The service manager's dispatcher owns this thread until the service stops; the
        // agent runs on the service's own thread and runtime.
        return match netwarden_agent::winservice::run(args.config.clone()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err} (only the service manager starts `service`; from a console use `run`)");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ =
                std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("error: {err:#}\n"));
            if err.downcast_ref::<TargetError>().is_some()
                || err.downcast_ref::<PortError>().is_some()
                || err.downcast_ref::<UsageError>().is_some()
            {
                ExitCode::from(2)
            } else if err.downcast_ref::<OpenError>().is_some() {
                ExitCode::from(77)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Run(args) => {
            let settings = Settings::load(&args.config)?;
            netwarden_shared::logging::init(&settings.log);
            let shutdown = netwarden_shared::shutdown::on_signal();
            netwarden_shared::limits::raise_open_files();
            netwarden_agent::run(settings, shutdown).await?;
            Ok(())
        }
        #[cfg(windows)]
        Command::Firewall { action } => {
            netwarden_agent::winservice::firewall(action == "add")?;
            Ok(())
        }
        // Handled in main, before any runtime exists.
        #[cfg(windows)]
        Command::Service(_) => {
            Err(UsageError("`service` is only for the service manager".into()).into())
        }
        Command::Validate(args) => {
            let settings = Settings::load(&args.config)?;
            println!(
                "{}: OK (collector {}, {} probe targets, {} discovery sites, speed tests {}, buffer {}: {} records, {:.0} h at {} records/h, ~{} MB)",
                args.config.display(),
                settings.collector_url,
                settings.probe.targets.len(),
                settings.discovery.sites.len(),
                settings.speedtest.as_ref().map_or("off", |s| {
                    [Some(&s.url), s.download_url.as_ref(), s.upload_url.as_ref()]
                        .into_iter()
                        .flatten()
                        .find(|u| !u.is_empty())
                        .map_or("off", String::as_str)
                }),
                settings.buffer_path.display(),
                settings.buffer_size.max_records,
                settings.buffer_size.hours(),
                settings.buffer_size.records_per_hour,
                settings.buffer_size.bytes() / 1_000_000
            );
            let now = chrono::Utc::now().timestamp();
            for (what, path) in [
                ("the CA certificate", &settings.tls.ca),
                ("the agent certificate", &settings.tls.cert),
            ] {
                if let Some(warning) = netwarden_shared::tls::expiry_warning(what, path, now) {
                    println!("{warning}");
                }
            }
            Ok(())
        }
        Command::Probe {
            hosts,
            count,
            interval_ms,
            timeout_ms,
            rate,
            force,
            json,
            quiet,
        } => {
            check_range("--count", count.into(), 1, 1000)?;
            check_range("--rate", rate.into(), 1, 1_000_000)?;
            check_range("--timeout-ms", timeout_ms, 1, 60_000)?;
            let targets = targets::expand(&hosts, force)?;
            let plan = ProbePlan {
                count,
                interval: Duration::from_secs(1),
                ping_interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_millis(timeout_ms),
                min_timeout: Duration::from_millis(timeout_ms.min(500)),
                degraded_loss_pct: 5.0,
                degraded_rtt_ms: 250.0,
                targets,
            };
            let engine = open(&plan.targets, rate)?;
            let started = Instant::now();
            let records = probe_round(&engine, &plan, &mut RttHints::new()).await?;
            let rounds: Vec<_> = records
                .iter()
                .filter_map(|r| match &r.kind {
                    RecordKind::Probe(p) => Some(p),
                    _ => None,
                })
                .collect();
            if !quiet {
                print_rounds(&rounds, json);
            }
            let sent: u64 = rounds.iter().map(|r| u64::from(r.sent)).sum();
            let received: u64 = rounds.iter().map(|r| u64::from(r.received)).sum();
            eprintln!(
                "{} hosts, {sent} pings, {received} replies, {} lost ({:.3} %), {:.2} s at up to {rate} pings/s",
                rounds.len(),
                sent - received,
                100.0 * (sent - received) as f64 / sent.max(1) as f64,
                started.elapsed().as_secs_f64(),
            );
            Ok(())
        }
        Command::Ports {
            hosts,
            ports,
            timeout_ms,
            force,
            json,
            quiet,
        } => {
            check_range("--timeout-ms", timeout_ms, 1, 60_000)?;
            let ports = targets::parse_ports(&ports)?;
            if ports.is_empty() {
                return Err(UsageError("--ports names no port".into()).into());
            }
            let plan = PortPlan {
                targets: targets::expand(&hosts, force)?,
                ports,
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(timeout_ms),
            };
            let started = Instant::now();
            let records = tcp::check_round(&plan).await;
            let elapsed = started.elapsed();
            let checks: Vec<_> = records
                .iter()
                .filter_map(|r| match &r.kind {
                    RecordKind::Port(c) => Some(c),
                    _ => None,
                })
                .collect();
            if !quiet {
                print_port_checks(&checks, json);
            }
            let count = |state| checks.iter().filter(|c| c.state == state).count();
            eprintln!(
                "{} checks of {} hosts: {} open, {} refused, {} timeout, {} unreachable, {:.2} s ({} at once)",
                checks.len(),
                plan.targets.len(),
                count(PortState::Open),
                count(PortState::Refused),
                count(PortState::Timeout),
                count(PortState::Unreachable),
                elapsed.as_secs_f64(),
                tcp::CONNECTIONS_AT_ONCE,
            );
            Ok(())
        }
        Command::Speedtest {
            url,
            download_url,
            upload_url,
            download_bytes,
            upload_bytes,
            timeout_secs,
            token_file,
            json,
        } => {
            check_range("--timeout-secs", timeout_secs, 1, 3600)?;
            check_range("--download-bytes", download_bytes, 0, 1 << 30)?;
            check_range("--upload-bytes", upload_bytes, 0, 1 << 30)?;
            for (flag, value) in [
                ("--url", &url),
                ("--download-url", &download_url),
                ("--upload-url", &upload_url),
            ] {
                if let Some(value) = value {
                    let ok = reqwest::Url::parse(value).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                    });
                    if !ok {
                        return Err(UsageError(format!(
                            "{flag}: {value:?} is not an http:// or https:// URL with a host"
                        ))
                        .into());
                    }
                }
            }
            let download = download_bytes > 0 && (download_url.is_some() || url.is_some());
            let upload = upload_bytes > 0 && (upload_url.is_some() || url.is_some());
            if !download && !upload {
                return Err(UsageError(
                    "nothing to test: give --url, or --download-url or --upload-url".into(),
                )
                .into());
            }
            let auth = match &token_file {
                None => None,
                Some(file) => {
                    let token = std::fs::read_to_string(file)
                        .map_err(|e| UsageError(format!("--token-file {}: {e}", file.display())))?;
                    let hosts = url
                        .as_deref()
                        .and_then(|u| reqwest::Url::parse(u).ok())
                        .and_then(|u| u.host_str().map(str::to_owned))
                        .into_iter()
                        .collect();
                    Some(
                        netwarden_agent::speedtest::SpeedAuth::new(token.trim(), hosts)
                            .map_err(|e| UsageError(format!("--token-file: {e}")))?,
                    )
                }
            };
            let plan = netwarden_agent::config::SpeedTestPlan {
                url: url.unwrap_or_default().trim_end_matches('/').to_string(),
                download_url,
                upload_url,
                interval: Duration::from_secs(3600),
                download_bytes: if download { download_bytes } else { 0 },
                upload_bytes: if upload { upload_bytes } else { 0 },
                timeout: Duration::from_secs(timeout_secs),
                auth,
            };
            let client = netwarden_agent::speedtest::client(plan.timeout)?;
            let results = netwarden_agent::speedtest::run(&client, &plan).await;
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            for r in &results {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "direction": r.direction.as_str(), "url": r.url, "bytes": r.bytes,
                            "seconds": r.duration_us as f64 / 1e6, "mbps": r.mbps, "error": r.error,
                        })
                    );
                } else {
                    match &r.error {
                        None => println!(
                            "{:<8} {:>9.2} Mbit/s  {:>11} bytes in {:.2} s  {}",
                            r.direction.as_str(),
                            r.mbps,
                            r.bytes,
                            r.duration_us as f64 / 1e6,
                            r.url
                        ),
                        Some(error) => {
                            println!("{:<8} failed: {error}  {}", r.direction.as_str(), r.url)
                        }
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} directions failed", results.len());
            }
            Ok(())
        }
        Command::Discover {
            cidrs,
            rate,
            ports,
            attempts,
            timeout_ms,
            no_dns,
            dns_server,
            no_arp,
            force,
            json,
        } => {
            check_range("--rate", rate.into(), 1, 1_000_000)?;
            check_range("--attempts", attempts.into(), 1, 10)?;
            check_range("--timeout-ms", timeout_ms, 1, 60_000)?;
            let targets = targets::expand(&cidrs, force)?;
            let ports = targets::parse_ports(&ports)?;
            let mut timeout = discovery::default_timeout();
            timeout.ceiling = Duration::from_millis(timeout_ms);
            timeout.floor = timeout.floor.min(timeout.ceiling);
            let options = DiscoveryOptions {
                ports,
                attempts,
                timeout,
                reverse_dns: !no_dns,
                dns_server,
                arp: !no_arp,
            };
            let limiter = Arc::new(RateLimiter::new(rate));
            let engine = open_with(&targets, limiter.clone())?;
            let progress = Arc::new(Progress::default());
            let ticker = std::io::stderr()
                .is_terminal()
                .then(|| spawn_progress(&engine, progress.clone(), targets.len()));
            let report = discovery::discover(&engine, limiter, targets, &options, progress).await?;
            if let Some(ticker) = ticker {
                ticker.abort();
                eprint!("\r\x1b[2K");
            }
            print_hosts(&report, json);
            eprintln!("{}", summary(&report));
            Ok(())
        }
    }
}

fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("{text:?} is not an IP address or IP:PORT"))
}

fn check_range(flag: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if !(min..=max).contains(&value) {
        return Err(UsageError(format!(
            "{flag} must be between {min} and {max}, not {value}"
        ))
        .into());
    }
    Ok(())
}

fn open(targets: &[std::net::IpAddr], rate: u32) -> Result<IcmpEngine> {
    open_with(targets, Arc::new(RateLimiter::new(rate)))
}

fn open_with(targets: &[std::net::IpAddr], rate: Arc<RateLimiter>) -> Result<IcmpEngine> {
    let v4 = targets.iter().any(|t| t.is_ipv4());
    let v6 = targets.iter().any(|t| t.is_ipv6());
    Ok(icmp::open_engine(v4, v6, rate)?)
}

/// A progress line on the terminal, redrawn five times a second.
fn spawn_progress(
    engine: &IcmpEngine,
    progress: Arc<Progress>,
    addresses: usize,
) -> tokio::task::JoinHandle<()> {
    let (sent_before, replies_before) = engine.counters();
    // A weak handle: the progress task must not keep the engine (and its sockets) alive.
    let counters = engine.counter_handle();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (sent, replies) = counters.read();
            eprint!(
                "\r\x1b[2K{} addresses: {} ICMP + {} ARP probes sent, {} ICMP replies, {:.1} s",
                addresses,
                sent.saturating_sub(sent_before),
                progress.arp_sent.load(std::sync::atomic::Ordering::Relaxed),
                replies.saturating_sub(replies_before),
                started.elapsed().as_secs_f64()
            );
        }
    })
}

fn summary(report: &DiscoveryReport) -> String {
    let mut line = format!(
        "{} hosts up of {} addresses in {:.3} s: {} by ICMP and ARP, {} by ARP only, {} by ICMP only",
        report.hosts.len(),
        report.addresses,
        report.elapsed.as_secs_f64(),
        report.count(DiscoveryMethod::IcmpAndArp),
        report.count(DiscoveryMethod::Arp),
        report.count(DiscoveryMethod::Icmp),
    );
    if !report.arp_interfaces.is_empty() {
        line.push_str(&format!("; ARP on {}", report.arp_interfaces.join(", ")));
    }
    if let Some(err) = &report.arp_error {
        line.push_str(&format!(
            "\nwarning: ARP sweep failed ({err}); results are from ICMP alone. ARP needs root or CAP_NET_RAW"
        ));
    }
    line
}

fn print_hosts(report: &DiscoveryReport, json: bool) {
    let method = DiscoveryMethod::as_str;
    if json {
        let rows: Vec<_> = report
            .hosts
            .iter()
            .map(|h| {
                serde_json::json!({
                    "address": h.address.to_string(), "mac": h.mac, "vendor": h.vendor,
                    "hostname": h.hostname, "open_ports": h.open_ports, "rtt_ms": h.rtt_ms,
                    "found_by": method(h.method),
                })
            })
            .collect();
        print_json(&rows);
        return;
    }
    println!(
        "{:<39} {:<17} {:<28} {:<30} {:>8} {:<9} PORTS",
        "ADDRESS", "MAC", "VENDOR", "NAME", "RTT", "FOUND BY"
    );
    for h in &report.hosts {
        let cut =
            |s: Option<&str>, n: usize| s.map_or("-".to_string(), |s| s.chars().take(n).collect());
        println!(
            "{:<39} {:<17} {:<28} {:<30} {:>8} {:<9} {}",
            h.address.to_string(),
            h.mac.as_deref().unwrap_or("-"),
            cut(h.vendor.as_deref(), 28),
            cut(h.hostname.as_deref(), 30),
            h.rtt_ms.map_or("-".into(), |v| format!("{v:.3}")),
            method(h.method),
            h.open_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
}

fn print_port_checks(checks: &[&netwarden_shared::PortCheck], json: bool) {
    let ms = |c: &netwarden_shared::PortCheck| c.connect_ms.map(|v| format!("{v:.3}"));
    if json {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "address": c.target.to_string(), "port": c.port,
                    "state": c.state.as_str(), "connect_ms": c.connect_ms,
                })
            })
            .collect();
        print_json(&rows);
        return;
    }
    println!(
        "{:<39} {:>5} {:<11} {:>10}",
        "ADDRESS", "PORT", "STATE", "CONNECT MS"
    );
    for c in checks {
        println!(
            "{:<39} {:>5} {:<11} {:>10}",
            c.target.to_string(),
            c.port,
            c.state.as_str(),
            ms(c).unwrap_or_else(|| "-".into())
        );
    }
}

fn print_json(rows: &[serde_json::Value]) {
    println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
}

fn print_rounds(rounds: &[&netwarden_shared::ProbeRound], json: bool) {
    if json {
        let rows: Vec<_> = rounds
            .iter()
            .map(|p| {
                let rtt = p.rtt.unwrap_or_default();
                serde_json::json!({
                    "host": p.target.to_string(), "status": p.status.as_str(),
                    "sent": p.sent, "received": p.received, "loss_pct": p.loss_pct(),
                    "rtt_min_ms": p.rtt.map(|_| rtt.min), "rtt_median_ms": p.rtt.map(|_| rtt.median),
                    "rtt_mean_ms": p.rtt.map(|_| rtt.mean), "rtt_max_ms": p.rtt.map(|_| rtt.max),
                    "rtt_p95_ms": p.rtt.map(|_| rtt.p95), "rtt_stddev_ms": p.rtt.map(|_| rtt.stddev),
                    "jitter_ms": p.rtt.map(|_| rtt.jitter), "rtts_ms": p.rtts_ms,
                })
            })
            .collect();
        print_json(&rows);
        return;
    }
    println!(
        "{:<39} {:<9} {:>5} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "HOST", "STATUS", "SENT", "RECV", "LOSS%", "MIN", "MEDIAN", "MEAN", "MAX", "P95", "JITTER"
    );
    for p in rounds {
        let ms = |v: Option<f32>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        println!(
            "{:<39} {:<9} {:>5} {:>5} {:>6.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            p.target.to_string(),
            p.status.as_str(),
            p.sent,
            p.received,
            p.loss_pct(),
            ms(p.rtt.map(|r| r.min)),
            ms(p.rtt.map(|r| r.median)),
            ms(p.rtt.map(|r| r.mean)),
            ms(p.rtt.map(|r| r.max)),
            ms(p.rtt.map(|r| r.p95)),
            ms(p.rtt.map(|r| r.jitter)),
        );
    }
}
