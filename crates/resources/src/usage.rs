//! What pods use of a tenant's quota (pods, cpu and memory requests), and
//! the rules that compare it with `spec.quota`: whether a start fits now
//! ([`exceeded`]), or could ever fit ([`beyond`]). Pure: the API's start
//! check and the reconcilers' admission use the same functions.

use crate::Tenant;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use quantity::Quantity;

/// The VPN server pod's requests (a tenant with a VPN always uses them).
pub const VPN_CPU_REQUEST: &str = "50m";
pub const VPN_MEMORY_REQUEST: &str = "32Mi";

/// Pod count and cpu/memory requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub pods: i128,
    pub cpu: Quantity,
    pub memory: Quantity,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage { pods: self.pods + o.pods, cpu: self.cpu + o.cpu, memory: self.memory + o.memory }
    }
}

impl Usage {
    /// What one pod spec asks for; containers without a request count the
    /// defaults (as the namespace's LimitRange would fill them in).
    pub fn of_spec(spec: &PodSpec, default_cpu: Quantity, default_memory: Quantity) -> Usage {
        let mut u = Usage { pods: 1, ..Default::default() };
        for c in &spec.containers {
            let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let get = |k: &str| req.and_then(|r| r.get(k)).and_then(|q| Quantity::parse(&q.0));
            u.cpu = u.cpu + get("cpu").unwrap_or(default_cpu);
            u.memory = u.memory + get("memory").unwrap_or(default_memory);
        }
        u
    }

    pub fn of_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Usage {
        pods.into_iter()
            .filter(|p| counts(p))
            .filter_map(|p| p.spec.as_ref())
            .map(|s| Usage::of_spec(s, Quantity::ZERO, Quantity::ZERO))
            .fold(Usage::default(), |a, b| a + b)
    }
}

impl Usage {
    /// What a ResourceQuota's `status.used` says its namespace uses, when
    /// it counts what the tenant's quota limits (pods, and cpu and memory
    /// requests where the quota has them).
    pub fn of_quota(q: &k8s_openapi::api::core::v1::ResourceQuota) -> Option<Usage> {
        let status = q.status.as_ref()?;
        let (hard, used) = (status.hard.as_ref()?, status.used.as_ref()?);
        let read = |keys: &[&str]| -> Option<Option<Quantity>> {
            let Some(key) = keys.iter().find(|k| hard.contains_key(**k)) else { return Some(None) };
            Some(Some(Quantity::parse(&used.get(*key)?.0)?))
        };
        let pods = read(&["pods"])??;
        let cpu = read(&["requests.cpu", "cpu"])?.unwrap_or_default();
        let memory = read(&["requests.memory", "memory"])?.unwrap_or_default();
        Some(Usage { pods: pods.units_ceil(), cpu, memory })
    }
}

