// The hub's live demo page: topics, a pattern to follow, a plotly.js chart and latest values.
// Query parameters: ?topic=PATTERN (default "#"), ?last=N (history to replay, default 200),
// ?transports=sse,poll (force an order; default ws,sse,poll).
import { RtnbClient } from "../rtnb.js";

const WINDOW = 600;        // points kept per chart trace
const FRAME_MS = 100;      // redraw at most 10 times a second, however fast data comes
const TOPICS_EVERY_MS = 2000;

const params = new URLSearchParams(location.search);
const options = { last: Number(params.get("last") ?? 200) };
const transports = params.get("transports");
const client = new RtnbClient(undefined, transports ? { transports: transports.split(",") } : {});

const elements = {
  status: document.getElementById("status"),
  transport: document.getElementById("transport"),
  counters: document.getElementById("counters"),
  topics: document.querySelector("#topics tbody"),
  topicTotal: document.getElementById("topic-total"),
  values: document.querySelector("#values tbody"),
  form: document.getElementById("subscribe-form"),
  pattern: document.getElementById("pattern"),
  chart: document.getElementById("chart"),
};
for (const node of document.querySelectorAll(".origin")) node.textContent = client.baseUrl + "/";

const stats = { messages: 0, gaps: 0, redraws: 0 };
window.rtnbDemo = { client, stats };

// -- connection status ------------------------------------------------------------------

client.on("status", ({ status, transport }) => {
  elements.status.textContent = status;
  elements.status.className = "badge " + status;
  elements.status.dataset.status = status;
  elements.transport.textContent = transport ?? "–";
});

// -- incoming data, buffered until the next frame -----------------------------------------

let pattern = params.get("topic") || "#";
const pendingPoints = new Map();   // topic -> {x: [], y: []}
const latest = new Map();          // topic -> message
const traces = new Map();          // topic -> trace index
let dirty = false;

function numericValue(data) {
  if (typeof data === "number") return data;
  if (data && typeof data === "object") {
    if (typeof data.value === "number") return data.value;
    for (const value of Object.values(data)) if (typeof value === "number") return value;
  }
  return null;
}

client.on("message", (message) => {
  stats.messages += 1;
  latest.set(message.topic, message);
  const value = numericValue(message.data);
  if (value !== null) {
    let points = pendingPoints.get(message.topic);
    if (!points) pendingPoints.set(message.topic, (points = { x: [], y: [] }));
    points.x.push(new Date(message.ts * 1000));
    points.y.push(value);
  }
  dirty = true;
});

client.on("gap", () => {
  stats.gaps += 1;
  dirty = true;
});

// -- drawing ---------------------------------------------------------------------------

const hasPlotly = typeof window.Plotly !== "undefined";
if (hasPlotly) {
  Plotly.newPlot(elements.chart, [], {
    margin: { l: 50, r: 20, t: 10, b: 40 },
    xaxis: { type: "date" },
    yaxis: { zeroline: false },
    legend: { orientation: "h" },
  }, { responsive: true, displaylogo: false });
} else {
  elements.chart.hidden = true;
  document.getElementById("chart-missing").hidden = false;
}

function drawChart() {
  if (!hasPlotly || pendingPoints.size === 0) return;
  const extend = { x: [], y: [] };
  const indices = [];
  for (const [topic, points] of pendingPoints) {
    if (!traces.has(topic)) {
      traces.set(topic, traces.size);
      Plotly.addTraces(elements.chart, { x: [], y: [], name: topic, mode: "lines", type: "scatter" });
    }
    extend.x.push(points.x);
    extend.y.push(points.y);
    indices.push(traces.get(topic));
  }
  pendingPoints.clear();
  Plotly.extendTraces(elements.chart, extend, indices, WINDOW);
}

function formatValue(data) {
  if (data && typeof data === "object" && typeof data.value === "number") {
    const extra = Object.entries(data).filter(([key]) => key !== "value" && key !== "unit")
      .map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(" ");
    return `${data.value.toFixed(2)}${data.unit ? " " + data.unit : ""}${extra ? "  (" + extra + ")" : ""}`;
  }
  return JSON.stringify(data);
}

function drawValues() {
  const rows = [...latest.values()].sort((a, b) => a.topic.localeCompare(b.topic));
  elements.values.replaceChildren(...rows.map((message) => {
    const row = document.createElement("tr");
    row.dataset.topic = message.topic;
    row.dataset.offset = message.offset;
    for (const [text, className] of [
      [message.topic, ""],
      [formatValue(message.data), "value"],
      [String(message.offset), "number"],
      [new Date(message.ts * 1000).toLocaleTimeString(), ""],
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (className) cell.className = className;
      row.append(cell);
    }
    return row;
  }));
}

setInterval(() => {
  if (!dirty) return;
  dirty = false;
  stats.redraws += 1;
  drawChart();
  drawValues();
  elements.counters.textContent = `${stats.messages} messages · ${stats.gaps} gaps`;
}, FRAME_MS);

// -- subscription ------------------------------------------------------------------------

function follow(newPattern) {
  if (pattern && client.subscriptions.has(pattern)) client.unsubscribe(pattern);
  pattern = newPattern;
  elements.pattern.value = pattern;
  latest.clear();
  pendingPoints.clear();
  traces.clear();
  if (hasPlotly) Plotly.deleteTraces(elements.chart, elements.chart.data.map((_, index) => index));
  client.subscribe(pattern, options);
  const url = new URL(location.href);
  url.searchParams.set("topic", pattern);
  history.replaceState(null, "", url);
  dirty = true;
}

elements.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const wanted = elements.pattern.value.trim();
  if (wanted && wanted !== pattern) follow(wanted);
});

client.on("error", ({ code, message }) => {
  console.warn(`rtnb: ${code}: ${message}`);
});

elements.pattern.value = pattern;
client.subscribe(pattern, options);

// -- active topics -----------------------------------------------------------------------

async function refreshTopics() {
  try {
    const response = await fetch("topics", { cache: "no-store" });
    const body = await response.json();
    elements.topicTotal.textContent = `(${body.total})`;
    elements.topics.replaceChildren(...body.topics.map((row) => {
      const line = document.createElement("tr");
      line.dataset.topic = row.topic;
      for (const [text, number] of [
        [row.topic, false],
        [row.rate === null ? "…" : row.rate.toFixed(1), true],
        [String(row.subscribers), true],
        [String(row.offset), true],
      ]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        if (number) cell.className = "number";
        line.append(cell);
      }
      line.addEventListener("click", () => follow(row.topic));
      return line;
    }));
  } catch (error) {
    // The hub is away; the connection badge already says so. Try again at the next tick.
  }
}
refreshTopics();
setTimeout(refreshTopics, 800); // rates need two samples: show them soon after the page opens
setInterval(refreshTopics, TOPICS_EVERY_MS);
