//! The S3 request rate limiter: one token bucket shared by every List and Get of the worker.
//!
//! Consumes `aws.rate_limit` / `aws.rate_limit_burst` / `aws.slowdown_backoff` and S3's verdicts
//! ([`RateLimiter::slow_down`] after `SlowDown`/503, [`RateLimiter::recovered`] after a success); produces
//! waits. Delayed requests are counted in `rate_limited_total` (the runbook's metric) and
//! `s3sentinel_rate_limit_wait_seconds`, and logged at debug with `rate_limited = true`.
//!
//! The bucket is implemented as GCRA (a "virtual scheduling" token bucket): each caller reserves the
//! next free slot under a mutex and sleeps until it, so callers are served in the order they asked and
//! nobody polls. A slow-down pushes every slot, including those already reserved, past the penalty, and
//! empties the bucket so that requests resume at the steady rate rather than in a burst.

use crate::telemetry::metrics::Metrics;
use s3_sentinel_api::config::AwsConfig;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The penalty doubles on consecutive slow-downs up to this factor of the base.
const MAX_PENALTY_FACTOR: u32 = 64;

/// Default base penalty after a `SlowDown` when none is configured (the config's default too).
const DEFAULT_SLOWDOWN_BACKOFF: Duration = Duration::from_secs(1);

/// A token bucket shared by all S3 requests. Cloning gives another handle to the same bucket.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    /// Time between two tokens.
    interval: Duration,
    /// How far ahead of "now" slots may be handed out without waiting: `(burst - 1) × interval`.
    tolerance: Duration,
    state: Mutex<State>,
    metrics: Metrics,
}

