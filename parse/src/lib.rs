//! Streaming decode and parse: the bytes of one S3 object in, serialised Sentinel records out.
//!
//! This crate is the worker's domain core. It knows nothing of S3, HTTP or Sentinel's API: it reads a
//! [`std::io::Read`] (already streaming from S3), detects and undoes compression ([`decode`]), splits the
//! stream into records with a bounded buffer, and hands each record to a [`RecordSink`] as one JSON
//! object, serialised exactly once. Anything that cannot become a record is handed to the same sink as a
//! [`Rejection`] with a bounded [`RejectReason`]: nothing is dropped silently and no input can panic it.
//!
//! Memory is bounded by configuration, never by object size: the largest buffer is one record
//! (`max_record_bytes`) plus the reader's fixed-size buffer.
#![forbid(unsafe_code)]

pub mod decode;
pub mod emit;
pub mod formats;
pub mod json;
pub mod lines;
pub mod oversize;
pub mod schema;
pub mod time;

pub use decode::{DecodeError, Decoded, open_decoded};
pub use emit::{ParseOptions, ParseStats, RecordSink, RejectReason, Rejection, SinkClosed};
pub use formats::{ParseError, detect_format, parse_object, parse_object_at};
pub use oversize::{OversizeReport, TRUNCATION_MARKER, check_oversize_fields};
pub use s3_sentinel_api::LogFormat;
pub use schema::{Mismatch, MismatchKind, SchemaChecker};
