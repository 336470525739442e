//! The pure part of warm pools: what one pod set of a template is, the pool
//! namespace's own objects, the image prepull DaemonSet, and the Services and
//! NetworkPolicies a claimed set gets for its instance.

use crate::config::Settings;
use crate::instance::build::{
    Env, Ident, Shape, dns_service, exposed_policies, exposed_services, idle_probe_policy, network_policies,
    pod_labels, pod_spec, runtime_class, task_roles, vpn_policy,
};
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER, ROLE, TEMPLATE, TENANT};
use crate::noderoles::placement_on;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{Resource, ResourceExt};
use resources::template::Personalize;
use resources::template::TEAMNET;
use resources::vocabulary::{CLAIM, PERSONALIZE, POOL, POOL_SET, TEMPLATE_GENERATION};
use resources::{FieldProblem, Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Where a personalised pod finds its pool token.
pub const TOKEN_DIR: &str = "/var/run/paddock/claim";
/// Token prefix; the token reads `pool.<set>.<pod>.<secret>`.
pub const TOKEN_PREFIX: &str = "pool";

/// One pod set of a template, ready to create.
#[derive(Debug, Clone)]
pub struct PodSet {
    pub name: String,
    pub pods: Vec<Pod>,
    pub config_maps: Vec<ConfigMap>,
    /// The pods' claim tokens (key: pod name), when the template personalises through the API.
    pub tokens: Option<Secret>,
    /// The set's headless Service (its pods' DNS names) and its policies
    /// (its pods reach each other on the template's networks; exposed ports
    /// open once claimed): made with the set, before its pods, so that a
    /// claim writes none of them.
    pub services: Vec<Service>,
    pub policies: Vec<NetworkPolicy>,
}

fn typed<K: DeserializeOwned>(v: Value) -> Result<K, Vec<FieldProblem>> {
    serde_json::from_value(v)
        .map_err(|e| vec![FieldProblem::new("spec", format!("cannot build the pool's objects: {e}"))])
}

/// A set's name: the template's name (shortened) and a random suffix, a DNS
/// label so it can be the pods' subdomain and the headless Service's name.
pub fn set_name(template: &str, suffix: &str) -> String {
    let stem: String = template.chars().take(40).collect();
    format!("{}-{suffix}", stem.trim_end_matches('-'))
}

/// The name of the Secret holding a set's claim tokens.
pub fn token_secret(set: &str) -> String {
    format!("{set}-claim")
}

/// A token for one pod of a set.
pub fn token(set: &str, pod: &str, secret: &str) -> String {
    format!("{TOKEN_PREFIX}.{set}.{pod}.{secret}")
}

/// Splits a pool token into (set, pod) when it has the shape of one.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?.strip_prefix('.')?;
    let (set, rest) = rest.split_once('.')?;
    let (pod, secret) = rest.split_once('.')?;
    (!set.is_empty() && !pod.is_empty() && !secret.is_empty()).then_some((set, pod))
}

/// What a set is made of beyond its pods: 2 since a set brings its own
/// headless Service and policies (made before its pods). Part of
/// [`generation`], so sets an older Paddock made, which lack them, are
/// replaced after an upgrade rather than claimed.
const SET_FORMAT: u32 = 2;

