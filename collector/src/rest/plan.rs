//! The fleet plan: `/api/plan` (read; replace on top of the version it was edited from), one
//! target at a time under `/api/plan/targets/{name}`, and its history `/api/plan/versions`.
//! Viewers read, operators edit. Every save is a new
//! version recording who, when, why and what changed; agents pull their share of it.

use super::{page_limit, page_offset, AppState, MAX_PAGE};
use crate::auth::guard::Caller;
use crate::auth::Role;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::rest::input::JsonBody;
use crate::storage::fleet_plan::{NewPlanVersion, PlanVersion, PlanVersionInfo, SavedPlan};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use netwarden_plan::Plan;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A plan of 100,000 targets fits.
pub const MAX_PLAN_BYTES: usize = 32 * 1024 * 1024;
/// Longest comment kept with a version.
const MAX_COMMENT: usize = 2000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(super::telemetry::limited(
            routes!(get_plan, put_plan),
            MAX_PLAN_BYTES,
        ))
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(get_target, put_target, delete_target))
}

/// A plan version and its document.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanDocument {
    /// 0: no plan was ever saved (the plan is empty).
    pub version: i64,
    pub author: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub comment: String,
    pub summary: String,
    pub plan: Plan,
}

impl PlanDocument {
    fn from_version(version: PlanVersion) -> Result<Self, ApiError> {
        let plan = netwarden_plan::from_json(&version.document).map_err(|e| {
            // Only a document this collector stored is read: one it cannot read is a bug or
            // a newer collector's format, not the caller's fault.
            tracing::error!(version = version.info.version, error = %e, "a stored plan version cannot be read");
            ApiError::new(
                ErrorCode::Internal,
                format!("plan version {} cannot be read: {e}", version.info.version),
            )
        })?;
        Ok(PlanDocument {
            version: version.info.version,
            author: Some(version.info.author),
            created_at: Some(version.info.created_at),
            comment: version.info.comment,
            summary: version.info.summary,
            plan,
        })
    }
}

/// The plan in force, with its version (send it back as `base_version` to edit it).
#[utoipa::path(get, path = "/api/plan", tag = "plan",
    responses((status = 200, description = "The plan in force", body = PlanDocument)))]
async fn get_plan(State(state): State<AppState>) -> Result<Json<PlanDocument>, ApiError> {
    match state.store.current_plan().await? {
        Some(version) => Ok(Json(PlanDocument::from_version(version)?)),
        None => Ok(Json(PlanDocument {
            version: 0,
            author: None,
            created_at: None,
            comment: String::new(),
            summary: String::new(),
            plan: Plan::default(),
        })),
    }
}

/// A whole new plan, edited from `base_version`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanEdit {
    /// The version this plan was edited from (0 when there was none). When another save came
    /// in since, the plan is refused with 409: fetch it, redo the edit, apply again.
    #[schema(minimum = 0)]
    base_version: i64,
    /// Why, for the history.
    #[serde(default)]
    comment: Option<String>,
    plan: Plan,
}

/// Replaces the plan, as a new version. Agents connected to any collector get their share
/// within seconds. Operators may edit it; changing its speed tests needs an admin.
#[utoipa::path(put, path = "/api/plan", tag = "plan", request_body = PlanEdit,
    responses(
        (status = 200, description = "Saved as a new version; `summary` says what changed", body = PlanVersionInfo),
        (status = 403, description = "Speed tests changed without an admin token", body = ErrorBody),
        (status = 409, description = "The plan changed since `base_version`", body = ErrorBody),
        (status = 413, description = "The plan is over 32 MiB", body = ErrorBody)))]
async fn put_plan(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    JsonBody(edit): JsonBody<PlanEdit>,
) -> Result<Json<PlanVersionInfo>, ApiError> {
    if edit.base_version < 0 {
        return Err(ApiError::invalid("base_version: must be 0 or more"));
    }
    let comment = checked_comment(edit.comment)?;
    match save(&state, caller.as_ref(), edit.base_version, edit.plan, comment, "plan.").await? {
        SavedPlan::Saved(info) => Ok(Json(info)),
        SavedPlan::Conflict { current } => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "base_version: the plan is at version {current}, not {}; fetch it, redo the edit and apply again",
                edit.base_version
            ),
        )),
    }
}

