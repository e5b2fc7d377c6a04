//! Fault injection for the upload endpoint: what a [`FaultPlan`] says and how each request draws from it.
//!
//! Order per upload request: the added latency is slept first; then the first pending scripted step
//! wins; otherwise the every-Nth rule; otherwise each probabilistic rule in order. A request that draws
//! no fault is handled normally. The token endpoint and the admin endpoints are never faulted.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;

/// What a faulted upload request gets instead of normal handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with this HTTP status (for example 500 or 503) and an error body, optionally with
    /// `Retry-After: <seconds>`.
    Status {
        /// The HTTP status code (400..=599).
        status: u16,
        /// Value of the `Retry-After` header in seconds; `None` sends no header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// Answer 429 `TooManyRequests` with `Retry-After`, as the service's own throttling does.
    Throttle {
        /// Value of the `Retry-After` header in seconds.
        retry_after_secs: u64,
    },
    /// Answer 413 `ContentLengthLimitExceeded` whatever the body size.
    TooLarge,
    /// Revoke the presented access token and answer 401; the client must fetch a new token.
    RevokeToken,
    /// Never respond; the client has to time out.
    Hang,
    /// Close the TCP connection without a response (a reset where the platform allows it).
    Drop,
}

impl Fault {
    fn validate(&self) -> Result<(), EmulatorError> {
        match self {
            Self::Status { status, .. } if !(400..=599).contains(status) => {
                Err(EmulatorError::InvalidConfig {
                    field: "faults",
                    reason: format!("status fault {status} is not an HTTP error status (400..=599)"),
                })
            }
            _ => Ok(()),
        }
    }
}

/// "The next `count` requests fail with `fault`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    /// How many consecutive requests this step applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// The fault they get.
    pub fault: Fault,
}

fn one() -> u32 {
    1
}

/// Every `n`-th upload request (counted from when the plan was set) gets `fault`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EveryNth {
    /// The period, at least 1.
    pub n: u64,
    /// The fault.
    pub fault: Fault,
}

/// Each upload request gets `fault` with `probability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probabilistic {
    /// Between 0 and 1.
    pub probability: f64,
    /// The fault.
    pub fault: Fault,
}

/// The faults to inject, as set at start or through `POST /admin/faults` (same JSON shape).
///
/// ```json
/// {"latency_ms": 50,
///  "script": [{"count": 2, "fault": {"kind": "status", "status": 503, "retry_after_secs": 1}},
///             {"fault": {"kind": "drop"}}],
///  "every_nth": {"n": 10, "fault": {"kind": "status", "status": 500}},
///  "random": [{"probability": 0.01, "fault": {"kind": "hang"}}]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Added to every upload request before anything else, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Scripted steps consumed in order, one request at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script: Vec<ScriptStep>,
    /// A periodic fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_nth: Option<EveryNth>,
    /// Probabilistic faults, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub random: Vec<Probabilistic>,
}

impl FaultPlan {
    /// No faults.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Append a scripted step: the next `count` requests (after earlier steps) fail with `fault`.
    #[must_use]
    pub fn then(mut self, count: u32, fault: Fault) -> Self {
        self.script.push(ScriptStep { count, fault });
        self
    }

    /// Every `n`-th request fails with `fault`.
    #[must_use]
    pub fn every_nth(mut self, n: u64, fault: Fault) -> Self {
        self.every_nth = Some(EveryNth { n, fault });
        self
    }

    /// Each request fails with `fault` with `probability`.
    #[must_use]
    pub fn with_probability(mut self, probability: f64, fault: Fault) -> Self {
        self.random.push(Probabilistic { probability, fault });
        self
    }

    /// Add `latency` to every upload request.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Check periods, probabilities and statuses.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidConfig`] with field `faults`.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |reason: String| {
            Err(EmulatorError::InvalidConfig {
                field: "faults",
                reason,
            })
        };
        for step in &self.script {
            step.fault.validate()?;
        }
        if let Some(every) = &self.every_nth {
            if every.n == 0 {
                return bad("every_nth.n must be at least 1".to_owned());
            }
            every.fault.validate()?;
        }
        for rule in &self.random {
            if !(0.0..=1.0).contains(&rule.probability) {
                return bad(format!("probability {} is not between 0 and 1", rule.probability));
            }
            rule.fault.validate()?;
        }
        Ok(())
    }
}

