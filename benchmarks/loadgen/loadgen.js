#!/usr/bin/env node
// Load generator for rtnb's fan-out benchmarks.
//
// One Node process holds N subscribers (WebSocket or SSE) and one WebSocket
// publisher, so publish and receive times come from the same clock. It runs
// pinned to its own core (the Python harness sets the affinity) and does as
// little per message as it can: it counts a marker byte ('~', once in every
// payload) in each frame or chunk instead of parsing JSON, so frames that
// coalesce several messages (the rtnb hub packs them '\n'-separated) count
// as what they carry.
//
// Usage: node loadgen.js '<json config>'   (see DEFAULTS below)
// Prints one JSON line with the result on stdout; progress goes to stderr.
//
// Modes:
//   throughput  closed loop: the publisher keeps at most `window` messages
//               that some subscriber has not received yet; delivered
//               messages/s are counted over `duration` seconds after `warmup`.
//   latency     open loop at `rate` messages/s; every subscriber parses the
//               publish timestamp of every message; p50/p90/p99/max in ms.
//   idle        open and subscribe N connections, print {"ready":...}, hold
//               them until stdin closes (the harness measures server memory).
'use strict';

const crypto = require('crypto');
const net = require('net');
const WebSocket = require('ws');

const DEFAULTS = {
  mode: 'throughput',
  subscriber_kind: 'rtnb', // rtnb | plain | socketio | sse
  publisher_kind: 'rtnb', // rtnb | plain | socketio
  subscribe_url: null,
  publish_url: null,
  subscribers: 100,
  topic: 'bench/fanout',
  payload_bytes: 100,
  window: 200,
  warmup: 1.0,
  duration: 3.0,
  rate: 200,
  connect_concurrency: 100,
  connect_timeout: 60.0,
  stall_timeout: 10.0,
};

const config = Object.assign({}, DEFAULTS, JSON.parse(process.argv[2] || '{}'));
const N = config.subscribers;

function log(...args) {
  process.stderr.write(`[loadgen] ${args.join(' ')}\n`);
}

function finish(result, code = 0) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

function fail(message) {
  finish({ error: message }, 2);
}

const now = () => performance.now(); // ms, sub-microsecond resolution, shared by publisher and subscribers
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- payloads --------------------------------------------------------------------------

// Every payload carries exactly one '~', right before its publish time:
// {"t":"~12345.678","seq":N,...}. Counting that one byte (no JSON parsing)
// counts messages whatever the framing; reading the number after it gives
// the latency. Every JSON encoder leaves '~' as it is.
const MARKER = 0x7e; // '~'
const QUOTE = 0x22;

function makePayload(seq, t) {
  const head = `{"t":"~${t.toFixed(3)}","seq":${seq},"sensor":"boiler","value":71.25,"pad":"`;
  const padLength = Math.max(0, config.payload_bytes - head.length - 2);
  return head + 'x'.repeat(padLength) + '"}';
}

function publishFrame(payload) {
  switch (config.publisher_kind) {
    case 'rtnb':
      return `{"op":"publish","topic":"${config.topic}","data":${payload}}`;
    case 'socketio':
      return `42["publish",${payload}]`;
    default:
      return payload;
  }
}

// -- counting --------------------------------------------------------------------------

const counts = new Int32Array(N); // messages received per subscriber in the current phase
let delivered = 0; // sum of counts
let subscribersWithAny = 0;
const RING = 1 << 20;
const atLeast = new Int32Array(RING); // atLeast[k % RING]: subscribers whose count >= k
let completed = 0; // every subscriber has messages 1..completed
let published = 0;
let phase = 'connect'; // connect | sync | run | drain | done
let latencySamples = null;
let latencyCount = 0;
let latencyCut = 0; // timestamps cut by a chunk boundary (not sampled)
let recordLatency = false;
let latencyFrom = Infinity; // publish times before this are warm-up
let lastDeliveryAt = now();

