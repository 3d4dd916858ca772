// worldloom play page: one WebSocket, raw RGB frames drawn on pixelated canvases. No build step.
// Protocol: docs/PROTOCOL.md. The client sends the *held* action whenever it changes (the most
// recently pressed key or button still held; none = no-op); the server ticks at its target FPS.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, session: null, actions: [], keyMap: new Map(), pressed: new Map(), current: 0,
  seq: 0, sentAt: new Map(), frames: 0, arrivals: [], lastHeader: null, seed: 0, ready: false,
  // continuous axes: key -> [axis index, value]; held axis keys in press order; the values last sent
  axes: [], axisKeyMap: new Map(), axisPressed: new Map(), currentAxes: "",
  // pointer-driven axes (a mouse delta): axis index -> pointer movement times gain not yet sent
  mouseAxes: [], mouseMoved: new Map(),
};
window.worldloom = state; // for tests and curious users
const KEYS_HINT = $("hint").textContent; // the page's own hint, which a world with mouse axes extends

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onmessage = (e) => (typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onFrame(e.data));
  ws.onclose = (e) => {
    state.ready = false;
    const why = state.closeReason || e.reason || `connection closed (code ${e.code})`;
    setStatus(`${why} — reload the page to play again`, true);
  };
}

function onJson(m) {
  switch (m.type) {
    case "hello": {
      state.session = m.session;
      const sel = $("checkpoint");
      sel.innerHTML = "";
      for (const name of m.checkpoints) sel.add(new Option(name, name, false, name === m.checkpoint));
      sel.disabled = m.checkpoints.length < 2;
      $("dlMp4").href = `/record/${m.session}?format=mp4`;
      $("dlGif").href = `/record/${m.session}?format=gif`;
      setStatus(`connected; starting ${m.checkpoint}…`);
      break;
    }
    case "ready": onReady(m); break;
    case "error":
      if (["busy", "idle", "shutting_down"].includes(m.code)) state.closeReason = `${m.code}: ${m.message}`;
      setStatus(`${m.code}: ${m.message}`, true);
      break;
    case "truth_ended": setStatus(m.message, true); break;
    default: break;
  }
}

function onReady(m) {
  state.ready = true;
  state.actions = m.actions;
  state.seed = m.seed;
  $("seed").value = m.seed;
  $("checkpoint").value = m.checkpoint;
  $("title").textContent = `${m.checkpoint} · seed ${m.seed}`;
  $("policy").textContent = m.sim.policy + (m.sim.memory_pose ? `, pose from the ${m.sim.memory_pose}` : "") +
    (m.sim.context_noise ? `, context noise ${m.sim.context_noise}` : "");
  $("steps").textContent = `${m.sim.steps} (shift ${m.sim.shift})`;
  $("context").textContent = m.context_source;
  const tt = $("truthToggle");
  tt.disabled = !m.truth_available;
  if (!m.truth_available) { tt.checked = false; $("truthView").hidden = true; }
  else if (tt.checked) send({ type: "truth", on: true });
  state.keyMap.clear();
  const box = $("buttons");
  box.innerHTML = "";
  for (const a of m.actions) {
    for (const k of a.keys) state.keyMap.set(k.length === 1 ? k.toLowerCase() : k, a.id);
    const b = document.createElement("button");
    b.dataset.action = a.id;
    b.innerHTML = `${a.name}<kbd>${a.keys.map((k) => (k === " " ? "Space" : k)).join(" ")}</kbd>`;
    const down = (e) => { e.preventDefault(); press(`btn${a.id}`, a.id); };
    const up = () => release(`btn${a.id}`);
    b.addEventListener("pointerdown", down);
    for (const ev of ["pointerup", "pointerleave", "pointercancel"]) b.addEventListener(ev, up);
    box.appendChild(b);
  }
  state.axes = m.axes || [];
  state.axisKeyMap.clear();
  state.axisPressed.clear();
  state.axes.forEach((ax, i) => {
    for (const [k, v] of ax.keys) {
      const name = k.length === 1 ? k.toLowerCase() : k; // as keyName() spells it, so held keys light their button
      state.axisKeyMap.set(name, [i, v]);
      const b = document.createElement("button");
      b.dataset.axisKey = name;
      b.innerHTML = `${ax.name} ${v > ax.rest ? "+" : ""}${v}${ax.unit ? " " + ax.unit : ""}<kbd>${k}</kbd>`;
      const down = (e) => { e.preventDefault(); axisPress(`btn:${name}`, i, v); };
      const up = () => axisRelease(`btn:${name}`);
      b.addEventListener("pointerdown", down);
      for (const ev of ["pointerup", "pointerleave", "pointercancel"]) b.addEventListener(ev, up);
      box.appendChild(b);
    }
  });
  state.mouseAxes = state.axes.map((ax, i) => i).filter((i) => state.axes[i].mouse);
  state.mouseMoved.clear();
  if (state.mouseAxes.length) {
    $("hint").textContent = "Click the view to steer " + state.mouseAxes.map((i) => state.axes[i].name).join(", ") +
      " with the mouse (Esc releases it), or drag across it. " + KEYS_HINT;
  } else $("hint").textContent = KEYS_HINT;
  state.currentAxes = JSON.stringify(axisValues());
  state.pressed.clear();
  state.current = 0;
  setStatus(`playing ${m.checkpoint} at ${m.fps || "one frame per action"} fps`);
}

