//! Exit codes, for scripts: 0 done; 1 any other failure (the collector unreachable or failing,
//! a bad config file); 2 a bad command line (clap's own, and values such as a duration); 3 the
//! token was refused (missing, unknown, revoked, or its role may not do this); 4 no such
//! device, anomaly, silence or plan version; 5 the collector refused the request as invalid (for
//! a plan also: a file that is not a valid plan, or a plan someone else saved since: 409); 6 a
//! route's test notification did not reach every recipient.

use crate::api::ApiError;
use std::process::ExitCode;

/// For `--help`.
pub const HELP: &str = "Exit codes: 0 done; 1 any other failure (the collector unreachable or \
failing, a bad config file); 2 a bad command line; 3 the token was refused (missing, unknown, \
revoked, or its role may not do this); 4 no such device, anomaly, silence or plan version; 5 the \
collector refused the request as invalid (for a plan also: a file that is not a valid plan, or a \
plan someone else saved since); 6 a route's test notification did not reach every recipient.";

pub const OTHER: u8 = 1;
pub const USAGE: u8 = 2;
pub const REFUSED_TOKEN: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const INVALID: u8 = 5;
pub const NOT_ALL_SENT: u8 = 6;

/// Prints the error to stderr and gives its exit code.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("netwarden: {err:#}");
    ExitCode::from(code(err))
}

fn code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<crate::plan::InvalidPlan>().is_some() {
        return INVALID;
    }
    if err.downcast_ref::<crate::plan::Usage>().is_some() {
        return USAGE;
    }
    if err.downcast_ref::<crate::commands::NotAllSent>().is_some() {
        return NOT_ALL_SENT;
    }
    match err.downcast_ref::<ApiError>() {
        Some(ApiError::Refused { status, .. }) => match *status {
            401 | 403 => REFUSED_TOKEN,
            404 => NOT_FOUND,
            400 | 409 | 413 | 422 => INVALID,
            _ => OTHER,
        },
        _ => OTHER,
    }
}
