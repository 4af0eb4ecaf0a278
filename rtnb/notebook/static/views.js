// rtnb views: the browser side of LiveChart, LiveValue, Gauge, LiveTable and Status.
//
// This file is joined after rtnb.js (RtnbClient, topicMatches) and the CSS
// (RTNB_VIEWS_CSS) into one module by rtnb/notebook/_assets.py; the loader
// evaluates that module once per page and calls render(model, el) per view.
//
// Per view model there is one Feed on the page (shared by every render of that
// model: a re-rendered output reuses its window, so it is never blank). A Feed
// takes messages from the hub directly (RtnbClient) or from the kernel (relay:
// typed arrays of new points, or rows), decides by offsets what is new, and
// hands it to the view's Store. Renderers draw the Store at most ~30 times a
// second, only when it changed. The browser writes to the kernel only when its
// data path changes ({op: "relay", since} / {op: "direct"}).

const FEEDS = (globalThis.__rtnb_view_feeds__ ??= new Map()); // view_id -> Feed
const FALLBACK_MS = 3000; // auto: relay if direct is not open by then (or lost for that long)
const MIN_FRAME_MS = 33; // draw at most ~30 times a second
const SCROLL_AHEAD = 1; // seconds a live time axis keeps scrolling past the newest message
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** The views' CSS, once per document or shadow root (marimo renders anywidgets inside shadow roots). */
function injectCss(el) {
  const root = el.getRootNode ? el.getRootNode() : document;
  const host = typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot ? root : document.head;
  if (host.querySelector(":scope > style.rtnb-views-css")) return;
  const style = document.createElement("style");
  style.className = "rtnb-views-css";
  style.textContent = RTNB_VIEWS_CSS;
  host.appendChild(style);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function extract(data, path) {
  if (path === null || path === undefined) return data;
  let value = data;
  for (const key of path.split(".")) {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && key in value) value = value[key];
    else return undefined;
  }
  return value;
}

function toNumber(value) {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  return null;
}

function significant(value) {
  if (!Number.isFinite(value)) return String(value);
  const text = Number(value.toPrecision(4));
  return Math.abs(text) >= 1e6 || (Math.abs(text) < 1e-3 && text !== 0) ? text.toExponential(3) : String(text);
}

/** Python's str.format for {name} and {name:[,][.N][f|g|e|d|%]} (what the kernel checks before choosing direct). */
export function formatPython(template, context) {
  return template.replace(/\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::(,?)(?:\.(\d+))?([fgde%]?))?\}/g, (match, name, comma, digits, type) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    if (!(name in context)) return `[format error: '${name}']`;
    const value = context[name];
    if (!comma && digits === undefined && !type) return typeof value === "object" ? JSON.stringify(value) : String(value);
    if (typeof value !== "number") return `[format error: not a number]`;
    const precision = digits === undefined ? 6 : Number(digits);
    let text;
    switch (type) {
      case "f": text = value.toFixed(precision); break;
      case "e": text = value.toExponential(precision).replace(/e([+-])(\d)$/, "e$10$2"); break;
      case "%": return (value * 100).toFixed(precision) + "%";
      case "d": text = String(Math.trunc(value)); break;
      case "g": text = String(Number(value.toPrecision(Math.max(1, precision)))); break;
      default: text = digits === undefined ? String(value) : String(Number(value.toPrecision(Math.max(1, precision))));
    }
    if (comma) {
      const [whole, fraction] = text.split(".");
      text = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction !== undefined ? "." + fraction : "");
    }
    return text;
  });
}

