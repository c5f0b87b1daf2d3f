// regatta dashboard: plain JavaScript, no build step. Reads /api/events (a
// server-sent event stream) and renders the page for the current path.
"use strict";

const app = document.getElementById("app");
const live = document.getElementById("live");
// Numbers over time, for the charts: at most HISTORY samples each.
const HISTORY = 120;
const series = {};

function remember(key, value) {
  const s = series[key] || (series[key] = []);
  s.push(value);
  if (s.length > HISTORY) s.shift();
  return s;
}

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function bytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function count(n) { return Number(n || 0).toLocaleString("en-US"); }

function secs(s) {
  if (!s) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m + " m " + Math.round(s - 60 * m) + " s";
}

function bar(fraction, cls) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return `<div class="bar ${cls || ""}"><span style="width:${pct.toFixed(1)}%"></span></div>`;
}

function badge(word) { return `<span class="badge ${esc(word)}">${esc(word)}</span>`; }

// A sparkline of `values` (an SVG path), with its latest value as a label.
function spark(values, w, h, color, label) {
  w = w || 220; h = h || 40;
  if (!values || values.length < 2) {
    return `<svg class="spark" width="${w}" height="${h}"></svg>`;
  }
  const max = Math.max(...values, 1e-9);
  const step = w / (HISTORY - 1);
  const x0 = w - step * (values.length - 1);
  const pts = values.map((v, i) =>
    `${(x0 + i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 14)).toFixed(1)}`);
  return `<svg class="spark" width="${w}" height="${h}">
    <polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>
    <text x="2" y="11" fill="#6b7785">${esc(label || "")}</text></svg>`;
}

function stat(k, v, id) {
  return `<div class="card stat"${id ? ` id="${id}"` : ""}><div class="v">${v}</div><div class="k">${k}</div></div>`;
}

// ---------------------------------------------------------------- pages

function overviewPage(o) {
  const running = o.jobs.filter(j => j.status === "running").length;
  const alive = o.workers.filter(w => w.alive).length;
  const rowsOut = o.jobs.reduce((a, j) => a + j.rows_out, 0);
  const tasks = remember("running_tasks", o.workers.reduce((a, w) => a + w.running_tasks, 0));
  return `<h1>Jobs</h1>
  <div class="grid">
    ${stat("running jobs", running)}
    ${stat("finished jobs kept", o.jobs.length - running)}
    ${stat("workers alive", `${alive} / ${o.workers.length}`)}
    ${stat("rows out, all jobs", count(rowsOut))}
    <div class="card stat">${spark(tasks, 220, 44, "#2f6fde", "tasks running")}</div>
  </div>
  <div class="card"><table id="jobs">
    <tr><th>job</th><th>name</th><th>status</th><th>progress</th><th class="num">tasks</th>
    <th class="num">rows in</th><th class="num">rows out</th><th class="num">bytes out</th>
    <th class="num">retried</th><th class="num">elapsed</th></tr>
    ${o.jobs.map(j => `<tr data-job-id="${j.id}" data-status="${esc(j.status)}">
      <td><a href="/jobs/${j.id}">job-${j.id}</a></td><td>${esc(jobName(j))}</td>
      <td>${badge(j.status)}</td>
      <td data-progress="${j.progress}">${bar(j.progress, j.status === "succeeded" ? "green" : "")}</td>
      <td class="num">${j.tasks_done}/${j.tasks}</td>
      <td class="num">${count(j.rows_in)}</td><td class="num">${count(j.rows_out)}</td>
      <td class="num">${bytes(j.bytes_out)}</td><td class="num">${j.retried_tasks}</td>
      <td class="num">${secs(j.elapsed_seconds)}</td></tr>
      ${j.error ? `<tr><td></td><td colspan="9" class="error">${esc(j.error)}</td></tr>` : ""}`).join("")}
  </table>${o.jobs.length ? "" : `<p class="muted">No jobs yet: submit one with <code>regatta submit</code>.</p>`}</div>
  ${driversCard(o.drivers)}`;
}

