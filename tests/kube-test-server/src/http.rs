//! The REST protocol: paths, verbs, query parameters, content types, `Status` errors, and watch streams
//! (newline-delimited JSON events, ending after `timeoutSeconds`).

use crate::selector::Selector;
use crate::store::{ApiError, EventType, Key, ResourceInfo, Target};
use crate::{Inner, Recorded};
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Response body type of the fake server.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Longest a watch stays open when the client gives no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Parsed request path.
#[derive(Debug)]
struct Route {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let get = |i: usize| rest.get(i).map(|s| (*s).to_owned());
    if rest.len() > 3 {
        return None;
    }
    Some(Route {
        group,
        version,
        namespace,
        plural: get(0),
        name: get(1),
        subresource: get(2),
    })
}

fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// Serves one request as `user`.
pub async fn handle<B>(inner: Arc<Inner>, user: &str, req: Request<B>) -> Response<Body>
where
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return error_response(&ApiError::new(400, "BadRequest", format!("unreadable body: {e}"))),
    };
    let q = query(&parts.uri);
    inner.record(Recorded {
        user: user.to_owned(),
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        watch: q.get("watch").is_some_and(|w| w == "true" || w == "1"),
    });
    match route(inner, user, &parts, &q, &body).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn route(
    inner: Arc<Inner>,
    user: &str,
    parts: &http::request::Parts,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                parts.uri.path()
            ),
        )
    };
    let r = parse_path(parts.uri.path()).ok_or_else(not_found)?;
    let Some(plural) = &r.plural else {
        return discovery(&inner, &r.group, &r.version).ok_or_else(not_found);
    };
    let res = inner
        .resource(&r.group, &r.version, plural)
        .ok_or_else(not_found)?;
    if r.namespace.is_some() && !res.namespaced {
        return Err(not_found());
    }
    let target = match r.subresource.as_deref() {
        None => Target::Main,
        Some("status") if res.status_subresource => Target::Status,
        Some(_) => return Err(not_found()),
    };
    let namespace = r.namespace.clone().unwrap_or_default();
    let manager = q.get("fieldManager").cloned().unwrap_or_else(|| user.to_owned());
    let parse_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(400, "BadRequest", format!("invalid JSON body: {e}")))
    };

    let Some(name) = r.name.clone() else {
        return match parts.method {
            Method::GET if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                watch(inner, res, r.namespace.clone(), q)
            }
            Method::GET => list(&inner, &res, r.namespace.as_deref(), q),
            Method::POST => {
                let obj = parse_body()?;
                let created = inner.store().create(&res, &namespace, obj, &manager)?;
                inner.notify();
                Ok(json_response(StatusCode::CREATED, &created))
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "method not allowed")),
        };
    };
    let key = Key {
        group: res.group.clone(),
        plural: res.plural.clone(),
        namespace: if res.namespaced {
            namespace.clone()
        } else {
            String::new()
        },
        name,
    };
    let result = match parts.method {
        Method::GET => {
            let store = inner.store();
            return store
                .get(&key)
                .map(|o| json_response(StatusCode::OK, o))
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "NotFound",
                        format!("{} \"{}\" not found", res.plural, key.name),
                    )
                });
        }
        Method::PUT => {
            let obj = parse_body()?;
            inner.store().replace(&res, &key, obj, target, &manager)
        }
        Method::PATCH => {
            let patch = parse_body()?;
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            match content_type {
                "application/apply-patch+yaml" => {
                    if !q.contains_key("fieldManager") {
                        return Err(ApiError::new(
                            400,
                            "BadRequest",
                            "fieldManager is required for apply requests",
                        ));
                    }
                    let force = q.get("force").is_some_and(|f| f == "true");
                    inner.store().apply(&res, &key, &patch, target, &manager, force)
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    inner.store().merge_patch(&res, &key, &patch, target, &manager)
                }
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("patch type `{other}` is not supported by the test server"),
                    ));
                }
            }
        }
        Method::DELETE => inner.store().delete(&res, &key),
        _ => return Err(ApiError::new(405, "MethodNotAllowed", "method not allowed")),
    };
    inner.notify();
    result.map(|obj| json_response(StatusCode::OK, &obj))
}

