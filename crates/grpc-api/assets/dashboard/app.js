// crow's web dashboard: plain JavaScript against crow's own HTTP API (no framework, nothing fetched
// from elsewhere). The token stays in this tab's sessionStorage and goes in the Authorization header of
// every call, images included (fetched, then shown from blob URLs).

const $ = (selector) => document.querySelector(selector);
const api = "/api/v1";
const state = { org: null, token: null, pages: [""], page: 0, live: null };

function headers() {
  return { Authorization: `Bearer ${state.token}` };
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = `${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

const json = async (path, options) => (await call(path, options)).json();
const orgPath = (rest) => `${api}/organizations/${encodeURIComponent(state.org)}${rest}`;
const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function keyframeUrl(sessionId, frameIndex) {
  const response = await call(orgPath(`/sessions/${encodeURIComponent(sessionId)}/keyframes/${frameIndex}`));
  return URL.createObjectURL(await response.blob());
}

// ---- login -------------------------------------------------------------------------------------

async function login(org, token) {
  state.org = org;
  state.token = token;
  // A call the token must pass: the organization's summary.
  await json(`${api}/interactions/organization/${encodeURIComponent(org)}/summary`);
  sessionStorage.setItem("crow", JSON.stringify({ org, token }));
  $("#nav").hidden = false;
  $("#who").textContent = `organization ${org}`;
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await login($("#login-org").value.trim(), $("#login-token").value.trim());
    location.hash = "#interactions";
    route();
  } catch (e) {
    state.token = null;
    $("#login-error").textContent = `Login failed: ${e.message}`;
  }
});

$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem("crow");
  Object.assign(state, { org: null, token: null });
  stopLive();
  $("#nav").hidden = true;
  location.hash = "";
  route();
});

// ---- interactions ------------------------------------------------------------------------------

function filterQuery() {
  const params = new URLSearchParams({ pageSize: "20" });
  if ($("#filter-source").value) params.set("sourceType", $("#filter-source").value);
  if ($("#filter-q").value.trim()) params.set("q", $("#filter-q").value.trim());
  if ($("#filter-from").value) params.set("from", new Date($("#filter-from").value).toISOString());
  if ($("#filter-to").value) params.set("to", new Date($("#filter-to").value).toISOString());
  return params;
}

async function showPage() {
  const params = filterQuery();
  const token = state.pages[state.page];
  if (token) params.set("pageToken", token);
  const tbody = $("#interaction-table tbody");
  $("#list-status").textContent = "loading...";
  try {
    const page = await json(`${api}/interactions/organization/${encodeURIComponent(state.org)}?${params}`);
    tbody.replaceChildren(...page.interactions.map((i) => {
      const row = el("tr", { "data-id": i.id },
        el("td", { text: time(i.timestamp) }),
        el("td", {}, el("span", { class: `source ${i.sourceType}`, text: i.sourceType })),
        el("td", { text: i.summary }),
        el("td", { text: i.productIds.join(", ") }),
        el("td", { text: i.confidence.toFixed(2) }));
      row.addEventListener("click", () => { location.hash = `#detail/${i.id}`; });
      return row;
    }));
    state.pages.length = state.page + 1;
    if (page.nextPageToken) state.pages.push(page.nextPageToken);
    $("#page-next").disabled = !page.nextPageToken;
    $("#page-prev").disabled = state.page === 0;
    $("#page-number").textContent = `page ${state.page + 1}`;
    $("#list-status").textContent = page.interactions.length ? "" : "No interactions match.";
  } catch (e) {
    $("#list-status").textContent = `Error: ${e.message}`;
  }
}

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  state.pages = [""];
  state.page = 0;
  showPage();
});
$("#page-next").addEventListener("click", () => { state.page += 1; showPage(); });
$("#page-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); showPage(); });

async function showDetail(id) {
  $("#detail-id").textContent = id;
  const facts = $("#detail-facts");
  const keyframes = $("#detail-keyframes");
  facts.replaceChildren();
  keyframes.replaceChildren();
  $("#detail-products").replaceChildren();
  const r = await json(orgPath(`/interactions/${encodeURIComponent(id)}`));
  if (r.state !== "stored") {
    $("#detail-summary").textContent = `${r.state} (${r.attempts} failed attempts) ${r.lastError || ""}`;
    return;
  }
  const i = r.interaction;
  for (const [k, v] of [["Source", i.sourceType], ["Time", time(i.timestamp)], ["Stored", time(i.createdAt)],
    ["Session", i.sessionId || "-"], ["Confidence", i.confidence.toFixed(2)], ["Tags", i.tags.join(", ")]]) {
    facts.append(el("dt", { text: k }), el("dd", { text: v }));
  }
  $("#detail-summary").textContent = i.summary;
  $("#detail-data").textContent = JSON.stringify(i.data, null, 2);
  const products = Array.isArray(i.data.products) ? i.data.products : [];
  $("#detail-products").replaceChildren(...(products.length ? products.map((p) =>
    el("li", { text: `${p.product_id}: confidence ${Number(p.confidence).toFixed(2)}, evidence ${JSON.stringify(p.evidence)}` }))
    : [el("li", { text: i.productIds.length ? i.productIds.join(", ") : "none" })]));
  // Evidence: the described frames, and the frames the events and products cite.
  const described = new Map((Array.isArray(i.data.frames) ? i.data.frames : []).map((f) => [f.frame_index, f.text || ""]));
  const cited = new Set(described.keys());
  for (const e of [...(Array.isArray(i.data.events) ? i.data.events : []), ...products]) {
    for (const f of e.evidence_frames || []) cited.add(f);
  }
  const frames = [...cited].sort((a, b) => a - b);
  if (!i.sessionId || frames.length === 0) {
    keyframes.append(el("p", { text: "No keyframes (not a CCTV record, or no frame cited)." }));
    return;
  }
  for (const index of frames) {
    const caption = described.has(index) ? `frame ${index}: ${described.get(index)}` : `frame ${index} (cited by an event)`;
    const figure = el("figure", {}, el("figcaption", { text: caption }));
    keyframes.append(figure);
    try {
      const img = el("img", { alt: `keyframe ${index}`, "data-frame": String(index) });
      img.src = await keyframeUrl(i.sessionId, index);
      figure.prepend(img);
    } catch (e) {
      figure.prepend(el("p", { class: "error", text: `keyframe unavailable (${e.message})` }));
    }
  }
}

// ---- summary -----------------------------------------------------------------------------------

async function showSummary() {
  const s = await json(`${api}/interactions/organization/${encodeURIComponent(state.org)}/summary`);
  $("#summary-counts").replaceChildren(...["total", "web", "cctv", "social"].map((k) =>
    el("div", { class: "count", "data-source": k }, el("b", { text: String(s[k]) }), k)));
  // The newest 500 records, counted per hour and source.
  const records = [];
  let pageToken = "";
  do {
    const params = new URLSearchParams({ pageSize: "100" });
    if (pageToken) params.set("pageToken", pageToken);
    const page = await json(`${api}/interactions/organization/${encodeURIComponent(state.org)}?${params}`);
    records.push(...page.interactions);
    pageToken = page.nextPageToken || "";
  } while (pageToken && records.length < 500);
  drawChart(records);
}

function drawChart(records) {
  const chart = $("#summary-chart");
  chart.replaceChildren();
  const hours = new Map();
  for (const r of records) {
    const hour = Math.floor(Date.parse(r.timestamp) / 3_600_000);
    const bucket = hours.get(hour) || { web: 0, cctv: 0, social: 0 };
    bucket[r.sourceType] += 1;
    hours.set(hour, bucket);
  }
  const keys = [...hours.keys()].sort((a, b) => a - b);
  if (keys.length === 0) {
    const t = svg("text", { x: 10, y: 30 });
    t.textContent = "no interactions yet";
    chart.append(t);
    return;
  }
  const width = 800, height = 240, bottom = 30;
  const max = Math.max(...keys.map((k) => { const b = hours.get(k); return b.web + b.cctv + b.social; }));
  const barWidth = Math.max(4, Math.min(60, (width - 20) / keys.length - 4));
  keys.forEach((hour, n) => {
    const x = 10 + n * (barWidth + 4);
    let y = height - bottom;
    for (const source of ["web", "cctv", "social"]) {
      const count = hours.get(hour)[source];
      if (!count) continue;
      const h = (count / max) * (height - bottom - 10);
      y -= h;
      const bar = svg("rect", { x, y, width: barWidth, height: h, class: `bar ${source}`, "data-hour": hour, "data-count": count });
      bar.style.fill = { web: "#2f6fde", cctv: "#1f9d61", social: "#b3541e" }[source];
      const title = svg("title");
      title.textContent = `${new Date(hour * 3_600_000).toLocaleString()}: ${count} ${source}`;
      bar.append(title);
      chart.append(bar);
    }
    const label = svg("text", { x, y: height - 10, "font-size": 10 });
    label.textContent = `${new Date(hour * 3_600_000).getHours()}h`;
    chart.append(label);
  });
}

// ---- live pattern events (server-sent events read with fetch, so the token goes in a header) ----

function stopLive() {
  if (state.live) state.live.abort();
  state.live = null;
}

async function startLive() {
  stopLive();
  const controller = new AbortController();
  state.live = controller;
  const status = $("#live-status");
  try {
    const response = await call(orgPath("/patterns"), { signal: controller.signal });
    status.textContent = "connected: waiting for pattern events";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: ?(.*)$/m.exec(block)?.[1];
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (event === "pattern") {
          const e = JSON.parse(data);
          $("#live-events").prepend(el("li", { "data-interaction": e.interactionId },
            `${time(e.timestamp)} camera ${e.cameraId} frames ${e.firstFrameIndex}-${e.lastFrameIndex}: ${e.summary}`));
          status.textContent = `connected: ${$("#live-events").children.length} events`;
        } else if (event === "error") {
          status.textContent = `ended: ${JSON.parse(data).error.message}`;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") status.textContent = `Error: ${e.message}`;
  }
}

// ---- cameras, their sessions, zones over a keyframe ---------------------------------------------

async function showCameras() {
  const list = $("#camera-list");
  list.replaceChildren(el("p", { text: "loading..." }));
  const [cameras, cctv] = await Promise.all([
    json(orgPath("/cameras?pageSize=100")),
    json(`${api}/interactions/organization/${encodeURIComponent(state.org)}?sourceType=cctv&pageSize=200`),
  ]);
  // Sessions and a recent keyframe per camera, from the CCTV records.
  const byCamera = new Map();
  for (const r of cctv.interactions) {
    const camera = r.data.camera_id;
    if (!camera) continue;
    const seen = byCamera.get(camera) || { sessions: new Set(), keyframe: null };
    seen.sessions.add(r.sessionId);
    const frame = (r.data.frames || [])[0];
    if (!seen.keyframe && frame) seen.keyframe = { sessionId: r.sessionId, frameIndex: frame.frame_index };
    byCamera.set(camera, seen);
  }
  const configured = new Map(cameras.cameras.map((c) => [c.cameraId, c]));
  const ids = [...new Set([...configured.keys(), ...byCamera.keys()])].sort();
  list.replaceChildren();
  if (ids.length === 0) list.append(el("p", { text: "No cameras yet." }));
  for (const id of ids) {
    const config = configured.get(id) || { zones: [], lines: [], masks: [] };
    const seen = byCamera.get(id) || { sessions: new Set(), keyframe: null };
    const box = el("div", { class: "camera", "data-camera": id }, el("h3", { text: `Camera ${id}` }),
      el("p", { text: `${config.zones.length} zones, ${config.lines.length} tripwires, ${config.masks.length} masks` }));
    const sessions = el("ul", { class: "sessions" });
    box.append(sessions);
    list.append(box);
    for (const sessionId of seen.sessions) {
      const s = await json(orgPath(`/sessions/${encodeURIComponent(sessionId)}`));
      sessions.append(el("li", { "data-session": s.sessionId },
        `session ${s.sessionId} (${s.status}): ${s.framesReceived} frames received, ${s.framesAccepted} described, ${s.batchesEmitted} batches`));
    }
    if (seen.keyframe) {
      const view = el("div", { class: "view-box" });
      const img = el("img", { alt: `camera ${id} keyframe` });
      img.src = await keyframeUrl(seen.keyframe.sessionId, seen.keyframe.frameIndex);
      const overlay = svg("svg", { viewBox: "0 0 1 1", preserveAspectRatio: "none" });
      for (const z of config.zones) {
        const polygon = svg("polygon", { class: "zone", "data-zone": z.id, points: z.polygon.map((p) => `${p.x},${p.y}`).join(" ") });
        const title = svg("title");
        title.textContent = `zone ${z.id}: ${z.productIds.join(", ")}`;
        polygon.append(title);
        overlay.append(polygon);
      }
      for (const l of config.lines) {
        overlay.append(svg("line", { class: "line", "data-line": l.id, x1: l.a.x, y1: l.a.y, x2: l.b.x, y2: l.b.y }));
      }
      view.append(img, overlay);
      box.append(view);
    }
  }
}

// ---- health ------------------------------------------------------------------------------------

async function showHealth() {
  const response = await fetch(`${api}/health`);
  const h = await response.json();
  $("#health-status").textContent = `${h.status} (crow ${h.version})`;
}

// ---- routing -----------------------------------------------------------------------------------

async function route() {
  const [view, arg] = location.hash.slice(1).split("/");
  const name = state.token ? (view || "interactions") : "login";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === name);
  if (name !== "live") stopLive();
  try {
    if (name === "interactions") await showPage();
    if (name === "detail") await showDetail(decodeURIComponent(arg));
    if (name === "summary") await showSummary();
    if (name === "live") await startLive();
    if (name === "cameras") await showCameras();
    if (name === "health") await showHealth();
  } catch (e) {
    const section = document.getElementById(name);
    section.append(el("p", { class: "error", role: "alert", text: `Error: ${e.message}` }));
  }
}

window.addEventListener("hashchange", route);

(async () => {
  const saved = JSON.parse(sessionStorage.getItem("crow") || "null");
  if (saved) {
    try { await login(saved.org, saved.token); } catch (_) { state.token = null; }
  }
  route();
})();
