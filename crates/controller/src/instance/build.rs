//! The pure build step of the instance reconciler: template + tenant +
//! instance → pods (hardened), the instance Secret and ConfigMaps, Services and
//! NetworkPolicies. Generated secret values come in from outside, so the
//! build stays deterministic.

use crate::config::Settings;
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER, TEMPLATE, TENANT};
use crate::noderoles::placement_on;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Resource, ResourceExt};
use resources::template::{ExposureType, Generate, TEAMNET, parse_duration};
use resources::tenant::NodeRole;
use resources::{FieldProblem, Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const POD_LABEL: &str = "paddock.dev/pod";

/// Builds an object's metadata: name and extra labels.
type MetaFn<'a> = dyn Fn(&str, &[(String, String)]) -> Value + 'a;

/// Everything one instance consists of.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub secret: Option<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub policies: Vec<NetworkPolicy>,
}

pub struct Input<'a> {
    pub template: &'a Template,
    pub tenant: &'a Tenant,
    pub instance: &'a Instance,
    pub settings: &'a Settings,
    pub any_node_has_role: bool,
    /// Values of generated variables, keyed `<pod>.<VARIABLE>` (see [`generated_keys`]).
    pub generated: &'a BTreeMap<String, String>,
}

pub fn net_label(network: &str) -> String {
    format!("paddock.dev/net-{network}")
}

/// Keys of the values the instance Secret must hold, with how to make each.
pub fn generated_keys(t: &Template) -> Vec<(String, Generate)> {
    t.spec
        .pods
        .iter()
        .flat_map(|p| {
            p.env.iter().filter_map(move |e| e.generate.clone().map(|g| (format!("{}.{}", p.name, e.name), g)))
        })
        .collect()
}

/// Makes a value for a generated variable from a source of random indexes.
pub fn generate_value(g: &Generate, mut random_index: impl FnMut(usize) -> usize) -> String {
    const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |chars: &[char], n: usize, r: &mut dyn FnMut(usize) -> usize| -> String {
        (0..n).map(|_| chars[r(chars.len())]).collect()
    };
    match g {
        Generate::Random { length, charset } => {
            let chars: Vec<char> = charset.as_deref().unwrap_or(ALNUM).chars().collect();
            pick(&chars, *length as usize, &mut random_index)
        }
        Generate::Flag { format } => {
            let hex: Vec<char> = "0123456789abcdef".chars().collect();
            format.replacen("%s", &pick(&hex, 32, &mut random_index), 1)
        }
    }
}

fn typed<K: DeserializeOwned>(v: Value) -> Result<K, Vec<FieldProblem>> {
    serde_json::from_value(v)
        .map_err(|e| vec![FieldProblem::new("spec", format!("cannot build the instance's objects: {e}"))])
}

