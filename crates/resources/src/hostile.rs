//! Hostile inputs for property tests (feature `hostile`): valid JSON
//! bodies and specs with one to three values replaced by what an attacker
//! would try, mostly of the same JSON type so that the result still parses
//! and reaches validation, sometimes of another.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Strings an attacker would try in any text field.
const HOSTILE_TEXT: &[&str] = &[
    "999999999h",
    "18446744073709551615s",
    "99999999999999999999999d",
    "0s",
    "-1h",
    "1h30m",
    "$(FLAG)",
    "$$(FLAG)",
    "../../etc/passwd",
    "/",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/etc",
    "//data",
    "nginx\u{0}:1",
    "other-ns/name",
    "vpn",
    "ALL",
    "SYS_ADMIN",
    "CAP_NET_ADMIN",
    "169.254.169.254",
    "1e309",
    "99999999999999999999Ei",
    "-5Gi",
    "0",
    "teamnet",
    "web",
    "http",
    "%s%s",
    "  ",
    "",
];

/// Numbers an attacker would try in any numeric field.
const HOSTILE_NUMBERS: &[i128] = &[0, -1, 1, 65535, 65536, 99999, 4096, 4097, i64::MAX as i128, u64::MAX as i128];

/// A hostile value for a field that holds `original`: mostly of the same
/// JSON type (so the spec still parses and reaches validation), sometimes of
/// another.
pub fn hostile_like(original: &Value, pick: usize, text: &str) -> Value {
    let other = || match pick % 4 {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!([]),
        _ => json!({}),
    };
    if pick % 10 == 9 {
        return other();
    }
    match original {
        Value::String(_) if pick.is_multiple_of(3) => Value::from(text),
        Value::String(_) => Value::from(HOSTILE_TEXT[pick % HOSTILE_TEXT.len()]),
        Value::Number(_) => json!(HOSTILE_NUMBERS[pick % HOSTILE_NUMBERS.len()]),
        Value::Bool(b) => json!(!b),
        Value::Array(a) if pick.is_multiple_of(2) => {
            let mut a = a.clone();
            if let Some(first) = a.first().cloned() {
                a.push(first);
            }
            Value::Array(a)
        }
        Value::Array(_) => json!([]),
        Value::Object(m) => {
            let mut m = m.clone();
            m.insert("privileged".into(), json!(true));
            Value::Object(m)
        }
        Value::Null => other(),
    }
}

/// Every path (object keys and array indexes) in `v`, parents first.
fn paths(v: &Value, here: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let mut p = here.clone();
                p.push(PathStep::Key(k.clone()));
                paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(PathStep::Index(i));
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        PathStep::Key(k) => v.get_mut(k.as_str()),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// `seed` with one to three of its values replaced by hostile ones.
pub fn mutated(seed: Value) -> impl Strategy<Value = Value> {
    let mut all = Vec::new();
    paths(&seed, Vec::new(), &mut all);
    // The root itself is never replaced: the specs stay objects.
    let n = all.len();
    prop::collection::vec((1..n, any::<usize>(), ".{0,24}"), 1..4).prop_map(move |edits| {
        let mut v = seed.clone();
        for (i, pick, text) in edits {
            if let Some(target) = at(&mut v, &all[i]) {
                *target = hostile_like(target, pick, &text);
            }
        }
        v
    })
}
