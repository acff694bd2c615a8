// shoal console: a hand-written page script, no framework and no build
// step. Each page is a function that fetches JSON from /v1/console/... and
// draws tables, or SVG charts. Pages that move (records in follow mode,
// charts) poll while they are shown; leaving a page stops its timer. The
// admin actions (create a topic, reset a group's offsets) are forms shown
// only when /v1/console/actions says they are on; they POST JSON with the
// X-Shoal-Console header the broker requires of them.
"use strict";

const COLORS = ["#1f6feb", "#e36209", "#2e7d32", "#8250df", "#c62828", "#0a7ea4", "#9a6700", "#57606a"];
// How often a following record view asks for new records, and how often
// the charts and groups redraw (the history keeps a sample every 10 s).
const FOLLOW_MS = 250;
const REFRESH_MS = 5000;
// Rows a following record view keeps on screen.
const ROWS_KEPT_MAX = 500;
// The shortest time a chart spans, and the most points drawn as dots too.
const SPAN_MIN_MS = 60e3;
const DOTS_MAX = 60;

let timer = null;
let generation = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An answer's error as one line: the HTTP status, Kafka's error name and
// the broker's message.
function failure(response, body) {
  const said = [body.error, body.message !== body.error ? body.message : null].filter(Boolean);
  return new Error(`${response.status} ${said.join(": ") || response.statusText}`);
}

async function api(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw failure(response, body);
  return body;
}

async function action(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    cache: "no-store",
    headers: { "Content-Type": "application/json", "X-Shoal-Console": "1" },
    body: JSON.stringify(payload),
  });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw failure(response, body);
  return body;
}

// Whether the broker takes the console's actions (asked once per load).
let actionsEnabled = null;
async function actionsOn() {
  if (actionsEnabled === null) actionsEnabled = (await api("/v1/console/actions")).enabled;
  return actionsEnabled;
}

// The outcome of the last action, shown once on the page it redraws.
let outcome = null;
function outcomeNode() {
  const node = outcome;
  outcome = null;
  return node;
}

// A form whose submit runs `run(values)` and shows its outcome in `result`.
function actionForm(id, fields, label, run) {
  const result = el("p", { id: `${id}-result`, class: "muted" });
  const form = el("form", { id, class: "controls" }, fields, el("button", { type: "submit" }, label));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    result.className = "muted";
    result.textContent = "…";
    try {
      const done = await run(values);
      result.className = "ok";
      result.textContent = done;
    } catch (error) {
      result.className = "error";
      result.textContent = String(error.message || error);
    }
  });
  return [form, result];
}

function field(label, attrs) {
  return el("label", {}, label, el("input", attrs));
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + units[i];
}

function num(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) =>
      cell instanceof Node ? el("td", {}, cell)
        : typeof cell === "number" ? el("td", { class: "num" }, num(cell))
        : el("td", {}, cell ?? "—"))))));
}

function show(nodes) {
  document.getElementById("page").replaceChildren(...nodes.flat().filter((n) => n !== null));
}

// Redraws the page in REFRESH_MS unless another page was opened since
// `mine`.
function refreshLater(mine) {
  timer = setTimeout(() => { if (mine === generation) route(); }, REFRESH_MS);
}

function problem(error) {
  return el("p", { class: "error" }, String(error.message || error));
}

function status(text) {
  document.getElementById("status").textContent = text;
}

// ---- Brokers ----

async function brokersPage() {
  const data = await api("/v1/console/brokers");
  status(`cluster ${data.cluster_id} · node ${data.node_id}`);
  const card = (label, value, bad) => el("div", { class: "card" }, label, el("b", { class: bad ? "bad" : "" }, value));
  return [
    el("h1", {}, "Brokers"),
    el("div", { class: "cards" },
      card("Brokers", data.brokers.length),
      card("Controller", data.controller_id),
      card("Topics", num(data.topics)),
      card("Partitions", num(data.partitions)),
      card("Offline partitions", num(data.offline_partitions), data.offline_partitions > 0),
      card("This node", data.ready ? "ready" : "not ready", !data.ready)),
    table(["Id", "Host", "Port", "Rack", "State", "Epoch", "Role"], data.brokers.map((b) => [
      b.id, b.host, b.port === null ? null : String(b.port), b.rack,
      el("span", { class: b.fenced ? "bad" : "ok" }, b.fenced ? "fenced" : "active"),
      b.epoch,
      [b.controller ? "controller" : null, b.this ? "this node" : null].filter(Boolean).join(", ") || "—",
    ])),
    el("h2", {}, `Shards of node ${data.node_id}`),
    table(["Shard", "Partitions", "Leaders", "Under-replicated", "Log size", "Connections", "Requests in flight"],
      data.shards.map((s) => [s.shard, s.partitions, s.leaders, s.under_replicated, bytes(s.log_bytes), s.connections, s.requests_in_flight]))];
}

