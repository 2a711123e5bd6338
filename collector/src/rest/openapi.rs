//! The OpenAPI 3.1 document served at `/api/openapi.json`. Each handler carries its own
//! `#[utoipa::path]`, and routes are registered through `utoipa_axum::routes!`, which takes
//! the path from that attribute: a route cannot be added without its entry in the document.
//! What the auth layer adds to every route (the bearer scheme, the role it needs, 401, 403 and
//! 429) is filled in here from [`policy::required`], the table the guard itself enforces.

use crate::auth::policy::{self, Access};
use crate::auth::{AuthConfig, Role};
use crate::error::ErrorBody;
use axum::http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr};
use utoipa::ToSchema;

/// The scheme's name in `components.securitySchemes`.
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Netwarden collector API",
        description = "Devices, probe history and rollups, anomalies and their alerts, POIs and \
                       maxouts, circuit telemetry, KPIs, the fleet plan and API tokens. JSON throughout, times in \
                       ISO 8601 UTC. Errors answer `{\"error\": {\"code\", \"message\"}}`, the \
                       message naming the parameter or field first. No text may contain a NUL \
                       character (400). Send a token as `Authorization: Bearer nwt_...` \
                       (`netwarden-collector token create`)."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "devices", description = "Agents, sites, devices, probe history"),
        (name = "alerting", description = "Anomalies, their notifications and silences"),
        (name = "pois", description = "Cacti POIs, utilisation and maxouts"),
        (name = "telemetry", description = "Circuit telemetry, circuits, accounts, employees"),
        (name = "kpis", description = "Network KPIs"),
        (name = "plan", description = "The fleet plan agents pull, and its history"),
        (name = "tokens", description = "Operator API tokens (admin)"),
        (name = "system", description = "Health, metrics, live events, dashboard, speed tests"),
    )
)]
pub struct ApiDoc;

/// An error answer in the shared shape.
pub(crate) fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build()
}

/// Adds the auth layer's behaviour, and the answers every `/api` operation can give, to each
/// operation: which role it needs (from the guard's own table, under this collector's
/// `[auth]`), its security requirement, and 400, 401, 403, 429 and 503 where they apply.
pub fn complete(doc: &mut OpenApi, auth: &AuthConfig) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`nwt_` and 64 hex digits). `/ws` also takes it as `?token=`.",
                ))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation.as_mut() {
                complete_operation(path, &method, operation, auth);
            }
        }
    }
}

fn complete_operation(path: &str, method: &Method, op: &mut Operation, auth: &AuthConfig) {
    let access = policy::required(method, path, auth.open_health, auth.open_metrics);
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    let takes_input =
        op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
    if takes_input {
        add(
            "400",
            "A parameter or the body is invalid; the message names it",
        );
    }
    if path.starts_with("/api/") {
        add("503", "The database is unavailable; try again");
    }
    let note = match access {
        Access::Open => {
            op.security = Some(vec![SecurityRequirement::default()]);
            "No token needed.".to_string()
        }
        Access::Needs(role) => {
            let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
            // A configured anonymous role that suffices makes the token optional.
            let anonymous_enough = auth.anonymous_role.is_some_and(|a| a >= role);
            op.security = Some(if anonymous_enough {
                vec![SecurityRequirement::default(), bearer]
            } else {
                vec![bearer]
            });
            add(
                "401",
                "No token, a malformed Authorization header, or an unknown or revoked token",
            );
            if role > Role::Viewer || auth.anonymous_role.is_some() {
                add(
                    "403",
                    "The token's role may not do this; the message names the role",
                );
            }
            if auth.rate_per_sec > 0 {
                add("429", "This token is over its rate; see Retry-After");
            }
            format!("Needs the `{role}` role.")
        }
    };
    op.description = Some(match op.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
}

/// An `enum` of strings, for query parameters the handlers take as text and check themselves.
pub(crate) fn one_of(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

pub(crate) use crate::domain::schema::one_of_or_null;

/// A list of one component schema or a list of another: for endpoints whose rows depend on a
/// parameter (`resolution`, `kind`).
pub(crate) fn list_of_either(first: &str, second: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder};
    let list = |name: &str| {
        ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(name))
            .build()
    };
    AnyOfBuilder::new()
        .item(list(first))
        .item(list(second))
        .into()
}
