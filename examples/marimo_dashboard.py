"""A live rtnb dashboard as a marimo app.

    marimo run examples/marimo_dashboard.py        # the app
    marimo edit examples/marimo_dashboard.py       # the notebook

The kernel starts an embedded hub and simulated devices; the views are
anywidgets, drawn in the browser straight from the hub (badge ``direct``), or
relayed through marimo's kernel where the browser cannot reach the hub. A view
is shown as a cell's last expression, or wrapped with ``mo.ui.anywidget``; so is a
``Dashboard``, whose grid draws its views itself.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    import rtnb

    return mo, rtnb


@app.cell
def _(mo):
    mo.md("# Plant\nSimulated devices publish their temperature ten times a second.")
    return


@app.cell
def _(rtnb):
    hub = rtnb.start_hub()
    sim = rtnb.sim.sensors(hub, ["plant/+/temp"], rate=10, seed=7)
    return hub, sim


@app.cell
def _(hub, mo, rtnb):
    chart = rtnb.LiveChart("plant/+/temp", y="value", window=600, title="Temperatures", height=280)
    mo.ui.anywidget(chart)
    return (chart,)


@app.cell
def _(hub, rtnb):
    boiler = rtnb.LiveValue("plant/boiler/temp", fmt="{value:.1f} °C", label="Boiler", sparkline=True)
    boiler  # noqa: B018  (a cell shows its last expression)
    return (boiler,)


@app.cell
def _(hub, rtnb):
    gauge = rtnb.Gauge(
        "plant/turbine/temp",
        min=0,
        max=120,
        units=" °C",
        label="Turbine",
        thresholds=[(80, "green"), (100, "orange"), (120, "red")],
    )
    gauge  # noqa: B018
    return (gauge,)


@app.cell
def _(hub, mo, rtnb):
    pump = rtnb.LiveValue("plant/pump/temp", fmt="{value:.1f} °C", label="Pump", sparkline=True)
    pump_table = rtnb.LiveTable("plant/#")
    board = rtnb.Dashboard([pump, pump_table], columns=2, title="Pump")
    mo.ui.anywidget(board)
    return (board,)


if __name__ == "__main__":
    app.run()