function driversCard(drivers) {
  return `<div class="card"><h2>Driver replicas</h2><table id="drivers">
    <tr><th>node</th><th>address</th><th>role</th><th class="num">term</th>
    <th class="num">log index</th><th class="num">applied</th></tr>
    ${drivers.map(d => `<tr data-node-id="${d.node_id}"><td>${d.node_id || "lone"}</td>
      <td>${esc(d.address)}</td><td>${badge(d.role)}</td><td class="num">${d.term}</td>
      <td class="num">${d.last_log_index}</td><td class="num">${d.applied_index}</td></tr>`).join("")}
  </table></div>`;
}

function workersPage(o) {
  return `<h1>Workers</h1>
  <div class="card"><table id="workers">
    <tr><th>worker</th><th>address</th><th>state</th><th class="num">CPUs leased</th>
    <th class="num">GPUs</th><th>memory (pool used / limit)</th><th class="num">running</th>
    <th class="num">done</th><th class="num">spilled</th><th class="num">shuffle out / served</th>
    <th>memory over time</th></tr>
    ${o.workers.map(w => {
      const mem = remember("mem" + w.id, w.memory_used_bytes);
      const frac = w.memory_bytes ? w.memory_used_bytes / w.memory_bytes : 0;
      return `<tr data-worker-id="${w.id}" data-alive="${w.alive}" data-cpus="${w.cpus}">
      <td>worker-${w.id}${w.node_label ? `<div class="muted">${esc(w.node_label)}</div>` : ""}</td>
      <td>${esc(w.address)}${w.metrics_address ? `<div class="muted">metrics ${esc(w.metrics_address)}</div>` : ""}</td>
      <td>${badge(w.alive ? "alive" : "lost")}${w.lost_reason ? `<div class="error">${esc(w.lost_reason)}</div>` : ""}</td>
      <td class="num">${w.cpus_leased} / ${w.cpus}</td>
      <td class="num">${w.gpus_leased} / ${w.gpus}</td>
      <td>${bar(frac, frac > 0.8 ? "amber" : "green")}<span class="muted">${bytes(w.memory_used_bytes)} / ${bytes(w.memory_bytes)}</span></td>
      <td class="num">${w.running_tasks}</td><td class="num">${count(w.tasks_done)}</td>
      <td class="num">${bytes(w.spilled_bytes)}</td>
      <td class="num">${bytes(w.shuffle_written_bytes)} / ${bytes(w.shuffle_served_bytes)}</td>
      <td>${spark(mem, 160, 34, "#1f9d55", "")}</td></tr>
      ${w.pools.length ? `<tr><td></td><td colspan="10" class="pool">${w.pools.map(p =>
        `<b>${esc(p.model)}</b>: ${p.actors} actors, queue ${p.queue_depth}, ${count(p.batches)} batches,
         ${p.batch_latency_ms.toFixed(1)} ms/batch, ${p.builds} loads`).join(" · ")}</td></tr>` : ""}`;
    }).join("")}
  </table>${o.workers.length ? "" : `<p class="muted">No worker has registered.</p>`}</div>
  ${driversCard(o.drivers)}`;
}

// The stage graph: stages left to right by depth, arrows from inputs.
function stageGraph(stages) {
  const level = {};
  stages.forEach(s => {
    level[s.stage] = s.inputs.length ? Math.max(...s.inputs.map(i => (level[i] ?? 0) + 1)) : 0;
  });
  const cols = {};
  stages.forEach(s => (cols[level[s.stage]] = cols[level[s.stage]] || []).push(s));
  const W = 170, H = 58, GX = 60, GY = 18;
  const pos = {};
  Object.keys(cols).forEach(l => cols[l].forEach((s, i) => {
    pos[s.stage] = { x: 10 + l * (W + GX), y: 10 + i * (H + GY) };
  }));
  const width = 20 + (Object.keys(cols).length) * (W + GX);
  const height = 20 + Math.max(...Object.values(cols).map(c => c.length)) * (H + GY);
  const arrows = stages.flatMap(s => s.inputs.map(i => {
    const a = pos[i], b = pos[s.stage];
    if (!a || !b) return "";
    return `<line x1="${a.x + W}" y1="${a.y + H / 2}" x2="${b.x - 4}" y2="${b.y + H / 2}"
      stroke="#9aa7b5" stroke-width="2" marker-end="url(#arrow)"/>`;
  }));
  const boxes = stages.map(s => {
    const p = pos[s.stage], f = s.tasks ? s.done / s.tasks : 0;
    const color = f >= 1 ? "#1f9d55" : s.running ? "#2f6fde" : "#9aa7b5";
    return `<g data-stage="${s.stage}"><rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="8"
      fill="#fff" stroke="${color}" stroke-width="2"/>
      <rect x="${p.x}" y="${p.y + H - 6}" width="${(W * f).toFixed(1)}" height="6" rx="3" fill="${color}"/>
      <text x="${p.x + 10}" y="${p.y + 20}" font-weight="600">stage-${s.stage}</text>
      <text x="${p.x + 10}" y="${p.y + 38}" fill="#6b7785">${s.done}/${s.tasks} done, ${s.running} running</text></g>`;
  });
  return `<svg width="${width}" height="${height}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
    <path d="M0,0 L10,5 L0,10 z" fill="#9aa7b5"/></marker></defs>${arrows.join("")}${boxes.join("")}</svg>`;
}