function formatValue(config, message) {
  const value = extract(message.data, config.field);
  if (config.fmt) {
    const context = message.data && typeof message.data === "object" && !Array.isArray(message.data) ? { ...message.data } : {};
    if (!("value" in context)) context.value = value === undefined ? message.data : value;
    if (!("topic" in context)) context.topic = message.topic;
    if (!("ts" in context)) context.ts = message.ts;
    return formatPython(config.fmt, context);
  }
  if (value === undefined) return "—";
  if (typeof value === "number" && !Number.isInteger(value)) return significant(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// -- stores: what a view holds -----------------------------------------------------------

/** One topic's points in growable typed-array rings (x, y), oldest first. */
class Ring {
  constructor(capacity) {
    this.capacity = capacity;
    this.size = 0;
    this.head = 0; // index of the oldest point
    this.xs = new Float64Array(Math.min(capacity, 1024));
    this.ys = new Float64Array(this.xs.length);
    this.dropped = 0; // points pushed out by the capacity
  }

  push(x, y) {
    if (this.size === this.xs.length && this.size < this.capacity) this.grow();
    const length = this.xs.length;
    if (this.size === length) {
      this.xs[this.head] = x;
      this.ys[this.head] = y;
      this.head = (this.head + 1) % length;
      this.dropped += 1;
      return;
    }
    const index = (this.head + this.size) % length;
    this.xs[index] = x;
    this.ys[index] = y;
    this.size += 1;
  }

  grow() {
    const length = Math.min(this.capacity, this.xs.length * 2);
    const xs = new Float64Array(length);
    const ys = new Float64Array(length);
    for (let i = 0; i < this.size; i++) {
      const index = (this.head + i) % this.xs.length;
      xs[i] = this.xs[index];
      ys[i] = this.ys[index];
    }
    this.xs = xs;
    this.ys = ys;
    this.head = 0;
  }

  x(i) {
    return this.xs[(this.head + i) % this.xs.length];
  }

  /** Drop points older than `horizon` from the front (time windows). */
  dropBefore(horizon) {
    while (this.size > 0 && this.xs[this.head] < horizon) {
      this.head = (this.head + 1) % this.xs.length;
      this.size -= 1;
    }
  }

  clear() {
    this.size = 0;
    this.head = 0;
  }
}

class ChartStore {
  constructor(config) {
    this.config = config;
    this.series = new Map(); // topic -> {ring, colour, epoch, hidden}
    this.refused = new Set(); // topics over max_traces
    this.version = 0;
    this.newestTime = -Infinity;
    this.newestArrival = 0; // performance.now() when newestTime last moved
  }

  get points() {
    let total = 0;
    for (const series of this.series.values()) total += series.ring.size;
    return total;
  }

  seriesFor(topic, epoch) {
    let series = this.series.get(topic);
    if (!series) {
      if (this.series.size >= this.config.max_traces) {
        this.refused.add(topic);
        return null;
      }
      series = { ring: new Ring(this.config.capacity), colour: PALETTE[this.series.size % PALETTE.length], epoch, hidden: false };
      this.series.set(topic, series);
    } else if (series.epoch !== epoch) {
      series.ring.clear(); // the topic's history was reset: its old points are another story
      series.epoch = epoch;
    }
    return series;
  }

  addMessage(message) {
    const config = this.config;
    const y = toNumber(extract(message.data, config.y));
    if (y === null) return;
    let x = message.ts;
    if (!config.time_axis) {
      x = toNumber(extract(message.data, config.x));
      if (x === null) return;
    }
    const series = this.seriesFor(message.topic, message.epoch);
    if (!series) return;
    series.ring.push(x, y);
    if (message.ts > this.newestTime) this.noteNewest(message.ts);
    this.version += 1;
  }

  addPoints(content, buffers, positions) {
    const floats = (view, Type) => new Type(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
    const times = floats(buffers[0], Float32Array);
    const values = floats(buffers[1], Float32Array);
    let next = 2;
    const xs = content.has_x ? floats(buffers[next++], Float64Array) : null;
    const offsets = content.has_offsets ? floats(buffers[next++], Float64Array) : null;
    let index = 0;
    for (const part of content.series) {
      const known = positions.get(part.topic);
      const seenUpTo = known && known[0] === part.epoch ? known[1] : -Infinity;
      const series = this.seriesFor(part.topic, part.epoch);
      for (let k = 0; k < part.count; k++, index++) {
        const offset = offsets ? offsets[index] : part.first + k;
        if (offset <= seenUpTo || !series) continue;
        const time = content.base + times[index] / 1000;
        series.ring.push(xs ? xs[index] : time, values[index]);
        if (time > this.newestTime) this.noteNewest(time);
      }
      if (part.last > seenUpTo) positions.set(part.topic, [part.epoch, part.last]);
      this.version += 1;
    }
  }

  noteNewest(time) {
    this.newestTime = time;
    this.newestArrival = performance.now();
  }

  /**
   * The live end of a time axis: the newest message's time, moved on by the time since it arrived
   * (up to SCROLL_AHEAD), so a live chart scrolls at the frame rate instead of jumping with each batch.
   */
  liveEnd(now) {
    return this.newestTime + Math.min(SCROLL_AHEAD, Math.max(0, now - this.newestArrival) / 1000);
  }

  /** Apply the time window (by the data's own clock, so the browser's clock does not matter). */
  trim() {
    const seconds = this.config.window_seconds;
    if (!seconds || !this.config.time_axis || this.newestTime === -Infinity) return;
    for (const series of this.series.values()) series.ring.dropBefore(this.newestTime - seconds);
  }

  notes() {
    const notes = [];
    if (this.refused.size) notes.push(`${this.refused.size} more topic(s) not drawn (max_traces=${this.config.max_traces})`);
    const seconds = this.config.window_seconds;
    if (seconds) {
      for (const [topic, series] of this.series) {
        if (series.ring.dropped && series.ring.size === this.config.capacity) {
          const span = this.newestTime - series.ring.x(0);
          notes.push(`${topic}: window holds the newest ${this.config.capacity.toLocaleString()} points (max_points), ${span.toFixed(1)} s of ${seconds} s`);
        }
      }
    }
    return notes;
  }
}

class RowStore {
  constructor(config, kind) {
    this.config = config;
    this.kind = kind;
    this.latest = new Map(); // topic -> row
    this.recent = []; // rows mode (table) / sparkline values (value)
    this.values = [];
    this.columns = config.columns ? [...config.columns] : [];
    this.version = 0;
    this.refusedTopics = new Set(); // table: topics over max_topics
    this.columnsRefused = new Set(); // table: payload keys over max_columns
  }

  get points() {
    if (this.kind === "table") return this.config.rows ? this.recent.length : this.latest.size;
    if (this.kind === "value" && this.config.sparkline) return this.values.length;
    return this.latest.size ? 1 : 0;
  }

  addMessage(message) {
    this.addRow({ topic: message.topic, epoch: message.epoch, offset: message.offset, ts: message.ts, data: message.data });
  }

  addRows(content, positions) {
    for (const row of content.rows) {
      const known = positions.get(row.topic);
      if (known && known[0] === row.epoch && row.offset <= known[1]) continue;
      positions.set(row.topic, [row.epoch, row.offset]);
      this.addRow(row);
    }
  }

  addRow(row) {
    const config = this.config;
    if (this.kind === "table") {
      if (!config.columns) this.learnColumns(row.data);
      if (config.rows) {
        this.recent.push(row);
        if (this.recent.length > config.rows) this.recent.splice(0, this.recent.length - config.rows);
      } else if (this.latest.has(row.topic) || this.latest.size < config.max_topics) {
        this.latest.set(row.topic, row);
      } else {
        this.refusedTopics.add(row.topic);
      }
    } else {
      this.latest.set(row.topic, row);
      this.current = row;
      if (config.sparkline) {
        const value = row.value !== undefined ? row.value : toNumber(extract(row.data, config.field));
        if (value !== null && value !== undefined) {
          this.values.push(value);
          if (this.values.length > config.sparkline) this.values.splice(0, this.values.length - config.sparkline);
        }
      }
    }
    this.version += 1;
  }

  learnColumns(data) {
    const keys = data && typeof data === "object" && !Array.isArray(data) ? Object.keys(data) : ["value"];
    for (const key of keys) {
      if (this.columns.includes(key)) continue;
      if (this.columns.length >= this.config.max_columns) this.columnsRefused.add(key);
      else this.columns.push(key);
    }
  }

  trim() {}

  notes() {
    const notes = [];
    if (this.refusedTopics.size) notes.push(`${this.refusedTopics.size} more topic(s) not shown (max_topics=${this.config.max_topics})`);
    if (this.columnsRefused.size) notes.push(`${this.columnsRefused.size} more field(s) not shown as columns (at most ${this.config.max_columns})`);
    return notes;
  }
}

// -- the feed: direct from the hub, or relayed by the kernel -------------------------------

class Feed {
  constructor(model) {
    const config = model.get("config");
    this.model = model;
    this.config = config;
    this.kind = model.get("kind");
    this.hub = model.get("hub") || {};
    this.transport = model.get("transport");
    this.id = Math.random().toString(36).slice(2);
    this.store = this.kind === "chart" ? new ChartStore(config) : new RowStore(config, this.kind);
    this.positions = new Map(); // topic -> [epoch, last offset held]; shared with the direct client
    this.mode = null; // "direct" | "relay" once known
    this.client = null;
    this.timer = null;
    this.renders = new Set();
    this.forwarder = null; // the render whose msg:custom listener feeds us (one at a time)
    this.received = 0;
    this.gaps = 0;
    this.lastTs = null;
    this.rate = 0;
    this.rateWindow = { at: performance.now(), count: 0 };
    this.closeTimer = null;
    this.start();
  }

  hasHub() {
    return Boolean(this.hub.url || this.hub.path);
  }

  start() {
    if (this.transport === "relay" || !this.hasHub()) {
      this.relay();
      return;
    }
    this.direct();
    if (this.transport === "auto") this.timer = setTimeout(() => this.mode !== "direct" && this.relay(), FALLBACK_MS);
  }

  /** Where the page reaches the hub: the extension's path on this origin, Colab's port proxy, or the URL. */
  async hubBase() {
    if (!this.hub.url) return new URL(this.hub.path, globalThis.location.origin).href;
    const colab = globalThis.google?.colab?.kernel;
    const url = new URL(this.hub.url);
    if (colab && typeof colab.proxyPort === "function" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
      // Colab serves the page from its own origin; a port on the kernel's machine is reached through its proxy
      return String(await colab.proxyPort(Number(url.port), { cache: false })).replace(/\/+$/, "") + url.pathname;
    }
    return this.hub.url;
  }

  async direct() {
    let base;
    try {
      base = await this.hubBase();
    } catch (error) {
      if (this.transport === "auto") this.relay();
      return;
    }
    if (this.closed) return;
    let client;
    try {
      client = new RtnbClient(base, {
        token: this.hub.token || null,
        transports: this.hub.transports || ["ws"],
        openTimeout: 2500,
        backoff: { initial: 500, max: 5000 },
      });
    } catch (error) {
      if (this.transport === "auto") this.relay();
      return;
    }
    this.client = client;
    client.positions = this.positions; // one notion of "what I hold", whichever path delivered it
    client.on("message", (message) => {
      this.count(message.ts);
      this.store.addMessage(message);
    });
    client.on("gap", () => (this.gaps += 1));
    client.on("status", ({ status }) => {
      if (status === "open") this.directOpened();
      else if (status === "closed" && this.mode === "direct" && this.transport === "auto" && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = null;
          if (this.client && this.client.status !== "open") this.relay();
        }, FALLBACK_MS - 500);
      }
    });
    client.subscribe(this.config.pattern, { last: this.config.last || 0 });
  }

  directOpened() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.mode === "relay") this.model.send({ op: "direct", id: this.id });
    this.setMode("direct");
  }

  relay() {
    if (this.mode === "relay") return;
    this.setMode("relay");
    this.model.send({ op: "relay", id: this.id, since: Object.fromEntries(this.positions) });
  }

  setMode(mode) {
    this.mode = mode;
    for (const render of this.renders) render.modeChanged(mode);
  }

  fromKernel(content, buffers) {
    if (!content || this.closed) return;
    if (content.op === "points") {
      let count = 0;
      for (const part of content.series) count += part.count;
      this.count(null, count);
      this.store.addPoints(content, buffers, this.positions);
    } else if (content.op === "gaps") {
      this.gaps += content.count; // what the hub could not deliver to the kernel's subscription
    } else if (content.op === "rows") {
      this.count(content.rows.length ? content.rows[content.rows.length - 1].ts : null, content.rows.length);
      this.store.addRows(content, this.positions);
    }
  }

  count(ts, n = 1) {
    this.received += n;
    this.rateWindow.count += n;
    if (ts !== null && ts !== undefined) this.lastTs = ts;
    else if (this.store.newestTime !== undefined && this.store.newestTime !== -Infinity) this.lastTs = this.store.newestTime;
    const now = performance.now();
    const elapsed = now - this.rateWindow.at;
    if (elapsed >= 1000) {
      this.rate = (this.rateWindow.count * 1000) / elapsed;
      this.rateWindow = { at: now, count: 0 };
    }
  }

  stats() {
    const now = performance.now();
    const idle = now - this.rateWindow.at;
    const rate = idle > 2000 ? (this.rateWindow.count * 1000) / idle : this.rate;
    return {
      mode: this.mode,
      received: this.received,
      rate,
      lag: this.lastTs === null ? null : Date.now() / 1000 - this.lastTs,
      gaps: this.gaps,
      points: this.store.points,
    };
  }

  attach(render) {
    clearTimeout(this.closeTimer);
    this.renders.add(render);
    if (!this.forwarder) this.forwarder = render;
  }

  detach(render) {
    this.renders.delete(render);
    if (this.forwarder === render) this.forwarder = this.renders.values().next().value || null;
    if (this.renders.size === 0) {
      // a re-rendered output comes back at once and keeps the window; a removed one is let go
      this.closeTimer = setTimeout(() => this.close(), 10000);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.client) this.client.close();
    if (this.mode === "relay") {
      try {
        this.model.send({ op: "direct", id: this.id });
      } catch (error) {
        // the comm is gone with the kernel: nothing to tell
      }
    }
    FEEDS.delete(this.config.view_id);
  }
}

