//! Label and field selectors: the query-string forms (`labelSelector`,
//! `fieldSelector`) and the structured `metav1.LabelSelector`.

use crate::error::ApiError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.matches_value(get(&self.key).as_deref())
    }

    /// Whether the requirement holds for this value of its key (None: no such label/field).
    pub fn matches_value(&self, v: Option<&str>) -> bool {
        match &self.op {
            Op::Eq(x) => v == Some(x.as_str()),
            Op::NotEq(x) => v != Some(x.as_str()),
            Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
            Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
        }
    }
}

/// A conjunction of requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub reqs: Vec<Requirement>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches_labels(&self, labels: &[(std::sync::Arc<str>, std::sync::Arc<str>)]) -> bool {
        self.reqs.iter().all(|r| r.matches_value(labels.iter().find(|(lk, _)| **lk == *r.key).map(|(_, v)| &**v)))
    }

    pub fn matches_map(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.reqs.iter().all(|r| r.matches_value(labels.and_then(|m| m.get(&r.key)).and_then(Value::as_str)))
    }

    /// Parses the `labelSelector` query form.
    pub fn parse_labels(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(Self { reqs })
    }

    /// Parses the `fieldSelector` query form (only =, == and !=).
    pub fn parse_fields(s: &str, supported: &dyn Fn(&str) -> bool) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, op) = if let Some((k, v)) = part.split_once("!=") {
                (k, Op::NotEq(v.to_string()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k, Op::Eq(v.to_string()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k, Op::Eq(v.to_string()))
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let key = key.trim().to_string();
            if !supported(&key) {
                return Err(ApiError::bad_request(format!("field label not supported: {key}")));
            }
            reqs.push(Requirement { key, op });
        }
        Ok(Self { reqs })
    }

    /// Converts a structured `metav1.LabelSelector` (matchLabels + matchExpressions).
    /// `None` input means "selects nothing" for callers that need it; this
    /// function treats a missing selector as empty (matches everything).
    pub fn from_label_selector(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement { key: k.clone(), op: Op::Eq(v.as_str().unwrap_or("").to_string()) });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for (i, e) in exprs.iter().enumerate() {
                let key =
                    e.get("key").and_then(Value::as_str).ok_or(format!("matchExpressions[{i}].key: Required value"))?;
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => Op::In(values),
                    Some("NotIn") => Op::NotIn(values),
                    Some("Exists") => Op::Exists,
                    Some("DoesNotExist") => Op::DoesNotExist,
                    other => {
                        return Err(format!(
                            "matchExpressions[{i}].operator: Unsupported value: {:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
                            other.unwrap_or("")
                        ));
                    }
                };
                reqs.push(Requirement { key: key.to_string(), op });
            }
        }
        Ok(Self { reqs })
    }

    /// A plain map selector (as in `Service.spec.selector`).
    pub fn from_map(m: &serde_json::Map<String, Value>) -> Self {
        Self {
            reqs: m
                .iter()
                .map(|(k, v)| Requirement { key: k.clone(), op: Op::Eq(v.as_str().unwrap_or("").to_string()) })
                .collect(),
        }
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
        ApiError::bad_request(format!("unable to parse requirement: found '{rest}', expected: '(' in {whole:?}"))
    })?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if vals.is_empty() {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty in {whole:?}"
        )));
    }
    for v in &vals {
        check_value(v)?;
    }
    Ok(vals)
}

fn check_key(k: &str) -> Result<(), ApiError> {
    if crate::validation::names::qualified_name_errors(k).is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unable to parse requirement: invalid label key {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

fn check_value(v: &str) -> Result<(), ApiError> {
    if crate::validation::names::label_value_errors(v).is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unable to parse requirement: invalid label value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        check_key(k)?;
        return Ok(Requirement { key: k.to_string(), op: Op::DoesNotExist });
    }
    for (sep, ctor) in [("!=", 0), ("==", 1), ("=", 1)] {
        if let Some((k, v)) = part.split_once(sep) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k)?;
            check_value(v)?;
            let op = if ctor == 0 { Op::NotEq(v.into()) } else { Op::Eq(v.into()) };
            return Ok(Requirement { key: k.to_string(), op });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("").trim();
    let rest = words.next().unwrap_or("").trim();
    check_key(key)?;
    if rest.is_empty() {
        return Ok(Requirement { key: key.to_string(), op: Op::Exists });
    }
    if let Some(r) = rest.strip_prefix("notin") {
        return Ok(Requirement { key: key.to_string(), op: Op::NotIn(parse_set(r, part)?) });
    }
    if let Some(r) = rest.strip_prefix("in") {
        return Ok(Requirement { key: key.to_string(), op: Op::In(parse_set(r, part)?) });
    }
    Err(ApiError::bad_request(format!(
        "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(std::sync::Arc<str>, std::sync::Arc<str>)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Selector::parse_labels("a=1,b==2,c!=3,d in (x, y),e notin (z),f,!g").unwrap();
        assert_eq!(s.reqs.len(), 7);
        let l = labels(&[("a", "1"), ("b", "2"), ("c", "4"), ("d", "y"), ("e", "q"), ("f", "")]);
        assert!(s.matches_labels(&l));
        let l2 = labels(&[("a", "1"), ("b", "2"), ("d", "y"), ("f", ""), ("g", "1")]);
        assert!(!s.matches_labels(&l2));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Selector::parse_labels("a in x").is_err());
        assert!(Selector::parse_labels("a in ()").is_err());
        assert!(Selector::parse_labels("-bad-=1").is_err());
        assert!(Selector::parse_labels("a foo (b)").is_err());
    }

    #[test]
    fn field_selector_rejects_unknown_fields() {
        let ok = |k: &str| k == "metadata.name";
        assert!(Selector::parse_fields("metadata.name=x", &ok).is_ok());
        let e = Selector::parse_fields("spec.foo=x", &ok).unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.foo");
    }
}
