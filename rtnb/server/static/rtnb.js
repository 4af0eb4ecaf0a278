// rtnb.js — the browser client of an rtnb hub. A dependency-free ES module.
//
//   import { RtnbClient } from "/rtnb.js";
//   const client = new RtnbClient();                 // the hub that served this file
//   client.on("message", (m) => console.log(m.topic, m.offset, m.data));
//   client.subscribe("plant/+/temp", { last: 100 });
//   await client.publish("plant/boiler/cmd", { setpoint: 80 });
//
// Transports, tried in order until one opens: WebSocket (/ws), Server-Sent
// Events (/sse) and long polling (/poll); publishing without WebSocket uses
// POST /publish/<topic>. Reconnection uses exponential backoff with jitter and
// a cap, and resumes from the last offset seen per topic (with its epoch), so
// nothing is lost silently: what the hub no longer holds arrives as a "gap"
// event. Publishes made while offline wait in a bounded queue.
// See docs/browser.md.

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

/** True when the concrete `topic` is selected by the MQTT-style `pattern` (`+`, `#`). */
export function topicMatches(pattern, topic) {
  if (pattern === topic) return true;
  const want = pattern.split("/");
  const have = topic.split("/");
  if (topic.startsWith("$") && (want[0] === "+" || want[0] === "#")) return false;
  for (let index = 0; index < want.length; index++) {
    if (want[index] === "#") return true;
    if (index >= have.length) return false;
    if (want[index] !== "+" && want[index] !== have[index]) return false;
  }
  return want.length === have.length;
}

/**
 * Milliseconds to wait before reconnection pass number `attempts` (0 first):
 * min(max, initial * factor^attempts), less up to `jitter` of it at random.
 */
export function backoffDelay(attempts, { initial, max, factor, jitter }, random = Math.random) {
  return Math.min(max, initial * factor ** attempts) * (1 - jitter * random());
}

function base64UrlEncode(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (character) => character.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The resume cursor for positions (Map topic -> [epoch, offset]); the format SSE ids and polls use. */
export function encodeCursor(positions) {
  return base64UrlEncode(JSON.stringify(Object.fromEntries(positions)));
}

/** Positions (Map topic -> [epoch, offset]) from a cursor the hub issued; an empty Map if unreadable. */
export function decodeCursor(cursor) {
  try {
    const value = JSON.parse(base64UrlDecode(cursor));
    return new Map(Object.entries(value).filter(([, position]) => Array.isArray(position) && position.length === 2));
  } catch (error) {
    return new Map();
  }
}

/** Longest cursor this client builds itself; past it, it resumes from the hub's stored cursor. */
const INLINE_CURSOR_LIMIT = 2048;
/** Topics known before a WebSocket asks for checkpoints (below, the full `since` map is small). */
const CHECKPOINT_MIN_TOPICS = 256;
/** Topics moved after the last checkpoint that make a new one due. */
const CHECKPOINT_RENEW_TOPICS = 64;
/** Milliseconds between two checkpoint requests at most (each costs the hub a cursor record). */
const CHECKPOINT_INTERVAL = 1000;

function topicPath(topic) {
  return topic.split("/").map(encodeURIComponent).join("/");
}

function hubError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}

// -- transports ------------------------------------------------------------------------
// Each transport calls client._opened(this), client._received(object) and
// client._lost(this) and offers start(), stop(), resubscribe() and publish().

class WebSocketTransport {
  constructor(client) {
    this.name = "ws";
    this.client = client;
    this.pending = new Map(); // request id (publish, presence) -> {resolve, reject, timer}
    this.subscribing = new Map(); // subscribe id -> pattern, until the hub answers
    this.refusals = new Map(); // pattern -> refusals in a row ("unavailable": its backplane is down)
    this.retries = new Set(); // timers of refused subscriptions asked again
    this.nextId = 1;
    this.socket = null;
    this.checkpointing = null; // id of the checkpoint request in flight
    this.checkpointsRefused = false; // an older hub: resume with full maps
    this.checkpointNotBefore = 0;
    this.checkpointTimer = null; // a request due before checkpointNotBefore waits on it
  }

