// Paddock console: a page over the public API and nothing else. The token
// lives in this tab's sessionStorage and travels in the Authorization
// header (never in a URL or a cookie); the server's Content-Security-Policy
// allows only this script and its stylesheet. Elements are built with
// textContent, never from HTML strings, so no API value can become markup.

const TOKEN = "paddock.token";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
const whoEl = document.getElementById("who");
let session = null; // {admin, tenant}
let leave = []; // what the current page stops when it is left

// ---- elements ------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text, kind = "info") {
  notice.className = kind;
  notice.textContent = text || "";
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

// ---- the API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, (data && data.detail) || r.status + " " + r.statusText);
  return data;
}

// Server-sent events over fetch (an EventSource cannot send the token in a
// header): reconnects with Last-Event-ID, and says so.
function follow(path, onEvent) {
  const stop = new AbortController();
  let last = null;
  (async () => {
    while (!stop.signal.aborted) {
      try {
        const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) };
        if (last) headers["Last-Event-ID"] = last;
        const r = await fetch(path, { headers, signal: stop.signal });
        if (!r.ok) {
          const p = await r.json().catch(() => ({}));
          say("live updates: " + (p.detail || r.status), "error");
          if (r.status === 401 || r.status === 403 || r.status === 404) return;
        } else {
          if (last) say("live updates: the stream was lost and has resumed", "info");
          await read(r.body, (ev) => { if (ev.id) last = ev.id; onEvent(ev); });
        }
      } catch (e) {
        if (stop.signal.aborted) return;
      }
      say("live updates: the stream was lost; reconnecting…", "error");
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  })();
  return () => stop.abort();
}

async function read(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") ev.data += (ev.data ? "\n" : "") + val;
        else if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
      }
      if (ev.data) onEvent(ev);
    }
  }
}

// ---- pages ---------------------------------------------------------------

function signinPage() {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, input.value.trim());
    session = null;
    try {
      await who();
      location.hash = "#/";
      route();
    } catch (err) {
      sessionStorage.removeItem(TOKEN);
      say(err.message, "error");
    }
  } },
  h("label", { for: "token" }, "Token", input),
  h("p", { id: "token-help", class: "muted" }, "An admin token or a tenant's token. It is kept in this tab only."),
  h("button", { class: "primary", type: "submit" }, "Sign in"));
  return [h("h1", {}, "Sign in"), form];
}

async function who() {
  if (session) return session;
  if (!sessionStorage.getItem(TOKEN)) throw new ApiError(401, "sign in first");
  const tenants = await api("GET", "/v1/tenants?limit=1");
  let admin = true;
  try { await api("GET", "/v1/instances?limit=1"); } catch (e) { if (e.status === 403) admin = false; else throw e; }
  const tenant = admin ? null : (tenants.items[0] || {}).name;
  session = { admin, tenant };
  return session;
}

function bar(label, used, max) {
  if (max === undefined || max === null) return [h("span", {}, label), h("span", { class: "muted" }, used + " (no limit)")];
  return [h("span", {}, label), h("span", {}, h("meter", { min: 0, max: Number(max) || 0, value: Number(used) || 0,
    "aria-label": label + " " + used + " of " + max }), " " + used + " / " + max)];
}

/// A bar per resource: used of its limit (a tenant's quota, a node's allocatable).
function meters(uses) {
  return h("div", { class: "usage" }, uses.map((u) => [h("span", {}, u.resource),
    h("span", {}, h("meter", { min: 0, max: 1, high: 0.9, value: Math.min(u.fraction, 1), "aria-label": u.resource + " " + u.used + " of " + u.hard }),
      " " + u.used + " / " + u.hard)]));
}

/// A tenant's quota use: a bar per resource its namespace's ResourceQuota
/// reports (used of hard), else its limits alone (not counted yet).
function usage(t, instances) {
  const q = t.spec.quota || {};
  if (t.usage && t.usage.length) return meters(t.usage);
  return h("div", { class: "usage" }, bar("instances", instances, q.instances),
    ["pods", "cpu", "memory", "storage"].filter((k) => q[k] !== undefined && q[k] !== null)
      .map((k) => [h("span", {}, k), h("span", { class: "muted" }, "limit " + q[k] + " (not counted yet)")]));
}

function conditionText(status) {
  const ready = ((status && status.conditions) || []).find((c) => c.type === "Ready");
  return ready ? ready.message : "";
}

