//! Errors of the emulator library: configuration and start-up failures.
//!
//! Request-level failures are not Rust errors: they are HTTP responses, built in `response.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the emulator could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A configuration field has a value that cannot work.
    #[error("invalid emulator config `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("failed to bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The record file could not be opened for appending.
    #[error("failed to open record file {path}")]
    RecordFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server task panicked or was cancelled.
    #[error("emulator server task failed")]
    ServerTask(#[source] tokio::task::JoinError),
}