function countMarkers(buffer, start, end) {
  let found = 0;
  let index = buffer.indexOf(MARKER, start);
  while (index !== -1 && index < end) {
    found += 1;
    if (recordLatency) recordSample(buffer, index + 1, end);
    index = buffer.indexOf(MARKER, index + 1);
  }
  return found;
}

function recordSample(buffer, start, end) {
  const stop = buffer.indexOf(QUOTE, start);
  if (stop === -1 || stop >= end) {
    latencyCut += 1;
    return;
  }
  const sent = parseFloat(buffer.toString('latin1', start, stop));
  if (sent >= latencyFrom && latencyCount < latencySamples.length) {
    latencySamples[latencyCount++] = now() - sent;
  }
}

function onReceived(index, found) {
  if (found === 0) return;
  lastDeliveryAt = now();
  const before = counts[index];
  if (before === 0) subscribersWithAny += 1;
  const after = before + found;
  counts[index] = after;
  delivered += found;
  if (phase !== 'run' && phase !== 'drain') return;
  if (config.mode !== 'throughput') return;
  if (after > published) {
    fail(`subscriber ${index} received ${after} messages but only ${published} were published`);
    return;
  }
  for (let k = before + 1; k <= after; k++) atLeast[k % RING] += 1;
  let advanced = false;
  while (completed < published && atLeast[(completed + 1) % RING] >= N) {
    atLeast[(completed + 1) % RING] = 0;
    completed += 1;
    advanced = true;
  }
  if (advanced && phase === 'run') pump();
}

function resetCounts() {
  counts.fill(0);
  atLeast.fill(0);
  delivered = 0;
  subscribersWithAny = 0;
  completed = 0;
  published = 0;
}

// -- subscribers ------------------------------------------------------------------------
//
// Subscribers speak WebSocket over a bare socket: a hand-written upgrade
// request, then a minimal frame reader that walks frame headers, counts
// markers in payloads without copying them, and answers pings. (The `ws`
// client dispatches one event and one Buffer per frame, which made the
// generator, not the server, the limit at ~250,000 frames/s.)

