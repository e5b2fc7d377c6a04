//! Label and field selectors as the list and watch endpoints accept them.
//!
//! Label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)` and `k notin (a,b)`, joined by
//! commas. Field selectors support `metadata.name` and `metadata.namespace` with `=`, `==` and `!=`.

use serde_json::Value;

/// One parsed requirement.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label or field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    reqs: Vec<Req>,
    field: bool,
}

/// A selector the server cannot parse.
#[derive(Debug, thiserror::Error)]
#[error("unable to parse selector `{0}`")]
pub struct SelectorError(pub String);

impl Selector {
    /// Parses a label selector.
    pub fn labels(text: &str) -> Result<Selector, SelectorError> {
        Ok(Selector {
            reqs: parse(text)?,
            field: false,
        })
    }

    /// Parses a field selector.
    pub fn fields(text: &str) -> Result<Selector, SelectorError> {
        let reqs = parse(text)?;
        for r in &reqs {
            match r {
                Req::Eq(k, _) | Req::Ne(k, _) if k == "metadata.name" || k == "metadata.namespace" => {}
                _ => return Err(SelectorError(text.to_owned())),
            }
        }
        Ok(Selector { reqs, field: true })
    }

    /// Whether `obj` matches.
    pub fn matches(&self, obj: &Value) -> bool {
        let lookup = |key: &str| -> Option<String> {
            if self.field {
                let field = key.strip_prefix("metadata.")?;
                obj["metadata"][field].as_str().map(str::to_owned)
            } else {
                obj["metadata"]["labels"][key].as_str().map(str::to_owned)
            }
        };
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Req::Ne(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Req::Exists(k) => lookup(k).is_some(),
            Req::NotExists(k) => lookup(k).is_none(),
            Req::In(k, vs) => lookup(k).is_some_and(|v| vs.contains(&v)),
            Req::NotIn(k, vs) => lookup(k).is_none_or(|v| !vs.contains(&v)),
        })
    }
}

fn parse(text: &str) -> Result<Vec<Req>, SelectorError> {
    let err = || SelectorError(text.to_owned());
    let mut reqs = Vec::new();
    for part in split_top_level(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let req = if let Some((k, v)) = part.split_once("!=") {
            Req::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            Req::NotIn(k.trim().into(), set(rest).ok_or_else(err)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            Req::In(k.trim().into(), set(rest).ok_or_else(err)?)
        } else if let Some(k) = part.strip_prefix('!') {
            Req::NotExists(k.trim().into())
        } else if part.contains(char::is_whitespace) {
            return Err(err());
        } else {
            Req::Exists(part.into())
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_match_like_the_api_server() {
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "x", "tier": "web"}}});
        let yes = [
            "app=x",
            "app==x",
            "app!=y",
            "app",
            "!missing",
            "tier in (web,db)",
            "tier notin (db)",
            "app=x,tier=web",
            "",
        ];
        let no = [
            "app=y",
            "app!=x",
            "missing",
            "!app",
            "tier in (db)",
            "tier notin (web, db)",
            "app=x,tier=db",
        ];
        for s in yes {
            assert!(Selector::labels(s).unwrap().matches(&obj), "{s} should match");
        }
        for s in no {
            assert!(
                !Selector::labels(s).unwrap().matches(&obj),
                "{s} should not match"
            );
        }
    }

    #[test]
    fn field_selectors_cover_name_and_namespace() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            Selector::fields("metadata.name=a,metadata.namespace=ns")
                .unwrap()
                .matches(&obj)
        );
        assert!(!Selector::fields("metadata.name!=a").unwrap().matches(&obj));
        assert!(Selector::fields("spec.nodeName=n").is_err());
    }
}
