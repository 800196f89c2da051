// segtrack workbench front end: plain JavaScript, no library, talks to the JSON API of app.py.
"use strict";

const $ = (sel) => document.querySelector(sel);
const S = {
  info: null, session: null, frame: 0, selected: null, tool: "view", brush: 20,
  job: null, events: null, rev: 0, frameImg: new Image(), labelsImg: new Image(),
  labelsReady: false, drag: null, painting: false, editDirty: false, loadingFrame: false,
  pendingFrame: null,
  clicks: {}, segBusy: false, segAgain: false, segments: 0, // the Click tool
  opacity: 0.5, outline: false, zoom: 1, panX: 0, panY: 0, pan: null, playTimer: null,
  scores: {}, creating: null,
};
window.segtrack = S; // for tests and debugging

// the DAVIS / PASCAL VOC colour map (same as segtrack.io.palette)
function paletteColor(k) {
  let r = 0, g = 0, b = 0, c = k;
  for (let j = 0; j < 8; j++) {
    r |= ((c >> 0) & 1) << (7 - j); g |= ((c >> 1) & 1) << (7 - j); b |= ((c >> 2) & 1) << (7 - j);
    c >>= 3;
  }
  return [r, g, b];
}
const css = (k) => { const [r, g, b] = paletteColor(k); return `rgb(${r},${g},${b})`; };

function setStatus(text, isError) {
  const el = $("#status");
  el.textContent = text || "";
  el.style.color = isError ? "#ff7a7a" : "#f0c36b";
  document.body.dataset.status = isError ? "error" : "ok";
}

async function api(method, url, body, raw, quiet) {
  const opts = { method, headers: {} };
  if (raw !== undefined) { opts.body = raw; }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const msg = (data && data.detail) ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText;
    if (!quiet) setStatus(msg, true);
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return data;
}

// ---------------------------------------------------------------- opening ---------------------
async function browse(path) {
  const data = await api("GET", "/api/browse" + (path ? "?path=" + encodeURIComponent(path) : ""));
  const box = $("#browser");
  box.innerHTML = "";
  if (data.parent) addBrowseItem(box, "..", data.parent, "dir");
  for (const e of data.entries) addBrowseItem(box, e.name, e.path, e.kind);
  if (data.path) $("#path").value = data.path;
}
function addBrowseItem(box, name, path, kind) {
  const it = document.createElement("div");
  it.className = "item";
  it.innerHTML = `<span class="kind kind-${kind}">${kind}</span><span class="name"></span>`;
  it.querySelector(".name").textContent = name;
  it.title = path;
  it.onclick = () => { $("#path").value = path; if (kind === "dir" || kind === "frames") browse(path).catch(() => {}); };
  it.ondblclick = () => { if (kind !== "dir") openPath(path); };
  box.appendChild(it);
}
async function openPath(path) {
  setStatus("opening " + path + " ...");
  const s = await api("POST", "/api/sessions", { path, reuse: true });
  await loadSession(s);
  setStatus("opened " + s.name);
}
function sizeText(n) {
  for (const [unit, k] of [["GB", 2 ** 30], ["MB", 2 ** 20], ["KB", 2 ** 10]]) {
    if (n >= k) { const v = n / k; return (v >= 10 || v === Math.round(v) ? v.toFixed(0) : v.toFixed(1)) + " " + unit; }
  }
  return n + " bytes";
}
async function upload() {
  const files = Array.from($("#upload-files").files);
  if (!files.length) { setStatus("choose a video or frames to upload", true); return; }
  const max = S.info.max_upload_bytes;
  const total = files.reduce((a, f) => a + f.size, 0);
  if (total > max) { setStatus(`the upload is ${sizeText(total)}, larger than the limit of ${sizeText(max)}`, true); return; }
  const up = await api("POST", "/api/uploads");
  let n = 0;
  try {
    for (const f of files) {
      setStatus(`uploading ${f.name} (${++n}/${files.length})`);
      await api("PUT", `/api/uploads/${up.id}/files/${encodeURIComponent(f.name)}`, undefined, f);
    }
  } catch (e) {  // forget the half-made upload; the message stays
    api("DELETE", `/api/uploads/${up.id}`, undefined, undefined, true).catch(() => {});
    throw e;
  }
  const s = await api("POST", `/api/uploads/${up.id}/open`);
  await loadSession(s);
  setStatus("opened upload " + s.name);
}
async function listSessions() {
  const list = await api("GET", "/api/sessions");
  const box = $("#sessions");
  box.innerHTML = "";
  for (const s of list) {
    const it = document.createElement("div");
    it.className = "item" + (S.session && S.session.id === s.id ? " selected" : "");
    it.dataset.session = s.id;
    it.innerHTML = `<span class="name"></span><span class="muted">${s.num_frames}f</span>` +
      `<button class="rename" title="rename">\u270e</button><button class="del" title="delete this session">\u2715</button>`;
    it.querySelector(".name").textContent = s.name;
    it.title = s.source;
    it.onclick = async (ev) => { if (ev.target.tagName !== "BUTTON") loadSession(await api("GET", "/api/sessions/" + s.id)); };
    it.querySelector(".rename").onclick = async () => {
      const name = prompt("name of this session", s.name);
      if (!name) return;
      await api("PATCH", `/api/sessions/${s.id}`, { name });
      if (S.session && S.session.id === s.id) await refreshSession();
      await listSessions();
    };
    it.querySelector(".del").onclick = async () => {
      if (!confirm(`delete the session '${s.name}' with its masks and exports? (the video itself stays)`)) return;
      await api("DELETE", `/api/sessions/${s.id}`);
      if (S.session && S.session.id === s.id) closeSession();
      setStatus(`session '${s.name}' deleted`);
      await listSessions();
    };
    box.appendChild(it);
  }
}