  start() {
    const client = this.client;
    let url = client.baseUrl.replace(/^http/, "ws") + "/ws";
    if (client.options.token) url += "?token=" + encodeURIComponent(client.options.token);
    const socket = (this.socket = new WebSocket(url));
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      for (const line of event.data.split("\n")) {
        if (line) this.handle(JSON.parse(line));
      }
    };
    socket.onclose = () => this.ended();
    socket.onerror = () => {}; // a close event always follows
  }

  handle(frame) {
    const client = this.client;
    switch (frame.op) {
      case "welcome":
        for (const [pattern, options] of client.subscriptions) this.sendSubscribe(pattern, options);
        client._opened(this, frame.client);
        return;
      case "ack":
        this.takePending(frame.id)?.resolve({ topic: frame.topic, offset: frame.offset, epoch: frame.epoch });
        return;
      case "presence": {
        const waiting = this.takePending(frame.id);
        if (waiting) waiting.resolve(frame.members);
        else client._received(frame);
        return;
      }
      case "subscribed":
        if (this.subscribing.delete(frame.id)) this.refusals.delete(frame.topic);
        client._received(frame);
        this.checkpointIfDue();
        return;
      case "checkpoint":
        // In stream order: the positions seen so far are exactly the cursor's.
        if (frame.id === this.checkpointing) this.checkpointing = null;
        if (typeof frame.cursor === "string") {
          // Topics whose new epoch is not known yet stay in the delta: the cursor may name the old one.
          const moved = new Set(client._epochUnknown);
          client._checkpoint = { cursor: frame.cursor, patterns: new Set(frame.patterns || []), moved };
        }
        this.checkpointIfDue(); // still due (no cursor while catching up, or moved meanwhile): later
        return;
      case "error": {
        if (frame.id !== undefined && frame.id === this.checkpointing) {
          this.checkpointing = null;
          if (frame.code === "unknown_op") this.checkpointsRefused = true;
          return;
        }
        if (frame.id !== undefined && this.subscribing.has(frame.id)) {
          const pattern = this.subscribing.get(frame.id);
          this.subscribing.delete(frame.id);
          if (frame.code === "cursor_expired") {
            // The hub no longer holds the checkpoint: ask again with the full map.
            client._checkpoint = null;
            const options = client.subscriptions.get(pattern);
            if (options) this.sendSubscribe(pattern, options);
            return;
          }
          if (frame.code === "unavailable") {
            // The hub cannot take it now (e.g. its Redis is down): keep it and ask again
            // with backoff; it resumes from the positions seen, so nothing is lost.
            this.retrySubscribe(pattern);
            client._received({ ...frame, pattern, retrying: true });
            return;
          }
        }
        const waiting = this.takePending(frame.id);
        if (waiting) waiting.reject(hubError(frame.code, frame.message));
        else client._received(frame);
        return;
      }
      case "message":
      case "gap":
        client._received(frame);
        this.checkpointIfDue();
        return;
      default:
        client._received(frame);
    }
  }

  /**
   * Ask the hub for a checkpoint (a stored cursor of a few dozen bytes) when the full
   * `since` map would be large and enough topics moved after the last one, so that a
   * resume sends the cursor and only those topics.
   */
  checkpointIfDue() {
    const client = this.client;
    if (this.checkpointing !== null || this.checkpointsRefused || client.positions.size < CHECKPOINT_MIN_TOPICS) return;
    const checkpoint = client._checkpoint;
    if (checkpoint && checkpoint.moved.size < CHECKPOINT_RENEW_TOPICS) return;
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    const wait = this.checkpointNotBefore - Date.now();
    if (wait > 0) {
      // Due sooner than allowed: ask then, so that a burst which stops leaves no large delta.
      this.checkpointTimer ??= setTimeout(() => {
        this.checkpointTimer = null;
        this.checkpointIfDue();
      }, wait);
      return;
    }
    this.checkpointNotBefore = Date.now() + CHECKPOINT_INTERVAL;
    this.checkpointing = "c" + this.nextId++;
    this.send({ op: "checkpoint", id: this.checkpointing });
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  sendSubscribe(pattern, options) {
    const since = {};
    let known = false;
    for (const [topic, [epoch, offset]] of this.client.positions) {
      if (topicMatches(pattern, topic)) {
        since[topic] = { offset, epoch };
        known = true;
      }
    }
    const id = "s" + this.nextId++;
    const frame = { op: "subscribe", topic: pattern, id };
    const checkpoint = this.client._checkpoint;
    if (known && checkpoint && checkpoint.patterns.has(pattern)) {
      // Bounded resume: the checkpoint's cursor plus the topics that moved after it.
      const delta = {};
      let moved = false;
      for (const topic of checkpoint.moved) {
        if (!topicMatches(pattern, topic)) continue;
        const position = this.client.positions.get(topic);
        // No position: a new epoch began, of unknown identity; from its start.
        delta[topic] = position ? { offset: position[1], epoch: position[0] } : { offset: 0 };
        moved = true;
      }
      frame.since = checkpoint.cursor;
      if (moved) frame.delta = delta;
    } else if (known) frame.since = since;
    else if (options.last) frame.last = options.last;
    this.subscribing.set(id, pattern);
    this.send(frame);
  }

  retrySubscribe(pattern) {
    const refusals = (this.refusals.get(pattern) || 0) + 1;
    this.refusals.set(pattern, refusals);
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      const options = this.client.subscriptions.get(pattern);
      if (options && this.socket && this.socket.readyState === WebSocket.OPEN) this.sendSubscribe(pattern, options);
    }, backoffDelay(refusals - 1, this.client.options.backoff));
    this.retries.add(timer);
  }

  resubscribe(added, removed) {
    for (const pattern of removed) this.send({ op: "unsubscribe", topic: pattern });
    for (const pattern of added) this.sendSubscribe(pattern, this.client.subscriptions.get(pattern));
  }

  publish(topic, data) {
    return this.request({ op: "publish", topic, data }, `No acknowledgement for the publish to ${topic} in time.`);
  }

  /** Send `frame` with a fresh id; settled by the hub's reply carrying that id (see handle). */
  request(frame, timeoutMessage) {
    return new Promise((resolve, reject) => {
      const id = "p" + this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(hubError("timeout", timeoutMessage));
      }, this.client.options.publishTimeout);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ ...frame, id });
    });
  }

  takePending(id) {
    const waiting = id === undefined ? undefined : this.pending.get(id);
    if (waiting) {
      this.pending.delete(id);
      clearTimeout(waiting.timer);
    }
    return waiting;
  }

  ended() {
    this.checkpointing = null;
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = null;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    this.subscribing.clear();
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(hubError("closed", "The connection closed before the hub answered the request."));
    }
    this.pending.clear();
    if (this.socket) {
      this.socket = null;
      this.client._lost(this);
    }
  }

  stop() {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = socket.onmessage = null;
      socket.close(1000);
    }
    this.ended();
  }
}

