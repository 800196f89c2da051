// segtrack workbench front end: plain JavaScript, no library, talks to the JSON API of app.py.
"use strict";

const $ = (sel) => document.querySelector(sel);
const S = {
  info: null, session: null, frame: 0, selected: null, tool: "view", brush: 20,
  job: null, events: null, rev: 0, frameImg: new Image(), labelsImg: new Image(),
  labelsReady: false, drag: null, painting: false, editDirty: false, loadingFrame: false,
  pendingFrame: null,
  clicks: {}, segBusy: false, segAgain: false, segments: 0, // the Click tool
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
async function upload() {
  const files = Array.from($("#upload-files").files);
  if (!files.length) { setStatus("choose a video or frames to upload", true); return; }
  const max = S.info.max_upload_bytes;
  const total = files.reduce((a, f) => a + f.size, 0);
  if (total > max) { setStatus(`upload is ${total} bytes, over the ${max} byte limit`, true); return; }
  const up = await api("POST", "/api/uploads");
  let n = 0;
  for (const f of files) {
    setStatus(`uploading ${f.name} (${++n}/${files.length})`);
    await api("PUT", `/api/uploads/${up.id}/files/${encodeURIComponent(f.name)}`, undefined, f);
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
    it.innerHTML = `<span class="name"></span><span class="muted">${s.num_frames}f</span>`;
    it.querySelector(".name").textContent = s.name;
    it.title = s.source;
    it.onclick = async () => loadSession(await api("GET", "/api/sessions/" + s.id));
    box.appendChild(it);
  }
}

// ---------------------------------------------------------------- session ---------------------
async function loadSession(s) {
  S.session = s;
  S.rev = s.rev;
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
  $("#scrub").max = s.num_frames - 1;
  $("#method").value = s.method;
  const ids = Object.keys(s.objects).map(Number);
  if (!ids.includes(S.selected)) S.selected = ids.length ? ids[0] : null;
  const start = Math.min(S.frame, s.num_frames - 1);
  renderObjects();
  drawCoverage();
  listSessions().catch(() => {});
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
    renderObjects(); drawCoverage();
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
  renderObjects(); drawCoverage();
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
  $("#frame-label").textContent = `frame ${i} / ${S.session.num_frames - 1}  ${S.session.frame_names[i]}`;
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
function render() {
  const cv = $("#view");
  const ctx = cv.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = "source-over";
  if (S.frameImg.complete && S.frameImg.naturalWidth) ctx.drawImage(S.frameImg, 0, 0, cv.width, cv.height);
  if (S.labelsImg.complete && S.labelsImg.naturalWidth) {
    ctx.globalAlpha = 0.5;
    ctx.drawImage(S.labelsImg, 0, 0);
    ctx.globalAlpha = 1;
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
function drawCoverage() {
  const cv = $("#coverage");
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!S.session || !S.selected) return;
  const n = S.session.num_frames;
  const frames = S.session.coverage[String(S.selected)] || [];
  const kfs = Object.keys(S.session.keyframes[String(S.selected)] || {}).map(Number);
  const [r, g, b] = paletteColor(S.selected);
  ctx.fillStyle = `rgba(${r},${g},${b},0.55)`;
  for (const f of frames) ctx.fillRect(f / n * cv.width, 0, Math.max(1, cv.width / n), cv.height);
  ctx.fillStyle = "#fff";
  for (const f of kfs) ctx.fillRect(f / n * cv.width, 0, Math.max(2, cv.width / n), cv.height);
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
  if (!S.session || S.tool === "view") return;
  const click = S.tool === "click";
  if (ev.button !== 0 && !(click && ev.button === 2)) return;
  if (S.job) { setStatus("tracking is running: cancel it or wait before editing", true); return; }
  if (click) { ev.preventDefault(); await addClick(imagePoint(ev), ev.button === 0 && !ev.shiftKey); return; }
  if (!S.selected) { await newObject(); await loadEditMask(); }
  const p = imagePoint(ev);
  if (S.tool === "box") { S.drag = [p[0], p[1], p[0], p[1]]; }
  else { S.painting = true; S.lastPaint = null; paintTo(p); }
  render();
}
function onMove(ev) {
  if (!S.session) return;
  const p = imagePoint(ev);
  S.cursor = p;
  if (S.drag) { S.drag[2] = p[0]; S.drag[3] = p[1]; }
  else if (S.painting) paintTo(p);
  if (S.drag || S.painting || S.tool === "paint" || S.tool === "erase") render();
}
async function onUp() {
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
  const job = await api("POST", `/api/sessions/${S.session.id}/track`,
    { frame: S.frame, objects, direction, method: $("#method").value });
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
    $("#job-text").textContent = `${st.method}: ${st.state} ${st.done}/${st.total} frames, ` +
      `${st.fps.toFixed(1)} fps` + (st.message ? ` \u2014 ${st.message}` : "");
    if (st.frames.length && S.session) {  // grow the coverage strip as masks arrive
      for (const o of st.objects) {
        const cov = S.session.coverage[String(o)] || (S.session.coverage[String(o)] = []);
        for (const f of st.frames) if (!cov.includes(f)) cov.push(f);
      }
      drawCoverage();
      renderObjects();
      if ($("#follow").checked) followFrame(st.frames[st.frames.length - 1]);
    }
    if (["done", "cancelled", "error"].includes(st.state)) {
      es.close(); S.events = null; S.job = null;
      setJobUi(false);
      document.body.dataset.lastJob = st.state;
      S.jobsFinished = (S.jobsFinished || 0) + 1;
      document.body.dataset.jobsFinished = String(S.jobsFinished);
      setStatus(`tracking ${st.state}` + (st.message ? ": " + st.message : ""), st.state === "error");
      refreshSession().then(() => gotoFrame(S.frame, true));
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
  box.innerHTML = `<div class="muted">${r.folder}</div>`;
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
  setStatus("exported " + r.files.join(", "));
  document.body.dataset.exported = r.files.join(",");
}

// ---------------------------------------------------------------- wiring ----------------------
async function init() {
  S.info = await api("GET", "/api/info");
  const sel = $("#method");
  for (const m of S.info.methods) { const o = document.createElement("option"); o.value = o.textContent = m; sel.appendChild(o); }
  sel.value = "flow";
  sel.onchange = () => S.session && api("PATCH", `/api/sessions/${S.session.id}`, { method: sel.value });
  $("#open-btn").onclick = () => openPath($("#path").value).catch(() => {});
  $("#path").onkeydown = (e) => { if (e.key === "Enter") openPath($("#path").value).catch(() => {}); };
  $("#upload-btn").onclick = () => upload().catch(() => {});
  $("#new-object").onclick = () => newObject().catch(() => {});
  $("#track-both").onclick = () => track("both").catch(() => {});
  $("#track-fwd").onclick = () => track("forward").catch(() => {});
  $("#track-back").onclick = () => track("backward").catch(() => {});
  $("#cancel").onclick = () => S.job && api("POST", `/api/jobs/${S.job}/cancel`).catch(() => {});
  $("#export-btn").onclick = () => exportAll().catch(() => {});
  $("#scrub").oninput = (e) => gotoFrame(+e.target.value);
  $("#prev").onclick = () => gotoFrame(S.frame - 1);
  $("#next").onclick = () => gotoFrame(S.frame + 1);
  $("#brush").oninput = (e) => { S.brush = +e.target.value; };
  for (const b of document.querySelectorAll(".tool")) b.onclick = () => setTool(b.dataset.tool);
  $("#clear-clicks").onclick = () => clearClicks();
  const cv = $("#view");
  cv.addEventListener("mousedown", (e) => onDown(e).catch(() => {}));
  cv.addEventListener("contextmenu", (e) => { if (S.tool === "click") e.preventDefault(); });
  cv.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", () => onUp().catch(() => {}));
  cv.addEventListener("mouseleave", () => { S.cursor = null; render(); });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" && e.target.type === "text") return;
    const keys = { ArrowLeft: () => gotoFrame(S.frame - 1), ArrowRight: () => gotoFrame(S.frame + 1),
      v: () => setTool("view"), b: () => setTool("box"), c: () => setTool("click"), p: () => setTool("paint"),
      e: () => setTool("erase"), Escape: () => clearClicks() };
    if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
  });
  window.addEventListener("resize", fitCanvas);
  setJobUi(false);
  browse().catch(() => {});
  listSessions().catch(() => {});
  const want = new URL(location.href).searchParams.get("session") || localStorage.getItem("segtrack.session");
  if (want) {
    try { await loadSession(await api("GET", "/api/sessions/" + want)); setStatus(""); } catch (e) { setStatus(""); }
  }
  setInterval(() => { if (!S.job && !S.painting && !S.drag && !S.segBusy) refreshSession().catch(() => {}); }, 3000);
  document.body.dataset.ready = "1";
}
init();