/// Checks an instance against its template (overrides, lifetime).
pub fn validate(template: &Template, instance: &Instance) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    for name in instance.spec.env.keys() {
        let overridable =
            template.spec.pods.iter().flat_map(|p| p.env.iter()).any(|e| &e.name == name && e.overridable);
        if !overridable {
            out.push(FieldProblem::new(
                format!("spec.env.{name}"),
                format!("template {:?} does not let instances set {name}", template.name_any()),
            ));
        }
    }
    if let Some(ttl) = &instance.spec.ttl {
        match parse_duration(ttl) {
            None => out.push(FieldProblem::new("spec.ttl", format!("{ttl:?} is not a duration (like 90s, 15m, 2h)"))),
            Some(d) => {
                if let Some(max) = template.spec.max_ttl.as_deref().and_then(parse_duration)
                    && d > max
                {
                    out.push(FieldProblem::new(
                        "spec.ttl",
                        format!(
                            "{ttl} is longer than the template's maxTtl {}",
                            template.spec.max_ttl.clone().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    }
    out
}

pub fn build(input: &Input) -> Result<Desired, Vec<FieldProblem>> {
    let (tpl, inst) = (input.template, input.instance);
    let mut problems: Vec<FieldProblem> = tpl
        .spec
        .validate()
        .into_iter()
        .map(|p| FieldProblem::new(format!("template {}: {}", tpl.name_any(), p.field), p.reason))
        .collect();
    problems.extend(validate(tpl, inst));
    if tpl.spec.node_role == Some(NodeRole::Vpn) {
        problems.push(FieldProblem::new(
            format!("template {}: spec.nodeRole", tpl.name_any()),
            "instances run on task or shared nodes, not vpn nodes",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let name = inst.name_any();
    let ns = inst.namespace().unwrap_or_default();
    let tenant = input.tenant.name_any();
    let owner = serde_json::to_value(inst.controller_owner_ref(&())).unwrap_or(Value::Null);
    let base_labels = json!({MANAGED_BY: MANAGER, TENANT: tenant, TEMPLATE: tpl.name_any(), INSTANCE: name});
    let meta = |obj_name: &str, extra: &[(String, String)]| {
        let mut labels = base_labels.clone();
        for (k, v) in extra {
            labels[k] = json!(v);
        }
        json!({"name": obj_name, "namespace": ns, "labels": labels, "ownerReferences": [owner]})
    };
    let secret_name = format!("{name}-secrets");
    let secret = if input.generated.is_empty() {
        None
    } else {
        Some(typed(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&secret_name, &[]), "type": "Opaque", "stringData": input.generated}),
        )?)
    };
    // The pods' hard deadline is the longest lifetime a renewal may reach (upstream
    // only lets activeDeadlineSeconds shrink); the janitor enforces the actual ttl.
    let ttl =
        tpl.spec.max_ttl.as_deref().or(inst.spec.ttl.as_deref()).or(tpl.spec.ttl.as_deref()).and_then(parse_duration);
    // Task pods go to task or shared nodes; a template (or else the tenant) may
    // narrow that to shared nodes only.
    let roles: &[&str] = match tpl.spec.node_role.or(input.tenant.spec.node_role) {
        Some(NodeRole::Shared) => &["shared"],
        _ => &["task", "shared"],
    };
    let place = placement_on(roles, input.any_node_has_role, input.settings.strict_node_roles);
    let runtime_class = tpl.spec.runtime_class_name.clone().or(input.settings.runtime_class.clone());
    let mut pods = Vec::new();
    let mut config_maps = Vec::new();
    let mut services = Vec::new();
    for p in &tpl.spec.pods {
        let mut extra = vec![(POD_LABEL.to_string(), p.name.clone())];
        extra.extend(p.networks.iter().map(|n| (net_label(n), "true".to_string())));
        let env: Vec<Value> = p
            .env
            .iter()
            .map(|e| {
                if let Some(v) = inst.spec.env.get(&e.name).filter(|_| e.overridable) {
                    return json!({"name": e.name, "value": v});
                }
                match (&e.value, &e.secret, &e.generate) {
                    (Some(v), _, _) => json!({"name": e.name, "value": v}),
                    (_, Some(s), _) => json!({"name": e.name, "valueFrom": {"secretKeyRef": {"name": s.name, "key": s.key}}}),
                    _ => json!({"name": e.name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": format!("{}.{}", p.name, e.name)}}}),
                }
            })
            .collect();
        let mut caps = json!({"drop": ["ALL"]});
        if !p.security.capabilities.is_empty() {
            caps["add"] = json!(p.security.capabilities);
        }
        let mut container = json!({
            "name": p.name,
            "image": p.image,
            "env": env,
            "ports": p.ports.iter().map(|x| json!({"name": x.name, "containerPort": x.port, "protocol": x.protocol})).collect::<Vec<_>>(),
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": !p.security.writable_root_filesystem,
                "runAsNonRoot": !p.security.run_as_root, "capabilities": caps},
            "volumeMounts": []
        });
        if !p.command.is_empty() {
            container["command"] = json!(p.command);
        }
        if !p.args.is_empty() {
            container["args"] = json!(p.args);
        }
        for (k, v) in [
            ("resources", serde_json::to_value(&p.resources)),
            ("readinessProbe", serde_json::to_value(&p.readiness_probe)),
            ("livenessProbe", serde_json::to_value(&p.liveness_probe)),
        ] {
            if let Ok(v) = v
                && !v.is_null()
            {
                container[k] = v;
            }
        }
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        if let Some(path) = &p.mounts.tenant_storage {
            let claim = crate::tenant::build::storage_claim_name(input.tenant.spec.kind);
            volumes.push(json!({"name": "tenant-storage", "persistentVolumeClaim": {"claimName": claim}}));
            mounts.push(json!({"name": "tenant-storage", "mountPath": path}));
        }
        if let Some(path) = &p.mounts.group_storage {
            for g in &input.tenant.spec.groups {
                let vol = format!("group-{g}");
                volumes.push(
                    json!({"name": vol, "persistentVolumeClaim": {"claimName": crate::tenant::groups::claim_name(g)}}),
                );
                mounts.push(json!({"name": vol, "mountPath": format!("{}/{g}", path.trim_end_matches('/'))}));
            }
        }
        if let Some(cfg) = &p.mounts.config {
            let cm = format!("{name}-{}-config", p.name);
            config_maps.push(typed::<ConfigMap>(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&cm, &[]), "data": cfg.files}),
            )?);
            volumes.push(json!({"name": "config", "configMap": {"name": cm}}));
            mounts.push(json!({"name": "config", "mountPath": cfg.path, "readOnly": true}));
        }
        if let Some(size) = &p.scratch_size {
            volumes.push(json!({"name": "scratch", "emptyDir": {"sizeLimit": size}}));
            mounts.push(json!({"name": "scratch", "mountPath": "/tmp"}));
        }
        container["volumeMounts"] = json!(mounts);
        let mut spec = json!({
            "hostname": p.name,
            "subdomain": name,
            "restartPolicy": "Always",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "serviceAccountName": "tenant",
            "securityContext": {"runAsNonRoot": !p.security.run_as_root, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": volumes,
            "tolerations": serde_json::to_value(&place.tolerations).unwrap_or(json!([])),
        });
        if let Some(a) = &place.affinity {
            spec["affinity"] = serde_json::to_value(a).unwrap_or(Value::Null);
        }
        if let Some(rc) = &runtime_class {
            spec["runtimeClassName"] = json!(rc);
        }
        if let Some(s) = &input.settings.image_pull_secret {
            spec["imagePullSecrets"] = json!([{"name": s}]);
        }
        if let Some(d) = ttl {
            spec["activeDeadlineSeconds"] = json!(d.as_secs());
        }
        pods.push(typed::<Pod>(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&format!("{name}-{}", p.name), &extra), "spec": spec}))?);
        // NodePort / LoadBalancer exposure: a Service per pod with those ports.
        for kind in [ExposureType::NodePort, ExposureType::LoadBalancer] {
            let ports: Vec<Value> = p
                .ports
                .iter()
                .filter(|x| x.expose && tpl.spec.exposure_of(&p.name, &x.name) == kind)
                .map(|x| json!({"name": x.name, "port": x.port, "targetPort": x.name, "protocol": x.protocol}))
                .collect();
            if !ports.is_empty() {
                let t = if kind == ExposureType::NodePort { "NodePort" } else { "LoadBalancer" };
                let svc_name =
                    format!("{name}-{}{}", p.name, if kind == ExposureType::LoadBalancer { "-lb" } else { "" });
                services.push(typed::<Service>(
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&svc_name, &[]),
                    "spec": {"type": t, "selector": {INSTANCE: name, POD_LABEL: p.name}, "ports": ports}}),
                )?);
            }
        }
    }
    // A headless Service named after the instance: `<pod>.<instance>` resolves to each pod.
    let mut dns_ports: Vec<Value> = Vec::new();
    for p in &tpl.spec.pods {
        for x in &p.ports {
            if !dns_ports.iter().any(|d| d["name"] == json!(x.name)) {
                dns_ports.push(json!({"name": x.name, "port": x.port, "targetPort": x.name, "protocol": x.protocol}));
            }
        }
    }
    if !dns_ports.is_empty() {
        services.insert(0, typed(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&name, &[]),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {INSTANCE: name}, "ports": dns_ports}}))?);
    }
    let policies = policies(input, &meta)?;
    Ok(Desired { secret, config_maps, pods, services, policies })
}

