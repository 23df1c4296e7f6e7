// soundloom studio page: plain JS, no build step, no external resources.
"use strict";
const $ = (sel, el = document) => el.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const q = (path) => encodeURIComponent(path);
const fmtS = (s) => s == null ? "-" : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(s < 10 ? 2 : 0)} s`;
const PALETTE = ["#5ec8be", "#f0a35e", "#a98bf0", "#e5646a", "#7ccf7a", "#e8d46a", "#63a4f0", "#f07ec8", "#9bd8f0", "#c8a07a"];

function toast(msg) {
  const t = $("#toast"); t.textContent = msg; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => (t.hidden = true), 7000);
}
async function api(method, url, body) {
  const opt = {method, headers: {}};
  if (body !== undefined) { opt.headers["content-type"] = "application/json"; opt.body = JSON.stringify(body); }
  const r = await fetch(url, opt);
  const data = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(data?.detail || data?.error || `${r.status} ${r.statusText}`);
  return data;
}
const guard = (fn) => async (...a) => { try { return await fn(...a); } catch (e) { toast(e.message); } };

// ---- tabs ----------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("on", s.id === `tab-${name}`));
  location.hash = name;
  if (name === "generate" || name === "map" || name === "train") loadRuns();
  if (name === "jobs") loadJobs();
}
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// ---- sound cards ---------------------------------------------------------------------------
function card(item, opts = {}) {
  const el = document.createElement("div");
  el.className = "card"; el.dataset.path = item.path;
  const tag = item.label != null && item.label !== "" ? `<span class="tag">${esc(item.label)}</span>` : "";
  el.innerHTML = `<div class="name"><span title="${esc(item.path)}">${esc(item.name || item.path.split("/").pop())}</span>${tag}</div>
    <img loading="lazy" alt="spectrogram" src="/api/thumb?kind=spec&path=${q(item.path)}">
    <audio controls preload="metadata" src="/api/audio?path=${q(item.path)}"></audio>`;
  if (opts.tools) {
    const tools = document.createElement("div"); tools.className = "tools";
    tools.innerHTML = `<button class="pick" title="pick for interpolation">&#9733; pick</button><button class="vary">vary</button>`;
    tools.querySelector(".pick").onclick = () => togglePick(el);
    tools.querySelector(".vary").onclick = guard(() => vary(item.path));
    el.appendChild(tools);
  }
  return el;
}

// ---- data ----------------------------------------------------------------------------------
let cwd = "";
const loadDir = guard(async (path) => {
  const d = await api("GET", `/api/files?path=${q(path)}`);
  cwd = d.path;
  $("#crumbs").textContent = "/" + (cwd || "");
  const ul = $("#dirlist"); ul.innerHTML = "";
  if (d.parent !== null) ul.appendChild(li("..", "&#8617;", () => loadDir(d.parent), "dir"));
  d.dirs.forEach((x) => ul.appendChild(li(x.name, "&#9656;", () => loadDir(x.path), "dir")));
  d.files.forEach((x) => ul.appendChild(li(x.name, "&#9834;", () => play(x.path), "file")));
  if (!d.dirs.length && !d.files.length) ul.innerHTML = `<li class="muted">empty folder</li>`;
  const grid = $("#filegrid"); grid.innerHTML = ""; $("#filegrid-head").hidden = !d.files.length;
  d.files.slice(0, 48).forEach((f) => grid.appendChild(card(f)));
  if (d.files.length > 48) grid.insertAdjacentHTML("beforeend", `<div class="muted">${d.files.length - 48} more files</div>`);
});
function li(text, icon, onclick, cls) {
  const el = document.createElement("li"); el.className = cls;
  el.innerHTML = `<span class="icon">${icon}</span><span>${esc(text)}</span>`; el.onclick = onclick; return el;
}
const player = new Audio();
function play(path) { player.src = `/api/audio?path=${q(path)}`; player.play().catch(() => {}); }

