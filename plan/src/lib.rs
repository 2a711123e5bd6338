//! The fleet plan (issue 30): what the collector's agents run, held by the collector and
//! pulled by each agent. [`model`] is the document, [`validate()`] checks it whole,
//! [`Resolver`] picks one agent's share and [`diff()`] says what an edit changes.

pub mod csv;
pub mod diff;
pub mod model;
pub mod resolve;
pub mod validate;

pub use diff::{diff, summary, Change, ChangeKind};
pub use model::*;
pub use resolve::{
    AgentPlan, DiscoveryAssignment, EnrolAssignment, PlannedTarget, ProbeGroup, Resolver,
    SpeedTestAssignment,
};
pub use validate::{
    parse_address, validate, validate_check, FieldError, PlanErrors, TargetAddress,
};

/// A plan file that cannot be read as a plan.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Reads a plan from YAML (or JSON, which is YAML too); errors name the field and line.
pub fn from_yaml(text: &str) -> Result<Plan, ParseError> {
    if text.trim().is_empty() {
        return Ok(Plan::default());
    }
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ParseError(inner.to_string())
        } else {
            ParseError(format!("{path}: {inner}"))
        }
    })
}

/// The plan as YAML, for people to edit.
pub fn to_yaml(plan: &Plan) -> String {
    yaml_serde::to_string(plan).unwrap_or_else(|e| format!("# cannot render the plan: {e}\n"))
}

/// Reads a plan stored as JSON.
pub fn from_json(text: &str) -> Result<Plan, ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ParseError(format!("{}: {}", e.path(), e.inner())))
}
