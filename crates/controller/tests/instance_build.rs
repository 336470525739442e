//! The instance build step from fixtures, and the isolation it produces proven
//! with the NetworkPolicy evaluator (no cluster needed).

use controller::config::Settings;
use controller::instance::build::{Input, build, generate_value, generated_keys};
use controller::tenant;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol::{Endpoint, Evaluator, Options, Protocol};
use resources::{Instance, Template, Tenant};
use serde_json::json;
use std::collections::BTreeMap;

fn template() -> Template {
    let path = format!("{}/tests/fixtures/templates/ctf-web.yaml", env!("CARGO_MANIFEST_DIR"));
    // Through a JSON value, as the API server sees it (YAML enum tags differ).
    let v: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(v).unwrap()
}

fn tenant(name: &str) -> Tenant {
    serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": {"kind": "Team"}})).unwrap()
}

fn instance(ns: &str, env: serde_json::Value) -> Instance {
    serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": "web1", "namespace": ns, "uid": "uid-web1"}, "spec": {"template": "ctf-web", "env": env}}))
    .unwrap()
}

/// Builds with freshly generated values.
fn built(
    tpl: &Template,
    ten: &Tenant,
    inst: &Instance,
    settings: &Settings,
    any_node_has_role: bool,
) -> Result<controller::instance::build::Desired, Vec<resources::FieldProblem>> {
    build(&Input {
        template: tpl,
        tenant: ten,
        instance: inst,
        settings,
        any_node_has_role,
        generated: &generated(tpl),
    })
}

fn generated(t: &Template) -> BTreeMap<String, String> {
    let mut n = 0usize;
    generated_keys(t)
        .into_iter()
        .map(|(k, g)| {
            (
                k,
                generate_value(&g, |len| {
                    n += 7;
                    n % len
                }),
            )
        })
        .collect()
}

#[test]
fn hardened_pods_secrets_services_and_policies() {
    let (tpl, ten) = (template(), tenant("red"));
    let inst = instance("paddock-red", json!({"MODE": "easy"}));
    let settings = Settings {
        runtime_class: Some("gvisor".into()),
        image_pull_secret: Some("regcred".into()),
        ..Default::default()
    };
    let values = generated(&tpl);
    assert_eq!(values.keys().collect::<Vec<_>>(), ["db.POSTGRES_PASSWORD", "web.FLAG"]);
    assert!(values["web.FLAG"].starts_with("FLAG{") && values["web.FLAG"].len() == 38);
    assert_eq!(values["db.POSTGRES_PASSWORD"].len(), 24);
    let d = build(&Input {
        template: &tpl,
        tenant: &ten,
        instance: &inst,
        settings: &settings,
        any_node_has_role: true,
        generated: &values,
    })
    .unwrap();

    let names: Vec<_> = d.pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["web1-web", "web1-db", "web1-helper"]);
    let web = serde_json::to_value(&d.pods[0]).unwrap();
    let labels = &web["metadata"]["labels"];
    assert_eq!(
        (
            labels["paddock.dev/tenant"].as_str(),
            labels["paddock.dev/instance"].as_str(),
            labels["paddock.dev/pod"].as_str()
        ),
        (Some("red"), Some("web1"), Some("web"))
    );
    assert_eq!(labels["paddock.dev/net-teamnet"], "true");
    assert_eq!(web["metadata"]["ownerReferences"][0]["kind"], "Instance");
    let spec = &web["spec"];
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["runtimeClassName"], "gvisor");
    assert_eq!(spec["imagePullSecrets"][0]["name"], "regcred");
    assert_eq!(spec["activeDeadlineSeconds"], 6 * 3600, "maxTtl, so renewals are not cut short");
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    // A user id, so that a kubelet starts images whose user is root under runAsNonRoot.
    assert_eq!(
        (
            &spec["securityContext"]["runAsNonRoot"],
            &spec["securityContext"]["runAsUser"],
            &spec["securityContext"]["fsGroup"]
        ),
        (&json!(true), &json!(resources::template::DEFAULT_UID), &json!(resources::template::DEFAULT_UID))
    );
    assert_eq!((spec["hostname"].as_str(), spec["subdomain"].as_str()), (Some("web"), Some("web1")));
    assert_eq!(
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0]["values"],
        json!(["task", "shared"])
    );
    let c = &spec["containers"][0];
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(c["env"][0]["valueFrom"]["secretKeyRef"], json!({"name": "web1-secrets", "key": "web.FLAG"}));
    assert_eq!(c["env"][1], json!({"name": "MODE", "value": "easy"}), "overridable value taken from the instance");
    assert_eq!(c["volumeMounts"][0], json!({"name": "scratch", "mountPath": "/tmp"}));
    let db = serde_json::to_value(&d.pods[1]).unwrap();
    assert_eq!(db["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "storage");
    assert_eq!(
        db["spec"]["containers"][0]["volumeMounts"][1],
        json!({"name": "config", "mountPath": "/config", "readOnly": true})
    );
    assert_eq!(d.config_maps[0].data.as_ref().unwrap()["init.sql"], "create table t (x int);");
    assert!(d.secret.as_ref().unwrap().string_data.as_ref().unwrap().contains_key("web.FLAG"));

    let svc: Vec<_> = d
        .services
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                s.spec.as_ref().unwrap().type_.clone(),
                s.spec.as_ref().unwrap().cluster_ip.clone(),
            )
        })
        .collect();
    assert_eq!(svc[0], ("web1".to_string(), None, Some("None".to_string())), "headless service for <pod>.<instance>");
    assert_eq!(svc[1], ("web1-web".to_string(), Some("NodePort".to_string()), None));
    let pols: Vec<_> = d.policies.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(pols, ["web1-net-teamnet", "web1-net-backend", "web1-vpn", "web1-web-exposed"]);
}

