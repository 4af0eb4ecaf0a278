// rtnb views, part 4 of 5: the chart — per-pixel min/max of every line, axes, pause/follow, legend.

class ChartRender extends Render {
  constructor(model, el, feed) {
    super(model, el, feed);
    this.paused = false;
    this.frozenRange = null;
    this.pause = element("button", "rtnb-button rtnb-pause", "Pause");
    this.follow = element("button", "rtnb-button rtnb-follow", "Follow");
    this.pause.title = "Stop moving (data keeps arriving)";
    this.follow.title = "Jump back to live";
    this.follow.disabled = true;
    this.pause.onclick = () => this.setPaused(true);
    this.follow.onclick = () => this.setPaused(false);
    this.header.insertBefore(this.pause, this.badge);
    this.header.insertBefore(this.follow, this.badge);
    this.canvas = element("canvas", "rtnb-canvas");
    this.canvas.style.height = `${feed.config.height}px`;
    this.legend = element("div", "rtnb-legend");
    this.body.append(this.canvas, this.legend);
    this.root.dataset.rtnbPaused = "false";
    this.resizer = new ResizeObserver(() => (this.needsDraw = true));
    this.resizer.observe(this.canvas);
  }

  loop(now) {
    // a live time axis keeps scrolling between batches (for SCROLL_AHEAD after the newest message)
    const store = this.feed.store;
    if (!this.paused && store.config.time_axis && now - store.newestArrival < SCROLL_AHEAD * 1000) this.needsDraw = true;
    super.loop(now);
  }

  setPaused(paused) {
    this.paused = paused;
    this.frozenRange = paused ? this.lastRange : null;
    this.pause.disabled = paused;
    this.follow.disabled = !paused;
    this.root.dataset.rtnbPaused = String(paused);
    this.needsDraw = true;
  }

  xRange(store) {
    if (this.paused && this.frozenRange) return this.frozenRange;
    let low = Infinity;
    let high = -Infinity;
    for (const series of store.series.values()) {
      const ring = series.ring;
      if (!ring.size || series.hidden) continue;
      if (store.config.time_axis) {
        low = Math.min(low, ring.x(0));
        high = Math.max(high, ring.x(ring.size - 1));
      } else {
        for (let i = 0; i < ring.size; i++) {
          const x = ring.x(i);
          if (x < low) low = x;
          if (x > high) high = x;
        }
      }
    }
    if (store.config.time_axis && high > -Infinity) {
      high = Math.max(high, store.liveEnd(performance.now()));
      if (store.config.window_seconds) low = high - store.config.window_seconds;
    }
    if (!(high > low)) return low === Infinity ? null : [low - 1, high + 1];
    return [low, high];
  }

  draw() {
    const store = this.feed.store;
    const canvas = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = Math.max(50, canvas.clientWidth);
    const height = Math.max(50, canvas.clientHeight);
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const colours = theme(this.root);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.fillStyle = colours.background;
    context.fillRect(0, 0, width, height);
    context.font = `11px ${colours.font}`;
    const range = this.xRange(store);
    this.lastRange = range;
    this.drawLegend(store);
    if (!range) {
      context.fillStyle = colours.muted;
      context.fillText("waiting for data…", 12, height / 2);
      return;
    }
    const right = 10;
    const top = 8;
    const bottom = 22;
    const plotHeight = Math.max(10, height - top - bottom);
    const [x0, x1] = range;
    // the left margin is as wide as the widest y label (never clipped). The y range does not depend on the
    // number of columns, so binning with the last frame's margin tells the labels; a margin that must grow
    // (or may shrink by more than 10 px: no jitter) bins once more.
    let left = this.left || 40;
    let plotWidth, columns, binned, yLow, yHigh, yTicks, yLabels;
    for (let attempt = 0; attempt < 2; attempt++) {
      plotWidth = Math.max(10, width - left - right);
      columns = Math.max(1, Math.floor(plotWidth));
      ({ binned, yLow, yHigh } = binSeries(store, x0, x1, columns));
      yTicks = niceTicks(yLow, yHigh, Math.max(2, Math.floor(plotHeight / 40)));
      yLabels = yTicks.map((tick) => significant(tick));
      const needed = Math.ceil(Math.max(24, ...yLabels.map((label) => context.measureText(label).width)) + 12);
      if (needed <= left && needed >= left - 10) break;
      left = needed;
    }
    this.left = left;
    const scale = columns / (x1 - x0);
    const yOf = (y) => top + plotHeight - ((y - yLow) / (yHigh - yLow)) * plotHeight;
    // grid and ticks
    context.strokeStyle = colours.grid;
    context.fillStyle = colours.muted;
    context.lineWidth = 1;
    context.textAlign = "right";
    context.textBaseline = "middle";
    // where each tick label went, for tests: [text, left, right] in CSS pixels of the canvas
    const drawn = { width, y: [], x: [], xTicks: 0 };
    yTicks.forEach((tick, index) => {
      const y = Math.round(yOf(tick)) + 0.5;
      context.beginPath();
      context.moveTo(left, y);
      context.lineTo(left + plotWidth, y);
      context.stroke();
      context.fillText(yLabels[index], left - 6, y);
      drawn.y.push([yLabels[index], left - 6 - context.measureText(yLabels[index]).width, left - 6]);
    });
    context.textAlign = "center";
    context.textBaseline = "top";
    const xTicks = store.config.time_axis
      ? timeTicks(x0, x1, Math.max(2, Math.floor(plotWidth / 90)), store.config.utc)
      : niceTicks(x0, x1, Math.max(2, Math.floor(plotWidth / 90))).map((value) => [value, significant(value)]);
    let previousRight = -Infinity;
    for (const [value, label] of xTicks) {
      const x = Math.round(left + (value - x0) * scale) + 0.5;
      if (x < left - 1 || x > left + plotWidth + 1) continue;
      drawn.xTicks += 1;
      context.beginPath();
      context.moveTo(x, top);
      context.lineTo(x, top + plotHeight);
      context.stroke();
      // centred under its tick, moved in at the canvas's edges so it is never clipped; never over the one before
      const labelWidth = context.measureText(label).width;
      const start = Math.min(Math.max(x - labelWidth / 2, 1), width - 1 - labelWidth);
      if (start < previousRight + 6 || start < 0) continue;
      context.fillText(label, start + labelWidth / 2, top + plotHeight + 5);
      drawn.x.push([label, start, start + labelWidth]);
      previousRight = start + labelWidth;
    }
    this.labels = drawn;
    // the data
    context.save();
    context.beginPath();
    context.rect(left, top, plotWidth, plotHeight);
    context.clip();
    for (const { series, mins, maxs } of binned) {
      context.strokeStyle = context.fillStyle = series.colour;
      context.lineWidth = 1.5;
      context.beginPath();
      let drawing = false;
      for (let c = 0; c < columns; c++) {
        if (mins[c] === Infinity) continue;
        const x = left + c + 0.5;
        const low = yOf(mins[c]);
        const high = yOf(maxs[c]);
        if (store.config.chart_kind === "scatter") {
          context.fillRect(x - 1.5, low - 1.5, 3, 3);
          if (high !== low) context.fillRect(x - 1.5, high - 1.5, 3, 3);
        } else if (store.config.chart_kind === "bar") {
          context.moveTo(x, yOf(0));
          context.lineTo(x, Math.abs(maxs[c]) > Math.abs(mins[c]) ? high : low);
        } else {
          if (!drawing) context.moveTo(x, low);
          else context.lineTo(x, low);
          if (high !== low) context.lineTo(x, high);
          drawing = true;
        }
      }
      context.stroke();
    }
    context.restore();
  }

