//! Limits of the Azure Monitor Logs Ingestion API that shape how the worker batches records.
//!
//! Source: "Azure Monitor service limits — Logs Ingestion API"
//! (<https://learn.microsoft.com/azure/azure-monitor/service-limits#logs-ingestion-api>).

/// Maximum size of one API call as sent on the wire (after gzip): 1 MiB.
pub const MAX_REQUEST_BYTES_SENT: usize = 1024 * 1024;

/// Maximum uncompressed size of one API call that the worker builds.
///
/// The service documents 1 MB for the compressed and uncompressed call; the worker keeps every
/// uncompressed body at or below one million bytes so that no request can be rejected for size whatever
/// the compression ratio.
pub const MAX_REQUEST_BYTES_UNCOMPRESSED: usize = 1_000_000;

/// Maximum size of a single field value; the service truncates longer values.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// The api-version the worker sends and the emulator requires.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";

/// Default OAuth scope for the Logs Ingestion API in Azure public cloud.
pub const LOGS_INGESTION_SCOPE: &str = "https://monitor.azure.com//.default";