#[test]
fn group_storage_mounts_each_group_of_the_tenant() {
    let mut tpl = template();
    tpl.spec.pods[2].mounts.group_storage = Some("/shared".into());
    let mut ten = tenant("alice");
    ten.spec.groups = vec!["lab".into(), "club".into()];
    let inst = instance("paddock-alice", json!({}));
    let d = built(&tpl, &ten, &inst, &Settings::default(), false).unwrap();
    let helper = serde_json::to_value(&d.pods[2]).unwrap();
    assert_eq!(
        helper["spec"]["volumes"],
        json!([{"name": "group-lab", "persistentVolumeClaim": {"claimName": "group-lab"}}, {"name": "group-club", "persistentVolumeClaim": {"claimName": "group-club"}}])
    );
    assert_eq!(
        helper["spec"]["containers"][0]["volumeMounts"][1],
        json!({"name": "group-club", "mountPath": "/shared/club"})
    );
}

#[test]
fn node_roles_narrow_placement() {
    let mut tpl = template();
    tpl.spec.node_role = Some(resources::tenant::NodeRole::Shared);
    let (ten, inst) = (tenant("red"), instance("paddock-red", json!({})));
    let d = built(&tpl, &ten, &inst, &Settings::default(), true).unwrap();
    let spec = serde_json::to_value(&d.pods[0]).unwrap()["spec"].clone();
    assert_eq!(
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0]["values"],
        json!(["shared"])
    );
    tpl.spec.node_role = Some(resources::tenant::NodeRole::Vpn);
    let e = built(&tpl, &ten, &inst, &Settings::default(), true).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "template ctf-web: spec.nodeRole: instances run on task or shared nodes, not vpn nodes"
    );
}

#[test]
fn instance_problems_name_the_field() {
    let (tpl, ten) = (template(), tenant("red"));
    let mut inst = instance("paddock-red", json!({"FLAG": "mine"}));
    inst.spec.ttl = Some("12h".into());
    let e = build(&Input {
        template: &tpl,
        tenant: &ten,
        instance: &inst,
        settings: &Settings::default(),
        any_node_has_role: false,
        generated: &BTreeMap::new(),
    })
    .unwrap_err();
    let text: Vec<String> = e.iter().map(|p| p.to_string()).collect();
    assert!(
        text.contains(
            &"spec.env.FLAG: template \"ctf-web\" does not let instances set FLAG (they may set: MODE)".to_string()
        ),
        "{text:?}"
    );
    assert!(text.contains(&"spec.ttl: 12h is longer than the template's maxTtl 6h".to_string()), "{text:?}");
}

