// rtnb views, part 6: the Dashboard, a grid whose cells are drawn by this same library.
//
// Each child is a widget reference. An rtnb child (a view, a Status panel, a control) is drawn by
// render() with the child's own model, fetched from the widget manager: no ipywidgets view manager is
// involved, so the grid works wherever the views do (JupyterLab, Notebook 7, Voilà, marimo). Any other
// ipywidget is drawn by the host's widget manager (create_view) where it has one, else its cell says so.

function referenceId(reference) {
  if (!reference) return null;
  if (typeof reference === "string") return reference.replace(/^IPY_MODEL_/, "");
  return reference.model_id || null;
}

function isRtnbModel(model) {
  return typeof model.get("kind") === "string" && Boolean(model.get("kind")) && typeof model.get("library_version") === "string";
}

class DashboardRender {
  constructor(model, el) {
    this.model = model;
    this.config = model.get("config");
    this.root = element("div", "rtnb-view rtnb-dashboard");
    this.root.dataset.rtnbPoints = "0";
    this.root.dataset.rtnbChildren = "0";
    if (this.config.title) this.root.appendChild(element("h3", "rtnb-dashboard-title", this.config.title));
    this.grid = element("div", "rtnb-dashboard-grid");
    this.grid.style.gridTemplateColumns = this.config.template;
    this.grid.style.gap = `${this.config.gap}px`;
    this.root.appendChild(this.grid);
    el.appendChild(this.root);
    this.alive = true;
    this.cleanups = [];
    const children = model.get("children") || [];
    this.pending = children.map((reference, index) => {
      const cell = element("div", "rtnb-dashboard-cell");
      cell.dataset.rtnbChild = String(index);
      this.grid.appendChild(cell);
      return this.fill(cell, reference);
    });
    Promise.allSettled(this.pending).then(() => {
      if (this.alive) this.root.dataset.rtnbChildren = String(children.length);
    });
    this.update();
    this.timer = setInterval(() => this.update(), 500);
  }

  note(cell, text) {
    cell.replaceChildren(element("div", "rtnb-note rtnb-dashboard-note", text));
  }

  async fill(cell, reference) {
    const manager = this.model.widget_manager;
    const id = referenceId(reference);
    if (!id || !manager || typeof manager.get_model !== "function") {
      this.note(cell, "This host gives widgets no way to reach each other: show this item in a cell of its own.");
      return;
    }
    let child;
    try {
      child = await manager.get_model(id);
    } catch (error) {
      this.note(cell, `Item not found on this page (${error && error.message ? error.message : error}).`);
      return;
    }
    if (!this.alive) return;
    if (isRtnbModel(child)) {
      cell.dataset.rtnbKind = child.get("kind");
      this.cleanups.push(render(child, cell));
      return;
    }
    if (typeof manager.create_view !== "function") {
      this.note(cell, "This host cannot draw an ipywidget inside another widget: show this item in a cell of its own.");
      return;
    }
    try {
      const view = await manager.create_view(child, {});
      if (!this.alive) {
        view.remove();
        return;
      }
      cell.appendChild(view.el);
      if (typeof view.trigger === "function") view.trigger("displayed");
      this.cleanups.push(() => view.remove());
    } catch (error) {
      this.note(cell, `This item could not be drawn here (${error && error.message ? error.message : error}).`);
    }
  }

  /** The root's points (its views', Status panels left out: they count their views again) and mode. */
  update() {
    let points = 0;
    let mode = null;
    for (const view of this.grid.querySelectorAll(":scope > .rtnb-dashboard-cell > .rtnb-view")) {
      if (view.classList.contains("rtnb-status")) continue;
      points += Number(view.dataset.rtnbPoints || 0);
      const viewMode = view.dataset.rtnbMode;
      if (viewMode === "relay") mode = "relay";
      else if (viewMode === "direct" && mode === null) mode = "direct";
    }
    this.root.dataset.rtnbPoints = String(points);
    if (mode) this.root.dataset.rtnbMode = mode;
  }

  destroy() {
    this.alive = false;
    clearInterval(this.timer);
    for (const cleanup of this.cleanups) {
      try {
        if (typeof cleanup === "function") cleanup();
      } catch (error) {
        // a child already gone with its page: nothing left to clean
      }
    }
    this.root.remove();
  }
}
