// skiff dashboard: keeps a copy of the cluster from the server's event stream
// (/api/stream: a snapshot, then one change per watch event) and redraws.
"use strict";
const objects = new Map();      // "Kind/ns/name" -> object
let selected = null;            // key of the selected object
let pending = false;

const $ = (id) => document.getElementById(id);
const keyOf = (o) => `${o.kind}/${o.metadata.namespace || ""}/${o.metadata.name}`;
const ofKind = (kind) => [...objects.values()].filter((o) => o.kind === kind)
  .sort((a, b) => (a.metadata.namespace + a.metadata.name).localeCompare(b.metadata.namespace + b.metadata.name));

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function podReady(p) {
  return (p.status?.conditions || []).some((c) => c.type === "Ready" && c.status === "True");
}
function podClass(p) {
  if (p.metadata.deletionTimestamp) return "pod Terminating";
  const phase = p.status?.phase || "Pending";
  return `pod ${phase}${podReady(p) ? " ready" : ""}`;
}
function nodeReady(n) {
  return (n.status?.conditions || []).some((c) => c.type === "Ready" && c.status === "True");
}
function nodeState(n) {
  const c = (n.status?.conditions || []).find((c) => c.type === "Ready");
  if (!c) return "NotReady (no status yet)";
  return c.status === "True" ? "Ready" : `NotReady (${c.status}${c.reason ? ", " + c.reason : ""})`;
}
function selectable(o, node) {
  node.dataset.key = keyOf(o);
  if (keyOf(o) === selected) node.classList.add("selected");
  node.addEventListener("click", (ev) => { ev.stopPropagation(); select(keyOf(o)); });
  return node;
}
function podChip(p) {
  const phase = p.metadata.deletionTimestamp ? "Terminating" : (p.status?.phase || "Pending");
  return selectable(p, el("span", {
    class: podClass(p), title: `${p.metadata.namespace}/${p.metadata.name}: ${phase}${podReady(p) ? ", ready" : ""}`,
  }, p.metadata.name));
}

function drawNodes() {
  const pods = ofKind("Pod");
  const box = $("nodes");
  box.replaceChildren(...ofKind("Node").map((n) => {
    const mine = pods.filter((p) => p.spec?.nodeName === n.metadata.name);
    const addr = (n.status?.addresses || []).find((a) => a.type === "InternalIP")?.address || "";
    return selectable(n, el("div", { class: `node${nodeReady(n) ? "" : " notready"}` },
      el("div", { class: "name" }, n.metadata.name),
      el("div", { class: "meta" }, `${nodeState(n)} ${addr} · ${mine.length} pods`),
      el("div", { class: "pods" }, ...mine.map(podChip))));
  }));
  const waiting = pods.filter((p) => !p.spec?.nodeName);
  $("unscheduled").replaceChildren(...(waiting.length ? [el("h3", {}, `Not scheduled (${waiting.length})`),
    el("div", { class: "pods" }, ...waiting.map(podChip))] : []));
}

function ownedBy(o, owner) {
  return (o.metadata.ownerReferences || []).some((r) => r.uid === owner.metadata.uid);
}
function objLabel(o, extra) {
  return selectable(o, el("span", { class: "obj" }, el("span", { class: "kind" }, o.kind),
    `${o.metadata.namespace}/${o.metadata.name}${extra ? " " + extra : ""}`));
}
function drawWorkloads() {
  const rss = ofKind("ReplicaSet"), pods = ofKind("Pod");
  $("workloads").replaceChildren(el("ul", { class: "tree" }, ...ofKind("Deployment").map((d) => {
    const s = d.status || {};
    return el("li", {}, objLabel(d, `${s.readyReplicas || 0}/${d.spec.replicas ?? 1} ready`),
      el("ul", { class: "tree" }, ...rss.filter((rs) => ownedBy(rs, d)).map((rs) =>
        el("li", {}, objLabel(rs, `rev ${rs.metadata.annotations?.["deployment.kubernetes.io/revision"] || "?"} · ${rs.status?.replicas || 0}/${rs.spec.replicas ?? 1}`),
          el("div", { class: "pods" }, ...pods.filter((p) => ownedBy(p, rs)).map(podChip))))));
  })));
}

