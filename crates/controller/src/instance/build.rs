//! The pure build step of the instance reconciler: template + tenant +
//! instance → pods (hardened), the instance Secret and ConfigMaps, Services and
//! NetworkPolicies. Generated secret values come in from outside, so the
//! build stays deterministic.

use crate::config::Settings;
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER, ROLE, TEMPLATE, TENANT};
use crate::noderoles::{Placement, placement_on};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Resource, ResourceExt};
use resources::admission::{deadline, instance_problems, template_problems};
use resources::template::{ExposureType, Generate, PodTemplate, TEAMNET};
use resources::tenant::NodeRole;
use resources::vocabulary::{HEARTBEAT_TOKEN_KEY, POD, network_label};
use resources::{FieldProblem, Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Builds an object's metadata: name and extra labels.
pub type MetaFn<'a> = dyn Fn(&str, &[(String, String)]) -> Value + 'a;

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

pub fn build(input: &Input) -> Result<Desired, Vec<FieldProblem>> {
    let (tpl, inst) = (input.template, input.instance);
    let mut problems: Vec<FieldProblem> = template_problems(tpl, &input.settings.template_policy());
    problems.extend(instance_problems(tpl, inst, input.settings.max_instance_ttl));
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
    // Task pods go to task or shared nodes; a template (or else the tenant) may
    // narrow that to shared nodes only.
    let roles = task_roles(tpl, Some(input.tenant));
    let shape = Shape {
        subdomain: &name,
        env: Env::Instance {
            overrides: &inst.spec.env,
            secret: &secret_name,
            heartbeat: heartbeats(tpl).then(|| heartbeat_url(&input.settings.claim_url, &tenant, &name)),
        },
        tenant: Some(input.tenant),
        placement: placement_on(roles, input.any_node_has_role, input.settings.strict_node_roles),
        settings: input.settings,
        deadline: deadline(tpl, inst.spec.ttl.as_deref()),
        runtime_class: runtime_class(tpl, input.settings),
    };
    let mut pods = Vec::new();
    let mut config_maps = Vec::new();
    for p in &tpl.spec.pods {
        let mut extra = pod_labels(p);
        extra.push((POD.to_string(), p.name.clone()));
        let cm = p.mounts.config.as_ref().map(|cfg| {
            let cm = format!("{name}-{}-config", p.name);
            config_maps
                .push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&cm, &[]), "data": cfg.files}));
            cm
        });
        let spec = pod_spec(p, &shape, cm.as_deref());
        pods.push(typed::<Pod>(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&format!("{name}-{}", p.name), &extra), "spec": spec}))?);
    }
    let config_maps = config_maps.into_iter().map(typed).collect::<Result<Vec<ConfigMap>, _>>()?;
    let ident =
        Ident { stem: &name, key: INSTANCE, value: &name, vpn: json!({"podSelector": {"matchLabels": {ROLE: "vpn"}}}) };
    let services = services(tpl, &ident, &meta)?;
    let mut policies = policies(tpl, &ident, &meta)?;
    if heartbeats(tpl) {
        // Its pods may reach the Paddock API, to send their heartbeats.
        let system = &input.settings.system_namespace;
        policies.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(&format!("{name}-heartbeat"), &[]),
            "spec": {"podSelector": {"matchLabels": {INSTANCE: name}}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": system}},
                         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "paddock"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]}]}}))?);
    }
    if let Some(p) = idle_probe_policy(tpl, &ident, &input.settings.system_namespace, &meta) {
        policies.push(typed(p)?);
    }
    Ok(Desired { secret, config_maps, pods, services, policies })
}

/// With the Http idle signal: Paddock's pods may ask the pod's activity
/// endpoint (an instance's pod, or a warm pool set's, which an instance claims).
pub fn idle_probe_policy(tpl: &Template, id: &Ident, system: &str, meta: &MetaFn) -> Option<Value> {
    let idle = tpl.spec.idle.as_ref().filter(|i| i.signal == resources::template::IdleSignal::Http)?;
    let h = idle.http.as_ref()?;
    let pod = h.pod_of(&tpl.spec.pods)?;
    let port = h.port_number(pod)?;
    Some(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(&format!("{}-idle-probe", id.stem), &[]),
        "spec": {"podSelector": {"matchLabels": {id.key: id.value, POD: pod.name}}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": system}},
                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "paddock"}}}],
             "ports": [{"protocol": "TCP", "port": port}]}]}}))
}

/// The node roles a template's pods may run on (a template, or else the
/// tenant, may narrow task-or-shared to shared only).
pub fn task_roles(tpl: &Template, tenant: Option<&Tenant>) -> &'static [&'static str] {
    match tpl.spec.node_role.or(tenant.and_then(|t| t.spec.node_role)) {
        Some(NodeRole::Shared) => &["shared"],
        _ => &["task", "shared"],
    }
}