// ---- Topics ----

function configTable(configs) {
  const entries = Object.entries(configs || {});
  if (entries.length === 0) return el("p", { class: "muted" }, "No overrides: every config is the broker's default.");
  return table(["Config", "Value"], entries);
}

async function topicsPage() {
  const data = await api("/v1/console/topics");
  const rows = data.topics.map((t) => [
    el("a", { href: `#topic/${encodeURIComponent(t.name)}` }, t.name),
    t.partitions, t.replication_factor,
    el("span", { class: t.offline ? "bad" : "" }, num(t.offline)),
    el("span", { class: t.under_replicated ? "bad" : "" }, num(t.under_replicated)),
    t.records_here, bytes(t.size_bytes_here),
    Object.entries(t.configs).map(([k, v]) => `${k}=${v}`).join(", ") || "—",
  ]);
  const create = await actionsOn() ? [el("h2", {}, "Create a topic"), createTopicForm()] : [];
  return [el("h1", {}, "Topics"), outcomeNode(), ...create,
    table(["Topic", "Partitions", "Replicas", "Offline", "Under-replicated", "Records (led here)", "Size here", "Config overrides"], rows),
    data.truncated ? el("p", { class: "muted" }, "The list is cut at the console's bound.") : null];
}

function createTopicForm() {
  return actionForm("create-topic", [
    field("Name", { name: "name", required: true }),
    field("Partitions", { name: "partitions", type: "number", min: 1, value: 1, required: true }),
    field("Replication factor", { name: "replication_factor", type: "number", min: 1, value: 1, required: true }),
    field("Configs (k=v, comma separated)", { name: "configs", placeholder: "retention.ms=86400000" }),
  ], "Create", async (values) => {
    const configs = {};
    for (const pair of values.configs.split(",").map((p) => p.trim()).filter(Boolean)) {
      const at = pair.indexOf("=");
      if (at <= 0) throw new Error(`config ${pair} is not key=value`);
      configs[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    const created = await action("/v1/console/actions/create-topic", {
      name: values.name, partitions: Number(values.partitions),
      replication_factor: Number(values.replication_factor), configs,
    });
    outcome = el("p", { id: "create-topic-result", class: "ok" },
      `Created topic ${created.name}: ${created.partitions} partitions, replication factor ${created.replication_factor}.`);
    route();
    return "created";
  });
}

async function topicPage(name) {
  const data = await api(`/v1/console/topic?name=${encodeURIComponent(name)}`);
  const rows = data.partitions.map((p) => [
    p.partition, p.leader, p.leader_epoch, p.replicas.join(", "),
    el("span", { class: p.isr.length < p.replicas.length ? "bad" : "" }, p.isr.join(", ")),
    p.log_start_offset, p.high_watermark, p.log_end_offset, bytes(p.size_bytes), p.segments,
    el("a", { href: `#records?topic=${encodeURIComponent(name)}&partition=${p.partition}&from=earliest` }, "records"),
  ]);
  return [el("h1", {}, `Topic ${data.name}`), el("p", { class: "muted" }, `id ${data.id}`),
    table(["Partition", "Leader", "Epoch", "Replicas", "ISR", "Start", "High watermark", "End", "Size", "Segments", ""], rows),
    el("h2", {}, "Configs"), configTable(data.configs)];
}

// ---- Records ----

function decodeBase64(shown) {
  const text = atob(shown.base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// Bytes shown as text, JSON (pretty-printed when they parse, as text when
// not) or hex; in a block for values, inline for keys and headers.
function render(shown, format, inline) {
  if (shown === null) return el("span", { class: "muted" }, "null");
  const data = decodeBase64(shown);
  const cut = shown.length > data.length ? ` … (${num(shown.length)} bytes)` : "";
  const tag = inline ? "code" : "pre";
  if (format === "hex") {
    return el(tag, {}, Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ") + cut);
  }
  const text = new TextDecoder("utf-8").decode(data);
  if (format === "json") {
    try {
      return el(tag, {}, JSON.stringify(JSON.parse(text), null, inline ? 0 : 2) + cut);
    } catch (_) {
      // Not JSON (or cut): shown as the text it is.
    }
  }
  return el(tag, {}, text + cut);
}

function params() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

async function recordsPage() {
  const mine = generation;
  const given = params();
  const topics = (await api("/v1/console/topics")).topics;
  const topic = given.get("topic") || (topics.find((t) => !t.internal) || topics[0] || {}).name || "";
  const state = {
    topic,
    partition: given.get("partition") || "0",
    from: given.get("from") || "latest",
    at: given.get("offset") || given.get("timestamp") || "",
    format: given.get("format") || "text",
    follow: given.get("follow") === "1",
  };
  const go = () => {
    const query = new URLSearchParams({ topic: state.topic, partition: state.partition, from: state.from, format: state.format });
    if (state.from === "offset") query.set("offset", state.at);
    if (state.from === "timestamp") query.set("timestamp", state.at);
    if (state.follow) query.set("follow", "1");
    location.hash = "records?" + query.toString();
  };
  const bind = (key) => (event) => { state[key] = event.target.type === "checkbox" ? event.target.checked : event.target.value; };
  const form = el("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go(); } },
    el("label", {}, "Topic", el("select", { id: "topic", onchange: bind("topic") },
      topics.map((t) => el("option", { value: t.name, selected: t.name === state.topic }, t.name)))),
    el("label", {}, "Partition", el("input", { id: "partition", type: "number", min: 0, value: state.partition, onchange: bind("partition") })),
    el("label", {}, "From", el("select", { id: "from", onchange: bind("from") },
      ["latest", "earliest", "offset", "timestamp"].map((f) => el("option", { value: f, selected: f === state.from }, f)))),
    el("label", {}, "Offset or timestamp (ms)", el("input", { id: "at", value: state.at, onchange: bind("at") })),
    el("label", {}, "Show as", el("select", { id: "format", onchange: bind("format") },
      ["text", "json", "hex"].map((f) => el("option", { value: f, selected: f === state.format }, f)))),
    el("label", {}, "Follow", el("input", { id: "follow", type: "checkbox", checked: state.follow, onchange: bind("follow") })),
    el("button", { type: "submit" }, "Show"));
  const info = el("p", { class: "muted", id: "records-info" });
  const body = el("tbody", { id: "records" });
  const view = el("table", {}, el("thead", {}, el("tr", {}, ["Offset", "Timestamp", "Key", "Headers", "Value"].map((h) => el("th", {}, h)))), body);
  const nodes = [el("h1", {}, "Records"), form, info, view];
  if (!state.topic) { info.textContent = "No topics yet."; return nodes; }
  const query = new URLSearchParams({ topic: state.topic, partition: state.partition, limit: "50" });
  if (state.from === "offset" || state.from === "timestamp") query.set(state.from, state.at || "0");
  else query.set("from", state.from);
  const addRows = (records) => {
    for (const r of records) {
      body.append(el("tr", { "data-offset": r.offset },
        el("td", { class: "num" }, r.offset),
        el("td", {}, new Date(r.timestamp).toISOString()),
        el("td", {}, render(r.key, state.format, true)),
        el("td", {}, r.headers.map((h) => el("div", {}, `${h.key}: `, render(h.value, state.format, true)))),
        el("td", { class: "value" }, render(r.value, state.format))));
    }
    while (body.children.length > ROWS_KEPT_MAX) body.firstChild.remove();
  };
  const page = await api("/v1/console/records?" + query.toString());
  addRows(page.records);
  const describe = (p) => `${state.topic}-${state.partition}: log start ${num(p.log_start_offset)}, high watermark ${num(p.high_watermark)}` +
    (state.follow ? " · following" : "");
  info.textContent = describe(page);
  if (!state.follow) return nodes;
  let next = page.next_offset;
  const poll = async () => {
    if (mine !== generation) return;
    try {
      const more = await api(`/v1/console/records?topic=${encodeURIComponent(state.topic)}&partition=${state.partition}&offset=${next}&limit=100`);
      if (mine !== generation) return;
      addRows(more.records);
      next = more.next_offset;
      info.textContent = describe(more);
    } catch (error) {
      info.textContent = String(error.message || error);
    }
    if (mine === generation) timer = setTimeout(poll, FOLLOW_MS);
  };
  if (mine === generation) timer = setTimeout(poll, FOLLOW_MS);
  return nodes;
}

// ---- Charts ----

// A line chart of `series` ([{name, points: [[time_ms, value]]}]) as an
// SVG element; `format` labels the value axis.
function lineChart(title, series, format) {
  const width = 560, height = 200, left = 64, right = 10, top = 10, bottom = 22;
  const points = series.flatMap((s) => s.points);
  const times = points.map((p) => p[0]);
  const values = points.map((p) => p[1]);
  // From the first sample to the last, a minute at least (up to the hour kept).
  const t0 = times.length ? Math.min(...times) : Date.now() - SPAN_MIN_MS;
  const t1 = Math.max(...times, t0 + SPAN_MIN_MS);
  const v1 = Math.max(...values, 0) * 1.1 || 1;
  const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (width - left - right);
  const y = (v) => top + (1 - v / v1) * (height - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "data-points": points.length });
  for (let i = 0; i <= 4; i++) {
    const v = (v1 * i) / 4;
    chart.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    chart.append(svg("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end" }, format(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const label = new Date(t).toISOString().slice(11, 19);
    chart.append(svg("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, label));
  }
  chart.append(svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }));
  chart.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const color = COLORS[i % COLORS.length];
    chart.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, class: "series" }));
    // Dots while the points are few (a line of one point draws nothing).
    if (s.points.length <= DOTS_MAX) {
      for (const p of s.points) chart.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: color }));
    }
  });
  const legend = el("div", { class: "legend" }, series.map((s, i) =>
    el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), s.name)));
  return el("div", { class: "chart" }, el("h3", {}, title), chart, legend);
}

