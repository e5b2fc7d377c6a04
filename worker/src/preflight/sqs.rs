//! The `sqs_queue` check (only when `sqs` is configured): one `GetQueueAttributes` on `sqs.queue_url`
//! with the client the SQS source uses ([`crate::source::sqs::queue::build_client`]), so it proves what
//! the source needs first: the credentials resolve, the queue exists where the URL says, and the identity
//! may read it. It cannot prove `sqs:ReceiveMessage`, `sqs:DeleteMessage` or the KMS key's policy without
//! consuming a message, so the failure message lists them beside the action that was refused.

use super::{Check, CheckResult};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use s3_sentinel_api::config::{AwsConfig, SqsConfig};

/// Reads the queue's approximate depth.
pub(super) async fn check(aws: &AwsConfig, sqs: &SqsConfig) -> CheckResult {
    let url = &sqs.queue_url;
    let client = match crate::source::sqs::queue::build_client(aws, sqs).await {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::failed(Check::SqsQueue, format!("{e}; check aws.credential_files"));
        }
    };
    let answer = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    match answer {
        Ok(out) => {
            let visible = out
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
                .map_or("unknown", String::as_str)
                .to_owned();
            CheckResult::ok(
                Check::SqsQueue,
                format!("read the attributes of {url} (about {visible} messages visible)"),
            )
        }
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = e.code().unwrap_or_default().to_owned();
            CheckResult::failed(
                Check::SqsQueue,
                advice(aws, sqs, &code, status, &crate::s3::describe(&e)),
            )
        }
    }
}

/// `arn:aws:sqs:<region>:<account>:<name>` from a queue URL `https://sqs.<region>.amazonaws.com/<account>/<name>`
/// (or any host: the region then comes from `aws.region`).
pub(super) fn queue_arn(url: &str, default_region: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let mut parts = rest.trim_end_matches('/').split('/');
    let host = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or("<account>");
    let name = parts.next().unwrap_or("<queue>");
    let region = host
        .strip_prefix("sqs.")
        .and_then(|h| h.split('.').next())
        .filter(|r| !r.is_empty())
        .unwrap_or(default_region);
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

/// What to fix, from a refused `GetQueueAttributes`: its service `code` (JSON or query protocol
/// spelling), HTTP `status` and the SDK's `detail`.
pub(super) fn advice(
    aws: &AwsConfig,
    sqs: &SqsConfig,
    code: &str,
    status: Option<u16>,
    detail: &str,
) -> String {
    let url = &sqs.queue_url;
    let credentials = if aws.credential_files.is_some() {
        "the keys in aws.credential_files"
    } else {
        "the default AWS chain (IRSA role annotation, AWS_* environment, profile)"
    };
    match (code, status) {
        ("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue", _) => format!(
            "queue {url} does not exist: check sqs.queue_url (the queue's URL, not its ARN) and that it is in the account and region of the credentials ({detail})"
        ),
        (
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidSecurity"
            | "ExpiredToken",
            _,
        ) => format!("aws rejected the credentials reading {url}: check {credentials} ({detail})"),
        ("AccessDenied" | "AccessDeniedException", _) | (_, Some(403)) => format!(
            "access denied: sqs:GetQueueAttributes on {arn} was refused for the identity from {credentials}; allow sqs:GetQueueAttributes, sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility on it (and kms:Decrypt on the queue's key if it uses a customer managed KMS key), and check the queue policy ({detail})",
            arn = queue_arn(url, &aws.region)
        ),
        _ => format!(
            "unable to read the attributes of {url}: {detail}; check network access to SQS (sqs.endpoint_url, VPC endpoint, proxy) and {credentials}"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> (AwsConfig, SqsConfig) {
        let yaml = "aws: {region: eu-west-1, bucket: logs}\nsqs: {queue_url: 'https://sqs.us-east-2.amazonaws.com/123456789012/events'}\nparser: {format: cloudtrail}\nsentinel: {endpoint: 'https://dce-1.eastus-1.ingest.monitor.azure.com', dcr_immutable_id: dcr-0123456789abcdef0123456789abcdef, stream_name: Custom-X, auth: {method: client_secret, tenant_id: t, client_id: c}}\n";
        let c = s3_sentinel_api::WorkerConfig::from_yaml(yaml).unwrap();
        (c.aws, c.sqs.unwrap())
    }

    #[test]
    fn the_arn_comes_from_the_url_with_the_region_of_its_host() {
        assert_eq!(
            queue_arn(
                "https://sqs.us-east-2.amazonaws.com/123456789012/events",
                "eu-west-1"
            ),
            "arn:aws:sqs:us-east-2:123456789012:events"
        );
        assert_eq!(
            queue_arn("http://127.0.0.1:5000/123456789012/events", "eu-west-1"),
            "arn:aws:sqs:eu-west-1:123456789012:events"
        );
    }

    #[test]
    fn access_denied_names_the_refused_action_and_the_queue_arn() {
        let (aws, sqs) = config();
        let m = advice(
            &aws,
            &sqs,
            "AccessDenied",
            Some(403),
            "AccessDenied: not authorized",
        );
        assert!(
            m.contains("sqs:GetQueueAttributes on arn:aws:sqs:us-east-2:123456789012:events was refused"),
            "{m}"
        );
        assert!(
            m.contains("sqs:ReceiveMessage") && m.contains("kms:Decrypt"),
            "{m}"
        );
        assert!(m.contains("IRSA"), "{m}");
        let m = advice(&aws, &sqs, "", Some(403), "forbidden");
        assert!(m.starts_with("access denied"), "{m}");
    }

    #[test]
    fn a_missing_queue_and_bad_keys_say_what_to_check() {
        let (aws, sqs) = config();
        let m = advice(
            &aws,
            &sqs,
            "AWS.SimpleQueueService.NonExistentQueue",
            Some(400),
            "x",
        );
        assert!(m.contains("does not exist") && m.contains("sqs.queue_url"), "{m}");
        let m = advice(&aws, &sqs, "InvalidClientTokenId", Some(403), "x");
        assert!(m.starts_with("aws rejected the credentials"), "{m}");
        let m = advice(&aws, &sqs, "", None, "dispatch failure: connection refused");
        assert!(
            m.contains("connection refused") && m.contains("sqs.endpoint_url"),
            "{m}"
        );
    }
}
