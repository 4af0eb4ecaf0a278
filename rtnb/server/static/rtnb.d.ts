// Types of rtnb.js, the browser client of an rtnb hub (docs/browser.md, docs/protocol.md).
// Hand-written beside the JavaScript it describes: TypeScript finds it when you import
// "./rtnb.js", and every hub serves it at /rtnb.d.ts.

/** Any value JSON can carry: what a message's `data` may be. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Where a client stands on a topic: [epoch, last offset seen]. */
export type Position = [epoch: number, offset: number];

/** Positions per topic, as `RtnbClient.positions` holds them (a plain object is accepted too). */
export type Positions = Map<string, Position> | Record<string, Position>;

export type Status = "connecting" | "open" | "closed";
export type TransportName = "ws" | "sse" | "poll";

export declare const STATUS: Readonly<{ CONNECTING: "connecting"; OPEN: "open"; CLOSED: "closed" }>;

/** A published message, as every transport delivers it. */
export interface Message<T = JsonValue> {
  op: "message";
  topic: string;
  /** 1, 2, 3… per topic, without holes. */
  offset: number;
  /** Names the topic's history; changes when the hub lost it. */
  epoch: number;
  /** The hub's clock when it accepted the message, UNIX seconds. */
  ts: number;
  data: T;
}

/**
 * Messages you asked for, or should have had, that you will not get: offsets `from`..`to`
 * (inclusive) of `topic`. `to` is null for `epoch_changed` (the old history's end is unknown).
 */
export interface Gap {
  op: "gap";
  topic: string;
  from: number;
  to: number | null;
  reason: "trimmed" | "epoch_changed" | "unavailable" | (string & {});
  epoch?: number;
}

/** The hub's error codes (docs/protocol.md), plus the client's own: timeout, closed, queue_full. */
export type ErrorCode =
  | "bad_json"
  | "unknown_op"
  | "missing_field"
  | "bad_field"
  | "invalid_topic"
  | "invalid_pattern"
  | "wildcard_publish"
  | "too_deep"
  | "bad_cursor"
  | "cursor_expired"
  | "message_too_big"
  | "too_many_subscriptions"
  | "too_many_connections"
  | "rate_limited"
  | "unauthorized"
  | "forbidden"
  | "unavailable"
  | "timeout"
  | "closed"
  | "queue_full"
  | (string & {});

/** An error event's detail. */
export interface HubErrorDetail {
  code: ErrorCode;
  message: string;
}

/** What `publish()` and `presence()` reject with. */
export interface RtnbError extends Error {
  code: ErrorCode;
}

export interface StatusDetail {
  status: Status;
  transport: TransportName | null;
  /** Failed connection passes since the last open. */
  attempts: number;
}

/** Where a publish was stored. */
export interface Ack {
  topic: string;
  offset: number;
  epoch: number;
}

/** A client present on a topic: its id on its hub, and the hub's id on a Redis cluster. */
export interface PresenceMember {
  client: string;
  hub?: string;
}

export interface PresenceEvent extends PresenceMember {
  op: "join" | "leave";
  topic: string;
}

export interface SubscribedFrame {
  op: "subscribed";
  topic: string;
  positions?: Record<string, { offset: number; epoch: number }>;
  id?: string | number;
}

/** The detail of each event `on()` and `addEventListener()` deliver. */
export interface RtnbEventMap {
  message: Message;
  gap: Gap;
  error: HubErrorDetail;
  status: StatusDetail;
  subscribed: SubscribedFrame;
  unsubscribed: { op: "unsubscribed"; topic: string; id?: string | number };
  join: PresenceEvent;
  leave: PresenceEvent;
  presence: { op: "presence"; topic: string; members: PresenceMember[] };
  authenticated: { op: "authenticated"; subject: string; expires: number | null };
  pong: { op: "pong" };
}

export interface BackoffOptions {
  /** ms before the first retry (250). */
  initial: number;
  /** ms cap (10000). */
  max: number;
  /** growth per failed pass (2). */
  factor: number;
  /** share of the delay taken off at random, 0..1 (0.5). */
  jitter: number;
}

