// Types of rtnb-rtc.js: WebRTC peers signalled over an rtnb hub's topics (docs/browser.md).
import type { JsonValue, PresenceMember, RtnbClient, RtnbError } from "./rtnb.js";

export interface RtcPeerOptions {
  /** This peer's name in the room: one topic level (no "/", "+", "#"); random by default. */
  id?: string;
  /** The RTCPeerConnection configuration; {iceServers: []} (host candidates only) by default. */
  config?: RTCConfiguration;
  /** ms to wait for the client to open and the hub to confirm (10000). */
  joinTimeout?: number;
}

export interface RtcEventMap {
  /** A new peer: its connection exists, negotiation is under way. */
  peer: { peer: string; connection: RTCPeerConnection };
  /** The data channel to `peer` is open: send() reaches it from now on. */
  open: { peer: string };
  /** A JSON value `peer` sent with send(). */
  message: { peer: string; data: JsonValue };
  /** A whole file `peer` sent with sendFile(). */
  file: { peer: string; name: string; type: string; size: number; blob: Blob };
  /** A media track from `peer` (its camera). */
  track: { peer: string; track: MediaStreamTrack; streams: readonly MediaStream[] };
  /** The connection state to `peer` changed. */
  state: { peer: string; state: RTCPeerConnectionState };
  /** `peer` left (bye, its connection failed or closed, or it vanished before connecting). */
  leave: { peer: string };
  /** Something failed: a refused signal publish, a negotiation error, a malformed message. */
  error: { code: string; message: string; peer?: string };
}

/** The connection to one other peer (made by the room, never by you). */
export declare class RtcLink {
  private constructor();
  readonly peer: string;
  readonly polite: boolean;
  readonly connection: RTCPeerConnection;
  /** The ordered, reliable data channel shared with the peer (negotiated, id 0); null until
   * the polite peer of a pair has applied the first offer. */
  readonly channel: RTCDataChannel | null;
  sendData(data: JsonValue): boolean;
  sendFile(file: Blob & { name?: string }): Promise<void>;
  addStream(stream: MediaStream): void;
}

export declare class RtcRoom extends EventTarget {
  readonly client: RtnbClient;
  readonly room: string;
  readonly id: string;
  readonly config: RTCConfiguration;
  readonly topics: { all: string; inbox: string; to(peer: string): string };
  /** The other peers, by id. */
  readonly peers: Map<string, RtcLink>;
  /** Presence on rtc/<room>/all: the hub connections in the room. */
  readonly members: PresenceMember[];
  readonly streams: MediaStream[];
  readonly left: boolean;

  on<K extends keyof RtcEventMap>(type: K, handler: (detail: RtcEventMap[K]) => void): () => void;
  /** The RTCPeerConnection to `peer` (by default the first peer's); null when there is none. */
  connection(peer?: string): RTCPeerConnection | null;
  /** Send a JSON value to one peer or all open ones; returns how many it was sent to. */
  send(data: JsonValue, options?: { to?: string }): number;
  /** Send a File or Blob to one peer or all; rejects with code "closed" if a channel is not open. */
  sendFile(file: Blob & { name?: string }, options?: { to?: string }): Promise<void>;
  /** Send a stream's tracks (a camera) to every peer, present and future. */
  addStream(stream: MediaStream): void;
  /** Say bye, close every connection, stop listening. */
  leave(): void;
}

/**
 * Join `room` through `client` (on WebSocket). Rejects with an RtnbError: "forbidden" when
 * the token may not publish or subscribe under rtc/<room>/, "unavailable" off WebSocket,
 * "timeout", "bad_field" for a room or id that is not one topic level.
 */
export declare function rtcPeer(client: RtnbClient, room: string, options?: RtcPeerOptions): Promise<RtcRoom>;

export type RtcError = RtnbError;

export declare const FILE_CHUNK_BYTES: number;
export declare function checkLevel(kind: string, name: string): string;
export declare function roomTopics(room: string, id: string): { all: string; inbox: string; to(peer: string): string };
export declare function isPolite(id: string, other: string): boolean;
export declare function chunkRanges(size: number, chunk?: number): Array<[start: number, end: number]>;
