//! Which role each route needs, in one table so it can be read and tested as a whole.

use super::Role;
use axum::http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Open,
    /// A token (or the anonymous role) of at least this role.
    Needs(Role),
}

/// The access a request needs. `open_health` / `open_metrics` come from `[auth]`.
pub fn required(method: &Method, path: &str, open_health: bool, open_metrics: bool) -> Access {
    match path {
        "/health" if open_health => return Access::Open,
        "/metrics" if open_metrics => return Access::Open,
        "/health" | "/metrics" | "/metrics/network" | "/ws" => return Access::Needs(Role::Viewer),
        _ => {}
    }
    // Agents measure throughput against these with a token of their own (any role): they
    // cost the collector's uplink, so never anonymously unless `anonymous_role` says so.
    if path.starts_with("/speedtest/") {
        return Access::Needs(Role::Viewer);
    }
    // The dashboard's page and assets: the data behind them needs a token.
    if !path.starts_with("/api/") && path != "/api" {
        return Access::Open;
    }
    if path == "/api/tokens" || path.starts_with("/api/tokens/") {
        return Access::Needs(Role::Admin);
    }
    if method == Method::GET || method == Method::HEAD {
        return Access::Needs(Role::Viewer);
    }
    let operator_action = path.ends_with("/acknowledge")
        || path.ends_with("/resolve")
        || path == "/api/silences"
        || path.starts_with("/api/silences/")
        || path == "/api/v1/telemetry"
        || path == "/api/v1/telemetry/batch"
        || path.starts_with("/api/alerting/routes/") && path.ends_with("/test");
    if method == Method::POST && operator_action
        || method == Method::DELETE && path.starts_with("/api/silences/")
        || method == Method::PUT && path == "/api/plan"
        || (method == Method::PUT || method == Method::DELETE)
            && path.starts_with("/api/plan/targets/")
    {
        return Access::Needs(Role::Operator);
    }
    Access::Needs(Role::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, path: &str) -> Access {
        required(&method, path, true, true)
    }

    #[test]
    fn reads_need_a_viewer() {
        for path in [
            "/api/devices",
            "/api/devices/1/history",
            "/api/anomalies",
            "/api/statistics",
            "/api/pois",
            "/api/circuits",
        ] {
            assert_eq!(
                need(Method::GET, path),
                Access::Needs(Role::Viewer),
                "{path}"
            );
        }
        assert_eq!(need(Method::GET, "/ws"), Access::Needs(Role::Viewer));
    }

    #[test]
    fn acting_on_alerts_needs_an_operator() {
        for (method, path) in [
            (Method::POST, "/api/anomalies/4/acknowledge"),
            (Method::POST, "/api/anomalies/4/resolve"),
            (Method::POST, "/api/alerts/4/acknowledge"),
            (Method::POST, "/api/silences"),
            (Method::DELETE, "/api/silences/2"),
            (Method::POST, "/api/v1/telemetry"),
            (Method::POST, "/api/v1/telemetry/batch"),
            (Method::PUT, "/api/plan"),
            (Method::PUT, "/api/plan/targets/core-1"),
            (Method::DELETE, "/api/plan/targets/core-1"),
            (Method::POST, "/api/alerting/routes/noc/test"),
        ] {
            assert_eq!(
                need(method.clone(), path),
                Access::Needs(Role::Operator),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn configuration_and_tokens_need_an_admin() {
        for (method, path) in [
            (Method::PUT, "/api/circuits/C1"),
            (Method::PUT, "/api/accounts/A1"),
            (Method::PUT, "/api/employees/E1"),
            (Method::GET, "/api/tokens"),
            (Method::POST, "/api/tokens"),
            (Method::DELETE, "/api/tokens/3"),
            (Method::POST, "/api/anything-new"),
        ] {
            assert_eq!(
                need(method.clone(), path),
                Access::Needs(Role::Admin),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn health_and_metrics_follow_config() {
        assert_eq!(need(Method::GET, "/health"), Access::Open);
        assert_eq!(need(Method::GET, "/metrics"), Access::Open);
        // The network's addresses, names and customers, and a large answer: never open.
        assert_eq!(
            need(Method::GET, "/metrics/network"),
            Access::Needs(Role::Viewer)
        );
        assert_eq!(
            required(&Method::GET, "/health", false, false),
            Access::Needs(Role::Viewer)
        );
        assert_eq!(
            required(&Method::GET, "/metrics", false, false),
            Access::Needs(Role::Viewer)
        );
        assert_eq!(need(Method::GET, "/"), Access::Open);
        assert_eq!(
            need(Method::GET, "/speedtest/download"),
            Access::Needs(Role::Viewer)
        );
    }
}
