//! Pieces both Netwarden binaries use: domain types, config loading, the one rustls mTLS
//! builder, shutdown signalling and tracing setup.

pub mod config;
pub mod limits;
pub mod logging;
pub mod shutdown;
pub mod text;
pub mod tls;
pub mod types;

pub use text::{clean_text, redact};
pub use types::*;

/// The version both binaries report (`--version`, agent status, `/health`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
