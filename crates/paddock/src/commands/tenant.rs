//! `paddock tenant create|update|list|get|kubeconfig|delete` through the API.

use crate::client::ClientArgs;
use crate::client::output::{Format, cell, fields, print, section, show};
use crate::client::wait::{Step, WaitArgs, poll};
use anyhow::{Context, Result, bail};
use api::model::{NewKubeconfig, NewTenant, TenantKubeconfig, TenantView};
use clap::{Args, Subcommand};
use resources::TenantSpec;
use resources::tenant::TenantKind;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TenantArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant (admin token).
    Create {
        /// The tenant's name: a DNS label (its namespace is the prefix plus this); optional
        /// with a -f manifest that has metadata.name.
        name: Option<String>,
        /// Team, User or Group, in any case (default: Team, or the file's).
        #[arg(long, value_enum, ignore_case = true)]
        kind: Option<Kind>,
        #[command(flatten)]
        spec: SpecFlags,
        /// The whole spec from a YAML or JSON file, or - for standard input (the flags then override it).
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Change a tenant: only what the flags say (admin token). Storage may grow, not shrink.
    Update {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        spec: SpecFlags,
    },
    /// List tenants (a tenant token sees its own).
    List,
    /// Show one tenant.
    Get {
        /// The tenant's name.
        name: String,
    },
    /// A kubeconfig for the tenant's namespace: kubectl may read its Instances, pods, logs, Services, Events
    /// (`> team.kubeconfig`). Its token expires; ask again for a new one.
    Kubeconfig {
        /// The tenant's name (default: the one a tenant token belongs to).
        name: Option<String>,
        /// How long it works, 10m to 24h.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Delete a tenant and everything in its namespace (admin token).
    Delete {
        /// The tenant's name.
        name: String,
        /// Do not ask, on a terminal, before deleting a tenant that runs instances.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// The parts of a tenant's spec a flag can set (for `create` and `update`).
#[derive(Args, Debug, Default)]
pub struct SpecFlags {
    /// A name for people, shown by `tenant get` and the API.
    #[arg(long)]
    display_name: Option<String>,
    /// Instances the tenant may run at once.
    #[arg(long)]
    instances: Option<u32>,
    /// Total cpu requests, e.g. 4.
    #[arg(long)]
    cpu: Option<String>,
    /// Total memory requests, e.g. 8Gi.
    #[arg(long)]
    memory: Option<String>,
    /// A Group tenant whose shared storage this tenant's instances mount (repeatable; replaces the list).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Persistent storage of this size, e.g. 10Gi.
    #[arg(long, conflicts_with = "no_storage")]
    storage: Option<String>,
    /// No persistent storage.
    #[arg(long)]
    no_storage: bool,
    /// A team VPN with this many client slots (1 to 250); 0 turns it off.
    #[arg(long, value_name = "CLIENTS")]
    vpn_clients: Option<u32>,
}

impl SpecFlags {
    /// What the flags say, as a JSON merge patch of a tenant's spec.
    fn patch(&self) -> serde_json::Value {
        let mut p = serde_json::Map::new();
        if let Some(d) = &self.display_name {
            p.insert("displayName".into(), d.clone().into());
        }
        let mut quota = serde_json::Map::new();
        if let Some(n) = self.instances {
            quota.insert("instances".into(), n.into());
        }
        for (k, v) in [("cpu", &self.cpu), ("memory", &self.memory)] {
            if let Some(v) = v {
                quota.insert(k.into(), v.clone().into());
            }
        }
        if !quota.is_empty() {
            p.insert("quota".into(), quota.into());
        }
        if !self.groups.is_empty() {
            p.insert("groups".into(), self.groups.clone().into());
        }
        match (&self.storage, self.no_storage) {
            (Some(size), _) => {
                p.insert("storage".into(), serde_json::json!({"enabled": true, "size": size}));
            }
            (None, true) => {
                p.insert("storage".into(), serde_json::json!({"enabled": false}));
            }
            (None, false) => {}
        }
        match self.vpn_clients {
            Some(0) => {
                p.insert("vpn".into(), serde_json::json!({"enabled": false}));
            }
            Some(n) => {
                p.insert("vpn".into(), serde_json::json!({"enabled": true, "clients": n}));
            }
            None => {}
        }
        p.into()
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Team,
    User,
    Group,
}

const HEADER: &[&str] = &["NAME", "KIND", "PHASE", "NAMESPACE", "CREATED"];

/// The tenant's phase, Terminating once it is being deleted.
fn phase(t: &TenantView) -> String {
    cell(if t.deleting { Some("Terminating".to_string()) } else { t.status.as_ref().and_then(|s| s.phase.clone()) })
}

fn row(t: &TenantView) -> Vec<String> {
    let st = t.status.as_ref();
    vec![
        t.name.clone(),
        format!("{:?}", t.spec.kind),
        phase(t),
        cell(st.and_then(|s| s.namespace.clone())),
        cell(t.created.clone()),
    ]
}

/// One tenant for a person: its limits, storage, network and VPN, and its conditions.
fn detail(t: &TenantView) -> String {
    let (spec, st) = (&t.spec, t.status.as_ref());
    let q = &spec.quota;
    let limits: Vec<String> = [
        ("instances", q.instances.map(|n| n.to_string())),
        ("pods", q.pods.map(|n| n.to_string())),
        ("cpu", q.cpu.clone()),
        ("memory", q.memory.clone()),
        ("storage", q.storage.clone()),
    ]
    .into_iter()
    .filter_map(|(what, v)| v.map(|v| format!("{what} {v}")))
    .collect();
    let storage = match (&spec.storage, st.and_then(|s| s.storage_capacity.as_ref())) {
        (s, _) if !s.enabled => "none".to_string(),
        (s, got) => format!(
            "{} requested{}{}",
            s.size,
            got.map(|c| format!(", {c} bound")).unwrap_or_default(),
            if s.retain_on_delete { ", kept when the tenant is deleted" } else { "" }
        ),
    };
    let e = &spec.egress;
    let mut egress = vec![if e.dns { "DNS" } else { "no DNS" }.to_string()];
    egress.push(if e.internet { "the internet" } else { "no internet" }.into());
    egress.extend(e.cidrs.iter().cloned());
    let mut lines = vec![
        ("Name", t.name.clone()),
        ("Kind", format!("{:?}", spec.kind)),
        ("Display name", cell(spec.display_name.clone())),
        ("Phase", phase(t)),
        ("Namespace", cell(st.and_then(|s| s.namespace.clone()))),
        ("Created", cell(t.created.clone())),
        ("Limits", if limits.is_empty() { "none".into() } else { limits.join(", ") }),
        ("Storage", storage),
        ("Egress", egress.join(", ")),
    ];
    if !spec.groups.is_empty() {
        lines.push(("Groups", spec.groups.join(", ")));
    }
    if let Some(v) = spec.vpn.as_ref().filter(|v| v.enabled) {
        let s = st.and_then(|s| s.vpn.as_ref());
        let state = match s {
            Some(s) if s.ready => format!("ready at {}", cell(s.endpoint.clone())),
            _ => "not ready yet".into(),
        };
        lines.push(("VPN", format!("{} clients, {state}", v.clients)));
    }
    let conds: Vec<Vec<String>> = st
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()])
        .collect();
    fields(&lines) + &section("Conditions", &["TYPE", "STATUS", "REASON", "MESSAGE"], &conds)
}

/// Where a tenant stands while `create --wait` waits for it.
fn readiness(t: Option<&TenantView>) -> Step {
    let Some(t) = t else { return Step::Fail("the tenant was deleted while it was being provisioned".into()) };
    let ready = t.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match (phase(t).as_str(), ready) {
        ("Ready", _) => Step::Done,
        ("Failed", c) => Step::Fail(format!(
            "tenant {} failed: {}",
            t.name,
            c.map_or("no reason given".to_string(), |c| format!("{} ({})", c.message, c.reason))
        )),
        ("Terminating", _) => Step::Fail(format!("tenant {} is being deleted", t.name)),
        (p, c) => Step::Wait(if p == "-" { "Pending".into() } else { p.to_string() }, c.map(|c| c.message.clone())),
    }
}

/// Where a tenant stands while `delete --wait` waits for it to go.
fn removal(t: Option<&TenantView>) -> Step {
    let Some(t) = t else { return Step::Done };
    let st = t.status.as_ref();
    // Until the controller's first write about the deletion, the status
    // still tells of the tenant before it.
    let message = match st.filter(|s| s.phase.as_deref() == Some("Terminating")) {
        Some(s) => s.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.message.clone()),
        None => Some(format!(
            "deleting namespace {}",
            st.and_then(|s| s.namespace.as_deref()).unwrap_or("and everything in it")
        )),
    };
    Step::Wait(phase(t), message)
}

/// A tenant from a file: a Tenant manifest (its metadata.name too), `{spec: …}`
/// or the bare spec.
fn from_file(f: &std::path::Path) -> Result<(Option<String>, TenantSpec)> {
    let v = read_yaml(f)?;
    if let Some(kind) = v.get("kind").and_then(|k| k.as_str())
        && v.get("spec").is_some()
        && kind != "Tenant"
    {
        bail!("-f {}: the file holds a {kind}, not a Tenant", f.display());
    }
    let name = v.pointer("/metadata/name").and_then(|n| n.as_str()).map(str::to_string);
    let spec = v.get("spec").cloned().unwrap_or(v);
    let spec = super::decode_spec::<TenantSpec>(spec)
        .map_err(|e| anyhow::anyhow!("-f {}: not a tenant spec: {e}", f.display()))?;
    Ok((name, spec))
}

pub fn read_yaml(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = super::read_arg(path)?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("-f {}: not valid YAML or JSON", path.display()))
}