function drawServices() {
  const eps = new Map(ofKind("Endpoints").map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));
  $("services").replaceChildren(el("ul", { class: "tree" }, ...ofKind("Service").map((s) => {
    const ep = eps.get(`${s.metadata.namespace}/${s.metadata.name}`);
    const addrs = (ep?.subsets || []).flatMap((ss) => (ss.addresses || []).flatMap((a) =>
      (ss.ports || [{ port: "" }]).map((p) => `${a.ip}:${p.port}` + (a.targetRef ? ` (${a.targetRef.name})` : ""))));
    const ports = (s.spec.ports || []).map((p) => `${p.port}/${p.protocol || "TCP"}`).join(",");
    return el("li", {}, objLabel(s, `${s.spec.clusterIP || ""} ${ports}`),
      el("ul", { class: "tree" }, ...(addrs.length ? addrs.map((a) => el("li", {}, "→ " + a))
        : [el("li", {}, "→ no ready endpoints")])));
  })));
}

function eventTime(e) {
  return e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp || "";
}
function eventItem(e) {
  const io = e.involvedObject || {};
  return el("li", { class: e.type || "Normal" }, el("span", { class: "time" }, eventTime(e).replace("T", " ").replace("Z", "") + " "),
    `${io.kind || ""} ${io.namespace ? io.namespace + "/" : ""}${io.name || ""}: ${e.reason || ""} ${e.message || ""}`
    + (e.source?.component ? ` [${e.source.component}]` : "") + ((e.count || 1) > 1 ? ` ×${e.count}` : ""));
}
// The reconcile trace: ConfigMaps kube-system/skiff-trace-<component> (the head,
// newest records) and skiff-trace-<k>-<component> (sealed shards), all labelled
// skiff.io/trace=true, each holding records as JSON. A record is known by its
// component, the component's start time and seq: a shard being sealed may
// briefly repeat what the head shows (client/trace.py).
function traceRecords() {
  const byKey = new Map();
  for (const cm of ofKind("ConfigMap")) {
    if (cm.metadata.labels?.["skiff.io/trace"] !== "true") continue;
    let records = [];
    try { records = JSON.parse(cm.data?.records || "[]"); } catch (e) { /* a torn write: skip */ }
    for (const r of records) {
      const key = `${cm.data?.component || cm.metadata.name} ${cm.data?.started || ""} ${r.seq}`;
      if (!byKey.has(key)) byKey.set(key, r);
    }
  }
  return [...byKey.values()];
}
function traceItem(r) {
  const actions = (r.actions || []).map((a) => a.action + (a.error ? ` (error: ${a.error})` : "")).join("; ");
  return el("li", { class: `trace${(r.outcome || "").startsWith("error") ? " Warning" : ""}` },
    el("span", { class: "time" }, (r.time || "").replace("T", " ").replace("Z", "").slice(0, 19) + " "),
    el("span", { class: "tag" }, "trace"),
    ` ${r.component}/${r.controller} ${r.kind} ${r.namespace ? r.namespace + "/" : ""}${r.name}: `
    + `${r.observed ? "saw " + r.observed + ", " : ""}${r.wanted ? "wanted " + r.wanted + "; " : ""}`
    + `${actions || "no action"} → ${r.outcome || ""}` + (r.durationMs !== undefined ? ` (${r.durationMs} ms)` : ""),
    el("span", { class: "decide" }, ` ${r.decide || ""}`));
}
function timelineEntries(filter) {
  const entries = ofKind("Event").filter((e) => !filter || filter.event(e)).map((e) => [eventTime(e), eventItem(e)]);
  for (const r of traceRecords()) if (!filter || filter.trace(r)) entries.push([r.time || "", traceItem(r)]);
  return entries;
}
function drawTimeline() {
  const entries = timelineEntries(null).sort((a, b) => b[0].localeCompare(a[0])).slice(0, 200);
  $("timeline").replaceChildren(...entries.map((e) => e[1]));
}

