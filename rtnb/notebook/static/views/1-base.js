// rtnb views, part 1 of 5: constants, helpers and formatting.
//
// The views: the browser side of LiveChart, LiveValue, Gauge, LiveTable, Status, the controls and Dashboard.
//
// The parts (1-base, 2-stores, 3-feed, 4-chart, 5-render, 6-dashboard) are joined in order after rtnb.js
// (RtnbClient, topicMatches) and the CSS (RTNB_VIEWS_CSS) into one module by rtnb/notebook/_assets.py; the loader
// evaluates that module once per page and calls render(model, el) per view.
//
// Per view model there is one Feed on the page (shared by every render of that
// model: a re-rendered output reuses its window, so it is never blank). A Feed
// takes messages from the hub directly (RtnbClient) or from the kernel (relay:
// typed arrays of new points, or rows), decides by offsets what is new, and
// hands it to the view's Store. Renderers draw the Store at most ~30 times a
// second, only when it changed. The browser writes to the kernel only when its
// data path changes ({op: "relay", since} / {op: "direct"}).

const FEEDS = (globalThis.__rtnb_view_feeds__ ??= new Map()); // view_id -> Feed
const FALLBACK_MS = 3000; // auto: relay if direct is not open by then (or lost for that long)
const MIN_FRAME_MS = 33; // draw at most ~30 times a second
const SCROLL_AHEAD = 1; // seconds a live time axis keeps scrolling past the newest message
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** The views' CSS, once per document or shadow root (marimo renders anywidgets inside shadow roots). */
function injectCss(el) {
  const root = el.getRootNode ? el.getRootNode() : document;
  const host = typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot ? root : document.head;
  if (host.querySelector(":scope > style.rtnb-views-css")) return;
  const style = document.createElement("style");
  style.className = "rtnb-views-css";
  style.textContent = RTNB_VIEWS_CSS;
  host.appendChild(style);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function extract(data, path) {
  if (path === null || path === undefined) return data;
  let value = data;
  for (const key of path.split(".")) {
    if (value !== null && typeof value === "object" && !Array.isArray(value) && key in value) value = value[key];
    else return undefined;
  }
  return value;
}

function toNumber(value) {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  return null;
}

function significant(value) {
  if (!Number.isFinite(value)) return String(value);
  const text = Number(value.toPrecision(4));
  return Math.abs(text) >= 1e6 || (Math.abs(text) < 1e-3 && text !== 0) ? text.toExponential(3) : String(text);
}

/** Python's str.format for {name} and {name:[,][.N][f|g|e|d|%]} (what the kernel checks before choosing direct). */
export function formatPython(template, context) {
  return template.replace(/\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?::(,?)(?:\.(\d+))?([fgde%]?))?\}/g, (match, name, comma, digits, type) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    if (!(name in context)) return `[format error: '${name}']`;
    const value = context[name];
    if (!comma && digits === undefined && !type) return typeof value === "object" ? JSON.stringify(value) : String(value);
    if (typeof value !== "number") return `[format error: not a number]`;
    const precision = digits === undefined ? 6 : Number(digits);
    let text;
    switch (type) {
      case "f": text = value.toFixed(precision); break;
      case "e": text = value.toExponential(precision).replace(/e([+-])(\d)$/, "e$10$2"); break;
      case "%": return (value * 100).toFixed(precision) + "%";
      case "d": text = String(Math.trunc(value)); break;
      case "g": text = String(Number(value.toPrecision(Math.max(1, precision)))); break;
      default: text = digits === undefined ? String(value) : String(Number(value.toPrecision(Math.max(1, precision))));
    }
    if (comma) {
      const [whole, fraction] = text.split(".");
      text = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction !== undefined ? "." + fraction : "");
    }
    return text;
  });
}

function formatValue(config, message) {
  const value = extract(message.data, config.field);
  if (config.fmt) {
    const context = message.data && typeof message.data === "object" && !Array.isArray(message.data) ? { ...message.data } : {};
    if (!("value" in context)) context.value = value === undefined ? message.data : value;
    if (!("topic" in context)) context.topic = message.topic;
    if (!("ts" in context)) context.ts = message.ts;
    return formatPython(config.fmt, context);
  }
  if (value === undefined) return "—";
  if (typeof value === "number" && !Number.isInteger(value)) return significant(value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