function jobPage(j, latest) {
  if (!j && latest) return `<h1>Latest job</h1><p class="muted" id="no-job-yet">No job yet: this page shows the newest job as soon as one is submitted.</p>`;
  if (!j) return `<h1>Job</h1><p class="muted">This job is not known here (forgotten, or not yet replicated).</p>`;
  const rate = remember("rows" + j.id, j.operators.reduce((a, o) => a + (o.depth === 0 ? o.rows_out : 0), 0));
  const maxCompute = Math.max(...j.operators.map(o => o.compute_seconds), 1e-9);
  return `<h1>job-${j.id} <span class="muted">${esc(jobName(j))}</span> ${badge(j.status)}</h1>
  <div class="grid">
    ${stat("progress", `<span id="job-progress" data-value="${j.progress}">${(100 * j.progress).toFixed(0)} %</span>`)}
    ${stat("tasks", `${j.tasks_done} / ${j.tasks} <span class="muted">(${j.tasks_running} running)</span>`)}
    ${stat("rows in → out", `${count(j.rows_in)} → <span id="job-rows-out">${count(j.rows_out)}</span>`)}
    ${stat("bytes out · shuffled", `${bytes(j.bytes_out)} · ${bytes(j.shuffle_bytes)}`)}
    ${stat("retried tasks · recomputed", `<span id="job-retried">${j.retried_tasks}</span> · ${j.recomputed_outputs}`)}
    ${stat("rows failed · checked", `<span id="job-failed-rows">${count(j.failed_rows)}</span> · ${count(j.checked_rows)}${j.errors_url ? ` <span class="muted">→ ${esc(j.errors_url)}</span>` : ""}`)}
    ${stat("elapsed", secs(j.elapsed_seconds))}
  </div>
  ${j.error ? `<div class="card error">${esc(j.error)}</div>` : ""}
  <div class="card">${bar(j.progress, j.status === "succeeded" ? "green" : "")}</div>
  <div class="row">
    <div class="card"><h2>Stages</h2>${stageGraph(j.stages)}</div>
    <div class="card"><h2>Rows out of finished tasks, over time</h2>${spark(rate, 420, 90, "#7a5af8", count(rate[rate.length - 1]))}</div>
  </div>
  <div class="card"><h2>Operators</h2><table id="operators">
    <tr><th>stage</th><th>operator</th><th class="num">rows in</th><th class="num">rows out</th>
    <th class="num">bytes out</th><th>compute</th><th class="num">in-flight peak</th>
    <th class="num">waiting on consumer</th></tr>
    ${j.operators.map(o => `<tr data-operator="${o.stage}:${o.index}">
      <td>stage-${o.stage}</td><td style="padding-left:${8 + 14 * o.depth}px">${esc(o.name)}</td>
      <td class="num rows-in" data-value="${o.rows_in}">${count(o.rows_in)}</td>
      <td class="num rows-out" data-value="${o.rows_out}">${count(o.rows_out)}</td>
      <td class="num">${o.bytes_out ? bytes(o.bytes_out) : "–"}</td>
      <td>${bar(o.compute_seconds / maxCompute, "amber")}<span class="muted">${secs(o.compute_seconds)}</span></td>
      <td class="num">${o.in_flight_peak ? count(o.in_flight_peak) : "–"}</td>
      <td class="num">${o.backpressure_seconds ? secs(o.backpressure_seconds) : "–"}</td></tr>`).join("")}
  </table>${j.operators.length ? "" : `<p class="muted">Operators appear as tasks finish.</p>`}</div>
  <div class="row">
    <div class="card"><h2>Tasks by worker</h2><table id="task-workers">
      <tr><th>worker</th><th class="num">running</th><th class="num">done</th><th class="num">failed or lost</th></tr>
      ${j.task_workers.map(w => `<tr data-worker-id="${w.worker}"><td>worker-${w.worker}</td>
        <td class="num">${w.running}</td><td class="num">${w.done}</td><td class="num">${w.failed}</td></tr>`).join("")}
    </table></div>
    <div class="card"><h2>Failures</h2>${j.failures.length ? `<ul class="failures" id="failures">
      ${j.failures.map(f => `<li>stage-${f.stage} partition ${f.partition}, attempt ${f.attempt}, on worker-${f.worker}:
        <div class="error">${esc(f.error)}</div></li>`).join("")}</ul>` : `<p class="muted" id="no-failures">None.</p>`}</div>
  </div>`;
}