// --- input: the held action = the most recently pressed key/button still held ----------------------
// Each axis: the value of its most recently pressed key still held, else ``moved`` (a mouse axis's
// pointer movement times its gain), else its rest value.
function axisValues(moved = new Map()) {
  const v = state.axes.map((ax) => ax.rest);
  for (const [i, d] of moved) {
    const ax = state.axes[i];
    v[i] = Math.min(ax.high, Math.max(ax.low, ax.rest + d));
  }
  for (const [i, val] of state.axisPressed.values()) v[i] = val;
  return v;
}
function update() {
  const ids = [...state.pressed.values()];
  const next = ids.length ? ids[ids.length - 1] : 0;
  const axes = axisValues();
  const held = new Set([...state.axisPressed.keys()].map((k) => k.replace(/^(key|btn):/, "")));
  for (const b of $("buttons").children) {
    b.classList.toggle("held", b.dataset.axisKey !== undefined ? held.has(b.dataset.axisKey)
      : Number(b.dataset.action) === next && next !== 0);
  }
  const axesText = JSON.stringify(axes);
  if ((next === state.current && axesText === state.currentAxes) || !state.ready) return;
  state.current = next;
  state.currentAxes = axesText;
  sendAction(next, axes);
}
function sendAction(action, axes) {
  state.seq += 1;
  state.sentAt.set(state.seq, performance.now());
  send(state.axes.length ? { type: "action", action, seq: state.seq, axes } : { type: "action", action, seq: state.seq });
}
function axisPress(key, i, v) { state.axisPressed.delete(key); state.axisPressed.set(key, [i, v]); update(); }
function axisRelease(key) { if (state.axisPressed.delete(key)) update(); }
function press(key, id) { state.pressed.delete(key); state.pressed.set(key, id); update(); }
function release(key) { if (state.pressed.delete(key)) update(); }

function keyName(e) { return e.key.length === 1 ? e.key.toLowerCase() : e.key; }
window.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  const ax = state.axisKeyMap.get(keyName(e));
  if (ax !== undefined) {
    e.preventDefault();
    if (!e.repeat) axisPress(`key:${keyName(e)}`, ax[0], ax[1]);
    return;
  }
  const id = state.keyMap.get(keyName(e));
  if (id === undefined) return;
  e.preventDefault();
  if (!e.repeat) press(`key:${keyName(e)}`, id);
});
// Mouse axes: with the pointer locked to the view (click it), or while dragging across it, each move adds
// its px times the axis's gain. When a frame arrives, what gathered since the last one is sent as a tap:
// the pushed value, then rest at once. The server latches an axis's newest value off rest for its next
// tick and holds rest after it, so every movement drives exactly one frame, whatever the latency.
$("model").addEventListener("click", () => {
  const c = $("model");
  if (state.mouseAxes.length && document.pointerLockElement !== c && c.requestPointerLock) c.requestPointerLock();
});
window.addEventListener("pointermove", (e) => {
  if (!state.mouseAxes.length) return;
  if (document.pointerLockElement !== $("model") && !(e.buttons && e.target === $("model"))) return;
  for (const i of state.mouseAxes) {
    const ax = state.axes[i];
    const d = ax.mouse === "x" ? e.movementX : e.movementY;
    if (d) state.mouseMoved.set(i, (state.mouseMoved.get(i) || 0) + d * ax.mouse_gain);
  }
});
function mouseFrame() {
  if (!state.mouseMoved.size || !state.ready) return;
  const pushed = axisValues(state.mouseMoved);
  state.mouseMoved = new Map();
  sendAction(state.current, pushed);
  sendAction(state.current, axisValues());
}
window.addEventListener("keyup", (e) => { release(`key:${keyName(e)}`); axisRelease(`key:${keyName(e)}`); });
window.addEventListener("blur", () => { state.pressed.clear(); state.axisPressed.clear(); state.mouseMoved.clear(); update(); });
document.addEventListener("visibilitychange", () => send({ type: "pause", on: document.hidden }));