async function tenantsPage() {
  const list = await api("GET", "/v1/tenants");
  const counts = {};
  for (const i of (await api("GET", "/v1/instances")).items) counts[i.tenant] = (counts[i.tenant] || 0) + 1;
  const rows = list.items.map((t) => {
    const q = t.spec.quota || {};
    const phase = (t.status && t.status.phase) || "Pending";
    const vpn = t.status && t.status.vpn ? (t.status.vpn.ready ? "ready" : "starting") : "off";
    return h("tr", {},
      h("td", {}, h("a", { href: "#/tenants/" + encodeURIComponent(t.name) }, t.name)),
      h("td", {}, t.spec.kind),
      h("td", { class: "phase phase-" + (phase === "Ready" ? "Running" : "Pending"), title: conditionText(t.status) }, phase),
      h("td", {}, usage(t, counts[t.name] || 0)),
      h("td", {}, vpn),
      h("td", {}, h("button", { class: "danger", onclick: async () => {
        if (!confirm("Delete tenant " + t.name + " and everything it runs?")) return;
        try { await api("DELETE", "/v1/tenants/" + encodeURIComponent(t.name)); say("tenant " + t.name + " is being deleted"); route(); }
        catch (e) { say(e.message, "error"); }
      } }, "Delete")));
  });
  const name = h("input", { id: "new-tenant", required: true, pattern: "[a-z]([-a-z0-9]*[a-z0-9])?", maxlength: 40 });
  const kind = h("select", { id: "new-kind" }, ["Team", "User", "Group"].map((k) => h("option", {}, k)));
  const create = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("POST", "/v1/tenants", { name: name.value, spec: { kind: kind.value } });
      say("tenant " + name.value + " created");
      route();
    } catch (err) { say(err.message, "error"); }
  } }, h("label", {}, "Name", name), h("label", {}, "Kind", kind), h("button", { class: "primary", type: "submit" }, "Create tenant"));
  return [h("h1", {}, "Tenants"), create,
    table(["Tenant", "Kind", "Phase", "Quota use", "VPN", ""], rows, "No tenants yet.")];
}

const STEPS = [["requested", null], ["scheduled", "scheduled"], ["pulled", "pulled"], ["ready", "ready"]];

function timeline(v) {
  const p = v.progress || {};
  return h("ol", { class: "timeline", "aria-label": "start phases" }, STEPS.map(([label, key]) => {
    const at = key ? p[key] : 0;
    const done = at !== undefined && at !== null;
    return h("li", { class: done ? "done" : "" }, label + (done && key ? " " + Math.round(at * 1000) + " ms" : ""));
  }));
}

function endpoints(v) {
  const out = [];
  for (const e of ((v.status && v.status.endpoints) || [])) {
    const addr = e.externalAddress || (e.nodePort ? "node:" + e.nodePort : null);
    if (!addr) continue;
    out.push(h("div", {}, h("code", {}, e.pod + "/" + e.port + " " + addr),
      h("button", { class: "copy", "aria-label": "copy " + addr, onclick: () => navigator.clipboard.writeText(addr) }, "copy")));
  }
  return out.length ? out : h("span", { class: "muted" }, "—");
}

function instanceRow(tenant, v, openLogs) {
  const warm = v.status && v.status.warm;
  const stop = async () => {
    try { await api("DELETE", "/v1/tenants/" + encodeURIComponent(tenant) + "/instances/" + encodeURIComponent(v.name)); }
    catch (e) { say(e.message, "error"); }
  };
  const act = (verb, done) => async () => {
    try { await api("POST", "/v1/tenants/" + encodeURIComponent(tenant) + "/instances/" + encodeURIComponent(v.name) + "/" + verb, {}); say(v.name + " " + done); }
    catch (e) { say(e.message, "error"); }
  };
  const renew = act("renew", "renewed");
  // Suspended (or asked to be): it can be resumed; running: suspended.
  const toggle = v.suspend
    ? h("button", { class: "resume", onclick: act("resume", "resuming") }, "Resume")
    : h("button", { class: "suspend", onclick: act("suspend", "suspending") }, "Suspend");
  const phase = v.stopping ? "Stopping" : (v.phase || "Pending");
  return h("tr", { id: "instance-" + v.name, "data-phase": phase },
    h("td", {}, v.name, h("div", { class: "muted" }, v.template)),
    h("td", {}, h("span", { class: "phase phase-" + phase }, phase),
      h("div", { class: "muted" }, warm === true ? "warm" : warm === false ? "cold" : ""), timeline(v)),
    h("td", { class: "muted" }, v.message || ""),
    h("td", {}, endpoints(v)),
    h("td", {}, v.expires ? new Date(v.expires).toLocaleTimeString() : "—"),
    h("td", {}, h("button", { onclick: renew }, "Renew"), " ", toggle, " ", h("button", { class: "danger", onclick: stop }, "Stop"),
      ((v.status && v.status.pods) || []).map((p) => [" ", h("button", { class: "logs", onclick: () => openLogs(v.name, p.name) }, "Logs: " + p.name)])));
}

