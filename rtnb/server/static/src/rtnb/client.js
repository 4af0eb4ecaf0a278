// RtnbClient: subscriptions, positions and resume, the offline publish queue, and the
// choice of transport with fallback and reconnection.

import { backoffDelay } from "./backoff.js";
import { INLINE_CURSOR_LIMIT, decodeCursor, encodeCursor } from "./cursor.js";
import { hubError } from "./errors.js";
import { LongPollTransport } from "./poll-transport.js";
import { EventSourceTransport } from "./sse-transport.js";
import { topicMatches } from "./topics.js";
import { WebSocketTransport } from "./ws-transport.js";

export const STATUS = Object.freeze({ CONNECTING: "connecting", OPEN: "open", CLOSED: "closed" });

const DEFAULTS = Object.freeze({
  transports: ["ws", "sse", "poll"],
  backoff: { initial: 250, max: 10000, factor: 2, jitter: 0.5 },
  openTimeout: 5000,     // ms a transport may take to open before the next one is tried
  maxQueue: 1000,        // publishes kept while offline; the oldest is dropped past it
  pollTimeout: 25,       // seconds a long poll waits on the hub
  publishTimeout: 10000, // ms to wait for a publish acknowledgement
  token: null,           // sent as ?token= (WebSocket, SSE) or Authorization: Bearer (HTTP)
  autoConnect: true,
});

const TRANSPORTS = { ws: WebSocketTransport, sse: EventSourceTransport, poll: LongPollTransport };

