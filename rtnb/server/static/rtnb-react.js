// rtnb-react.js — React bindings for rtnb.js: <RtnbProvider>, useTopic(), usePublish().
//
//   import { RtnbProvider, useTopic, usePublish } from "./rtnb-react.js";
//   <RtnbProvider url="http://127.0.0.1:8765"><Dashboard /></RtnbProvider>
//   const { latest, messages, status, gaps } = useTopic("plant/+/temp", { last: 50 });
//   const publish = usePublish();  await publish("plant/boiler/cmd", { setpoint: 80 });
//
// React is not bundled here: `import ... from "react"` is resolved by the page's bundler
// (esbuild, Vite, webpack) or by an import map, so the app and these hooks share one React.
// One client per provider, created in an effect and closed in its cleanup; patterns are
// reference-counted per client, so two components on one pattern, or StrictMode's
// mount/unmount/mount, leave exactly one subscription on the hub. See docs/browser.md.

import { createContext, createElement, useCallback, useContext, useEffect, useState } from "react";

import { RtnbClient, STATUS, topicMatches } from "./rtnb.js";

const RtnbContext = createContext(null);

/**
 * Gives its children an RtnbClient: `client` if passed (never closed here), else one
 * of its own to `url` with `options`, closed on unmount. A new `url` makes a new client;
 * a new `token` is handed to the current one (client.authenticate).
 */
export function RtnbProvider({ url, options, token, client: given, children }) {
  const [owned, setOwned] = useState(null);
  useEffect(() => {
    if (given) return undefined;
    const client = new RtnbClient(url, { ...options, token: token ?? options?.token ?? null });
    setOwned(client);
    return () => {
      client.close();
      setOwned((current) => (current === client ? null : current));
    };
    // Options and token are read when the client is made; token changes go through authenticate.
  }, [given, url]);
  const client = given ?? owned;
  useEffect(() => {
    if (client && token && client.options.token !== token) client.authenticate(token);
  }, [client, token]);
  return createElement(RtnbContext.Provider, { value: client }, children);
}

/** The provider's client; null until it is created (the first render of the provider's children). */
export function useRtnbClient() {
  return useContext(RtnbContext);
}

// client -> Map pattern -> number of mounted hooks using it
const patternUsers = new WeakMap();

function retain(client, pattern, options) {
  let counts = patternUsers.get(client);
  if (!counts) patternUsers.set(client, (counts = new Map()));
  const count = counts.get(pattern) ?? 0;
  counts.set(pattern, count + 1);
  if (count === 0) client.subscribe(pattern, options);
}

function release(client, pattern) {
  const counts = patternUsers.get(client);
  const count = counts?.get(pattern) ?? 0;
  if (count <= 1) {
    counts?.delete(pattern);
    client.unsubscribe(pattern);
  } else {
    counts.set(pattern, count - 1);
  }
}

/** `list` with `item` appended, keeping at most `limit` of the newest items. */
export function appendBounded(list, item, limit) {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}

const EMPTY = Object.freeze({ latest: null, messages: Object.freeze([]), gaps: Object.freeze([]) });

/**
 * Messages on `pattern` from the provider's client.
 *
 * Options: `last` (history replayed per topic on first subscribe), `since` (positions to
 * resume from, as RtnbClient.subscribe takes them), `limit` (messages kept, 100),
 * `gapLimit` (gaps kept, 20). `last` and `since` apply when the pattern is first
 * subscribed on the client: a second hook on an already subscribed pattern sees live
 * messages only.
 *
 * Returns {latest, messages, status, transport, gaps}: the newest message, the last
 * `limit` messages (oldest first), the connection status ("connecting", "open",
 * "closed"), the transport in use, and the last `gapLimit` gap notices.
 */
export function useTopic(pattern, { last = 0, since, limit = 100, gapLimit = 20 } = {}) {
  const client = useRtnbClient();
  const [data, setData] = useState(EMPTY);
  const [connection, setConnection] = useState(() => ({
    status: client?.status ?? STATUS.CONNECTING,
    transport: client?.transport ?? null,
  }));

  useEffect(() => {
    if (!client) return undefined;
    setData(EMPTY);
    const stopMessages = client.on("message", (message) => {
      if (!topicMatches(pattern, message.topic)) return;
      setData((current) => ({ ...current, latest: message, messages: appendBounded(current.messages, message, limit) }));
    });
    const stopGaps = client.on("gap", (gap) => {
      if (!topicMatches(pattern, gap.topic)) return;
      setData((current) => ({ ...current, gaps: appendBounded(current.gaps, gap, gapLimit) }));
    });
    const stopStatus = client.on("status", ({ status, transport }) => setConnection({ status, transport }));
    setConnection({ status: client.status, transport: client.transport });
    retain(client, pattern, { last, since });
    return () => {
      stopMessages();
      stopGaps();
      stopStatus();
      release(client, pattern);
    };
    // `since` is read once per subscription: a new object each render must not resubscribe.
  }, [client, pattern, last, limit, gapLimit]);

  return { ...data, status: connection.status, transport: connection.transport };
}

/**
 * A stable `publish(topic, data)` for the provider's client: a Promise of
 * {topic, offset, epoch}, rejected with code "closed" before the client exists.
 */
export function usePublish() {
  const client = useRtnbClient();
  return useCallback(
    (topic, data) => {
      if (!client) {
        const error = new Error("No rtnb client yet: publish from an effect or an event handler.");
        error.code = "closed";
        return Promise.reject(error);
      }
      return client.publish(topic, data);
    },
    [client],
  );
}