/// Whether a pod still holds quota (upstream: not Succeeded or Failed).
fn counts(p: &Pod) -> bool {
    !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// One part of a tenant's quota that `used + more` goes over, rendered.
struct Over {
    what: &'static str,
    used: String,
    more: String,
    max: String,
}

/// The parts of the tenant's quota (pods, cpu, memory) `used + more` goes over.
fn over(tenant: &Tenant, used: Usage, more: Usage) -> Vec<Over> {
    let q = &tenant.spec.quota;
    let mut out = Vec::new();
    if let Some(max) = q.pods
        && used.pods + more.pods > i128::from(max)
    {
        let (used, more, max) = (used.pods.to_string(), more.pods.to_string(), max.to_string());
        out.push(Over { what: "pods", used, more, max });
    }
    for (what, limit, u, m, bytes) in
        [("cpu", &q.cpu, used.cpu, more.cpu, false), ("memory", &q.memory, used.memory, more.memory, true)]
    {
        if let Some(max) = limit.as_deref().and_then(Quantity::parse)
            && u + m > max
        {
            out.push(Over { what, used: u.render(bytes), more: m.render(bytes), max: max.render(bytes) });
        }
    }
    out
}

/// Why `more` does not fit the tenant's quota on top of `used`, if it does not.
pub fn exceeded(tenant: &Tenant, used: Usage, more: Usage) -> Option<String> {
    let why: Vec<String> = over(tenant, used, more)
        .iter()
        .map(|o| format!("{}: {} in use + {} needed > {}", o.what, o.used, o.more, o.max))
        .collect();
    (!why.is_empty()).then(|| {
        format!("tenant {:?} is at its quota ({})", tenant.metadata.name.clone().unwrap_or_default(), why.join("; "))
    })
}

/// What the tenant's own infrastructure always uses of its quota: the VPN
/// server pod, when it has a VPN.
pub fn standing(tenant: &Tenant) -> Usage {
    if !tenant.spec.vpn.as_ref().is_some_and(|v| v.enabled) {
        return Usage::default();
    }
    let q = |s: &str| Quantity::parse(s).unwrap_or(Quantity::ZERO);
    Usage { pods: 1, cpu: q(VPN_CPU_REQUEST), memory: q(VPN_MEMORY_REQUEST) }
}

/// Why an instance that needs `need` can never start under the tenant's
/// quota as it is — it needs more than the quota leaves beside the tenant's
/// own infrastructure (its VPN), with no other instance running — if so;
/// `who` is what needs it ("it", a template's name).
pub fn beyond(tenant: &Tenant, need: Usage, who: &str) -> Option<String> {
    let base = standing(tenant);
    let parts = over(tenant, base, need);
    let needs: Vec<String> = parts.iter().map(|o| format!("{} {}", o.what, o.more)).collect();
    let quota: Vec<String> = parts
        .iter()
        .map(|o| {
            let vpn = if base.pods > 0 { format!(", {} of it for its VPN", o.used) } else { String::new() };
            format!("spec.quota.{} {}{vpn}", o.what, o.max)
        })
        .collect();
    let whole = if base.pods > 0 { "quota beside its VPN" } else { "whole quota" };
    (!parts.is_empty()).then(|| {
        format!(
            "{who} needs {}, more than tenant {:?}'s {whole} ({}); it can start only once the quota is raised",
            needs.join(" and "),
            tenant.metadata.name.clone().unwrap_or_default(),
            quota.join("; ")
        )
    })
}

/// The least a template's instance asks for: its pods and their declared
/// requests (a pod that declares none gets the namespace's defaults, which
/// only add to this).
pub fn template_floor(spec: &crate::TemplateSpec) -> Usage {
    spec.pods.iter().fold(Usage::default(), |u, p| {
        let req = p.resources.as_ref().and_then(|r| r.requests.as_ref());
        let get = |k: &str| req.and_then(|r| r.get(k)).and_then(|q| Quantity::parse(&q.0)).unwrap_or(Quantity::ZERO);
        u + Usage { pods: 1, cpu: get("cpu"), memory: get("memory") }
    })
}

/// Whether the tenant's quota limits pods, cpu or memory at all (nothing to count otherwise).
pub fn limits_pods(tenant: &Tenant) -> bool {
    let q = &tenant.spec.quota;
    q.pods.is_some() || q.cpu.is_some() || q.memory.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cpu: Option<&str>, phase: &str) -> Pod {
        let res = cpu.map(|c| json!({"requests": {"cpu": c, "memory": "64Mi"}})).unwrap_or(json!({}));
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": res}]},
            "status": {"phase": phase}}),
        )
        .unwrap()
    }

    #[test]
    fn a_quotas_status_says_what_its_namespace_uses() {
        let q = |status: serde_json::Value| -> k8s_openapi::api::core::v1::ResourceQuota {
            serde_json::from_value(json!({"metadata": {"name": "q"}, "status": status})).unwrap()
        };
        let full =
            q(json!({"hard": {"pods": "10", "requests.cpu": "4"}, "used": {"pods": "3", "requests.cpu": "1500m"}}));
        let u = Usage::of_quota(&full).unwrap();
        assert_eq!((u.pods, u.cpu, u.memory), (3, Quantity(1500), Quantity::ZERO));
        // Not yet computed, or not counting pods: not known from it.
        assert!(Usage::of_quota(&q(json!({"hard": {"pods": "10"}}))).is_none());
        assert!(
            Usage::of_quota(&q(json!({"hard": {"pods": "10", "requests.cpu": "4"}, "used": {"pods": "3"}}))).is_none()
        );
        assert!(Usage::of_quota(&q(json!({"hard": {"requests.cpu": "4"}, "used": {"requests.cpu": "1"}}))).is_none());
    }

    #[test]
    fn usage_counts_live_pods_and_names_what_is_over() {
        let pods = [pod(Some("500m"), "Running"), pod(Some("1"), "Pending"), pod(Some("4"), "Failed")];
        let used = Usage::of_pods(&pods);
        assert_eq!((used.pods, used.cpu, used.memory), (2, Quantity(1500), Quantity::parse("128Mi").unwrap()));
        let tenant: Tenant = serde_json::from_value(
            json!({"metadata": {"name": "t"}, "spec": {"kind": "Team", "quota": {"pods": 3, "cpu": "2"}}}),
        )
        .unwrap();
        let spec = pod(None, "Pending").spec.unwrap();
        let more = Usage::of_spec(&spec, Quantity::parse("100m").unwrap(), Quantity::parse("128Mi").unwrap());
        assert_eq!(exceeded(&tenant, used, more), None);
        let big = Usage { pods: 2, cpu: Quantity::parse("1").unwrap(), memory: Quantity::ZERO };
        let why = exceeded(&tenant, used, big).unwrap();
        assert!(
            why.contains("pods: 2 in use + 2 needed > 3") && why.contains("cpu: 1500m in use + 1 needed > 2"),
            "{why}"
        );
    }

    #[test]
    fn an_instance_bigger_than_the_whole_quota_is_told_apart() {
        let tenant: Tenant = serde_json::from_value(
            json!({"metadata": {"name": "t"}, "spec": {"kind": "Team", "quota": {"pods": 3, "cpu": "300m"}}}),
        )
        .unwrap();
        let tpl: crate::TemplateSpec = serde_json::from_value(json!({"pods": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"name": "b", "image": "x", "resources": {"requests": {"cpu": "250m"}}},
            {"name": "c", "image": "x"}]}))
        .unwrap();
        let need = template_floor(&tpl);
        assert_eq!((need.pods, need.cpu, need.memory), (3, Quantity(500), Quantity::parse("1Gi").unwrap()));
        let why = beyond(&tenant, need, "it").unwrap();
        assert_eq!(
            why,
            "it needs cpu 500m, more than tenant \"t\"'s whole quota (spec.quota.cpu 300m); \
             it can start only once the quota is raised"
        );
        let small = Usage { pods: 3, cpu: Quantity(300), memory: Quantity::ZERO };
        assert_eq!(beyond(&tenant, small, "it"), None, "fits when nothing else runs");
        let four = Usage { pods: 4, ..small };
        assert!(beyond(&tenant, four, "it").unwrap().starts_with("it needs pods 4, more than"));
        // A tenant with a VPN has its server pod's share less.
        let mut vpn = tenant.clone();
        vpn.spec.vpn = Some(serde_json::from_value(json!({"enabled": true})).unwrap());
        assert_eq!(
            beyond(&vpn, small, "it").unwrap(),
            "it needs pods 3 and cpu 300m, more than tenant \"t\"'s quota beside its VPN \
             (spec.quota.pods 3, 1 of it for its VPN; spec.quota.cpu 300m, 50m of it for its VPN); \
             it can start only once the quota is raised"
        );
    }
}
