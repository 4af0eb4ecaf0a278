"""Simulated devices, so a demo or a test has live data at once.

::

    sim = rtnb.sim.sensors(hub.url, ["plant/+/temp"], devices=("boiler", "turbine", "pump"), rate=10.0)
    ...
    sim.stop()

Each device fills the ``+`` of each topic pattern (``plant/boiler/temp``) and
publishes ``{"value": float, "unit": "°C", "setpoint": float, "on": bool}``
``rate`` times a second: a random walk drawn towards its setpoint (towards the
ambient value when switched off). Each device obeys commands published on
``<prefix>/<device>/cmd`` (``plant/boiler/cmd``), the prefix being the levels
before the ``+``: ``{"setpoint": 80}`` (for its first metric, or the metric
named by ``"metric": "temp"``) and ``{"on": false}``. A malformed command is
refused with a logged warning and counted in :attr:`Simulation.rejected`.

Where the hub runs in this process (a :class:`~rtnb.server.runner.HubServer`,
an embedded hub, a :class:`~rtnb.server.hub.Hub`), devices publish straight
into it on its own event loop. Given a URL, they connect with the Python
:class:`~rtnb.client.AsyncClient` from a thread of their own.

The package has two parts: :class:`SensorModel` (``_model.py``) holds the
device physics and the commands, and takes no clock or socket, so a seeded
model gives the same values everywhere; :class:`Simulation` and
:func:`sensors` (``_simulation.py``) run a model against a hub, a client or an
MQTT broker.
"""

from __future__ import annotations

from ._model import DEFAULT_DEVICES, PULL, Device, Metric, MetricProfile, SensorModel
from ._simulation import Simulation, sensors

__all__ = ["DEFAULT_DEVICES", "PULL", "Device", "Metric", "MetricProfile", "SensorModel", "Simulation", "sensors"]
