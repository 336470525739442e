//! The installation's policy for templates: what a template may relax of the
//! hardened pod Paddock builds (capabilities, runtime class, Secrets its
//! environment reads). Templates are the admin's, but Paddock promises
//! hardened, sandboxed pods to everyone who runs them, so a template that
//! asks for more than the installation allows is not Accepted, and the
//! reasons name the field and the setting that would allow it.
//!
//! The structural rules that hold whatever the settings (no probe hosts, no
//! mounts over system directories, well-formed image references and
//! capability names) are in [`crate::template::TemplateSpec::validate`].

use crate::FieldProblem;
use crate::template::{CAPABILITIES, TemplateSpec};

/// Secrets in a tenant's namespace that Paddock makes itself; no template
/// reads them, whatever the allow-list says (`vpn` holds the WireGuard
/// server's private key).
pub const PADDOCK_SECRETS: &[&str] = &["vpn"];

/// What the installation lets templates relax (from the settings).
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplatePolicy<'a> {
    /// The installation's runtime class (`--runtime-class`), if any.
    pub runtime_class: Option<&'a str>,
    /// Other runtime classes a template may choose (`--template-runtime-classes`).
    pub runtime_classes: &'a [String],
    /// Capabilities a template may add back (`--template-capabilities`; `ALL` allows any).
    pub capabilities: &'a [String],
    /// Secrets of the tenant's namespace a template's env may read (`--template-secrets`).
    pub secrets: &'a [String],
}

impl TemplatePolicy<'_> {
    fn capability_allowed(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap || c == "ALL")
    }

    /// Whether a template may run its pods with `class`: the installation's
    /// own, one the settings list, or any when the installation names none
    /// (a template then cannot run weaker than the cluster's default).
    fn runtime_class_allowed(&self, class: &str) -> bool {
        match self.runtime_class {
            None => true,
            Some(own) => own == class || self.runtime_classes.iter().any(|c| c == class),
        }
    }
}

impl TemplateSpec {
    /// Every problem with the spec ([`TemplateSpec::validate`]) and every
    /// relaxation `policy` does not allow, each naming its field.
    pub fn validate_for(&self, policy: &TemplatePolicy) -> Vec<FieldProblem> {
        let mut out = self.validate();
        out.extend(self.policy_problems(policy));
        out
    }

    /// What the spec asks for beyond `policy`.
    pub fn policy_problems(&self, policy: &TemplatePolicy) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        if let Some(class) = &self.runtime_class_name
            && !policy.runtime_class_allowed(class)
        {
            out.push(FieldProblem::new(
                "spec.runtimeClassName",
                format!(
                    "{class:?} would replace the installation's runtime class {:?}; templates may choose only classes \
                     listed in --template-runtime-classes (PADDOCK_TEMPLATE_RUNTIME_CLASSES)",
                    policy.runtime_class.unwrap_or_default()
                ),
            ));
        }
        for (i, p) in self.pods.iter().enumerate() {
            for (j, cap) in p.security.capabilities.iter().enumerate() {
                if CAPABILITIES.contains(&cap.as_str()) && !policy.capability_allowed(cap) {
                    out.push(FieldProblem::new(
                        format!("spec.pods[{i}].security.capabilities[{j}]"),
                        format!(
                            "{cap} is not allowed by the installation (--template-capabilities, \
                             PADDOCK_TEMPLATE_CAPABILITIES, allows: {})",
                            listed(policy.capabilities)
                        ),
                    ));
                }
            }
            for (j, e) in p.env.iter().enumerate() {
                let Some(s) = &e.secret else { continue };
                let paddocks = PADDOCK_SECRETS.contains(&s.name.as_str());
                if paddocks || !policy.secrets.contains(&s.name) {
                    let why = if paddocks {
                        "is Paddock's own Secret and never readable by a template".to_string()
                    } else {
                        format!(
                            "is not a Secret templates may read (--template-secrets, PADDOCK_TEMPLATE_SECRETS, \
                             allows: {})",
                            listed(policy.secrets)
                        )
                    };
                    out.push(FieldProblem::new(
                        format!("spec.pods[{i}].env[{j}].secret.name"),
                        format!("{:?} {why}", s.name),
                    ));
                }
            }
        }
        out
    }

    /// What a reader of an isolation report should know the template
    /// relaxes: capabilities, a runtime class other than the installation's,
    /// root or a writable root filesystem, env from Secrets. One line each.
    pub fn relaxations(&self, installation_runtime_class: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(class) = &self.runtime_class_name
            && Some(class.as_str()) != installation_runtime_class
        {
            out.push(format!(
                "runs with runtime class {class:?} instead of the installation's ({})",
                installation_runtime_class.unwrap_or("the cluster's default")
            ));
        }
        for p in &self.pods {
            if !p.security.capabilities.is_empty() {
                out.push(format!("pod {}: adds capabilities {}", p.name, p.security.capabilities.join(", ")));
            }
            if p.security.run_as_root {
                out.push(format!("pod {}: may run as root", p.name));
            }
            if p.security.writable_root_filesystem {
                out.push(format!("pod {}: has a writable root filesystem", p.name));
            }
            for e in &p.env {
                if let Some(s) = &e.secret {
                    out.push(format!("pod {}: {} reads Secret {}/{}", p.name, e.name, s.name, s.key));
                }
            }
        }
        out
    }
}

fn listed(items: &[String]) -> String {
    if items.is_empty() { "none".to_string() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_default_policy_allows_no_relaxation() {
        let s = spec(json!({"runtimeClassName": "runc", "pods": [{"name": "a", "image": "busybox",
            "security": {"capabilities": ["SYS_ADMIN"]},
            "env": [{"name": "K", "secret": {"name": "vpn", "key": "privateKey"}},
                    {"name": "T", "secret": {"name": "ci-token", "key": "t"}}]}]}));
        let gvisor = TemplatePolicy { runtime_class: Some("gvisor"), ..Default::default() };
        let p: Vec<String> = s.policy_problems(&gvisor).iter().map(|p| p.field.clone()).collect();
        assert_eq!(
            p,
            [
                "spec.runtimeClassName",
                "spec.pods[0].security.capabilities[0]",
                "spec.pods[0].env[0].secret.name",
                "spec.pods[0].env[1].secret.name"
            ]
        );
    }

    #[test]
    fn the_settings_allow_what_they_list_but_never_paddocks_secrets() {
        let s = spec(json!({"runtimeClassName": "kata", "pods": [{"name": "a", "image": "busybox",
            "security": {"capabilities": ["NET_BIND_SERVICE"]},
            "env": [{"name": "K", "secret": {"name": "vpn", "key": "privateKey"}},
                    {"name": "T", "secret": {"name": "ci-token", "key": "t"}}]}]}));
        let (classes, caps, secrets) = (
            vec!["kata".to_string()],
            vec!["NET_BIND_SERVICE".to_string()],
            vec!["ci-token".to_string(), "vpn".to_string()],
        );
        let policy = TemplatePolicy {
            runtime_class: Some("gvisor"),
            runtime_classes: &classes,
            capabilities: &caps,
            secrets: &secrets,
        };
        let p = s.policy_problems(&policy);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "spec.pods[0].env[0].secret.name");
        assert!(p[0].reason.contains("Paddock's own Secret"), "{}", p[0].reason);
        // No installation class: a template may name any.
        assert!(
            spec(json!({"runtimeClassName": "runc", "pods": [{"name": "a", "image": "b"}]}))
                .policy_problems(&TemplatePolicy::default())
                .is_empty()
        );
    }
}
