// rtnb views, part 2 of 5: what a view holds — typed-array rings for charts, rows for the rest.

// -- stores: what a view holds -----------------------------------------------------------

/** One topic's points in growable typed-array rings (x, y), oldest first. */
class Ring {
  constructor(capacity) {
    this.capacity = capacity;
    this.size = 0;
    this.head = 0; // index of the oldest point
    this.xs = new Float64Array(Math.min(capacity, 1024));
    this.ys = new Float64Array(this.xs.length);
    this.dropped = 0; // points pushed out by the capacity
  }

  push(x, y) {
    if (this.size === this.xs.length && this.size < this.capacity) this.grow();
    const length = this.xs.length;
    if (this.size === length) {
      this.xs[this.head] = x;
      this.ys[this.head] = y;
      this.head = (this.head + 1) % length;
      this.dropped += 1;
      return;
    }
    const index = (this.head + this.size) % length;
    this.xs[index] = x;
    this.ys[index] = y;
    this.size += 1;
  }

  grow() {
    const length = Math.min(this.capacity, this.xs.length * 2);
    const xs = new Float64Array(length);
    const ys = new Float64Array(length);
    for (let i = 0; i < this.size; i++) {
      const index = (this.head + i) % this.xs.length;
      xs[i] = this.xs[index];
      ys[i] = this.ys[index];
    }
    this.xs = xs;
    this.ys = ys;
    this.head = 0;
  }

  x(i) {
    return this.xs[(this.head + i) % this.xs.length];
  }

  /** Drop points older than `horizon` from the front (time windows). */
  dropBefore(horizon) {
    while (this.size > 0 && this.xs[this.head] < horizon) {
      this.head = (this.head + 1) % this.xs.length;
      this.size -= 1;
    }
  }

  clear() {
    this.size = 0;
    this.head = 0;
  }
}

class ChartStore {
  constructor(config) {
    this.config = config;
    this.series = new Map(); // topic -> {ring, colour, epoch, hidden}
    this.refused = new Set(); // topics over max_traces
    this.version = 0;
    this.newestTime = -Infinity;
    this.newestArrival = 0; // performance.now() when newestTime last moved
  }

  get points() {
    let total = 0;
    for (const series of this.series.values()) total += series.ring.size;
    return total;
  }

  seriesFor(topic, epoch) {
    let series = this.series.get(topic);
    if (!series) {
      if (this.series.size >= this.config.max_traces) {
        this.refused.add(topic);
        return null;
      }
      series = { ring: new Ring(this.config.capacity), colour: PALETTE[this.series.size % PALETTE.length], epoch, hidden: false };
      series.firstOffset = null; // offset of the first point this window got (its history's start)
      series.trimmed = false; // points left the window by time: it spans its whole duration
      this.series.set(topic, series);
    } else if (series.epoch !== epoch) {
      series.ring.clear(); // the topic's history was reset: its old points are another story
      series.epoch = epoch;
      series.firstOffset = null;
      series.trimmed = false;
    }
    return series;
  }

  /** The first point of a series tells where the history it was rebuilt from began. */
  noteFirst(series, offset) {
    if (series.firstOffset === null) series.firstOffset = offset;
  }

  /**
   * A window rebuilt (new view, reload, second tab) from a history that began after the window's start:
   * the hub keeps at most its --history messages per topic, so such a window comes back partly filled
   * until new points fill it. Never a silent cap: the view says so.
   */
  partial(series) {
    const config = this.config;
    if (!(series.firstOffset > 1) || !config.last) return false; // it has the topic's whole history, or asked for none
    const ring = series.ring;
    if (config.window_seconds && config.time_axis) {
      return !series.trimmed && ring.size > 0 && this.newestTime - ring.x(0) < config.window_seconds * 0.99;
    }
    return ring.size < Math.min(config.last, config.window_count || config.capacity, config.capacity);
  }

  addMessage(message) {
    const config = this.config;
    const y = toNumber(extract(message.data, config.y));
    if (y === null) return;
    let x = message.ts;
    if (!config.time_axis) {
      x = toNumber(extract(message.data, config.x));
      if (x === null) return;
    }
    const series = this.seriesFor(message.topic, message.epoch);
    if (!series) return;
    this.noteFirst(series, message.offset);
    series.ring.push(x, y);
    if (message.ts > this.newestTime) this.noteNewest(message.ts);
    this.version += 1;
  }