/**
 * Publishing over HTTP, shared by the SSE and long-polling transports. Requests go one
 * after the other, so messages keep the order in which publish() was called.
 */
function publishOverHttp(client, topic, data) {
  const send = () => postOnce(client, topic, data);
  const result = client._httpPublishes.then(send, send);
  client._httpPublishes = result.catch(() => {});
  return result;
}

async function postOnce(client, topic, data) {
  const headers = { "Content-Type": "application/json" };
  if (client.options.token) headers.Authorization = "Bearer " + client.options.token;
  let response;
  try {
    response = await fetch(client.baseUrl + "/publish/" + topicPath(topic), {
      method: "POST",
      headers,
      body: JSON.stringify(data),
    });
  } catch (error) {
    throw hubError("unavailable", `The hub could not be reached to publish to ${topic}.`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw hubError(body.error?.code ?? "error", body.error?.message ?? response.statusText);
  return body;
}

function streamQuery(client, { cursor, last }) {
  const parts = [...client.subscriptions.keys()].map((pattern) => "topic=" + encodeURIComponent(pattern));
  if (cursor) parts.push("cursor=" + cursor);
  if (last) parts.push("last=" + last);
  if (client.options.token) parts.push("token=" + encodeURIComponent(client.options.token));
  return parts.join("&");
}

function largestLast(client) {
  let last = 0;
  for (const options of client.subscriptions.values()) last = Math.max(last, options.last || 0);
  return last;
}

class EventSourceTransport {
  constructor(client) {
    this.name = "sse";
    this.client = client;
    this.source = null;
  }

  start() {
    const client = this.client;
    if (client.subscriptions.size === 0) {
      client._opened(this); // nothing to listen to yet; publishing works over HTTP
      return;
    }
    const cursor = client._cursor();
    const query = streamQuery(client, { last: largestLast(client) });
    const url = client.baseUrl + "/sse?" + query + (cursor ? "&lastEventId=" + cursor : "");
    const source = (this.source = new EventSource(url));
    const take = (event) => {
      if (event.lastEventId) client._serverCursor = event.lastEventId;
      client._received(JSON.parse(event.data));
    };
    source.addEventListener("message", take);
    source.addEventListener("gap", take);
    source.addEventListener("error", (event) => {
      if (event.data) take(event); // the hub's error event; a network error has no data
      else this.ended();
    });
    source.addEventListener("ready", (event) => {
      if (event.lastEventId) client._serverCursor = event.lastEventId;
      client._opened(this);
    });
  }

  resubscribe() {
    this.restart();
  }

  restart() {
    const source = this.source;
    this.source = null;
    if (source) source.close();
    this.start();
  }

  publish(topic, data) {
    return publishOverHttp(this.client, topic, data);
  }

  ended() {
    const source = this.source;
    if (!source) return;
    this.source = null;
    source.close(); // the client reconnects itself, with backoff and the cursor
    this.client._lost(this);
  }

  stop() {
    const source = this.source;
    this.source = null;
    if (source) source.close();
  }
}

class LongPollTransport {
  constructor(client) {
    this.name = "poll";
    this.client = client;
    this.controller = null;
    this.running = false;
  }

  start() {
    this.running = true;
    this.loop();
  }

  async loop() {
    const client = this.client;
    let first = true;
    while (this.running) {
      if (client.subscriptions.size === 0) {
        client._opened(this);
        return;
      }
      const controller = (this.controller = new AbortController());
      const cursor = client._cursor();
      const timeout = first ? 0 : client.options.pollTimeout;
      const query = streamQuery(client, { cursor, last: largestLast(client) });
      let body;
      try {
        const response = await fetch(client.baseUrl + "/poll?" + query + "&timeout=" + timeout, {
          signal: controller.signal,
          cache: "no-store",
        });
        body = await response.json();
        if (!response.ok) {
          client._received({ op: "error", code: body.error?.code, message: body.error?.message });
          throw new Error(body.error?.message);
        }
      } catch (error) {
        if (controller.signal.aborted && this.running) continue; // resubscribed: poll again at once
        if (this.running) {
          this.running = false;
          client._lost(this);
        }
        return;
      }
      if (!this.running || controller !== this.controller) continue;
      client._serverCursor = body.cursor;
      for (const item of body.messages) client._received(item);
      if (first) {
        first = false;
        client._opened(this);
      }
    }
  }

  resubscribe() {
    if (this.controller) this.controller.abort();
    else if (this.running) this.loop();
  }

  publish(topic, data) {
    return publishOverHttp(this.client, topic, data);
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  }
}

const TRANSPORTS = { ws: WebSocketTransport, sse: EventSourceTransport, poll: LongPollTransport };

// -- the client ------------------------------------------------------------------------

export class RtnbClient extends EventTarget {
  /**
   * @param {string} [url] the hub's base URL ("http://host:8765", "/rtnb"); by default the hub that served rtnb.js.
   * @param {object} [options] see DEFAULTS above and docs/browser.md.
   */
  constructor(url, options = {}) {
    super();
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
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
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

/**
 * Join a WebRTC room whose peers signal over this hub's topics (rtnb-rtc.js, beside this
 * file, loaded on first use so that rtnb.js stays small): see docs/browser.md.
 */
export function rtcPeer(client, room, options) {
  return import(new URL("./rtnb-rtc.js", import.meta.url).href).then((rtc) => rtc.rtcPeer(client, room, options));
}

export default RtnbClient;