function feedFor(model) {
  const id = model.get("config").view_id;
  let feed = FEEDS.get(id);
  if (!feed || feed.closed) {
    feed = new Feed(model);
    FEEDS.set(id, feed);
  }
  return feed;
}

// -- renderers ---------------------------------------------------------------------------

function theme(node) {
  const style = getComputedStyle(node);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    background: read("--jp-layout-color0", "") || style.backgroundColor || "transparent",
    text: read("--jp-ui-font-color1", "") || style.color || "#333",
    muted: read("--jp-ui-font-color2", "") || style.color || "#777",
    grid: read("--jp-border-color2", "rgba(128,128,128,0.25)"),
    font: read("--jp-ui-font-family", "sans-serif"),
  };
}

class Render {
  constructor(model, el, feed) {
    this.model = model;
    this.feed = feed;
    this.root = element("div", `rtnb-view rtnb-${feed.kind}`);
    this.header = element("div", "rtnb-header");
    this.title = element("span", "rtnb-title", feed.config.title || feed.config.label || "");
    this.badge = element("span", "rtnb-badge", "connecting");
    this.badge.title = "How this view gets its data: direct from the hub, or relayed by the kernel";
    this.header.append(this.title, element("span", "rtnb-spacer"), this.badge);
    this.body = element("div", "rtnb-body");
    this.note = element("div", "rtnb-note");
    this.root.append(this.header, this.body, this.note);
    this.root.dataset.rtnbPoints = "0";
    this.root.dataset.rtnbFrames = "0";
    el.appendChild(this.root);
    this.frames = 0;
    this.drawnVersion = -1;
    this.lastFrame = 0;
    this.alive = true;
    if (feed.mode) this.modeChanged(feed.mode);
    this.loop = this.loop.bind(this);
    requestAnimationFrame(this.loop);
  }

