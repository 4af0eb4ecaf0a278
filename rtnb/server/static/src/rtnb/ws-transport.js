// The WebSocket transport (/ws): subscriptions with resume, acknowledged requests,
// checkpoints that keep resumes small, and retries of subscriptions the hub refused.
// Like every transport, it calls client._opened(this), client._received(object) and
// client._lost(this) and offers start(), stop(), resubscribe() and publish().

import { backoffDelay } from "./backoff.js";
import { hubError } from "./errors.js";
import { topicMatches } from "./topics.js";

/** Topics known before a WebSocket asks for checkpoints (below, the full `since` map is small). */
const CHECKPOINT_MIN_TOPICS = 256;
/** Topics moved after the last checkpoint that make a new one due. */
const CHECKPOINT_RENEW_TOPICS = 64;
/** Milliseconds between two checkpoint requests at most (each costs the hub a cursor record). */
const CHECKPOINT_INTERVAL = 1000;

export class WebSocketTransport {
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
