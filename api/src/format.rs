//! The log formats a connector can parse.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A log format the worker knows how to parse into Sentinel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// AWS CloudTrail log files: one JSON object with a top-level `Records` array (digest files are skipped).
    Cloudtrail,
    /// Amazon VPC Flow Logs: space-separated fields, default v2 layout or a custom field list from the
    /// header line.
    Vpcflow,
    /// One JSON object per line, forwarded as-is with `TimeGenerated` added.
    Jsonlines,
    /// Pipe-delimited firewall lines: `timestamp|src_ip|dst_ip|action|rule|protocol|src_port|dst_port|bytes`.
    Firewall,
    /// Syslog lines, RFC 3164 (BSD) or RFC 5424, detected per line.
    Syslog,
    /// ArcSight Common Event Format, bare or behind a syslog header.
    Cef,
    /// Elastic Load Balancing access logs: Application (ALB), Network (NLB, TLS listeners) and Classic
    /// load balancers, plus ALB connection logs, detected per line.
    Elb,
    /// Amazon S3 server access logs: space-separated, bracketed time, quoted request, referrer and user agent.
    S3access,
    /// Amazon CloudFront standard (access) logs: tab-separated, columns named by the `#Fields` header.
    Cloudfront,
    /// Amazon Route 53 Resolver query logs: one JSON object per line, time from `query_timestamp`.
    Route53,
    /// AWS WAF logs: one JSON object per line, forwarded as-is with `TimeGenerated` from the epoch-millisecond
    /// `timestamp`.
    Waf,
    /// Amazon GuardDuty findings as exported to S3 (JSON lines, concatenated objects or a JSON array), bare or
    /// wrapped in an EventBridge event; shaped like the `AWSGuardDuty` table.
    Guardduty,
    /// Comma- or tab-separated values with a header line (delimiter detected from the header); time from a
    /// column named like a timestamp.
    Csv,
}

impl LogFormat {
    /// Every format, in documentation order.
    pub const ALL: [LogFormat; 13] = [
        LogFormat::Cloudtrail,
        LogFormat::Vpcflow,
        LogFormat::Jsonlines,
        LogFormat::Firewall,
        LogFormat::Syslog,
        LogFormat::Cef,
        LogFormat::Elb,
        LogFormat::S3access,
        LogFormat::Cloudfront,
        LogFormat::Route53,
        LogFormat::Waf,
        LogFormat::Guardduty,
        LogFormat::Csv,
    ];

    /// The name used in configuration files and as a bounded metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Cloudtrail => "cloudtrail",
            LogFormat::Vpcflow => "vpcflow",
            LogFormat::Jsonlines => "jsonlines",
            LogFormat::Firewall => "firewall",
            LogFormat::Syslog => "syslog",
            LogFormat::Cef => "cef",
            LogFormat::Elb => "elb",
            LogFormat::S3access => "s3access",
            LogFormat::Cloudfront => "cloudfront",
            LogFormat::Route53 => "route53",
            LogFormat::Waf => "waf",
            LogFormat::Guardduty => "guardduty",
            LogFormat::Csv => "csv",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = LogFormat::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown log format `{s}`, expected one of {}", names.join(", "))
            })
    }
}

/// The `parser.format` setting: one fixed [`LogFormat`] for every object, or `auto` to pick the format
/// of each object from its key (AWS's standard key layouts, see `s3_sentinel_parse::detect_format`).
///
/// Written as a plain string (`auto` or a format name), so every configuration that named a format
/// before `auto` existed keeps its meaning: an explicit format always wins and is never second-guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    /// Detect the format of each object from its key; objects whose key matches no known layout are
    /// dead-lettered with reason `unknown_format`.
    Auto,
    /// Parse every object as this format.
    Fixed(LogFormat),
}

impl FormatChoice {
    /// The configured name: `auto` or the format's name. A bounded metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            FormatChoice::Auto => "auto",
            FormatChoice::Fixed(f) => f.as_str(),
        }
    }
}

impl From<LogFormat> for FormatChoice {
    fn from(format: LogFormat) -> Self {
        FormatChoice::Fixed(format)
    }
}

impl std::fmt::Display for FormatChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FormatChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(FormatChoice::Auto);
        }
        s.parse::<LogFormat>()
            .map(FormatChoice::Fixed)
            .map_err(|e| format!("{e}, or `auto`"))
    }
}

impl Serialize for FormatChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FormatChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FormatChoice {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FormatChoice".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut names = vec!["auto"];
        names.extend(LogFormat::ALL.iter().map(|f| f.as_str()));
        schemars::json_schema!({
            "type": "string",
            "enum": names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_choice_round_trips_and_keeps_explicit_names() {
        let auto: FormatChoice = serde_json::from_str("\"auto\"").unwrap();
        assert_eq!(auto, FormatChoice::Auto);
        for f in LogFormat::ALL {
            let text = serde_json::to_string(&f).unwrap();
            let choice: FormatChoice = serde_json::from_str(&text).unwrap();
            assert_eq!(choice, FormatChoice::Fixed(f));
            assert_eq!(serde_json::to_string(&choice).unwrap(), text);
        }
        let err = serde_json::from_str::<FormatChoice>("\"nope\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("or `auto`"), "{err}");
    }

    #[test]
    fn format_choice_schema_lists_auto_and_every_format() {
        let schema = schemars::schema_for!(FormatChoice);
        let values = schema.as_value()["enum"].as_array().unwrap().len();
        assert_eq!(values, LogFormat::ALL.len() + 1);
    }
}
