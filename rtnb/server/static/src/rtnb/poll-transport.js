// The long-polling transport (/poll): one request after the other, each from the cursor;
// publishes go over HTTP. See ws-transport.js for what a transport offers the client.

import { largestLast, publishOverHttp, streamQuery } from "./http.js";

export class LongPollTransport {
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
