// Netwarden dashboard: plain JavaScript, no framework and no CDN. Everything it shows comes
// from the REST API with the operator's token; /ws pushes changes, which redraw what they touch.
// Text from the network is only ever set as textContent, never as HTML.
"use strict";

const state = { token: null, socket: null, refreshTimer: null, route: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function badge(text) {
  return el("span", { class: "badge " + (text || "unknown") }, text || "unknown");
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function fixed(value, digits) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

async function api(path, options) {
  const response = await fetch(path, {
    ...(options || {}),
    headers: { "Authorization": "Bearer " + state.token, "Content-Type": "application/json" },
  });
  if (response.status === 401) {
    signOut("The token was refused (unknown or revoked).");
    throw new Error("unauthenticated");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && body.error ? body.error.message : response.statusText);
  return body;
}

// --- sign-in ---------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem("netwarden.token");
  state.token = null;
  if (state.socket) state.socket.close();
  document.getElementById("view").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
}

function signIn(token) {
  state.token = token;
  sessionStorage.setItem("netwarden.token", token);
  document.getElementById("login").hidden = true;
  document.getElementById("view").hidden = false;
  connect();
  route();
}

// --- live updates ----------------------------------------------------------------------------

function connect() {
  if (state.socket) { const old = state.socket; state.socket = null; old.close(); }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(scheme + "//" + location.host + "/ws?token=" + encodeURIComponent(state.token));
  state.socket = socket;
  const live = document.getElementById("live");
  socket.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  socket.onclose = () => {
    live.textContent = "offline"; live.className = "live off";
    if (state.token && state.socket === socket) setTimeout(connect, 3000);
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "hello") return;
    const feed = document.getElementById("feed");
    if (feed) {
      feed.prepend(el("li", {}, new Date().toLocaleTimeString() + " " + describe(event)));
      while (feed.children.length > 20) feed.lastChild.remove();
    }
    // Several events in a burst cost one redraw.
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, 250);
  };
}

function describe(event) {
  switch (event.type) {
    case "anomaly": return `anomaly ${event.action}: ${event.anomaly.summary}`;
    case "device_status": return `${event.agent} ${event.address} is ${event.status}` + (event.previous ? ` (was ${event.previous})` : "");
    case "maxout": return `maxout (${event.scope}) ${event.subject}: ${event.summary}`;
    case "alert": return `notification ${event.alert_id} ${event.action} by ${event.by}`;
    case "lagged": return `missed ${event.missed} events`;
    default: return event.type;
  }
}

// --- views -----------------------------------------------------------------------------------