  addPoints(content, buffers, positions) {
    const floats = (view, Type) => new Type(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
    // times: uint16 steps of time_unit seconds (each series' first after base), or float32 ms after base
    const unit = content.time_unit || 0;
    const times = floats(buffers[0], unit ? Uint16Array : Float32Array);
    const values = floats(buffers[1], Float32Array);
    let next = 2;
    const xs = content.has_x ? floats(buffers[next++], Float64Array) : null;
    const offsets = content.has_offsets ? floats(buffers[next++], Float64Array) : null;
    let index = 0;
    for (const part of content.series) {
      const known = positions.get(part.topic);
      const seenUpTo = known && known[0] === part.epoch ? known[1] : -Infinity;
      const series = this.seriesFor(part.topic, part.epoch);
      let ticks = 0;
      for (let k = 0; k < part.count; k++, index++) {
        ticks += unit ? times[index] : 0;
        const offset = offsets ? offsets[index] : part.first + k;
        if (offset <= seenUpTo || !series) continue;
        const time = unit ? content.base + ticks * unit : content.base + times[index] / 1000;
        this.noteFirst(series, offset);
        series.ring.push(xs ? xs[index] : time, values[index]);
        if (time > this.newestTime) this.noteNewest(time);
      }
      if (part.last > seenUpTo) positions.set(part.topic, [part.epoch, part.last]);
      this.version += 1;
    }
  }

  noteNewest(time) {
    // when the newest time arrived, by the page's clock: read at most once per 5 ms of data time (the
    // clock costs more than the rest of a message at 100k/s; liveEnd is then off by at most 5 ms)
    if (!(time - this.notedTime < 0.005)) {
      this.newestArrival = performance.now();
      this.notedTime = time;
    }
    this.newestTime = time;
  }

  /**
   * The live end of a time axis: the newest message's time, moved on by the time since it arrived
   * (up to SCROLL_AHEAD), so a live chart scrolls at the frame rate instead of jumping with each batch.
   */
  liveEnd(now) {
    return this.newestTime + Math.min(SCROLL_AHEAD, Math.max(0, now - this.newestArrival) / 1000);
  }

  /** Apply the time window (by the data's own clock, so the browser's clock does not matter). */
  trim() {
    const seconds = this.config.window_seconds;
    if (!seconds || !this.config.time_axis || this.newestTime === -Infinity) return;
    for (const series of this.series.values()) {
      const size = series.ring.size;
      series.ring.dropBefore(this.newestTime - seconds);
      if (series.ring.size < size) series.trimmed = true;
    }
  }

  notes() {
    const notes = [];
    if (this.refused.size) notes.push(`${this.refused.size} more topic(s) not drawn (max_traces=${this.config.max_traces})`);
    // one sentence for every topic rebuilt short, not one per topic
    const partial = [...this.series].filter(([, series]) => this.partial(series));
    if (partial.length) {
      const where = partial.map(([topic, series]) => `${topic} (from offset ${series.firstOffset.toLocaleString()})`);
      notes.push(
        `the hub's history held only part of the window for ${where.join(", ")}; ` +
          "it keeps at most its --history messages per topic, and new points fill it",
      );
    }
    const seconds = this.config.window_seconds;
    if (seconds) {
      for (const [topic, series] of this.series) {
        if (series.ring.dropped && series.ring.size === this.config.capacity) {
          const span = this.newestTime - series.ring.x(0);
          notes.push(`${topic}: window holds the newest ${this.config.capacity.toLocaleString()} points (max_points), ${span.toFixed(1)} s of ${seconds} s`);
        }
      }
    }
    return notes;
  }
}

class RowStore {
  constructor(config, kind) {
    this.config = config;
    this.kind = kind;
    this.latest = new Map(); // topic -> row
    this.recent = []; // rows mode (table) / sparkline values (value)
    this.values = [];
    this.columns = config.columns ? [...config.columns] : [];
    this.version = 0;
    this.refusedTopics = new Set(); // table: topics over max_topics
    this.columnsRefused = new Set(); // table: payload keys over max_columns
  }

  get points() {
    if (this.kind === "table") return this.config.rows ? this.recent.length : this.latest.size;
    if (this.kind === "value" && this.config.sparkline) return this.values.length;
    return this.latest.size ? 1 : 0;
  }

  addMessage(message) {
    this.addRow({ topic: message.topic, epoch: message.epoch, offset: message.offset, ts: message.ts, data: message.data });
  }

  addRows(content, positions) {
    for (const row of content.rows) {
      const known = positions.get(row.topic);
      if (known && known[0] === row.epoch && row.offset <= known[1]) continue;
      positions.set(row.topic, [row.epoch, row.offset]);
      this.addRow(row);
    }
  }

  addRow(row) {
    const config = this.config;
    if (this.kind === "table") {
      if (!config.columns) this.learnColumns(row.data);
      if (config.rows) {
        this.recent.push(row);
        if (this.recent.length > config.rows) this.recent.splice(0, this.recent.length - config.rows);
      } else if (this.latest.has(row.topic) || this.latest.size < config.max_topics) {
        this.latest.set(row.topic, row);
      } else {
        this.refusedTopics.add(row.topic);
      }
    } else {
      this.latest.set(row.topic, row);
      this.current = row;
      if (config.sparkline) {
        const value = row.value !== undefined ? row.value : toNumber(extract(row.data, config.field));
        if (value !== null && value !== undefined) {
          this.values.push(value);
          if (this.values.length > config.sparkline) this.values.splice(0, this.values.length - config.sparkline);
        }
      }
    }
    this.version += 1;
  }

  learnColumns(data) {
    const keys = data && typeof data === "object" && !Array.isArray(data) ? Object.keys(data) : ["value"];
    for (const key of keys) {
      if (this.columns.includes(key)) continue;
      if (this.columns.length >= this.config.max_columns) this.columnsRefused.add(key);
      else this.columns.push(key);
    }
  }

  trim() {}

  notes() {
    const notes = [];
    if (this.refusedTopics.size) notes.push(`${this.refusedTopics.size} more topic(s) not shown (max_topics=${this.config.max_topics})`);
    if (this.columnsRefused.size) notes.push(`${this.columnsRefused.size} more field(s) not shown as columns (at most ${this.config.max_columns})`);
    return notes;
  }
}