  modeChanged(mode) {
    this.root.dataset.rtnbMode = mode;
    this.badge.textContent = mode;
    this.badge.className = `rtnb-badge rtnb-badge-${mode}`;
  }

  loop(now) {
    if (!this.alive) return;
    requestAnimationFrame(this.loop);
    if (now - this.lastFrame < MIN_FRAME_MS) return;
    const store = this.feed.store;
    if (store.version === this.drawnVersion && !this.needsDraw) return;
    this.lastFrame = now;
    store.trim();
    this.drawnVersion = store.version;
    this.needsDraw = false;
    this.draw();
    this.frames += 1;
    this.root.dataset.rtnbPoints = String(store.points);
    this.root.dataset.rtnbFrames = String(this.frames);
    const notes = store.notes();
    this.note.textContent = notes.join(" · ");
    this.note.hidden = notes.length === 0;
  }

  draw() {}

  destroy() {
    this.alive = false;
    this.root.remove();
  }
}

class ChartRender extends Render {
  constructor(model, el, feed) {
    super(model, el, feed);
    this.paused = false;
    this.frozenRange = null;
    this.pause = element("button", "rtnb-button rtnb-pause", "Pause");
    this.follow = element("button", "rtnb-button rtnb-follow", "Follow");
    this.pause.title = "Stop moving (data keeps arriving)";
    this.follow.title = "Jump back to live";
    this.follow.disabled = true;
    this.pause.onclick = () => this.setPaused(true);
    this.follow.onclick = () => this.setPaused(false);
    this.header.insertBefore(this.pause, this.badge);
    this.header.insertBefore(this.follow, this.badge);
    this.canvas = element("canvas", "rtnb-canvas");
    this.canvas.style.height = `${feed.config.height}px`;
    this.legend = element("div", "rtnb-legend");
    this.body.append(this.canvas, this.legend);
    this.root.dataset.rtnbPaused = "false";
    this.resizer = new ResizeObserver(() => (this.needsDraw = true));
    this.resizer.observe(this.canvas);
  }