fn discovery(inner: &Inner, group: &str, version: &str) -> Option<Response<Body>> {
    let resources: Vec<Value> = inner
        .resources()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let mut out = vec![json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})];
            if r.status_subresource {
                out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"]}));
            }
            out
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

fn selectors(q: &HashMap<String, String>) -> Result<(Selector, Selector), ApiError> {
    let bad = |e: crate::selector::SelectorError| ApiError::new(400, "BadRequest", e.to_string());
    let labels = Selector::labels(q.get("labelSelector").map_or("", String::as_str)).map_err(bad)?;
    let fields = Selector::fields(q.get("fieldSelector").map_or("", String::as_str)).map_err(bad)?;
    Ok((labels, fields))
}

fn list(
    inner: &Inner,
    res: &ResourceInfo,
    namespace: Option<&str>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let store = inner.store();
    let items: Vec<Value> = store
        .list(res, namespace)
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"apiVersion": res.api_version(), "kind": format!("{}List", res.kind),
                "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items}),
    ))
}

fn watch(
    inner: Arc<Inner>,
    res: ResourceInfo,
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(q)?;
    let matches = move |o: &Value| labels.matches(o) && fields.matches(o);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut initial = Vec::new();
    let since = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => {
            let store = inner.store();
            for o in store.list(&res, namespace.as_deref()) {
                if matches(&o) {
                    initial.push(json!({"type": "ADDED", "object": o}));
                }
            }
            store.resource_version()
        }
        Some(rv) => rv
            .parse::<u64>()
            .map_err(|_| ApiError::new(400, "BadRequest", format!("invalid resourceVersion {rv}")))?,
    };
    initial.reverse();
    let rx = inner.subscribe();
    let state = (inner, res, namespace, since, rx, initial);
    let stream = futures::stream::unfold(
        state,
        move |(inner, res, namespace, mut since, mut rx, mut pending)| {
            let matches = matches.clone();
            async move {
                loop {
                    if let Some(event) = pending.pop() {
                        let line = Bytes::from(format!("{event}\n"));
                        return Some((
                            Ok::<_, Infallible>(Frame::data(line)),
                            (inner, res, namespace, since, rx, pending),
                        ));
                    }
                    {
                        let store = inner.store();
                        let start = store.log.partition_point(|e| e.rv <= since);
                        for entry in &store.log[start..] {
                            since = entry.rv;
                            if entry.key.group != res.group
                                || entry.key.plural != res.plural
                                || namespace.as_ref().is_some_and(|ns| &entry.key.namespace != ns)
                            {
                                continue;
                            }
                            let now = matches(&entry.new);
                            let before = entry.old.as_ref().is_some_and(&matches);
                            let kind = match (entry.kind, before, now) {
                                (EventType::Added, _, true) => "ADDED",
                                (EventType::Deleted, _, true) => "DELETED",
                                (EventType::Modified, true, true) => "MODIFIED",
                                (EventType::Modified, false, true) => "ADDED",
                                (EventType::Modified, true, false) => "DELETED",
                                _ => continue,
                            };
                            pending.push(json!({"type": kind, "object": entry.new}));
                        }
                        pending.reverse();
                    }
                    if !pending.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        changed = rx.changed() => if changed.is_err() { return None },
                        _ = tokio::time::sleep_until(deadline) => return None,
                    }
                }
            }
        },
    );
    let mut resp = Response::new(StreamBody::new(stream.boxed()).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_api_server_lays_them_out() {
        let r = parse_path("/apis/apps/v1/namespaces/ns/deployments/web/status").unwrap();
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.plural.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (
                "apps",
                Some("ns"),
                Some("deployments"),
                Some("web"),
                Some("status")
            )
        );
        let r = parse_path("/api/v1/configmaps").unwrap();
        assert_eq!(
            (r.group.as_str(), r.namespace, r.plural.as_deref()),
            ("", None, Some("configmaps"))
        );
        let r = parse_path("/apis/monitoring.coreos.com/v1").unwrap();
        assert!(r.plural.is_none());
        assert!(parse_path("/healthz").is_none());
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let uri: http::Uri = "/api/v1/pods?labelSelector=app.kubernetes.io%2Fname%3Dx&watch=true"
            .parse()
            .unwrap();
        let q = query(&uri);
        assert_eq!(q["labelSelector"], "app.kubernetes.io/name=x");
        assert_eq!(q["watch"], "true");
    }
}
