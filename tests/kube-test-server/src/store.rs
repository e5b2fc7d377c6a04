//! The object store: every object as JSON with its field ownership, one global resourceVersion counter
//! (as etcd's), and an append-only event log that watches read from.
//!
//! Semantics kept from the real API server: `metadata.generation` starts at 1 and moves only when
//! something outside `metadata` and `status` changes; writes that change nothing do not move the
//! resourceVersion or emit an event; for resources with a status subresource, main-resource writes ignore
//! `status` and status writes change only `status`; a stale `metadata.resourceVersion` in a write is a
//! 409; deleting an object with finalizers only sets `deletionTimestamp`, and the object goes when the last
//! finalizer is removed; when an object goes, objects whose ownerReferences name its uid are deleted too
//! (background cascading).

use crate::merge::{self, Managed};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A resource kind the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural, e.g. `deployments`.
    pub plural: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `/status` is a subresource (status writes and spec writes are separated).
    pub status_subresource: bool,
}

impl ResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// An error the API answers with, as a `Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

/// One entry of the event log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Which object.
    pub key: Key,
    /// What happened.
    pub kind: EventType,
    /// The object before (for selector transitions).
    pub old: Option<Value>,
    /// The object after (the last state for deletions).
    pub new: Value,
}

#[derive(Debug, Clone)]
struct Stored {
    obj: Value,
    managed: Managed,
}

/// How a write is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The main resource.
    Main,
    /// The `/status` subresource.
    Status,
}

/// The store.
#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<Key, Stored>,
    /// The event log, oldest first.
    pub log: Vec<LogEntry>,
    rv: u64,
    uid: u64,
}