  loop(now) {
    // a live time axis keeps scrolling between batches (for SCROLL_AHEAD after the newest message)
    const store = this.feed.store;
    if (!this.paused && store.config.time_axis && now - store.newestArrival < SCROLL_AHEAD * 1000) this.needsDraw = true;
    super.loop(now);
  }

  setPaused(paused) {
    this.paused = paused;
    this.frozenRange = paused ? this.lastRange : null;
    this.pause.disabled = paused;
    this.follow.disabled = !paused;
    this.root.dataset.rtnbPaused = String(paused);
    this.needsDraw = true;
  }

  xRange(store) {
    if (this.paused && this.frozenRange) return this.frozenRange;
    let low = Infinity;
    let high = -Infinity;
    for (const series of store.series.values()) {
      const ring = series.ring;
      if (!ring.size || series.hidden) continue;
      if (store.config.time_axis) {
        low = Math.min(low, ring.x(0));
        high = Math.max(high, ring.x(ring.size - 1));
      } else {
        for (let i = 0; i < ring.size; i++) {
          const x = ring.x(i);
          if (x < low) low = x;
          if (x > high) high = x;
        }
      }
    }
    if (store.config.time_axis && high > -Infinity) {
      high = Math.max(high, store.liveEnd(performance.now()));
      if (store.config.window_seconds) low = high - store.config.window_seconds;
    }
    if (!(high > low)) return low === Infinity ? null : [low - 1, high + 1];
    return [low, high];
  }