fn checked_comment(comment: Option<String>) -> Result<String, ApiError> {
    let comment = comment.unwrap_or_default();
    if comment.chars().count() > MAX_COMMENT {
        return Err(ApiError::invalid(format!(
            "comment: at most {MAX_COMMENT} characters"
        )));
    }
    Ok(comment)
}

/// Validates `plan` (errors named under `prefix`), checks the caller may make this change
/// from version `base`, and saves it on top of `base`.
async fn save(
    state: &AppState,
    caller: Option<&Extension<Caller>>,
    base: i64,
    plan: Plan,
    comment: String,
    prefix: &str,
) -> Result<SavedPlan, ApiError> {
    netwarden_plan::validate(&plan).map_err(|mut errors| {
        for error in &mut errors.0 {
            error.field = format!("{prefix}{}", error.field);
        }
        ApiError::invalid(errors.to_string())
    })?;
    let before = match state.store.plan_version(base).await? {
        Some(version) => PlanDocument::from_version(version)?.plan,
        None => Plan::default(),
    };
    // A speed test makes every agent it names send traffic to a URL: like agent.toml's, it is
    // an administrator's decision, not an operator's.
    let role = caller.map(|Extension(c)| c.role);
    if before.speedtests != plan.speedtests && role < Some(Role::Admin) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "plan.speedtests: adding, changing or removing speed tests needs an admin token (they send traffic from agents to a URL)",
        ));
    }
    let summary = netwarden_plan::summary(&netwarden_plan::diff(&before, &plan));
    let document = serde_json::to_string(&plan)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("plan: {e}")))?;
    let author = caller.map_or_else(
        || "anonymous".to_string(),
        |Extension(c)| c.name.to_string(),
    );
    let saved = state
        .store
        .save_plan(&NewPlanVersion {
            base,
            document,
            author,
            comment,
            summary,
            created_at: Utc::now(),
        })
        .await?;
    if let SavedPlan::Saved(info) = &saved {
        tracing::info!(version = info.version, author = %info.author, summary = %info.summary, "plan saved");
        state.plan_saved.notify_one();
    }
    Ok(saved)
}

/// Applies `edit` to the plan in force and saves it, again on the newer version if another
/// save came in between (an edit of one target does not need the caller to retry).
async fn edit_current(
    state: &AppState,
    caller: Option<&Extension<Caller>>,
    comment: String,
    mut edit: impl FnMut(&mut Plan) -> Result<(), ApiError>,
) -> Result<PlanVersionInfo, ApiError> {
    for _ in 0..5 {
        let (base, info, mut plan) = match state.store.current_plan().await? {
            Some(version) => {
                let (base, info) = (version.info.version, version.info.clone());
                (base, Some(info), PlanDocument::from_version(version)?.plan)
            }
            None => (0, None, Plan::default()),
        };
        let before = plan.clone();
        edit(&mut plan)?;
        // The same again (a retried request): no new version, no push to every agent.
        if let (true, Some(info)) = (plan == before, info) {
            return Ok(info);
        }
        match save(state, caller, base, plan, comment.clone(), "plan.").await? {
            SavedPlan::Saved(info) => return Ok(info),
            SavedPlan::Conflict { .. } => continue,
        }
    }
    Err(ApiError::new(
        ErrorCode::Unavailable,
        "the plan changed five times while this edit was being saved; try again",
    ))
}

fn target_name(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    name.map(|Path(n)| n)
        .map_err(|_| ApiError::invalid("name: must be a target name"))
}

/// One target of the plan in force.
#[utoipa::path(get, path = "/api/plan/targets/{name}", tag = "plan",
    params(("name" = String, Path, description = "The target's name")),
    responses(
        (status = 200, description = "The target", body = netwarden_plan::Target),
        (status = 404, description = "No such target", body = ErrorBody)))]
