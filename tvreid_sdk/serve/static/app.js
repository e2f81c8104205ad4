// tvreid serve: the operator page. Plain JS, no build step; talks to the same /api the REST clients use.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { cameras: [], chosen: new Set(), hits: [], selected: new Set(), lastQuery: null, current: null,
                timer: null };

async function api(path, options = {}) {
  const opts = { credentials: "same-origin", ...options };
  opts.headers = { "X-Tvreid": "1", ...(options.headers || {}) };
  if (options.json !== undefined) {
    opts.method = opts.method || "POST";
    opts.body = JSON.stringify(options.json);
    opts.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, opts);
  if (!res.ok) {
    let message = res.status + " " + res.statusText;
    try { message = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return res;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function start() {
  try {
    const me = await (await api("/api/me")).json();
    $("who").textContent = `${me.name} · ${me.role}` + (me.cameras ? ` · cameras ${me.cameras.join(", ")}` : "");
    $("logout").hidden = false;
    $("login").hidden = true;
    $("main").hidden = false;
    const cams = await (await api("/api/cameras")).json();
    state.cameras = cams.cameras;
    renderChips();
    $("export").hidden = !(me.role === "operator" || me.role === "admin");
    $("q").focus();
  } catch (err) {
    if (err.status !== 401) { status(err.message, true); }
    $("main").hidden = true;
    $("login").hidden = false;
    if (new URLSearchParams(location.search).get("login") === "failed") {
      $("login-error").textContent = "That token is unknown or revoked.";
    }
    $("login-token").focus();
  }
}

function renderChips() {
  const box = $("chips");
  box.replaceChildren();
  for (const cam of state.cameras) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.textContent = cam;
    b.setAttribute("aria-pressed", state.chosen.has(cam) ? "true" : "false");
    b.addEventListener("click", () => {
      if (state.chosen.has(cam)) state.chosen.delete(cam); else state.chosen.add(cam);
      b.setAttribute("aria-pressed", state.chosen.has(cam) ? "true" : "false");
    });
    box.appendChild(b);
  }
}

function filters() {
  const f = { k: Math.max(1, Math.min(200, parseInt($("k").value, 10) || 24)) };
  if (state.chosen.size) f.cameras = [...state.chosen];
  for (const name of ["since", "until"]) {
    const v = $(name).value;
    if (v) f[name] = new Date(v).toISOString();
  }
  return f;
}

async function search(body) {
  status("searching…");
  try {
    const data = await (await api("/api/search", { json: body })).json();
    state.hits = data.results;
    state.lastQuery = body;
    state.selected.clear();
    renderGrid();
    const what = body.like ? `like ${body.like}` : `“${body.text}”`;
    status(`${data.results.length} result(s) for ${what} in ${data.took_ms} ms`);
  } catch (err) {
    status(err.message, true);
  }
}

function renderGrid() {
  const grid = $("grid");
  grid.replaceChildren();
  state.hits.forEach((hit, i) => {
    const card = document.createElement("figure");
    card.className = "card";
    card.tabIndex = 0;
    card.dataset.key = hit.key;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.title = "select for export";
    box.setAttribute("aria-label", `select ${hit.key}`);
    box.addEventListener("click", (e) => { e.stopPropagation(); toggle(hit.key, card, box.checked); });
    const img = document.createElement("img");
    img.src = hit.thumbnail_url;
    img.alt = `${hit.key} on ${hit.camera}`;
    img.loading = "lazy";
    const meta = document.createElement("figcaption");
    meta.className = "meta";
    meta.innerHTML = `<span class="score"></span><span class="cam"></span>`;
    meta.querySelector(".score").textContent = `#${i + 1} ${hit.score.toFixed(3)}`;
    meta.querySelector(".cam").textContent = hit.camera;
    card.append(box, img, meta);
    card.addEventListener("click", () => openDetail(hit));
    card.addEventListener("keydown", (e) => {
      if (e.key === "Enter") openDetail(hit);
      if (e.key === "x") { box.checked = !box.checked; toggle(hit.key, card, box.checked); }
    });
    grid.appendChild(card);
  });
  updateSelection();
}

function toggle(key, card, on) {
  if (on) state.selected.add(key); else state.selected.delete(key);
  card.classList.toggle("selected", on);
  updateSelection();
}

function updateSelection() {
  $("selcount").textContent = `${state.selected.size} selected`;
  $("export").disabled = state.selected.size === 0;
}

async function openDetail(hit) {
  state.current = hit;
  $("d-key").textContent = hit.key;
  $("d-camera").textContent = hit.camera;
  $("d-start").textContent = hit.start || "unknown";
  $("d-end").textContent = hit.end || "unknown";
  $("d-score").textContent = hit.score.toFixed(4);
  $("player").src = hit.thumbnail_url;
  $("detail").showModal();
  clearInterval(state.timer);
  try {
    const frames = (await (await api(hit.frames_url)).json()).frames;
    $("d-frames").textContent = `${frames.length} frame(s)`;
    let i = 0;
    if (frames.length > 1) {
      state.timer = setInterval(() => { i = (i + 1) % frames.length; $("player").src = frames[i]; }, 200);
    }
  } catch (err) {
    $("d-frames").textContent = err.message;
  }
}

function closeDetail() {
  clearInterval(state.timer);
  if ($("detail").open) $("detail").close();
}

async function similar() {
  const key = state.current && state.current.key;
  closeDetail();
  if (key) {
    $("q").value = "";
    await search({ like: key, ...filters() });
  }
}

async function exportSelected() {
  const keys = [...state.selected];
  if (!keys.length) return;
  status("building evidence zip…");
  try {
    const res = await api("/api/export", { json: { keys, query: state.lastQuery, filters: filters() } });
    const blob = await res.blob();
    const name = (res.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name ? name[1] : "tvreid-evidence.zip";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    status(`exported ${keys.length} tracklet(s)`);
  } catch (err) {
    status(err.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("/api/login", { json: { token: $("login-token").value } });
      $("login-token").value = "";
      $("login-error").textContent = "";
      history.replaceState(null, "", "/");
      start();
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  });
  $("logout").addEventListener("click", async () => { await api("/api/logout", { method: "POST" }); location.reload(); });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("q").value.trim();
    if (!text) { status("type a description first", true); return; }
    search({ text, ...filters() });
  });
  $("similar").addEventListener("click", similar);
  $("close").addEventListener("click", closeDetail);
  $("d-select").addEventListener("click", () => {
    const card = document.querySelector(`.card[data-key="${CSS.escape(state.current.key)}"]`);
    if (card) { const box = card.querySelector("input"); box.checked = !box.checked; toggle(state.current.key, card, box.checked); }
  });
  $("detail").addEventListener("close", () => clearInterval(state.timer));
  $("detail").addEventListener("keydown", (e) => {
    if (e.key === "s") { e.preventDefault(); similar(); }
    if (e.key === "x") { e.preventDefault(); $("d-select").click(); }
  });
  $("export").addEventListener("click", exportSelected);
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement !== $("q")) { e.preventDefault(); $("q").focus(); }
  });
  start();
});