  drawLegend(store) {
    const key = [...store.series.keys()].join("\n") + [...store.series.values()].map((s) => s.hidden).join();
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legend.replaceChildren();
    for (const [topic, series] of store.series) {
      const item = element("span", "rtnb-legend-item" + (series.hidden ? " rtnb-hidden" : ""));
      const swatch = element("span", "rtnb-swatch");
      swatch.style.background = series.colour;
      item.append(swatch, document.createTextNode(topic));
      item.title = "Click to hide or show";
      item.onclick = () => {
        series.hidden = !series.hidden;
        this.needsDraw = true;
      };
      this.legend.appendChild(item);
    }
  }

  destroy() {
    this.resizer.disconnect();
    super.destroy();
  }
}

/**
 * Per-pixel min/max of every shown series over [x0, x1] in `columns` columns (what a line through all the
 * points would cover), and the y range to draw (padded 5%; bars include 0).
 */
function binSeries(store, x0, x1, columns) {
  const scale = columns / (x1 - x0);
  const binned = [];
  let yLow = Infinity;
  let yHigh = -Infinity;
  for (const series of store.series.values()) {
    if (series.hidden || !series.ring.size) continue;
    const mins = new Float64Array(columns).fill(Infinity);
    const maxs = new Float64Array(columns).fill(-Infinity);
    const { xs, ys, head, size } = series.ring;
    const length = xs.length;
    // the ring as (at most) two contiguous runs: no modulo per point
    const runs = head + size <= length ? [[head, head + size]] : [[head, length], [0, head + size - length]];
    for (const [from, to] of runs) {
      for (let index = from; index < to; index++) {
        const x = xs[index];
        if (x < x0 || x > x1) continue;
        let column = Math.floor((x - x0) * scale);
        if (column >= columns) column = columns - 1;
        const y = ys[index];
        if (y < mins[column]) mins[column] = y;
        if (y > maxs[column]) maxs[column] = y;
      }
    }
    for (let c = 0; c < columns; c++) {
      if (mins[c] < yLow) yLow = mins[c];
      if (maxs[c] > yHigh) yHigh = maxs[c];
    }
    binned.push({ series, mins, maxs });
  }
  if (store.config.chart_kind === "bar") {
    yLow = Math.min(0, yLow);
    yHigh = Math.max(0, yHigh);
  }
  if (!(yHigh >= yLow)) {
    yLow = 0;
    yHigh = 1;
  }
  if (yHigh === yLow) {
    yLow -= 1;
    yHigh += 1;
  }
  const pad = (yHigh - yLow) * 0.05;
  return { binned, yLow: yLow - pad, yHigh: yHigh + pad };
}

function niceTicks(low, high, count) {
  const span = high - low;
  if (!(span > 0)) return [low];
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  const ticks = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) ticks.push(Math.abs(value) < step * 1e-9 ? 0 : value);
  return ticks;
}

const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(low, high, count, utc) {
  const raw = (high - low) / count;
  const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  const offset = utc ? 0 : -new Date(low * 1000).getTimezoneOffset() * 60; // ticks on round local times
  const ticks = [];
  for (let value = Math.ceil((low + offset) / step) * step - offset; value <= high; value += step) {
    const date = new Date(value * 1000);
    const parts = utc
      ? [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
      : [date.getHours(), date.getMinutes(), date.getSeconds()];
    let label = parts.map((part) => String(part).padStart(2, "0")).join(":");
    if (step < 1) label += "." + String(utc ? date.getUTCMilliseconds() : date.getMilliseconds()).padStart(3, "0");
    if (step >= 60) label = label.slice(0, 5);
    ticks.push([value, label]);
  }
  return ticks;
}