fn policies(input: &Input, meta: &MetaFn) -> Result<Vec<NetworkPolicy>, Vec<FieldProblem>> {
    let (tpl, name) = (input.template, input.instance.name_any());
    let mut out = Vec::new();
    for n in &tpl.spec.networks {
        let on_net = json!({"matchLabels": {INSTANCE: name, net_label(n): "true"}});
        let ports: Vec<Value> = tpl
            .spec
            .pods
            .iter()
            .filter(|p| p.networks.contains(n))
            .flat_map(|p| p.ports.iter())
            .map(|x| json!({"port": x.name, "protocol": x.protocol}))
            .fold(Vec::new(), |mut acc, p| {
                if !acc.contains(&p) {
                    acc.push(p);
                }
                acc
            });
        let mut rule = json!({"peers": [{"podSelector": on_net}]});
        if !ports.is_empty() {
            rule["ports"] = json!(ports);
        }
        let ingress = json!([{"from": rule["peers"], "ports": rule.get("ports").cloned().unwrap_or(json!([]))}]);
        let egress = json!([{"to": rule["peers"], "ports": rule.get("ports").cloned().unwrap_or(json!([]))}]);
        // A network whose pods declare no ports allows nothing between them.
        let (ingress, egress) = if ports.is_empty() { (json!([]), json!([])) } else { (ingress, egress) };
        out.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&format!("{name}-net-{n}"), &[]),
            "spec": {"podSelector": on_net, "policyTypes": ["Ingress", "Egress"], "ingress": ingress, "egress": egress}}))?);
        if n == TEAMNET && !ports.is_empty() {
            out.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&format!("{name}-vpn"), &[]),
                "spec": {"podSelector": on_net, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"paddock.dev/role": "vpn"}}}], "ports": ports}]}}))?);
        }
    }
    // Ports exposed through NodePort/LoadBalancer accept traffic from anywhere.
    for p in &tpl.spec.pods {
        let ports: Vec<Value> = p
            .ports
            .iter()
            .filter(|x| x.expose && tpl.spec.exposure_of(&p.name, &x.name) != ExposureType::ClusterIP)
            .map(|x| json!({"port": x.name, "protocol": x.protocol}))
            .collect();
        if !ports.is_empty() {
            out.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&format!("{name}-{}-exposed", p.name), &[]),
                "spec": {"podSelector": {"matchLabels": {INSTANCE: name, POD_LABEL: p.name}}, "policyTypes": ["Ingress"], "ingress": [{"ports": ports}]}}))?);
        }
    }
    Ok(out)
}