// ---------------------------------------------------------------- session ---------------------
function closeSession() {
  stopPlaying();
  S.session = null; S.selected = null; S.scores = {};
  localStorage.removeItem("segtrack.session");
  const url = new URL(location.href);
  url.searchParams.delete("session");
  history.replaceState(null, "", url);
  $("#session-name").textContent = "";
  $("#empty").style.display = "";
  const cv = $("#view");
  cv.getContext("2d").clearRect(0, 0, cv.width, cv.height);
  renderObjects(); drawTracks(); updateUndo();
  document.body.dataset.session = "";
}
async function loadScores() {
  if (!S.session) return;
  S.scores = await api("GET", `/api/sessions/${S.session.id}/scores`, undefined, undefined, true).catch(() => ({}));
  drawTracks();
}
async function loadSession(s) {
  stopPlaying();
  S.session = s;
  S.rev = s.rev;
  document.body.dataset.session = s.id;
  localStorage.setItem("segtrack.session", s.id);
  const url = new URL(location.href);
  url.searchParams.set("session", s.id);
  history.replaceState(null, "", url);
  $("#session-name").textContent = `${s.name} \u2014 ${s.num_frames} frames, ${s.width}\u00d7${s.height}`;
  $("#empty").style.display = "none";
  const cv = $("#view");
  cv.width = s.width; cv.height = s.height;
  fitCanvas();
  S.edit = document.createElement("canvas");
  S.edit.width = s.width; S.edit.height = s.height;
  S.zoom = 1; S.panX = S.panY = 0; applyZoom();
  $("#scrub").max = s.num_frames - 1;
  $("#frame-input").max = s.num_frames;
  setMethod(s.method);
  const ids = Object.keys(s.objects).map(Number);
  if (!ids.includes(S.selected)) S.selected = ids.length ? ids[0] : null;
  const start = Math.min(S.frame, s.num_frames - 1);
  renderObjects();
  drawTracks();
  updateUndo();
  listSessions().catch(() => {});
  loadScores();
  if (s.job) watchJob(s.job.id);
  await gotoFrame(start, true);
}
async function refreshSession() {
  if (!S.session) return;
  const s = await api("GET", "/api/sessions/" + S.session.id);
  const changed = s.rev !== S.rev;
  S.session = s; S.rev = s.rev;
  if (changed) {
    if (!Object.keys(s.objects).map(Number).includes(S.selected)) {
      const ids = Object.keys(s.objects).map(Number);
      S.selected = ids.length ? ids[0] : null;
    }
    renderObjects(); drawTracks(); updateUndo();
    if (!S.painting) await gotoFrame(S.frame, true);
  }
  if (s.job && !S.job) watchJob(s.job.id);
}

// ---------------------------------------------------------------- objects ---------------------
function renderObjects() {
  const box = $("#objects");
  box.innerHTML = "";
  if (!S.session) return;
  for (const key of Object.keys(S.session.objects).sort((a, b) => a - b)) {
    const o = S.session.objects[key];
    const it = document.createElement("div");
    it.className = "item" + (o.id === S.selected ? " selected" : "") + (o.hidden ? " hidden-obj" : "");
    it.dataset.object = o.id;
    const n = (S.session.coverage[key] || []).length;
    it.innerHTML = `<span class="swatch" style="background:${css(o.id)}"></span><span class="name"></span>` +
      `<span class="muted small">${n}f</span>` +
      `<button class="hide" title="hide / show">${o.hidden ? "show" : "hide"}</button>` +
      `<button class="rename" title="rename">\u270e</button><button class="del" title="delete">\u2715</button>`;
    it.querySelector(".name").textContent = o.name;
    it.onclick = (ev) => { if (ev.target.tagName !== "BUTTON") selectObject(o.id); };
    it.querySelector(".hide").onclick = () => patchObject(o.id, { hidden: !o.hidden });
    it.querySelector(".rename").onclick = () => {
      const name = prompt("name of object " + o.id, o.name);
      if (name) patchObject(o.id, { name });
    };
    it.querySelector(".del").onclick = async () => {
      if (!confirm(`delete '${o.name}' and all its masks?`)) return;
      await api("DELETE", `/api/sessions/${S.session.id}/objects/${o.id}`);
      await refreshSession();
    };
    box.appendChild(it);
  }
}
async function newObject() {
  if (!S.session) return null;
  const o = await api("POST", `/api/sessions/${S.session.id}/objects`, {});
  S.selected = o.id;
  await refreshSession();
  return o.id;
}
async function patchObject(id, body) {
  await api("PATCH", `/api/sessions/${S.session.id}/objects/${id}`, body);
  await refreshSession();
}
async function selectObject(id) {
  S.selected = id;
  renderObjects(); drawTracks();
  await gotoFrame(S.frame, true);
}

