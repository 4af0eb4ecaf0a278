"""Jupyter's entry points: load (mount the routes), start (hub and runtime file), stop."""

from __future__ import annotations

import os
from collections.abc import Callable

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp

from ...core.hub_info import HUB_INFO_ENV
from ._handlers import jupyter_handler_class
from ._hub import MountedHub, Route
from ._settings import MQTT_COMPONENT, RtnbExtension

__all__ = ["SETTINGS_KEY", "RtnbExtensionApp", "load_jupyter_server_extension", "start_jupyter_server_extension"]

#: key of the running :class:`MountedHub` in the Jupyter web app's settings
SETTINGS_KEY = "rtnb_hub_extension"


def load_jupyter_server_extension(serverapp: ServerApp) -> MountedHub:
    """Mount the hub's routes in ``serverapp`` (Jupyter's load step, via :class:`RtnbExtensionApp`)."""
    extension = MountedHub(serverapp, RtnbExtension(config=serverapp.config))
    routes = [(path, jupyter_handler_class(handler, extension), kwargs) for path, handler, kwargs in extension.routes()]
    # jupyter_server's override (it checks the handlers' auth decorators) has no annotations
    add_handlers: Callable[[str, list[Route]], None] = serverapp.web_app.add_handlers
    add_handlers(".*$", routes)
    serverapp.web_app.settings[SETTINGS_KEY] = extension
    # Kernels inherit the server's environment: this tells them where the runtime file is.
    os.environ[HUB_INFO_ENV] = str(extension.runtime_file_path())
    serverapp.log.info("rtnb hub mounted at %s/", extension.prefix)
    return extension


async def start_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Start the hub on Jupyter's running loop and publish its address to kernels."""
    extension: MountedHub = serverapp.web_app.settings[SETTINGS_KEY]
    await extension.ensure_started()
    path = extension.write_runtime_file()
    if path is not None:
        serverapp.log.info("rtnb hub address for kernels written to %s", path)


class RtnbExtensionApp(ExtensionApp):
    """The extension point Jupyter links, loads, starts and, at shutdown, stops.

    Options stay on :class:`~rtnb.server.jupyter.RtnbExtension` (``c.RtnbExtension.*``);
    this class only ties the hub's lifetime to the server's. Jupyter's shutdown path
    (``ServerApp._cleanup`` -> ``cleanup_extensions``) awaits :meth:`stop_extension`
    before it stops the event loop, so the 1001 close frames and the bridge's
    disconnect go out while the loop still runs.
    """

    name = "rtnb"

    hub_extension: MountedHub | None = None

    def initialize_settings(self) -> None:
        """Mount the hub's routes (Jupyter's load step; bad ``mqtt*`` settings raise here)."""
        if self.serverapp is None:
            raise RuntimeError("rtnb: the extension was loaded without a Jupyter server (ServerApp).")
        self.hub_extension = load_jupyter_server_extension(self.serverapp)

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        if self.hub_extension is None:
            return  # loading failed; Jupyter logged why
        await start_jupyter_server_extension(serverapp)

    async def stop_extension(self) -> None:
        """Close hub clients with 1001, stop the MQTT bridge, remove the runtime file."""
        if self.hub_extension is None:
            return
        await self.hub_extension.stop()
        bridge = self.hub_extension.hub.components.get(MQTT_COMPONENT)
        bridge_state = getattr(getattr(bridge, "state", None), "value", None)
        self.log.info(
            "rtnb hub at %s/ stopped%s",
            self.hub_extension.prefix,
            "" if bridge_state is None else f" (MQTT bridge {bridge_state})",
        )
