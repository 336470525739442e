//! `paddock dev` as a process: it comes up with the demo tenant and templates,
//! instances started through the Kubernetes API and through the CLI (against
//! the API it prints) run, the CLI's exit codes hold, `/metrics` parses and
//! counts what happened, its JSON debug log holds none of the tokens, keys and
//! generated values it handed out, and SIGTERM stops it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use resources::{Instance, InstancePhase, Tenant};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{banner_value, start_dev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_dev_runs_the_platform() {
    let dir = std::env::temp_dir().join(format!("paddock-dev-{}", std::process::id()));
    let log_path = dir.join("paddock.log");
    let (mut child, banner, kc) = start_dev(&dir).await;
    // The exact line that points kubectl (and paddock nodes/audit) at the embedded cluster.
    let kc_abs = std::fs::canonicalize(&kc).unwrap();
    assert!(banner.contains(&format!("export KUBECONFIG={}", kc_abs.display())), "{banner}");

    let config =
        kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kc).unwrap(), &Default::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let tenants: Api<Tenant> = Api::all(client.clone());
    kubesim::testing::wait_for(&tenants, "demo", Duration::from_secs(30), |t| {
        t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
    })
    .await;
    let insts: Api<Instance> = Api::namespaced(client.clone(), "paddock-demo");
    let i: Instance = serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance", "metadata": {"name": "web1"}, "spec": {"template": "ctf-web"}})).unwrap();
    insts.create(&PostParams::default(), &i).await.unwrap();
    kubesim::testing::wait_for(&insts, "web1", Duration::from_secs(30), |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)
    })
    .await;
    kubectl_shows_the_instance_events(&kc).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "paddock-demo");
    for p in pods.list(&ListParams::default()).await.unwrap().items {
        let node = p.spec.unwrap().node_name.unwrap();
        assert!(
            node.starts_with("task-") || node.starts_with("shared-"),
            "task pods only on task/shared nodes, got {node}"
        );
    }

    let mut secrets = cli_against_the_api(&banner).await;
    let generated = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, "paddock-demo")
        .get("web1-secrets")
        .await
        .unwrap();
    for v in generated.data.unwrap().into_values() {
        secrets.push(String::from_utf8(v.0).unwrap());
    }
    metrics_count_what_happened(&banner_value(&banner, "API:")).await;
    the_bundle_s_rbac_allows_every_request(&banner).await;

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "paddock dev exits cleanly on SIGTERM: {status}");

    // The log: JSON lines with request ids, and none of what was handed out.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().count() > 100, "a debug log of a whole run");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(log.contains("\"request_id\""), "requests are logged with their ids");
    assert!(secrets.len() >= 6, "{secrets:?}");
    for s in &secrets {
        assert!(s.len() >= 16, "a secret worth looking for: {s:?}");
        assert!(!log.contains(s.as_str()), "the log leaks a secret it issued: {s:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kubectl describe` and `kubectl get events` show the Events Paddock wrote
/// (through events.k8s.io; kubectl reads core Events).
async fn kubectl_shows_the_instance_events(kc: &std::path::Path) {
    if Command::new("kubectl").args(["version", "--client"]).output().is_err() {
        eprintln!("kubectl is not installed: the kubectl describe check is skipped");
        return;
    }
    let run = |args: &'static [&'static str]| {
        let kc = kc.to_path_buf();
        async move {
            let out = tokio::process::Command::new("kubectl").arg("--kubeconfig").arg(&kc).args(args).output().await;
            let out = out.expect("kubectl runs");
            assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let mut described = String::new();
    for _ in 0..50 {
        described = run(&["describe", "instance", "web1", "-n", "paddock-demo"]).await;
        if described.contains("Running") && !described.contains("Events:  <none>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = described.split("Events:").nth(1).unwrap_or_default();
    assert!(events.contains("paddock.dev/controller") || events.contains("Running"), "{described}");
    let listed = run(&["get", "events", "-n", "paddock-demo"]).await;
    assert!(listed.starts_with("LAST SEEN") && listed.contains("instance/web1"), "{listed}");
}

type Series = Vec<(String, BTreeMap<String, String>, f64)>;

/// Parses the OpenMetrics text format strictly enough to catch a malformed
/// exposition: comments, `name{k="v",...} value` lines, the `# EOF` end.
fn parse_exposition(text: &str) -> Series {
    assert!(text.ends_with("# EOF\n"), "an exposition ends with # EOF");
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let kind = c.split(' ').next().unwrap();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "unknown comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, mut rest) = match series.split_once('{') {
            Some((n, r)) => (n, r.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"))),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name: {line}");
        let mut labels = BTreeMap::new();
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
            let mut v = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => v.push(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c }).unwrap()),
                    Some((i, '"')) => break i,
                    Some((_, c)) => v.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            };
            labels.insert(k.to_string(), v);
            rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
        }
        out.push((name.to_string(), labels, value));
    }
    out
}

