"""The Jupyter server extension: the hub inside Jupyter, behind Jupyter's auth.

Installing rtnb drops ``jupyter_server_config.d/rtnb.json`` into
``etc/jupyter``, which enables the ``rtnb.notebook`` extension point (it
delegates here; ``jpserver_extensions = {"rtnb.server.jupyter": True}`` names
this package directly — enable one of the two, not both). When the server
loads it, a :class:`~rtnb.server.hub.Hub` is built that runs on Jupyter's own
event loop, with the hub's routes (the same ones ``rtnb serve`` has, from
:func:`rtnb.server.app.make_handlers`) mounted under ``{base_url}rtnb/``. That
is what makes Binder and JupyterHub work: browsers, kernels and devices all
reach one hub through the one port the server exposes.

Security (:mod:`._handlers`): every mounted handler is rebuilt as a subclass
mixing in Jupyter's ``JupyterHandler``, so a request must carry what Jupyter
accepts (its login cookie, or the server token as ``?token=`` or
``Authorization: token ...``), is checked by Jupyter's authorizer (resource
``"rtnb"``), and obeys the hub's one :class:`~rtnb.core.origins.RequestGuard`
built from Jupyter's settings: ``Host`` names (``allow_remote_access``,
``local_hostnames``, plus ``c.RtnbExtension.allowed_hosts``) and origins
(``allow_origin``, ``allow_origin_pat``, plus ``c.RtnbExtension.allowed_origins``;
a foreign ``Origin`` is refused even with a token). The extension then writes a
runtime file (:mod:`rtnb.core.hub_info` names it) so kernels find the hub.

Lifecycle (:mod:`._app`): the extension point is an ``ExtensionApp``
(:class:`RtnbExtensionApp`) because jupyter_server 2 calls shutdown hooks only
on those: when the server stops (SIGTERM, Ctrl-C answered, ``/api/shutdown``,
idle culling), its ``cleanup_extensions`` awaits
:meth:`RtnbExtensionApp.stop_extension`, which closes every hub client with
1001, stops the MQTT bridge and the backplane, and removes the runtime file.

Settings (:mod:`._settings`, ``jupyter_server_config.py``): ``c.RtnbExtension.mount = "rtnb"``,
``c.RtnbExtension.history_messages = 1000``, ``c.RtnbExtension.allowed_origins = [...]``,
``c.RtnbExtension.allowed_hosts = ["hub.lan"]`` (``Host`` names answered besides loopback ones and
Jupyter's ``local_hostnames``; the DNS rebinding defence, as ``rtnb serve --allow-host``),
``c.RtnbExtension.redis = "redis://127.0.0.1:6379/0"`` (servers sharing one Redis share topics),
``c.RtnbExtension.mqtt = "mqtt://127.0.0.1:1883"`` with ``c.RtnbExtension.mqtt_in = ["plant/#"]``,
``mqtt_out``, ``mqtt_prefix`` and ``mqtt_options`` (an MQTT bridge started with the hub on
Jupyter's loop; see ``docs/mqtt.md``). Invalid MQTT settings stop the extension from loading
with a typed :mod:`rtnb.core.errors` error in the server's log.

An integration above the server: it imports the server, the bridge and core, never
:mod:`rtnb.notebook` (the kernels' side), so loading it adds no notebook views.
"""

from __future__ import annotations

from typing import Any

from ._app import RtnbExtensionApp, load_jupyter_server_extension, start_jupyter_server_extension
from ._handlers import jupyter_handler_class
from ._hub import MountedHub
from ._settings import RtnbExtension, mqtt_options_from_settings

__all__ = [
    "MountedHub",
    "RtnbExtension",
    "RtnbExtensionApp",
    "jupyter_handler_class",
    "load_jupyter_server_extension",
    "mqtt_options_from_settings",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter's hook: the extension point is :class:`RtnbExtensionApp`, stopped at shutdown."""
    return [{"module": __name__, "app": RtnbExtensionApp}]


# Module-style hooks, used only by a package whose metadata names no ``app``
# (the hub then starts but is never stopped: Jupyter has no module stop hook).
_load_jupyter_server_extension = load_jupyter_server_extension
_start_jupyter_server_extension = start_jupyter_server_extension