struct State {
    /// Theoretical arrival time of the next request (GCRA); the bucket is full when it is in the past.
    tat: Instant,
    /// No request starts before this instant (S3 asked us to slow down).
    paused_until: Instant,
    /// Slow-downs since the last success.
    consecutive_slowdowns: u32,
    /// First penalty after a slow-down.
    base_penalty: Duration,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.inner.interval)
            .field("tolerance", &self.inner.tolerance)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A bucket refilled at `rate_per_sec` tokens per second holding at most `burst` tokens (both
    /// raised to sane minimums: 0.001/s and 1). The slow-down penalty starts at one second; see
    /// [`RateLimiter::with_slowdown_backoff`].
    pub fn new(rate_per_sec: f64, burst: u32, metrics: Metrics) -> Self {
        let rate = if rate_per_sec.is_finite() {
            rate_per_sec.max(0.001)
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        let now = Instant::now();
        RateLimiter {
            inner: Arc::new(Inner {
                interval,
                tolerance,
                state: Mutex::new(State {
                    tat: now,
                    paused_until: now,
                    consecutive_slowdowns: 0,
                    base_penalty: DEFAULT_SLOWDOWN_BACKOFF,
                }),
                metrics,
            }),
        }
    }

    /// The limiter the `aws` section configures (rate, burst defaulting to `ceil(rate)`, slow-down base).
    pub fn from_config(aws: &AwsConfig, metrics: Metrics) -> Self {
        let burst = aws
            .rate_limit_burst
            .unwrap_or_else(|| aws.rate_limit.ceil().max(1.0) as u32);
        RateLimiter::new(aws.rate_limit, burst, metrics).with_slowdown_backoff(aws.slowdown_backoff.get())
    }

    /// Sets the first penalty after a `SlowDown` (doubled on each consecutive one, up to 64×).
    pub fn with_slowdown_backoff(self, base: Duration) -> Self {
        self.lock().base_penalty = base;
        self
    }

    /// Waits for a token. Callers are served in the order they called; a future dropped while waiting
    /// gives up its slot (it is not handed to anyone else, which only errs on the slow side).
    pub async fn acquire(&self) {
        let asked = Instant::now();
        let mut slot = self.reserve(asked);
        loop {
            if slot > Instant::now() {
                tokio::time::sleep_until(slot).await;
            }
            // A slow-down that arrived while we slept moves us behind the penalty.
            let now = Instant::now();
            let paused_until = self.lock().paused_until;
            if paused_until > now {
                slot = self.reserve(now);
                continue;
            }
            break;
        }
        let waited = Instant::now().saturating_duration_since(asked);
        if !waited.is_zero() {
            self.inner.metrics.rate_limited.inc();
            self.inner.metrics.rate_limit_wait.observe(waited.as_secs_f64());
            tracing::debug!(
                rate_limited = true,
                wait_ms = waited.as_millis() as u64,
                "s3 request delayed by rate limit"
            );
        }
    }

    /// S3 answered `SlowDown` (or 503): every caller pauses for the penalty, which doubles on each
    /// consecutive slow-down up to 64× the base. Slow-downs reported while a penalty is still running
    /// come from requests that started before it and do not escalate it again.
    pub fn slow_down(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.paused_until > now {
            return;
        }
        let factor = 1u32
            << state
                .consecutive_slowdowns
                .min(MAX_PENALTY_FACTOR.trailing_zeros());
        state.consecutive_slowdowns = state.consecutive_slowdowns.saturating_add(1);
        let penalty = state.base_penalty.saturating_mul(factor);
        state.paused_until = now + penalty;
        // Empty the bucket at the end of the penalty: resume at the steady rate, not in a burst.
        state.tat = state.tat.max(state.paused_until + self.inner.tolerance);
        drop(state);
        tracing::warn!(
            penalty_ms = penalty.as_millis() as u64,
            factor,
            "s3 asked to slow down; pausing s3 requests"
        );
    }

    /// A request succeeded: the next slow-down starts again at the base penalty.
    pub fn recovered(&self) {
        self.lock().consecutive_slowdowns = 0;
    }

    /// Reserves the next slot at or after `now`.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let tat = state.tat.max(now);
        let earliest = tat.checked_sub(self.inner.tolerance).unwrap_or(now);
        let slot = earliest.max(now).max(state.paused_until);
        state.tat = tat.max(slot) + self.inner.interval;
        slot
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a plain assignment.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32) -> (RateLimiter, Metrics) {
        let m = Metrics::new().unwrap();
        (RateLimiter::new(rate, burst, m.clone()), m)
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_immediate_then_steady_rate() {
        let (l, m) = limiter(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the burst must not wait");
        assert_eq!(m.rate_limited.get(), 0);
        for _ in 0..10 {
            l.acquire().await;
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(1000));
        assert_eq!(m.rate_limited.get(), 10);
        assert_eq!(m.rate_limit_wait.get_sample_count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_after_a_quiet_period() {
        let (l, m) = limiter(2.0, 2);
        for _ in 0..2 {
            l.acquire().await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        l.acquire().await;
        l.acquire().await;
        assert_eq!(Instant::now(), start);
        assert_eq!(m.rate_limited.get(), 0);
        l.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_rate() {
        let (l, _) = limiter(100.0, 1);
        let start = Instant::now();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.acquire().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(490));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_pauses_everyone_and_doubles_until_recovered() {
        let (l, _) = limiter(1000.0, 10);
        let l = l.with_slowdown_backoff(Duration::from_millis(100));
        let start = Instant::now();
        l.slow_down();
        l.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(100));

        // Consecutive: 200 ms, then 400 ms.
        let t = Instant::now();
        l.slow_down();
        l.slow_down(); // during the penalty: does not escalate
        l.acquire().await;
        assert_eq!(Instant::now() - t, Duration::from_millis(200));
        let t = Instant::now();
        l.slow_down();
        l.acquire().await;
        assert_eq!(Instant::now() - t, Duration::from_millis(400));

        // A success resets the penalty to the base.
        l.recovered();
        let t = Instant::now();
        l.slow_down();
        l.acquire().await;
        assert_eq!(Instant::now() - t, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn penalty_is_capped_at_64x() {
        let (l, _) = limiter(1000.0, 1);
        let l = l.with_slowdown_backoff(Duration::from_millis(10));
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            let t = Instant::now();
            l.slow_down();
            l.acquire().await;
            last = Instant::now() - t;
        }
        assert_eq!(last, Duration::from_millis(640));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_also_delays_callers_already_waiting() {
        let (l, _) = limiter(10.0, 1);
        let l = l.with_slowdown_backoff(Duration::from_secs(2));
        let start = Instant::now();
        l.acquire().await; // takes the only token
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await; // the waiter reserved the 100 ms slot
        l.slow_down();
        waiter.await.unwrap();
        assert!(
            Instant::now() - start >= Duration::from_millis(2010),
            "{:?}",
            Instant::now() - start
        );
    }
}