impl Store {
    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The stored object.
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key).map(|s| &s.obj)
    }

    /// Objects of `res` in `namespace` (all namespaces when `None`).
    pub fn list(&self, res: &ResourceInfo, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.group == res.group && k.plural == res.plural && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, s)| s.obj.clone())
            .collect()
    }

    /// Creates `obj` (POST).
    pub fn create(
        &mut self,
        res: &ResourceInfo,
        namespace: &str,
        mut obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05x}", self.uid + 1),
                None => return Err(ApiError::new(422, "Invalid", "metadata.name: Required value")),
            },
        };
        let key = self.key(res, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", res.plural),
            ));
        }
        obj["metadata"]["name"] = json!(name);
        if res.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let mut managed = Managed::new();
        merge::record_update(&Value::Null, &obj, manager, &mut managed);
        self.commit(res, key, None, obj, managed)
    }

    /// Replaces the object (PUT), honouring a resourceVersion precondition.
    pub fn replace(
        &mut self,
        res: &ResourceInfo,
        key: &Key,
        new: Value,
        target: Target,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let stored = self.existing(res, key)?;
        check_precondition(res, key, &stored.obj, &new)?;
        let after = restrict(res, &stored.obj, new, target);
        let mut managed = stored.managed.clone();
        merge::record_update(&stored.obj, &after, manager, &mut managed);
        let old = stored.obj.clone();
        self.commit(res, key.clone(), Some(old), after, managed)
    }

    /// JSON merge patch (also used for strategic merge patch: lists replace).
    pub fn merge_patch(
        &mut self,
        res: &ResourceInfo,
        key: &Key,
        patch: &Value,
        target: Target,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let stored = self.existing(res, key)?;
        check_precondition(res, key, &stored.obj, patch)?;
        let mut after = stored.obj.clone();
        merge::merge_patch(&mut after, patch);
        let after = restrict(res, &stored.obj, after, target);
        let mut managed = stored.managed.clone();
        merge::record_update(&stored.obj, &after, manager, &mut managed);
        let old = stored.obj.clone();
        self.commit(res, key.clone(), Some(old), after, managed)
    }

    /// Server-side apply; creates the object when absent.
    pub fn apply(
        &mut self,
        res: &ResourceInfo,
        key: &Key,
        config: &Value,
        target: Target,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let (old, mut managed) = match self.objects.get(key) {
            Some(s) => (Some(s.obj.clone()), s.managed.clone()),
            None if target == Target::Status => return Err(not_found(res, key)),
            None => (None, Managed::new()),
        };
        if let Some(old) = &old {
            check_precondition(res, key, old, config)?;
        }
        let mut config = config.clone();
        if res.status_subresource
            && let Some(m) = config.as_object_mut()
        {
            match target {
                Target::Main => {
                    m.remove("status");
                }
                Target::Status => m.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind"),
            }
        }
        let current = old.clone().unwrap_or(Value::Null);
        let merged = merge::apply(&current, &config, manager, force, &mut managed).map_err(|c| {
            let list: Vec<String> =
                c.0.iter()
                    .map(|(p, m)| format!("conflict with \"{m}\": {p}"))
                    .collect();
            ApiError::new(
                409,
                "Conflict",
                format!("Apply failed with {} conflicts: {}", list.len(), list.join("; ")),
            )
        })?;
        let after = match &old {
            Some(o) => restrict(res, o, merged, target),
            None => merged,
        };
        self.commit(res, key.clone(), old, after, managed)
    }

    /// Deletes the object: with finalizers only marks it; otherwise removes it and its dependents.
    pub fn delete(&mut self, res: &ResourceInfo, key: &Key) -> Result<Value, ApiError> {
        let stored = self.existing(res, key)?;
        let obj = stored.obj.clone();
        if has_finalizers(&obj) {
            if obj["metadata"]["deletionTimestamp"].is_string() {
                return Ok(obj);
            }
            let mut after = obj.clone();
            after["metadata"]["deletionTimestamp"] = json!(now());
            after["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let managed = stored.managed.clone();
            return self.commit(res, key.clone(), Some(obj), after, managed);
        }
        Ok(self.remove(key))
    }

    fn remove(&mut self, key: &Key) -> Value {
        let Some(stored) = self.objects.remove(key) else {
            return Value::Null;
        };
        self.rv += 1;
        let mut last = stored.obj;
        last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log.push(LogEntry {
            rv: self.rv,
            key: key.clone(),
            kind: EventType::Deleted,
            old: None,
            new: last.clone(),
        });
        if let Some(uid) = last["metadata"]["uid"].as_str() {
            self.collect_garbage(uid);
        }
        last
    }

    /// Background cascading deletion of the dependents of `owner_uid`.
    fn collect_garbage(&mut self, owner_uid: &str) {
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, s)| {
                s.obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(owner_uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            let Some(stored) = self.objects.get(&key) else {
                continue;
            };
            if has_finalizers(&stored.obj) {
                let old = stored.obj.clone();
                if old["metadata"]["deletionTimestamp"].is_null() {
                    let mut after = old.clone();
                    after["metadata"]["deletionTimestamp"] = json!(now());
                    self.write(key, Some(old), after, stored.managed.clone());
                }
            } else {
                self.remove(&key);
            }
        }
    }

    fn existing(&self, res: &ResourceInfo, key: &Key) -> Result<&Stored, ApiError> {
        self.objects.get(key).ok_or_else(|| not_found(res, key))
    }

    fn key(&self, res: &ResourceInfo, namespace: &str, name: &str) -> Key {
        Key {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: if res.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    /// Stores `after` unless it equals `old`, maintaining server-owned metadata and the log.
    fn commit(
        &mut self,
        res: &ResourceInfo,
        key: Key,
        old: Option<Value>,
        mut after: Value,
        managed: Managed,
    ) -> Result<Value, ApiError> {
        after["apiVersion"] = json!(res.api_version());
        after["kind"] = json!(res.kind);
        after["metadata"]["name"] = json!(key.name);
        if res.namespaced {
            after["metadata"]["namespace"] = json!(key.namespace);
        } else if let Some(m) = after["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        match &old {
            Some(o) => {
                for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                    after["metadata"][field] = o["metadata"][field].clone();
                }
                if o["metadata"]["deletionTimestamp"].is_string() {
                    after["metadata"]["deletionTimestamp"] = o["metadata"]["deletionTimestamp"].clone();
                }
                if after == *o {
                    if let Some(s) = self.objects.get_mut(&key) {
                        s.managed = managed;
                    }
                    return Ok(after);
                }
                if spec_of(o) != spec_of(&after) {
                    let generation = o["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    after["metadata"]["generation"] = json!(generation);
                }
            }
            None => {
                self.uid += 1;
                after["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
                after["metadata"]["creationTimestamp"] = json!(now());
                after["metadata"]["generation"] = json!(1);
            }
        }
        Ok(self.write(key, old, after, managed))
    }

    fn write(&mut self, key: Key, old: Option<Value>, mut after: Value, managed: Managed) -> Value {
        self.rv += 1;
        after["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.log.push(LogEntry {
            rv: self.rv,
            key: key.clone(),
            kind,
            old,
            new: after.clone(),
        });
        let finished = after["metadata"]["deletionTimestamp"].is_string() && !has_finalizers(&after);
        self.objects.insert(
            key.clone(),
            Stored {
                obj: after.clone(),
                managed,
            },
        );
        if finished {
            return self.remove(&key);
        }
        after
    }
}

/// Keeps the part of `new` that a write to `target` may change.
fn restrict(res: &ResourceInfo, old: &Value, mut new: Value, target: Target) -> Value {
    if !res.status_subresource {
        return new;
    }
    match target {
        Target::Main => {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new
        }
        Target::Status => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            out
        }
    }
}

fn check_precondition(res: &ResourceInfo, key: &Key, stored: &Value, write: &Value) -> Result<(), ApiError> {
    match write["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && Some(rv) != stored["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    res.plural, key.name
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn not_found(res: &ResourceInfo, key: &Key) -> ApiError {
    let group = if res.group.is_empty() {
        String::new()
    } else {
        format!(".{}", res.group)
    };
    ApiError::new(
        404,
        "NotFound",
        format!("{}{group} \"{}\" not found", res.plural, key.name),
    )
}

fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
