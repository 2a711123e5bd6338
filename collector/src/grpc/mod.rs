//! gRPC: the mutual-TLS listener, the agent ingest service and circuit telemetry; and on its
//! own TLS port, the operators' query service.

pub mod conns;
pub mod incoming;
pub mod ingest;
pub mod plan;
pub mod query;
pub mod revoke;
pub mod telemetry;

pub use incoming::{AgentConnInfo, AgentStream};
