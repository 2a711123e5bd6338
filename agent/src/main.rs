use anyhow::Result;
use clap::{Parser, Subcommand};
use netwarden_agent::config::{ProbePlan, Settings};
use netwarden_agent::probe::{probe_round, SurgeSender};
use netwarden_shared::RecordKind;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "netwarden-agent", version, about = "Netwarden agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: probe, buffer, stream to the collector.
    Run(ConfigArg),
    /// Check a configuration file (and the certificates it names) and exit.
    Validate(ConfigArg),
    /// Ping hosts once and print the round statistics.
    Probe {
        #[arg(required = true)]
        hosts: Vec<IpAddr>,
        #[arg(long, short = 'c', default_value_t = 5)]
        count: u32,
        /// Milliseconds between pings to one host.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Print JSON instead of a table.
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

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let settings = Settings::load(&args.config)?;
            netwarden_shared::logging::init(&settings.log);
            let shutdown = netwarden_shared::shutdown::on_signal();
            netwarden_agent::run(settings, shutdown).await?;
            Ok(())
        }
        Command::Validate(args) => {
            let settings = Settings::load(&args.config)?;
            println!(
                "{}: OK (collector {}, {} targets, buffer {})",
                args.config.display(),
                settings.collector_url,
                settings.probe.targets.len(),
                settings.buffer_path.display()
            );
            Ok(())
        }
        Command::Probe {
            hosts,
            count,
            interval_ms,
            timeout_ms,
            json,
        } => {
            if count == 0 || count > 1000 {
                anyhow::bail!("--count must be between 1 and 1000");
            }
            let plan = ProbePlan {
                targets: hosts.clone(),
                count,
                interval: Duration::from_secs(1),
                ping_interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_millis(timeout_ms),
                degraded_loss_pct: 5.0,
                degraded_rtt_ms: 250.0,
            };
            let sender = SurgeSender::new(
                hosts.iter().any(IpAddr::is_ipv4),
                hosts.iter().any(IpAddr::is_ipv6),
            )?;
            let mut records = probe_round(Arc::new(sender), &plan, 0).await;
            records.sort_by_key(|r| match &r.kind {
                RecordKind::Probe(p) => hosts.iter().position(|h| *h == p.target),
                _ => None,
            });
            print_rounds(&records, json);
            Ok(())
        }
    }
}

fn print_rounds(records: &[netwarden_shared::Record], json: bool) {
    let rounds = records.iter().filter_map(|r| match &r.kind {
        RecordKind::Probe(p) => Some(p),
        _ => None,
    });
    if json {
        let rows: Vec<_> = rounds
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
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return;
    }
    println!(
        "{:<39} {:<9} {:>5} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "HOST", "STATUS", "SENT", "RECV", "LOSS%", "MIN", "MEDIAN", "MAX", "P95", "JITTER"
    );
    for p in rounds {
        let ms = |v: Option<f32>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        println!(
            "{:<39} {:<9} {:>5} {:>5} {:>6.1} {:>8} {:>8} {:>8} {:>8} {:>8}",
            p.target.to_string(),
            p.status.as_str(),
            p.sent,
            p.received,
            p.loss_pct(),
            ms(p.rtt.map(|r| r.min)),
            ms(p.rtt.map(|r| r.median)),
            ms(p.rtt.map(|r| r.max)),
            ms(p.rtt.map(|r| r.p95)),
            ms(p.rtt.map(|r| r.jitter)),
        );
    }
}