export interface RtnbClientOptions {
  /** Tried in this order (["ws", "sse", "poll"]). */
  transports?: TransportName[];
  backoff?: Partial<BackoffOptions>;
  /** ms a transport may take to open before the next one is tried (5000). */
  openTimeout?: number;
  /** Publishes kept while offline; past it the oldest is rejected with "queue_full" (1000). */
  maxQueue?: number;
  /** Seconds each long poll waits on the hub (25). */
  pollTimeout?: number;
  /** ms to wait for a WebSocket acknowledgement (publish, presence) (10000). */
  publishTimeout?: number;
  /** A JWT: ?token= on WebSocket, SSE and polls, Authorization: Bearer on HTTP publishes. */
  token?: string | null;
  /** Connect in the constructor (true); a close() in the same tick still wins. */
  autoConnect?: boolean;
}

export interface SubscribeOptions {
  /** Replay that many retained messages per topic the first time. */
  last?: number;
  /** Resume from these positions on topics the client has no position of yet. */
  since?: Positions;
}

export interface PresenceOptions {
  /** true: "join"/"leave" events from now on; false: stop them. */
  watch?: boolean;
}

export declare class RtnbClient extends EventTarget {
  /**
   * @param url the hub's base URL ("http://host:8765", "/rtnb"); by default the hub that served rtnb.js.
   */
  constructor(url?: string, options?: RtnbClientOptions);

  readonly baseUrl: string;
  readonly options: Required<Omit<RtnbClientOptions, "backoff">> & { backoff: BackoffOptions };
  readonly status: Status;
  /** The transport in use, null before the first attempt. */
  readonly transport: TransportName | null;
  /** The hub's id for this connection (WebSocket only; changes on reconnect), as presence names it. */
  readonly clientId: string | null;
  /** Per topic, the epoch and offset of the last message delivered. */
  readonly positions: Map<string, Position>;
  /** Subscribed patterns and their options. */
  readonly subscriptions: Map<string, { last: number }>;
  /** Failed connection passes since the last open. */
  readonly attempts: number;

  /** Listen to an event; returns a function that removes the listener. */
  on<K extends keyof RtnbEventMap>(type: K, handler: (detail: RtnbEventMap[K]) => void): () => void;
  on(type: string, handler: (detail: any) => void): () => void;

  addEventListener<K extends keyof RtnbEventMap>(
    type: K,
    listener: (event: CustomEvent<RtnbEventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof RtnbEventMap>(
    type: K,
    listener: (event: CustomEvent<RtnbEventMap[K]>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;

  /** Start connecting (done automatically unless autoConnect is false). */
  connect(): this;
  /** Stop for good: no reconnection; queued publishes are rejected with "closed". */
  close(): void;
  /** Use a new token from now on (sent at once on an open WebSocket). */
  authenticate(token: string): this;
  /** Receive messages on an MQTT-style pattern (+ one level, # the rest). */
  subscribe(pattern: string, options?: SubscribeOptions): this;
  unsubscribe(pattern: string): this;
  /** Resolves once the hub stored the message; rejects with an RtnbError. */
  publish(topic: string, data: JsonValue): Promise<Ack>;
  /** Clients subscribed to what `pattern` names. WebSocket only (else rejects with "unavailable"). */
  presence(pattern: string, options?: PresenceOptions): Promise<PresenceMember[]>;
}

export default RtnbClient;

/** True when the concrete `topic` is selected by the MQTT-style `pattern`. */
export declare function topicMatches(pattern: string, topic: string): boolean;
/** The URL-safe resume cursor of `positions`. */
export declare function encodeCursor(positions: Map<string, Position>): string;
/** Positions from a cursor the hub issued; an empty Map when unreadable. */
export declare function decodeCursor(cursor: string): Map<string, Position>;
/** ms before reconnection pass `attempts`; `random` returns 0..1 (Math.random). */
export declare function backoffDelay(attempts: number, backoff: BackoffOptions, random?: () => number): number;

export type { RtcPeerOptions, RtcRoom } from "./rtnb-rtc.js";
/** Join a WebRTC room signalled over the hub's topics: see rtnb-rtc.js. Loads rtnb-rtc.js on first use. */
export declare function rtcPeer(
  client: RtnbClient,
  room: string,
  options?: import("./rtnb-rtc.js").RtcPeerOptions,
): Promise<import("./rtnb-rtc.js").RtcRoom>;
