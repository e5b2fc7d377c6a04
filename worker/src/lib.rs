//! The s3-sentinel worker: discovers log objects in S3, streams and parses them, and delivers the records
//! to the Azure Monitor Logs Ingestion API at least once.
//!
//! [`pipeline`] wires the stages together and reads top to bottom; each stage lives in its own module.
#![forbid(unsafe_code)]

pub mod admin;
pub mod batch;
pub mod check_schema;
pub mod checkpoint;
pub mod coordination;
pub mod dead_letter;
pub mod demo;
pub mod local_s3;
pub mod pipeline;
pub mod preflight;
pub mod resilience;
pub mod s3;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod tracker;
