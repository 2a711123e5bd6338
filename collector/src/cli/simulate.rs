//! `simulate telemetry`: realistic circuit utilisation posted to a collector.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SimulateCommand {
    /// Post realistic circuit utilisation (diurnal curve, noise, spikes, sustained maxouts)
    /// to a collector's batch endpoint. The same --seed gives the same circuits and values;
    /// with --start too, the same timestamps (and so exactly the same samples).
    Telemetry {
        /// The collector's HTTP base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        circuits: u32,
        /// Samples per second, all circuits together.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Every Kth sample of a circuit is a single spike over its capacity (0: never).
        #[arg(long, default_value_t = 0)]
        spike_every: u32,
        /// Every Mth sample of a circuit starts a sustained maxout (0: never).
        #[arg(long, default_value_t = 0)]
        maxout_every: u32,
        /// How many samples a sustained maxout lasts.
        #[arg(long, default_value_t = 5)]
        maxout_samples: u32,
        #[arg(long, default_value_t = 60)]
        duration_secs: u64,
        /// Stop after this many samples.
        #[arg(long)]
        samples: Option<u64>,
        /// Register the circuits (with their capacities) first.
        #[arg(long)]
        register: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "SIM-")]
        prefix: String,
        /// The account registered circuits belong to.
        #[arg(long)]
        account: Option<String>,
        /// API token (operator to post; admin with --register).
        #[arg(long, env = "NETWARDEN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Timestamp samples from this time (RFC 3339) instead of now: each circuit's samples
        /// are --step apart from here (the collector takes samples up to 30 days old).
        #[arg(long)]
        start: Option<chrono::DateTime<chrono::Utc>>,
        /// Seconds between one circuit's samples with --start (default: as posted,
        /// circuits ÷ rate).
        #[arg(long, requires = "start")]
        step: Option<f64>,
    },
}

pub async fn run(command: SimulateCommand) -> Result<()> {
    match command {
        SimulateCommand::Telemetry {
            url,
            circuits,
            rate,
            spike_every,
            maxout_every,
            maxout_samples,
            duration_secs,
            samples,
            register,
            seed,
            prefix,
            account,
            token,
            start,
            step,
        } => {
            let step = step
                .map(|secs| {
                    std::time::Duration::try_from_secs_f64(secs)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            anyhow::anyhow!("--step: {secs} is not a positive number of seconds")
                        })
                })
                .transpose()?;
            let options = crate::telemetry::simulate::SimulateOptions {
                url,
                circuits,
                rate,
                spike_every,
                maxout_every,
                maxout_samples,
                duration: std::time::Duration::from_secs(duration_secs),
                samples,
                register,
                seed,
                prefix,
                account,
                token,
                start,
                step,
            };
            let report = crate::telemetry::simulate::run(&options).await?;
            println!(
                "posted {} samples in {} requests ({} spikes, {} maxout samples)",
                report.samples, report.requests, report.spikes, report.maxout_samples
            );
            Ok(())
        }
    }
}
