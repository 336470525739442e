//! `paddock template apply|list|get|delete` through the API.

use crate::client::output::{Format, cell, fields, print, section, show};
use crate::client::wait::{Step, WaitArgs, poll};
use crate::client::{ClientArgs, Refused};
use anyhow::{Context, Result, bail};
use api::model::{NewTemplate, TemplateView};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: TemplateCommand,
}

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Create or replace templates from a YAML file (or a directory of them) of Template manifests (admin token).
    Apply {
        /// A YAML file of Template manifests (`---` between them), a directory of such files, or - for standard input.
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// List templates with whether each was accepted.
    List,
    /// Show one template.
    Get {
        /// The template's name.
        name: String,
    },
    /// Delete a template (admin token). Its instances keep running until they
    /// stop; until the last one has, the template stays and starts no new ones.
    Delete {
        /// The template's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

const HEADER: &[&str] = &["NAME", "PODS", "TTL", "MAX/TENANT", "POOL", "ACCEPTED"];

fn condition(t: &TemplateView) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    t.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Accepted"))
}

fn accepted(t: &TemplateView) -> Option<String> {
    condition(t).map(|c| if c.status == "True" { "True".to_string() } else { format!("False: {}", c.message) })
}

/// The warm pool in a few words: `3/5 ready` (and its state when not Ready).
fn pool(t: &TemplateView) -> Option<String> {
    let size = t.spec.warm_pool.as_ref()?.size;
    let Some(p) = t.status.as_ref().and_then(|s| s.pool.as_ref()) else { return Some(format!("0/{size} ready")) };
    let state = if p.state == "Ready" || p.state.is_empty() { String::new() } else { format!(", {}", p.state) };
    Some(format!("{}/{size} ready{state}", p.ready))
}

fn row(t: &TemplateView) -> Vec<String> {
    vec![
        t.name.clone(),
        t.spec.pods.len().to_string(),
        cell(t.spec.ttl.clone()),
        t.spec.max_per_tenant.to_string(),
        cell(pool(t)),
        cell(accepted(t)),
    ]
}

/// One template for a person: its limits, its pods and ports, and its pool.
fn detail(t: &TemplateView) -> String {
    let s = &t.spec;
    let mut lines = vec![
        ("Name", t.name.clone()),
        ("Accepted", cell(accepted(t))),
        ("Deleting", (if t.deleting { "yes: kept until its last instance stops" } else { "no" }).into()),
        ("TTL", s.ttl.clone().unwrap_or_else(|| "none: instances run until stopped".into())),
        ("Max TTL", s.max_ttl.clone().unwrap_or_else(|| "none: renewals are not capped".into())),
        ("Per tenant", format!("at most {} at once", s.max_per_tenant)),
        ("Runtime class", cell(s.runtime_class_name.clone())),
    ];
    if let Some(w) = &s.warm_pool {
        let p = t.status.as_ref().and_then(|st| st.pool.as_ref());
        let now = p.map_or_else(
            || "no status yet".to_string(),
            |p| {
                let msg = if p.message.is_empty() { String::new() } else { format!(": {}", p.message) };
                format!(
                    "{} ({} ready, {} starting, {} claimed, {} failures){msg}",
                    p.state, p.ready, p.starting, p.claimed, p.failures
                )
            },
        );
        lines.push(("Warm pool", format!("size {}, {now}", w.size)));
    }
    let pods: Vec<Vec<String>> = s
        .pods
        .iter()
        .map(|p| {
            let ports: Vec<String> = p
                .ports
                .iter()
                .map(|x| format!("{}:{}/{}{}", x.name, x.port, x.protocol, if x.expose { " (exposed)" } else { "" }))
                .collect();
            vec![p.name.clone(), p.image.clone(), if ports.is_empty() { "-".into() } else { ports.join(", ") }]
        })
        .collect();
    fields(&lines) + &section("Pods", &["NAME", "IMAGE", "PORTS"], &pods)
}

/// The templates of a file, or of every .yaml/.yml/.json file of a directory.
fn manifests(path: &PathBuf) -> Result<Vec<NewTemplate>> {
    if !path.is_dir() {
        return manifests_in(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("-f {}: cannot read the directory", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("-f {}: no .yaml, .yml or .json files in it", path.display());
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(manifests_in(&f)?);
    }
    Ok(out)
}

/// The documents of a manifest file: `{metadata: {name}, spec}` each.
fn manifests_in(file: &std::path::Path) -> Result<Vec<NewTemplate>> {
    let text = super::read_arg(file)?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let v = serde_json::Value::deserialize(doc)
            .with_context(|| format!("-f {}: document {} is not valid YAML", file.display(), i + 1))?;
        if v.is_null() {
            continue;
        }
        if let Some(kind) = v.get("kind").and_then(|k| k.as_str())
            && kind != "Template"
        {
            bail!("-f {}: document {} is a {kind}, not a Template", file.display(), i + 1);
        }
        let name = v.pointer("/metadata/name").or_else(|| v.get("name")).and_then(|n| n.as_str()).map(str::to_string);
        let Some(name) = name else { bail!("-f {}: document {} has no metadata.name", file.display(), i + 1) };
        let spec =
            v.get("spec").cloned().with_context(|| format!("-f {}: template {name} has no spec", file.display()))?;
        let spec =
            super::decode_spec(spec).map_err(|e| anyhow::anyhow!("-f {}: template {name}: {e}", file.display()))?;
        out.push(NewTemplate { name: Some(name), spec });
    }
    if out.is_empty() {
        bail!("-f {}: no templates in it", file.display());
    }
    Ok(out)
}

/// Every problem of every template, checked as the API checks them, before
/// any is sent: a file with one bad template changes nothing.
fn check(templates: &[NewTemplate]) -> Result<()> {
    let mut bad = Vec::new();
    for t in templates {
        let name = t.name.as_deref().unwrap_or_default();
        let problems: Vec<String> = resources::template::validate_name(name)
            .into_iter()
            .chain(t.spec.validate())
            .map(|p| p.to_string())
            .collect();
        if !problems.is_empty() {
            bad.push(format!("template {name}: {}", problems.join("; ")));
        }
    }
    if !bad.is_empty() {
        // Exit code 1, as the API's own refusal of an invalid template would give.
        return Err(Refused(format!("nothing was applied:\n  {}", bad.join("\n  "))).into());
    }
    Ok(())
}

pub async fn run(args: TemplateArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    match args.command {
        TemplateCommand::Apply { file } => {
            let templates = manifests(&file)?;
            check(&templates)?;
            let mut saved: Vec<TemplateView> = Vec::new();
            for t in templates {
                let name = t.name.clone().unwrap_or_default();
                match c.send(c.request(Method::PUT, &format!("/v1/templates/{name}")).json(&t)).await {
                    Ok(v) => saved.push(v),
                    // Say what was applied before the failure (retrying the file re-applies it harmlessly).
                    Err(e) if !saved.is_empty() => {
                        let done: Vec<&str> = saved.iter().map(|v| v.name.as_str()).collect();
                        return Err(e.context(format!("applied {} before template {name} failed", done.join(", "))));
                    }
                    Err(e) => return Err(e),
                }
            }
            print(out, &saved, HEADER, |v| v.iter().map(row).collect())
        }
        TemplateCommand::List => {
            let items: Vec<TemplateView> = c.list_all("/v1/templates").await?;
            print(out, &items, HEADER, |v| v.iter().map(row).collect())
        }
        TemplateCommand::Get { name } => {
            let t: TemplateView = c.get(&format!("/v1/templates/{name}")).await?;
            show(out, &t, detail)
        }
        TemplateCommand::Delete { name, wait } => {
            let path = format!("/v1/templates/{name}");
            // 202 with the template (its finalizer holds it until no instance
            // uses it), 204 when it went at once.
            let mut left: Option<TemplateView> = c.delete(&path).await?;
            if wait.wait && left.is_some() {
                let step = |now: Option<&TemplateView>| match now {
                    None => Step::Done,
                    Some(t) => Step::Wait("Deleting".into(), condition(t).map(|c| c.message.clone())),
                };
                left = poll(&c, &path, &name, wait.timeout, out == Format::Table, step).await?;
            }
            match (out, &left) {
                (Format::Table, None) => println!("template {name} deleted"),
                (Format::Table, Some(_)) => {
                    println!(
                        "template {name} is being deleted: it starts no new instance, and goes once no instance uses it \
                         (--wait waits for that)"
                    )
                }
                _ => print(out, &serde_json::json!({"name": name, "gone": left.is_none()}), &[], |_| Vec::new())?,
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use api::model::TemplateView;

    fn pooled(status: serde_json::Value) -> TemplateView {
        serde_json::from_value(serde_json::json!({"name": "pooled",
            "spec": {"ttl": "1h", "maxPerTenant": 2, "warmPool": {"size": 5},
                "pods": [{"name": "app", "image": "nginx:1.27", "ports": [{"name": "http", "port": 80, "expose": true}]}]},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn list_and_get_show_the_warm_pool() {
        let t = pooled(serde_json::json!({"pool": {"ready": 3, "starting": 2, "claimed": 1, "failures": 4,
            "state": "Failing", "message": "pod app cannot pull its image"}}));
        assert_eq!(super::row(&t)[4], "3/5 ready, Failing");
        let text = super::detail(&t);
        for want in [
            "TTL:           1h",
            "Max TTL:       none: renewals are not capped",
            "Warm pool:     size 5, Failing (3 ready, 2 starting, 1 claimed, 4 failures): pod app cannot pull its image",
            "app    nginx:1.27   http:80/TCP (exposed)",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert_eq!(super::row(&pooled(serde_json::Value::Null))[4], "0/5 ready");
    }
}
