//! The s3-sentinel operator: reconciles `S3SentinelConnector` resources into worker Deployments.
//!
//! A reconcile reads like its modules: [`controller::validate`] turns the resource and the Secrets it
//! names into a [`controller::validate::ValidatedConnector`] (or errors that name the field or Secret key);
//! [`controller::build`] turns that into the desired objects without touching the API; [`controller::apply`]
//! writes them with server-side apply under [`FIELD_MANAGER`] and deletes labelled leftovers;
//! [`controller::status`] derives the status, writes it only when it changed and records Events on
//! transitions. [`controller::run`] drives it with `kube_runtime::Controller` while this replica holds
//! the leader Lease ([`leader`]), and [`admin`] serves health and metrics.
#![forbid(unsafe_code)]

pub mod admin;
pub mod build;
pub mod controller;
pub mod crdgen;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod reference;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "s3-sentinel-operator";
