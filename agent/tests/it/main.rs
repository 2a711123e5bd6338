//! Agent integration tests: the CLI, and real hosts in network namespaces (`../shared/netlab`).

mod cli;
// Network namespaces are Linux-only.
#[cfg(target_os = "linux")]
mod lab;