const sockets = [];
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function maskedFrame(opcode, text) {
  const payload = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length <= 0xffff ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length <= 0xffff) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = crypto.randomBytes(4);
  mask.copy(frame, headerLength);
  for (let i = 0; i < length; i++) frame[headerLength + 4 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

class FrameReader {
  // Reads server frames (never masked) from a byte stream.
  constructor(socket, index, onText) {
    this.socket = socket;
    this.index = index;
    this.onText = onText; // while set, every text frame is delivered whole (handshake phase)
    this.header = Buffer.alloc(14);
    this.headerLength = 0;
    this.remaining = 0; // payload bytes of the current frame still to come
    this.opcode = 0;
    this.collected = null; // Buffer[] while a frame is kept whole
  }

  feed(chunk, start, end) {
    // `chunk` is the shared read buffer: anything kept must be copied.
    let position = start;
    const length = end;
    while (position < length) {
      if (this.remaining === 0) {
        position = this.readHeader(chunk, position, end);
        continue;
      }
      const take = Math.min(this.remaining, length - position);
      if (this.collected !== null) {
        this.collected.push(Buffer.from(chunk.subarray(position, position + take)));
      } else {
        onReceived(this.index, countMarkers(chunk, position, position + take));
      }
      position += take;
      this.remaining -= take;
      if (this.remaining === 0 && this.collected !== null) this.frameDone();
    }
  }

  readHeader(chunk, position, end) {
    // Fast path: the whole header is in this chunk.
    let need = 2;
    if (this.headerLength === 0 && end - position >= 2) {
      const lengthByte = chunk[position + 1] & 0x7f;
      need = lengthByte < 126 ? 2 : lengthByte === 126 ? 4 : 10;
      if (end - position >= need) {
        this.startFrame(chunk, position);
        return position + need;
      }
    }
    // Slow path: gather the header across chunks.
    while (position < end) {
      this.header[this.headerLength++] = chunk[position++];
      if (this.headerLength >= 2) {
        const lengthByte = this.header[1] & 0x7f;
        need = lengthByte < 126 ? 2 : lengthByte === 126 ? 4 : 10;
        if (this.headerLength === need) {
          this.startFrame(this.header, 0);
          this.headerLength = 0;
          break;
        }
      }
    }
    return position;
  }

  startFrame(buffer, at) {
    this.opcode = buffer[at] & 0x0f;
    const lengthByte = buffer[at + 1] & 0x7f;
    let payloadLength = lengthByte;
    if (lengthByte === 126) payloadLength = buffer.readUInt16BE(at + 2);
    else if (lengthByte === 127) payloadLength = Number(buffer.readBigUInt64BE(at + 2));
    this.remaining = payloadLength;
    // Keep control frames whole, text frames during the handshake, and
    // one-byte text frames (Engine.IO pings).
    const keep = this.opcode >= 8 || this.onText !== null || payloadLength === 1;
    this.collected = keep ? [] : null;
    if (payloadLength === 0 && keep) this.frameDone();
  }

  frameDone() {
    const payload = this.collected.length === 1 ? this.collected[0] : Buffer.concat(this.collected);
    this.collected = null;
    const opcode = this.opcode;
    if (opcode === 0x9) {
      this.socket.write(maskedFrame(0xa, payload)); // ping -> pong
    } else if (opcode === 0x8) {
      this.socket.end();
    } else if (opcode === 0x1 && payload.length === 1 && payload[0] === 0x32 && config.subscriber_kind === 'socketio') {
      this.socket.write(maskedFrame(0x1, '3')); // Engine.IO ping -> pong
    } else if (this.onText !== null) {
      this.onText(payload.toString());
    } else {
      onReceived(this.index, countMarkers(payload, 0, payload.length));
    }
  }
}

// One read buffer for every subscriber socket: data is handled synchronously
// in the callback, so they can share it, and Node's stream machinery (a
// Buffer and an event per read) is bypassed.
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

function openHttpStream(index, url, headers, onHead) {
  // Connect, send a GET with `headers`, hand the response head to `onHead`
  // (which returns the handler for the body bytes, or throws to refuse).
  return new Promise((resolve, reject) => {
    let head = null; // response head bytes until complete
    let onBody = null;
    let settled = false;
    const socket = net.connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer: READ_BUFFER,
        callback: (length, buffer) => {
          if (onBody !== null) {
            onBody(buffer, 0, length);
            return;
          }
          head = head === null ? Buffer.from(buffer.subarray(0, length)) : Buffer.concat([head, buffer.subarray(0, length)]);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          try {
            onBody = onHead(head.toString('latin1', 0, end), socket, resolve);
          } catch (error) {
            settled = true;
            socket.destroy();
            reject(error);
            return;
          }
          if (head.length > end + 4) onBody(head, end + 4, head.length);
        },
      },
    });
    socket.setNoDelay(true);
    socket.on('connect', () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
      for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    socket.on('error', (error) => {
      if (!settled && onBody === null) {
        settled = true;
        reject(error);
      } else {
        log(`subscriber ${index}: ${error.message}`);
      }
    });
    socket.on('close', () => {
      if (phase !== 'done' && onBody !== null) log(`subscriber ${index} closed during ${phase}`);
    });
  });
}

function openWebSocketSubscriber(index) {
  const kind = config.subscriber_kind;
  const url = new URL(config.subscribe_url);
  const key = crypto.randomBytes(16).toString('base64');
  const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' };
  return openHttpStream(index, url, headers, (head, socket, resolve) => {
    const expected = crypto.createHash('sha1').update(key + GUID).digest('base64');
    if (!head.startsWith('HTTP/1.1 101') || !head.toLowerCase().includes(`sec-websocket-accept: ${expected.toLowerCase()}`)) {
      throw new Error(`subscriber ${index}: no WebSocket upgrade: ${head.split('\r\n')[0]}`);
    }
    const connection = { close: () => socket.destroy() };
    const ready = () => {
      reader.onText = null;
      resolve(connection);
    };
    const reader = new FrameReader(socket, index, (text) => {
      if (kind === 'rtnb') {
        if (text.includes('"op":"welcome"')) {
          socket.write(maskedFrame(0x1, JSON.stringify({ op: 'subscribe', topic: config.topic })));
        }
        if (text.includes('"op":"subscribed"')) ready();
      } else if (kind === 'socketio') {
        if (text.startsWith('0')) socket.write(maskedFrame(0x1, '40'));
        else if (text.startsWith('40')) socket.write(maskedFrame(0x1, '42["subscribe"]'));
        else if (text.startsWith('42["subscribed"')) ready();
      }
    });
    if (kind === 'plain') ready();
    return (buffer, start, end) => reader.feed(buffer, start, end);
  });
}