$("#scan-btn").onclick = guard(async () => {
  $("#scan-state").textContent = "scanning\u2026"; $("#scan-btn").disabled = true;
  try {
    const r = await api("POST", "/api/scan", {path: cwd});
    renderScan(r);
    $("#scan-state").textContent = `${r.layout} layout, ${r.seconds.toFixed(2)} s`;
  } finally { $("#scan-btn").disabled = false; }
});
function renderScan(r) {
  const d = r.duration_s || {};
  let h = `<div class="stats">
    <div class="stat" id="scan-files"><b>${r.n_files}</b><span>files</span></div>
    <div class="stat" id="scan-ok"><b>${r.n_ok}</b><span>usable</span></div>
    <div class="stat"><b>${r.bad.length}</b><span>bad</span></div>
    <div class="stat"><b>${fmtS(d.total)}</b><span>total audio</span></div>
    <div class="stat"><b>${fmtS(d.median)}</b><span>median (${fmtS(d.min)} - ${fmtS(d.max)})</span></div>
    <div class="stat"><b>${Object.keys(r.sample_rates).map((k) => `${k / 1000}k`).join(", ") || "-"}</b><span>sample rates (Hz)</span></div></div>`;
  for (const [name, counts] of Object.entries(r.labels)) {
    const max = Math.max(1, ...Object.values(counts));
    h += `<h3>${esc(name)} (${r.label_distinct[name]} values)</h3><div class="bars scan-label" data-label="${esc(name)}">`;
    for (const [k, v] of Object.entries(counts)) h += `<span>${esc(k)}</span><div class="bar" style="width:${(100 * v) / max}%"></div><span class="count">${v}</span>`;
    h += `</div>`;
  }
  if (r.warnings.length) h += `<h3>Warnings</h3>` + r.warnings.map((w) => `<div class="muted">${esc(w)}</div>`).join("");
  if (r.bad.length) {
    h += `<h3>Bad files</h3><table class="bad"><tr><th>file</th><th>kind</th><th>reason</th></tr>`;
    h += r.bad.slice(0, 200).map((b) => `<tr><td>${esc(b.path)}</td><td>${esc(b.kind)}</td><td>${esc(b.reason)}</td></tr>`).join("") + `</table>`;
  }
  const el = $("#scan-report"); el.className = ""; el.innerHTML = h;
}
$("#prepare-btn").onclick = guard(async () => {
  const out = prompt("Feature store folder to write (relative to the root):", `features/${cwd.split("/").pop() || "data"}`);
  if (!out) return;
  await api("POST", "/api/jobs/prepare", {source: cwd, out});
  showTab("jobs");
});

// ---- runs, train ---------------------------------------------------------------------------
let runs = [];
const loadRuns = guard(async () => {
  runs = await api("GET", "/api/runs");
  const finished = runs.filter((r) => r.finished);
  for (const sel of [$("#gen-run"), $("#map-run")]) {
    const keep = sel.value;
    sel.innerHTML = finished.map((r) => `<option value="${esc(r.path)}">${esc(r.path)} (${esc(r.kind)})</option>`).join("") || `<option value="">no finished run</option>`;
    if (finished.some((r) => r.path === keep)) sel.value = keep;
  }
  $("#resume-run").innerHTML = runs.map((r) => `<option>${esc(r.path)}</option>`).join("");
  fillLabels();
});
function fillLabels() {
  const run = runs.find((r) => r.path === $("#gen-run").value);
  $("#gen-label").innerHTML = `<option value="">any</option>` + (run?.labels || []).map((l) => `<option>${esc(l)}</option>`).join("");
}
$("#gen-run").onchange = fillLabels;

$("#train-form").onsubmit = guard(async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {features: f.get("features"), out: f.get("out"), model: f.get("model"), epochs: +f.get("epochs")};
  for (const k of ["minutes", "latent_dim", "batch_size"]) if (f.get(k)) body[k] = +f.get(k);
  follow(await api("POST", "/api/jobs/train", body));
});
$("#resume-btn").onclick = guard(async () => follow(await api("POST", "/api/jobs/resume", {run: $("#resume-run").value})));

