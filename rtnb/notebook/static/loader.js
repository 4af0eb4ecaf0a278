// rtnb view loader: each view widget's own ESM. It finds the views library (rtnb.js, the
// CSS and views.js: see rtnb/notebook/_assets.py), evaluates it once per page and calls it.
// The library comes from the shared ViewLibrary widget through the widget manager, or,
// in hosts without one, by asking the kernel once ({op: "library"}).
const CACHE = "__rtnb_views_library__";

function fromWidgetManager(model) {
  const reference = model.get("library");
  const manager = model.widget_manager;
  if (!reference || !manager || typeof manager.get_model !== "function") return null;
  const id = typeof reference === "string" ? reference.replace(/^IPY_MODEL_/, "") : reference.model_id;
  return manager.get_model(id).then((library) => library.get("source"));
}

function fromKernel(model) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("rtnb: the kernel did not send the views library")), 30000);
    const handler = (message) => {
      if (!message || message.op !== "library") return;
      clearTimeout(timer);
      model.off("msg:custom", handler);
      resolve(message.source);
    };
    model.on("msg:custom", handler);
    model.send({ op: "library" });
  });
}

async function evaluate(source) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return await import(/* webpackIgnore: true */ url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

function library(model) {
  const cache = (globalThis[CACHE] ??= {});
  const version = model.get("library_version");
  if (!cache[version]) {
    cache[version] = (async () => {
      let source = null;
      try {
        source = await fromWidgetManager(model);
      } catch (error) {
        source = null;
      }
      return evaluate(source || (await fromKernel(model)));
    })();
    cache[version].catch(() => delete cache[version]);
  }
  return cache[version];
}

export default {
  async render({ model, el }) {
    const views = await library(model);
    return views.render(model, el);
  },
};