/// The runtime class pods of a template run with: the template's, else the installation's.
pub fn runtime_class<'a>(tpl: &'a Template, settings: &'a Settings) -> Option<&'a str> {
    tpl.spec.runtime_class_name.as_deref().or(settings.runtime_class.as_deref())
}

/// Labels every pod of a template's pod carries: its networks.
pub fn pod_labels(p: &PodTemplate) -> Vec<(String, String)> {
    p.networks.iter().map(|n| (network_label(n), "true".to_string())).collect()
}

/// Where a pod's per-instance variables come from.
pub enum Env<'a> {
    /// An instance's pod: overrides from the instance, generated values from its Secret.
    /// `heartbeat`: the URL its pods call to say the instance is in use
    /// (their token is in its Secret), when its template reaps idle ones.
    Instance { overrides: &'a BTreeMap<String, String>, secret: &'a str, heartbeat: Option<String> },
    /// A warm pool's pod: only fixed values; the rest arrives through the claim endpoint.
    Pool,
}

/// What a pod spec depends on besides the template's pod.
pub struct Shape<'a> {
    pub subdomain: &'a str,
    pub env: Env<'a>,
    pub tenant: Option<&'a Tenant>,
    pub placement: Placement,
    pub settings: &'a Settings,
    pub deadline: Option<u64>,
    pub runtime_class: Option<&'a str>,
}

/// `value` escaped so that Kubernetes' `$(VAR)` expansion gives it back as
/// written: every `$` doubled (`$$` expands to `$`).
pub fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// The pod-level security context: non-root with a user id (the
/// template's, else [`resources::template::DEFAULT_UID`]) and that id as the
/// group owning its volumes, unless the template runs as root.
fn pod_security(p: &PodTemplate) -> Value {
    let mut sc = json!({"runAsNonRoot": !p.security.run_as_root, "seccompProfile": {"type": "RuntimeDefault"}});
    if let Some(uid) = p.security.uid() {
        sc["runAsUser"] = json!(uid);
        sc["runAsGroup"] = json!(uid);
        sc["fsGroup"] = json!(uid);
    }
    sc
}

/// The hardened pod spec of one of a template's pods.
pub fn pod_spec(p: &PodTemplate, shape: &Shape, config_map: Option<&str>) -> Value {
    let mut container = container(p, env_vars(p, shape));
    let (volumes, mounts) = volumes(p, shape, config_map);
    container["volumeMounts"] = json!(mounts);
    let mut spec = json!({
        "hostname": p.name,
        "subdomain": shape.subdomain,
        "restartPolicy": "Always",
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "serviceAccountName": resources::vocabulary::TENANT_SERVICE_ACCOUNT,
        "securityContext": pod_security(p),
        "containers": [container],
        "volumes": volumes,
        "tolerations": serde_json::to_value(&shape.placement.tolerations).unwrap_or(json!([])),
    });
    if let Some(a) = &shape.placement.affinity {
        spec["affinity"] = serde_json::to_value(a).unwrap_or(Value::Null);
    }
    if let Some(rc) = shape.runtime_class {
        spec["runtimeClassName"] = json!(rc);
    }
    if let Some(s) = &shape.settings.image_pull_secret {
        spec["imagePullSecrets"] = json!([{"name": s}]);
    }
    if let Some(d) = shape.deadline {
        spec["activeDeadlineSeconds"] = json!(d);
    }
    spec
}

/// The container's environment: for a pool pod only the fixed values; for an
/// instance's, overrides (taken literally), values, and Secret references.
fn env_vars(p: &PodTemplate, shape: &Shape) -> Vec<Value> {
    let mut vars = template_env(p, shape);
    if let Env::Instance { secret, heartbeat: Some(url), .. } = &shape.env {
        vars.push(json!({"name": "PADDOCK_HEARTBEAT_URL", "value": url}));
        vars.push(json!({"name": "PADDOCK_HEARTBEAT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": HEARTBEAT_TOKEN_KEY}}}));
    }
    vars
}

/// Whether instances of `tpl` get a heartbeat token (its idle signal is a heartbeat).
pub fn heartbeats(tpl: &Template) -> bool {
    tpl.spec.idle.as_ref().is_some_and(|i| i.signal == resources::template::IdleSignal::Heartbeat)
}

/// The URL an instance's pods send heartbeats to: the Paddock API that
/// `claim_url` (its `/v1/claim`) names.
pub fn heartbeat_url(claim_url: &str, tenant: &str, inst: &str) -> String {
    let base = claim_url.strip_suffix("/v1/claim").unwrap_or(claim_url.trim_end_matches('/'));
    format!("{base}/v1/tenants/{tenant}/instances/{inst}/heartbeat")
}