async function tenantPage(tenant) {
  const t = await api("GET", "/v1/tenants/" + encodeURIComponent(tenant));
  const templates = (await api("GET", "/v1/templates")).items;
  const instances = new Map();
  const tbody = h("tbody", { id: "instances" });
  const render = () => {
    tbody.replaceChildren(...[...instances.values()].sort((a, b) => a.name.localeCompare(b.name)).map((v) => instanceRow(tenant, v, openLogs)));
    empty.hidden = instances.size > 0;
  };
  const empty = h("p", { class: "muted" }, "No instances.");
  const logs = h("section", { id: "logs", "aria-live": "off" });
  let stopLogs = null;
  const openLogs = (name, pod) => {
    if (stopLogs) stopLogs();
    const out = h("pre", { class: "log", tabindex: "0" }, "…");
    logs.replaceChildren(h("h2", {}, "Log of " + name + " / " + pod + " (following)"), out);
    stopLogs = followLog(tenant, name, pod, out);
  };
  leave.push(() => { if (stopLogs) stopLogs(); });
  leave.push(follow("/v1/tenants/" + encodeURIComponent(tenant) + "/events", (ev) => {
    const d = JSON.parse(ev.data);
    if (ev.event === "snapshot") { instances.clear(); for (const v of d.instances) instances.set(v.name, v); }
    else if (ev.event === "status") instances.set(d.instance.name, d.instance);
    else if (ev.event === "deleted") instances.delete(d.name);
    render();
  }));
  const pick = h("select", { id: "start-template", required: true },
    templates.filter((x) => !x.deleting).map((x) => h("option", { value: x.name }, x.name)));
  const ttl = h("input", { id: "start-ttl", placeholder: "template's", size: 8 });
  const envBox = h("span", { class: "inline" });
  const envFields = () => {
    const tpl = templates.find((x) => x.name === pick.value);
    const names = [];
    for (const p of (tpl ? tpl.spec.pods : [])) for (const e of (p.env || [])) if (e.overridable) names.push(e.name);
    envBox.replaceChildren(...names.map((n) => h("label", {}, n, h("input", { "data-env": n, placeholder: "template's" }))));
  };
  pick.addEventListener("change", envFields);
  envFields();
  const start = h("form", { class: "inline", id: "start-form", onsubmit: async (e) => {
    e.preventDefault();
    const env = {};
    for (const i of envBox.querySelectorAll("input")) if (i.value) env[i.dataset.env] = i.value;
    const body = { template: pick.value, env };
    if (ttl.value) body.ttl = ttl.value;
    try { const v = await api("POST", "/v1/tenants/" + encodeURIComponent(tenant) + "/instances", body); say("started " + v.name); }
    catch (err) { say(err.message, "error"); }
  } }, h("label", {}, "Template", pick), h("label", {}, "TTL", ttl), envBox, h("button", { class: "primary", type: "submit" }, "Start"));
  const q = t.spec.quota || {};
  const s = await who();
  const vpn = await vpnSection(tenant, t);
  const clusters = await clustersSection(tenant);
  const tokens = s.admin ? await tokensSection(tenant) : [];
  return [h("h1", {}, "Tenant " + t.name),
    h("p", { class: "muted" }, t.spec.kind + " · " + ((t.status && t.status.phase) || "Pending") + " · namespace " + ((t.status && t.status.namespace) || "—") +
      (q.instances ? " · at most " + q.instances + " instances" : ""), " ", kubeconfigButton(tenant)),
    h("div", { id: "tenant-usage" }, usage(t, instances.size)),
    s.admin ? [h("h2", {}, "Quota"), quotaForm(tenant, t)] : null,
    h("h2", {}, "Start an instance"), start,
    h("h2", {}, "Instances"),
    h("div", { class: "table" }, h("table", {}, h("thead", {}, h("tr", {},
      ["Instance", "Phase", "Why", "Endpoints", "Expires", ""].map((x) => h("th", { scope: "col" }, x)))), tbody)), empty, logs,
    clusters, storageSection(tenant, t), vpn, tokens];
}

// ---- the tenant's clusters -------------------------------------------------

/// Phases a cluster leaves by itself: while one is shown the list is read again.
const CLUSTER_MOVING = ["Pending", "Provisioning", "Degraded", "Repairing", "Deleting"];
const CLUSTER_EVERY_MS = 2000;

/// Whether the cluster is still on its way to what was asked of it.
function upgrading(v) { return !!v.requestedVersion && v.requestedVersion !== v.version; }
function changing(v) {
  return CLUSTER_MOVING.includes(v.phase) || upgrading(v) || ((v.health && v.health.provisioningNodes) || 0) > 0;
}

function clusterRow(base, v, reload) {
  const path = base + "/" + encodeURIComponent(v.name);
  const hl = v.health || {};
  const nodes = hl.desiredNodes ? (hl.readyNodes ?? 0) + "/" + hl.desiredNodes +
    (hl.provisioningNodes ? " (+" + hl.provisioningNodes + " booting)" : "") : "—";
  const act = (label, cls, fn) => h("button", { class: cls, onclick: async () => {
    try { await fn(); } catch (e) { say(e.message, "error"); }
  } }, label);
  const workers = h("input", { class: "workers", type: "number", min: 0, required: true, value: v.workers, "aria-label": "workers of " + v.name });
  const actions = [];
  if (v.phase !== "Deleting") {
    actions.push(h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try { await api("PATCH", path, { workers: Number(workers.value) }); say("cluster " + v.name + " scaled to " + workers.value + " workers"); reload(); }
      catch (err) { say(err.message, "error"); }
    } }, workers, h("button", { class: "scale", type: "submit" }, "Scale")));
    const version = h("input", { class: "version", required: true, placeholder: "e.g. v1.30.0", size: 9, "aria-label": "version to upgrade " + v.name + " to" });
    actions.push(h("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try { await api("PATCH", path, { version: version.value }); say("cluster " + v.name + " is being upgraded to " + version.value); reload(); }
      catch (err) { say(err.message, "error"); }
    } }, version, h("button", { class: "upgrade", type: "submit" }, "Upgrade")));
    if (v.kubeconfigReady) actions.push(act("Kubeconfig", "kubeconfig", async () =>
      download(await fetchBlob(path + "/kubeconfig"), v.name + ".kubeconfig")));
    if (!v.sshKeyRetrieved) actions.push(" ", act("SSH key (once)", "ssh-key", async () => {
      download(await fetchBlob(path + "/ssh-key", { method: "POST" }), v.name + ".key");
      say("the SSH key of " + v.name + " was downloaded; it cannot be fetched again");
      reload();
    }));
    actions.push(" ", act("Delete", "danger", async () => {
      if (!confirm("Delete cluster " + v.name + " and all its machines?")) return;
      await api("DELETE", path); say("cluster " + v.name + " is being deleted"); reload();
    }));
  }
  return h("tr", { id: "cluster-" + v.name, "data-phase": v.phase },
    h("td", {}, v.name), h("td", { class: "phase phase-" + v.phase }, v.phase),
    h("td", {}, v.version || "—", upgrading(v) ? " → " + v.requestedVersion : ""), h("td", {}, String(v.controlPlane) + " + " + v.workers),
    h("td", {}, nodes), h("td", {}, v.endpoint ? h("code", {}, v.endpoint) : "—"),
    h("td", {}, v.message || hl.message || ""), h("td", {}, actions));
}

