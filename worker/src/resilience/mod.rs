//! Rate limiting, circuit breaking and backoff, composed in one place from validated settings.
//!
//! Consumes the validated `aws` (rate limit), `circuit_breaker` and `sentinel.retry` sections; produces
//! the three building blocks the source and sink wrap their requests in: [`RateLimiter`] (S3 token
//! bucket with `SlowDown` penalty), [`CircuitBreaker`] (around the Logs Ingestion API) and [`Backoff`]
//! with [`retry_after`] (retry delays that honour the server).

pub mod backoff;
pub mod breaker;
pub mod rate_limit;

pub use backoff::{Backoff, retry_after, retry_after_at};
pub use breaker::{BreakerPermit, BreakerState, Cancelled, CircuitBreaker};
pub use rate_limit::RateLimiter;
