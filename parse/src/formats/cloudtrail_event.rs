//! One CloudTrail event to one `AWSCloudTrail` record.
//!
//! Consumes the JSON text of one element of `Records` and produces the record's JSON object with the
//! column names of Sentinel's `AWSCloudTrail` table (`TimeGenerated` from `eventTime`), as published
//! in the table reference and copied to `parse/tables/AWSCloudTrail.json` (the `tables` test checks
//! every record against it): `requestID` as `AwsRequestId_` (the reference deprecates `AwsRequestId`),
//! `eventCategory` as `Category`, `tlsDetails` as `TlsVersion`/`CipherSuite`/`ClientProvidedHostHeader`. Strings are
//! borrowed from the input where they have no escapes; nested values (`requestParameters`,
//! `responseElements`, `additionalEventData`, `resources`, `serviceEventDetails`) are kept as raw
//! JSON and written as minified JSON text. Absent or `null` fields are omitted. When `eventTime` is
//! missing, `@timestamp` (where Logstash exports move it) is used.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::ObjectWriter;
use crate::time::{parse_rfc3339, write_json_time};

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow, default)]
    event_version: Str<'a>,
    #[serde(borrow, default)]
    user_identity: Option<UserIdentity<'a>>,
    #[serde(borrow, default)]
    event_time: Str<'a>,
    /// Where Logstash-style exports moved `eventTime`.
    #[serde(borrow, default, rename = "@timestamp")]
    at_timestamp: Str<'a>,
    #[serde(borrow, default)]
    event_source: Str<'a>,
    #[serde(borrow, default)]
    event_name: Str<'a>,
    #[serde(borrow, default)]
    aws_region: Str<'a>,
    #[serde(borrow, default, rename = "sourceIPAddress")]
    source_ip_address: Str<'a>,
    #[serde(borrow, default)]
    user_agent: Str<'a>,
    #[serde(borrow, default)]
    error_code: Str<'a>,
    #[serde(borrow, default)]
    error_message: Str<'a>,
    #[serde(borrow, default)]
    request_parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_elements: Option<&'a RawValue>,
    #[serde(borrow, default)]
    additional_event_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resources: Option<&'a RawValue>,
    #[serde(borrow, default)]
    service_event_details: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "requestID")]
    request_id: Str<'a>,
    #[serde(borrow, default, rename = "eventID")]
    event_id: Str<'a>,
    #[serde(borrow, default)]
    event_type: Str<'a>,
    #[serde(borrow, default)]
    api_version: Str<'a>,
    #[serde(borrow, default)]
    read_only: Option<&'a RawValue>,
    #[serde(borrow, default)]
    management_event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    recipient_account_id: Str<'a>,
    #[serde(borrow, default, rename = "sharedEventID")]
    shared_event_id: Str<'a>,
    #[serde(borrow, default)]
    vpc_endpoint_id: Str<'a>,
    #[serde(borrow, default)]
    event_category: Str<'a>,
    #[serde(borrow, default)]
    tls_details: Option<TlsDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    invoked_by: Str<'a>,
    #[serde(borrow, default)]
    access_key_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
    #[serde(borrow, default)]
    session_context: Option<SessionContext<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext<'a> {
    #[serde(borrow, default)]
    attributes: Option<Attributes<'a>>,
    #[serde(borrow, default)]
    session_issuer: Option<SessionIssuer<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes<'a> {
    #[serde(borrow, default)]
    mfa_authenticated: Option<&'a RawValue>,
    #[serde(borrow, default)]
    creation_date: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionIssuer<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    principal_id: Str<'a>,
    #[serde(borrow, default)]
    arn: Str<'a>,
    #[serde(borrow, default)]
    account_id: Str<'a>,
    #[serde(borrow, default)]
    user_name: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlsDetails<'a> {
    #[serde(borrow, default)]
    tls_version: Str<'a>,
    #[serde(borrow, default)]
    cipher_suite: Str<'a>,
    #[serde(borrow, default)]
    client_provided_host_header: Str<'a>,
}

/// Why an element did not become a record.
#[derive(Debug)]
pub(crate) enum EventError {
    /// Not a JSON object, or fields of the wrong type.
    Malformed(String),
    /// `eventTime` missing or not a date-time.
    BadTimestamp(String),
}

/// A CloudTrail boolean, written by AWS as `true`/`false` or, in older records and in
/// `mfaAuthenticated`, as the strings `"true"`/`"false"`.
fn flag(raw: Option<&RawValue>) -> Option<bool> {
    match raw?.get() {
        "true" | "\"true\"" => Some(true),
        "false" | "\"false\"" => Some(false),
        _ => None,
    }
}

fn json_text(w: &mut ObjectWriter<'_>, name: &str, raw: Option<&RawValue>) {
    if let Some(raw) = raw
        && raw.get() != "null"
    {
        w.json_text_field(name, raw.get());
    }
}

