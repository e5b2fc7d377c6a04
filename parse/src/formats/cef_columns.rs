//! CEF extension keys and the `CommonSecurityLog` columns they map to.
//!
//! Consumes a CEF extension key and produces its `CommonSecurityLog` column name and value kind;
//! keys not listed here go to `AdditionalExtensions`. Every column and kind here matches the
//! published table (`parse/tables/CommonSecurityLog.json`; the `tables` test checks records against
//! it): `int` columns take 32-bit integers, `long` columns 64-bit, `datetime` columns a date-time.
//! `dvcpid` has no column in the table and goes to `AdditionalExtensions`.

/// How a mapped value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string column.
    Str,
    /// An `int` column: a value that is not a 32-bit integer goes to `AdditionalExtensions` instead.
    Int,
    /// A `long` column: a value that is not a 64-bit integer goes to `AdditionalExtensions` instead.
    Long,
    /// A `datetime` column: a value that is not a CEF time goes to `AdditionalExtensions` instead.
    Time,
}

/// (CEF key, `CommonSecurityLog` column, kind).
pub(crate) const COLUMNS: &[(&str, &str, Kind)] = &[
    ("act", "DeviceAction", Kind::Str),
    ("app", "ApplicationProtocol", Kind::Str),
    ("cat", "DeviceEventCategory", Kind::Str),
    ("cnt", "EventCount", Kind::Int),
    ("cn1", "DeviceCustomNumber1", Kind::Int),
    ("cn1Label", "DeviceCustomNumber1Label", Kind::Str),
    ("cn2", "DeviceCustomNumber2", Kind::Int),
    ("cn2Label", "DeviceCustomNumber2Label", Kind::Str),
    ("cn3", "DeviceCustomNumber3", Kind::Int),
    ("cn3Label", "DeviceCustomNumber3Label", Kind::Str),
    ("cs1", "DeviceCustomString1", Kind::Str),
    ("cs1Label", "DeviceCustomString1Label", Kind::Str),
    ("cs2", "DeviceCustomString2", Kind::Str),
    ("cs2Label", "DeviceCustomString2Label", Kind::Str),
    ("cs3", "DeviceCustomString3", Kind::Str),
    ("cs3Label", "DeviceCustomString3Label", Kind::Str),
    ("cs4", "DeviceCustomString4", Kind::Str),
    ("cs4Label", "DeviceCustomString4Label", Kind::Str),
    ("cs5", "DeviceCustomString5", Kind::Str),
    ("cs5Label", "DeviceCustomString5Label", Kind::Str),
    ("cs6", "DeviceCustomString6", Kind::Str),
    ("cs6Label", "DeviceCustomString6Label", Kind::Str),
    ("deviceDirection", "CommunicationDirection", Kind::Str),
    ("deviceExternalId", "DeviceExternalID", Kind::Str),
    ("deviceFacility", "DeviceFacility", Kind::Str),
    ("deviceInboundInterface", "DeviceInboundInterface", Kind::Str),
    ("deviceOutboundInterface", "DeviceOutboundInterface", Kind::Str),
    ("destinationServiceName", "DestinationServiceName", Kind::Str),
    (
        "destinationTranslatedAddress",
        "DestinationTranslatedAddress",
        Kind::Str,
    ),
    (
        "destinationTranslatedPort",
        "DestinationTranslatedPort",
        Kind::Int,
    ),
    ("dhost", "DestinationHostName", Kind::Str),
    ("dmac", "DestinationMACAddress", Kind::Str),
    ("dntdom", "DestinationNTDomain", Kind::Str),
    ("dpid", "DestinationProcessId", Kind::Int),
    ("dpriv", "DestinationUserPrivileges", Kind::Str),
    ("dproc", "DestinationProcessName", Kind::Str),
    ("dpt", "DestinationPort", Kind::Int),
    ("dst", "DestinationIP", Kind::Str),
    ("duid", "DestinationUserID", Kind::Str),
    ("duser", "DestinationUserName", Kind::Str),
    ("dvc", "DeviceAddress", Kind::Str),
    ("dvchost", "DeviceName", Kind::Str),
    ("dvcmac", "DeviceMacAddress", Kind::Str),
    ("end", "EndTime", Kind::Time),
    ("externalId", "ExternalID", Kind::Int),
    ("fileHash", "FileHash", Kind::Str),
    ("filePath", "FilePath", Kind::Str),
    ("fname", "FileName", Kind::Str),
    ("fsize", "FileSize", Kind::Int),
    ("in", "ReceivedBytes", Kind::Long),
    ("msg", "Message", Kind::Str),
    ("oldFileName", "OldFileName", Kind::Str),
    ("out", "SentBytes", Kind::Long),
    ("outcome", "EventOutcome", Kind::Str),
    ("proto", "Protocol", Kind::Str),
    ("reason", "Reason", Kind::Str),
    ("request", "RequestURL", Kind::Str),
    ("requestClientApplication", "RequestClientApplication", Kind::Str),
    ("requestContext", "RequestContext", Kind::Str),
    ("requestCookies", "RequestCookies", Kind::Str),
    ("requestMethod", "RequestMethod", Kind::Str),
    ("rt", "ReceiptTime", Kind::Str),
    ("shost", "SourceHostName", Kind::Str),
    ("smac", "SourceMACAddress", Kind::Str),
    ("sntdom", "SourceNTDomain", Kind::Str),
    ("sourceTranslatedAddress", "SourceTranslatedAddress", Kind::Str),
    ("sourceTranslatedPort", "SourceTranslatedPort", Kind::Int),
    ("spid", "SourceProcessId", Kind::Int),
    ("spriv", "SourceUserPrivileges", Kind::Str),
    ("sproc", "SourceProcessName", Kind::Str),
    ("spt", "SourcePort", Kind::Int),
    ("src", "SourceIP", Kind::Str),
    ("start", "StartTime", Kind::Time),
    ("suid", "SourceUserID", Kind::Str),
    ("suser", "SourceUserName", Kind::Str),
];

/// The column index, name and kind for a CEF key.
pub(crate) fn lookup(key: &str) -> Option<(usize, &'static str, Kind)> {
    COLUMNS
        .iter()
        .position(|(k, _, _)| *k == key)
        .map(|i| (i, COLUMNS[i].1, COLUMNS[i].2))
}