/// The version of a template's pods a pool builds from: a hash of what goes
/// into the pod spec (and [`SET_FORMAT`]), so resizing the pool does not
/// replace its pods but a change to the pods does.
pub fn generation(tpl: &Template) -> String {
    let s = &tpl.spec;
    let personalize = s.warm_pool.as_ref().map(|p| p.personalize);
    let what = json!([s.pods, s.networks, s.runtime_class_name, s.node_role, personalize, SET_FORMAT]).to_string();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Builds one pod set of `tpl` named `set_name(tpl, suffix)`. `secret` makes
/// the random part of each pod's claim token.
pub fn pod_set(
    tpl: &Template,
    settings: &Settings,
    any_node_has_role: bool,
    suffix: &str,
    mut secret: impl FnMut() -> String,
) -> Result<PodSet, Vec<FieldProblem>> {
    let tname = tpl.name_any();
    let name = set_name(&tname, suffix);
    let ns = &settings.pool_namespace;
    let owner = serde_json::to_value(tpl.controller_owner_ref(&())).unwrap_or(Value::Null);
    let labels = json!({MANAGED_BY: MANAGER, TEMPLATE: tname, POOL: tname, POOL_SET: name, TEMPLATE_GENERATION: generation(tpl)});
    let meta = |obj: &str, extra: &[(String, String)]| {
        let mut l = labels.clone();
        for (k, v) in extra {
            l[k] = json!(v);
        }
        json!({"name": obj, "namespace": ns, "labels": l, "ownerReferences": [owner]})
    };
    let personalize = tpl.spec.warm_pool.as_ref().is_some_and(|p| p.personalize == Personalize::Api);
    let shape = Shape {
        subdomain: &name,
        env: Env::Pool,
        tenant: None,
        placement: placement_on(task_roles(tpl, None), any_node_has_role, settings.strict_node_roles),
        settings,
        // A pooled pod may wait long before its claim; the claim sets the deadline.
        deadline: None,
        runtime_class: runtime_class(tpl, settings),
    };
    let mut pods = Vec::new();
    let mut config_maps = Vec::new();
    let mut tokens = serde_json::Map::new();
    for p in &tpl.spec.pods {
        let mut extra = pod_labels(p);
        extra.push((resources::vocabulary::POD.to_string(), p.name.clone()));
        if personalize {
            extra.push((PERSONALIZE.to_string(), "api".to_string()));
        }
        let cm = p.mounts.config.as_ref().map(|cfg| {
            let cm = format!("{name}-{}-config", p.name);
            config_maps
                .push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&cm, &[]), "data": cfg.files}));
            cm
        });
        let mut spec = pod_spec(p, &shape, cm.as_deref());
        if personalize {
            tokens.insert(p.name.clone(), json!(token(&name, &p.name, &secret())));
            if let Some(v) = spec["volumes"].as_array_mut() {
                v.push(json!({"name": "claim-token", "secret": {"secretName": token_secret(&name),
                    "items": [{"key": p.name, "path": "token"}], "defaultMode": 0o440}}));
            }
            let c = &mut spec["containers"][0];
            if let Some(m) = c["volumeMounts"].as_array_mut() {
                m.push(json!({"name": "claim-token", "mountPath": TOKEN_DIR, "readOnly": true}));
            }
            if let Some(e) = c["env"].as_array_mut() {
                e.push(json!({"name": "PADDOCK_CLAIM_URL", "value": settings.claim_url}));
                e.push(json!({"name": "PADDOCK_CLAIM_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token")}));
            }
        }
        pods.push(typed::<Pod>(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&format!("{name}-{}", p.name), &extra), "spec": spec}),
        )?);
    }
    let config_maps = config_maps.into_iter().map(typed).collect::<Result<Vec<ConfigMap>, _>>()?;
    let tokens = if personalize {
        Some(typed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&token_secret(&name), &[]),
            "type": "Opaque", "stringData": tokens}))?)
    } else {
        None
    };
    // Owned by nothing: they go with the set's pods (the sweep removes those
    // of sets that have no pods any more).
    let object_meta = |obj: &str, _: &[(String, String)]| {
        let mut m = meta(obj, &[]);
        m.as_object_mut().map(|o| o.remove("ownerReferences"));
        m
    };
    let id = Ident { stem: &name, key: POOL_SET, value: &name, vpn: Value::Null };
    let services = dns_service(tpl, &id, &object_meta)?.into_iter().collect();
    let mut policies = network_policies(tpl, &id, &object_meta)?;
    policies.extend(exposed_policies(tpl, &id, &object_meta, Some(CLAIM))?);
    if let Some(p) = idle_probe_policy(tpl, &id, &settings.system_namespace, &object_meta) {
        policies.push(typed(p)?);
    }
    Ok(PodSet { name, pods, config_maps, tokens, services, policies })
}

/// The pool namespace's own objects: default-deny (DNS out only), the
/// `tenant` ServiceAccount pods run as, default requests, and egress to the
/// Paddock API for pods that fetch their values from the claim endpoint.
pub fn namespace_objects(settings: &Settings) -> Vec<Value> {
    let ns = &settings.pool_namespace;
    let labels = json!({MANAGED_BY: MANAGER, ROLE: "pool"});
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": labels});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("tenant"), "automountServiceAccountToken": false}),
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("defaults"), "spec": {"limits": [
            {"type": "Container", "defaultRequest": {"cpu": settings.default_cpu_request, "memory": settings.default_memory_request}}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("default-deny"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("claim-api"),
            "spec": {"podSelector": {"matchLabels": {PERSONALIZE: "api"}}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.system_namespace}},
                         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "paddock"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]}]}}),
    ]
}