/// The template's variables of one pod.
fn template_env(p: &PodTemplate, shape: &Shape) -> Vec<Value> {
    p
        .env
        .iter()
        .filter_map(|e| match &shape.env {
            Env::Pool => e
                .value
                .as_ref()
                .filter(|_| !e.overridable && e.generate.is_none())
                .map(|v| json!({"name": e.name, "value": v})),
            Env::Instance { overrides, secret, .. } => Some({
                if let Some(v) = overrides.get(&e.name).filter(|_| e.overridable) {
                    // A tenant's value is taken literally: Kubernetes expands
                    // `$(VAR)` in env values, and `$(FLAG)` would copy the flag.
                    json!({"name": e.name, "value": literal(v)})
                } else {
                    match (&e.value, &e.secret) {
                        (Some(v), _) => json!({"name": e.name, "value": v}),
                        (_, Some(s)) => json!({"name": e.name, "valueFrom": {"secretKeyRef": {"name": s.name, "key": s.key}}}),
                        _ => json!({"name": e.name, "valueFrom": {"secretKeyRef": {"name": secret, "key": format!("{}.{}", p.name, e.name)}}}),
                    }
                }
            }),
        })
        .collect()
}

/// The hardened container: no privilege escalation, all capabilities dropped
/// but those the template adds, read-only root and non-root unless it says.
fn container(p: &PodTemplate, env: Vec<Value>) -> Value {
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
    container
}

/// The pod's volumes and the container's mounts of them: tenant and group
/// storage, the config map, scratch space.
fn volumes(p: &PodTemplate, shape: &Shape, config_map: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let (Some(path), Some(tenant)) = (&p.mounts.tenant_storage, shape.tenant) {
        let claim = resources::vocabulary::storage_claim(tenant.spec.kind);
        volumes.push(json!({"name": "tenant-storage", "persistentVolumeClaim": {"claimName": claim}}));
        mounts.push(json!({"name": "tenant-storage", "mountPath": path}));
    }
    if let (Some(path), Some(tenant)) = (&p.mounts.group_storage, shape.tenant) {
        for g in &tenant.spec.groups {
            let vol = format!("group-{g}");
            volumes.push(
                json!({"name": vol, "persistentVolumeClaim": {"claimName": resources::vocabulary::group_claim(g)}}),
            );
            mounts.push(json!({"name": vol, "mountPath": format!("{}/{g}", path.trim_end_matches('/'))}));
        }
    }
    if let (Some(cfg), Some(cm)) = (&p.mounts.config, config_map) {
        volumes.push(json!({"name": "config", "configMap": {"name": cm}}));
        mounts.push(json!({"name": "config", "mountPath": cfg.path, "readOnly": true}));
    }
    if let Some(size) = &p.scratch_size {
        volumes.push(json!({"name": "scratch", "emptyDir": {"sizeLimit": size}}));
        mounts.push(json!({"name": "scratch", "mountPath": "/tmp"}));
    }
    (volumes, mounts)
}

/// How an instance's pods are told apart in their namespace, and where its
/// tenant's VPN server is.
pub struct Ident<'a> {
    /// Object name stem; the headless Service carries it, so `<pod>.<stem>` resolves.
    pub stem: &'a str,
    /// The label (key and value) only this instance's pods carry.
    pub key: &'a str,
    pub value: &'a str,
    /// A NetworkPolicy peer matching the tenant's VPN server.
    pub vpn: Value,
}

/// The Services of an instance: a headless one for DNS, and one per pod for
/// NodePort / LoadBalancer exposure.
pub fn services(tpl: &Template, id: &Ident, meta: &MetaFn) -> Result<Vec<Service>, Vec<FieldProblem>> {
    let mut services: Vec<Service> = dns_service(tpl, id, meta)?.into_iter().collect();
    services.extend(exposed_services(tpl, id, meta)?);
    Ok(services)
}

/// The headless Service that gives the pods their DNS names
/// (`<pod>.<stem>.<namespace>.svc`), if any pod declares a port.
pub fn dns_service(tpl: &Template, id: &Ident, meta: &MetaFn) -> Result<Option<Service>, Vec<FieldProblem>> {
    let mut dns_ports: Vec<Value> = Vec::new();
    for p in &tpl.spec.pods {
        for x in &p.ports {
            if !dns_ports.iter().any(|d| d["name"] == json!(x.name)) {
                dns_ports.push(json!({"name": x.name, "port": x.port, "targetPort": x.name, "protocol": x.protocol}));
            }
        }
    }
    if dns_ports.is_empty() {
        return Ok(None);
    }
    Ok(Some(typed(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(id.stem, &[]),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {id.key: id.value}, "ports": dns_ports}}))?))
}