function openSseSubscriber(index) {
  const url = new URL(config.subscribe_url);
  return openHttpStream(index, url, { Accept: 'text/event-stream' }, (head, socket, resolve) => {
    if (!head.startsWith('HTTP/1.1 200')) throw new Error(`SSE subscriber ${index}: ${head.split('\r\n')[0]}`);
    resolve({ close: () => socket.destroy() });
    // Chunked transfer encoding adds hex sizes and CRLFs, never a '~'.
    return (buffer, start, end) => onReceived(index, countMarkers(buffer, start, end));
  });
}

async function openSubscribers() {
  const open = config.subscriber_kind === 'sse' ? openSseSubscriber : openWebSocketSubscriber;
  let next = 0;
  const deadline = Date.now() + config.connect_timeout * 1000;
  async function worker() {
    while (next < N) {
      const index = next++;
      let attempt = 0;
      for (;;) {
        try {
          sockets[index] = await open(index);
          break;
        } catch (error) {
          attempt += 1;
          if (Date.now() > deadline || attempt > 20) throw error;
          await sleep(20 * attempt); // accept backlog full: try again
        }
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(config.connect_concurrency, N); i++) workers.push(worker());
  await Promise.all(workers);
}

// -- publisher --------------------------------------------------------------------------

const wsOptions = { perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 64 * 2 ** 20 };
let publisher = null;
let publisherSocket = null;
let corked = false;

function openPublisher() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(config.publish_url, wsOptions);
    let ready = false;
    ws.on('error', (error) => (ready ? log(`publisher: ${error.message}`) : reject(error)));
    ws.on('message', (data) => {
      const text = data.toString();
      if (config.publisher_kind === 'socketio') {
        if (text.startsWith('0')) ws.send('40');
        else if (text.startsWith('40') && !ready) {
          ready = true;
          resolve(ws);
        } else if (text === '2') ws.send('3');
      } else if (config.publisher_kind === 'rtnb' && text.includes('"op":"error"')) {
        log(`publisher got ${text.slice(0, 200)}`);
      }
    });
    ws.on('open', () => {
      if (config.publisher_kind !== 'socketio') {
        ready = true;
        resolve(ws);
      }
    });
  });
}

function send(seq) {
  if (!corked) {
    // Several sends in one tick leave as one write.
    corked = true;
    publisherSocket.cork();
    process.nextTick(() => {
      corked = false;
      publisherSocket.uncork();
    });
  }
  publisher.send(publishFrame(makePayload(seq, now())));
}

function pump() {
  while (published - completed < config.window) {
    published += 1;
    send(published);
  }
}

// -- phases ------------------------------------------------------------------------------

async function sync() {
  // Every subscriber must have seen a message before counting starts (the
  // server may register a connection a little after its handshake), then the
  // pipe must be quiet so no probe is counted in the measured phase.
  phase = 'sync';
  const deadline = now() + 20000;
  while (subscribersWithAny < N) {
    if (now() > deadline) throw new Error(`only ${subscribersWithAny}/${N} subscribers received the probes`);
    send(0);
    await sleep(20);
  }
  while (now() - lastDeliveryAt < 200) await sleep(20);
  resetCounts();
}

function cpuSeconds(usage) {
  return (usage.user + usage.system) / 1e6;
}

function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index];
}

