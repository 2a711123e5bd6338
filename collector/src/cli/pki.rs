//! `pki ...`: the certificate authority for agents and the collector, and revocations.

use super::{load, open_store};
use crate::pki;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create a CA and the collector's server certificate.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address agents use to reach the collector (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Reissue the collector's server certificate from the existing CA (rotation).
    IssueServer {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address agents use to reach the collector (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue a client certificate for an agent; its name becomes the agent's identity.
    IssueAgent {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Where to write NAME.pem and NAME.key (default: DIR/agents).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 397)]
        days: u32,
    },
    /// Revoke an agent certificate (by serial or file: a stolen one), or retire an agent
    /// (every certificate of it issued until now). Collectors sharing the database refuse it
    /// within seconds, and close its open streams.
    Revoke {
        #[command(flatten)]
        config: super::ConfigArg,
        /// Retire this agent: refuse every certificate of it issued until now (one issued
        /// afterwards works).
        #[arg(long, conflicts_with_all = ["serial", "cert"])]
        agent: Option<String>,
        /// The certificate's serial in hex (`openssl x509 -serial`; colons allowed).
        #[arg(long, conflicts_with = "cert")]
        serial: Option<String>,
        /// The certificate file (PEM) to revoke.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List certificate revocations.
    Revocations(super::ConfigArg),
}

pub async fn run(command: PkiCommand) -> Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            hosts,
            days,
            force,
        } => {
            let (ca, server) = pki::init(&dir, &hosts, days, force)?;
            println!("CA:     {} (key {})", ca.cert.display(), ca.key.display());
            println!(
                "server: {} (key {})",
                server.cert.display(),
                server.key.display()
            );
            println!(
                "Keep {} secret: it can issue agent certificates.",
                ca.key.display()
            );
            Ok(())
        }
        PkiCommand::IssueServer { dir, hosts, days } => {
            let server = pki::issue_server(&dir, &hosts, days)?;
            println!(
                "server: {} (key {}); restart the collector to use it",
                server.cert.display(),
                server.key.display()
            );
            Ok(())
        }
        PkiCommand::IssueAgent {
            dir,
            name,
            out,
            days,
        } => {
            let out = out.unwrap_or_else(|| dir.join("agents"));
            let issued = pki::issue_agent(&dir, &name, &out, days)?;
            let serial = netwarden_shared::tls::cert_file_info(&issued.cert)
                .map(|info| info.serial)
                .unwrap_or_default();
            println!(
                "agent {name}: {} (key {}), serial {serial}",
                issued.cert.display(),
                issued.key.display()
            );
            Ok(())
        }
        command @ (PkiCommand::Revoke { .. } | PkiCommand::Revocations(_)) => {
            revoke_certificate(command).await
        }
    }
}

async fn revoke_certificate(command: PkiCommand) -> Result<()> {
    let config = match &command {
        PkiCommand::Revoke { config, .. } | PkiCommand::Revocations(config) => config,
        _ => anyhow::bail!("not a revocation command"),
    };
    let settings = load(&config.config)?;
    let store = open_store(&settings, 1).await?;
    match command {
        PkiCommand::Revoke {
            agent,
            serial,
            cert,
            reason,
            ..
        } => {
            use crate::grpc::revoke::normalise_serial;
            let (agent, serial) = match (agent, serial, cert) {
                (Some(agent), None, None) => {
                    netwarden_shared::AgentId::new(agent.as_str())
                        .map_err(|e| anyhow::anyhow!("--agent: {e}"))?;
                    (Some(agent), None)
                }
                (None, Some(serial), None) => {
                    let hex = normalise_serial(&serial);
                    anyhow::ensure!(
                        !hex.is_empty(),
                        "--serial {serial:?}: not a hex serial number"
                    );
                    (None, Some(hex))
                }
                (None, None, Some(path)) => {
                    let info = netwarden_shared::tls::cert_file_info(&path)?;
                    (Some(info.common_name), Some(info.serial))
                }
                _ => anyhow::bail!("give one of --agent, --serial or --cert"),
            };
            let done = store
                .revoke_certificate(&crate::storage::tokens::CertRevocation {
                    id: 0,
                    agent,
                    serial,
                    revoked_at: chrono::Utc::now(),
                    reason,
                })
                .await?;
            println!("{}", describe_revocation(&done));
        }
        PkiCommand::Revocations(_) => {
            for r in store.cert_revocations().await? {
                println!("{}", describe_revocation(&r));
            }
        }
        _ => {}
    }
    Ok(())
}

fn describe_revocation(r: &crate::storage::tokens::CertRevocation) -> String {
    let what = match (&r.agent, &r.serial) {
        (agent, Some(serial)) => format!(
            "certificate {serial}{}",
            agent
                .as_ref()
                .map(|a| format!(" of agent {a}"))
                .unwrap_or_default()
        ),
        (Some(agent), None) => format!("agent {agent} (certificates issued until then)"),
        (None, None) => "nothing".into(),
    };
    format!(
        "{}\trevoked {what} at {}{}",
        r.id,
        r.revoked_at.to_rfc3339(),
        if r.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", r.reason)
        }
    )
}
