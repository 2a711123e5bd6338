//! The collector's domain types, in one place: what storage keeps, detection finds, alerting
//! delivers and the API serves. They depend on nothing else in the crate; storage, detection,
//! alerting and REST import them.

pub mod alerting;
pub mod customers;
pub mod fleet_plan;
pub mod inventory;
pub mod kpi;
pub mod maxout;
pub mod overview;
pub mod poi;
pub mod rollup;
pub mod schema;
pub mod telemetry;
pub mod tokens;
