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
