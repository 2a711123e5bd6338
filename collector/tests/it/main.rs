//! Collector integration tests: the storage suite on both backends, mTLS refusals, ingest edge
//! cases, the HTTP API, the CLI, and end-to-end runs of the real binaries.

mod alert_e2e;
mod alert_engine;
mod alert_lab;
mod alert_restart;
mod alert_scenario;
mod alerting;
mod api;
mod auth;
mod backup;
mod cacti;
mod cacti_lab;
mod cli;
mod customer_claims;
mod dashboard;
mod deploy;
mod detection_lab;
mod dns_lab;
mod e2e;
mod email;
mod hardening;
mod ingest;
mod kpi;
mod live;
mod openapi;
mod poi;
mod query;
mod rollup;
mod storage;
mod support;
mod telemetry;
mod telemetry_order;
mod tls;
