//! Whether a Template may start instances and whether an Instance fits its
//! Template: the rules the API checks when a start is asked and the
//! reconcilers check again, written once (they read only the objects and the
//! installation's policy, so both sides and the tests call them without a
//! cluster).

use crate::policy::TemplatePolicy;
use crate::template::parse_duration;
use crate::tenant::NodeRole;
use crate::{FieldProblem, Instance, Template};
use kube::ResourceExt;
use std::time::Duration;

/// The template's own problems under the installation's `policy`, and those
/// that keep it off vpn nodes, named for the template.
pub fn template_problems(tpl: &Template, policy: &TemplatePolicy) -> Vec<FieldProblem> {
    let mut problems: Vec<FieldProblem> = tpl
        .spec
        .validate_for(policy)
        .into_iter()
        .map(|p| FieldProblem::new(format!("template {}: {}", tpl.name_any(), p.field), p.reason))
        .collect();
    if tpl.spec.node_role == Some(NodeRole::Vpn) {
        problems.push(FieldProblem::new(
            format!("template {}: spec.nodeRole", tpl.name_any()),
            "instances run on task or shared nodes, not vpn nodes",
        ));
    }
    problems
}

/// The longest lifetime an instance of `tpl` may ask for or be renewed to:
/// the template's `maxTtl`, or else the installation's cap
/// (`installation_max`, `--max-instance-ttl`); with the words that say which.
pub fn longest_ttl(tpl: &Template, installation_max: Duration) -> (Duration, String) {
    match tpl.spec.max_ttl.as_deref().and_then(parse_duration) {
        Some(max) => (max, format!("the template's maxTtl {}", crate::duration::format(max))),
        None => (
            installation_max,
            format!(
                "the installation's longest instance lifetime, {} (the template sets no maxTtl)",
                crate::duration::format(installation_max)
            ),
        ),
    }
}

/// What is wrong with an instance of `template`: its name, its overrides,
/// its lifetime.
pub fn instance_problems(template: &Template, instance: &Instance, installation_max: Duration) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    let name = instance.metadata.name.as_deref().unwrap_or_default();
    if !name.is_empty() && template.spec.makes_services() && !crate::template::starts_with_letter(name) {
        out.push(FieldProblem::new(
            "metadata.name",
            format!(
                "{name:?} must start with a letter: template {:?} exposes ports, and its instances' Services are named \
                 after them (Service names are DNS-1035 labels)",
                template.name_any()
            ),
        ));
    }
    let settable: std::collections::BTreeSet<&str> = template
        .spec
        .pods
        .iter()
        .flat_map(|p| p.env.iter())
        .filter(|e| e.overridable)
        .map(|e| e.name.as_str())
        .collect();
    for name in instance.spec.env.keys() {
        if !settable.contains(name.as_str()) {
            let may = if settable.is_empty() {
                "none".to_string()
            } else {
                settable.iter().copied().collect::<Vec<_>>().join(", ")
            };
            out.push(FieldProblem::new(
                format!("spec.env.{name}"),
                format!("template {:?} does not let instances set {name} (they may set: {may})", template.name_any()),
            ));
        }
    }
    if let Some(ttl) = &instance.spec.ttl {
        let (max, bound) = longest_ttl(template, installation_max);
        if let Err(p) = crate::duration::within("spec.ttl", ttl, max, &bound) {
            out.push(p);
        }
    }
    out
}

/// The pods' hard deadline in seconds: the longest lifetime a renewal may
/// reach (upstream only lets activeDeadlineSeconds shrink); the reconciler
/// enforces the actual ttl.
pub fn deadline(tpl: &Template, ttl: Option<&str>) -> Option<u64> {
    tpl.spec.max_ttl.as_deref().or(ttl).or(tpl.spec.ttl.as_deref()).and_then(parse_duration).map(|d| d.as_secs())
}