/// A plan being consumed: the remaining script, the request counter and the random source.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    /// Index into `plan.script` and how many requests the current step has already served.
    step: usize,
    served_in_step: u32,
    requests: u64,
    rng: StdRng,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan, seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(|| StdRng::from_rng(&mut rand::rng()), StdRng::seed_from_u64);
        Self {
            plan,
            step: 0,
            served_in_step: 0,
            requests: 0,
            rng,
        }
    }

    /// Replace the plan and restart its counters.
    pub(crate) fn replace(&mut self, plan: FaultPlan) {
        self.plan = plan;
        self.step = 0;
        self.served_in_step = 0;
        self.requests = 0;
    }

    /// The plan as it stands, with consumed script steps removed.
    pub(crate) fn remaining(&self) -> FaultPlan {
        let mut plan = self.plan.clone();
        plan.script = plan.script.split_off(self.step.min(plan.script.len()));
        if let Some(first) = plan.script.first_mut() {
            first.count = first.count.saturating_sub(self.served_in_step);
        }
        plan
    }

    /// Draw the latency and the fault (if any) for the next upload request.
    pub(crate) fn next(&mut self) -> (Option<Duration>, Option<Fault>) {
        self.requests += 1;
        let latency = self.plan.latency_ms.map(Duration::from_millis);
        while let Some(step) = self.plan.script.get(self.step) {
            if self.served_in_step < step.count {
                self.served_in_step += 1;
                return (latency, Some(step.fault.clone()));
            }
            self.step += 1;
            self.served_in_step = 0;
        }
        if let Some(every) = &self.plan.every_nth
            && self.requests.is_multiple_of(every.n)
        {
            return (latency, Some(every.fault.clone()));
        }
        for rule in &self.plan.random {
            if self.rng.random::<f64>() < rule.probability {
                return (latency, Some(rule.fault.clone()));
            }
        }
        (latency, None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn script_then_every_nth_then_nothing() {
        let plan = FaultPlan::none()
            .then(2, Fault::Drop)
            .then(1, Fault::Hang)
            .every_nth(5, Fault::TooLarge);
        let mut state = FaultState::new(plan, Some(1));
        let faults: Vec<_> = (0..6).map(|_| state.next().1).collect();
        assert_eq!(
            faults,
            vec![
                Some(Fault::Drop),
                Some(Fault::Drop),
                Some(Fault::Hang),
                None,
                Some(Fault::TooLarge),
                None
            ]
        );
    }

    #[test]
    fn remaining_reports_partly_consumed_step() {
        let mut state = FaultState::new(FaultPlan::none().then(3, Fault::Drop), Some(1));
        state.next();
        assert_eq!(
            state.remaining().script,
            vec![ScriptStep {
                count: 2,
                fault: Fault::Drop
            }]
        );
    }

    #[test]
    fn probability_one_always_and_zero_never() {
        let mut always = FaultState::new(FaultPlan::none().with_probability(1.0, Fault::TooLarge), Some(7));
        let mut never = FaultState::new(FaultPlan::none().with_probability(0.0, Fault::TooLarge), Some(7));
        for _ in 0..100 {
            assert_eq!(always.next().1, Some(Fault::TooLarge));
            assert_eq!(never.next().1, None);
        }
    }

    #[test]
    fn json_shape_round_trips() {
        let text = r#"{"latency_ms":5,"script":[{"count":2,"fault":{"kind":"status","status":503,"retry_after_secs":1}},{"fault":{"kind":"drop"}}],"every_nth":{"n":3,"fault":{"kind":"revoke_token"}},"random":[{"probability":0.5,"fault":{"kind":"throttle","retry_after_secs":2}}]}"#;
        let plan: FaultPlan = serde_json::from_str(text).expect("valid plan");
        assert_eq!(
            plan.script[1],
            ScriptStep {
                count: 1,
                fault: Fault::Drop
            }
        );
        assert!(plan.validate().is_ok());
        let again: FaultPlan =
            serde_json::from_value(serde_json::to_value(&plan).expect("serialize")).expect("round trip");
        assert_eq!(again, plan);
    }

    #[test]
    fn validation_rejects_nonsense() {
        assert!(FaultPlan::none().every_nth(0, Fault::Drop).validate().is_err());
        assert!(
            FaultPlan::none()
                .with_probability(1.5, Fault::Drop)
                .validate()
                .is_err()
        );
        let ok_status = Fault::Status {
            status: 200,
            retry_after_secs: None,
        };
        assert!(FaultPlan::none().then(1, ok_status).validate().is_err());
    }
}
