//! Netwarden collector: takes agent streams over mutual-TLS gRPC, stores them in SQLite or
//! PostgreSQL and serves them over HTTP. `main.rs` is a thin CLI over this library so tests
//! and benchmarks drive the real thing.

pub mod alert;
pub mod auth;
pub mod cacti;
pub mod commands;
pub mod config;
pub mod detect;
pub mod error;
pub mod events;
pub mod grpc;
pub mod kpi;
pub mod metrics;
pub mod pki;
pub mod poi;
pub mod rest;
pub mod rollup;
pub mod server;
pub mod storage;
pub mod telemetry;

pub use server::{start, Running, StartError};
