//! Emulator configuration: what the emulated tenant, clients, limits and faults look like.
//!
//! An [`EmulatorConfig`] is plain data with defaults that match the real service; [`EmulatorConfig::validate`]
//! checks the combinations that cannot work before anything binds a socket.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use s3_sentinel_api::limits::{
    LOGS_INGESTION_API_VERSION, MAX_REQUEST_BYTES_SENT, MAX_REQUEST_BYTES_UNCOMPRESSED,
};

use crate::error::EmulatorError;
use crate::faults::FaultPlan;

/// Tenant id used when none is configured.
pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000000";

/// Client id used when none is configured.
pub const DEFAULT_CLIENT_ID: &str = "emulator-client";

/// Client secret used when none is configured.
pub const DEFAULT_CLIENT_SECRET: &str = "emulator-secret";

/// Audience that tokens must carry to be accepted by the upload endpoint (Azure public cloud).
pub const DEFAULT_AUDIENCE: &str = "https://monitor.azure.com";

/// Everything the emulator needs to start.
///
/// Build it with [`EmulatorConfig::default`] and the `with_*` methods, or set the public fields directly.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; the default `127.0.0.1:0` picks a free loopback port.
    pub listen: SocketAddr,
    /// Tenant id accepted in `/{tenant}/oauth2/v2.0/token`. `None` accepts any tenant.
    pub tenant: Option<String>,
    /// Registered confidential clients: client id → client secret. A registered client may also
    /// authenticate with a `client_assertion` (the assertion's signature is not verified).
    pub clients: BTreeMap<String, String>,
    /// Lifetime of issued access tokens; shorten it to make a client refresh.
    pub token_lifetime: Duration,
    /// Audience (resource) a token must have been requested for, derived from the scope without
    /// `/.default` and trailing slashes. `https://monitor.azure.com//.default` maps to `https://monitor.azure.com`.
    pub audience: String,
    /// Request-size limits and payload rules of the upload endpoint.
    pub limits: Limits,
    /// Optional throttling of the upload endpoint; `None` never answers 429 on its own.
    pub rate_limit: Option<RateLimit>,
    /// Data collection rules the upload endpoint knows, immutable id → stream names. Empty accepts any
    /// rule and stream; a non-empty map answers 404 for unknown ones (an empty stream set accepts any stream).
    pub known_rules: BTreeMap<String, BTreeSet<String>>,
    /// Keep every accepted record in memory for [`crate::RunningEmulator::accepted_records`].
    pub keep_records: bool,
    /// Append every accepted record to this JSONL file as `{"dcr":…,"stream":…,"record":{…}}`.
    pub record_file: Option<PathBuf>,
    /// Count records without storing them (benchmarks); incompatible with `keep_records` and `record_file`.
    pub cheap: bool,
    /// Fault plan in force at start; replace it later with [`crate::RunningEmulator::set_faults`] or
    /// `POST /admin/faults`.
    pub faults: FaultPlan,
    /// Seed for the random fault choices; `None` seeds from the OS.
    pub fault_seed: Option<u64>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant: Some(DEFAULT_TENANT.to_owned()),
            clients: BTreeMap::from([(DEFAULT_CLIENT_ID.to_owned(), DEFAULT_CLIENT_SECRET.to_owned())]),
            token_lifetime: Duration::from_secs(3600),
            audience: DEFAULT_AUDIENCE.to_owned(),
            limits: Limits::default(),
            rate_limit: None,
            known_rules: BTreeMap::new(),
            keep_records: false,
            record_file: None,
            cheap: false,
            faults: FaultPlan::default(),
            fault_seed: None,
        }
    }
}

impl EmulatorConfig {
    /// Listen on `addr` instead of a free loopback port.
    #[must_use]
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Accept only `tenant` in the token endpoint path.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Register (or replace) a client id with its secret.
    #[must_use]
    pub fn with_client(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients.insert(client_id.into(), secret.into());
        self
    }

    /// Issue tokens that live for `lifetime`.
    #[must_use]
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Throttle the upload endpoint.
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// Replace the upload limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Know the rule `dcr_immutable_id` with `streams` (empty: any stream); unknown rules then answer 404.
    #[must_use]
    pub fn with_rule<I, S>(mut self, dcr_immutable_id: impl Into<String>, streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_rules.insert(
            dcr_immutable_id.into(),
            streams.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Keep accepted records in memory.
    #[must_use]
    pub fn with_keep_records(mut self, keep: bool) -> Self {
        self.keep_records = keep;
        self
    }

    /// Append accepted records to a JSONL file.
    #[must_use]
    pub fn with_record_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.record_file = Some(path.into());
        self
    }

    /// Count records without storing them.
    #[must_use]
    pub fn with_cheap(mut self, cheap: bool) -> Self {
        self.cheap = cheap;
        self
    }

    /// Start with this fault plan.
    #[must_use]
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        self.faults = faults;
        self
    }

    /// Check the combinations that cannot work.
    ///
    /// # Errors
    /// [`EmulatorError::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |field: &'static str, reason: String| Err(EmulatorError::InvalidConfig { field, reason });
        if self.clients.is_empty() {
            return bad("clients", "at least one client id must be registered".to_owned());
        }
        if self.token_lifetime.is_zero() {
            return bad("token_lifetime", "must be greater than zero".to_owned());
        }
        if self.cheap && (self.keep_records || self.record_file.is_some()) {
            return bad(
                "cheap",
                "cheap mode stores no records; unset keep_records and record_file".to_owned(),
            );
        }
        if self.limits.max_body_bytes_sent == 0 || self.limits.max_body_bytes_uncompressed == 0 {
            return bad("limits", "size limits must be greater than zero".to_owned());
        }
        if let Some(rate) = &self.rate_limit
            && !(rate.requests_per_second.is_finite() && rate.requests_per_second > 0.0)
        {
            return bad(
                "rate_limit.requests_per_second",
                "must be a positive number".to_owned(),
            );
        }
        self.faults.validate()
    }
}

/// Size limits and payload rules of the upload endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body as sent on the wire (after gzip); larger bodies answer 413. Default 1 MiB,
    /// the documented limit.
    pub max_body_bytes_sent: usize,
    /// Largest body after decompression; larger bodies answer 413. Default 1,000,000 bytes, which is at
    /// least as strict as the service's documented "1 MB".
    pub max_body_bytes_uncompressed: usize,
    /// The api-version values the upload endpoint accepts.
    pub api_versions: Vec<String>,
    /// Accept `[]` (204, zero records) instead of answering 400 `EmptyPayload`.
    pub allow_empty_array: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes_sent: MAX_REQUEST_BYTES_SENT,
            max_body_bytes_uncompressed: MAX_REQUEST_BYTES_UNCOMPRESSED,
            api_versions: vec![LOGS_INGESTION_API_VERSION.to_owned()],
            allow_empty_array: false,
        }
    }
}

/// Token-bucket throttling of the upload endpoint, across all rules and streams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Bucket size: how many requests may arrive at once after a quiet period (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// `requests_per_second` with a burst of one second's worth of requests.
    #[must_use]
    pub fn per_second(requests_per_second: f64) -> Self {
        // Float-to-int `as` saturates; the burst is only a bucket size.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let burst = requests_per_second.ceil().max(1.0) as u32;
        Self {
            requests_per_second,
            burst,
        }
    }
}
