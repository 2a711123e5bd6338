//! Collector integration tests: the store suite on both backends (`store/`), mTLS refusals, ingest edge
//! cases, the HTTP API, the CLI, and end-to-end runs of the real binaries.

mod alert_e2e;
mod alert_engine;
mod alert_lab;
mod alert_restart;
mod alert_scenario;
mod api;
mod auth;
mod backup;
mod cacti;
mod cacti_lab;
mod cli;
mod dashboard;
mod deploy;
mod detection_lab;
mod dns_lab;
mod e2e;
mod email;
mod enrol_lab;
mod hardening;
mod ingest;
mod kpi;
mod live;
mod network_lab;
mod openapi;
mod operator_cli;
mod plan;
mod plan_e2e;
mod port_lab;
mod query;
mod store;
mod support;
mod telemetry;
mod telemetry_order;
mod tls;