/// The tenant's clusters: made, scaled, their kubeconfig and SSH key
/// fetched, deleted; read again every few seconds while one is changing.
async function clustersSection(tenant) {
  const base = "/v1/tenants/" + encodeURIComponent(tenant) + "/clusters";
  const list = h("div", { id: "clusters" });
  let timer = null;
  let left = false;
  // Actions redraw at once; the timer does not while the user types in a
  // row's field (it would wipe what they typed), and tries again later.
  const reload = async (timed = false) => {
    const typing = () => timed && document.activeElement instanceof HTMLInputElement && list.contains(document.activeElement);
    if (left) return;
    if (typing()) { timer = setTimeout(() => reload(true), CLUSTER_EVERY_MS); return; }
    let items;
    try { items = (await api("GET", base)).items; }
    catch (e) { list.replaceChildren(h("p", { class: "warn" }, e.message)); return; }
    if (typing()) { timer = setTimeout(() => reload(true), CLUSTER_EVERY_MS); return; }
    list.replaceChildren(table(["Cluster", "Phase", "Version", "Machines", "Ready nodes", "Endpoint", "Why", ""],
      items.sort((a, b) => a.name.localeCompare(b.name)).map((v) => clusterRow(base, v, reload)), "No clusters."));
    clearTimeout(timer);
    if (!left && items.some(changing)) timer = setTimeout(() => reload(true), CLUSTER_EVERY_MS);
  };
  leave.push(() => { left = true; clearTimeout(timer); });
  const name = h("input", { id: "cluster-name", required: true, placeholder: "name", size: 12 });
  const workers = h("input", { id: "cluster-workers", class: "workers", type: "number", min: 0, placeholder: "1" });
  const version = h("input", { id: "cluster-version", placeholder: "profile's default", size: 10 });
  const create = h("form", { class: "inline", id: "cluster-form", onsubmit: async (e) => {
    e.preventDefault();
    const body = { name: name.value };
    if (workers.value !== "") body.workers = Number(workers.value);
    if (version.value) body.version = version.value;
    try { await api("POST", base, body); say("cluster " + name.value + " is being built"); name.value = ""; reload(); }
    catch (err) { say(err.message, "error"); }
  } }, h("label", {}, "Name", name), h("label", {}, "Workers", workers), h("label", {}, "Version", version),
  h("button", { class: "primary", type: "submit" }, "Create cluster"));
  await reload();
  return [h("h2", {}, "Clusters"), create, list];
}

// ---- templates and their pools ---------------------------------------------

/// Pool samples per template while the templates page is open (the API keeps
/// no history; the `paddock_pool_*` metrics do, in Prometheus).
const poolHistory = new Map();
const POOL_SAMPLES = 60;
const POOL_EVERY_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

/// A pool as a chart: a column per sample (oldest left), stacked ready (green),
/// starting (amber), claimed (blue), against the pool's size (a dashed line).
function poolChart(name, size, samples) {
  const w = 240, hgt = 44, col = w / POOL_SAMPLES;
  const top = Math.max(size || 0, ...samples.map((s) => s.ready + s.starting + s.claimed), 1);
  const y = (n) => hgt - (n / top) * (hgt - 2);
  const parts = [["ready", "chart-ready"], ["starting", "chart-starting"], ["claimed", "chart-claimed"]];
  const columns = samples.flatMap((s, i) => {
    let base = 0;
    return parts.map(([k, cls]) => {
      const r = svg("rect", { x: w - (samples.length - i) * col, y: y(base + s[k]), width: Math.max(col - 1, 1),
        height: Math.max(y(base) - y(base + s[k]), 0), class: cls });
      base += s[k];
      return r;
    });
  });
  const last = samples[samples.length - 1];
  const label = name + " pool: " + last.ready + " ready, " + last.starting + " starting, " + last.claimed +
    " claimed" + (size ? " of " + size : "") + "; " + samples.length + " samples, every " + POOL_EVERY_MS / 1000 + " s";
  return svg("svg", { viewBox: "0 0 " + w + " " + hgt, width: w, height: hgt, role: "img", "aria-label": label, class: "pool-chart" },
    svg("title", {}, label), ...columns,
    size ? svg("line", { x1: 0, x2: w, y1: y(size), y2: y(size), class: "chart-size" }) : "");
}

