// Types of rtnb-react.js (docs/browser.md). React's own types come from @types/react.
import type { ReactElement, ReactNode } from "react";

import type { Ack, Gap, JsonValue, Message, Positions, RtnbClient, RtnbClientOptions, Status, TransportName } from "./rtnb.js";

export interface RtnbProviderProps {
  /** The hub's base URL; by default the hub that served rtnb.js. A new url makes a new client. */
  url?: string;
  /** Read when the client is made. */
  options?: RtnbClientOptions;
  /** A JWT; a new one is handed to the current client (authenticate). */
  token?: string | null;
  /** Use this client instead of making one (the provider never closes it). */
  client?: RtnbClient;
  children?: ReactNode;
}

export declare function RtnbProvider(props: RtnbProviderProps): ReactElement;

/** The provider's client; null until it exists. */
export declare function useRtnbClient(): RtnbClient | null;

export interface UseTopicOptions {
  /** Replay that many retained messages per topic when the pattern is first subscribed. */
  last?: number;
  /** Resume from these positions (first subscription of the pattern only). */
  since?: Positions;
  /** Messages kept (100). */
  limit?: number;
  /** Gap notices kept (20). */
  gapLimit?: number;
}

export interface TopicState<T = JsonValue> {
  /** The newest message, null before the first. */
  latest: Message<T> | null;
  /** The last `limit` messages, oldest first. */
  messages: readonly Message<T>[];
  status: Status;
  transport: TransportName | null;
  /** The last `gapLimit` gap notices on matching topics. */
  gaps: readonly Gap[];
}

/** Messages on an MQTT-style pattern; `T` is what you know their `data` to be. */
export declare function useTopic<T = JsonValue>(pattern: string, options?: UseTopicOptions): TopicState<T>;

/** A stable publish function for the provider's client. */
export declare function usePublish(): (topic: string, data: JsonValue) => Promise<Ack>;

/** `list` with `item` appended, keeping at most `limit` of the newest. */
export declare function appendBounded<T>(list: readonly T[], item: T, limit: number): T[];