// ---------------------------------------------------------------- wiring

function route() {
  const m = location.pathname.match(/^\/jobs\/(\d+|latest)$/);
  if (m) return { page: "job", job: m[1] };
  if (location.pathname === "/workers") return { page: "workers" };
  return { page: "overview" };
}

// Makes `el`'s content equal to `html` by changing only the nodes that differ, so
// the browser lays out and repaints what changed (a few numbers and a chart a
// second), not the whole page: a watching browser shares the machine with the
// cluster it watches, and a full repaint each second cost it a tenth of a core.
function morph(el, html) {
  const next = document.createElement(el.tagName);
  next.innerHTML = html;
  patchChildren(el, next);
}

function patchChildren(have, want) {
  const a = have.childNodes, b = want.childNodes;
  for (let i = 0; i < b.length; i++) {
    if (i < a.length) patchNode(a[i], b[i]);
    else have.appendChild(b[i].cloneNode(true));
  }
  while (a.length > b.length) have.removeChild(have.lastChild);
}

function patchNode(have, want) {
  if (have.nodeType !== want.nodeType || have.nodeName !== want.nodeName) {
    have.replaceWith(want.cloneNode(true));
    return;
  }
  if (have.nodeType !== Node.ELEMENT_NODE) {
    if (have.nodeValue !== want.nodeValue) have.nodeValue = want.nodeValue;
    return;
  }
  for (const { name, value } of Array.from(want.attributes)) {
    if (have.getAttribute(name) !== value) have.setAttribute(name, value);
  }
  for (const { name } of Array.from(have.attributes)) {
    if (!want.hasAttribute(name)) have.removeAttribute(name);
  }
  patchChildren(have, want);
}

let shown = "";

function render(data) {
  const r = route();
  document.querySelectorAll("[data-nav]").forEach(a =>
    a.classList.toggle("active", a.dataset.nav === r.page));
  let html;
  if (r.page === "job") html = jobPage(data.job, r.job === "latest");
  else if (r.page === "workers") html = workersPage(data.overview);
  else html = overviewPage(data.overview);
  // An unchanged page (an idle cluster) costs the browser nothing.
  if (html !== shown) {
    morph(app, html);
    shown = html;
  }
  document.body.dataset.updated = String(Date.now());
}

function connect() {
  const r = route();
  const src = new EventSource("/api/events" + (r.job ? "?job=" + r.job : ""));
  src.onmessage = e => {
    if (live.textContent !== "live") live.textContent = "live";
    live.classList.add("on");
    render(JSON.parse(e.data));
  };
  src.onerror = () => {
    live.textContent = "reconnecting…";
    live.classList.remove("on");
  };
}

connect();

// A job's name when it was given one (an unnamed job is called after its id).
function jobName(j) {
  return j.name && j.name !== `job-${j.id}` ? j.name : "";
}