/// Why an instance may not start, or not go on: the rule it broke, typed,
/// so the API (a problem type and status code) and the reconciler (a
/// condition reason) choose their answer from the kind, never from text.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The template is being deleted: no new instance of it starts.
    TemplateDeleting { template: String },
    /// The tenant runs `running` instances of the template (those before
    /// this one), and the template's `maxPerTenant` is `max`.
    LimitReached { template: String, running: usize, max: u32 },
    /// The template is not valid under the installation's policy.
    TemplateInvalid(Vec<FieldProblem>),
    /// The instance does not fit its template (name, overrides, lifetime).
    InvalidSpec(Vec<FieldProblem>),
}

impl Refusal {
    /// The reason an Instance's conditions name for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TemplateDeleting { .. } => "TemplateDeleting",
            Refusal::LimitReached { .. } => "LimitReached",
            Refusal::TemplateInvalid(_) => "TemplateInvalid",
            Refusal::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ps: &[FieldProblem]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
        match self {
            Refusal::TemplateDeleting { template } => {
                write!(f, "template {template:?} is being deleted: no new instance of it starts")
            }
            Refusal::LimitReached { template, running, max } => write!(
                f,
                "the tenant already runs {running} instance(s) of {template:?}, and the template's maxPerTenant is {max}"
            ),
            Refusal::TemplateInvalid(ps) | Refusal::InvalidSpec(ps) => f.write_str(&list(ps)),
        }
    }
}

/// Refused when the template is being deleted.
pub fn not_deleting(tpl: &Template) -> Result<(), Refusal> {
    match tpl.metadata.deletion_timestamp {
        Some(_) => Err(Refusal::TemplateDeleting { template: tpl.name_any() }),
        None => Ok(()),
    }
}

/// Refused when `ahead` instances of the template (the tenant's, started
/// before this one and not being stopped) already fill its `maxPerTenant`.
pub fn within_limit(tpl: &Template, ahead: usize) -> Result<(), Refusal> {
    let max = tpl.spec.max_per_tenant;
    if ahead >= max as usize {
        return Err(Refusal::LimitReached { template: tpl.name_any(), running: ahead, max });
    }
    Ok(())
}

/// Refused when the template has problems under `policy`, or else the
/// instance does not fit it; the template's own problems come first.
pub fn valid(tpl: &Template, inst: &Instance, policy: &TemplatePolicy, max_ttl: Duration) -> Result<(), Refusal> {
    let broken = template_problems(tpl, policy);
    if !broken.is_empty() {
        let mut all = broken;
        all.extend(instance_problems(tpl, inst, max_ttl));
        return Err(Refusal::TemplateInvalid(all));
    }
    let problems = instance_problems(tpl, inst, max_ttl);
    if !problems.is_empty() {
        return Err(Refusal::InvalidSpec(problems));
    }
    Ok(())
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use serde_json::json;

    fn template(max: u32, deleting: bool) -> Template {
        let mut meta = json!({"name": "web"});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(
            json!({"metadata": meta, "spec": {"maxPerTenant": max, "pods": [{"name": "a", "image": "x"}]}}),
        )
        .unwrap()
    }

    #[test]
    fn each_rule_refuses_with_its_own_kind_and_reason() {
        assert_eq!(not_deleting(&template(1, false)), Ok(()));
        let gone = not_deleting(&template(1, true)).unwrap_err();
        assert_eq!(gone.reason(), "TemplateDeleting");
        assert_eq!(gone.to_string(), "template \"web\" is being deleted: no new instance of it starts");
        assert_eq!(within_limit(&template(2, false), 1), Ok(()));
        let full = within_limit(&template(2, false), 2).unwrap_err();
        assert_eq!(full, Refusal::LimitReached { template: "web".into(), running: 2, max: 2 });
        assert_eq!(full.reason(), "LimitReached");
        let policy = TemplatePolicy::default();
        let inst: Instance = serde_json::from_value(json!({"metadata": {"name": "i"},
            "spec": {"template": "web", "env": {"NOPE": "1"}}}))
        .unwrap();
        let bad = valid(&template(1, false), &inst, &policy, Duration::from_secs(3600)).unwrap_err();
        assert_eq!(bad.reason(), "InvalidSpec");
        assert!(bad.to_string().contains("spec.env.NOPE"), "{bad}");
    }
}