/// Records a sample of each template's pool and returns its chart.
function samplePool(t) {
  const pool = t.status && t.status.pool;
  if (!pool) return null;
  const samples = poolHistory.get(t.name) || [];
  samples.push({ ready: pool.ready || 0, starting: pool.starting || 0, claimed: pool.claimed || 0 });
  if (samples.length > POOL_SAMPLES) samples.shift();
  poolHistory.set(t.name, samples);
  return poolChart(t.name, t.spec.warmPool ? t.spec.warmPool.size : 0, samples);
}

/// A template's warm pool: its counts, its state and its chart (a sample is taken each time).
function poolCell(t) {
  const pool = t.status && t.status.pool;
  if (!pool) return h("span", { class: "muted" }, t.spec.warmPool ? "pool not counted yet" : "no pool");
  return [h("div", { class: "usage" }, bar("ready", pool.ready, t.spec.warmPool ? t.spec.warmPool.size : undefined),
    [h("span", {}, "starting"), h("span", {}, pool.starting)], [h("span", {}, "claimed"), h("span", {}, pool.claimed)]),
  h("div", { class: pool.state === "Ready" || pool.state === "Filling" ? "ok" : "warn" }, pool.state),
  h("div", { class: "chart", id: "pool-chart-" + t.name }, samplePool(t))];
}

async function templatesPage() {
  const list = (await api("GET", "/v1/templates")).items;
  const cells = new Map(list.map((t) => [t.name, h("td", {}, poolCell(t))]));
  // While the page is open its pools are looked at again every few seconds.
  const timer = setInterval(async () => {
    try {
      for (const t of (await api("GET", "/v1/templates")).items) {
        const cell = cells.get(t.name);
        if (cell) cell.replaceChildren(...[poolCell(t)].flat(Infinity).filter(Boolean));
      }
    } catch (e) { /* the next look tries again */ }
  }, POOL_EVERY_MS);
  leave.push(() => clearInterval(timer));
  const rows = list.map((t) => {
    const accepted = ((t.status && t.status.conditions) || []).find((c) => c.type === "Accepted");
    const ok = accepted && accepted.status === "True";
    return h("tr", {},
      h("td", {}, t.name),
      h("td", {}, h("span", { class: ok ? "ok" : "bad" }, ok ? "Accepted" : "Not accepted"),
        !ok && accepted ? h("ul", { class: "problems" }, accepted.message.split("; ").map((m) => h("li", {}, m))) : null),
      h("td", {}, t.spec.pods.length),
      cells.get(t.name));
  });
  return [h("h1", {}, "Templates"), table(["Template", "State", "Pods", "Warm pool"], rows, "No templates yet.")];
}

// ---- a tenant's VPN, tokens, kubeconfig; logs; nodes -----------------------

/// Saves `blob` as a file named `name` (a download the user asked for).
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function fetchBlob(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN), ...(options.headers || {}) } });
  if (!r.ok) {
    const p = await r.json().catch(() => ({}));
    throw new ApiError(r.status, p.detail || r.status + " " + r.statusText);
  }
  return r.blob();
}

async function vpnSection(tenant, t) {
  if (!(t.spec.vpn && t.spec.vpn.enabled)) return [h("h2", {}, "VPN"), h("p", { class: "muted" }, "This tenant has no VPN.")];
  const base = "/v1/tenants/" + encodeURIComponent(tenant) + "/vpn/clients";
  let view;
  try { view = await api("GET", base); } catch (e) { return [h("h2", {}, "VPN"), h("p", { class: "warn" }, e.message)]; }
  const qr = h("div", { id: "vpn-qr" });
  const rows = view.clients.map((c) => {
    const file = "wg-" + tenant + "-" + c.number + ".conf";
    return h("tr", {},
      h("td", {}, String(c.number)), h("td", {}, h("code", {}, c.address)),
      h("td", {}, h("button", { id: "vpn-config-" + c.number, onclick: async () => {
        try { download(await fetchBlob(base + "/" + c.number + "/config"), file); } catch (e) { say(e.message, "error"); }
      } }, "Download"), " ", h("button", { id: "vpn-qr-" + c.number, onclick: async () => {
        try {
          const img = h("img", { alt: "QR code of client " + c.number + "'s WireGuard configuration", class: "qr",
            src: URL.createObjectURL(await fetchBlob(base + "/" + c.number + "/config?format=qr")) });
          qr.replaceChildren(h("p", { class: "muted" }, "Client " + c.number + ": scan with the WireGuard app. It holds the client's private key."), img);
        } catch (e) { say(e.message, "error"); }
      } }, "QR code")));
  });
  return [h("h2", {}, "VPN"),
    h("p", { class: "muted" }, (view.ready ? "ready" : "starting") + " · endpoint " + (view.endpoint || "not known yet") + " · " + view.addressPool),
    table(["Client", "Address", ""], rows, "No client slots."), qr];
}

