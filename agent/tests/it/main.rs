//! Agent integration tests against real hosts in network namespaces (`../shared/netlab`).

mod lab;
