//! The state shared by all handlers: issued tokens, the fault plan, the rate limiter, counters, records.
//!
//! Every lock is a short, non-async critical section; none is held across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::time::Instant;

use crate::config::EmulatorConfig;
use crate::error::EmulatorError;
use crate::faults::{Fault, FaultPlan, FaultState};
use crate::rate_limit::TokenBucket;
use crate::stats::{AcceptedRecord, RecordSink, Stats};

/// Lock a mutex, taking the data even if a panicking holder poisoned it (counters stay usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub(crate) client_id: String,
    /// The resource the token was requested for (scope without `/.default`, trailing `/` trimmed).
    pub(crate) audience: String,
    pub(crate) expires_at: Instant,
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Unknown,
    Expired,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    faults: Mutex<FaultState>,
    limiter: Option<Mutex<TokenBucket>>,
    stats: Mutex<Stats>,
    records: Mutex<RecordSink>,
}

impl Shared {
    pub(crate) fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let records = RecordSink::open(config.keep_records, config.record_file.as_deref())?;
        let faults = FaultState::new(config.faults.clone(), config.fault_seed);
        let limiter = config
            .rate_limit
            .map(|limit| Mutex::new(TokenBucket::new(limit, Instant::now())));
        Ok(Self {
            config,
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(faults),
            limiter,
            stats: Mutex::new(Stats::default()),
            records: Mutex::new(records),
        })
    }

    pub(crate) fn issue_token(&self, token: String, issued: IssuedToken) {
        let mut tokens = lock(&self.tokens);
        let now = Instant::now();
        // Expired tokens are kept a while so that a late request is told "expired", not "unknown".
        tokens.retain(|_, t| t.expires_at + Duration::from_secs(3600) > now);
        tokens.insert(token, issued);
    }

    pub(crate) fn check_token(&self, token: &str) -> Result<IssuedToken, TokenProblem> {
        let tokens = lock(&self.tokens);
        let issued = tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if issued.expires_at <= Instant::now() {
            return Err(TokenProblem::Expired);
        }
        Ok(issued.clone())
    }

    pub(crate) fn revoke_token(&self, token: &str) {
        lock(&self.tokens).remove(token);
    }

    pub(crate) fn draw_fault(&self) -> (Option<Duration>, Option<Fault>) {
        lock(&self.faults).next()
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        lock(&self.faults).replace(plan);
    }

    pub(crate) fn faults(&self) -> FaultPlan {
        lock(&self.faults).remaining()
    }

    /// `Err(wait)` when the request is throttled.
    pub(crate) fn acquire_rate(&self) -> Result<(), Duration> {
        self.limiter
            .as_ref()
            .map_or(Ok(()), |bucket| lock(bucket).try_acquire(Instant::now()))
    }

    pub(crate) fn with_stats<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        f(&mut lock(&self.stats))
    }

    pub(crate) fn count_upload(&self, status: StatusCode) {
        self.with_stats(|s| *s.upload_responses_by_status.entry(status.as_u16()).or_default() += 1);
    }

    pub(crate) fn count_token(&self, status: StatusCode) {
        self.with_stats(|s| *s.token_responses_by_status.entry(status.as_u16()).or_default() += 1);
    }

    pub(crate) fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    pub(crate) fn stores_records(&self) -> bool {
        lock(&self.records).stores()
    }

    pub(crate) fn store_records(
        &self,
        dcr: &str,
        stream: &str,
        records: &[&serde_json::value::RawValue],
    ) -> std::io::Result<()> {
        lock(&self.records).store(dcr, stream, records)
    }

    pub(crate) fn accepted(&self) -> Vec<AcceptedRecord> {
        lock(&self.records).accepted()
    }

    pub(crate) fn flush_records(&self) -> std::io::Result<()> {
        lock(&self.records).flush()
    }
}
