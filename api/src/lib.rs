//! Types shared by the s3-sentinel operator and worker.
//!
//! The worker reads its configuration file as a [`WorkerConfig`]; the operator renders the same type into
//! the ConfigMap it mounts into worker pods. Keeping one definition here means the two binaries cannot
//! drift apart: a key the operator writes is a key the worker understands.
#![forbid(unsafe_code)]

pub mod config;
pub mod connector;
pub mod duration;
pub mod format;
pub mod limits;
pub mod reference;
pub mod stream;

pub use config::{ConfigError, FieldError, WorkerConfig};
pub use format::{FormatChoice, LogFormat};
pub use stream::{ColumnType, SchemaViolations, StreamColumn};
