//! Retry delays: jittered exponential backoff and the server's own `Retry-After`.
//!
//! Consumes a [`RetryConfig`] (or an initial delay and a cap) and HTTP response headers; produces the
//! [`Duration`] to wait before the next attempt. A delay the server asked for (`retry-after-ms`,
//! `x-ms-retry-after-ms` or `Retry-After` as delta-seconds or HTTP-date) wins over our own backoff,
//! capped at the same maximum so a confused server cannot park a batch for hours.

use rand::Rng;
use reqwest::header::HeaderMap;
use s3_sentinel_api::config::RetryConfig;
use std::time::{Duration, SystemTime};

/// Decorrelated-jitter exponential backoff ("Exponential Backoff And Jitter", AWS Architecture Blog):
/// each delay is drawn uniformly from `[initial, 3 × previous]`, then capped at `max`.
///
/// Decorrelated jitter spreads retries of many batches that failed together (a 503 burst) while still
/// growing roughly exponentially. Every delay lies in `[initial, max]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    previous: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max` (`max` is raised to `initial` if lower).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            previous: initial,
        }
    }

    /// The backoff of the sink's retry policy.
    pub fn from_config(cfg: &RetryConfig) -> Backoff {
        Backoff::new(cfg.initial_backoff.get(), cfg.max_backoff.get())
    }

    /// The cap applied to our own delays and to the server's.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The next jittered delay.
    pub fn next_delay(&mut self) -> Duration {
        let low = self.initial.as_nanos() as u64;
        let high = (self.previous.as_nanos() as u64).saturating_mul(3).max(low);
        let drawn = if high > low {
            rand::rng().random_range(low..=high)
        } else {
            low
        };
        let delay = Duration::from_nanos(drawn).min(self.max);
        self.previous = delay;
        delay
    }

    /// The delay before the next attempt: the server's (capped at [`Backoff::max`]) when it gave one,
    /// otherwise [`Backoff::next_delay`].
    pub fn delay_for(&mut self, server: Option<Duration>) -> Duration {
        match server {
            Some(asked) => asked.min(self.max),
            None => self.next_delay(),
        }
    }

    /// Starts over from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.previous = self.initial;
    }
}

/// The delay a response asks for, judged against the current wall-clock time.
///
/// Looks at `retry-after-ms`, then `x-ms-retry-after-ms` (Azure, milliseconds), then `Retry-After`
/// (RFC 9110: delta-seconds or an HTTP-date). Unparsable values are ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// [`retry_after`] with the current time given, so an HTTP-date can be tested.
pub fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn delays_stay_within_initial_and_cap_and_grow() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut reached_cap_region = false;
        for _ in 0..200 {
            let mut b = Backoff::new(initial, max);
            let mut last = Duration::ZERO;
            for _ in 0..30 {
                let d = b.next_delay();
                assert!(d >= initial && d <= max, "{d:?}");
                last = d;
            }
            reached_cap_region |= last > Duration::from_secs(1);
        }
        assert!(reached_cap_region, "backoff never grew past 1s in 30 steps");
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(10));
        for _ in 0..20 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(30));
    }

    #[test]
    fn server_delay_wins_but_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(2));
        assert_eq!(
            b.delay_for(Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        assert_eq!(
            b.delay_for(Some(Duration::from_secs(3600))),
            Duration::from_secs(2)
        );
        let own = b.delay_for(None);
        assert!(own >= Duration::from_millis(10) && own <= Duration::from_secs(2));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]), now),
            Some(Duration::from_secs(30))
        );
        // Obsolete RFC 850 form.
        assert_eq!(
            retry_after_at(
                &headers(&[("retry-after", "Sunday, 06-Nov-94 08:49:47 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        // A date in the past: retry now.
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_at(&headers(&[("retry-after-ms", "250")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_at(
                &headers(&[("x-ms-retry-after-ms", "1200"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(retry_after_at(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after_at(&headers(&[]), now), None);
    }
}
