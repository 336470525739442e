//! The instance reconciler's decision step from fixtures, with no server:
//! what `validate` decides for an instance and its world (template, tenant,
//! instances ahead of it), and that each refusal names its rule's reason.

use controller::config::Settings;
use controller::instance::validate::{Decision, validate};
use controller::instance::world::World;
use jiff::{SignedDuration, Timestamp};
use resources::{Instance, Template, Tenant};
use serde_json::{Value, json};
use std::sync::Arc;

fn fixture<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    // Through a JSON value, as the API server sees it (YAML enum tags differ).
    let v: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(v).unwrap()
}

fn world(template: Template, ahead: usize) -> World {
    World { template: Arc::new(template), tenant: Arc::new(fixture::<Tenant>("tenants/team-minimal.yaml")), ahead }
}

fn instance(created: Timestamp, extra: Value) -> Instance {
    let mut v = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": "web1", "namespace": "paddock-red", "uid": "u1", "creationTimestamp": created.to_string()},
        "spec": {"template": "ctf-web"}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn reason(d: &Decision) -> &str {
    match d {
        Decision::Fail(f) => f.reason,
        Decision::ReleaseFailed(_) => "release",
        Decision::Expire(_) => "expire",
        Decision::Run { .. } => "run",
        Decision::Suspend => "suspend",
    }
}

#[test]
fn a_valid_instance_runs_until_its_ttl() {
    let now = Timestamp::now();
    let tpl: Template = fixture("templates/ctf-web.yaml");
    let d = validate(&instance(now, json!({})), &world(tpl, 0), &Settings::default(), now);
    // The fixture's ttl is 2h.
    assert_eq!(d, Decision::Run { expires: Some(now + SignedDuration::from_hours(2)) });
}

#[test]
fn each_rule_fails_the_instance_with_its_own_reason() {
    let now = Timestamp::now();
    let s = Settings::default();
    let tpl: Template = fixture("templates/ctf-web.yaml");
    let mut deleting = tpl.clone();
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    let new = instance(now, json!({}));
    assert_eq!(reason(&validate(&new, &world(deleting.clone(), 0), &s, now)), "TemplateDeleting");
    let max = tpl.spec.max_per_tenant as usize;
    assert_eq!(reason(&validate(&new, &world(tpl.clone(), max), &s, now)), "LimitReached");
    assert_eq!(reason(&validate(&new, &world(tpl.clone(), max - 1), &s, now)), "run");
    let not_settable = instance(now, json!({"spec": {"env": {"FLAG": "mine"}}}));
    let d = validate(&not_settable, &world(tpl.clone(), 0), &s, now);
    assert_eq!(reason(&d), "InvalidSpec");
    let Decision::Fail(f) = d else { unreachable!() };
    assert!(f.message.contains("spec.env.FLAG"), "{}", f.message);
    let mut broken = tpl.clone();
    broken.spec.pods[0].image = String::new();
    assert_eq!(reason(&validate(&new, &world(broken, 0), &s, now)), "TemplateInvalid");
    // Started once, it keeps running: a deleting template or a lowered limit stop nothing.
    let started = instance(now, json!({"status": {"warm": false}}));
    assert_eq!(reason(&validate(&started, &world(deleting, 5), &s, now)), "run");
}

#[test]
fn failed_and_expired_instances_are_wound_down() {
    let now = Timestamp::now();
    let tpl: Template = fixture("templates/ctf-web.yaml");
    let failed_at = now - SignedDuration::from_mins(1);
    let failed = instance(
        now,
        json!({"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False", "reason": "LimitReached",
            "message": "x", "lastTransitionTime": failed_at.to_string()}]}}),
    );
    assert_eq!(
        validate(&failed, &world(tpl.clone(), 0), &Settings::default(), now),
        Decision::ReleaseFailed(failed_at)
    );
    let created = now - SignedDuration::from_hours(3);
    let old = instance(created, json!({}));
    let at = created + SignedDuration::from_hours(2);
    assert_eq!(validate(&old, &world(tpl, 0), &Settings::default(), now), Decision::Expire(at));
}

#[test]
fn a_suspended_instance_is_suspended_keeps_its_place_and_still_expires() {
    let now = Timestamp::now();
    let s = Settings::default();
    let tpl: Template = fixture("templates/ctf-web.yaml");
    let max = tpl.spec.max_per_tenant as usize;
    let suspended = instance(now, json!({"spec": {"suspend": true}}));
    assert_eq!(validate(&suspended, &world(tpl.clone(), 0), &s, now), Decision::Suspend);
    // Resumed: it was admitted once, so newer instances and a lowered limit do not stop it.
    let resumed = instance(now, json!({"status": {"phase": "Suspended", "suspended": now.to_string()}}));
    assert_eq!(reason(&validate(&resumed, &world(tpl.clone(), max + 3), &s, now)), "run");
    // A suspended instance's lifetime still runs out.
    let created = now - SignedDuration::from_hours(3);
    let old = instance(created, json!({"spec": {"suspend": true}}));
    assert_eq!(reason(&validate(&old, &world(tpl, 0), &s, now)), "expire");
}

#[test]
fn the_idle_clock_counts_from_the_newest_sign_of_use_of_a_running_instance() {
    use controller::instance::idle::deadline;
    use resources::instance::InstanceStatus;
    let now = Timestamp::now();
    let mut tpl: Template = fixture("templates/ctf-web.yaml");
    let status = |v: Value| -> InstanceStatus { serde_json::from_value(v).unwrap() };
    let ready = now - SignedDuration::from_mins(40);
    let running = status(json!({"phase": "Running", "ready": ready.to_string()}));
    assert_eq!(deadline(&running, &tpl), None, "the template reaps nothing");
    tpl.spec.idle = Some(serde_json::from_value(json!({"after": "30m"})).unwrap());
    assert_eq!(deadline(&running, &tpl), Some(ready + SignedDuration::from_mins(30)));
    let used = now - SignedDuration::from_mins(5);
    let heartbeat = status(json!({"phase": "Running", "ready": ready.to_string(), "lastActivity": used.to_string()}));
    assert_eq!(deadline(&heartbeat, &tpl), Some(used + SignedDuration::from_mins(30)));
    for phase in ["Starting", "Suspended", "Failed", "Pending"] {
        let s = status(json!({"phase": phase, "ready": ready.to_string()}));
        assert_eq!(deadline(&s, &tpl), None, "{phase} is not idle");
    }
    // The longest period there is does not overflow.
    tpl.spec.idle = Some(serde_json::from_value(json!({"after": "3650d"})).unwrap());
    assert!(deadline(&running, &tpl).is_some());
}
