//! `token create|list|revoke`: operator API tokens (printed once; only the hash is stored).

use super::{load, open_store};
use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (once).
    Create {
        #[command(flatten)]
        config: super::ConfigArg,
        /// viewer (read), operator (acknowledge, resolve, silence, post telemetry) or admin.
        #[arg(long)]
        role: crate::auth::Role,
        /// A name to know it by (letters, digits, '-', '_', '.'), e.g. the script or person.
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, dates; never the tokens).
    List(super::ConfigArg),
    /// Revoke the token with this name; collectors stop taking it within seconds.
    Revoke {
        #[command(flatten)]
        config: super::ConfigArg,
        name: String,
    },
}

pub async fn run(command: TokenCommand) -> Result<()> {
    let config = match &command {
        TokenCommand::Create { config, .. } | TokenCommand::Revoke { config, .. } => config,
        TokenCommand::List(config) => config,
    };
    let settings = load(&config.config)?;
    let store = open_store(&settings, 1).await?;
    match command {
        TokenCommand::Create { role, name, .. } => {
            let (token, secret) = crate::rest::tokens::create_token(store.as_ref(), &name, role)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "token {:?} ({}) created; it is shown only now:",
                token.name, token.role
            );
            println!("{secret}");
        }
        TokenCommand::List(_) => {
            for t in store.tokens().await? {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".into(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\t{state}",
                    t.id,
                    t.name,
                    t.role,
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { name, .. } => {
            let active = store
                .tokens()
                .await?
                .into_iter()
                .find(|t| t.name == name && t.revoked_at.is_none())
                .with_context(|| format!("no active token named {name:?}"))?;
            store.revoke_token(active.id, chrono::Utc::now()).await?;
            println!("revoked {name:?}");
        }
    }
    Ok(())
}
