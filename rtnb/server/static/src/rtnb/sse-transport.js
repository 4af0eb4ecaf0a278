// The Server-Sent Events transport (/sse): an EventSource that resumes from the cursor;
// publishes go over HTTP. See ws-transport.js for what a transport offers the client.

import { largestLast, publishOverHttp, streamQuery } from "./http.js";

export class EventSourceTransport {
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