pub async fn run(args: TenantArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    match args.command {
        TenantCommand::Create { name, kind, spec: flags, file, wait } => {
            let (named, mut spec) = match &file {
                Some(f) => from_file(f)?,
                None => (None, serde_json::from_value(serde_json::json!({"kind": "Team"}))?),
            };
            let name = match (name, named) {
                (Some(n), Some(m)) if n != m => {
                    bail!("NAME {n:?} and the file's metadata.name {m:?} differ: give one, or the same")
                }
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => bail!("name the tenant: NAME, or metadata.name in the -f file"),
            };
            if let Some(kind) = kind {
                spec.kind = match kind {
                    Kind::Team => TenantKind::Team,
                    Kind::User => TenantKind::User,
                    Kind::Group => TenantKind::Group,
                };
            }
            let mut merged = serde_json::to_value(&spec)?;
            json_patch::merge(&mut merged, &flags.patch());
            let spec: TenantSpec = super::decode_spec(merged).map_err(|e| anyhow::anyhow!("the flags: {e}"))?;
            let mut t: TenantView = c.post("/v1/tenants", &NewTenant { name: name.clone(), spec }).await?;
            let path = format!("/v1/tenants/{name}");
            if wait.wait
                && let Some(now) = poll(&c, &path, &name, wait.timeout, out == Format::Table, readiness).await?
            {
                t = now;
            }
            print(out, &t, HEADER, |t| vec![row(t)])
        }
        TenantCommand::Update { name, spec } => {
            let patch = spec.patch();
            if patch.as_object().is_some_and(|p| p.is_empty()) {
                bail!(
                    "nothing to change: give --display-name, --instances, --cpu, --memory, --group, --storage, \
                     --no-storage or --vpn-clients"
                );
            }
            let req = c.request(reqwest::Method::PATCH, &format!("/v1/tenants/{name}")).json(&patch);
            let t: TenantView = c.send(req).await?;
            print(out, &t, HEADER, |t| vec![row(t)])
        }
        TenantCommand::List => {
            let items: Vec<TenantView> = c.list_all("/v1/tenants").await?;
            print(out, &items, HEADER, |v| v.iter().map(row).collect())
        }
        TenantCommand::Get { name } => {
            let t: TenantView = c.get(&format!("/v1/tenants/{name}")).await?;
            show(out, &t, detail)
        }
        TenantCommand::Kubeconfig { name, ttl } => {
            let name = match name {
                Some(n) => n,
                None => args
                    .client
                    .tenant(&None)
                    .map_err(|_| anyhow::anyhow!("name the tenant: paddock tenant kubeconfig NAME"))?,
            };
            let k: TenantKubeconfig =
                c.post(&format!("/v1/tenants/{name}/kubeconfig"), &NewKubeconfig { ttl: Some(ttl) }).await?;
            show(out, &k, |k| k.kubeconfig.clone())?;
            if out != Format::Table {
                return Ok(());
            }
            eprintln!(
                "kubeconfig for tenant {} (namespace {}, ServiceAccount {}), valid until {}",
                k.tenant, k.namespace, k.service_account, k.expires
            );
            Ok(())
        }
        TenantCommand::Delete { name, yes, wait } => {
            let path = format!("/v1/tenants/{name}");
            if !yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let running: Vec<api::model::InstanceView> = c.list_all(&format!("{path}/instances")).await?;
                if !running.is_empty() {
                    let some: Vec<&str> = running.iter().take(5).map(|i| i.name.as_str()).collect();
                    let more = if running.len() > 5 { ", ..." } else { "" };
                    crate::client::confirm(
                        &format!(
                            "tenant {name} runs {} instance(s) ({}{more}); delete it, its namespace and them?",
                            running.len(),
                            some.join(", ")
                        ),
                        false,
                    )?;
                }
            }
            let t: TenantView = c.delete(&path).await?;
            if !wait.wait {
                return print(out, &t, HEADER, |t| vec![row(t)]);
            }
            poll(&c, &path, &name, wait.timeout, out == Format::Table, removal).await?;
            match out {
                Format::Table => {
                    println!("tenant {name} deleted, its namespace with it");
                    Ok(())
                }
                _ => print(out, &t, HEADER, |t| vec![row(t)]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use api::model::TenantView;

    #[test]
    fn a_file_gives_a_manifest_name_and_refuses_other_kinds() {
        let dir = std::env::temp_dir().join(format!("paddock-tenant-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let manifest = write(
            "t.yaml",
            "apiVersion: paddock.dev/v1alpha1\nkind: Tenant\nmetadata: {name: red}\nspec: {kind: Team, quota: {instances: 2}}\n",
        );
        let (name, spec) = super::from_file(&manifest).unwrap();
        assert_eq!((name.as_deref(), spec.quota.instances), (Some("red"), Some(2)));
        let bare = write("s.yaml", "kind: User\n");
        assert_eq!(super::from_file(&bare).unwrap().0, None);
        let other = write("o.yaml", "kind: Template\nmetadata: {name: x}\nspec: {pods: []}\n");
        let err = super::from_file(&other).unwrap_err().to_string();
        assert!(err.contains("holds a Template, not a Tenant"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tenant(deleting: bool, phase: &str, reason: &str, message: &str) -> TenantView {
        serde_json::from_value(serde_json::json!({"name": "red", "deleting": deleting, "spec": {"kind": "Team"},
            "status": {"namespace": "paddock-red", "phase": phase, "conditions": [{"type": "Ready",
                "status": "False", "reason": reason, "message": message, "lastTransitionTime": "2026-11-30T06:04:15Z"}]}}))
        .unwrap()
    }

    #[test]
    fn flags_are_a_merge_patch_of_only_what_they_say() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            spec: super::SpecFlags,
        }
        let patch = |args: &[&str]| Cli::parse_from([&["x"], args].concat()).spec.patch();
        assert_eq!(patch(&[]), serde_json::json!({}));
        assert_eq!(
            patch(&["--instances", "4", "--cpu", "2", "--group", "g1", "--group", "g2", "--vpn-clients", "3"]),
            serde_json::json!({"quota": {"instances": 4, "cpu": "2"}, "groups": ["g1", "g2"],
                "vpn": {"enabled": true, "clients": 3}})
        );
        assert_eq!(
            patch(&["--no-storage", "--vpn-clients", "0", "--display-name", "Red"]),
            serde_json::json!({"displayName": "Red", "storage": {"enabled": false}, "vpn": {"enabled": false}})
        );
        assert_eq!(patch(&["--storage", "5Gi"]), serde_json::json!({"storage": {"enabled": true, "size": "5Gi"}}));
        assert!(Cli::try_parse_from(["x", "--storage", "5Gi", "--no-storage"]).is_err());
    }

    #[test]
    fn waiting_reads_the_phase_and_says_why() {
        use crate::client::wait::Step;
        let waits = |s: Step| match s {
            Step::Wait(stage, message) => format!("{stage}: {}", message.unwrap_or_default()),
            Step::Done => "done".into(),
            Step::Fail(why) => format!("fail: {why}"),
        };
        let provisioning = tenant(false, "Provisioning", "Provisioning", "waiting for the storage volume to bind");
        assert_eq!(
            waits(super::readiness(Some(&provisioning))),
            "Provisioning: waiting for the storage volume to bind"
        );
        let failed = tenant(false, "Failed", "StorageRefused", "no StorageClass \"fast\"");
        assert_eq!(
            waits(super::readiness(Some(&failed))),
            "fail: tenant red failed: no StorageClass \"fast\" (StorageRefused)"
        );
        assert!(waits(super::readiness(None)).starts_with("fail: the tenant was deleted"));
        // A deletion the controller has not written about yet: the status is
        // still the tenant's before it, so the wait says what happens instead.
        let deleting = tenant(true, "Ready", "Provisioned", "namespace paddock-red and everything in it are in place");
        assert_eq!(waits(super::removal(Some(&deleting))), "Terminating: deleting namespace paddock-red");
        let terminating = tenant(true, "Terminating", "Terminating", "deleting namespace paddock-red (3 pods left)");
        assert_eq!(
            waits(super::removal(Some(&terminating))),
            "Terminating: deleting namespace paddock-red (3 pods left)"
        );
        assert_eq!(waits(super::removal(None)), "done");
    }

    #[test]
    fn get_shows_limits_storage_network_and_conditions() {
        let t: TenantView = serde_json::from_value(serde_json::json!({
            "name": "team-a", "created": "2026-11-30T06:04:15Z", "deleting": false,
            "spec": {"kind": "Team", "quota": {"instances": 3, "cpu": "2", "memory": "4Gi"},
                "storage": {"enabled": true, "size": "10Gi", "retainOnDelete": true},
                "egress": {"dns": true, "internet": false}, "vpn": {"enabled": true, "clients": 5}},
            "status": {"namespace": "paddock-team-a", "phase": "Ready", "storageCapacity": "10Gi",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "in place",
                    "lastTransitionTime": "2026-11-30T06:04:15Z"}]}}))
        .unwrap();
        let text = super::detail(&t);
        for want in [
            "Phase:        Ready",
            "Limits:       instances 3, cpu 2, memory 4Gi",
            "Storage:      10Gi requested, 10Gi bound, kept when the tenant is deleted",
            "Egress:       DNS, no internet",
            "VPN:          5 clients, not ready yet",
            "Ready   True     Provisioned   in place",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }
}