/// A DaemonSet that pulls the template's images on every node pool pods may
/// run on, so the first pod on a node does not wait for the pull.
pub fn prepull(tpl: &Template, settings: &Settings, any_node_has_role: bool) -> Result<DaemonSet, Vec<FieldProblem>> {
    let tname = tpl.name_any();
    let place = placement_on(task_roles(tpl, None), any_node_has_role, settings.strict_node_roles);
    let sel = json!({MANAGED_BY: MANAGER, resources::vocabulary::PREPULL: tname});
    let mut images: Vec<&str> = Vec::new();
    for p in &tpl.spec.pods {
        if !images.contains(&p.image.as_str()) {
            images.push(&p.image);
        }
    }
    let inits: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            json!({"name": format!("pull-{i}"), "image": img, "command": ["true"],
            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}})
        })
        .collect();
    let mut spec = json!({"initContainers": inits, "automountServiceAccountToken": false, "serviceAccountName": "tenant",
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65535, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}],
        "tolerations": serde_json::to_value(&place.tolerations).unwrap_or(json!([]))});
    if let Some(a) = &place.affinity {
        spec["affinity"] = serde_json::to_value(a).unwrap_or(Value::Null);
    }
    if let Some(s) = &settings.image_pull_secret {
        spec["imagePullSecrets"] = json!([{"name": s}]);
    }
    let owner = serde_json::to_value(tpl.controller_owner_ref(&())).unwrap_or(Value::Null);
    typed(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": prepull_name(&tname), "namespace": settings.pool_namespace, "labels": sel, "ownerReferences": [owner]},
        "spec": {"selector": {"matchLabels": sel}, "template": {"metadata": {"labels": sel}, "spec": spec}}}))
}

pub fn prepull_name(template: &str) -> String {
    let stem: String = template.chars().take(50).collect();
    format!("prepull-{}", stem.trim_end_matches('-'))
}

/// The Services a claimed set gets in the pool namespace for its instance:
/// NodePort and LoadBalancer exposure (made at the claim, so that idle pool
/// sets hold no node port or load balancer). Labelled with the claim, so
/// they go with the claimed pods.
pub fn claimed_services(
    tpl: &Template,
    set: &str,
    inst: &Instance,
    tenant: &str,
    pool_ns: &str,
) -> Result<Vec<Service>, Vec<FieldProblem>> {
    let uid = inst.metadata.uid.clone().unwrap_or_default();
    let inst_ns = inst.namespace().unwrap_or_default();
    let labels = json!({MANAGED_BY: MANAGER, TENANT: tenant, TEMPLATE: tpl.name_any(), INSTANCE: inst.name_any(),
        CLAIM: uid, POOL_SET: set, resources::vocabulary::INSTANCE_NAMESPACE: inst_ns});
    let meta = |name: &str, _: &[(String, String)]| json!({"name": name, "namespace": pool_ns, "labels": labels});
    let id = Ident { stem: set, key: POOL_SET, value: set, vpn: Value::Null };
    exposed_services(tpl, &id, &meta)
}

/// The name of a tenant's VPN access to its claimed pods of a template
/// (names of tenants and templates have no dots, so it is unambiguous).
pub fn vpn_access_name(tenant: &str, template: &str) -> String {
    format!("vpn.{tenant}.{template}")
}

/// A tenant's VPN server may reach its claimed warm pods of `tpl` on the
/// template's teamnet ports: one policy per tenant and template in the pool
/// namespace, made at the tenant's first claim of the template and shared by
/// every later one (a claim then writes no policy). Owned by the Tenant, so
/// it goes with it; `tenant_ns` is the tenant's namespace, where its VPN runs. None when the template has no port on teamnet.
pub fn vpn_access(
    tpl: &Template,
    tenant: &Tenant,
    tenant_ns: &str,
    pool_ns: &str,
) -> Result<Option<NetworkPolicy>, Vec<FieldProblem>> {
    let (tname, tenant_name) = (tpl.name_any(), tenant.name_any());
    let owner = serde_json::to_value(tenant.owner_ref(&())).unwrap_or(Value::Null);
    let meta = |name: &str, _: &[(String, String)]| {
        json!({"name": name, "namespace": pool_ns, "ownerReferences": [owner],
            "labels": {MANAGED_BY: MANAGER, TENANT: tenant_name, TEMPLATE: tname}})
    };
    let selector = json!({"matchLabels": {TENANT: tenant_name, TEMPLATE: tname, resources::vocabulary::network_label(TEAMNET): "true"}});
    let from = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": tenant_ns}},
                      "podSelector": {"matchLabels": {ROLE: "vpn"}}});
    vpn_policy(tpl, &vpn_access_name(&tenant_name, &tname), selector, &from, &meta)
}
