//! The circuit breaker around the Logs Ingestion API (ADR-002).
//!
//! Consumes the validated [`CircuitBreakerConfig`] and the outcome of each request (reported through the
//! [`BreakerPermit`] the request was let through with); produces permits, waits while the breaker is
//! open, and publishes its state (gauge `s3sentinel_circuit_breaker_state`, transitions counter, a log
//! line per transition and a [`watch`] channel for status reporting).
//!
//! States: **closed** lets everything through and counts consecutive failures; `failure_threshold` of
//! them **open** it. Open lets nothing through for `reset_timeout`, then turns **half-open**: one probe
//! at a time is let through; `success_threshold` successful probes close it, a failed probe reopens it.
//! Outcomes of requests let through in an earlier state are ignored once the state has moved on: only
//! the probe speaks for a half-open breaker.

use crate::telemetry::metrics::Metrics;
use s3_sentinel_api::config::CircuitBreakerConfig;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests flow; consecutive failures are counted.
    Closed,
    /// One probe request at a time tests whether the service is back.
    HalfOpen,
    /// No request is let through until the reset timeout has passed.
    Open,
}

impl BreakerState {
    /// The state's name as used in logs, metric labels and status: `closed`, `half_open`, `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The value of the state gauge: 0 closed, 1 half-open, 2 open.
    /// The state a `s3sentinel_circuit_breaker_state` gauge value stands for (unknown values read as open).
    pub fn from_gauge_value(value: i64) -> BreakerState {
        match value {
            0 => BreakerState::Closed,
            1 => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }

    /// The value of the `s3sentinel_circuit_breaker_state` gauge for this state.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Waiting for the breaker was cancelled (shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled while waiting for the circuit breaker")]
pub struct Cancelled;

/// A circuit breaker. Cloning gives another handle to the same breaker.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    failure_threshold: u32,
    success_threshold: u32,
    reset_timeout: Duration,
    core: Mutex<Core>,
    /// Woken when a probe slot frees up or the state changes.
    changed: Notify,
    state_tx: watch::Sender<BreakerState>,
    metrics: Metrics,
}

struct Core {
    state: BreakerState,
    /// Bumped on every transition; permits remember the generation they were issued in.
    generation: u64,
    consecutive_failures: u32,
    probe_successes: u32,
    probe_in_flight: bool,
    opened_at: Instant,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .field("failure_threshold", &self.inner.failure_threshold)
            .field("success_threshold", &self.inner.success_threshold)
            .field("reset_timeout", &self.inner.reset_timeout)
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker with the configured thresholds (zeros are treated as 1).
    pub fn new(cfg: &CircuitBreakerConfig, metrics: Metrics) -> Self {
        metrics.breaker_state.set(BreakerState::Closed.gauge_value());
        let (state_tx, _) = watch::channel(BreakerState::Closed);
        CircuitBreaker {
            inner: Arc::new(Inner {
                failure_threshold: cfg.failure_threshold.max(1),
                success_threshold: cfg.success_threshold.max(1),
                reset_timeout: cfg.reset_timeout.get(),
                core: Mutex::new(Core {
                    state: BreakerState::Closed,
                    generation: 0,
                    consecutive_failures: 0,
                    probe_successes: 0,
                    probe_in_flight: false,
                    opened_at: Instant::now(),
                }),
                changed: Notify::new(),
                state_tx,
                metrics,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// A receiver that sees every state change (for `/readyz` and connector status).
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.inner.state_tx.subscribe()
    }

    /// Waits until a request may be sent and returns its permit. While open it sleeps until the reset
    /// timeout; while half-open with a probe in flight it waits for that probe's outcome. Returns
    /// [`Cancelled`] as soon as `cancel` fires while waiting.
    pub async fn ready(&self, cancel: &CancellationToken) -> Result<BreakerPermit, Cancelled> {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            let deadline = {
                let mut core = self.lock();
                if core.state == BreakerState::Open {
                    let reopen = core.opened_at + self.inner.reset_timeout;
                    if Instant::now() >= reopen {
                        self.transition(&mut core, BreakerState::HalfOpen);
                    }
                }
                let deadline = match core.state {
                    BreakerState::Closed => {
                        return Ok(self.permit(core.generation, false));
                    }
                    BreakerState::HalfOpen if !core.probe_in_flight => {
                        core.probe_in_flight = true;
                        return Ok(self.permit(core.generation, true));
                    }
                    BreakerState::HalfOpen => None,
                    BreakerState::Open => Some(core.opened_at + self.inner.reset_timeout),
                };
                // Registered before the lock is released, so no wake-up can be missed in between.
                notified.as_mut().enable();
                deadline
            };
            match deadline {
                Some(at) => tokio::select! {
                    () = cancel.cancelled() => return Err(Cancelled),
                    () = tokio::time::sleep_until(at) => {}
                    () = &mut notified => {}
                },
                None => tokio::select! {
                    () = cancel.cancelled() => return Err(Cancelled),
                    () = &mut notified => {}
                },
            }
        }
    }

    fn permit(&self, generation: u64, probe: bool) -> BreakerPermit {
        BreakerPermit {
            breaker: self.clone(),
            generation,
            probe,
            reported: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // Every update is a handful of assignments; the state stays usable after a panic elsewhere.
        self.inner.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn transition(&self, core: &mut Core, to: BreakerState) {
        let from = core.state;
        if from == to {
            return;
        }
        core.state = to;
        core.generation += 1;
        core.probe_successes = 0;
        core.probe_in_flight = false;
        if to == BreakerState::Open {
            core.opened_at = Instant::now();
        }
        let m = &self.inner.metrics;
        m.breaker_state.set(to.gauge_value());
        m.breaker_transitions.with_label_values(&[to.as_str()]).inc();
        let failures = core.consecutive_failures;
        match to {
            BreakerState::Open => tracing::warn!(
                from = from.as_str(),
                to = to.as_str(),
                consecutive_failures = failures,
                reset_timeout_ms = self.inner.reset_timeout.as_millis() as u64,
                "circuit breaker opened: pausing requests to the logs ingestion api"
            ),
            _ => tracing::info!(
                from = from.as_str(),
                to = to.as_str(),
                consecutive_failures = failures,
                "circuit breaker state changed"
            ),
        }
        if to == BreakerState::Closed {
            core.consecutive_failures = 0;
        }
        self.inner.state_tx.send_replace(to);
        self.inner.changed.notify_waiters();
    }

    fn record(&self, generation: u64, probe: bool, outcome: Outcome) {
        let mut core = self.lock();
        let current = core.generation == generation;
        match outcome {
            Outcome::Success => {
                if current && core.state == BreakerState::Closed {
                    core.consecutive_failures = 0;
                } else if current && probe {
                    core.probe_in_flight = false;
                    core.probe_successes += 1;
                    if core.probe_successes >= self.inner.success_threshold {
                        self.transition(&mut core, BreakerState::Closed);
                    } else {
                        self.inner.changed.notify_waiters();
                    }
                }
            }
            Outcome::Failure => {
                if current && core.state == BreakerState::Closed {
                    core.consecutive_failures = core.consecutive_failures.saturating_add(1);
                    if core.consecutive_failures >= self.inner.failure_threshold {
                        self.transition(&mut core, BreakerState::Open);
                    }
                } else if current && probe {
                    core.consecutive_failures = core.consecutive_failures.saturating_add(1);
                    self.transition(&mut core, BreakerState::Open);
                }
            }
            Outcome::Neither => {
                if current && probe {
                    core.probe_in_flight = false;
                    self.inner.changed.notify_waiters();
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Success,
    Failure,
    Neither,
}

/// Leave to send one request. Report its outcome with [`BreakerPermit::success`] or
/// [`BreakerPermit::failure`]; dropping it unreported counts as neither (e.g. a 429, or shutdown) and,
/// for a half-open probe, lets the next probe through.
#[must_use = "report the request's outcome with success() or failure()"]
pub struct BreakerPermit {
    breaker: CircuitBreaker,
    generation: u64,
    probe: bool,
    reported: bool,
}

impl std::fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("generation", &self.generation)
            .field("probe", &self.probe)
            .finish()
    }
}

impl BreakerPermit {
    /// True when this permit is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The request succeeded (the service answered as a healthy service does).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.generation, self.probe, Outcome::Success);
    }

    /// The request failed in a way that counts against the service (5xx, timeout, connection, auth).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.generation, self.probe, Outcome::Failure);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.generation, self.probe, Outcome::Neither);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use s3_sentinel_api::duration::HumanDuration;

    fn breaker(failures: u32, reset_ms: u64, successes: u32) -> (CircuitBreaker, Metrics) {
        let m = Metrics::new().unwrap();
        let cfg = CircuitBreakerConfig {
            failure_threshold: failures,
            reset_timeout: HumanDuration::from_millis(reset_ms),
            success_threshold: successes,
        };
        (CircuitBreaker::new(&cfg, m.clone()), m)
    }

    async fn fail(b: &CircuitBreaker, n: u32) {
        let c = CancellationToken::new();
        for _ in 0..n {
            b.ready(&c).await.unwrap().failure();
        }
    }

    fn transitions(m: &Metrics, state: &str) -> u64 {
        m.breaker_transitions.with_label_values(&[state]).get()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let (b, m) = breaker(3, 1000, 1);
        let c = CancellationToken::new();
        fail(&b, 2).await;
        b.ready(&c).await.unwrap().success(); // resets the count
        fail(&b, 2).await;
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1).await;
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(m.breaker_state.get(), 2);
        assert_eq!(transitions(&m, "open"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn open_waits_for_reset_then_half_open_probe_closes() {
        let (b, m) = breaker(1, 1000, 1);
        let mut rx = b.subscribe();
        let c = CancellationToken::new();
        fail(&b, 1).await;
        assert_eq!(*rx.borrow_and_update(), BreakerState::Open);
        let start = Instant::now();
        let probe = b.ready(&c).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_millis(1000));
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(m.breaker_state.get(), 1);
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(m.breaker_state.get(), 0);
        assert_eq!(*rx.borrow_and_update(), BreakerState::Closed);
        assert_eq!(
            (
                transitions(&m, "open"),
                transitions(&m, "half_open"),
                transitions(&m, "closed")
            ),
            (1, 1, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_another_reset_timeout() {
        let (b, m) = breaker(1, 500, 1);
        let c = CancellationToken::new();
        fail(&b, 1).await;
        let probe = b.ready(&c).await.unwrap();
        let t = Instant::now();
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
        let again = b.ready(&c).await.unwrap();
        assert_eq!(Instant::now() - t, Duration::from_millis(500));
        assert!(again.is_probe());
        assert_eq!(transitions(&m, "open"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_at_a_time_and_success_threshold_counts() {
        let (b, _) = breaker(1, 100, 2);
        let c = CancellationToken::new();
        fail(&b, 1).await;
        let probe = b.ready(&c).await.unwrap();
        // A second caller must wait while the probe is in flight.
        let second = {
            let (b, c) = (b.clone(), c.clone());
            tokio::spawn(async move { b.ready(&c).await.map(|p| p.is_probe()) })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!second.is_finished());
        probe.success(); // 1 of 2: still half-open, next probe may go
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(second.await.unwrap(), Ok(true));
        // That second probe was dropped unreported: the slot frees, the state stays half-open.
        let third = b.ready(&c).await.unwrap();
        assert!(third.is_probe());
        third.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_permits_do_not_decide_a_half_open_breaker() {
        let (b, _) = breaker(2, 100, 1);
        let c = CancellationToken::new();
        let stale_a = b.ready(&c).await.unwrap();
        let stale_b = b.ready(&c).await.unwrap();
        fail(&b, 2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = b.ready(&c).await.unwrap();
        stale_a.success();
        stale_b.failure();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait() {
        let (b, _) = breaker(1, 60_000, 1);
        let c = CancellationToken::new();
        fail(&b, 1).await;
        let waiter = {
            let (b, c) = (b.clone(), c.clone());
            tokio::spawn(async move { b.ready(&c).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Cancelled));
        assert_eq!(b.state(), BreakerState::Open);

        // A half-open waiter (probe in flight) is cancellable too.
        let (b, _) = breaker(1, 10, 1);
        let c = CancellationToken::new();
        fail(&b, 1).await;
        let _probe = b.ready(&c).await.unwrap();
        let waiter = {
            let (b, c) = (b.clone(), c.clone());
            tokio::spawn(async move { b.ready(&c).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Cancelled));
    }
}
