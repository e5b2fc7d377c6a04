//! Human-readable durations (`"5s"`, `"1m30s"`, `"250ms"`) for configuration files.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written the way people write it in YAML: `"30s"`, `"5m"`, `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }

    /// The wrapped [`Duration`].
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}` ({e}); write e.g. `30s`, `5m`, `250ms`"
            ))
        })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ns|us|ms|s|m|h|d) ?)+$",
            "description": "A duration such as `30s`, `5m` or `250ms`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let d: HumanDuration = serde_yaml::from_str("1m30s").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        assert_eq!(serde_yaml::to_string(&d).unwrap().trim(), "1m 30s");
        let back: HumanDuration = serde_yaml::from_str("1m 30s").unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = serde_yaml::from_str::<HumanDuration>("soon")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid duration `soon`"), "{err}");
    }
}