/// Every metric family the process exposes is in docs/observability.md's
/// table, with its type, so the reference cannot fall behind the code.
fn every_metric_is_documented(text: &str) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/observability.md")).unwrap();
    let documented: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (family, kind) = rest.split_once(' ').unwrap();
        // OpenMetrics names a counter's family without `_total`; the table names the series.
        let name = if kind == "counter" { format!("{family}_total") } else { family.to_string() };
        match documented.get(&name) {
            Some(t) => assert_eq!(t, kind, "docs/observability.md gives {name} the type {t}, the exposition {kind}"),
            None => panic!("{name} ({kind}) is exposed but not in docs/observability.md's metrics table"),
        }
    }
}

/// The value of the one series named `name` whose labels include `want`.
fn value(all: &Series, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    all.iter()
        .find(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

async fn metrics_count_what_happened(url: &str) {
    let resp = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().await.unwrap();
    every_metric_is_documented(&text);
    let all = parse_exposition(&text);
    let at_least = |name: &str, want: &[(&str, &str)], min: f64| {
        let v = value(&all, name, want).unwrap_or_else(|| panic!("{name}{want:?} is missing"));
        assert!(v >= min, "{name}{want:?} = {v}, expected at least {min}");
    };
    let route = "/v1/tenants/{tenant}/instances";
    at_least("paddock_api_requests_total", &[("route", route), ("method", "POST"), ("code", "201")], 1.0);
    at_least("paddock_api_request_duration_seconds_count", &[("route", route), ("method", "POST")], 1.0);
    at_least("paddock_api_request_duration_seconds_bucket", &[("route", route), ("le", "+Inf")], 1.0);
    for c in ["tenant", "instance", "template"] {
        at_least("paddock_reconciles_total", &[("controller", c), ("result", "success")], 1.0);
        at_least("paddock_reconcile_duration_seconds_count", &[("controller", c)], 1.0);
    }
    assert_eq!(value(&all, "paddock_instances", &[("phase", "Running"), ("template", "ctf-web")]), Some(1.0));
    at_least("paddock_instance_start_seconds_count", &[("launch", "cold")], 2.0);
    at_least("paddock_instance_start_phase_seconds_count", &[("launch", "cold"), ("phase", "scheduled")], 2.0);
    at_least("paddock_events_total", &[("kind", "Instance"), ("type", "Normal"), ("reason", "Running")], 2.0);
    at_least("paddock_events_total", &[("kind", "Tenant"), ("reason", "Provisioned")], 1.0);
    at_least("paddock_sse_events_total", &[], 1.0);
    at_least("paddock_sse_deliveries_total", &[], 1.0);
    assert!(value(&all, "paddock_sse_clients", &[]).is_some());
    // Routes are labelled by their template, never by a tenant's or instance's name.
    for (n, l, _) in &all {
        if n == "paddock_api_requests_total" {
            let r = &l["route"];
            assert!(r.starts_with('/') && !r.contains("demo") && !r.contains("ci-runner"), "{r}");
        }
    }
}

/// Runs `paddock ARGS` with the URL and token; returns (exit code, stdout, stderr).
fn paddock(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    cli(args, &[("PADDOCK_URL", url), ("PADDOCK_TOKEN", token)])
}

/// Runs `paddock ARGS` with `env` set and PADDOCK_URL, PADDOCK_TOKEN and
/// PADDOCK_TENANT otherwise unset; returns (exit code, stdout, stderr).
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.args(args).env_remove("PADDOCK_URL").env_remove("PADDOCK_TOKEN").env_remove("PADDOCK_TENANT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `paddock ARGS` with no URL or token in the environment, only the
/// saved contexts of the config file `config`.
fn paddock_saved(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    cli(args, &[("PADDOCK_CONFIG", config.to_str().unwrap())])
}

/// `paddock login` saves a checked context (mode 0600) that later commands
/// use without flags; `context list|use|delete` manage them (issue 30.8).
fn logins(url: &str, admin: &str) {
    let config = std::env::temp_dir().join(format!("paddock-config-{}/config.yaml", std::process::id()));
    let _ = std::fs::remove_file(&config);
    // A bad token exits 2, as with every command.
    let (code, _, err) = paddock_saved(&config, &["login", "--url", url, "--token", "not-a-token", "--name", "bad"]);
    assert_eq!(code, 2, "{err}");
    assert!(!config.exists(), "a refused token is not saved");
    let (code, _, err) = paddock_saved(&config, &["login", "--url", url, "--token", admin, "--name", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("as admin") && err.contains("context dev"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, out, err) = paddock_saved(&config, &["tenant", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("demo"), "{out}");
    let (code, out, _) = paddock_saved(&config, &["context", "list"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with('*') && l.contains("dev") && l.contains("admin")), "{out}");
    let (code, _, err) = paddock_saved(&config, &["context", "use", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("saved: dev"), "{err}");
    let (code, _, _) = paddock_saved(&config, &["context", "delete", "dev"]);
    assert_eq!(code, 0);
    let (code, _, err) = paddock_saved(&config, &["tenant", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("paddock login"), "{err}");
    let _ = std::fs::remove_dir_all(config.parent().unwrap());
}

/// Runs `paddock ARGS` every 200 ms (at most 100 times) until `done(exit
/// code, stdout)`; returns that stdout.
async fn poll(url: &str, token: String, args: &[&str], done: impl Fn(i32, &str) -> bool) -> Option<String> {
    for _ in 0..100 {
        let (url, token, args) =
            (url.to_string(), token.clone(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let (code, out, _) = tokio::task::spawn_blocking(move || {
            paddock(&url, &token, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        if done(code, &out) {
            return Some(out);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Drives the CLI; returns the tokens and keys it was handed.
async fn cli_against_the_api(banner: &str) -> Vec<String> {
    let (url, admin) = (banner_value(banner, "API:"), banner_value(banner, "admin token:"));
    assert!(banner.contains("paddock instance start ctf-web --tenant demo --wait"), "{banner}");
    {
        let (url, admin) = (url.clone(), admin.clone());
        tokio::task::spawn_blocking(move || logins(&url, &admin)).await.unwrap();
    }
    let run = |token: String, args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || paddock(&url, &token, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let sv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, out, err) = run(admin.clone(), sv(&["tenant", "list"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME") && out.contains("demo"), "{out}");
    let (code, out, err) = run(admin.clone(), sv(&["template", "list", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t.as_array().unwrap().len(), 3, "{out}");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/templates");
    let (code, out, err) = run(admin.clone(), sv(&["template", "apply", "-f", examples])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ctf-web") && out.contains("notebook"), "{out}");
    // `-f -` reads the manifests from standard input.
    let piped = {
        let (url, admin) = (url.clone(), admin.clone());
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
                .args(["template", "apply", "-f", "-"])
                .env("PADDOCK_URL", url)
                .env("PADDOCK_TOKEN", admin)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let manifest = "metadata: {name: from-stdin}\nspec: {pods: [{name: web, image: nginx}]}\n";
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), manifest.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    };
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert!(String::from_utf8_lossy(&piped.stdout).contains("from-stdin"));
    // A file with one bad template applies none of them.
    let file = std::env::temp_dir().join(format!("paddock-templates-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "metadata: {name: fine-one}\nspec: {pods: [{name: web, image: nginx}]}\n---\n\
         metadata: {name: bad-one}\nspec: {ttl: 2h, maxTtl: 1h, pods: [{name: web, image: nginx}]}\n",
    )
    .unwrap();
    let (code, _, err) = run(admin.clone(), sv(&["template", "apply", "-f", file.to_str().unwrap()])).await.unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing was applied") && err.contains("template bad-one: spec.ttl:"), "{err}");
    let (code, _, err) = run(admin.clone(), sv(&["template", "get", "fine-one"])).await.unwrap();
    assert_eq!(code, 1, "fine-one must not have been applied: {err}");

    // A tenant token for demo; the CLI infers the tenant from it.
    let (code, out, err) = run(admin.clone(), sv(&["token", "issue", "--tenant", "demo", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let token = serde_json::from_str::<serde_json::Value>(&out).unwrap()["token"].as_str().unwrap().to_string();
    let (code, out, err) = run(
        token.clone(),
        sv(&["instance", "start", "ci-runner", "--label", "job=7", "--wait", "--timeout", "60s", "-o", "yaml"]),
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let started: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(started["phase"], "Running", "{out}");
    let name = started["name"].as_str().unwrap().to_string();
    let (code, out, _) = run(token.clone(), sv(&["instance", "list"])).await.unwrap();
    assert_eq!(code, 0);
    assert!(out.contains(&name) && out.contains("Running"), "{out}");
    // Labels: given at start, shown by get, selected by list -l (on the API and in --watch).
    let (code, out, err) = run(token.clone(), sv(&["instance", "list", "-l", "job=7", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let labelled: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!((labelled.len(), labelled[0]["name"].as_str()), (1, Some(name.as_str())), "{out}");
    let (code, out, _) = run(token.clone(), sv(&["instance", "get", &name])).await.unwrap();
    assert!(code == 0 && out.contains("Labels:") && out.contains("job=7"), "{out}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "list", "-l", "job in (7"])).await.unwrap();
    assert_eq!(code, 2, "a selector that does not parse is a usage error: {err}");
    let (code, _, err) =
        run(token.clone(), sv(&["instance", "start", "ci-runner", "--label", "paddock.dev/x=1"])).await.unwrap();
    assert!(code == 1 && err.contains("labels[paddock.dev/x]") && err.contains("reserved"), "{err}");
    let (code, out, err) = run(admin.clone(), sv(&["instance", "list", "-A"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("TENANT") && out.lines().any(|l| l.starts_with("demo") && l.contains(&name)), "{out}");
    // `get` is a detail view: the pods, and how to reach web1's exposed port.
    let (code, out, err) = run(token.clone(), sv(&["instance", "get", "web1"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Phase:") && out.contains("Pods:"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("web/http") && l.contains(".paddock-demo.svc:")), "{out}");
    // Logs: web1 has three pods, so which one must be said (kubesim's containers print nothing).
    let (code, _, err) = run(token.clone(), sv(&["instance", "logs", "web1"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pod: the instance has pods") && err.contains("say which one"), "{err}");
    let (code, out, err) =
        run(token.clone(), sv(&["instance", "logs", "web1", "--pod", "web", "--tail", "5"])).await.unwrap();
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = run(token.clone(), sv(&["tenant", "get", "demo"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Limits:") && out.contains("Conditions:"), "{out}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "renew", &name])).await.unwrap();
    assert!(code == 0 || err.contains("maxTtl"), "{code} {err}");
    // Suspend and resume: `--wait` follows the stream to Suspended, then to Running again.
    let (code, out, err) = run(token.clone(), sv(&["instance", "suspend", &name, "--wait"])).await.unwrap();
    assert!(code == 0 && out.contains("Suspended"), "{code} {out} {err}");
    let (code, out, err) = run(token.clone(), sv(&["instance", "resume", &name, "--wait"])).await.unwrap();
    assert!(code == 0 && out.contains("Running"), "{code} {out} {err}");
    // ci-runner does not reap idle instances: a heartbeat says so and records nothing.
    let (code, out, err) = run(token.clone(), sv(&["instance", "heartbeat", &name])).await.unwrap();
    assert!(code == 0 && out.contains("does not reap idle instances"), "{code} {out} {err}");
    // The tenant's volume: a directory, a file up and down again, refusals in words.
    let dir = std::env::temp_dir().join(format!("paddock-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (up, down) = (dir.join("notes.txt"), dir.join("back.txt"));
    std::fs::write(&up, "flag{not-here}\n").unwrap();
    let (up, down) = (up.to_str().unwrap().to_string(), down.to_str().unwrap().to_string());
    for args in [vec!["files", "mkdir", "/writeups"], vec!["files", "put", &up, "/writeups/notes.txt"]] {
        let (code, _, err) = run(token.clone(), sv(&args)).await.unwrap();
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = run(token.clone(), sv(&["files", "ls", "/writeups"])).await.unwrap();
    assert!(code == 0 && out.starts_with("NAME") && out.contains("notes.txt   File   15"), "{code} {out} {err}");
    let (code, out, _) = run(token.clone(), sv(&["files", "get", "/writeups/notes.txt"])).await.unwrap();
    assert_eq!((code, out.as_str()), (0, "flag{not-here}\n"));
    let (code, _, err) = run(token.clone(), sv(&["files", "get", "/writeups/notes.txt", &down])).await.unwrap();
    assert_eq!((code, std::fs::read_to_string(&down).unwrap().as_str()), (0, "flag{not-here}\n"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["files", "put", &up, "/writeups/notes.txt"])).await.unwrap();
    assert!(code == 1 && err.contains("already exists"), "{code} {err}");
    let (code, _, err) = run(token.clone(), sv(&["files", "ls", "/../etc"])).await.unwrap();
    assert!(code == 1 && err.contains("path: path contains `..`"), "{code} {err}");
    let (code, _, err) = run(token.clone(), sv(&["files", "rm", "/writeups"])).await.unwrap();
    assert!(code == 1 && err.contains("not empty"), "{code} {err}");
    let (code, _, err) = run(token.clone(), sv(&["files", "rm", "-r", "/writeups"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    // An instance no node can take: `--wait` prints the status message as it
    // changes and gives up with the reason after --give-up-after (issue 30.4).
    let huge = std::env::temp_dir().join(format!("paddock-huge-{}.yaml", std::process::id()));
    std::fs::write(
        &huge,
        "metadata: {name: huge}\nspec: {pods: [{name: web, image: nginx, resources: {requests: {cpu: \"64\"}}}]}\n",
    )
    .unwrap();
    let (code, _, err) = run(admin.clone(), sv(&["template", "apply", "-f", huge.to_str().unwrap()])).await.unwrap();
    let _ = std::fs::remove_file(&huge);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        run(token.clone(), sv(&["instance", "start", "huge", "--wait", "--give-up-after", "2s"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be scheduled") && err.contains("Insufficient cpu"), "{err}");
    assert!(err.lines().any(|l| l.contains("Scheduling") && l.contains("Insufficient cpu")), "{err}");
    // Filters: by phase (any case) and by template.
    let (code, out, err) = run(token.clone(), sv(&["instance", "list", "--template", "huge"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().skip(1).count() == 1 && out.contains("Scheduling"), "{out}");
    let (code, out, err) = run(token.clone(), sv(&["instance", "list", "--phase", "running"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&name) && !out.contains("huge"), "{out}");
    // --watch: the list, then a line per change; stopping the huge instance shows it go.
    let (_, out, _) = run(token.clone(), sv(&["instance", "list", "--template", "huge", "-o", "json"])).await.unwrap();
    let huge_name = serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["name"].as_str().unwrap().to_string();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["instance", "list", "--watch", "--template", "huge"])
        .env("PADDOCK_URL", &url)
        .env("PADDOCK_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let seen = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.ends_with("deleted");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, _, err) = run(token.clone(), sv(&["instance", "stop", &huge_name])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let lines = tokio::time::timeout(Duration::from_secs(30), seen).await.expect("the watch shows the stop").unwrap();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(lines[0].starts_with("NAME") && lines.iter().any(|l| l.contains("Stopping")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some(format!("{huge_name}   deleted").as_str()), "{lines:?}");

    // Refusals exit 1 with the API's reason; a bad token or no API exits 2.
    let (code, _, err) = run(token.clone(), sv(&["tenant", "create", "intruder"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only an admin token may create tenants"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "start", "no-such-template"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("template: there is no template"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "get", "x", "--tenant", "someone-else"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tenant \"someone-else\" does not exist"), "{err}");
    let (code, _, err) = run("pdk.demo.0.nope".into(), sv(&["instance", "list"])).await.unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token"), "{err}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "start", "ctf-web", "--ttl", "soon"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ttl:") && !err.contains("ttl: ttl:"), "{err}");

    // A start the tenant's quota cannot hold: --wait gives the reason and exits
    // 1 (the instance stays Pending with none of its pods, and tries again).
    // `tenant create --wait` answers once the tenant is Ready.
    let create = sv(&["tenant", "create", "small", "--kind", "Team", "--cpu", "150m", "--wait", "--timeout", "60s"]);
    let (code, out, err) = run(admin.clone(), create).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("small") && l.contains(" Ready ")), "{out}");
    // `tenant update` changes only what its flags say.
    let (code, out, err) =
        run(admin.clone(), sv(&["tenant", "update", "small", "--instances", "3", "-o", "json"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["spec"]["quota"], serde_json::json!({"cpu": "150m", "instances": 3}), "{out}");
    let wait = sv(&["instance", "start", "ctf-web", "--tenant", "small", "--wait", "--timeout", "60s"]);
    let (code, _, err) = run(admin.clone(), wait).await.unwrap();
    assert_eq!(code, 1, "{err}");
    // ctf-web's three pods (300m with the defaults) are more than all of small's quota.
    assert!(err.contains("cannot start now") && err.contains("more than tenant \"small\"'s whole quota"), "{err}");
    // Without a terminal, the phases it went through are plain lines on stderr.
    assert!(err.lines().any(|l| l.starts_with("ctf-web-") && l.contains(": Pending")), "{err}");

    // The demo team's VPN: a wg-quick file for client 2.
    let conf =
        poll(&url, token.clone(), &["vpn", "config", "--client", "2"], |code, _| code == 0).await.unwrap_or_default();
    assert!(conf.starts_with("[Interface]") && conf.contains("Endpoint = 127.0.0.1:"), "{conf}");
    let (code, out, err) = run(token.clone(), sv(&["vpn", "clients"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    // Without --client on a VPN of three: the file of client 1, and it says so.
    let (code, out, err) = run(token.clone(), sv(&["vpn", "config"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("[Interface]") && err.contains("client 1 of 3"), "{err}");

    // A kubeconfig for the demo team's namespace (the tenant from the token):
    // a client built from it sees the team's pods.
    let (code, file, err) = run(token.clone(), sv(&["tenant", "kubeconfig", "--ttl", "30m"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kubeconfig for tenant demo (namespace paddock-demo, ServiceAccount tenant)"), "{err}");
    let kc = kube::config::Kubeconfig::from_yaml(&file).unwrap_or_else(|e| panic!("{e}: {file}"));
    let cfg = kube::Config::from_custom_kubeconfig(kc.clone(), &Default::default()).await.unwrap();
    assert_eq!(
        cfg.cluster_url.to_string().trim_end_matches('/'),
        banner_value(banner, "Kubernetes API:").split(' ').next().unwrap()
    );
    assert_eq!(cfg.default_namespace, "paddock-demo");
    let pods: Api<Pod> = Api::default_namespaced(kube::Client::try_from(cfg).unwrap());
    let lp = ListParams::default().labels(&format!("{}={name}", controller::labels::INSTANCE));
    assert!(!pods.list(&lp).await.unwrap().items.is_empty(), "the team's pods, through its kubeconfig");
    let kubeconfig_token = serde_yaml_ng::from_str::<serde_json::Value>(&file).unwrap()["users"][0]["user"]["token"]
        .as_str()
        .unwrap()
        .to_string();

    // A template in use stays when deleted, until its instance is gone.
    let (code, out, err) = run(admin.clone(), sv(&["template", "delete", "ci-runner"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("template ci-runner is being deleted"), "{out}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "start", "ci-runner"])).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is being deleted"), "{err}");
    // `stop --wait` and `delete --wait` return once the object is gone.
    let (code, out, err) =
        run(token.clone(), sv(&["instance", "stop", &name, "--wait", "--timeout", "60s"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("instance {name} stopped")), "{out}");
    let (code, _, err) = run(token.clone(), sv(&["instance", "get", &name])).await.unwrap();
    assert_eq!(code, 1, "{name} must be gone: {err}");
    let del = sv(&["template", "delete", "ci-runner", "--wait", "--timeout", "60s"]);
    let (code, out, err) = run(admin.clone(), del).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("template ci-runner deleted"), "{out}");
    let (code, out, err) =
        run(admin.clone(), sv(&["tenant", "delete", "small", "--wait", "--timeout", "60s"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tenant small deleted"), "{out}");
    let (code, _, err) = run(admin.clone(), sv(&["tenant", "get", "small"])).await.unwrap();
    assert_eq!((code, err.contains("does not exist")), (1, true), "{err}");
    let (code, out, err) = run(admin.clone(), sv(&["token", "list", "--tenant", "demo"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() == 2 && !out.contains(&token), "{out}");
    // A token with an expiry, then revoked.
    let issue = sv(&["token", "issue", "--tenant", "demo", "--ttl", "1h", "-o", "json"]);
    let (code, out, err) = run(admin.clone(), issue).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let short: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(short["expires"].is_string(), "{out}");
    let (short_id, short_token) = (short["id"].as_str().unwrap(), short["token"].as_str().unwrap().to_string());
    let (_, out, _) = run(admin.clone(), sv(&["token", "list", "--tenant", "demo"])).await.unwrap();
    assert!(out.starts_with("ID") && out.contains("EXPIRES") && out.contains("never"), "{out}");
    let (code, out, err) = run(admin.clone(), sv(&["token", "revoke", short_id, "--tenant", "demo"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("token {short_id} of tenant demo revoked: requests with it fail from now on"));
    let (code, _, _) = run(short_token.clone(), sv(&["instance", "list"])).await.unwrap();
    assert_eq!(code, 2, "a revoked token is refused");
    let mut issued = vec![admin, token, short_token, kubeconfig_token];
    for key in ["PrivateKey = ", "PresharedKey = "] {
        issued.extend(conf.lines().filter_map(|l| l.strip_prefix(key)).map(str::to_string));
    }
    issued
}

/// kubesim checks no permissions, so a request Paddock's ClusterRole does not
/// allow would only fail on a real cluster. Every request the embedded
/// cluster served in this run (as an authorizer sees it: verb, API group,
/// resource/subresource) must be allowed by the bundle `paddock manifests`
/// ships; the only exceptions are what the bundle itself installs (the CRDs),
/// which `paddock dev` does with the same client.
async fn the_bundle_s_rbac_allows_every_request(banner: &str) {
    let sim = banner_value(banner, "Kubernetes API:").split(' ').next().unwrap().to_string();
    let seen: Vec<serde_json::Value> =
        reqwest::get(format!("{sim}/sim/v1/access")).await.unwrap().json().await.unwrap();
    assert!(seen.len() > 30, "{seen:?}");
    let out =
        Command::new(env!("CARGO_BIN_EXE_paddock")).args(["manifests", "--image", "paddock:test"]).output().unwrap();
    assert!(out.status.success());
    let mut rules = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap()) {
        let d: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if d["kind"] == "ClusterRole" || d["kind"] == "Role" {
            rules.extend(d["rules"].as_array().unwrap().iter().cloned());
        }
    }
    let mut denied = Vec::new();
    for a in &seen {
        let (verb, group, resource) =
            (a["verb"].as_str().unwrap(), a["group"].as_str().unwrap(), a["resource"].as_str().unwrap());
        if group != "apiextensions.k8s.io" && !controller::rbac::allows(&rules, verb, group, resource) {
            denied.push(format!("{verb} {group}/{resource}"));
        }
    }
    assert!(denied.is_empty(), "requests the shipped RBAC does not allow: {denied:?}");
}

/// The `paddock` commands of the README's shell blocks, as a newcomer types
/// them after `paddock dev` (with the URL and token it printed): each exits 0
/// and prints something. Streams (`events`, `list -w`) run for two seconds;
/// `bench` is left to the bench tests (it takes minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_work_on_paddock_dev() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && l.starts_with("paddock ") => {
                commands.push(l.split(" #").next().unwrap_or(l).trim().to_string())
            }
            _ => {}
        }
    }
    assert!(commands.len() >= 8, "the README's commands: {commands:?}");
    let dir = std::env::temp_dir().join(format!("paddock-dev-readme-{}", std::process::id()));
    let (mut child, banner, kc) = start_dev(&dir).await;
    let (url, admin) = (banner_value(&banner, "API:"), banner_value(&banner, "admin token:"));
    for command in &commands {
        let mut words: Vec<String> = command.split_whitespace().skip(1).map(str::to_string).collect();
        if words.first().is_some_and(|w| w == "bench") {
            continue;
        }
        // `> FILE`: the README saves the output; here it is checked instead.
        if let Some(i) = words.iter().position(|w| w == ">") {
            words.truncate(i);
        }
        for w in &mut words {
            if w == "paddock-dev.kubeconfig" {
                *w = kc.display().to_string();
            }
        }
        let streams = words.iter().any(|w| w == "-w") || words.first().is_some_and(|w| w == "events");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.args(&words).env("PADDOCK_URL", &url).env("PADDOCK_TOKEN", &admin).env_remove("PADDOCK_TENANT");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut running = cmd.spawn().unwrap();
        if streams {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = running.start_kill();
        }
        let out = tokio::time::timeout(Duration::from_secs(60), running.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not finish in 60 s"))
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(streams || out.status.success(), "`{command}` exited {:?}: {stderr}", out.status.code());
        assert!(!stdout.trim().is_empty(), "`{command}` printed nothing: {stderr}");
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
}
