//! A token bucket deciding whether an upload request is throttled (429) and for how long.
//!
//! Time is passed in, so the bucket is tested without a clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// Token bucket: `capacity` tokens, refilled at `rate` tokens per second.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = f64::from(limit.burst.max(1));
        Self {
            rate: limit.requests_per_second,
            capacity,
            tokens: capacity,
            updated: now,
        }
    }

    /// Take one token, or say how long until one is available.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// `Retry-After` in whole seconds for a wait: rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs();
    let secs = if wait.subsec_nanos() > 0 { whole + 1 } else { whole };
    secs.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_throttle_then_refill() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                requests_per_second: 2.0,
                burst: 2,
            },
            start,
        );
        assert!(bucket.try_acquire(start).is_ok());
        assert!(bucket.try_acquire(start).is_ok());
        let wait = bucket.try_acquire(start).expect_err("bucket is empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(bucket.try_acquire(start + Duration::from_millis(500)).is_ok());
        assert!(bucket.try_acquire(start + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
