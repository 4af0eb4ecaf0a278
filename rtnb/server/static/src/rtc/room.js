// RtcRoom: joining a room, the signals of its peers, presence, and one RtcLink per peer.

import { rtcError } from "./errors.js";
import { RtcLink } from "./link.js";
import { isPolite, randomId, roomTopics } from "./names.js";

function whenOpen(client) {
  if (client.status === "open") return Promise.resolve();
  return new Promise((resolve) => {
    const stop = client.on("status", ({ status }) => {
      if (status === "open") {
        stop();
        resolve();
      }
    });
  });
}

/** A room joined by rtcPeer(): one RtcLink per other peer. Events: see docs/browser.md. */
export class RtcRoom extends EventTarget {
  constructor(client, room, id, config) {
    super();
    this.client = client;
    this.room = room;
    this.id = id;
    this.config = config;
    this.topics = roomTopics(room, id);
    this.peers = new Map();       // peer id -> RtcLink
    this.clients = new Map();     // peer id -> the hub's client id it said hello from
    this.sessions = new Map();    // peer id -> its session: a new one means it joined again
    this.session = randomId();
    this.members = [];            // presence on rtc/<room>/all: [{client, hub?}]
    this.streams = [];            // local media streams sent to every peer
    this.left = false;
    this._stops = [];
    this._held = [];              // signals received before rtcPeer() resolved; null after
  }

  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async _join() {
    const { client, topics } = this;
    await whenOpen(client);
    if (client.transport !== "ws") {
      throw rtcError("unavailable", "rtcPeer needs the client on WebSocket: presence is not offered over SSE or polling.");
    }
    this._stops.push(
      client.on("message", (message) => {
        if (message.topic === topics.all || message.topic === topics.inbox) this._signal(message.data);
      }),
      client.on("leave", (event) => event.topic === topics.all && this._left(event)),
      client.on("join", (event) => event.topic === topics.all && this.members.push({ client: event.client, hub: event.hub })),
    );
    await this._subscribe([topics.all, topics.inbox]);
    await this._announce();
    // After a reconnect the hub knows this peer under a new client id, without its watch.
    this._stops.push(
      client.on("status", ({ status }) => {
        if (status !== "open" || this.left) return;
        this._announce().catch((error) => this._emit("error", { code: error.code, message: error.message }));
      }),
    );
  }

  /** Subscribe to `patterns`; resolves when the hub confirmed them, rejects on a refusal. */
  _subscribe(patterns) {
    const client = this.client;
    const waiting = new Set(patterns.filter((pattern) => !client.subscriptions.has(pattern)));
    return new Promise((resolve, reject) => {
      if (waiting.size === 0) {
        resolve();
        return;
      }
      const stops = [
        client.on("subscribed", ({ topic }) => {
          waiting.delete(topic);
          if (waiting.size === 0) finish();
        }),
        client.on("error", ({ code, message }) => {
          if (code === "forbidden" || code === "unauthorized") finish(rtcError(code, message));
        }),
      ];
      const finish = (error) => {
        for (const stop of stops) stop();
        if (error) reject(error);
        else resolve();
      };
      for (const pattern of patterns) client.subscribe(pattern);
    });
  }

  /** Hello to the room (which proves this peer may publish there) and a presence watch. */
  async _announce() {
    const { client, topics } = this;
    await client.publish(topics.all, this._hello());
    this.members = await client.presence(topics.all, { watch: true });
  }

  _hello(direct = false) {
    return { type: "hello", from: this.id, client: this.client.clientId, session: this.session, direct };
  }

  _release() {
    const held = this._held;
    this._held = null;
    for (const signal of held) this._signal(signal);
  }

  _signal(signal) {
    if (!signal || typeof signal !== "object" || typeof signal.from !== "string" || signal.from === this.id) return;
    if (this.left) return;
    if (this._held) {
      this._held.push(signal);
      return;
    }
    const peer = signal.from;
    switch (signal.type) {
      case "hello": {
        const known = this.sessions.get(peer);
        if (known !== undefined && known !== signal.session) this._drop(peer); // it left and came back
        this.sessions.set(peer, signal.session);
        if (typeof signal.client === "string") this.clients.set(peer, signal.client);
        // Answer a newcomer in its inbox, so that it learns this peer too; a peer that
        // announces itself again after a reconnect (same session) needs no answer.
        if (!signal.direct && known !== signal.session) this._send(peer, this._hello(true));
        this._link(peer);
        return;
      }
      case "description":
      case "candidate":
        this._link(peer).receive(signal);
        return;
      case "bye":
        this._drop(peer);
        return;
      default:
        this._emit("error", { code: "bad_field", message: `Unknown signal ${JSON.stringify(signal.type)} from ${peer}.` });
    }
  }

  /** Publish a signal in `peer`'s inbox. */
  _send(peer, signal) {
    this.client.publish(this.topics.to(peer), { ...signal, from: this.id }).catch((error) => {
      this._emit("error", { code: error.code, message: error.message, peer });
    });
  }

  _link(peer) {
    let link = this.peers.get(peer);
    if (!link) {
      link = new RtcLink(this, peer, isPolite(this.id, peer));
      this.peers.set(peer, link);
      this._emit("peer", { peer, connection: link.connection });
    }
    return link;
  }

  _drop(peer) {
    const link = this.peers.get(peer);
    if (!link) return;
    this.peers.delete(peer);
    this.clients.delete(peer);
    this.sessions.delete(peer);
    link.close();
    this._emit("leave", { peer });
  }

  _left({ client }) {
    this.members = this.members.filter((member) => member.client !== client);
    for (const [peer, clientId] of this.clients) {
      const link = this.peers.get(peer);
      if (clientId === client && link && link.connection.connectionState !== "connected") this._drop(peer);
    }
  }

  /** The RTCPeerConnection to `peer` (by default the first peer's); null when there is none. */
  connection(peer) {
    const link = peer === undefined ? this.peers.values().next().value : this.peers.get(peer);
    return link ? link.connection : null;
  }

  /** Send a JSON value to `to` (a peer id) or every peer whose channel is open; returns how many. */
  send(data, { to } = {}) {
    let sent = 0;
    for (const link of this._targets(to)) if (link.sendData(data)) sent += 1;
    return sent;
  }

  /** Send a File or Blob (name, type) to `to` or every open peer; resolves when all is queued. */
  async sendFile(file, { to } = {}) {
    await Promise.all(this._targets(to).map((link) => link.sendFile(file)));
  }

  /** Send the tracks of a MediaStream (a camera) to every peer, present and future. */
  addStream(stream) {
    this.streams.push(stream);
    for (const link of this.peers.values()) link.addStream(stream);
  }

  _targets(to) {
    if (to === undefined) return [...this.peers.values()];
    const link = this.peers.get(to);
    return link ? [link] : [];
  }

  /** Say bye, close every connection and stop listening. */
  leave() {
    if (this.left) return;
    this.left = true;
    const { client, topics } = this;
    for (const stop of this._stops.splice(0)) stop();
    for (const peer of [...this.peers.keys()]) this._drop(peer);
    if (client.status === "open") {
      client.publish(topics.all, { type: "bye", from: this.id }).catch(() => {});
      client.presence(topics.all, { watch: false }).catch(() => {});
    }
    client.unsubscribe(topics.inbox);
    client.unsubscribe(topics.all);
  }
}
