//! The web console in a real browser (headless Chromium through
//! chromedriver, driven with fantoccini) against `paddock dev`: sign in as
//! the admin, create a tenant, start ctf-web in the demo tenant and see it
//! go Running without a reload, follow a pod's log, download a VPN client's
//! file and show its QR code, issue the tenant a token, see the nodes and the
//! isolation matrix; sign in as the demo tenant and see only its own things,
//! be refused another tenant's page, stop the instance.
//! Screenshots of each page go to `target/console/`. Prints the page load
//! time and how long after the API wrote Running the page showed it.
//!
//! Skipped, with a message, when chromedriver or Chromium is not installed
//! (`.ci/run` installs Debian's `chromium` and `chromium-driver`).

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{banner_value, start_dev};

const T: Duration = Duration::from_secs(30);

fn installed(path: &str) -> bool {
    Path::new(path).exists()
}

/// chromedriver on a free port; the process and its URL.
async fn chromedriver() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + T;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

async fn browser(driver: &str, profile: &Path) -> Client {
    // As the machine's probe starts Chromium: headless, no sandbox (root),
    // and nothing that reaches for the network on its own.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}});
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
    let http = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(http).capabilities(caps).connect(driver).await.expect("a Chromium session")
}

/// Waits until `script` (a JavaScript expression) is true in the page.
async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + T;
    loop {
        let v = c.execute(&format!("return !!({script});"), vec![]).await.unwrap();
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let text = c.execute("return document.body.innerText;", vec![]).await.unwrap();
            panic!("timed out waiting for {what}; the page shows:\n{}", text.as_str().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/#/signin")).await.unwrap();
    until(c, "the sign-in form", "document.getElementById('token')").await;
    c.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
    c.find(Locator::Css("form.signin button")).await.unwrap().click().await.unwrap();
}

async fn api(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut r = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    if !installed("/usr/bin/chromedriver") || !installed("/usr/bin/chromium") {
        eprintln!(
            "skipped: /usr/bin/chromium and /usr/bin/chromedriver are not installed (Debian: chromium, chromium-driver)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("paddock-console-{}", std::process::id()));
    let (mut dev, banner, _kc) = start_dev(&dir).await;
    let (base, admin) = (banner_value(&banner, "API:"), banner_value(&banner, "admin token:"));
    let shots = screenshots();
    let (_driver, driver_url) = chromedriver().await;
    let c = browser(&driver_url, &dir.join("profile")).await;

    // The admin: tenants, a new tenant, templates.
    sign_in(&c, &base, &admin).await;
    until(&c, "the tenants page", "document.querySelector('h1')?.textContent === 'Tenants'").await;
    let load = c
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;",
            vec![],
        )
        .await
        .unwrap();
    c.find(Locator::Id("new-tenant")).await.unwrap().send_keys("blue").await.unwrap();
    c.find(Locator::Css("form.inline button")).await.unwrap().click().await.unwrap();
    until(&c, "the new tenant's row", "[...document.querySelectorAll('td a')].some(a => a.textContent === 'blue')")
        .await;
    until(&c, "the demo tenant's quota use", "document.querySelector('meter[aria-label^=\"pods \"]')").await;
    shot(&c, &shots, "tenants").await;
    // A template with a warm pool, so the templates page has a pool to chart.
    let pooled = json!({"name": "pooled", "spec": {"ttl": "1h",
        "pods": [{"name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "port": 80}]}], "warmPool": {"size": 2}}});
    api(reqwest::Method::POST, format!("{base}/v1/templates"), &admin, Some(pooled)).await;
    c.goto(&format!("{base}/ui/#/templates")).await.unwrap();
    until(&c, "the templates page", "document.querySelector('h1')?.textContent === 'Templates'").await;
    until(&c, "ctf-web accepted", "document.body.innerText.includes('Accepted')").await;
    // A pool is a chart of its samples, one more every few seconds while the page is open.
    until(&c, "the pool's chart", "document.querySelector('#pool-chart-pooled svg.pool-chart rect')").await;
    let columns = "return document.querySelectorAll('#pool-chart-pooled rect').length;";
    let first = c.execute(columns, vec![]).await.unwrap().as_u64().unwrap_or(0);
    let more = format!("document.querySelectorAll('#pool-chart-pooled rect').length > {first}");
    until(&c, "a second sample of the pool", &more).await;
    shot(&c, &shots, "templates").await;

    // The demo tenant's page: a start, watched to Running without a reload.
    c.goto(&format!("{base}/ui/#/tenants/demo")).await.unwrap();
    until(&c, "the demo tenant's page", "document.getElementById('start-template')").await;
    c.execute(
        "window.seen = {}; new MutationObserver(() => { for (const r of document.querySelectorAll('tr[data-phase]')) \
         if (!window.seen[r.id + r.dataset.phase]) window.seen[r.id + r.dataset.phase] = Date.now(); }) \
         .observe(document.getElementById('instances'), {childList: true, subtree: true, attributes: true});",
        vec![],
    )
    .await
    .unwrap();
    c.execute(
        "const s = document.getElementById('start-template'); s.value = 'ctf-web'; \
         s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::Css("#start-form button.primary")).await.unwrap().click().await.unwrap();
    until(&c, "an instance row", "document.querySelector('#instances tr')").await;
    until(&c, "the instance Running", "document.querySelector('#instances tr[data-phase=\"Running\"]')").await;
    shot(&c, &shots, "tenant").await;
    let row = c.execute("return document.querySelector('#instances tr').id;", vec![]).await.unwrap();
    let name = row.as_str().unwrap().trim_start_matches("instance-").to_string();
    let shown = c.execute(&format!("return window.seen['instance-{name}Running'];"), vec![]).await.unwrap();
    let inst = api(reqwest::Method::GET, format!("{base}/v1/tenants/demo/instances/{name}"), &admin, None).await;
    let ready: jiff::Timestamp = inst["status"]["ready"].as_str().unwrap().parse().unwrap();
    let after_ms = shown.as_f64().unwrap() - ready.as_millisecond() as f64;

    // Its pod's log, followed.
    c.find(Locator::Css(&format!("#instance-{name} button.logs"))).await.unwrap().click().await.unwrap();
    until(&c, "the log panel", "document.querySelector('#logs pre.log')").await;

    // The quota, edited by the admin: a bad value is refused in the API's
    // words, a good one saved.
    c.find(Locator::Id("quota-pods")).await.unwrap().clear().await.unwrap();
    c.find(Locator::Id("quota-pods")).await.unwrap().send_keys("lots").await.unwrap();
    c.find(Locator::Css("#quota-form button")).await.unwrap().click().await.unwrap();
    until(&c, "the refused quota", "document.getElementById('notice').className === 'error'").await;
    c.find(Locator::Id("quota-pods")).await.unwrap().clear().await.unwrap();
    c.find(Locator::Id("quota-pods")).await.unwrap().send_keys("30").await.unwrap();
    c.find(Locator::Css("#quota-form button")).await.unwrap().click().await.unwrap();
    until(&c, "the saved quota", "document.getElementById('notice').textContent === 'quota of demo saved'").await;
    let demo = api(reqwest::Method::GET, format!("{base}/v1/tenants/demo"), &admin, None).await;
    assert_eq!(demo["spec"]["quota"]["pods"], 30, "{demo}");

    // The VPN: a client's file downloaded, and its QR code shown.
    c.execute(
        // A download is an anchor clicked on a blob: its name and text are
        // recorded instead (the page's own policy keeps `fetch` off blobs).
        "window.downloads = []; window.blobs = []; const made = URL.createObjectURL; \
         URL.createObjectURL = (b) => { b.text().then(t => window.blobs.push(t)); return made(b); }; \
         HTMLAnchorElement.prototype.click = function () { window.downloads.push(this.download); };",
        vec![],
    )
    .await
    .unwrap();
    until(&c, "the VPN's clients", "document.getElementById('vpn-config-1')").await;
    c.find(Locator::Id("vpn-config-1")).await.unwrap().click().await.unwrap();
    let file = "window.downloads.includes('wg-demo-1.conf') && window.blobs.some(t => t.startsWith('[Interface]'))";
    until(&c, "the VPN file downloaded", file).await;
    c.find(Locator::Id("vpn-qr-1")).await.unwrap().click().await.unwrap();
    until(&c, "the QR code drawn", "document.querySelector('img.qr')?.naturalWidth > 0").await;
    shot(&c, &shots, "vpn").await;

    // A cluster: made in the page, watched to Running, its kubeconfig and
    // SSH key downloaded (the key once: its button goes), deleted.
    c.find(Locator::Id("cluster-name")).await.unwrap().send_keys("lab").await.unwrap();
    c.find(Locator::Id("cluster-workers")).await.unwrap().send_keys("1").await.unwrap();
    c.execute("document.querySelector('#cluster-form button').click();", vec![]).await.unwrap();
    until(&c, "the cluster's row", "document.getElementById('cluster-lab')").await;
    until(
        &c,
        "the cluster Running",
        "document.querySelector('#cluster-lab[data-phase=\"Running\"] button.kubeconfig')",
    )
    .await;
    shot(&c, &shots, "clusters").await;
    // An upgrade that skips a minor version is refused in the API's words; the next minor goes.
    let upgrade = |v: &str| {
        format!(
            "const i = document.querySelector('#cluster-lab input.version'); i.value = '{v}'; \
             document.querySelector('#cluster-lab button.upgrade').click();"
        )
    };
    c.execute(&upgrade("v1.31.0"), vec![]).await.unwrap();
    let refused = "document.getElementById('notice').className === 'error' && \
                   document.getElementById('notice').textContent.includes('one minor version at a time')";
    until(&c, "the skipped minor refused", refused).await;
    c.execute(&upgrade("v1.30.0"), vec![]).await.unwrap();
    until(
        &c,
        "the cluster at v1.30.0",
        "[...document.querySelectorAll('#cluster-lab td')].some(td => td.textContent === 'v1.30.0')",
    )
    .await;
    c.execute("document.querySelector('#cluster-lab button.kubeconfig').click();", vec![]).await.unwrap();
    let kubeconfig =
        "window.downloads.includes('lab.kubeconfig') && window.blobs.some(t => t.includes('current-context'))";
    until(&c, "the cluster's kubeconfig downloaded", kubeconfig).await;
    c.execute("document.querySelector('#cluster-lab button.ssh-key').click();", vec![]).await.unwrap();
    let key = "window.downloads.includes('lab.key') && window.blobs.some(t => t.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----'))";
    until(&c, "the cluster's SSH key downloaded", key).await;
    until(
        &c,
        "the SSH key's button gone",
        "document.getElementById('cluster-lab') && !document.querySelector('#cluster-lab button.ssh-key')",
    )
    .await;
    c.execute("window.confirm = () => true;", vec![]).await.unwrap();
    c.execute("document.querySelector('#cluster-lab button.danger').click();", vec![]).await.unwrap();
    until(&c, "the cluster gone", "document.getElementById('clusters') && !document.getElementById('cluster-lab')")
        .await;

    // A token for the tenant, issued in the page and shown once.
    c.find(Locator::Id("token-description")).await.unwrap().send_keys("console test").await.unwrap();
    c.find(Locator::Css("#token-description")).await.unwrap().send_keys("\n").await.unwrap();
    until(&c, "the issued token", "document.getElementById('issued-token')").await;
    let token = c.execute("return document.getElementById('issued-token').textContent;", vec![]).await.unwrap();

    // The nodes, for the admin: what their pods request of what they can allocate, as bars.
    c.goto(&format!("{base}/ui/#/nodes")).await.unwrap();
    until(
        &c,
        "the nodes page",
        "document.querySelector('h1')?.textContent === 'Nodes' && document.querySelector('tbody tr meter')",
    )
    .await;
    shot(&c, &shots, "nodes").await;

    // Isolation: `paddock audit` as a matrix; paddock dev's tenants reach none of each other.
    c.goto(&format!("{base}/ui/#/isolation")).await.unwrap();
    until(
        &c,
        "the isolation verdict",
        "document.getElementById('isolation-verdict')?.textContent.startsWith('Isolated')",
    )
    .await;
    until(&c, "the matrix", "document.querySelectorAll('table.matrix tbody tr').length >= 2").await;
    shot(&c, &shots, "isolation").await;

    // The tenant: its own page only.
    c.execute("sessionStorage.clear();", vec![]).await.unwrap();
    sign_in(&c, &base, token.as_str().unwrap()).await;
    until(&c, "the tenant's own page", "document.querySelector('h1')?.textContent === 'Tenant demo'").await;
    until(&c, "its instance", &format!("document.getElementById('instance-{name}')")).await;
    let nav = c.execute("return document.getElementById('nav').innerText;", vec![]).await.unwrap();
    assert!(!nav.as_str().unwrap().contains("Tenants"), "a tenant sees no tenant list: {nav}");
    c.goto(&format!("{base}/ui/#/tenants/blue")).await.unwrap();
    until(&c, "another tenant's page refused", "document.getElementById('refused')").await;
    shot(&c, &shots, "refused").await;

    // Suspend and resume, as the tenant: the row follows live.
    c.goto(&format!("{base}/ui/#/tenants/demo")).await.unwrap();
    until(&c, "its instance again", &format!("document.getElementById('instance-{name}')")).await;
    // The row is drawn again on every status change: found and clicked in one step.
    let click = |what: &str| format!("document.querySelector('#instance-{name} button.{what}').click();");
    c.execute(&click("suspend"), vec![]).await.unwrap();
    let suspended = format!("document.querySelector('#instance-{name}[data-phase=\"Suspended\"] button.resume')");
    until(&c, "the instance Suspended", &suspended).await;
    c.execute(&click("resume"), vec![]).await.unwrap();
    until(
        &c,
        "the instance Running again",
        &format!("document.querySelector('#instance-{name}[data-phase=\"Running\"]')"),
    )
    .await;

    // Files, as the tenant: a directory made, a file uploaded into it (the API
    // reads it back), then deleted.
    // The link's own target, followed: a click could land beside it while
    // the instance's row above is being redrawn.
    c.execute("location.hash = document.getElementById('files-home').getAttribute('href');", vec![]).await.unwrap();
    until(&c, "the files page", "document.querySelector('h1')?.textContent === 'Files of demo'").await;
    c.find(Locator::Id("mkdir-name")).await.unwrap().send_keys("notes").await.unwrap();
    c.execute("document.querySelector('#mkdir-form button').click();", vec![]).await.unwrap();
    until(&c, "the new directory", "document.querySelector('#files tr[data-name=\"notes\"] a')").await;
    // Links are followed on a real click (a script's click() on an anchor is not one here).
    c.find(Locator::Css("#files tr[data-name=\"notes\"] a")).await.unwrap().click().await.unwrap();
    until(&c, "inside it", "document.getElementById('crumbs')?.textContent.includes('notes/')").await;
    let local = dir.join("hello.txt");
    std::fs::write(&local, "hello from the console").unwrap();
    c.find(Locator::Id("upload-file")).await.unwrap().send_keys(local.to_str().unwrap()).await.unwrap();
    c.execute("document.querySelector('#upload-form button').click();", vec![]).await.unwrap();
    until(&c, "the uploaded file", "document.querySelector('#files tr[data-name=\"hello.txt\"] button.download')")
        .await;
    shot(&c, &shots, "files").await;
    let url = format!("{base}/v1/tenants/demo/storage/files/content?path=/notes/hello.txt");
    let got = reqwest::Client::new().get(url).bearer_auth(token.as_str().unwrap()).send().await.unwrap();
    assert_eq!(got.text().await.unwrap(), "hello from the console");
    c.execute("window.confirm = () => true;", vec![]).await.unwrap();
    c.execute("document.querySelector('#files tr[data-name=\"hello.txt\"] button.delete').click();", vec![])
        .await
        .unwrap();
    until(
        &c,
        "the file deleted",
        "document.getElementById('files') && !document.querySelector('#files tr[data-name=\"hello.txt\"]')",
    )
    .await;
    c.goto(&format!("{base}/ui/#/tenants/demo")).await.unwrap();
    until(&c, "its instance once more", &format!("document.getElementById('instance-{name}')")).await;

    // Stop, as the tenant: the row goes without a reload.
    c.execute("window.confirm = () => true;", vec![]).await.unwrap();
    c.execute(&click("danger"), vec![]).await.unwrap();
    until(&c, "the instance gone", &format!("!document.getElementById('instance-{name}')")).await;

    println!(
        "console: page load {:.0} ms; Running shown {after_ms:.0} ms after the API wrote it",
        load.as_f64().unwrap_or(-1.0)
    );
    let _ = c.close().await;
    let _ = dev.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
