// What the SSE and long-polling transports share: publishing over HTTP
// (POST /publish/<topic>) and the query string of a stream request.

import { hubError } from "./errors.js";
import { topicPath } from "./topics.js";

/**
 * Publishing over HTTP, shared by the SSE and long-polling transports. Requests go one
 * after the other, so messages keep the order in which publish() was called.
 */
export function publishOverHttp(client, topic, data) {
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

export function streamQuery(client, { cursor, last }) {
  const parts = [...client.subscriptions.keys()].map((pattern) => "topic=" + encodeURIComponent(pattern));
  if (cursor) parts.push("cursor=" + cursor);
  if (last) parts.push("last=" + last);
  if (client.options.token) parts.push("token=" + encodeURIComponent(client.options.token));
  return parts.join("&");
}

export function largestLast(client) {
  let last = 0;
  for (const options of client.subscriptions.values()) last = Math.max(last, options.last || 0);
  return last;
}