  draw() {
    const store = this.feed.store;
    const canvas = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = Math.max(50, canvas.clientWidth);
    const height = Math.max(50, canvas.clientHeight);
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const colours = theme(this.root);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.fillStyle = colours.background;
    context.fillRect(0, 0, width, height);
    context.font = `11px ${colours.font}`;
    const range = this.xRange(store);
    this.lastRange = range;
    this.drawLegend(store);
    if (!range) {
      context.fillStyle = colours.muted;
      context.fillText("waiting for data…", 12, height / 2);
      return;
    }
    const left = 52;
    const right = 10;
    const top = 8;
    const bottom = 22;
    const plotWidth = Math.max(10, width - left - right);
    const plotHeight = Math.max(10, height - top - bottom);
    const columns = Math.max(1, Math.floor(plotWidth));
    const [x0, x1] = range;
    const scale = columns / (x1 - x0);
    // per-pixel min/max of every series: what a line through all the points would cover
    const binned = [];
    let yLow = Infinity;
    let yHigh = -Infinity;
    for (const series of store.series.values()) {
      if (series.hidden || !series.ring.size) continue;
      const mins = new Float64Array(columns).fill(Infinity);
      const maxs = new Float64Array(columns).fill(-Infinity);
      const ring = series.ring;
      const length = ring.xs.length;
      for (let i = 0; i < ring.size; i++) {
        const index = (ring.head + i) % length;
        const x = ring.xs[index];
        if (x < x0 || x > x1) continue;
        const column = Math.min(columns - 1, Math.floor((x - x0) * scale));
        const y = ring.ys[index];
        if (y < mins[column]) mins[column] = y;
        if (y > maxs[column]) maxs[column] = y;
      }
      for (let c = 0; c < columns; c++) {
        if (mins[c] < yLow) yLow = mins[c];
        if (maxs[c] > yHigh) yHigh = maxs[c];
      }
      binned.push({ series, mins, maxs });
    }
    if (store.config.chart_kind === "bar") {
      yLow = Math.min(0, yLow);
      yHigh = Math.max(0, yHigh);
    }
    if (!(yHigh >= yLow)) {
      yLow = 0;
      yHigh = 1;
    }
    if (yHigh === yLow) {
      yLow -= 1;
      yHigh += 1;
    }
    const pad = (yHigh - yLow) * 0.05;
    yLow -= pad;
    yHigh += pad;
    const yOf = (y) => top + plotHeight - ((y - yLow) / (yHigh - yLow)) * plotHeight;
    // grid and ticks
    context.strokeStyle = colours.grid;
    context.fillStyle = colours.muted;
    context.lineWidth = 1;
    context.textAlign = "right";
    context.textBaseline = "middle";
    for (const tick of niceTicks(yLow, yHigh, Math.max(2, Math.floor(plotHeight / 40)))) {
      const y = Math.round(yOf(tick)) + 0.5;
      context.beginPath();
      context.moveTo(left, y);
      context.lineTo(left + plotWidth, y);
      context.stroke();
      context.fillText(significant(tick), left - 6, y);
    }
    context.textAlign = "center";
    context.textBaseline = "top";
    const xTicks = store.config.time_axis
      ? timeTicks(x0, x1, Math.max(2, Math.floor(plotWidth / 90)), store.config.utc)
      : niceTicks(x0, x1, Math.max(2, Math.floor(plotWidth / 90))).map((value) => [value, significant(value)]);
    for (const [value, label] of xTicks) {
      const x = Math.round(left + (value - x0) * scale) + 0.5;
      context.beginPath();
      context.moveTo(x, top);
      context.lineTo(x, top + plotHeight);
      context.stroke();
      context.fillText(label, x, top + plotHeight + 5);
    }
    // the data
    context.save();
    context.beginPath();
    context.rect(left, top, plotWidth, plotHeight);
    context.clip();
    for (const { series, mins, maxs } of binned) {
      context.strokeStyle = context.fillStyle = series.colour;
      context.lineWidth = 1.5;
      context.beginPath();
      let drawing = false;
      for (let c = 0; c < columns; c++) {
        if (mins[c] === Infinity) continue;
        const x = left + c + 0.5;
        const low = yOf(mins[c]);
        const high = yOf(maxs[c]);
        if (store.config.chart_kind === "scatter") {
          context.fillRect(x - 1.5, low - 1.5, 3, 3);
          if (high !== low) context.fillRect(x - 1.5, high - 1.5, 3, 3);
        } else if (store.config.chart_kind === "bar") {
          context.moveTo(x, yOf(0));
          context.lineTo(x, Math.abs(maxs[c]) > Math.abs(mins[c]) ? high : low);
        } else {
          if (!drawing) context.moveTo(x, low);
          else context.lineTo(x, low);
          if (high !== low) context.lineTo(x, high);
          drawing = true;
        }
      }
      context.stroke();
    }
    context.restore();
  }

