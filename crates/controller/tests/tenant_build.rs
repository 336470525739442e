//! The tenant build step from YAML fixtures: no cluster needed.

use controller::config::Settings;
use controller::tenant::build;
use resources::Tenant;

fn fixture(name: &str) -> Tenant {
    let path = format!("{}/tests/fixtures/tenants/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn a_minimal_team_gets_isolation_defaults_and_storage() {
    let d = build(&fixture("team-minimal"), &Settings::default()).unwrap();
    assert_eq!(d.namespace.metadata.name.as_deref(), Some("paddock-team-a"));
    let labels = d.namespace.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "paddock");
    assert_eq!(labels["paddock.dev/tenant"], "team-a");
    let owner = &d.namespace.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Tenant", "team-a", Some(true)));

    let names: Vec<_> = d.policies.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["default-deny", "allow-dns"]);
    let deny = d.policies[0].spec.as_ref().unwrap();
    assert_eq!(deny.policy_types.as_deref(), Some(&["Ingress".to_string(), "Egress".to_string()][..]));
    assert!(deny.ingress.is_none() && deny.egress.is_none());
    let dns = serde_json::to_value(&d.policies[1]).unwrap();
    assert_eq!(dns["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"], "kube-dns");
    assert_eq!(dns["spec"]["egress"][0]["ports"].as_array().unwrap().len(), 2);
    assert!(d.policies.iter().all(|p| p.metadata.namespace.as_deref() == Some("paddock-team-a")));

    assert!(d.quota.is_none(), "no quota fields, no ResourceQuota");
    let lr = serde_json::to_value(&d.limits).unwrap();
    assert_eq!(lr["spec"]["limits"][0]["defaultRequest"], serde_json::json!({"cpu": "100m", "memory": "128Mi"}));
    assert!(lr["spec"]["limits"][0].get("default").is_none());
    // The installation's defaults apply when the tenant does not say.
    let custom =
        Settings { default_cpu_request: "50m".into(), default_memory_request: "64Mi".into(), ..Default::default() };
    let d2 = build(&fixture("team-minimal"), &custom).unwrap();
    let lr2 = serde_json::to_value(&d2.limits).unwrap();
    assert_eq!(lr2["spec"]["limits"][0]["defaultRequest"], serde_json::json!({"cpu": "50m", "memory": "64Mi"}));
    assert_eq!(d.service_account.automount_service_account_token, Some(false));
    assert_eq!(d.role_binding.subjects.as_ref().unwrap()[0].name, "tenant");
    let pvc = d.storage.unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("storage"));
    let ps = pvc.spec.unwrap();
    assert_eq!(ps.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(ps.resources.unwrap().requests.unwrap()["storage"].0, "10Gi");
    assert!(ps.storage_class_name.is_none(), "the cluster default class");
    assert!(pvc.metadata.owner_references.is_none(), "the claim follows the namespace, not the tenant");
}

#[test]
fn a_group_with_everything_set() {
    let d =
        build(&fixture("group-everything"), &Settings { namespace_prefix: "t-".into(), ..Default::default() }).unwrap();
    assert_eq!(d.namespace.metadata.name.as_deref(), Some("t-lab-group"));
    assert_eq!(d.namespace.metadata.labels.unwrap()["paddock.dev/tenant-kind"], "group");
    let hard = d.quota.unwrap().spec.unwrap().hard.unwrap();
    assert_eq!(hard["pods"].0, "20");
    assert_eq!(hard["requests.cpu"].0, "4");
    assert_eq!(hard["requests.memory"].0, "8Gi");
    assert_eq!(hard["requests.storage"].0, "100Gi");
    assert_eq!(hard["count/instances.paddock.dev"].0, "5");
    let lr = serde_json::to_value(&d.limits).unwrap();
    assert_eq!(lr["spec"]["limits"][0]["default"], serde_json::json!({"cpu": "1", "memory": "1Gi"}));
    let names: Vec<_> = d.policies.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["default-deny", "allow-dns", "allow-internet", "allow-egress-cidrs"]);
    assert_eq!(names, controller::tenant::build::POLICIES, "the reconciler deletes unwanted ones by this list");
    let internet = serde_json::to_value(&d.policies[2]).unwrap();
    let block = &internet["spec"]["egress"][0]["to"][0]["ipBlock"];
    assert_eq!(block["cidr"], "0.0.0.0/0");
    assert!(block["except"].as_array().unwrap().iter().any(|c| c == "169.254.0.0/16"));
    assert_eq!(internet["spec"]["egress"][0]["ports"][0]["port"], 443);
    let pvc = d.storage.unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("shared"));
    assert_eq!(pvc.metadata.labels.unwrap()["paddock.dev/retain"], "false");
    let ps = pvc.spec.unwrap();
    assert_eq!(ps.access_modes.unwrap(), ["ReadWriteMany"]);
    assert_eq!(ps.storage_class_name.as_deref(), Some("nfs"));
}

#[test]
fn an_invalid_tenant_names_every_problem() {
    let problems = build(&fixture("invalid"), &Settings::default()).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(text[0].starts_with("metadata.name: \"Bad_Name\" must be a DNS label"), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("spec.quota.cpu: \"plenty\"")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("spec.storage.size:")), "{text:?}");
}