/// An instance's Services carry its name, and a Service's name must start
/// with a letter (a DNS-1035 label): a name like `1st` is refused up front
/// instead of failing at its first Service for ever.
#[test]
fn an_instance_with_services_needs_a_name_that_starts_with_a_letter() {
    let (mut tpl, ten) = (template(), tenant("red"));
    let mut inst = instance("paddock-red", json!({}));
    inst.metadata.name = Some("1st".into());
    let e = built(&tpl, &ten, &inst, &Settings::default(), false).unwrap_err();
    assert_eq!(e[0].field, "metadata.name", "{e:?}");
    assert!(e[0].reason.contains("must start with a letter"), "{e:?}");
    // Without ports there are no Services, and the name is fine as it is.
    for p in &mut tpl.spec.pods {
        p.ports.clear();
    }
    tpl.spec.exposure.clear();
    assert!(built(&tpl, &ten, &inst, &Settings::default(), false).is_ok());
}

/// The policies the tenant and the instance produce, evaluated like a CNI would.
#[test]
fn the_evaluator_proves_the_isolation_of_an_instance() {
    let settings = Settings::default();
    let tpl = template();
    let mut namespaces = Vec::new();
    let mut pods: Vec<Pod> = Vec::new();
    let mut policies: Vec<NetworkPolicy> = Vec::new();
    for t in ["red", "blue"] {
        let ten = tenant(t);
        let td = tenant::build(&ten, &settings).unwrap();
        let ns = td.namespace.metadata.name.clone().unwrap();
        namespaces.push(td.namespace.clone());
        policies.extend(td.policies.clone());
        let inst = instance(&ns, json!({}));
        let d = built(&tpl, &ten, &inst, &settings, false).unwrap();
        for mut p in d.pods {
            p.metadata.namespace = Some(ns.clone());
            pods.push(p);
        }
        policies.extend(d.policies);
        // The tenant's VPN server pod, with the egress policy the VPN feature gives it
        // (the tenant's default-deny isolates its egress too).
        policies.push(
            serde_json::from_value(json!({"metadata": {"name": "vpn-egress", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"paddock.dev/role": "vpn"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": {"matchLabels": {"paddock.dev/net-teamnet": "true"}}}]}]}}))
            .unwrap(),
        );
        pods.push(serde_json::from_value(json!({"metadata": {"name": "vpn", "namespace": ns, "labels": {"paddock.dev/role": "vpn", "paddock.dev/tenant": t}},
            "spec": {"containers": [{"name": "wg", "image": "wireguard"}]}})).unwrap());
    }
    namespaces.push(serde_json::from_value::<Namespace>(json!({"metadata": {"name": "kube-system"}})).unwrap());
    let input = netpol::Input::from_k8s(&namespaces, &pods, &policies).unwrap();
    let ev = Evaluator::new(input, Options::default());
    let p = |s: &str| Endpoint::Pod(ev.pod(s.split('/').next().unwrap(), s.split('/').nth(1).unwrap()).unwrap());
    let can = |a: &str, b: &str, port: u16| ev.check(p(a), p(b), port, Protocol::Tcp).allowed;
    // Same network, declared port: yes; undeclared port: no.
    assert!(can("paddock-red/web1-web", "paddock-red/web1-db", 5432));
    assert!(!can("paddock-red/web1-web", "paddock-red/web1-db", 22));
    assert!(can("paddock-red/web1-db", "paddock-red/web1-web", 8080), "both on backend; web declares 8080");
    // No shared network: nothing.
    assert!(!can("paddock-red/web1-helper", "paddock-red/web1-db", 5432));
    assert!(!can("paddock-red/web1-web", "paddock-red/web1-helper", 80));
    // The VPN reaches teamnet pods on their ports, nothing else.
    assert!(can("paddock-red/vpn", "paddock-red/web1-web", 8080));
    assert!(!can("paddock-red/vpn", "paddock-red/web1-db", 5432));
    // Another tenant reaches none of them, VPN included.
    for target in ["paddock-red/web1-web", "paddock-red/web1-db", "paddock-red/web1-helper"] {
        for from in ["paddock-blue/web1-web", "paddock-blue/vpn"] {
            for port in [8080, 5432] {
                assert!(!can(from, target, port), "{from} -> {target}:{port}");
            }
        }
    }
    // The audit agrees: no path crosses tenants.
    assert_eq!(netpol::audit::report(&ev, "paddock.dev/tenant").cross_tenant_paths, 0);
}
