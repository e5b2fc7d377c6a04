//! Metrics and logging setup.

pub mod logging;
pub mod metrics;
pub mod process;

pub use metrics::Metrics;