// ---------------------------------------------------------------- frames ----------------------
function loadImage(img, src) {
  return new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = src;
  });
}
async function gotoFrame(i, force) {
  // S.frame changes at once (so that quick key presses add up); loads coalesce to the latest
  if (!S.session) return;
  i = Math.max(0, Math.min(S.session.num_frames - 1, i | 0));
  const changed = i !== S.frame;
  S.frame = i;
  S.needEdit = S.needEdit || changed || !!force;
  S.needLoad = true;
  $("#scrub").value = i;
  // frames counted from 1, as the header's "N frames"; the file name beside
  if (document.activeElement !== $("#frame-input")) $("#frame-input").value = i + 1;
  $("#frame-label").textContent = `of ${S.session.num_frames} \u00b7 ${S.session.frame_names[i]}`;
  drawTracks();
  if (S.loadingFrame) return;
  S.loadingFrame = true;
  try {
    while (S.needLoad) {
      S.needLoad = false;
      const f = S.frame, sid = S.session.id;
      const editing = (S.tool === "paint" || S.tool === "erase") && S.selected;
      const ex = editing ? `&exclude=${S.selected}` : "";
      const jobs = [loadImage(S.frameImg, `/api/sessions/${sid}/frames/${f}`),
        loadImage(S.labelsImg, `/api/sessions/${sid}/labels/${f}.png?t=${Date.now()}${ex}`)];
      if (S.needEdit && editing) { S.needEdit = false; jobs.push(loadEditMask()); }
      await Promise.all(jobs);
      if (S.frame === f) { render(); document.body.dataset.frame = String(f); }
    }
  } finally {
    S.loadingFrame = false;
  }
}
async function loadEditMask() {
  const ctx = S.edit.getContext("2d");
  ctx.clearRect(0, 0, S.edit.width, S.edit.height);
  S.editDirty = false;
  if (!S.selected) return;
  const img = new Image();
  const ok = await loadImage(img, `/api/sessions/${S.session.id}/masks/${S.selected}/${S.frame}.png?t=${Date.now()}`);
  if (!ok) return;
  // 1-bit PNG: white = object; turn it into white-on-transparent
  const tmp = document.createElement("canvas");
  tmp.width = S.edit.width; tmp.height = S.edit.height;
  const t = tmp.getContext("2d");
  t.drawImage(img, 0, 0);
  const d = t.getImageData(0, 0, tmp.width, tmp.height);
  for (let p = 0; p < d.data.length; p += 4) {
    const on = d.data[p] > 127;
    d.data[p] = d.data[p + 1] = d.data[p + 2] = 255;
    d.data[p + 3] = on ? 255 : 0;
  }
  ctx.putImageData(d, 0, 0);
}
function fitCanvas() {
  // scale the canvas (drawn at the frame's own resolution) to fill the stage, keeping its aspect
  const cv = $("#view"), st = $("#stage").getBoundingClientRect();
  const k = Math.min((st.width - 4) / cv.width, (st.height - 4) / cv.height);
  if (k > 0) { cv.style.width = `${cv.width * k}px`; cv.style.height = `${cv.height * k}px`; }
}
// zoom and pan: a CSS transform of the canvas (pointer positions map back through
// getBoundingClientRect, so every tool works zoomed)
function applyZoom() {
  $("#view").style.transform = `translate(${S.panX}px, ${S.panY}px) scale(${S.zoom})`;
  $("#zoom-label").textContent = `${Math.round(S.zoom * 100)}%`;
  document.body.dataset.zoom = S.zoom.toFixed(2);
}
function zoomAt(factor, clientX, clientY) {
  const st = $("#stage").getBoundingClientRect();
  const z = Math.max(1, Math.min(16, S.zoom * factor));
  const cx = clientX - (st.left + st.width / 2), cy = clientY - (st.top + st.height / 2);
  // keep the image point under the cursor in place
  S.panX = cx - (cx - S.panX) * z / S.zoom;
  S.panY = cy - (cy - S.panY) * z / S.zoom;
  S.zoom = z;
  if (z === 1) { S.panX = S.panY = 0; }
  applyZoom();
}
function zoomFit() { S.zoom = 1; S.panX = S.panY = 0; applyZoom(); }
function render() {
  const cv = $("#view");
  const ctx = cv.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = "source-over";
  if (S.frameImg.complete && S.frameImg.naturalWidth) ctx.drawImage(S.frameImg, 0, 0, cv.width, cv.height);
  if (S.labelsImg.complete && S.labelsImg.naturalWidth) {
    if (S.outline) { ctx.drawImage(outlineOf(S.labelsImg), 0, 0); }
    else {
      ctx.globalAlpha = S.opacity;
      ctx.drawImage(S.labelsImg, 0, 0);
      ctx.globalAlpha = 1;
    }
  }
  if ((S.tool === "paint" || S.tool === "erase") && S.selected) {
    const tint = document.createElement("canvas");
    tint.width = cv.width; tint.height = cv.height;
    const t = tint.getContext("2d");
    t.fillStyle = css(S.selected);
    t.fillRect(0, 0, cv.width, cv.height);
    t.globalCompositeOperation = "destination-in";
    t.drawImage(S.edit, 0, 0);
    ctx.globalAlpha = 0.6;
    ctx.drawImage(tint, 0, 0);
    ctx.globalAlpha = 1;
  }
  if (S.drag && S.tool === "box") {
    const [x0, y0, x1, y1] = S.drag;
    ctx.strokeStyle = S.selected ? css(S.selected) : "#fff";
    ctx.lineWidth = Math.max(2, cv.width / 400);
    ctx.setLineDash([8, 4]);
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.setLineDash([]);
  }
  if (S.cursor && (S.tool === "paint" || S.tool === "erase")) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(S.cursor[0], S.cursor[1], S.brush / 2, 0, 2 * Math.PI); ctx.stroke();
  }
  const c = currentClicks();
  if (S.tool === "click" && c) {  // green: on the object, red: background
    const rad = Math.max(4, cv.width / 160);
    ctx.lineWidth = Math.max(1.5, rad / 3);
    ctx.strokeStyle = "#fff";
    c.points.forEach(([x, y], k) => {
      ctx.fillStyle = c.labels[k] ? "#22c55e" : "#ef4444";
      ctx.beginPath(); ctx.arc(x, y, rad, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    });
  }
  const n = c ? c.points.length : 0;
  document.body.dataset.clicks = String(n);
  $("#clear-clicks").disabled = !n;
}
function outlineOf(img) {
  // the label image's boundaries only: pixels whose label differs from a 4-neighbour's
  if (S.outlineCache && S.outlineCache.src === img.src) return S.outlineCache.canvas;
  const w = img.naturalWidth, h = img.naturalHeight;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const t = c.getContext("2d");
  t.drawImage(img, 0, 0);
  const d = t.getImageData(0, 0, w, h), px = d.data;
  const out = t.createImageData(w, h), o = out.data;
  const key = (p) => (px[p] << 16) | (px[p + 1] << 8) | px[p + 2] | (px[p + 3] ? 1 << 24 : 0);
  const r = Math.max(1, Math.round(w / 500));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 4;
      if (!px[p + 3]) continue;  // background
      const k = key(p);
      let edge = x === 0 || y === 0 || x === w - 1 || y === h - 1;
      if (!edge) edge = key(p - 4) !== k || key(p + 4) !== k || key(p - 4 * w) !== k || key(p + 4 * w) !== k;
      if (edge) {
        for (let dy = -r + 1; dy < r; dy++) for (let dx = -r + 1; dx < r; dx++) {
          const xx = x + dx, yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
          const q = (yy * w + xx) * 4;
          o[q] = px[p]; o[q + 1] = px[p + 1]; o[q + 2] = px[p + 2]; o[q + 3] = 255;
        }
      }
    }
  }
  t.putImageData(out, 0, 0);
  S.outlineCache = { src: img.src, canvas: c };
  return c;
}
function drawTracks() {
  // one row per object: tracked frames in its colour (fainter where the tracker was less sure,
  // an orange mark below 0.5), keyframes in white, the current frame as a line
  const cv = $("#tracks");
  if (!S.session) { cv.getContext("2d").clearRect(0, 0, cv.width, cv.height); return; }
  const ids = Object.keys(S.session.objects).map(Number).sort((a, b) => a - b);
  const rowH = 8, rows = Math.max(1, ids.length);
  const want = Math.min(rows, 12) * rowH + 2;
  if (cv.height !== want) { cv.height = want; cv.style.height = `${want}px`; }
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  const n = S.session.num_frames, fw = Math.max(1, cv.width / n);
  ids.slice(0, 12).forEach((o, row) => {
    const y = 1 + row * rowH;
    const [r, g, b] = paletteColor(o);
    const sc = S.scores[String(o)] || {};
    if (o === S.selected) { ctx.fillStyle = "#2c3440"; ctx.fillRect(0, y, cv.width, rowH); }
    const [lr, lg, lb] = [r, g, b].map((c) => Math.round(90 + c * 0.65));  // readable on dark
    for (const f of S.session.coverage[String(o)] || []) {
      const v = sc[String(f)];
      ctx.fillStyle = `rgba(${lr},${lg},${lb},${v === undefined ? 0.9 : 0.35 + 0.55 * v})`;
      ctx.fillRect(f / n * cv.width, y + 1, fw, rowH - 2);
      if (v !== undefined && v < 0.5) {  // unsure: an orange mark on top
        ctx.fillStyle = "#ff9f1a";
        ctx.fillRect(f / n * cv.width, y + 1, fw, 3);
      }
    }
    ctx.fillStyle = "#fff";
    for (const f of Object.keys(S.session.keyframes[String(o)] || {}).map(Number)) {
      ctx.fillRect(f / n * cv.width, y, Math.max(2, fw), rowH);
    }
  });
  ctx.fillStyle = "#f0c36b";
  ctx.fillRect((S.frame + 0.5) / n * cv.width - 1, 0, 2, cv.height);
}
function nextLowFrame() {
  if (!S.session) return;
  const objs = S.selected ? [S.selected] : Object.keys(S.scores).map(Number);
  let best = null, score = null;
  for (const o of objs) {
    for (const [f, v] of Object.entries(S.scores[String(o)] || {})) {
      const i = +f;
      if (v < 0.5 && i > S.frame && (best === null || i < best)) { best = i; score = v; }
    }
  }
  if (best === null) { setStatus("no unsure frame after this one"); return; }
  setStatus(`frame ${best + 1}: the tracker was unsure (score ${score.toFixed(2)})`);
  gotoFrame(best);
}
function keyframeStep(dir) {
  if (!S.session || !S.selected) return;
  const kfs = Object.keys(S.session.keyframes[String(S.selected)] || {}).map(Number).sort((a, b) => a - b);
  const t = dir > 0 ? kfs.find((f) => f > S.frame) : kfs.reverse().find((f) => f < S.frame);
  if (t === undefined) { setStatus(`no ${dir > 0 ? "later" : "earlier"} keyframe of this object`); return; }
  gotoFrame(t);
}
function stepObject(dir) {
  if (!S.session) return;
  const ids = Object.keys(S.session.objects).map(Number).sort((a, b) => a - b);
  if (!ids.length) return;
  const k = ids.indexOf(S.selected);
  selectObject(ids[(k + dir + ids.length) % ids.length]);
}
// play / pause
function stopPlaying() {
  if (S.playTimer) { clearInterval(S.playTimer); S.playTimer = null; }
  const b = $("#play");
  if (b) b.innerHTML = "&#9654; play";
  document.body.dataset.playing = "0";
}
function togglePlay() {
  if (!S.session) return;
  if (S.playTimer) { stopPlaying(); return; }
  if (S.frame >= S.session.num_frames - 1) gotoFrame(0);
  const fps = Math.min(25, S.session.fps || 10);
  S.playTimer = setInterval(() => {
    if (!S.session || S.frame >= S.session.num_frames - 1) { stopPlaying(); return; }
    if (!S.loadingFrame) gotoFrame(S.frame + 1);
  }, 1000 / fps);
  $("#play").innerHTML = "&#10074;&#10074; pause";
  document.body.dataset.playing = "1";
}
// undo / redo of the user's edits (kept by the server)
function updateUndo() {
  const s = S.session;
  $("#undo").disabled = !(s && s.history && s.history.length);
  $("#redo").disabled = !(s && s.redo && s.redo.length);
  const last = s && s.history && s.history.length ? s.history[s.history.length - 1].what : "";
  $("#undo").title = last ? `undo the last ${last} (Ctrl+Z)` : "undo the last edit (Ctrl+Z)";
}
async function undo(redo) {
  if (!S.session) return;
  if (S.job) { setStatus("tracking is running: cancel it or wait before editing", true); return; }
  const r = await api("POST", `/api/sessions/${S.session.id}/${redo ? "redo" : "undo"}`);
  setStatus(`${redo ? "redid" : "undid"} the ${r.what} on frame ${r.frames.map((f) => f + 1).join(", ")}`);
  S.undos = (S.undos || 0) + 1; document.body.dataset.undos = String(S.undos);
  await refreshSession();
  if (!r.frames.includes(S.frame)) await gotoFrame(r.frames[0], true);
  else await gotoFrame(S.frame, true);
  loadScores();
}
// importing a mask for the current frame
async function importMask(file) {
  if (!S.session || !file) return;
  if (S.job) { setStatus("tracking is running: cancel it or wait before editing", true); return; }
  const body = { index: S.frame, oid: S.selected || null, name: file.name };
  if (file.name.toLowerCase().endsWith(".json")) {
    let data;
    try { data = JSON.parse(await file.text()); } catch (e) { setStatus(`'${file.name}' is not JSON`, true); return; }
    if (data && Array.isArray(data.annotations)) {  // a COCO file: this frame's annotations
      const img = (data.images || []).find((im) => im.frame_index === S.frame) || (data.images || [])[S.frame];
      const anns = img ? data.annotations.filter((a) => a.image_id === img.id) : [];
      if (!anns.length) { setStatus(`'${file.name}' has no annotation for frame ${S.frame + 1}`, true); return; }
      data = anns;
      body.oid = null;
    }
    body.rle = data;
  } else {
    const buf = new Uint8Array(await file.arrayBuffer());
    let bin = "";
    for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    body.png = btoa(bin);
  }
  const r = await api("POST", `/api/sessions/${S.session.id}/import`, body);
  const objs = r.objects.map((o) => o.object);
  if (!S.selected || !objs.includes(S.selected)) S.selected = objs[0];
  setStatus(`imported '${file.name}' on frame ${S.frame + 1}: object${objs.length > 1 ? "s" : ""} ${objs.join(", ")}`);
  S.imports = (S.imports || 0) + 1; document.body.dataset.imports = String(S.imports);
  await refreshSession();
  await gotoFrame(S.frame, true);
}
// ---------------------------------------------------------------- drawing ---------------------
function imagePoint(ev) {
  const cv = $("#view");
  const r = cv.getBoundingClientRect();
  return [(ev.clientX - r.left) * cv.width / r.width, (ev.clientY - r.top) * cv.height / r.height];
}
function setTool(tool) {
  S.tool = tool;
  for (const b of document.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === tool);
  const hints = { view: "", box: "drag a box around the object", paint: "paint the object (release to save)", erase: "erase wrong pixels (release to save)",
    click: "click the object; right or Shift+click: background; Esc: clear" };
  $("#tool-hint").textContent = hints[tool];
  gotoFrame(S.frame, true);
}
function paintTo(p) {
  const ctx = S.edit.getContext("2d");
  ctx.globalCompositeOperation = S.tool === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = S.brush; ctx.lineCap = "round"; ctx.lineJoin = "round";
  const q = S.lastPaint || p;
  ctx.beginPath(); ctx.moveTo(q[0], q[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  ctx.beginPath(); ctx.arc(p[0], p[1], S.brush / 2, 0, 2 * Math.PI); ctx.fill();
  ctx.globalCompositeOperation = "source-over";
  S.lastPaint = p;
  S.editDirty = true;
}
async function onDown(ev) {
  if (!S.session) return;
  if (ev.button === 1 || (S.tool === "view" && ev.button === 0)) {  // pan (zoomed in)
    ev.preventDefault();
    S.pan = [ev.clientX, ev.clientY, S.panX, S.panY];
    return;
  }
  if (S.tool === "view") return;
  const click = S.tool === "click";
  if (ev.button !== 0 && !(click && ev.button === 2)) return;
  if (S.job) { setStatus("tracking is running: cancel it or wait before editing", true); return; }
  stopPlaying();
  if (click) { ev.preventDefault(); await addClick(imagePoint(ev), ev.button === 0 && !ev.shiftKey); return; }
  const p = imagePoint(ev);
  // start the gesture at once; an object made for it is awaited when the gesture ends (a quick
  // box on a session without objects is not lost)
  if (S.tool === "box") { S.drag = [p[0], p[1], p[0], p[1]]; }
  else { S.painting = true; S.lastPaint = null; }
  if (!S.selected && !S.creating) {
    if (S.painting) S.edit.getContext("2d").clearRect(0, 0, S.edit.width, S.edit.height);  // a new object has no mask
    S.creating = newObject().finally(() => { S.creating = null; });
  }
  if (S.creating) await S.creating;
  if (S.painting) paintTo(p);
  render();
}
function onMove(ev) {
  if (!S.session) return;
  if (S.pan) {
    S.panX = S.pan[2] + ev.clientX - S.pan[0];
    S.panY = S.pan[3] + ev.clientY - S.pan[1];
    applyZoom();
    return;
  }
  const p = imagePoint(ev);
  S.cursor = p;
  if (S.drag) { S.drag[2] = p[0]; S.drag[3] = p[1]; }
  else if (S.painting) paintTo(p);
  if (S.drag || S.painting || S.tool === "paint" || S.tool === "erase") render();
}
async function onUp() {
  if (S.pan) { S.pan = null; return; }
  if (S.creating) await S.creating;
  const sid = S.session && S.session.id;
  if (S.drag) {
    const [x0, y0, x1, y1] = S.drag;
    S.drag = null;
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
    const oid = S.selected, f = S.frame;
    if (box[2] >= 2 && box[3] >= 2) {
      // the mask the box stands for, shown at once; the filled box where that is not available
      let r = null, why = "";
      try {
        r = await api("POST", `/api/sessions/${sid}/segment`,
          { index: f, oid, box, points: [], correct: false }, undefined, true);
      } catch (e) {
        if (e.status === 409) { setStatus(e.message, true); throw e; }
        why = e.status === 503 ? " (filled box: click-to-segment is not available)" : " (filled box)";
      }
      if (r) {
        S.segments++; document.body.dataset.segments = String(S.segments);
        setStatus(`box of object ${oid} on frame ${f} saved, its mask has ${r.area} pixels`);
      } else {
        await api("PUT", `/api/sessions/${sid}/annotations/${oid}/${f}`, { box });
        setStatus(`box of object ${oid} on frame ${f} saved${why}`);
      }
      delete S.clicks[clickKey(oid, f)];
      await refreshSession();
      await gotoFrame(S.frame, true);
    } else render();
  }
  if (S.painting) {
    S.painting = false;
    const mask_png = S.edit.toDataURL("image/png");
    await api("PUT", `/api/sessions/${sid}/annotations/${S.selected}/${S.frame}`, { mask_png });
    delete S.clicks[clickKey(S.selected, S.frame)];
    setStatus(`mask of object ${S.selected} on frame ${S.frame} saved`);
    await refreshSession();
  }
}

// ---------------------------------------------------------------- click tool ------------------
// clicks are kept per session, object and frame (objects not created yet: "new"); every click
// asks the server for the mask of all clicks so far, correcting the mask the frame has
function clickKey(oid, f) { return `${S.session.id}/${oid || "new"}/${f}`; }
function currentClicks() {
  if (!S.session) return null;
  const c = S.clicks[clickKey(S.selected, S.frame)];
  return c && c.points.length ? c : null;
}
function clearClicks() {
  if (!S.session) return;
  delete S.clicks[clickKey(S.selected, S.frame)];
  render();
}
async function addClick(p, positive) {
  const cv = $("#view");
  const x = Math.min(cv.width - 0.5, Math.max(0, p[0])), y = Math.min(cv.height - 0.5, Math.max(0, p[1]));
  const key = clickKey(S.selected, S.frame);
  const c = S.clicks[key] || (S.clicks[key] = { points: [], labels: [] });
  c.points.push([x, y]); c.labels.push(positive ? 1 : 0);
  render();
  await requestSegment();
}
async function requestSegment() {
  if (S.segBusy) { S.segAgain = true; return; }  // one request at a time; the next has every click
  S.segBusy = true;
  try {
    do {
      S.segAgain = false;
      const sid = S.session.id, f = S.frame, oid = S.selected || null;
      const key = clickKey(oid, f);
      const c = S.clicks[key];
      if (!c || !c.points.length) break;
      const n = c.points.length;
      const hasMask = !!oid && (S.session.coverage[String(oid)] || []).includes(f);
      setStatus(`segmenting (${n} click${n > 1 ? "s" : ""}) ...`);
      const r = await api("POST", `/api/sessions/${sid}/segment`,
        { index: f, oid, points: c.points.slice(), labels: c.labels.slice(), box: null, correct: hasMask });
      if (!oid) {  // the server made a new object: the clicks are now its clicks
        delete S.clicks[key];
        S.clicks[clickKey(r.object, f)] = c;
        if (!S.selected) S.selected = r.object;
      }
      S.segments++; document.body.dataset.segments = String(S.segments);
      setStatus(`mask of object ${r.object} on frame ${f} saved: ${r.area} pixels from ${n} click${n > 1 ? "s" : ""}` +
        (r.corrected ? " (corrected)" : ""));
      await refreshSession();
      await gotoFrame(S.frame, true);
    } while (S.segAgain);
  } finally {
    S.segBusy = false;
  }
}

// ---------------------------------------------------------------- tracking --------------------
async function track(direction) {
  if (!S.session) return;
  let objects;
  if ($("#all-objects").checked) {
    objects = Object.keys(S.session.coverage).filter((k) => S.session.coverage[k].includes(S.frame)).map(Number);
  } else {
    objects = S.selected ? [S.selected] : [];
  }
  stopPlaying();
  const job = await api("POST", `/api/sessions/${S.session.id}/track`,
    { frame: S.frame, objects, direction, method: $("#method").value });
  if ($("#method").value === "auto") setStatus(`tracking with ${job.method}, the best measured method for this init`);
  watchJob(job.id);
}
function setJobUi(running) {
  for (const id of ["#track-back", "#track-both", "#track-fwd", "#export-btn"]) $(id).disabled = running;
  $("#cancel").disabled = !running;
  document.body.dataset.job = running ? "running" : "idle";
}
function watchJob(id) {
  if (S.events) S.events.close();
  S.job = id;
  setJobUi(true);
  const es = new EventSource(`/api/jobs/${id}/events`);
  S.events = es;
  es.onmessage = (m) => {
    const st = JSON.parse(m.data);
    $("#progress").max = Math.max(1, st.total);
    $("#progress").value = st.done;
    $("#job-text").textContent = st.state === "loading" ? `${st.method}: ${st.message} ...` :
      `${st.method}: ${st.state} ${st.done}/${st.total} frames, ${st.fps.toFixed(1)} fps` +
      (st.track_fps ? ` (${st.track_fps.toFixed(1)} tracking alone)` : "") +
      (st.message ? ` \u2014 ${st.message}` : "");
    if (st.frames.length && S.session) {  // grow the coverage strip as masks arrive
      for (const o of st.objects) {
        const cov = S.session.coverage[String(o)] || (S.session.coverage[String(o)] = []);
        for (const f of st.frames) if (!cov.includes(f)) cov.push(f);
      }
      drawTracks();
      renderObjects();
      if ($("#follow").checked) followFrame(st.frames[st.frames.length - 1]);
    }
    if (["done", "cancelled", "error"].includes(st.state)) {
      es.close(); S.events = null; S.job = null;
      setJobUi(false);
      document.body.dataset.lastJob = st.state;
      S.jobsFinished = (S.jobsFinished || 0) + 1;
      document.body.dataset.jobsFinished = String(S.jobsFinished);
      // the view followed the job: go back to the frame it started from (where the next
      // "back" or "fwd" starts), and say where it stopped
      const followed = $("#follow").checked && st.current >= 0;
      let text = `tracking ${st.state}` + (st.message ? ": " + st.message : "");
      if (st.state === "cancelled" && st.current >= 0) text += ` at frame ${st.current + 1}`;
      if (followed) text += `; back on frame ${st.start + 1}, where it started`;
      setStatus(text, st.state === "error");
      if (S.followTimer) { clearTimeout(S.followTimer); S.followTimer = null; }
      refreshSession().then(() => gotoFrame(followed ? st.start : S.frame, true)).then(loadScores);
    }
  };
  es.onerror = () => { /* the browser reconnects by itself; the final event closes it */ };
}

function followFrame(i) {
  // show the newest tracked frame, at most ~7 times a second (the browser and the tracker
  // share the CPU when both run on one machine)
  S.followTarget = i;
  if (S.followTimer) return;
  const wait = Math.max(0, 150 - (performance.now() - (S.lastFollow || 0)));
  S.followTimer = setTimeout(() => {
    S.followTimer = null;
    S.lastFollow = performance.now();
    gotoFrame(S.followTarget, true);
  }, wait);
}

// ---------------------------------------------------------------- export ----------------------
async function exportAll() {
  if (!S.session) return;
  const formats = Array.from(document.querySelectorAll("input[name=fmt]:checked")).map((e) => e.value);
  setStatus("exporting ...");
  const r = await api("POST", `/api/sessions/${S.session.id}/export`, { formats });
  const box = $("#exports");
  box.innerHTML = "";
  const zip = document.createElement("a");
  zip.id = "zip-link"; zip.href = `/api/sessions/${S.session.id}/export.zip`;
  zip.textContent = "\u2913 download all (zip)"; zip.download = "";
  const head = document.createElement("div"); head.className = "item"; head.appendChild(zip);
  box.appendChild(head);
  const where = document.createElement("div"); where.className = "muted"; where.textContent = r.folder;
  box.appendChild(where);
  for (const f of r.files) {
    const it = document.createElement("div");
    it.className = "item export-file";
    if (f.endsWith("/")) it.textContent = f;
    else {
      const a = document.createElement("a");
      a.href = `/api/sessions/${S.session.id}/export/${encodeURIComponent(f)}`;
      a.textContent = f; a.download = f;
      it.appendChild(a);
    }
    box.appendChild(it);
  }
  const video = $("#overlay-video");
  const ov = r.files.find((f) => f.startsWith("overlay."));
  if (ov) {  // play the overlay back in the page
    video.hidden = false;
    video.src = `/api/sessions/${S.session.id}/export/${encodeURIComponent(ov)}?t=${Date.now()}`;
    video.load();
  } else { video.hidden = true; video.removeAttribute("src"); }
  setStatus("exported " + r.files.join(", "));
  document.body.dataset.exported = r.files.join(",");
}

// ---------------------------------------------------------------- wiring ----------------------
function methodLabel(m) {
  const inits = m.inits.join("/");
  return `${m.name} \u2014 ${inits} \u00b7 ${m.learns} \u00b7 ${m.speed} \u00b7 ${m.quality}`;
}
function setMethod(name) {
  const sel = $("#method");
  sel.value = [...sel.options].some((o) => o.value === name) ? name : "auto";
  showMethodInfo();
}
function showMethodInfo() {
  const v = $("#method").value;
  const cat = (S.info.catalogue || []).find((m) => m.name === v);
  $("#method-info").textContent = v === "auto"
    ? `picks the best measured method for how the object is given: ${S.info.best.mask} from a mask, ${S.info.best.box} from a box`
    : (cat ? cat.summary : "");
}
function typeFrame() {
  const el = $("#frame-input");
  const n = parseInt(el.value, 10);
  if (!S.session || !Number.isFinite(n)) return;
  gotoFrame(Math.max(1, Math.min(S.session.num_frames, n)) - 1);
  el.blur();
}
function onKey(e) {
  const tag = e.target.tagName;
  if ((tag === "INPUT" && ["text", "number"].includes(e.target.type)) || tag === "SELECT" || tag === "TEXTAREA") return;
  if (tag === "INPUT" && e.target.type === "range" && e.key.startsWith("Arrow")) return;  // the slider moves itself
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && (e.key === "z" || e.key === "Z")) { undo(e.shiftKey).catch(() => {}); e.preventDefault(); return; }
  if (ctrl && e.key === "y") { undo(true).catch(() => {}); e.preventDefault(); return; }
  if (ctrl || e.altKey) return;
  const brush = (d) => { S.brush = Math.max(2, Math.min(80, S.brush + d)); $("#brush").value = S.brush; render(); };
  const keys = { ArrowLeft: () => gotoFrame(S.frame - 1), ArrowRight: () => gotoFrame(S.frame + 1),
    v: () => setTool("view"), b: () => setTool("box"), c: () => setTool("click"), p: () => setTool("paint"),
    e: () => setTool("erase"), Escape: () => { clearClicks(); $("#help").hidden = true; },
    " ": () => togglePlay(), ",": () => keyframeStep(-1), ".": () => keyframeStep(1),
    l: () => nextLowFrame(), n: () => newObject().catch(() => {}), "[": () => brush(-4), "]": () => brush(4),
    t: () => track("both").catch(() => {}), F: () => track("forward").catch(() => {}),
    B: () => track("backward").catch(() => {}), o: () => { $("#outline").checked = !$("#outline").checked; S.outline = $("#outline").checked; render(); },
    0: () => zoomFit(), g: () => { $("#frame-input").focus(); $("#frame-input").select(); },
    "?": () => { $("#help").hidden = !$("#help").hidden; },
    Tab: () => stepObject(e.shiftKey ? -1 : 1) };
  if (/^[1-9]$/.test(e.key)) {
    const ids = S.session ? Object.keys(S.session.objects).map(Number).sort((a, b) => a - b) : [];
    if (ids[+e.key - 1] !== undefined) selectObject(ids[+e.key - 1]);
    e.preventDefault();
    return;
  }
  if (S.job && ["t", "F", "B"].includes(e.key)) return;
  if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
}
async function init() {
  S.info = await api("GET", "/api/info");
  const sel = $("#method");
  const auto = document.createElement("option");
  auto.value = "auto";
  auto.textContent = `auto \u2014 best for the init (${S.info.best.mask} from a mask, ${S.info.best.box} from a box)`;
  sel.appendChild(auto);
  const cat = Object.fromEntries((S.info.catalogue || []).map((m) => [m.name, m]));
  for (const m of S.info.methods) {
    const o = document.createElement("option");
    o.value = m;
    o.textContent = cat[m] ? methodLabel(cat[m]) : m;
    if (cat[m]) o.title = cat[m].summary;
    sel.appendChild(o);
  }
  setMethod("auto");
  sel.onchange = () => { showMethodInfo(); if (S.session) api("PATCH", `/api/sessions/${S.session.id}`, { method: sel.value }).catch(() => {}); };
  $("#open-btn").onclick = () => openPath($("#path").value).catch(() => {});
  $("#path").onkeydown = (e) => { if (e.key === "Enter") openPath($("#path").value).catch(() => {}); };
  $("#upload-btn").onclick = () => upload().catch(() => {});
  $("#new-object").onclick = () => newObject().catch(() => {});
  $("#import-btn").onclick = () => { if (S.session) $("#import-file").click(); else setStatus("open a video first", true); };
  $("#import-file").onchange = (e) => { const f = e.target.files[0]; e.target.value = ""; importMask(f).catch(() => {}); };
  $("#track-both").onclick = () => track("both").catch(() => {});
  $("#track-fwd").onclick = () => track("forward").catch(() => {});
  $("#track-back").onclick = () => track("backward").catch(() => {});
  $("#cancel").onclick = () => S.job && api("POST", `/api/jobs/${S.job}/cancel`).catch(() => {});
  $("#export-btn").onclick = () => exportAll().catch(() => {});
  $("#scrub").oninput = (e) => { stopPlaying(); gotoFrame(+e.target.value); };
  $("#prev").onclick = () => { stopPlaying(); gotoFrame(S.frame - 1); };
  $("#next").onclick = () => { stopPlaying(); gotoFrame(S.frame + 1); };
  $("#play").onclick = () => togglePlay();
  $("#next-low").onclick = () => nextLowFrame();
  $("#frame-input").onkeydown = (e) => { if (e.key === "Enter") typeFrame(); if (e.key === "Escape") e.target.blur(); };
  $("#frame-input").onchange = () => typeFrame();
  $("#brush").oninput = (e) => { S.brush = +e.target.value; };
  $("#opacity").oninput = (e) => { S.opacity = +e.target.value / 100; render(); };
  $("#outline").onchange = (e) => { S.outline = e.target.checked; render(); };
  $("#zoom-fit").onclick = () => zoomFit();
  $("#undo").onclick = () => undo(false).catch(() => {});
  $("#redo").onclick = () => undo(true).catch(() => {});
  $("#help-btn").onclick = () => { $("#help").hidden = !$("#help").hidden; };
  for (const b of document.querySelectorAll(".tool")) b.onclick = () => setTool(b.dataset.tool);
  $("#clear-clicks").onclick = () => clearClicks();
  const cv = $("#view");
  cv.addEventListener("mousedown", (e) => onDown(e).catch(() => {}));
  cv.addEventListener("contextmenu", (e) => { if (S.tool === "click") e.preventDefault(); });
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", () => onUp().catch(() => {}));
  cv.addEventListener("mouseleave", () => { S.cursor = null; render(); });
  $("#stage").addEventListener("wheel", (e) => {
    if (!S.session) return;
    e.preventDefault();
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX, e.clientY);
  }, { passive: false });
  $("#tracks").addEventListener("mousedown", (e) => {
    if (!S.session) return;
    const r = $("#tracks").getBoundingClientRect();
    gotoFrame(Math.floor((e.clientX - r.left) / r.width * S.session.num_frames));
  });
  document.addEventListener("keydown", onKey);
  const video = $("#overlay-video");
  video.addEventListener("canplay", () => { document.body.dataset.overlay = "canplay"; });
  video.addEventListener("error", () => { document.body.dataset.overlay = "error"; setStatus("the browser cannot play the overlay video", true); });
  window.addEventListener("resize", fitCanvas);
  setJobUi(false);
  browse().catch(() => {});
  listSessions().catch(() => {});
  // the session named in the URL, else the video the server was started with, else the last one
  const want = new URL(location.href).searchParams.get("session") || S.info.start_session ||
    localStorage.getItem("segtrack.session");
  if (want) {
    try { await loadSession(await api("GET", "/api/sessions/" + want)); setStatus(""); } catch (e) { setStatus(""); }
  }
  setInterval(() => { if (!S.job && !S.painting && !S.drag && !S.segBusy && !S.playTimer) refreshSession().catch(() => {}); }, 3000);
  document.body.dataset.ready = "1";
}
init();