async function tokensSection(tenant) {
  const base = "/v1/tenants/" + encodeURIComponent(tenant) + "/tokens";
  const list = await api("GET", base);
  const shown = h("div", { id: "new-token" });
  const rows = list.map((t) => h("tr", {}, h("td", {}, h("code", {}, t.id)), h("td", {}, t.description || ""),
    h("td", {}, t.expires || "never"),
    h("td", {}, h("button", { class: "danger", onclick: async () => {
      if (!confirm("Revoke token " + t.id + "? Requests with it fail from now on.")) return;
      try { await api("DELETE", base + "/" + encodeURIComponent(t.id)); say("token " + t.id + " revoked"); route(); }
      catch (e) { say(e.message, "error"); }
    } }, "Revoke"))));
  const description = h("input", { id: "token-description", placeholder: "what it is for" });
  const ttl = h("input", { id: "token-ttl", placeholder: "e.g. 30d", size: 8 });
  const issue = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    if (description.value) body.description = description.value;
    if (ttl.value) body.ttl = ttl.value;
    try {
      const t = await api("POST", base, body);
      shown.replaceChildren(h("p", {}, "The new token, shown this once: ", h("code", { id: "issued-token" }, t.token)));
    } catch (err) { say(err.message, "error"); }
  } }, h("label", {}, "Description", description), h("label", {}, "TTL", ttl), h("button", { class: "primary", type: "submit" }, "Issue token"));
  return [h("h2", {}, "Tokens"), issue, shown, table(["Id", "Description", "Expires", ""], rows, "No tokens.")];
}

const QUOTA = ["pods", "cpu", "memory", "storage", "instances"];

/// The admin's form for a tenant's quota: empty means no limit (the key is
/// removed by the merge patch); what the API refuses is said in its words.
function quotaForm(tenant, t) {
  const q = t.spec.quota || {};
  const inputs = QUOTA.map((k) => h("input", { id: "quota-" + k, value: q[k] ?? "", placeholder: "no limit", size: 7 }));
  return h("form", { class: "inline", id: "quota-form", onsubmit: async (e) => {
    e.preventDefault();
    const quota = {};
    QUOTA.forEach((k, i) => {
      const v = inputs[i].value.trim();
      const counted = k === "pods" || k === "instances";
      quota[k] = v === "" ? null : counted && /^\d+$/.test(v) ? Number(v) : v;
    });
    try {
      await api("PATCH", "/v1/tenants/" + encodeURIComponent(tenant), { quota });
      say("quota of " + tenant + " saved");
    } catch (err) { say(err.message, "error"); }
  } }, QUOTA.map((k, i) => h("label", {}, k, inputs[i])), h("button", { class: "primary", type: "submit" }, "Save quota"));
}

function kubeconfigButton(tenant) {
  return h("button", { id: "kubeconfig", onclick: async () => {
    try {
      const k = await api("POST", "/v1/tenants/" + encodeURIComponent(tenant) + "/kubeconfig", {});
      download(new Blob([k.kubeconfig], { type: "application/yaml" }), tenant + ".kubeconfig");
    } catch (e) { say(e.message, "error"); }
  } }, "Download kubeconfig");
}

/// Follows an instance's pod log into `out` until stopped.
function followLog(tenant, name, pod, out) {
  const stop = new AbortController();
  (async () => {
    try {
      const q = "?follow=true&tail=500" + (pod ? "&pod=" + encodeURIComponent(pod) : "");
      const r = await fetch("/v1/tenants/" + encodeURIComponent(tenant) + "/instances/" + encodeURIComponent(name) + "/logs" + q,
        { headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) }, signal: stop.signal });
      if (!r.ok) { const p = await r.json().catch(() => ({})); out.textContent = p.detail || String(r.status); return; }
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      out.textContent = "(no output yet)";
      let first = true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (first) { out.textContent = ""; first = false; }
        out.textContent += value;
        out.scrollTop = out.scrollHeight;
      }
    } catch (e) { if (!stop.signal.aborted) out.textContent += "\n(the log stream ended)"; }
  })();
  return () => stop.abort();
}

async function nodesPage() {
  const nodes = await api("GET", "/v1/nodes");
  const rows = nodes.map((n) => h("tr", {}, h("td", {}, n.name), h("td", {}, n.role || "—"),
    h("td", { class: n.ready ? "ok" : "bad" }, n.ready ? "Ready" : "NotReady", n.schedulable ? "" : " (cordoned)"),
    h("td", {}, n.taints.join(", ") || "—"),
    h("td", {}, meters(n.requested || [])),
    h("td", {}, String(n.pods))));
  return [h("h1", {}, "Nodes"), table(["Node", "Role", "State", "Taints", "Requested of allocatable", "Paddock pods"], rows, "No nodes.")];
}

// ---- isolation: `paddock audit` as a matrix --------------------------------

/// A port to explain a path with: the first one its ports name.
function firstPort(ports) {
  const m = /(TCP|UDP|SCTP)\/(\d+)/.exec(ports);
  return m ? { protocol: m[1], port: m[2] } : { protocol: "TCP", port: "80" };
}