// --- frames ---------------------------------------------------------------------------------------
const decoder = new TextDecoder();
const images = new Map();
function draw(canvas, px, off, w, h) {
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  let img = images.get(canvas);
  if (!img || img.width !== w || img.height !== h) { img = ctx.createImageData(w, h); images.set(canvas, img); }
  const d = img.data;
  for (let i = 0, j = off; i < w * h; i++, j += 3) {
    d[4 * i] = px[j]; d[4 * i + 1] = px[j + 1]; d[4 * i + 2] = px[j + 2]; d[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function onFrame(buf) {
  const n = new DataView(buf).getUint32(0, true);
  const h = JSON.parse(decoder.decode(new Uint8Array(buf, 4, n)));
  const px = new Uint8Array(buf, 4 + n);
  const size = h.width * h.height * 3;
  draw($("model"), px, 0, h.width, h.height);
  $("truthView").hidden = h.panels < 2;
  if (h.panels > 1) draw($("truth"), px, size, h.width, h.height);
  const now = performance.now();
  state.frames += 1;
  state.lastHeader = h;
  mouseFrame();
  state.arrivals.push(now);
  while (state.arrivals.length && now - state.arrivals[0] > 1000) state.arrivals.shift();
  if (h.seq != null && state.sentAt.has(h.seq)) {
    $("rtt").textContent = `${(now - state.sentAt.get(h.seq)).toFixed(1)} ms`;
    for (const k of [...state.sentAt.keys()]) if (k <= h.seq) state.sentAt.delete(k);
  }
  $("fps").textContent = state.arrivals.length.toString();
  $("latency").textContent = `${h.latency_ms.toFixed(1)} ms`;
  $("step").textContent = h.step;
  const a = state.actions[h.action];
  $("action").textContent = a ? a.name : h.action;
  const p = h.psnr == null ? "–" : `${h.psnr.toFixed(2)} dB`;
  $("psnr").textContent = p;
  $("psnrInline").textContent = p;
  const t = h.timings_ms;
  $("stages").textContent = `${(t.denoise_ms ?? 0).toFixed(1)} / ${(t.cache_write_ms ?? 0).toFixed(1)} / ` +
    `${(t.decode_ms ?? 0).toFixed(1)} ms`;
}

// --- controls -------------------------------------------------------------------------------------
$("reset").addEventListener("click", () => {
  let seed = Number($("seed").value) || 0;
  if ($("newSeed").checked) seed = Math.floor(Math.random() * 2147483647);
  send({ type: "reset", seed, checkpoint: $("checkpoint").value || undefined });
  setStatus("resetting…");
});
$("checkpoint").addEventListener("change", (e) => {
  send({ type: "reset", seed: Number($("seed").value) || 0, checkpoint: e.target.value });
  setStatus(`loading ${e.target.value}…`);
});
$("truthToggle").addEventListener("change", (e) => {
  send({ type: "truth", on: e.target.checked });
  if (!e.target.checked) $("truthView").hidden = true;
});
for (const id of ["dlMp4", "dlGif"]) {
  $(id).addEventListener("click", (e) => { if (!state.session) e.preventDefault(); });
}

connect();
