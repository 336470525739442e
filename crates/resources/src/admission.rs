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