/// One Service per pod and exposure type (NodePort, LoadBalancer) for its exposed ports.
pub fn exposed_services(tpl: &Template, id: &Ident, meta: &MetaFn) -> Result<Vec<Service>, Vec<FieldProblem>> {
    let mut services = Vec::new();
    for p in &tpl.spec.pods {
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
                    format!("{}-{}{}", id.stem, p.name, if kind == ExposureType::LoadBalancer { "-lb" } else { "" });
                services.push(typed::<Service>(
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&svc_name, &[]),
                    "spec": {"type": t, "selector": {id.key: id.value, POD: p.name}, "ports": ports}}),
                )?);
            }
        }
    }
    Ok(services)
}

/// The NetworkPolicies of an instance: one per template network (its pods
/// reach each other on the declared ports), VPN access to teamnet, and
/// ingress from anywhere to exposed ports.
pub fn policies(tpl: &Template, id: &Ident, meta: &MetaFn) -> Result<Vec<NetworkPolicy>, Vec<FieldProblem>> {
    let mut out = network_policies(tpl, id, meta)?;
    let on_teamnet = json!({"matchLabels": {id.key: id.value, network_label(TEAMNET): "true"}});
    out.extend(vpn_policy(tpl, &format!("{}-vpn", id.stem), on_teamnet, &id.vpn, meta)?);
    out.extend(exposed_policies(tpl, id, meta, None)?);
    Ok(out)
}

/// The ports (by name) of the pods on network `n`, each once.
fn network_ports(tpl: &Template, n: &str) -> Vec<Value> {
    tpl.spec
        .pods
        .iter()
        .filter(|p| p.networks.iter().any(|x| x == n))
        .flat_map(|p| p.ports.iter())
        .map(|x| json!({"port": x.name, "protocol": x.protocol}))
        .fold(Vec::new(), |mut acc, p| {
            if !acc.contains(&p) {
                acc.push(p);
            }
            acc
        })
}

/// One policy per template network: the pods on it reach each other on its ports.
pub fn network_policies(tpl: &Template, id: &Ident, meta: &MetaFn) -> Result<Vec<NetworkPolicy>, Vec<FieldProblem>> {
    let mut out = Vec::new();
    for n in &tpl.spec.networks {
        let on_net = json!({"matchLabels": {id.key: id.value, network_label(n): "true"}});
        let ports = network_ports(tpl, n);
        let peers = json!([{"podSelector": on_net}]);
        // A network whose pods declare no ports allows nothing between them.
        let (ingress, egress) = if ports.is_empty() {
            (json!([]), json!([]))
        } else {
            (json!([{"from": peers, "ports": ports}]), json!([{"to": peers, "ports": ports}]))
        };
        out.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&format!("{}-net-{n}", id.stem), &[]),
            "spec": {"podSelector": on_net, "policyTypes": ["Ingress", "Egress"], "ingress": ingress, "egress": egress}}))?);
    }
    Ok(out)
}

/// Ingress from the tenant's VPN server (`from`) to the pods `selector`
/// picks, on the ports of the template's teamnet; none when the template
/// has no teamnet or it declares no port.
pub fn vpn_policy(
    tpl: &Template,
    name: &str,
    selector: Value,
    from: &Value,
    meta: &MetaFn,
) -> Result<Option<NetworkPolicy>, Vec<FieldProblem>> {
    let ports = network_ports(tpl, TEAMNET);
    if !tpl.spec.networks.iter().any(|n| n == TEAMNET) || ports.is_empty() {
        return Ok(None);
    }
    Ok(Some(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, &[]),
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": [{"from": [from], "ports": ports}]}}))?))
}

/// Ports exposed through NodePort/LoadBalancer accept traffic from anywhere;
/// with `only_with`, only on pods that carry that label (a warm pool's set
/// is open to the world only once it is claimed).
pub fn exposed_policies(
    tpl: &Template,
    id: &Ident,
    meta: &MetaFn,
    only_with: Option<&str>,
) -> Result<Vec<NetworkPolicy>, Vec<FieldProblem>> {
    let mut out = Vec::new();
    for p in &tpl.spec.pods {
        let ports: Vec<Value> = p
            .ports
            .iter()
            .filter(|x| x.expose && tpl.spec.exposure_of(&p.name, &x.name) != ExposureType::ClusterIP)
            .map(|x| json!({"port": x.name, "protocol": x.protocol}))
            .collect();
        if !ports.is_empty() {
            let mut selector = json!({"matchLabels": {id.key: id.value, POD: p.name}});
            if let Some(label) = only_with {
                selector["matchExpressions"] = json!([{"key": label, "operator": "Exists"}]);
            }
            out.push(typed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&format!("{}-{}-exposed", id.stem, p.name), &[]),
                "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": [{"ports": ports}]}}))?);
        }
    }
    Ok(out)
}