// Per-second rates of a counter between consecutive samples (a restart,
// whose counters start again, gives no point).
function rate(samples, field) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].time_ms - samples[i - 1].time_ms) / 1000;
    const dv = samples[i][field] - samples[i - 1][field];
    if (dt > 0 && dv >= 0) out.push([samples[i].time_ms, dv / dt]);
  }
  return out;
}

function latency(samples, api, field) {
  return samples.filter((s) => s[api]).map((s) => [s.time_ms, s[api][field] / 1000]);
}

const perSecond = (unit) => (v) => (unit === "B" ? bytes(v) : num(Math.round(v))) + "/s";
const millis = (v) => (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms";

async function chartsPage() {
  const mine = generation;
  const data = await api("/v1/console/history");
  const s = data.samples;
  if (mine === generation) refreshLater(mine);
  return [el("h1", {}, "Charts"),
    el("p", { class: "muted" }, `The last hour from this broker's own metrics: a sample every ${data.interval_ms / 1000} s, ${s.length - 1} kept, and now.`),
    el("div", { class: "charts" },
      lineChart("Throughput (bytes)", [
        { name: "produced bytes in", points: rate(s, "bytes_in") },
        { name: "bytes out to clients", points: rate(s, "bytes_out") }], perSecond("B")),
      lineChart("Records and requests", [
        { name: "records in", points: rate(s, "records_in") },
        { name: "requests", points: rate(s, "requests") }], perSecond("")),
      lineChart("Produce latency", [
        { name: "p50", points: latency(s, "produce", "p50_us") },
        { name: "p99", points: latency(s, "produce", "p99_us") }], millis),
      lineChart("Fetch latency", [
        { name: "p50", points: latency(s, "fetch", "p50_us") },
        { name: "p99", points: latency(s, "fetch", "p99_us") }], millis))];
}

// ---- Groups ----

async function groupsPage(selected) {
  const mine = generation;
  const data = await api("/v1/console/groups");
  const nodes = [el("h1", {}, "Consumer groups")];
  if (data.groups.length === 0) nodes.push(el("p", { class: "muted" }, "No groups coordinated by this broker."));
  nodes.push(table(["Group", "State", "Members", "Partitions", "Total lag"], data.groups.map((g) => [
    el("a", { href: `#groups/${encodeURIComponent(g.group)}` }, g.group), g.state, g.members, g.offsets.length,
    g.offsets.reduce((sum, o) => sum + (o.lag || 0), 0)])));
  const group = data.groups.find((g) => g.group === selected) || (selected === undefined ? data.groups[0] : undefined);
  if (group) {
    nodes.push(el("h2", {}, `Group ${group.group}`));
    if (await actionsOn()) {
      nodes.push(el("p", {}, el("a", { href: `#reset/${encodeURIComponent(group.group)}`, id: "reset-link" },
        "Reset offsets…")));
    }
    nodes.push(table(["Topic", "Partition", "Committed", "High watermark", "Lag"], group.offsets.map((o) => [
      o.topic, o.partition, o.committed, o.high_watermark, o.lag])));
    const history = await api(`/v1/console/history?group=${encodeURIComponent(group.group)}`);
    const series = new Map();
    for (const sample of history.samples) {
      for (const [topic, partition, lag] of sample.lags) {
        const key = `${topic}-${partition}`;
        if (!series.has(key)) series.set(key, []);
        series.get(key).push([sample.time_ms, lag]);
      }
    }
    nodes.push(el("div", { class: "charts" }, lineChart(`Lag of ${group.group} per partition (records)`,
      Array.from(series, ([name, points]) => ({ name, points })), (v) => num(Math.round(v)))));
  }
  if (mine === generation) refreshLater(mine);
  return nodes;
}

// ---- Reset a group's offsets ----

// Not redrawn on a timer, so that the form keeps what is typed in it.
async function resetPage(group) {
  if (!(await actionsOn())) {
    return [el("h1", {}, "Reset offsets"), el("p", { class: "muted" },
      "Console actions are off (admin.console.actions.enabled=false).")];
  }
  const topics = (await api("/v1/console/topics")).topics.filter((t) => !t.internal);
  const to = el("select", { name: "to" }, ["earliest", "latest", "offset"].map((v) => el("option", { value: v }, v)));
  return [el("h1", {}, `Reset offsets of group ${group || ""}`),
    el("p", { class: "muted" }, "Only a group with no active member is reset, as kafka-consumer-groups --reset-offsets requires."),
    actionForm("reset-offsets", [
      field("Group", { name: "group", value: group || "", required: true }),
      el("label", {}, "Topic", el("select", { name: "topic" }, topics.map((t) => el("option", { value: t.name }, t.name)))),
      field("Partition (empty: all)", { name: "partition", type: "number", min: 0 }),
      el("label", {}, "To", to),
      field("Offset", { name: "offset", type: "number", min: 0 }),
    ], "Reset", async (values) => {
      const payload = { group: values.group, topic: values.topic, to: values.to };
      if (values.partition !== "") payload.partitions = [Number(values.partition)];
      if (values.to === "offset") payload.offset = Number(values.offset);
      const done = await action("/v1/console/actions/reset-offsets", payload);
      return `Reset ${done.group} on ${done.topic}: ` +
        done.offsets.map((o) => `partition ${o.partition} → ${o.offset}`).join(", ");
    })];
}

// ---- Routing ----

async function route() {
  clearTimeout(timer);
  const mine = ++generation;
  const hash = decodeURIComponent(location.hash.slice(1).split("?")[0]) || "brokers";
  const [page, arg] = [hash.split("/")[0], hash.split("/").slice(1).join("/")];
  for (const link of document.querySelectorAll("nav a")) {
    const shown = { topic: "topics", reset: "groups" }[page] || page;
    link.classList.toggle("active", link.dataset.page === shown);
  }
  const pages = {
    brokers: brokersPage,
    topics: topicsPage,
    topic: () => topicPage(arg),
    records: recordsPage,
    groups: () => groupsPage(arg || undefined),
    reset: () => resetPage(arg),
    charts: chartsPage,
  };
  // A page opened meanwhile wins: an older one's answer is dropped.
  try {
    const nodes = await (pages[page] || brokersPage)();
    if (mine !== generation) return;
    show(nodes);
    document.body.dataset.loaded = pages[page] ? page : "brokers";
  } catch (error) {
    if (mine !== generation) return;
    show([problem(error)]);
    document.body.dataset.loaded = "error";
  }
}

window.addEventListener("hashchange", route);
route();