let source = null, followed = null;
function follow(job) {
  if (source) source.close();
  followed = job.id;
  $("#live-title").textContent = job.title;
  source = new EventSource(`/api/jobs/${job.id}/events`);
  source.addEventListener("job", (e) => renderLive(JSON.parse(e.data)));
  source.addEventListener("end", () => { source.close(); loadJobs(); });
  $("#live-stop").hidden = false;
  $("#live-stop").onclick = guard(async () => { await api("POST", `/api/jobs/${job.id}/stop`); });
}
function renderLive(j) {
  const last = j.metrics?.length ? j.metrics[j.metrics.length - 1] : null;
  $("#live-state").innerHTML = `<span class="status ${j.status}">${j.status}</span>` + (j.error ? ` <span class="errline">${esc(j.error)}</span>` : "");
  $("#live-stop").hidden = j.status !== "running";
  $("#live-meta").textContent = last ? `epoch ${last.epoch + 1}, step ${last.step}, train loss ${last["train/loss"]?.toFixed(4) ?? "-"}, val loss ${last["val/loss"]?.toFixed(4) ?? "-"}, elapsed ${fmtS(last.elapsed_s)}, ETA ${fmtS(j.eta_s)}` : "waiting for the first epoch\u2026";
  drawLoss(j.metrics || []);
  const grid = $("#live-samples"); const have = [...grid.children].map((c) => c.dataset.path).join();
  if (have !== (j.samples || []).map((s) => s.path).join()) { grid.innerHTML = ""; (j.samples || []).forEach((s) => grid.appendChild(card({...s, label: `epoch ${+s.epoch}`}))); }
}
function drawLoss(rows) {
  const c = $("#loss"), g = c.getContext("2d"), W = c.width, H = c.height, P = 36;
  g.clearRect(0, 0, W, H);
  const series = [["train/loss", "#5ec8be"], ["val/loss", "#f0a35e"]];
  const vals = rows.flatMap((r) => series.map(([k]) => r[k]).filter((v) => v != null && isFinite(v)));
  g.fillStyle = "#8d94a5"; g.font = "12px system-ui, sans-serif";
  if (!vals.length) { g.fillText("loss curves appear after the first epoch", P, H / 2); return; }
  const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1, n = Math.max(1, rows.length - 1);
  const X = (i) => P + ((W - 2 * P) * i) / n, Y = (v) => H - P + 10 - ((H - 2 * P) * (v - lo)) / span;
  g.strokeStyle = "#2e3340"; g.beginPath(); g.moveTo(P, 10); g.lineTo(P, H - P + 10); g.lineTo(W - P, H - P + 10); g.stroke();
  g.fillText(hi.toPrecision(3), 2, 16); g.fillText(lo.toPrecision(3), 2, H - P + 10); g.fillText("epoch", W - P - 30, H - 6);
  series.forEach(([k, col], si) => {
    g.strokeStyle = col; g.lineWidth = 2; g.beginPath();
    rows.forEach((r, i) => { if (r[k] == null) return; i ? g.lineTo(X(i), Y(r[k])) : g.moveTo(X(i), Y(r[k])); });
    g.stroke(); g.fillStyle = col; g.fillText(k, W - P - 140 + si * 70, 16);
  });
}

// ---- generate ------------------------------------------------------------------------------
const temp = $("#gen-form").elements.temperature;
temp.oninput = () => ($("#temp-out").textContent = temp.value);
$("#gen-form").onsubmit = guard(async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {run: f.get("run"), temperature: +f.get("temperature"), count: +f.get("count"), seed: +f.get("seed")};
  if (f.get("label")) body.label = f.get("label");
  if (f.get("pitch")) body.pitch = +f.get("pitch");
  await runBatch("Generating", () => api("POST", "/api/generate", body));
});
async function runBatch(what, call) {
  $("#gen-state").textContent = `${what}\u2026`; $("#gen-btn").disabled = true;
  try {
    const r = await call();
    const grid = $("#gen-grid"); grid.innerHTML = "";
    r.sounds.forEach((s) => grid.appendChild(card(s, {tools: true})));
    $("#gen-zip").href = r.zip; $("#gen-zip").hidden = false;
    $("#gen-state").textContent = `${r.sounds.length} sounds in ${r.seconds.toFixed(1)} s; pick two (\u2605) to interpolate`;
    picked = []; updatePick();
  } finally { $("#gen-btn").disabled = false; }
}
let picked = [];
function togglePick(el) {
  const p = el.dataset.path;
  picked = picked.includes(p) ? picked.filter((x) => x !== p) : [...picked, p].slice(-2);
  updatePick();
}
function updatePick() {
  document.querySelectorAll("#gen-grid .card").forEach((c) => c.classList.toggle("picked", picked.includes(c.dataset.path)));
  $("#interp-btn").disabled = picked.length !== 2;
}
$("#interp-btn").onclick = guard(() => interpolate(picked[0], picked[1], $("#gen-run").value));
const interpolate = (a, b, run) => runBatch("Interpolating", () => api("POST", "/api/interpolate", {run, a, b, steps: 8}));
const vary = (path) => runBatch("Varying", () => api("POST", "/api/variation", {run: $("#gen-run").value, path, count: 4, amount: 0.4}));