function route() {
  if (takeFragmentToken()) return signIn(sessionStorage.getItem("netwarden.token"));
  const hash = location.hash || "#/";
  const device = hash.match(/^#\/device\/(\d+)$/);
  const poi = hash.match(/^#\/pois\/([0-9A-Za-z]{4})$/);
  if (device) state.route = () => deviceView(Number(device[1]));
  else if (poi) state.route = () => poiView(poi[1]);
  else if (hash === "#/pois") state.route = poisView;
  else if (hash === "#/kpis") state.route = kpisView;
  else if (hash === "#/speedtests") state.route = speedTestsView;
  else state.route = overview;
  refresh();
}

async function refresh() {
  if (!state.token || !state.route) return;
  const view = document.getElementById("view");
  try {
    const content = await state.route();
    const feed = document.getElementById("feed");
    view.replaceChildren(content);
    if (feed) { const keep = document.getElementById("feed"); if (keep) keep.replaceWith(feed); }
  } catch (error) {
    if (error.message !== "unauthenticated") view.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

function tiles(pairs) {
  return el("div", { class: "tiles" }, pairs.map(([label, n, cls]) =>
    el("div", { class: "tile" }, el("div", { class: "n " + (cls || "") }, n), el("div", { class: "l" }, label))));
}

async function act(id, action) {
  const note = action === "resolve" ? prompt("Resolve note (optional)") : null;
  await api(`/api/anomalies/${id}/${action}`, { method: "POST", body: JSON.stringify(note ? { note } : {}) });
  refresh();
}

async function overview() {
  const [stats, sites, devices, open, acked] = await Promise.all([
    api("/api/statistics"), api("/api/sites"), api("/api/devices?limit=500"),
    api("/api/anomalies?state=open&limit=200"), api("/api/anomalies?state=acknowledged&limit=200"),
  ]);
  const s = stats.devices_by_status, a = stats.anomalies_by_severity;
  const anomalies = open.concat(acked).sort((x, y) => y.id - x.id);
  return el("div", {},
    el("h2", {}, "Devices"),
    tiles([["online", s.online, ""], ["degraded", s.degraded], ["offline", s.offline], ["never probed", s.unknown],
           ["agents", stats.agents]]),
    el("h2", {}, "Anomalies (unresolved)"),
    tiles([["critical", a.critical], ["high", a.high], ["medium", a.medium], ["low", a.low],
           ["unacknowledged", stats.anomalies_unacknowledged], ["notifications unacknowledged", stats.alerts_unacknowledged]]),
    el("h2", {}, "Live anomalies"),
    el("table", { id: "anomalies" },
      el("tr", {}, ["", "severity", "kind", "subject", "summary", "opened", "state", ""].map((h) => el("th", {}, h))),
      anomalies.length === 0 ? el("tr", {}, el("td", { colspan: 8, class: "muted" }, "nothing open")) : null,
      anomalies.map((x) => el("tr", { "data-anomaly": x.id },
        el("td", {}, "#" + x.id), el("td", {}, badge(x.severity)), el("td", {}, x.kind), el("td", {}, x.subject),
        el("td", {}, x.summary), el("td", {}, when(x.opened_at)),
        el("td", {}, x.state + (x.acknowledged_by ? ` by ${x.acknowledged_by}` : "")),
        el("td", {},
          x.state === "open" ? el("button", { class: "ack", onclick: () => act(x.id, "acknowledge") }, "Acknowledge") : null,
          " ", el("button", { class: "resolve", onclick: () => act(x.id, "resolve") }, "Resolve"))))),
    el("h2", {}, "Live events"),
    document.getElementById("feed") || el("ul", { id: "feed" }),
    el("h2", {}, "Sites"),
    el("table", {},
      el("tr", {}, ["site (agent)", "devices", "online", "degraded", "offline", "anomalies", "last seen"].map((h) => el("th", {}, h))),
      sites.map((x) => el("tr", {},
        el("td", {}, x.id), el("td", {}, x.devices_total), el("td", {}, x.devices_by_status.online),
        el("td", {}, x.devices_by_status.degraded), el("td", {}, x.devices_by_status.offline),
        el("td", {}, Object.values(x.anomalies_by_severity).reduce((p, q) => p + q, 0)), el("td", {}, when(x.last_seen))))),
    el("h2", {}, "Devices"),
    el("table", { id: "devices" },
      el("tr", {}, ["status", "agent", "address", "hostname", "type", "vendor", "RTT ms", "loss %", "last probe"].map((h) => el("th", {}, h))),
      devices.map((d) => el("tr", { "data-device": d.id },
        el("td", {}, badge(d.status)), el("td", {}, d.agent_id),
        el("td", {}, el("a", { href: "#/device/" + d.id }, d.address)), el("td", {}, d.hostname || ""),
        el("td", {}, d.type || ""), el("td", {}, d.vendor || ""), el("td", {}, fixed(d.last_rtt_ms, 1)), el("td", {}, fixed(d.last_loss_pct, 0)),
        el("td", {}, when(d.last_probe_at))))));
}

/// A line chart of series [{cls, points: [[t, v]]}] with an optional shaded band list.
function chart(series, options) {
  const W = 900, H = 220, L = 45, B = 20;
  const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const all = series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[1] !== undefined);
  if (all.length === 0) {
    const t = svgEl("text", { x: W / 2, y: H / 2 }); t.textContent = "no data in this window"; svg.append(t); return svg;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0])) || t0 + 1;
  const vmax = Math.max(options.min_max || 0, ...all.map((p) => p[1])) * 1.1 || 1;
  const x = (t) => L + (W - L - 5) * (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0));
  const y = (v) => H - B - (H - B - 5) * (v / vmax);
  for (const [a, b] of options.bands || []) {
    svg.append(svgEl("rect", { class: "max", x: x(Math.max(a, t0)), y: 0, width: Math.max(2, x(Math.min(b, t1)) - x(Math.max(a, t0))), height: H - B }));
  }
  svg.append(svgEl("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
  for (const v of [0, vmax / 2, vmax]) {
    const label = svgEl("text", { x: 2, y: y(v) + 3 }); label.textContent = v.toFixed(1) + (options.unit || ""); svg.append(label);
  }
  const left = svgEl("text", { x: L, y: H - 5 }); left.textContent = new Date(t0).toLocaleString(); svg.append(left);
  const right = svgEl("text", { x: W - 130, y: H - 5 }); right.textContent = new Date(t1).toLocaleString(); svg.append(right);
  if (options.line) svg.append(svgEl("line", { class: "cap", x1: L, x2: W, y1: y(options.line), y2: y(options.line) }));
  for (const s of series) {
    const d = s.points.filter((p) => p[1] !== null && p[1] !== undefined)
      .map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    if (d) svg.append(svgEl("path", { class: s.cls, d }));
    // Sparse data (a new device) shows as dots: one point alone draws no line.
    const shown = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (shown.length < 60) for (const p of shown) svg.append(svgEl("circle", { class: "dot " + s.cls, cx: x(p[0]), cy: y(p[1]), r: 3 }));
  }
  return svg;
}

async function deviceView(id) {
  const [d, history] = await Promise.all([api(`/api/devices/${id}`), api(`/api/devices/${id}/history?limit=5000`)]);
  const points = history.map((h) => [Date.parse(h.ts), h]);
  return el("div", {},
    el("p", {}, el("a", { href: "#/" }, "← overview")),
    el("h2", {}, `${d.address} on ${d.agent_id}`),
    tiles([["status", d.status || "unknown"], ["uptime 7 d", fixed(d.uptime_7d_pct, 2) + " %"], ["uptime 30 d", fixed(d.uptime_30d_pct, 2) + " %"],
           ["RTT ms", fixed(d.last_rtt_ms, 1)], ["loss %", fixed(d.last_loss_pct, 0)]]),
    el("table", {},
      ["type", "mac", "vendor", "hostname", "first_seen", "last_seen"].map((k) => el("tr", {}, el("th", {}, k), el("td", {}, d[k] || "—"))),
      el("tr", {}, el("th", {}, "open ports"), el("td", {}, d.open_ports ? d.open_ports.join(", ") || "none" : "not scanned"))),
    (d.checked_ports || []).length ? el("div", {},
      el("h2", {}, "Checked TCP ports"),
      el("table", { class: "ports" },
        el("tr", {}, ["port", "state", "since", "connect ms", "open, last 24 h"].map((h) => el("th", {}, h))),
        d.checked_ports.map((p) => el("tr", {},
          el("td", {}, String(p.port)),
          el("td", { class: p.state === "open" ? "state-ok" : "state-bad" }, p.state),
          el("td", {}, new Date(p.state_since).toLocaleString()),
          el("td", {}, p.connect_ms == null ? "—" : fixed(p.connect_ms, 1)),
          el("td", {}, p.checks_24h ? `${fixed(100 * p.open_24h / p.checks_24h, 1)} % of ${p.checks_24h}` : "—"))))) : "",
    el("h2", {}, "RTT (ms): mean, last 24 h"),
    chart([{ cls: "rtt", points: points.map(([t, h]) => [t, h.rtt_mean_ms]) }], { unit: "" }),
    el("h2", {}, "Packet loss (%)"),
    chart([{ cls: "loss", points: points.map(([t, h]) => [t, h.loss_pct]) }], { min_max: 100, unit: "" }));
}

async function poisView() {
  const pois = await api("/api/pois");
  return el("div", {},
    el("h2", {}, "Points of interconnection"),
    el("table", {},
      el("tr", {}, ["code", "name", "state", "provider", "capacity (Mbps)"].map((h) => el("th", {}, h))),
      pois.map((p) => el("tr", {},
        el("td", {}, el("a", { href: "#/pois/" + p.code }, p.code)), el("td", {}, p.name || ""), el("td", {}, p.state || ""),
        el("td", {}, p.provider || ""), el("td", {}, p.capacity_bps ? (p.capacity_bps / 1e6).toFixed(0) : "")))));
}

async function poiView(code) {
  const [graphs, maxouts] = await Promise.all([api(`/api/pois/${code}/utilisation`), api(`/api/maxouts?poi=${code}`)]);
  const bands = maxouts.map((m) => [Date.parse(m.start), Date.parse(m.end)]);
  return el("div", {},
    el("p", {}, el("a", { href: "#/pois" }, "← POIs")),
    el("h2", {}, `POI ${code}: utilisation, last 24 h (maxouts shaded)`),
    graphs.map((g) => el("div", {},
      el("h2", {}, `${g.traffic_class || "graph " + g.graph_id}` + (g.capacity_bps ? ` — ${(g.capacity_bps / 1e6).toFixed(0)} Mbps` : "")),
      chart([
        { cls: "in", points: g.samples.map((s) => [Date.parse(s.ts), s.in_bps === null ? null : s.in_bps / 1e6]) },
        { cls: "out", points: g.samples.map((s) => [Date.parse(s.ts), s.out_bps === null ? null : s.out_bps / 1e6]) },
      ], { bands, line: g.capacity_bps ? g.capacity_bps / 1e6 : null, unit: "" }))),
    el("h2", {}, "Maxouts"),
    el("table", {},
      el("tr", {}, ["start", "end", "direction", "peak %"].map((h) => el("th", {}, h))),
      maxouts.map((m) => el("tr", {}, el("td", {}, when(m.start)), el("td", {}, when(m.end)), el("td", {}, m.direction), el("td", {}, fixed(m.peak_pct, 1))))));
}

async function kpisView() {
  const kpis = await api("/api/kpis");
  const tables = await Promise.all(kpis.map(async (k) => {
    const rows = await api(`/api/kpis/${k.id}`);
    const list = Array.isArray(rows) ? rows : rows.results || [];
    const columns = list.length ? Object.keys(list[0]) : [];
    return el("div", {}, el("h2", {}, k.name),
      list.length === 0 ? el("p", { class: "muted" }, "no rows yet") :
        el("table", {}, el("tr", {}, columns.map((c) => el("th", {}, c))),
          list.slice(0, 50).map((r) => el("tr", {}, columns.map((c) => el("td", {}, typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c]))))));
  }));
  return el("div", {}, tables);
}

async function speedTestsView() {
  const tests = await api("/api/speedtests?limit=1000");
  if (tests.length === 0) {
    return el("div", {}, el("h2", {}, "Speed tests"),
      el("p", { class: "muted", id: "speedtests-empty" },
        "No speed tests in the last 7 days. An agent runs them from [speedtest] in its agent.toml " +
        "(url for the collector, with token_file; or download_url and upload_url for any HTTP server), " +
        "or from speedtests in the fleet plan."));
  }
  // One series per agent, server and direction; the API answers newest first.
  const series = new Map();
  for (const t of tests.slice().reverse()) {
    const key = `${t.agent_id} ${t.direction} ${t.url}`;
    if (!series.has(key)) series.set(key, { agent: t.agent_id, direction: t.direction, url: t.url, points: [], last: t });
    const s = series.get(key);
    s.points.push([Date.parse(t.ts), t.error ? null : t.mbps]);
    s.last = t;
  }
  const list = [...series.values()];
  return el("div", {},
    el("h2", {}, "Speed tests, last 7 days"),
    tests.length === 1000 ? el("p", { class: "muted" }, "The newest 1,000 tests are shown; narrow it with /api/speedtests?agent=…") : null,
    el("table", { id: "speedtests-latest" },
      el("tr", {}, ["agent", "direction", "server", "newest Mbit/s", "when", "tests"].map((h) => el("th", {}, h))),
      list.map((s) => el("tr", {},
        el("td", {}, s.agent), el("td", {}, s.direction), el("td", {}, s.url),
        el("td", { class: s.last.error ? "state-bad" : "" }, s.last.error ? "failed" : fixed(s.last.mbps, 1)),
        el("td", {}, when(s.last.ts)), el("td", {}, String(s.points.length))))),
    el("h2", {}, "Download (Mbit/s)"),
    chart(list.filter((s) => s.direction === "download").map((s) => ({ cls: "in", points: s.points })), { unit: "" }),
    el("h2", {}, "Upload (Mbit/s)"),
    chart(list.filter((s) => s.direction === "upload").map((s) => ({ cls: "out", points: s.points })), { unit: "" }),
    el("h2", {}, "Every test"),
    el("table", { id: "speedtests" },
      el("tr", {}, ["ended", "agent", "direction", "server", "MB", "seconds", "Mbit/s", "error"].map((h) => el("th", {}, h))),
      tests.slice(0, 200).map((t) => el("tr", {},
        el("td", {}, when(t.ts)), el("td", {}, t.agent_id), el("td", {}, t.direction), el("td", {}, t.url),
        el("td", {}, fixed(t.bytes / 1e6, 1)), el("td", {}, fixed(t.duration_us / 1e6, 2)),
        el("td", {}, t.error ? "—" : fixed(t.mbps, 1)), el("td", { class: t.error ? "state-bad" : "" }, t.error || "")))));
}

// --- start -----------------------------------------------------------------------------------

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn(document.getElementById("token").value.trim());
});
document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
// A token may come in the fragment (never sent to the server): #token=nwt_...
function takeFragmentToken() {
  const fragment = location.hash.match(/^#token=(\w+)$/);
  if (!fragment) return false;
  sessionStorage.setItem("netwarden.token", fragment[1]);
  history.replaceState(null, "", "#/");
  return true;
}
takeFragmentToken();
const saved = sessionStorage.getItem("netwarden.token");
if (saved) signIn(saved); else signOut();
