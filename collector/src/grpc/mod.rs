//! gRPC: the mutual-TLS listener and the agent ingest service.

pub mod incoming;
pub mod ingest;

pub use incoming::{AgentConnInfo, AgentStream};