// ---- latent map ----------------------------------------------------------------------------
let mapPoints = [], mapPicked = [], hovered = null;
$("#map-btn").onclick = guard(async () => {
  $("#map-state").textContent = "encoding the training set\u2026";
  const r = await api("GET", `/api/latents?run=${q($("#map-run").value)}`);
  const colour = Object.fromEntries(r.labels.map((l, i) => [l, PALETTE[i % PALETTE.length]]));
  mapPoints = r.points.map((p) => ({...p, colour: colour[p.label]}));
  mapPicked = [];
  $("#legend").innerHTML = r.labels.map((l) => `<div><i style="background:${colour[l]}"></i>${esc(l || "(no label)")}</div>`).join("");
  $("#map-state").textContent = `${r.points.length} sounds; PCA explains ${(100 * (r.explained[0] + r.explained[1])).toFixed(0)} % of the variance. Hover to hear, click two to interpolate.`;
  drawMap();
});
function mapXY(p) { const c = $("#map"); return [30 + ((c.width - 60) * (p.x + 1)) / 2, 20 + ((c.height - 40) * (1 - p.y)) / 2]; }
function drawMap() {
  const c = $("#map"), g = c.getContext("2d"); g.clearRect(0, 0, c.width, c.height);
  for (const p of mapPoints) {
    const [x, y] = mapXY(p); g.fillStyle = p.colour; g.globalAlpha = 0.85;
    g.beginPath(); g.arc(x, y, p === hovered ? 6 : 4, 0, 7); g.fill();
    if (mapPicked.includes(p)) { g.globalAlpha = 1; g.strokeStyle = "#fff"; g.lineWidth = 2; g.beginPath(); g.arc(x, y, 8, 0, 7); g.stroke(); }
  }
  g.globalAlpha = 1;
}
function nearest(ev) {
  const c = $("#map"), b = c.getBoundingClientRect(), sx = c.width / b.width, sy = c.height / b.height;
  const mx = (ev.clientX - b.left) * sx, my = (ev.clientY - b.top) * sy;
  let best = null, bd = 100;
  for (const p of mapPoints) { const [x, y] = mapXY(p); const d = (x - mx) ** 2 + (y - my) ** 2; if (d < bd) { bd = d; best = p; } }
  return best;
}
$("#map").onmousemove = (ev) => {
  const p = nearest(ev);
  if (p === hovered) return;
  hovered = p; drawMap();
  if (p?.path) { play(p.path); $("#map-state").textContent = `${p.label}: ${p.path}`; }
};
$("#map").onclick = guard(async (ev) => {
  const p = nearest(ev); if (!p?.path) return;
  mapPicked = [...mapPicked.filter((x) => x !== p), p].slice(-2); drawMap();
  if (mapPicked.length === 2) { showTab("generate"); $("#gen-run").value = $("#map-run").value; await interpolate(mapPicked[0].path, mapPicked[1].path, $("#map-run").value); }
});

