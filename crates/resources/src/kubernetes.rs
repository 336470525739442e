//! The Kubernetes versions Paddock supports, and its CRDs as a given version
//! can take them.
//!
//! A CRD's `x-kubernetes-validations` rules are compiled by the API server
//! when the CRD is applied, with the CEL libraries of that server's version:
//! a rule that calls a library the server does not have (the quantity
//! library before 1.29) gets the whole CRD refused. So the CRDs are made for
//! the server they go to: rules it cannot compile are left out, and the same
//! rule is enforced elsewhere (each rule's entry in [`RULES`] says where).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use std::fmt;

/// A Kubernetes minor version (`1.28`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Reads `1.28`, `v1.28.7`, `1.28.7-gke.100` and the like.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let mut parts = s.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }

    /// The version an API server reports (`/version`): its major and minor
    /// fields (`"28+"` on some distributions), else its gitVersion.
    pub fn of_server(info: &k8s_openapi::apimachinery::pkg::version::Info) -> Option<Self> {
        let digits = |s: &str| s.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u32>().ok();
        match (digits(&info.major), digits(&info.minor)) {
            (Some(major), Some(minor)) => Some(Self { major, minor }),
            _ => Self::parse(&info.git_version),
        }
    }

    /// Whether Paddock supports it, and if not, why, in a sentence.
    pub fn support(&self) -> Result<(), String> {
        if *self < OLDEST {
            return Err(format!(
                "Kubernetes {self} is older than Paddock supports ({OLDEST} to {NEWEST}); upgrade the cluster"
            ));
        }
        if *self > NEWEST {
            return Err(format!(
                "Kubernetes {self} is newer than Paddock is tested with ({OLDEST} to {NEWEST}); it will likely work"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest Kubernetes Paddock supports (and the CRDs compile on).
pub const OLDEST: Version = Version::new(1, 28);
/// The newest Kubernetes Paddock is tested with (its client's API version).
pub const NEWEST: Version = Version::new(1, 33);

/// CEL libraries Paddock's rules call, the version that brought each, and
/// what enforces the rule on servers without it.
pub const RULES: &[(&str, Version, &str)] = &[(
    "quantity(",
    Version::new(1, 29),
    "storage that shrinks: the API's PATCH refuses it (422 on spec.storage.size) and the tenant reconciler shows \
     the claim's refusal as StorageShrinkRefused",
)];

/// Whether a server of `version` can compile `rule`.
pub fn compiles(rule: &str, version: Version) -> bool {
    RULES.iter().all(|(call, since, _)| !rule.contains(call) || version >= *since)
}

/// Every CRD Paddock installs, as a server of `version` can take them.
pub fn crds_for(version: Version) -> Vec<CustomResourceDefinition> {
    crate::crds()
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(&crd).unwrap_or(Value::Null);
            drop_rules(&mut v, version);
            serde_json::from_value(v).unwrap_or(crd)
        })
        .collect()
}

/// Removes, anywhere in `v`, the validation rules a server of `version`
/// cannot compile (and an emptied rule list with them).
fn drop_rules(v: &mut Value, version: Version) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get_mut("x-kubernetes-validations") {
                rules.retain(|r| r.get("rule").and_then(Value::as_str).is_none_or(|rule| compiles(rule, version)));
                if rules.is_empty() {
                    m.remove("x-kubernetes-validations");
                }
            }
            m.values_mut().for_each(|x| drop_rules(x, version));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| drop_rules(x, version)),
        _ => {}
    }
}

/// The CRDs for `version` as a multi-document YAML stream.
pub fn crds_yaml_for(version: Version) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds_for(version) {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(crds: &[CustomResourceDefinition]) -> Vec<String> {
        let text = serde_json::to_string(crds).unwrap();
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\"rule\":\"") {
            rest = &rest[i + 8..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        }
        out
    }

    #[test]
    fn versions_read_as_servers_write_them() {
        assert_eq!(Version::parse("v1.28.7"), Some(Version::new(1, 28)));
        assert_eq!(Version::parse("1.29"), Some(Version::new(1, 29)));
        assert_eq!(Version::parse("1.30.2-gke.1"), Some(Version::new(1, 30)));
        assert_eq!(Version::parse("latest"), None);
        let info = k8s_openapi::apimachinery::pkg::version::Info {
            major: "1".into(),
            minor: "28+".into(),
            git_version: "v1.28.7-eks".into(),
            ..Default::default()
        };
        assert_eq!(Version::of_server(&info), Some(Version::new(1, 28)));
        assert!(Version::new(1, 27).support().unwrap_err().contains("older"));
        assert!(Version::new(1, 28).support().is_ok());
    }

    #[test]
    fn a_server_gets_only_the_rules_it_can_compile() {
        let old = rules(&crds_for(Version::new(1, 28)));
        assert!(old.iter().all(|r| !r.contains("quantity(")), "{old:?}");
        let new = rules(&crds_for(Version::new(1, 29)));
        assert!(new.iter().any(|r| r.contains("quantity(")), "{new:?}");
        assert_eq!(crds_for(NEWEST).len(), crate::crds().len());
    }
}
