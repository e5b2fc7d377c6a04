//! The Azure Monitor Logs Ingestion sink: Entra ID tokens, the HTTP client and batch delivery.
//!
//! Consumes finished [`Batch`](crate::batch::Batch)es and the validated `sentinel` config; produces
//! [`Delivered`] verdicts: accepted (acknowledge the records), failed (dead-letter them with the reason)
//! or abandoned at shutdown (leave them unacknowledged). [`auth`] gets tokens, [`client`] sends one
//! request and classifies the answer, [`delivery`] applies the retry table.

pub mod auth;
pub mod client;
pub mod delivery;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod test_server;

pub use auth::{AccessToken, AuthError, EntraTokenProvider, TokenSource};
pub use client::{ClientError, LogsIngestionClient, RequestBody, SendOutcome, http_client};
pub use delivery::{Delivered, Delivery, DeliveryFailure};