// Loop control: kube-system/skiff-loop-control, the keys client/loopcontrol.py reads.
function drawLoop() {
  const cm = objects.get("ConfigMap/kube-system/skiff-loop-control");
  const d = cm?.data || {};
  let state = d.mode === "pause" ? "paused" : "running";
  if (d.only) state += ` (only ${d.only})`;
  if (d.slow && d.slow !== "0s") state += `, slow ${d.slow}`;
  if (d.steps && d.steps !== "0") state += `, steps ${d.granted || 0}/${d.steps}`;
  $("loop-state").textContent = state;
  $("last-step").textContent = d.lastStep ? `last step: ${d.lastStep}` : "";
}

function pretty(v) {
  return v === undefined ? "—" : JSON.stringify(v, null, 2);
}
function drawDetail() {
  const o = selected && objects.get(selected);
  if (!o) {
    $("detail-title").textContent = selected ? `${selected} (deleted)` : "Select an object";
    return;
  }
  $("detail-title").textContent = `${o.kind} ${o.metadata.namespace ? o.metadata.namespace + "/" : ""}${o.metadata.name}`;
  const spec = o.spec ?? (o.kind === "Endpoints" ? o.subsets : o.data);
  $("detail-spec").textContent = pretty({ metadata: { labels: o.metadata.labels, ownerReferences: o.metadata.ownerReferences }, spec });
  $("detail-status").textContent = pretty(o.status);
  const ns = o.metadata.namespace || "";
  const mine = timelineEntries({
    event: (e) => e.involvedObject?.uid === o.metadata.uid || (e.involvedObject?.kind === o.kind
      && e.involvedObject?.name === o.metadata.name && (e.involvedObject?.namespace || "") === ns),
    trace: (r) => r.kind === o.kind && r.name === o.metadata.name && (r.namespace || "") === ns,
  }).sort((a, b) => a[0].localeCompare(b[0]));
  $("detail-events").replaceChildren(...(mine.length ? mine.map((e) => e[1]) : [el("li", {}, "no events")]));
  const decided = traceRecords().filter((r) => r.kind === o.kind && r.name === o.metadata.name
    && (r.namespace || "") === ns).sort((a, b) => (a.time || "").localeCompare(b.time || "")).pop();
  $("detail-decide").textContent = decided
    ? `last decided by ${decided.decide} (${decided.component}/${decided.controller}, ${decided.time})`
    : "";
}

function select(key) {
  selected = key;
  redraw();
}

function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    drawNodes(); drawWorkloads(); drawServices(); drawTimeline(); drawLoop(); drawDetail();
  });
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("snapshot", (ev) => {
    objects.clear();
    for (const o of JSON.parse(ev.data)) objects.set(keyOf(o), o);
    $("conn").textContent = "live";
    redraw();
  });
  source.addEventListener("change", (ev) => {
    const { op, object } = JSON.parse(ev.data);
    if (op === "delete") objects.delete(keyOf(object)); else objects.set(keyOf(object), object);
    redraw();
  });
  source.onerror = () => { $("conn").textContent = "reconnecting…"; };
}

async function loop(action) {
  const body = { action };
  if (action === "slow") body.seconds = Number($("slow-seconds").value);
  const r = await fetch("/api/loop", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!r.ok) $("loop-state").textContent = `error: ${(await r.json()).error}`;
}

for (const action of ["pause", "step", "resume", "slow"]) {
  $(`btn-${action}`).addEventListener("click", () => loop(action));
}
connect();
