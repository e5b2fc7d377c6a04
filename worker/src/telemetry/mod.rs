//! Metrics and logging setup.

pub mod logging;
pub mod metrics;
pub mod process;
pub mod progress;
pub mod schema_findings;
pub mod stats;

pub use metrics::Metrics;