export class RtnbClient extends EventTarget {
  /**
   * @param {string} [url] the hub's base URL ("http://host:8765", "/rtnb"); by default the hub that served rtnb.js.
   * @param {object} [options] see DEFAULTS above and docs/browser.md.
   */
  constructor(url, options = {}) {
    super();
    // import.meta.url: the bundle's own address (rtnb.js), once built; see index.js.
    const base = url ?? new URL(".", import.meta.url).href;
    this.baseUrl = new URL(base, globalThis.location?.href).href.replace(/\/+$/, "");
    this.options = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...(options.backoff || {}) } };
    for (const name of this.options.transports) {
      if (!TRANSPORTS[name]) throw new Error(`Unknown transport ${name}; use ws, sse or poll.`);
    }
    this.status = STATUS.CLOSED;
    this.transport = null;             // name of the transport in use: "ws" | "sse" | "poll"
    this.positions = new Map();         // topic -> [epoch, last offset seen]
    this.subscriptions = new Map();     // pattern -> {last}
    this.queue = [];                    // publishes waiting for a connection
    this.attempts = 0;                  // failed passes since the last open
    this.clientId = null;               // the hub's id for this connection (WebSocket), as presence names it
    this._serverCursor = null;          // the last cursor an SSE id or a poll gave
    this._checkpoint = null;            // WebSocket: {cursor, patterns, moved} of the hub's last checkpoint
    this._epochUnknown = new Set();     // topics reset (epoch_changed) whose new epoch is not known yet
    this._httpPublishes = Promise.resolve(); // HTTP publishes, chained to keep their order
    this._active = null;
    this._preferred = 0;
    this._index = 0;
    this._timer = null;
    this._openTimer = null;
    this._closedByUser = !this.options.autoConnect;
    // Deferred so that listeners and subscriptions added right after construction are in
    // place; skipped when close() came first (React StrictMode mounts, unmounts, remounts).
    if (this.options.autoConnect) queueMicrotask(() => this._closedByUser || this.connect());
  }

  /** Listen to "message", "gap", "error", "status"; returns a function that stops listening. */
  on(type, handler) {
    // Called directly, not through a CustomEvent: at 100k messages/s an event per message costs the
    // page more than parsing them. EventTarget listeners (addEventListener) still get events.
    this._handlers ??= new Map();
    let handlers = this._handlers.get(type);
    if (!handlers) this._handlers.set(type, (handlers = []));
    const entry = { handler };
    handlers.push(entry);
    return () => {
      const index = handlers.indexOf(entry);
      if (index >= 0) handlers.splice(index, 1);
    };
  }

  addEventListener(type, listener, options) {
    this._listening ??= new Map();
    this._listening.set(type, (this._listening.get(type) || 0) + 1); // an upper bound: duplicates count too
    super.addEventListener(type, listener, options);
  }

  _emit(type, detail) {
    const handlers = this._handlers?.get(type);
    if (handlers?.length) {
      for (const { handler } of handlers.length === 1 ? handlers : [...handlers]) {
        try {
          handler(detail);
        } catch (error) {
          // as an event listener's error would be: reported, and the other listeners still called
          if (typeof globalThis.reportError === "function") globalThis.reportError(error);
          else setTimeout(() => { throw error; });
        }
      }
    }
    if (this._listening?.get(type)) this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setStatus(status) {
    if (this.status === status && (status !== STATUS.OPEN || this._announced === this.transport)) return;
    this.status = status;
    this._announced = status === STATUS.OPEN ? this.transport : null;
    this._emit("status", { status, transport: this.transport, attempts: this.attempts });
  }

  /** Start connecting (done automatically unless autoConnect is false). */
  connect() {
    this._closedByUser = false;
    if (this._active || this._timer) return this;
    this._index = this._preferred;
    this._attempt();
    return this;
  }

  _attempt() {
    this._timer = null;
    if (this._closedByUser) return;
    const name = this.options.transports[this._index];
    const transport = (this._active = new TRANSPORTS[name](this));
    this.transport = name;
    this._setStatus(STATUS.CONNECTING);
    clearTimeout(this._openTimer);
    this._openTimer = setTimeout(() => {
      if (this._active === transport && this.status !== STATUS.OPEN) {
        transport.stop();
        this._lost(transport);
      }
    }, this.options.openTimeout);
    try {
      transport.start();
    } catch (error) {
      queueMicrotask(() => this._lost(transport)); // e.g. WebSocket refused by a policy
    }
  }

  _opened(transport, clientId = null) {
    if (transport !== this._active) return;
    clearTimeout(this._openTimer);
    this.clientId = clientId;
    transport.wasOpen = true;
    this.attempts = 0;
    this._preferred = this.options.transports.indexOf(transport.name);
    this._setStatus(STATUS.OPEN);
    this._flushQueue();
  }

  _lost(transport) {
    if (transport !== this._active) return;
    clearTimeout(this._openTimer);
    this._active = null;
    if (this._closedByUser) return;
    this._setStatus(STATUS.CLOSED);
    const names = this.options.transports;
    const next = (this._index + 1) % names.length;
    if (!transport.wasOpen && next !== this._preferred) {
      // This transport could not open: fall back to the next one at once.
      this._index = next;
      this._timer = setTimeout(() => this._attempt(), 50);
      return;
    }
    // A full pass failed, or an open connection dropped: back off, then start over.
    const delay = backoffDelay(this.attempts, this.options.backoff);
    this.attempts += 1;
    this._index = this._preferred;
    this._timer = setTimeout(() => this._attempt(), delay);
  }

  /** Stop for good: no reconnection; queued publishes are rejected. */
  close() {
    this._closedByUser = true;
    clearTimeout(this._timer);
    clearTimeout(this._openTimer);
    this._timer = null;
    const transport = this._active;
    this._active = null;
    if (transport) transport.stop();
    for (const item of this.queue.splice(0)) item.reject(hubError("closed", "The client was closed."));
    this._setStatus(STATUS.CLOSED);
  }

  /**
   * Use a new token from now on. On an open WebSocket it is sent as an `auth` request,
   * which extends the connection (a hub with --auth jwt closes it with 4004 when its
   * token expires); SSE, polls and HTTP publishes carry it on their next request.
   */
  authenticate(token) {
    this.options.token = token;
    const transport = this._active;
    if (transport && transport.name === "ws" && this.status === STATUS.OPEN) transport.send({ op: "auth", token });
    return this;
  }

  /**
   * Who is subscribed to what `pattern` names (a topic, or a pattern: every client listening
   * inside it), on this hub or, with Redis, the cluster: resolves with `[{client, hub?}]`.
   * `watch: true` also emits "join" and "leave" events ({topic, client, hub?}) until
   * `watch: false` or the connection ends (ask again after a reconnect). WebSocket only.
   */
  presence(pattern, { watch } = {}) {
    const transport = this._active;
    if (!transport || transport.name !== "ws" || this.status !== STATUS.OPEN) {
      return Promise.reject(hubError("unavailable", "Presence needs an open WebSocket connection."));
    }
    const frame = { op: "presence", topic: pattern };
    if (watch !== undefined) frame.watch = watch;
    return transport.request(frame, `No answer to the presence request for ${pattern} in time.`);
  }

  /**
   * Receive messages on `pattern` (MQTT-style). `last`: replay that many retained
   * messages per topic the first time. `since`: positions saved earlier (a Map or an
   * object topic -> [epoch, offset], as `positions` holds them) to resume from, for the
   * topics this client has no position of yet. Resumes after a reconnect are automatic.
   */
  subscribe(pattern, { last = 0, since } = {}) {
    if (this.subscriptions.has(pattern)) return this;
    for (const [topic, position] of since instanceof Map ? since : Object.entries(since || {})) {
      if (topicMatches(pattern, topic) && !this.positions.has(topic)) this.positions.set(topic, position);
    }
    this.subscriptions.set(pattern, { last });
    if (this._active && this.status === STATUS.OPEN) this._active.resubscribe([pattern], []);
    return this;
  }

  unsubscribe(pattern) {
    if (!this.subscriptions.delete(pattern)) return this;
    for (const topic of [...this.positions.keys()]) {
      if (topicMatches(pattern, topic) && ![...this.subscriptions.keys()].some((p) => topicMatches(p, topic))) {
        this.positions.delete(topic);
      }
    }
    for (const topic of this._epochUnknown) {
      if (![...this.subscriptions.keys()].some((p) => topicMatches(p, topic))) this._epochUnknown.delete(topic);
    }
    if (this._active && this.status === STATUS.OPEN) this._active.resubscribe([], [pattern]);
    return this;
  }

  /**
   * Publish `data` on `topic`. Resolves with {topic, offset, epoch} once the hub has it.
   * While offline the publish waits in a bounded queue (options.maxQueue); past the
   * bound the oldest waiting publish is rejected with code "queue_full".
   */
  publish(topic, data) {
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, data, resolve, reject });
      if (this.queue.length > this.options.maxQueue) {
        this.queue.shift().reject(hubError("queue_full", "The offline publish queue is full; the oldest publish was dropped."));
      }
      if (this.status === STATUS.OPEN) this._flushQueue();
    });
  }

  _flushQueue() {
    const transport = this._active;
    while (this.queue.length && transport && this.status === STATUS.OPEN) {
      const item = this.queue.shift();
      transport.publish(item.topic, item.data).then(item.resolve, item.reject);
    }
  }

  /**
   * The cursor to resume with: the hub's last cursor merged with every position seen since.
   * A stored cursor ("~ID", issued past a few KiB of positions) cannot be merged: it is sent
   * as it is, unless the positions seen fit a small cursor of their own (what the hub sends
   * again is dropped as already delivered).
   */
  _cursor() {
    const stored = this._serverCursor && this._serverCursor.startsWith("~");
    const merged = this._serverCursor && !stored ? decodeCursor(this._serverCursor) : new Map();
    for (const [topic, position] of merged) {
      if (![...this.subscriptions.keys()].some((pattern) => topicMatches(pattern, topic))) merged.delete(topic);
    }
    for (const [topic, [epoch, offset]] of this.positions) {
      const known = merged.get(topic);
      if (!known || known[0] !== epoch || known[1] < offset) merged.set(topic, [epoch, offset]);
    }
    const own = merged.size ? encodeCursor(merged) : null;
    if (stored && (own === null || own.length > INLINE_CURSOR_LIMIT)) return this._serverCursor;
    return own;
  }

  _received(frame) {
    switch (frame.op) {
      case "message": {
        const known = this.positions.get(frame.topic);
        if (known && known[0] === frame.epoch && frame.offset <= known[1]) return; // already delivered
        this.positions.set(frame.topic, [frame.epoch, frame.offset]);
        this._epochUnknown.delete(frame.topic);
        this._checkpoint?.moved.add(frame.topic);
        this._emit("message", frame);
        return;
      }
      case "gap":
        if (Array.isArray(frame.gaps)) {
          // The coalesced form: [[topic, from, to, reason, epoch], ...], each a gap of its own.
          for (const [topic, from, to, reason, epoch] of frame.gaps) {
            const single = { op: "gap", topic, from, to, reason };
            if (epoch !== null && epoch !== undefined) single.epoch = epoch;
            this._received(single);
          }
          return;
        }
        if (frame.epoch === undefined) {
          this.positions.delete(frame.topic);
          this._epochUnknown.add(frame.topic);
        } else {
          this.positions.set(frame.topic, [frame.epoch, frame.to ?? 0]);
          this._epochUnknown.delete(frame.topic);
        }
        this._checkpoint?.moved.add(frame.topic);
        this._emit("gap", frame);
        return;
      case "error": {
        const detail = { code: frame.code, message: frame.message };
        if (frame.pattern !== undefined) Object.assign(detail, { pattern: frame.pattern, retrying: frame.retrying });
        this._emit("error", detail);
        return;
      }
      case "subscribed":
        // Where the subscription starts on each matching topic: remembered so that a
        // resume also covers topics that have sent nothing yet.
        for (const [topic, { offset, epoch }] of Object.entries(frame.positions || {})) {
          const known = this.positions.get(topic);
          if (!known || known[0] !== epoch || known[1] < offset) {
            this.positions.set(topic, [epoch, offset]);
            this._epochUnknown.delete(topic);
            this._checkpoint?.moved.add(topic);
          }
        }
        this._emit("subscribed", frame);
        return;
      default:
        this._emit(frame.op, frame); // welcome, subscribed, unsubscribed, pong...
    }
  }
}
