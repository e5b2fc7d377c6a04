//! The route table: which path and method reach which handler.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::Shared;
use crate::{admin, auth, ingest};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route(
            "/dataCollectionRules/{dcr}/streams/{stream}",
            post(ingest::upload),
        )
        .route("/stats", get(admin::stats))
        .route(
            "/admin/faults",
            get(admin::get_faults)
                .post(admin::set_faults)
                .delete(admin::clear_faults),
        )
        .route("/admin/records", get(admin::records))
        .fallback(admin::not_found)
        .with_state(shared)
}