/// Serialises the event in `element` as an `AWSCloudTrail` record into `out`.
pub(crate) fn write_event(element: &[u8], out: &mut Vec<u8>) -> Result<(), EventError> {
    if element.first() != Some(&b'{') {
        return Err(EventError::Malformed("record is not a JSON object".into()));
    }
    let event: Event<'_> = serde_json::from_slice(element)
        .map_err(|e| EventError::Malformed(format!("record is not a valid CloudTrail event: {e}")))?;
    let time = match event.event_time.as_deref().or(event.at_timestamp.as_deref()) {
        Some(text) => parse_rfc3339(text)
            .ok_or_else(|| EventError::BadTimestamp(format!("eventTime `{text}` is not RFC 3339")))?,
        None => return Err(EventError::BadTimestamp("record has no eventTime".into())),
    };
    let mut w = ObjectWriter::begin(out);
    write_json_time(w.value_writer("TimeGenerated"), &time);
    w.opt_str_field("EventVersion", event.event_version.as_deref());
    if let Some(id) = &event.user_identity {
        w.opt_str_field("UserIdentityType", id.kind.as_deref());
        w.opt_str_field("UserIdentityPrincipalid", id.principal_id.as_deref());
        w.opt_str_field("UserIdentityArn", id.arn.as_deref());
        w.opt_str_field("UserIdentityAccountId", id.account_id.as_deref());
        w.opt_str_field("UserIdentityInvokedBy", id.invoked_by.as_deref());
        w.opt_str_field("UserIdentityAccessKeyId", id.access_key_id.as_deref());
        w.opt_str_field("UserIdentityUserName", id.user_name.as_deref());
        if let Some(ctx) = &id.session_context {
            if let Some(attrs) = &ctx.attributes {
                if let Some(mfa) = flag(attrs.mfa_authenticated) {
                    w.bool_field("SessionMfaAuthenticated", mfa);
                }
                // A `datetime` column: written normalised, omitted when it is not a date-time.
                if let Some(created) = attrs.creation_date.as_deref().and_then(parse_rfc3339) {
                    write_json_time(w.value_writer("SessionCreationDate"), &created);
                }
            }
            if let Some(issuer) = &ctx.session_issuer {
                w.opt_str_field("SessionIssuerType", issuer.kind.as_deref());
                w.opt_str_field("SessionIssuerPrincipalId", issuer.principal_id.as_deref());
                w.opt_str_field("SessionIssuerArn", issuer.arn.as_deref());
                w.opt_str_field("SessionIssuerAccountId", issuer.account_id.as_deref());
                w.opt_str_field("SessionIssuerUserName", issuer.user_name.as_deref());
            }
        }
    }
    w.opt_str_field("EventSource", event.event_source.as_deref());
    w.opt_str_field("EventName", event.event_name.as_deref());
    w.opt_str_field("AWSRegion", event.aws_region.as_deref());
    w.opt_str_field("SourceIpAddress", event.source_ip_address.as_deref());
    w.opt_str_field("UserAgent", event.user_agent.as_deref());
    w.opt_str_field("ErrorCode", event.error_code.as_deref());
    w.opt_str_field("ErrorMessage", event.error_message.as_deref());
    json_text(&mut w, "RequestParameters", event.request_parameters);
    json_text(&mut w, "ResponseElements", event.response_elements);
    json_text(&mut w, "AdditionalEventData", event.additional_event_data);
    json_text(&mut w, "Resources", event.resources);
    json_text(&mut w, "ServiceEventDetails", event.service_event_details);
    w.opt_str_field("AwsEventId", event.event_id.as_deref());
    // `AwsRequestId` is documented as deprecated in favour of `AwsRequestId_`.
    w.opt_str_field("AwsRequestId_", event.request_id.as_deref());
    w.opt_str_field("EventTypeName", event.event_type.as_deref());
    w.opt_str_field("APIVersion", event.api_version.as_deref());
    if let Some(read_only) = flag(event.read_only) {
        w.bool_field("ReadOnly", read_only);
    }
    if let Some(management) = flag(event.management_event) {
        w.bool_field("ManagementEvent", management);
    }
    w.opt_str_field("RecipientAccountId", event.recipient_account_id.as_deref());
    w.opt_str_field("SharedEventId", event.shared_event_id.as_deref());
    w.opt_str_field("VpcEndpointId", event.vpc_endpoint_id.as_deref());
    // `eventCategory` is the table's `Category` (the category used in LookupEvents calls).
    w.opt_str_field("Category", event.event_category.as_deref());
    if let Some(tls) = &event.tls_details {
        w.opt_str_field("TlsVersion", tls.tls_version.as_deref());
        w.opt_str_field("CipherSuite", tls.cipher_suite.as_deref());
        w.opt_str_field(
            "ClientProvidedHostHeader",
            tls.client_provided_host_header.as_deref(),
        );
    }
    w.end();
    Ok(())
}
