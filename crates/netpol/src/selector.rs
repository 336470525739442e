//! Compiled label selectors (`metav1.LabelSelector`).

use crate::InputError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    reqs: Vec<Req>,
}

impl Selector {
    pub fn everything() -> Self {
        Self::default()
    }

    /// Compiles a selector; `at` names the field for error messages.
    pub fn compile(sel: &LabelSelector, at: &str) -> Result<Self, InputError> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Req::Eq(k.clone(), v.clone()));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let vals = e.values.clone().unwrap_or_default();
            let field = format!("{at}.matchExpressions[{i}]");
            let r = match e.operator.as_str() {
                "In" | "NotIn" if vals.is_empty() => {
                    return Err(InputError::new(&field, format!("operator {} needs at least one value", e.operator)));
                }
                "In" => Req::In(e.key.clone(), vals),
                "NotIn" => Req::NotIn(e.key.clone(), vals),
                "Exists" | "DoesNotExist" if !vals.is_empty() => {
                    return Err(InputError::new(&field, format!("operator {} takes no values", e.operator)));
                }
                "Exists" => Req::Exists(e.key.clone()),
                "DoesNotExist" => Req::DoesNotExist(e.key.clone()),
                other => {
                    return Err(InputError::new(
                        &field,
                        format!("unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"),
                    ));
                }
            };
            reqs.push(r);
        }
        Ok(Self { reqs })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Req::Exists(k) => labels.contains_key(k),
            Req::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}