  drawLegend(store) {
    const key = [...store.series.keys()].join("\n") + [...store.series.values()].map((s) => s.hidden).join();
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legend.replaceChildren();
    for (const [topic, series] of store.series) {
      const item = element("span", "rtnb-legend-item" + (series.hidden ? " rtnb-hidden" : ""));
      const swatch = element("span", "rtnb-swatch");
      swatch.style.background = series.colour;
      item.append(swatch, document.createTextNode(topic));
      item.title = "Click to hide or show";
      item.onclick = () => {
        series.hidden = !series.hidden;
        this.needsDraw = true;
      };
      this.legend.appendChild(item);
    }
  }

  destroy() {
    this.resizer.disconnect();
    super.destroy();
  }
}

function niceTicks(low, high, count) {
  const span = high - low;
  if (!(span > 0)) return [low];
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  const ticks = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) ticks.push(Math.abs(value) < step * 1e-9 ? 0 : value);
  return ticks;
}

const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(low, high, count, utc) {
  const raw = (high - low) / count;
  const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  const offset = utc ? 0 : -new Date(low * 1000).getTimezoneOffset() * 60; // ticks on round local times
  const ticks = [];
  for (let value = Math.ceil((low + offset) / step) * step - offset; value <= high; value += step) {
    const date = new Date(value * 1000);
    const parts = utc
      ? [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
      : [date.getHours(), date.getMinutes(), date.getSeconds()];
    let label = parts.map((part) => String(part).padStart(2, "0")).join(":");
    if (step < 1) label += "." + String(utc ? date.getUTCMilliseconds() : date.getMilliseconds()).padStart(3, "0");
    if (step >= 60) label = label.slice(0, 5);
    ticks.push([value, label]);
  }
  return ticks;
}

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
      const th = element("th", "rtnb-sortable", column);
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
        tr.appendChild(element("td", "", column === "time" ? clockTime(value) : cellText(value)));
      }
      body.appendChild(tr);
    }
    this.table.replaceChildren(head, body);
    this.root.dataset.rtnbRowsShown = String(rows.length);
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
    this.update();
    this.timer = setInterval(() => this.update(), this.config.interval_ms || 500);
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
    this.table.replaceChildren(...rows);
    // the panel holds no window and needs no data path: it reports its views'
    this.root.dataset.rtnbPoints = String(points);
    this.root.dataset.rtnbMode = relay ? "relay" : "direct";
  }

  destroy() {
    clearInterval(this.timer);
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
  if (kind === "status" || kind === "control") {
    const panel = kind === "status" ? new StatusRender(model, el) : new ControlRender(model, el);
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