async function isolationPage() {
  const a = await api("GET", "/v1/audit");
  const names = a.tenants.map((t) => t.tenant);
  const cell = new Map(a.matrix.map((c) => [c.from + "\n" + c.to, c.paths]));
  const tenantOf = new Map(a.tenants.flatMap((t) => t.namespaces.map((ns) => [ns, t.tenant])));
  const detail = h("section", { id: "isolation-detail", "aria-live": "polite" });
  const show = (from, to) => {
    const paths = (a.tenants.find((t) => t.tenant === from) || { crossTenantPaths: [] }).crossTenantPaths
      .filter((p) => tenantOf.get(p.to.split("/")[0]) === to);
    detail.replaceChildren(h("h2", {}, "Paths from " + from + " to " + to),
      table(["From", "To", "Ports", ""], paths.map((p) => {
        const why = h("td", { class: "muted" });
        return h("tr", {}, h("td", {}, h("code", {}, p.from)), h("td", {}, h("code", {}, p.to)), h("td", {}, p.ports),
          h("td", {}, h("button", { class: "explain", onclick: async () => {
            const f = firstPort(p.ports);
            const q = new URLSearchParams({ from: p.from, to: p.to, port: f.port, protocol: f.protocol });
            try { const v = await api("GET", "/v1/audit/explain?" + q); why.textContent = (v.allowed ? "allowed: " : "refused: ") + v.explanation; }
            catch (e) { why.textContent = e.message; }
          } }, "Explain")), why);
      }), "No paths."));
  };
  const head = h("tr", {}, h("th", { scope: "col" }, "from \\ to"), names.map((n) => h("th", { scope: "col" }, n)));
  const rows = names.map((from) => h("tr", {}, h("th", { scope: "row" }, from), names.map((to) => {
    if (from === to) return h("td", { class: "muted" }, "·");
    const n = cell.get(from + "\n" + to) || 0;
    return h("td", {}, n ? h("button", { class: "bad cell", "aria-label": n + " paths from " + from + " to " + to,
      onclick: () => show(from, to) }, String(n)) : h("span", { class: "ok", "aria-label": "no path" }, "0"));
  })));
  const verdict = a.crossTenantPaths === 0
    ? h("p", { class: "ok", id: "isolation-verdict" }, "Isolated: no path crosses tenants.")
    : h("p", { class: "bad", id: "isolation-verdict" }, "Not isolated: " + a.crossTenantPaths + " cross-tenant paths. Click a red cell.");
  const exposed = a.tenants.flatMap((t) => t.reachableFromOutside.map((e) => h("li", {}, h("code", {}, e.pod), " " + e.ports)));
  const bare = a.tenants.flatMap((t) => t.withoutPolicy.map((p) => h("li", {}, h("code", {}, p))));
  const relaxed = a.relaxedTemplates.flatMap((t) => t.relaxes.map((r) => h("li", {}, t.template + ": " + r)));
  return [h("h1", {}, "Isolation"), verdict,
    h("div", { class: "table" }, h("table", { class: "matrix" }, h("thead", {}, head), h("tbody", {}, rows))), detail,
    h("h2", {}, "Reachable from outside the cluster"), exposed.length ? h("ul", {}, exposed) : h("p", { class: "muted" }, "None."),
    h("h2", {}, "Pods no NetworkPolicy selects"), bare.length ? h("ul", {}, bare) : h("p", { class: "muted" }, "None."),
    h("h2", {}, "Templates that relax the hardened pod"), relaxed.length ? h("ul", {}, relaxed) : h("p", { class: "muted" }, "None.")];
}

// ---- a tenant's files ------------------------------------------------------

function filesHash(tenant, group, path) {
  return "#/tenants/" + encodeURIComponent(tenant) + "/files" + (group ? "/group/" + encodeURIComponent(group) : "") +
    "?path=" + encodeURIComponent(path);
}

