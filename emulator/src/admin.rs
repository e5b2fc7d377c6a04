//! Admin and observation endpoints: `GET /stats`, `GET|POST|DELETE /admin/faults`, `GET /admin/records`.
//!
//! These are emulator-only; the real service has nothing like them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::FaultPlan;
use crate::state::Shared;
use crate::stats::{AcceptedRecord, Stats};

pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(shared.stats())
}

pub(crate) async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<FaultPlan> {
    Json(shared.faults())
}

pub(crate) async fn set_faults(
    State(shared): State<Arc<Shared>>,
    plan: Result<Json<FaultPlan>, JsonRejection>,
) -> Response {
    let plan = match plan {
        Ok(Json(plan)) => plan,
        Err(rejection) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "InvalidFaultPlan",
                &rejection.body_text(),
            );
        }
    };
    if let Err(error) = plan.validate() {
        return admin_error(StatusCode::BAD_REQUEST, "InvalidFaultPlan", &error.to_string());
    }
    tracing::info!(?plan, "fault plan replaced");
    shared.set_faults(plan.clone());
    Json(plan).into_response()
}

pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.set_faults(FaultPlan::none());
    StatusCode::NO_CONTENT
}

pub(crate) async fn records(State(shared): State<Arc<Shared>>) -> Json<Vec<AcceptedRecord>> {
    Json(shared.accepted())
}

pub(crate) async fn not_found() -> Response {
    admin_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "No such endpoint on the Logs Ingestion emulator.",
    )
}

fn admin_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}
