// rtnb views, part 3 of 5: the feed (direct from the hub, or relayed by the kernel) and the
// renderer base class that draws a store at most ~30 times a second.

// -- the feed: direct from the hub, or relayed by the kernel -------------------------------

/** Where the page reaches the hub: the extension's path on this origin, Colab's port proxy, or the URL. */
async function hubBase(hub) {
  if (!hub.url) return new URL(hub.path, globalThis.location.origin).href;
  const colab = globalThis.google?.colab?.kernel;
  const url = new URL(hub.url);
  if (colab && typeof colab.proxyPort === "function" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
    // Colab serves the page from its own origin; a port on the kernel's machine is reached through its proxy
    return String(await colab.proxyPort(Number(url.port), { cache: false })).replace(/\/+$/, "") + url.pathname;
  }
  return hub.url;
}

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

  hubBase() {
    return hubBase(this.hub);
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
    // the clock once per 256 messages at most (it costs more than the rest of a message at 100k/s)
    if ((this.rateWindow.count & 255) < n || n > 1) this.rollRate(performance.now());
  }

  rollRate(now) {
    const elapsed = now - this.rateWindow.at;
    if (elapsed >= 1000) {
      this.rate = (this.rateWindow.count * 1000) / elapsed;
      this.rateWindow = { at: now, count: 0 };
    }
  }

  stats() {
    const now = performance.now();
    this.rollRate(now);
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