// ---- stream ---------------------------------------------------------------------------------
let streams = [];
const current = () => streams.find((x) => x.name === $("#stream-name").value);
const loadStreams = guard(async () => {
  streams = await api("GET", "/api/streams");
  $("#stream-name").innerHTML = streams.map((s) => `<option value="${esc(s.name)}">${esc(s.name)}</option>`).join("");
  $("#stream-btn").disabled = $("#skip-btn").disabled = !streams.length;
  if (streams.length) { streamInfo(); $("#stream-url").textContent = `${location.origin}${liveUrl(current())}`; }
});
// Ogg Vorbis (~64 kb/s) where the browser plays it, WAV (353 kb/s) otherwise
const liveUrl = (s) => (s.live_ogg && $("#stream-audio").canPlayType('audio/ogg; codecs="vorbis"') ? s.live_ogg : s.live);
function startStream() {
  const s = current(); if (!s) return;
  const a = $("#stream-audio"); a.src = `${liveUrl(s)}?t=${Date.now()}`;
  a.play().catch((e) => toast(`cannot play: ${e.message}`));
  $("#stream-url").textContent = `${location.origin}${liveUrl(s)}`;
  setTimeout(nowPlaying, 500);
}
$("#stream-btn").onclick = startStream;
$("#skip-btn").onclick = guard(async () => { const s = current(); if (s) { await api("POST", `/api/streams/${q(s.name)}/skip`); setTimeout(nowPlaying, 1500); } });
const streamInfo = guard(async () => {
  const s = current(); if (!s) return;
  const i = await api("GET", s.info);
  $("#stream-info").textContent = `${i.songs} songs, ${i.chunks} chunks at ${i.sample_rate} Hz; model ${i.model}; ${i.target_lufs} LUFS, ${i.crossfade_ms} ms crossfades`;
});
const nowPlaying = guard(async () => {
  const s = current(); if (!s) return;
  const n = await api("GET", s.now);
  $("#now").innerHTML = n.playing
    ? `<div class="stat"><b>${esc(n.song)}</b><span>song</span></div><div class="stat"><b>${n.chunk_index}</b><span>chunk</span></div>
       <div class="stat"><b>${n.score == null ? "-" : (+n.score).toFixed(3)}</b><span>transition score${n.natural ? " (natural)" : ""}</span></div>
       <div class="stat"><b>${n.listeners}</b><span>listening</span></div>`
    : `<span class="muted">${n.error ? esc(n.error) : "not playing"}</span>`;
  const verdict = (v) => (v == null ? `<span class="muted">not checked</span>` : v ? "pass" : `<span class="errline">fail</span>`);
  $("#next tbody").innerHTML = (n.next || []).map((c) => `<tr${c.taken ? ' class="taken"' : ""}><td>${esc(c.song)}</td><td>${c.chunk_index}</td>
    <td>${(+c.score).toFixed(3)}</td><td>${verdict(c.seam_predicted)}</td><td>${verdict(c.seam_pass)}</td><td>${c.taken ? "&#8592; next" : ""}</td></tr>`).join("")
    || `<tr><td colspan="6" class="muted">no candidates yet</td></tr>`;
});
setInterval(() => { if (!$("#stream-audio").paused) nowPlaying(); }, 2000);

// ---- jobs ----------------------------------------------------------------------------------
const loadJobs = guard(async () => {
  const jobs = await api("GET", "/api/jobs");
  const running = jobs.filter((j) => j.status === "running");
  $("#jobcount").textContent = running.length || "";
  $("#jobs tbody").innerHTML = jobs.map((j) => {
    const p = j.progress; const prog = p ? `${esc(p.stage)} ${p.done}${p.total ? ` / ${p.total}` : ""}` : "";
    const err = j.error ? `<div class="errline">${esc(j.error)}</div>` : "";
    const act = j.status === "running" ? `<button data-stop="${j.id}" class="danger">stop</button>` : "";
    const follow = j.kind === "train" ? `<button data-follow="${j.id}">follow</button>` : "";
    const resume = j.kind === "train" && ["stopped", "crashed", "failed"].includes(j.status) ? `<button data-resume="${esc(j.params.out)}">resume</button>` : "";
    return `<tr data-job="${j.id}"><td>${esc(j.title)}${err}</td><td><span class="status ${j.status}">${j.status}</span></td><td>${prog}</td><td>${new Date(j.started * 1000).toLocaleTimeString()}</td><td>${act} ${follow} ${resume}</td></tr>`;
  }).join("") || `<tr><td colspan="5" class="muted">no jobs yet</td></tr>`;
  document.querySelectorAll("[data-stop]").forEach((b) => (b.onclick = guard(async () => { await api("POST", `/api/jobs/${b.dataset.stop}/stop`); loadJobs(); })));
  document.querySelectorAll("[data-follow]").forEach((b) => (b.onclick = () => { follow(jobs.find((j) => j.id === b.dataset.follow)); showTab("train"); }));
  document.querySelectorAll("[data-resume]").forEach((b) => (b.onclick = guard(async () => { follow(await api("POST", "/api/jobs/resume", {run: b.dataset.resume})); showTab("train"); })));
  if (!followed) { const t = running.find((j) => j.kind === "train"); if (t) follow(t); }
});

// ---- start ---------------------------------------------------------------------------------
(async () => {
  const info = await api("GET", "/api/info").catch(() => ({root: ""}));
  $("#rootname").textContent = `root: ${info.root}`;
  loadDir(""); loadStreams(); loadRuns(); loadJobs();
  setInterval(loadJobs, 3000);
  const tab = location.hash.slice(1); if (tab && $(`#tab-${tab}`)) showTab(tab);
})();
