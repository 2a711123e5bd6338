//! gRPC: the mutual-TLS listener, the agent ingest service and circuit telemetry.

pub mod incoming;
pub mod ingest;
pub mod telemetry;

pub use incoming::{AgentConnInfo, AgentStream};
