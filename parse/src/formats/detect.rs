//! The log format from an object key, following AWS's standard key layouts.
//!
//! Consumes an S3 object key and produces the [`LogFormat`] its layout implies, or `None` when the
//! key matches no known layout (the connector's configured format then applies). Path segments are
//! compared ASCII-case-insensitively. Rules, first match wins:
//!
//! | layout | format | basis |
//! |---|---|---|
//! | `…/AWSLogs/<acct>/CloudTrail/…`, `CloudTrail-Insight/`, `CloudTrail-Digest/` | `cloudtrail` | documented |
//! | `…/AWSLogs/<acct>/vpcflowlogs/…` | `vpcflow` | documented |
//! | `…/AWSLogs/<acct>/elasticloadbalancing/…` | `elb` | documented |
//! | `…/AWSLogs/<acct>/WAFLogs/…`, or a segment starting `aws-waf-logs-` | `waf` | documented |
//! | `…/AWSLogs/<acct>/GuardDuty/…` | `guardduty` | documented |
//! | `…/AWSLogs/<acct>/vpcdnsquerylogs/…` | `route53` | documented |
//! | file name `<DISTRIBUTIONID>.YYYY-MM-DD-HH.<8 hex>[.gz]` | `cloudfront` | heuristic (file name only) |
//! | file name `YYYY-MM-DD-HH-MM-SS-<16 hex>` | `s3access` | heuristic (file name only) |
//!
//! The `AWSLogs` rules need the account segment (12 digits) right after `AWSLogs/` and the service
//! segment right after it; the CloudFront and S3 access-log rules look only at the last path
//! segment and can match a file that merely has such a name, hence "heuristic".

use s3_sentinel_api::LogFormat;

/// The format implied by `key`'s layout, if any (see the module docs for the rules).
pub fn detect_format(key: &str) -> Option<LogFormat> {
    let segments: Vec<&str> = key.split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.eq_ignore_ascii_case("AWSLogs")
            && let (Some(acct), Some(service)) = (segments.get(i + 1), segments.get(i + 2))
            && acct.len() == 12
            && acct.bytes().all(|b| b.is_ascii_digit())
            && let Some(format) = service_format(service)
        {
            return Some(format);
        }
        if seg.len() > "aws-waf-logs-".len()
            && seg
                .get(..13)
                .is_some_and(|p| p.eq_ignore_ascii_case("aws-waf-logs-"))
            && i + 1 < segments.len()
        {
            return Some(LogFormat::Waf);
        }
    }
    let name = segments.last().copied().unwrap_or_default();
    if is_cloudfront_name(name) {
        return Some(LogFormat::Cloudfront);
    }
    if is_s3_access_name(name) {
        return Some(LogFormat::S3access);
    }
    None
}

fn service_format(service: &str) -> Option<LogFormat> {
    const SERVICES: [(&str, LogFormat); 8] = [
        ("CloudTrail", LogFormat::Cloudtrail),
        ("CloudTrail-Insight", LogFormat::Cloudtrail),
        ("CloudTrail-Digest", LogFormat::Cloudtrail),
        ("vpcflowlogs", LogFormat::Vpcflow),
        ("elasticloadbalancing", LogFormat::Elb),
        ("WAFLogs", LogFormat::Waf),
        ("GuardDuty", LogFormat::Guardduty),
        ("vpcdnsquerylogs", LogFormat::Route53),
    ];
    SERVICES
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(service))
        .map(|(_, f)| *f)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `E2EXAMPLE1234.2019-12-04-21.a1b2c3d4` with an optional `.gz`.
fn is_cloudfront_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let parts: Vec<&str> = name.split('.').collect();
    let [dist, stamp, hash] = parts.as_slice() else {
        return false;
    };
    let stamp: Vec<&str> = stamp.split('-').collect();
    (6..=20).contains(&dist.len())
        && dist.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && stamp.len() == 4
        && stamp
            .iter()
            .zip([4, 2, 2, 2])
            .all(|(p, n)| p.len() == n && digits(p))
        && hash.len() == 8
        && hex(hash)
}

/// `2019-02-06-00-00-38-3E57427F3EXAMPLE` (S3 server access logs, simple or partitioned prefix).
fn is_s3_access_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 7
        && parts[..6]
            .iter()
            .zip([4, 2, 2, 2, 2, 2])
            .all(|(p, n)| p.len() == n && digits(p))
        && parts[6].len() == 16
        && parts[6]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_key_layouts() {
        let cases = [
            (
                "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/123456789012_CloudTrail_us-east-1_20240102T0000Z_abc.json.gz",
                Some(LogFormat::Cloudtrail),
            ),
            (
                "prefix/AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/02/x.json.gz",
                Some(LogFormat::Cloudtrail),
            ),
            (
                "AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/02/123456789012_vpcflowlogs_us-east-1_fl-1_20240102T0000Z_abc.log.gz",
                Some(LogFormat::Vpcflow),
            ),
            (
                "lb/AWSLogs/123456789012/elasticloadbalancing/us-east-2/2022/05/01/123456789012_elasticloadbalancing_us-east-2_app.my-lb.1234_20220215T2340Z_172.160.001.192_20sg.log.gz",
                Some(LogFormat::Elb),
            ),
            (
                "AWSLogs/123456789012/WAFLogs/us-east-1/my-acl/2024/01/02/03/04/123456789012_waflogs_us-east-1_my-acl_20240102T0305Z_abc.log.gz",
                Some(LogFormat::Waf),
            ),
            (
                "aws-waf-logs-firehose/2024/01/02/03/delivery-1.gz",
                Some(LogFormat::Waf),
            ),
            (
                "gd/AWSLogs/123456789012/GuardDuty/us-east-1/2024/01/02/0f5a7c5e.jsonl.gz",
                Some(LogFormat::Guardduty),
            ),
            (
                "AWSLogs/123456789012/vpcdnsquerylogs/vpc-0abc/2024/01/02/vpc-0abc_vpcdnsquerylogs_123456789012_20240102T0000Z_abc.log.gz",
                Some(LogFormat::Route53),
            ),
            (
                "cf/E2EXAMPLE1234.2019-12-04-21.a1b2c3d4.gz",
                Some(LogFormat::Cloudfront),
            ),
            (
                "logs/2019-02-06-00-00-38-3E57427F3EXAMPLE",
                Some(LogFormat::S3access),
            ),
            (
                "logs/123456789012/us-west-1/bucket/2019/02/06/2019-02-06-00-00-38-3E57427F3EXAMPLE",
                Some(LogFormat::S3access),
            ),
            (
                "awslogs/123456789012/cloudtrail/x.json.gz",
                Some(LogFormat::Cloudtrail),
            ),
        ];
        for (key, want) in cases {
            assert_eq!(detect_format(key), want, "{key}");
        }
    }

    #[test]
    fn unknown_layouts() {
        for key in [
            "",
            "/",
            "AWSLogs/",
            "AWSLogs/1234/CloudTrail/x.json",
            "AWSLogs/123456789012/Unknown/x",
            "data/file.csv",
            "aws-waf-logs-",
            "e2example1234.2019-12-04-21.a1b2c3d4.gz",
            "E2EXAMPLE1234.2019-12-04-21.zzzzzzzz",
            "2019-02-06-00-00-38-short",
        ] {
            assert_eq!(detect_format(key), None, "{key}");
        }
    }
}
