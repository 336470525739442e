//! `paddock sim` as a process, driven by the real kubectl (skipped when kubectl
//! is not on PATH): get, create, apply (client- and server-side), patch, label,
//! watch, raw gets, delete, and state kept across a SIGTERM restart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kubectl_available() -> bool {
    Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success())
}

struct Sim {
    child: Child,
    kubeconfig: PathBuf,
}

impl Sim {
    fn start(dir: &Path, state: Option<&Path>) -> Sim {
        let kubeconfig = dir.join("kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
        cmd.args(["sim", "--listen", "127.0.0.1:0", "--kubeconfig-out"]).arg(&kubeconfig).args(["--nodes", "2"]);
        if let Some(s) = state {
            cmd.arg("--state-file").arg(s);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("paddock sim starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "paddock sim did not write its kubeconfig");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sim { child, kubeconfig }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl").arg("--kubeconfig").arg(&self.kubeconfig).args(args).output().expect("kubectl runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "kubectl {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "paddock sim did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  colour: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80, name: http}]
"#;

#[test]
fn kubectl_drives_paddock_sim() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not on PATH (install Debian's kubernetes-client to run this test)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("paddock-sim-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("demo.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let state = dir.join("state.json");
    let m = manifest.to_str().unwrap();

    let sim = Sim::start(&dir, Some(&state));
    assert!(sim.ok(&["get", "nodes"]).contains("node-1"));
    assert!(sim.ok(&["get", "--raw", "/version"]).contains("\"major\":\"1\""));
    let out = sim.ok(&["apply", "-f", m]);
    assert!(out.contains("namespace/demo created") && out.contains("deployment.apps/web created"), "{out}");
    let out = sim.ok(&["apply", "-f", m]);
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    let out = sim.ok(&["apply", "--server-side", "-f", m]);
    assert!(out.contains("serverside-applied"), "{out}");
    sim.ok(&["patch", "configmap", "settings", "-n", "demo", "-p", r#"{"data":{"size":"large"}}"#]);
    sim.ok(&["label", "configmap", "settings", "-n", "demo", "tier=gold"]);
    let json = sim.ok(&["get", "configmap", "settings", "-n", "demo", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["data"]["size"], "large");
    assert_eq!(v["metadata"]["labels"]["tier"], "gold");
    let extra = dir.join("extra.yaml");
    std::fs::write(
        &extra,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: demo\ndata:\n  a: b\n",
    )
    .unwrap();
    let extra = extra.to_str().unwrap();
    sim.ok(&["create", "-f", extra]);
    let out = sim.kubectl(&["create", "-f", extra]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"), "{}", String::from_utf8_lossy(&out.stderr));
    sim.ok(&["wait", "--for=condition=Available", "deployment/web", "-n", "demo", "--timeout=30s"]);
    let pods = sim.ok(&["get", "pods", "-n", "demo"]);
    assert_eq!(pods.matches("Running").count(), 2, "{pods}");

    // A watch sees a change made while it runs.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&sim.kubeconfig)
        .args(["get", "configmaps", "-n", "demo", "--watch", "--request-timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The initial listing arrives first; then create.
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("watch prints the listing");
    assert!(first.starts_with("NAME"), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let watched = dir.join("watched.yaml");
    std::fs::write(&watched, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: demo\n")
        .unwrap();
    sim.ok(&["create", "-f", watched.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.starts_with("watched")
        {
            seen = true;
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(seen, "kubectl get --watch saw the new configmap");

    // The install bundle applies cleanly and its Deployment becomes available.
    let bundle =
        Command::new(env!("CARGO_BIN_EXE_paddock")).args(["manifests", "--with-runtime-class"]).output().unwrap();
    assert!(bundle.status.success());
    let bundle_file = dir.join("bundle.yaml");
    std::fs::write(&bundle_file, &bundle.stdout).unwrap();
    let out = sim.ok(&["apply", "-f", bundle_file.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/paddock-controller created"), "{out}");
    sim.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/paddock-controller",
        "-n",
        "paddock-system",
        "--timeout=30s",
    ]);
    sim.ok(&["wait", "--for=condition=Available", "deployment/paddock-api", "-n", "paddock-system", "--timeout=30s"]);
    sim.ok(&["wait", "--for=condition=Established", "crd/tenants.paddock.dev", "--timeout=30s"]);

    // The example templates apply with kubectl's strict field validation, and keep every field.
    sim.ok(&["wait", "--for=condition=Established", "crd/templates.paddock.dev", "--timeout=30s"]);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/templates");
    let out = sim.ok(&["apply", "-f", examples]);
    assert!(
        out.contains("template.paddock.dev/ctf-web created") && out.contains("template.paddock.dev/notebook created"),
        "{out}"
    );
    let tpl: serde_json::Value = serde_json::from_str(&sim.ok(&["get", "template", "ctf-web", "-o", "json"])).unwrap();
    assert_eq!(tpl["spec"]["pods"][0]["env"][0]["generate"]["flag"]["format"], "FLAG{%s}");
    assert_eq!(tpl["spec"]["exposure"][0]["type"], "NodePort");

    // State survives a SIGTERM restart.
    sim.stop();
    let sim = Sim::start(&dir, Some(&state));
    let out = sim.ok(&["get", "configmap", "settings", "-n", "demo", "-o", "jsonpath={.data.size}"]);
    assert_eq!(out, "large");
    let out = sim.ok(&["delete", "namespace", "demo", "--wait=true", "--timeout=30s"]);
    assert!(out.contains("deleted"), "{out}");
    sim.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
