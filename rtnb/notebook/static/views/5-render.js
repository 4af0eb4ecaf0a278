// rtnb views, part 5 of 5: value, gauge, table, status and controls, and render(), the module's entry.

class ValueRender extends Render {
  constructor(model, el, feed) {
    super(model, el, feed);
    this.title.textContent = feed.config.label;
    this.text = element("div", "rtnb-value-text", "—");
    this.body.append(this.text);
    if (feed.config.sparkline) {
      this.spark = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      this.spark.setAttribute("class", "rtnb-sparkline");
      this.spark.setAttribute("viewBox", "0 0 100 24");
      this.spark.setAttribute("preserveAspectRatio", "none");
      this.line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      this.line.setAttribute("vector-effect", "non-scaling-stroke");
      this.spark.appendChild(this.line);
      this.body.append(this.spark);
    }
  }

  draw() {
    const store = this.feed.store;
    const row = store.current;
    if (!row) return;
    this.text.textContent = row.text !== undefined ? row.text : formatValue(this.feed.config, row);
    if (this.line) {
      const values = store.values;
      if (values.length < 2) return;
      const low = Math.min(...values);
      const span = Math.max(...values) - low || 1;
      const step = 100 / (values.length - 1);
      this.line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(2)},${(22 - ((v - low) / span) * 20).toFixed(2)}`).join(" "));
    }
  }
}

const SVG = "http://www.w3.org/2000/svg";

function arcPath(fraction0, fraction1, radius) {
  const point = (fraction) => {
    const angle = Math.PI * (1 - fraction);
    return [100 + radius * Math.cos(angle), 100 - radius * Math.sin(angle)];
  };
  const [ax, ay] = point(fraction0);
  const [bx, by] = point(fraction1);
  return `M ${ax.toFixed(2)} ${ay.toFixed(2)} A ${radius} ${radius} 0 0 1 ${bx.toFixed(2)} ${by.toFixed(2)}`;
}

class GaugeRender extends Render {
  constructor(model, el, feed) {
    super(model, el, feed);
    const config = feed.config;
    this.title.textContent = config.label;
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("viewBox", "0 0 200 118");
    this.svg.setAttribute("class", "rtnb-gauge-svg");
    this.svg.style.maxHeight = `${config.height}px`;
    const add = (tag, attributes) => {
      const node = document.createElementNS(SVG, tag);
      for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
      this.svg.appendChild(node);
      return node;
    };
    add("path", { d: arcPath(0, 1, 80), class: "rtnb-gauge-track", fill: "none", "stroke-width": 16 });
    let lower = config.min;
    const span = config.max - config.min;
    for (const [bound, colour] of config.thresholds) {
      add("path", { d: arcPath((lower - config.min) / span, (Math.min(bound, config.max) - config.min) / span, 96), fill: "none", stroke: colour, "stroke-width": 5 });
      lower = bound;
    }
    this.arc = add("path", { d: "", fill: "none", "stroke-width": 16, class: "rtnb-gauge-value" });
    this.number = add("text", { x: 100, y: 96, "text-anchor": "middle", class: "rtnb-gauge-number" });
    add("text", { x: 20, y: 114, "text-anchor": "middle", class: "rtnb-gauge-bound" }).textContent = significant(config.min);
    add("text", { x: 180, y: 114, "text-anchor": "middle", class: "rtnb-gauge-bound" }).textContent = significant(config.max);
    this.body.append(this.svg);
  }

  draw() {
    const config = this.feed.config;
    const row = this.feed.store.current;
    if (!row) return;
    const value = row.value !== undefined ? row.value : toNumber(extract(row.data, config.field));
    if (value === null || value === undefined) return;
    const fraction = Math.max(0, Math.min(1, (value - config.min) / (config.max - config.min)));
    this.arc.setAttribute("d", fraction > 0 ? arcPath(0, fraction, 80) : "");
    let colour = null;
    for (const [bound, band] of config.thresholds) {
      if (value <= bound) {
        colour = band;
        break;
      }
    }
    if (!colour && config.thresholds.length) colour = config.thresholds[config.thresholds.length - 1][1];
    this.arc.style.stroke = colour || "var(--jp-brand-color1, #1976d2)";
    this.number.textContent = significant(value) + (config.units || "");
  }
}

function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function clockTime(ts) {
  const date = new Date(ts * 1000);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((p) => String(p).padStart(2, "0")).join(":") + "." + String(date.getMilliseconds()).padStart(3, "0");
}

class TableRender extends Render {
  constructor(model, el, feed) {
    super(model, el, feed);
    this.title.textContent = feed.config.pattern;
    this.filter = element("input", "rtnb-filter");
    this.filter.type = "search";
    this.filter.placeholder = "Filter rows";
    this.filter.oninput = () => (this.needsDraw = true);
    this.scroller = element("div", "rtnb-table-scroll");
    this.table = element("table", "rtnb-table");
    this.scroller.appendChild(this.table);
    this.body.append(this.filter, this.scroller);
    this.sortColumn = null;
    this.sortDescending = false;
  }

  rows() {
    const store = this.feed.store;
    if (store.config.rows) return [...store.recent].reverse();
    return [...store.latest.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
  }

  draw() {
    const store = this.feed.store;
    const columns = ["topic", "time", ...store.columns];
    const cell = (row, column) => {
      if (column === "topic") return row.topic;
      if (column === "time") return row.ts;
      const data = row.data;
      if (data && typeof data === "object" && !Array.isArray(data)) return data[column];
      return column === "value" ? data : undefined;
    };
    let rows = this.rows();
    const needle = this.filter.value.trim().toLowerCase();
    if (needle) rows = rows.filter((row) => columns.some((column) => cellText(cell(row, column)).toLowerCase().includes(needle)));
    if (this.sortColumn !== null) {
      const column = this.sortColumn;
      const sign = this.sortDescending ? -1 : 1;
      rows.sort((a, b) => {
        const x = cell(a, column);
        const y = cell(b, column);
        if (typeof x === "number" && typeof y === "number") return sign * (x - y);
        return sign * cellText(x).localeCompare(cellText(y), undefined, { numeric: true });
      });
    }
    const head = element("thead");
    const headRow = element("tr");
    for (const column of columns) {
      const th = element("th", column === "time" ? "rtnb-sortable rtnb-time" : "rtnb-sortable", column);
      if (column === this.sortColumn) {
        th.classList.add(this.sortDescending ? "rtnb-sorted-desc" : "rtnb-sorted-asc");
        th.setAttribute("aria-sort", this.sortDescending ? "descending" : "ascending");
      }
      th.dataset.rtnbColumn = column;
      th.onclick = () => {
        if (this.sortColumn === column) this.sortDescending = !this.sortDescending;
        else {
          this.sortColumn = column;
          this.sortDescending = false;
        }
        this.needsDraw = true;
      };
      headRow.appendChild(th);
    }
    head.appendChild(headRow);
    const body = element("tbody");
    for (const row of rows) {
      const tr = element("tr");
      for (const column of columns) {
        const value = cell(row, column);
        tr.appendChild(column === "time" ? element("td", "rtnb-time", clockTime(value)) : element("td", "", cellText(value)));
      }
      body.appendChild(tr);
    }
    this.table.replaceChildren(head, body);
    this.root.dataset.rtnbRowsShown = String(rows.length);
  }
}

/**
 * The MQTT bridge's status, from its hub system topic: subscribed from the page when it reaches the hub
 * (`last: 1` gives the current state), else (or when that path is lost for FALLBACK_MS) relayed by the
 * kernel on request ({op: "bridge"}). Keeps the newest message by hub time, whichever path brought it.
 */
class BridgeWatch {
  constructor(model, config) {
    this.model = model;
    this.config = config; // {name, topic}
    this.status = null; // the newest status message's data
    this.ts = -Infinity;
    this.receivedAt = 0; // performance.now() when it arrived (counts down retry_in)
    this.client = null;
    this.relaying = false;
    this.closed = false;
    this.timer = null;
    this.onKernel = (content) => {
      if (content && content.op === "bridge" && content.topic === this.config.topic) this.accept(content.ts, content.data);
    };
    model.on("msg:custom", this.onKernel);
    const hub = model.get("hub") || {};
    if (hub.url || hub.path) {
      this.direct(hub);
      this.timer = setTimeout(() => this.client?.status !== "open" && this.relay(), FALLBACK_MS);
    } else this.relay();
  }

  async direct(hub) {
    let client;
    try {
      client = new RtnbClient(await hubBase(hub), {
        token: hub.token || null,
        transports: hub.transports || ["ws"],
        openTimeout: 2500,
        backoff: { initial: 500, max: 5000 },
      });
    } catch (error) {
      this.relay();
      return;
    }
    if (this.closed) {
      client.close();
      return;
    }
    this.client = client;
    client.on("message", (message) => this.accept(message.ts, message.data));
    client.on("status", ({ status }) => {
      if (status === "closed" && !this.relaying && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = null;
          if (this.client && this.client.status !== "open") this.relay();
        }, FALLBACK_MS - 500);
      }
    });
    client.subscribe(this.config.topic, { last: 1 });
  }

  relay() {
    if (this.relaying || this.closed) return;
    this.relaying = true; // the kernel forwards every later status message too
    this.model.send({ op: "bridge" });
  }

  accept(ts, data) {
    if (!data || typeof data !== "object" || typeof ts !== "number" || ts < this.ts) return;
    this.ts = ts;
    this.status = data;
    this.receivedAt = performance.now();
  }

  /** The row's cells and attributes, or null before the first status message. */
  row() {
    const s = this.status;
    if (!s) return null;
    let state = s.state || "unknown";
    const attempts = s.failed_attempts || 0;
    if (state === "disconnected" && typeof s.retry_in === "number") {
      const left = Math.max(0, s.retry_in - (performance.now() - this.receivedAt) / 1000);
      state = `disconnected — retrying, attempt ${attempts + 1}, next in ${left.toFixed(left < 10 ? 1 : 0)} s`;
    }
    const counts = `in ${(s.messages_in || 0).toLocaleString()} · out ${(s.messages_out || 0).toLocaleString()}`;
    return {
      name: `MQTT bridge ${s.broker || ""}`.trim(),
      state,
      detail: s.last_error ? `${counts} · last error: ${s.last_error}` : counts,
      data: {
        rtnbBridge: this.config.name,
        rtnbState: s.state || "unknown",
        rtnbAttempts: String(attempts),
        rtnbMessagesIn: String(s.messages_in || 0),
        rtnbMessagesOut: String(s.messages_out || 0),
      },
      error: s.last_error || "",
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.model.off("msg:custom", this.onKernel);
    if (this.client) this.client.close();
  }
}

class StatusRender {
  constructor(model, el) {
    this.config = model.get("config");
    this.root = element("div", "rtnb-view rtnb-status");
    this.root.dataset.rtnbPoints = "0";
    this.table = element("table", "rtnb-table rtnb-status-table");
    this.root.appendChild(this.table);
    el.appendChild(this.root);
    this.bridge = this.config.bridge ? new BridgeWatch(model, this.config.bridge) : null;
    this.update();
    this.timer = setInterval(() => this.update(), this.config.interval_ms || 500);
  }

  bridgeRow() {
    const row = this.bridge ? this.bridge.row() : null;
    if (!row) return null;
    const tr = element("tr", "rtnb-bridge-row");
    Object.assign(tr.dataset, row.data);
    tr.appendChild(element("td", "rtnb-bridge-broker", row.name));
    tr.appendChild(element("td", "rtnb-bridge-state", row.state));
    const detail = element("td", "rtnb-bridge-detail", row.detail);
    detail.colSpan = 4;
    if (row.error) detail.title = row.error;
    tr.appendChild(detail);
    return tr;
  }

  update() {
    const head = element("tr");
    for (const name of ["view", "mode", "msg/s", "lag", "gaps", "points"]) head.appendChild(element("th", "", name));
    const rows = [head];
    let points = 0;
    let relay = false;
    this.config.views.forEach((id, index) => {
      const feed = FEEDS.get(id);
      const stats = feed ? feed.stats() : null;
      if (stats) points += stats.points;
      if (stats && stats.mode === "relay") relay = true;
      const tr = element("tr");
      tr.dataset.rtnbView = id;
      const cells = stats
        ? [
            stats.mode || "connecting",
            stats.rate.toFixed(stats.rate < 10 ? 1 : 0),
            stats.lag === null ? "—" : `${Math.max(0, stats.lag).toFixed(2)} s`,
            String(stats.gaps),
            stats.points.toLocaleString(),
          ]
        : ["not shown", "—", "—", "—", "—"];
      tr.appendChild(element("td", "", this.config.names[index] || id));
      for (const text of cells) tr.appendChild(element("td", "", text));
      rows.push(tr);
    });
    const bridge = this.bridgeRow();
    if (bridge) rows.push(bridge);
    this.table.replaceChildren(...rows);
    // the panel holds no window and needs no data path: it reports its views'
    this.root.dataset.rtnbPoints = String(points);
    this.root.dataset.rtnbMode = relay ? "relay" : "direct";
  }

  destroy() {
    clearInterval(this.timer);
    if (this.bridge) this.bridge.close();
    this.root.remove();
  }
}

/** Slider, toggle, button, text box: the browser sets the synced value (or sends a click); the kernel publishes. */
class ControlRender {
  constructor(model, el) {
    this.model = model;
    const config = model.get("config");
    this.root = element("div", `rtnb-control rtnb-control-${config.control}`);
    const label = element("label", "rtnb-control-label", config.description || "");
    let input;
    const commit = (value) => {
      model.set("value", value);
      model.save_changes();
    };
    switch (config.control) {
      case "slider": {
        input = element("input", "rtnb-control-input");
        Object.assign(input, { type: "range", min: config.min, max: config.max, step: config.step });
        const shown = element("span", "rtnb-control-value");
        input.addEventListener(config.continuous ? "input" : "change", () => commit(Number(input.value)));
        input.addEventListener("input", () => (shown.textContent = significant(Number(input.value))));
        this.update = (value) => {
          input.value = String(value);
          shown.textContent = significant(Number(value));
        };
        this.root.append(label, input, shown);
        break;
      }
      case "toggle":
        input = element("button", "rtnb-button rtnb-control-input", config.description || "on");
        input.onclick = () => commit(!model.get("value"));
        this.update = (value) => {
          input.setAttribute("aria-pressed", String(Boolean(value)));
          input.classList.toggle("rtnb-pressed", Boolean(value));
        };
        this.root.append(input);
        break;
      case "button":
        input = element("button", "rtnb-button rtnb-control-input", config.description || "Send");
        input.onclick = () => model.send({ op: "click" });
        this.update = () => {};
        this.root.append(input);
        break;
      default:
        input = element("input", "rtnb-control-input");
        input.type = "text";
        input.addEventListener("change", () => commit(input.value));
        this.update = (value) => {
          if (document.activeElement !== input) input.value = value ?? "";
        };
        this.root.append(label, input);
    }
    this.onChange = () => this.update(model.get("value"));
    model.on("change:value", this.onChange);
    this.update(model.get("value"));
    el.appendChild(this.root);
  }

  destroy() {
    this.model.off("change:value", this.onChange);
    this.root.remove();
  }
}

const RENDERS = { chart: ChartRender, value: ValueRender, gauge: GaugeRender, table: TableRender };

/** Draw one view of `model` into `el`; returns the cleanup anywidget calls when the view goes. */
export function render(model, el) {
  injectCss(el);
  const kind = model.get("kind");
  if (kind === "status" || kind === "control" || kind === "dashboard") {
    const Panel = kind === "status" ? StatusRender : kind === "control" ? ControlRender : DashboardRender;
    const panel = new Panel(model, el);
    return () => panel.destroy();
  }
  const feed = feedFor(model);
  const view = new RENDERS[feed.kind](model, el, feed);
  feed.attach(view);
  const forward = (content, buffers) => {
    if (feed.forwarder === view) feed.fromKernel(content, buffers || []);
  };
  model.on("msg:custom", forward);
  return () => {
    model.off("msg:custom", forward);
    feed.detach(view);
    view.destroy();
  };
}
