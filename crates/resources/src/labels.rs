//! Labels a user may put on what they start (instances): Kubernetes' label
//! syntax, a small count, and none of the prefixes Paddock and Kubernetes
//! select on, so a tenant's label can never make its instance look like
//! something else to a selector (a pool's pods, another instance's objects).

use crate::FieldProblem;
use std::collections::BTreeMap;

/// How many labels one object may carry from its user.
pub const MAX_USER_LABELS: usize = 16;

/// Whether a label key belongs to Paddock or Kubernetes (`paddock.dev/...`,
/// `*.kubernetes.io/...`, `k8s.io/...`), not to users.
pub fn is_reserved(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else { return false };
    ["paddock.dev", "kubernetes.io", "k8s.io"].iter().any(|r| prefix == *r || prefix.ends_with(&format!(".{r}")))
}

/// Kubernetes' label name (and value) syntax: at most 63 characters,
/// alphanumerics with '-', '_' and '.' inside.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether `v` is a label value (empty, or a label name).
pub fn is_value(v: &str) -> bool {
    v.is_empty() || is_name(v)
}

/// What is wrong with `key` as a label key (syntax only; reserved prefixes allowed).
pub fn key_syntax_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.len() > 253 || !p.split('.').all(crate::is_dns_label))
    {
        return Some("the prefix must be a DNS subdomain (lowercase letters, digits, '-' and '.')".into());
    }
    if !is_name(name) {
        return Some(
            "the name must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    None
}

fn key_problem(key: &str) -> Option<String> {
    key_syntax_problem(key)
        .or_else(|| is_reserved(key).then(|| "prefixes paddock.dev/, kubernetes.io/ and k8s.io/ are reserved".into()))
}

/// What is wrong with labels a user asked for, each under `field[key]`.
pub fn problems(field: &str, labels: &BTreeMap<String, String>) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    if labels.len() > MAX_USER_LABELS {
        out.push(FieldProblem::new(field, format!("at most {MAX_USER_LABELS} labels, not {}", labels.len())));
        return out;
    }
    for (k, v) in labels {
        let at = format!("{field}[{k}]");
        if let Some(why) = key_problem(k) {
            out.push(FieldProblem::new(at, why));
        } else if !v.is_empty() && !is_name(v) {
            out.push(FieldProblem::new(
                at,
                format!("{v:?} is not a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
            ));
        }
    }
    out
}

/// The labels of an object that are its user's (reserved ones left out).
pub fn of_user(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.iter().filter(|(k, _)| !is_reserved(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Vec<String> {
        let m = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        problems("labels", &m).into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn users_get_kubernetes_label_syntax_without_reserved_prefixes() {
        assert!(check(&[("job", "1234"), ("ci.example.com/run", "a_b.c-d"), ("empty", "")]).is_empty());
        assert_eq!(check(&[("paddock.dev/instance", "x")]).len(), 1);
        assert_eq!(check(&[("pool.paddock.dev/set", "x")]).len(), 1);
        assert_eq!(check(&[("app.kubernetes.io/name", "x")]).len(), 1);
        assert_eq!(check(&[("-bad", "x")]).len(), 1);
        assert_eq!(check(&[("a", &"x".repeat(64))]).len(), 1);
        assert_eq!(check(&[("Upper.Case/x", "y")]).len(), 1);
        assert_eq!(check(&[("a/b/c", "y")]).len(), 1);
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(check(&many), ["labels: at most 16 labels, not 17"]);
    }
}
