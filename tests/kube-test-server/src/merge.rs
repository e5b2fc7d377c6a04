//! Server-side apply and JSON merge patch on `serde_json::Value`s, with simplified field ownership.
//!
//! Ownership is a set of *leaf paths* per field manager. A leaf is a scalar or a list (empty objects are
//! structure and owned by nobody): lists
//! are atomic (the real server merges keyed lists such as `containers` by key; with one manager per list, as
//! here, the result is the same). Apply:
//! 1. conflicts: a leaf the caller applies with a different value than stored, owned by another manager, is
//!    a 409 unless `force`, which moves ownership to the caller;
//! 2. the applied document is deep-merged into the stored object (objects merge, everything else replaces);
//! 3. leaves the caller owned before but no longer applies are removed, unless another manager owns them;
//! 4. the caller owns exactly the leaves it applied.
//!
//! Updates (merge patch, PUT) give the updater ownership of every leaf whose value they changed.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Field ownership: manager → leaf paths (`/spec/replicas`, JSON pointer syntax).
pub type Managed = BTreeMap<String, BTreeSet<String>>;

/// Metadata that the server owns and no manager can own.
const SERVER_FIELDS: [&str; 8] = [
    "/metadata/resourceVersion",
    "/metadata/uid",
    "/metadata/creationTimestamp",
    "/metadata/generation",
    "/metadata/managedFields",
    "/metadata/deletionTimestamp",
    "/apiVersion",
    "/kind",
];

/// A refused apply: the conflicting paths and who owns them.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflicts(pub Vec<(String, String)>);

/// Leaf paths of `v` (see the module doc), skipping server-owned fields and the object's identity.
pub fn leaves(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    collect(v, String::new(), &mut out);
    out.retain(|p, _| {
        !SERVER_FIELDS.contains(&p.as_str()) && p != "/metadata/name" && p != "/metadata/namespace"
    });
    out
}