function sizeText(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

/// The tenant's volumes it may browse, as links (the page's Storage section).
function storageSection(tenant, t) {
  const st = t.spec.storage || {};
  if (st.files === "Disabled") return [h("h2", {}, "Files"), h("p", { class: "muted" }, "The file browser is off for this tenant.")];
  const links = [];
  if (st.enabled !== false) links.push(h("a", { id: "files-home", href: filesHash(tenant, null, "/") }, "Own volume"));
  for (const g of (t.spec.groups || [])) links.push(h("a", { href: filesHash(tenant, g, "/") }, "Group " + g));
  if (!links.length) return [];
  return [h("h2", {}, "Files"), h("p", { class: "inline" }, links, st.files === "ReadOnly" ? h("span", { class: "muted" }, "(read-only)") : null)];
}

async function filesPage(tenant, group, path) {
  const base = "/v1/tenants/" + encodeURIComponent(tenant) + "/storage/" + (group ? "groups/" + encodeURIComponent(group) + "/" : "") + "files";
  const q = (p) => "?path=" + encodeURIComponent(p);
  const title = "Files of " + tenant + (group ? " · group " + group : "");
  let l;
  try { l = await api("GET", base + q(path)); }
  catch (e) { return [h("h1", {}, title), h("p", { class: "bad", id: "refused" }, e.message)]; }
  const join = (name) => (l.path === "/" ? "" : l.path) + "/" + name;
  const reload = () => route();
  const parts = l.path.split("/").filter(Boolean);
  const crumbs = [h("a", { href: filesHash(tenant, group, "/") }, "/")];
  parts.forEach((p, i) => crumbs.push(" ", h("a", { href: filesHash(tenant, group, "/" + parts.slice(0, i + 1).join("/")) }, p + "/")));
  const rows = l.entries.map((e) => {
    const dir = e.kind === "Directory";
    const actions = [];
    if (e.kind === "File") actions.push(h("button", { class: "download", onclick: async () => {
      try { download(await fetchBlob(base + "/content" + q(join(e.name))), e.name); } catch (err) { say(err.message, "error"); }
    } }, "Download"));
    if (!l.readOnly) actions.push(" ", h("button", { class: "delete", onclick: async () => {
      if (!confirm("Delete " + join(e.name) + (dir ? " and all it holds" : "") + "?")) return;
      try { await api("DELETE", base + q(join(e.name)) + (dir ? "&recursive=true" : "")); say("deleted " + join(e.name)); reload(); }
      catch (err) { say(err.message, "error"); }
    } }, "Delete"));
    return h("tr", { "data-name": e.name },
      h("td", {}, dir ? h("a", { href: filesHash(tenant, group, join(e.name)) }, e.name + "/") : e.name),
      h("td", {}, e.kind), h("td", {}, dir ? "" : sizeText(e.size)), h("td", {}, e.modified || ""), h("td", {}, actions));
  });
  const forms = [];
  if (!l.readOnly) {
    const file = h("input", { type: "file", id: "upload-file", required: true });
    const replace = h("input", { type: "checkbox", id: "upload-replace" });
    forms.push(h("form", { class: "inline", id: "upload-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const f = file.files[0];
      if (!f) return;
      say("uploading " + f.name + "…");
      try {
        await fetchBlob(base + "/content" + q(join(f.name)) + "&replace=" + replace.checked,
          { method: "PUT", body: f, headers: { "Content-Type": "application/octet-stream" } });
        say("uploaded " + join(f.name)); reload();
      } catch (err) { say(err.message, "error"); }
    } }, h("label", {}, "File", file), h("label", {}, replace, "replace"), h("button", { class: "primary", type: "submit" }, "Upload")));
    const name = h("input", { id: "mkdir-name", required: true, placeholder: "name" });
    forms.push(h("form", { class: "inline", id: "mkdir-form", onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api("POST", base + "/mkdir" + q(join(name.value))); say("made " + join(name.value)); reload(); }
      catch (err) { say(err.message, "error"); }
    } }, h("label", {}, "New directory", name), h("button", { type: "submit" }, "Make")));
  }
  return [h("h1", {}, title),
    h("p", { class: "muted" }, h("a", { href: "#/tenants/" + encodeURIComponent(tenant) }, "← tenant " + tenant), " · ", l.volume, l.readOnly ? " · read-only" : ""),
    h("p", { id: "crumbs" }, crumbs),
    h("div", { id: "files" }, table(["Name", "Kind", "Size", "Modified", ""], rows, "Empty.")),
    l.truncated ? h("p", { class: "warn" }, "Only the first " + l.entries.length + " entries are shown.") : null,
    forms];
}

// ---- routing -------------------------------------------------------------

function navigation(s, here) {
  const links = s.admin ? [["#/tenants", "Tenants"], ["#/templates", "Templates"], ["#/nodes", "Nodes"], ["#/isolation", "Isolation"]]
    : [["#/tenants/" + encodeURIComponent(s.tenant), "My tenant"], ["#/templates", "Templates"]];
  nav.replaceChildren(...links.map(([href, text]) => h("a", { href, "aria-current": here.startsWith(href) ? "page" : null }, text)));
  whoEl.replaceChildren(s.admin ? "admin" : "tenant " + s.tenant, " ",
    h("button", { onclick: () => { sessionStorage.removeItem(TOKEN); session = null; location.hash = "#/signin"; route(); } }, "Sign out"));
}

let routing = 0; // the latest route(): an older one that finishes later renders nothing

async function route() {
  const mine = ++routing;
  for (const stop of leave) stop();
  leave = [];
  const here = location.hash || "#/";
  const started = performance.now();
  let content;
  try {
    if (here === "#/signin" || !sessionStorage.getItem(TOKEN)) {
      nav.replaceChildren(); whoEl.replaceChildren();
      content = signinPage();
    } else {
      const s = await who();
      navigation(s, here);
      const m = here.match(/^#\/tenants\/([^/]+)$/);
      const f = here.match(/^#\/tenants\/([^/]+)\/files(?:\/group\/([^/?]+))?(?:\?path=(.*))?$/);
      if (m) content = await tenantPage(decodeURIComponent(m[1]));
      else if (f) content = await filesPage(decodeURIComponent(f[1]), f[2] ? decodeURIComponent(f[2]) : null, f[3] ? decodeURIComponent(f[3]) : "/");
      else if (here === "#/templates") content = await templatesPage();
      else if (here === "#/nodes") content = await nodesPage();
      else if (here === "#/isolation") content = await isolationPage();
      else if (s.admin) content = await tenantsPage();
      else content = await tenantPage(s.tenant);
    }
  } catch (e) {
    if (e.status === 401) { sessionStorage.removeItem(TOKEN); session = null; content = signinPage(); }
    content = content || [h("h1", {}, "Not available"), h("p", { class: "bad", id: "refused" }, e.message)];
  }
  if (mine !== routing) return;
  // Parts a page leaves out are null: not drawn (replaceChildren would write "null").
  main.replaceChildren(...[content].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
  main.dataset.rendered = String(Math.round(performance.now() - started));
  main.focus();
}

window.addEventListener("hashchange", () => { say(""); route(); });
route();