async function runThroughput() {
  phase = 'run';
  pump();
  let lastCompleted = -1;
  let lastProgressAt = now();
  const watch = setInterval(() => {
    if (completed !== lastCompleted) {
      lastCompleted = completed;
      lastProgressAt = now();
    } else if (now() - lastProgressAt > config.stall_timeout * 1000) {
      fail(`stalled: ${completed}/${published} messages reached every subscriber, ${delivered} delivered`);
    }
  }, 250);
  await sleep(config.warmup * 1000);
  process.stdout.write('{"event":"measure_start"}\n');
  const startDelivered = delivered;
  const startPublished = completed;
  const startTime = now();
  const startCpu = process.cpuUsage();
  await sleep(config.duration * 1000);
  const elapsed = (now() - startTime) / 1000;
  const usage = process.cpuUsage(startCpu);
  process.stdout.write('{"event":"measure_end"}\n');
  const cpu = cpuSeconds(usage);
  const measured = delivered - startDelivered;
  const completedInWindow = completed - startPublished;
  phase = 'drain';
  clearInterval(watch);
  return {
    delivered_per_second: measured / elapsed,
    published_per_second: completedInWindow / elapsed,
    elapsed,
    loadgen_cpu: cpu / elapsed,
    loadgen_system_cpu: usage.system / 1e6 / elapsed,
    in_flight_at_end: published - completed,
  };
}

async function runLatency() {
  const total = Math.ceil(config.rate * (config.warmup + config.duration));
  latencySamples = new Float64Array(Math.ceil(config.rate * config.duration * N * 1.05) + N);
  phase = 'run';
  const startCpu = process.cpuUsage();
  const start = now();
  process.stdout.write('{"event":"measure_start"}\n');
  const interval = 1000 / config.rate;
  const warmupEnd = config.rate * config.warmup;
  latencyFrom = start + config.warmup * 1000;
  recordLatency = true;
  for (let seq = 1; seq <= total; seq++) {
    const due = start + seq * interval;
    const wait = due - now();
    if (wait > 0.5) await sleep(wait);
    published = seq;
    send(seq);
  }
  const drainDeadline = now() + 5000;
  while (delivered < published * N && now() < drainDeadline) await sleep(5);
  recordLatency = false;
  process.stdout.write('{"event":"measure_end"}\n');
  const elapsed = (now() - start) / 1000;
  const samples = Array.from(latencySamples.subarray(0, latencyCount)).sort((a, b) => a - b);
  return {
    rate: config.rate,
    samples: samples.length,
    expected_samples: Math.round((total - Math.ceil(warmupEnd)) * N),
    cut_by_chunk_boundary: latencyCut,
    p50_ms: percentile(samples, 0.5),
    p90_ms: percentile(samples, 0.9),
    p99_ms: percentile(samples, 0.99),
    max_ms: samples.length ? samples[samples.length - 1] : null,
    delivered,
    expected: published * N,
    loadgen_cpu: cpuSeconds(process.cpuUsage(startCpu)) / elapsed,
  };
}

async function runIdle() {
  const opened = now();
  process.stdout.write(JSON.stringify({ ready: true, connections: sockets.length }) + '\n');
  await new Promise((resolve) => {
    process.stdin.on('data', () => {});
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
  });
  return { connections: sockets.length, held_seconds: (now() - opened) / 1000 };
}

function closeAll() {
  phase = 'done';
  for (const socket of sockets) {
    if (socket) socket.close();
  }
  if (publisher) publisher.terminate();
}

async function main() {
  const connectStart = now();
  await openSubscribers();
  const connectSeconds = (now() - connectStart) / 1000;
  log(`${N} ${config.subscriber_kind} subscribers connected in ${connectSeconds.toFixed(2)}s`);
  let result;
  if (config.mode === 'idle') {
    result = await runIdle();
  } else {
    publisher = await openPublisher();
    publisherSocket = publisher._socket;
    publisherSocket.setNoDelay(true);
    await sync();
    result = config.mode === 'latency' ? await runLatency() : await runThroughput();
  }
  closeAll();
  finish(Object.assign({ mode: config.mode, subscribers: N, connect_seconds: connectSeconds }, result));
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