fn collect(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        // Empty objects are structure, not values: nobody owns them (as in the real field sets).
        Value::Object(map) => {
            for (k, child) in map {
                collect(child, format!("{path}/{}", escape(k)), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn owned_by_other<'a>(managed: &'a Managed, me: &str, path: &str) -> Vec<&'a str> {
    managed
        .iter()
        .filter(|(m, paths)| {
            m.as_str() != me
                && paths.iter().any(|p| {
                    p == path || p.starts_with(&format!("{path}/")) || path.starts_with(&format!("{p}/"))
                })
        })
        .map(|(m, _)| m.as_str())
        .collect()
}

/// Applies `config` as `manager` onto `current` (`Value::Null` when creating). Returns the new object.
pub fn apply(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    managed: &mut Managed,
) -> Result<Value, Conflicts> {
    let applied = leaves(config);
    let mut conflicts = Vec::new();
    for (path, value) in &applied {
        if current.pointer(path) == Some(value) {
            continue;
        }
        for other in owned_by_other(managed, manager, path) {
            conflicts.push((path.clone(), other.to_owned()));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Conflicts(conflicts));
    }
    for (path, other) in &conflicts {
        if let Some(paths) = managed.get_mut(other) {
            paths.retain(|p| {
                !(p == path || p.starts_with(&format!("{path}/")) || path.starts_with(&format!("{p}/")))
            });
        }
    }

    let mut merged = if current.is_object() {
        current.clone()
    } else {
        Value::Object(Map::new())
    };
    deep_merge(&mut merged, config);

    let previously = managed.remove(manager).unwrap_or_default();
    for path in previously.iter().filter(|p| !applied.contains_key(*p)) {
        if owned_by_other(managed, manager, path).is_empty() {
            remove_path(&mut merged, path);
        }
    }
    managed.insert(manager.to_owned(), applied.into_keys().collect());
    managed.retain(|_, paths| !paths.is_empty());
    Ok(merged)
}

/// Records that `manager` changed `before` into `after` with an update (merge patch or PUT).
pub fn record_update(before: &Value, after: &Value, manager: &str, managed: &mut Managed) {
    let old = leaves(before);
    let new = leaves(after);
    let changed: Vec<String> = new
        .iter()
        .filter(|(p, v)| old.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    // Removed fields are owned by nobody any more; changed ones move to the updater.
    for paths in managed.values_mut() {
        paths.retain(|p| new.contains_key(p) && !changed.contains(p));
    }
    managed.entry(manager.to_owned()).or_default().extend(changed);
    managed.retain(|_, paths| !paths.is_empty());
}

/// Objects merge key by key; anything else in `patch` replaces what is in `target`.
pub fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// RFC 7386 JSON merge patch: `null` deletes, objects merge, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Removes the leaf at `path` and then every ancestor object it leaves empty (below the top level).
fn remove_path(root: &mut Value, path: &str) {
    let parts: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    remove_parts(root, &parts);
}

fn remove_parts(node: &mut Value, parts: &[String]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return false;
    };
    let Value::Object(map) = node else { return false };
    if rest.is_empty() {
        map.remove(first);
    } else if let Some(child) = map.get_mut(first)
        && remove_parts(child, rest)
    {
        map.remove(first);
    }
    // Tell the caller to drop this object when it became empty (the root itself is never dropped).
    map.is_empty()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_merges_and_prunes_what_the_manager_stopped_applying() {
        let mut m = Managed::new();
        let a = apply(
            &Value::Null,
            &json!({"spec": {"a": 1, "b": {"c": 2}}}),
            "op",
            false,
            &mut m,
        )
        .unwrap();
        assert_eq!(a, json!({"spec": {"a": 1, "b": {"c": 2}}}));
        let b = apply(&a, &json!({"spec": {"a": 3}}), "op", false, &mut m).unwrap();
        assert_eq!(b, json!({"spec": {"a": 3}}));
        assert_eq!(m["op"], BTreeSet::from(["/spec/a".to_owned()]));
    }

    #[test]
    fn fields_of_other_managers_survive_and_conflict_without_force() {
        let mut m = Managed::new();
        let a = apply(
            &Value::Null,
            &json!({"spec": {"template": "t"}}),
            "op",
            false,
            &mut m,
        )
        .unwrap();
        let mut b = a.clone();
        merge_patch(&mut b, &json!({"spec": {"replicas": 3}}));
        record_update(&a, &b, "hpa", &mut m);
        let c = apply(&b, &json!({"spec": {"template": "t2"}}), "op", false, &mut m).unwrap();
        assert_eq!(
            c,
            json!({"spec": {"template": "t2", "replicas": 3}}),
            "the autoscaler's replicas stay"
        );
        let err = apply(&c, &json!({"spec": {"replicas": 1}}), "op", false, &mut m).unwrap_err();
        assert_eq!(err, Conflicts(vec![("/spec/replicas".into(), "hpa".into())]));
        let d = apply(&c, &json!({"spec": {"replicas": 1}}), "op", true, &mut m).unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
        assert!(!m.contains_key("hpa"), "force takes ownership away");
    }

    #[test]
    fn same_value_from_two_managers_is_not_a_conflict() {
        let mut m = Managed::new();
        let a = apply(
            &Value::Null,
            &json!({"spec": {"holder": "x"}}),
            "a",
            false,
            &mut m,
        )
        .unwrap();
        apply(&a, &json!({"spec": {"holder": "x"}}), "b", false, &mut m).unwrap();
        assert!(apply(&a, &json!({"spec": {"holder": "y"}}), "b", false, &mut m).is_err());
    }

    #[test]
    fn removing_a_field_by_update_frees_it() {
        let mut m = Managed::new();
        let a = apply(
            &Value::Null,
            &json!({"spec": {"holder": "x"}}),
            "a",
            false,
            &mut m,
        )
        .unwrap();
        let mut b = a.clone();
        merge_patch(&mut b, &json!({"spec": {"holder": null}}));
        record_update(&a, &b, "a", &mut m);
        assert!(apply(&b, &json!({"spec": {"holder": "y"}}), "b", false, &mut m).is_ok());
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 4}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 4}, "l": [3]}));
    }
}
