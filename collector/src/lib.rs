//! Netwarden collector: takes agent streams over mutual-TLS gRPC, stores them in SQLite or
//! PostgreSQL and serves them over HTTP. `main.rs` is a thin CLI over this library so tests
//! and benchmarks drive the real thing: [`cli`] runs a command, [`app`] assembles a running
//! collector.

pub mod alert;
pub mod app;
pub mod auth;
pub mod cacti;
pub mod cli;
pub mod config;
pub mod detect;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod kpi;
pub mod metrics;
pub mod network_metrics;
pub mod pki;
pub mod poi;
pub mod rest;
pub mod rollup;
pub mod storage;
pub mod telemetry;

pub use app::{start, Running, StartError};