async fn get_target(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<netwarden_plan::Target>, ApiError> {
    let name = target_name(name)?;
    let plan = match state.store.current_plan().await? {
        Some(version) => PlanDocument::from_version(version)?.plan,
        None => Plan::default(),
    };
    plan.targets
        .into_iter()
        .find(|t| t.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("target {name:?} is not in the plan")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EditParams {
    /// Why, for the history.
    comment: Option<String>,
}

/// Adds or replaces one target (its `name` is the path's), as a new version of the plan.
#[utoipa::path(put, path = "/api/plan/targets/{name}", tag = "plan",
    params(("name" = String, Path, description = "The target's name"), EditParams),
    request_body = netwarden_plan::Target,
    responses(
        (status = 200, description = "Saved as a new version", body = PlanVersionInfo)))]
async fn put_target(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<EditParams>, QueryRejection>,
    JsonBody(mut target): JsonBody<netwarden_plan::Target>,
) -> Result<Json<PlanVersionInfo>, ApiError> {
    let name = target_name(name)?;
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    if target.name != name {
        return Err(ApiError::invalid(format!(
            "name: the body names {:?}, the path {name:?}",
            target.name
        )));
    }
    target.name = name.clone();
    let info = edit_current(
        &state,
        caller.as_ref(),
        checked_comment(p.comment)?,
        |plan| {
            match plan.targets.iter_mut().find(|t| t.name == name) {
                Some(existing) => *existing = target.clone(),
                None => plan.targets.push(target.clone()),
            }
            Ok(())
        },
    )
    .await?;
    Ok(Json(info))
}

/// Removes one target, as a new version of the plan; its agents stop probing it.
#[utoipa::path(delete, path = "/api/plan/targets/{name}", tag = "plan",
    params(("name" = String, Path, description = "The target's name"), EditParams),
    responses(
        (status = 200, description = "Saved as a new version", body = PlanVersionInfo),
        (status = 404, description = "No such target", body = ErrorBody)))]
async fn delete_target(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<EditParams>, QueryRejection>,
) -> Result<Json<PlanVersionInfo>, ApiError> {
    let name = target_name(name)?;
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let info = edit_current(
        &state,
        caller.as_ref(),
        checked_comment(p.comment)?,
        |plan| {
            let before = plan.targets.len();
            plan.targets.retain(|t| t.name != name);
            if plan.targets.len() == before {
                return Err(ApiError::not_found(format!(
                    "target {name:?} is not in the plan"
                )));
            }
            Ok(())
        },
    )
    .await?;
    Ok(Json(info))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VersionParams {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// The plan's history, newest first: who saved each version, when, why and what changed.
#[utoipa::path(get, path = "/api/plan/versions", tag = "plan", params(VersionParams),
    responses((status = 200, description = "A page of versions", body = Vec<PlanVersionInfo>)))]
async fn versions(
    State(state): State<AppState>,
    params: Result<Query<VersionParams>, QueryRejection>,
) -> Result<Json<Vec<PlanVersionInfo>>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page_limit(p.limit, 100, MAX_PAGE)?;
    let offset = page_offset(p.offset)?;
    Ok(Json(state.store.plan_versions(limit, offset).await?))
}

/// One version of the plan as it was saved.
#[utoipa::path(get, path = "/api/plan/versions/{version}", tag = "plan",
    params(("version" = i64, Path, description = "The version number")),
    responses(
        (status = 200, description = "The version", body = PlanDocument),
        (status = 404, description = "No such version", body = ErrorBody)))]
async fn version(
    State(state): State<AppState>,
    version: Result<Path<i64>, PathRejection>,
) -> Result<Json<PlanDocument>, ApiError> {
    let Path(version) =
        version.map_err(|_| ApiError::invalid("version: must be a version number"))?;
    match state.store.plan_version(version).await? {
        Some(found) => Ok(Json(PlanDocument::from_version(found)?)),
        None => Err(ApiError::not_found(format!(
            "plan version {version} not found"
        ))),
    }
}
