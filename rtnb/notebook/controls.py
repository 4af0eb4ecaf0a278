"""Controls that publish: a slider, a toggle, a button and a text box bound to a topic.

IoT dashboards need to talk back: ``Slider("plant/boiler/cmd", field="setpoint")``
publishes ``{"setpoint": 80}`` when the user lets go of the slider. Controls are
anywidgets drawn by the views' library (root class ``rtnb-control``: they show no
data, so they are not ``rtnb-view``\\ s). The browser sets the control's synced
``value`` (or, for a button, sends ``{"op": "click"}``); the kernel publishes, so
a control needs the kernel (a cell that blocks delays its publishes) and the
browser never needs a hub token that can write. Setting ``control.value`` from
Python publishes too. Publishing does not wait for the hub's acknowledgement
(``ack=False``), so a slow network never freezes the UI. A failed publish is
logged, counted in :attr:`Control.errors` and kept in :attr:`Control.last_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import traitlets

from ..core.errors import RtnbError
from ..core.topics import validate_topic
from ._view import ViewState, open_client
from ._widget import ViewWidget

__all__ = ["Button", "Control", "Slider", "TextBox", "Toggle"]

log = logging.getLogger("rtnb.controls")


class Control(ViewWidget):
    """Base of controls: an anywidget whose user actions publish to ``topic``.

    Args:
        topic: a concrete topic (wildcards are refused).
        field: publish ``{field: value}``; None publishes the bare value.
        client, url, token: where to publish (the shared client by default).
    """

    #: the browser's control: "slider", "toggle", "button" or "text"
    control_kind = ""
    #: the value's type as published (a browser sends JSON numbers and strings)
    coerce: Callable[[Any], Any] = staticmethod(lambda value: value)
    value = traitlets.Any(None).tag(sync=True)
    # until __init__ runs (a refused control is still collected: Widget.__del__ closes it)
    state = ViewState.STOPPED
    widget: Any = None
    _owns_client = False

    def __init__(
        self,
        topic: str,
        *,
        field: str | None = None,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        value: Any = None,
        description: str = "",
        options: dict[str, Any] | None = None,
    ) -> None:
        validate_topic(topic)
        self.topic = topic
        self.field = field
        self.published = 0
        self.errors = 0
        self.last_error: RtnbError | None = None
        self.client, self._owns_client = open_client(client, url, token)
        self.state = ViewState.RUNNING
        config = {"control": self.control_kind, "topic": topic, "description": description, **(options or {})}
        super().__init__(kind="control", transport="relay", config=config, value=value)
        self.widget = self
        if self.control_kind != "button":
            self.observe(lambda change: self.publish(change["new"]), names="value")
        self.on_msg(self._on_browser_message)
        self.observe(self._on_comm_change, names="comm")

    def payload(self, value: Any) -> Any:
        return value if self.field is None else {self.field: value}

    def publish(self, value: Any) -> None:
        """Publish ``value`` (wrapped in ``{field: value}`` when a field is set)."""
        if self.state is ViewState.STOPPED:
            return
        try:
            self.client.publish(self.topic, self.payload(self.coerce(value)), ack=False)
        except (RtnbError, TypeError, ValueError) as error:
            self.errors += 1
            self.last_error = error if isinstance(error, RtnbError) else None
            log.warning("control for %s could not publish: %s", self.topic, error)
            return
        self.published += 1

    def _on_browser_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("op") == "library":
            from ._assets import library_reply

            self.send(library_reply())

    def _on_comm_change(self, change: dict[str, Any]) -> None:
        if change.get("new") is None:
            self.stop()

    def stop(self) -> None:
        """Stop publishing (and close the control's own client). Idempotent."""
        if self.state is ViewState.STOPPED:
            return
        self.state = ViewState.STOPPED
        if self._owns_client:
            self.client.close()

    def close(self) -> None:
        self.stop()
        if self.widget is not None:
            super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} -> {self.topic!r} {self.state.value}: {self.published} published>"


class Slider(Control):
    """A slider of numbers; publishes when released (``continuous=True``: while dragging)."""

    control_kind = "slider"
    coerce = staticmethod(float)

    def __init__(
        self,
        topic: str,
        min: float = 0.0,
        max: float = 100.0,
        step: float = 1.0,
        value: float | None = None,
        *,
        description: str = "",
        continuous: bool = False,
        **options: Any,
    ) -> None:
        label = description or (options.get("field") or topic.rsplit("/", 1)[-1])
        super().__init__(
            topic,
            value=float(min if value is None else value),
            description=label,
            options={"min": min, "max": max, "step": step, "continuous": continuous},
            **options,
        )


class Toggle(Control):
    """An on/off button; publishes ``True``/``False``."""

    control_kind = "toggle"
    coerce = staticmethod(bool)

    def __init__(self, topic: str, value: bool = False, *, description: str = "", **options: Any) -> None:
        super().__init__(topic, value=bool(value), description=description or (options.get("field") or "on"), **options)


class Button(Control):
    """A button; each click publishes ``payload`` as given (``field`` does not apply)."""

    control_kind = "button"

    def __init__(self, topic: str, payload: Any = True, *, description: str = "Send", **options: Any) -> None:
        self.click_payload = payload
        super().__init__(topic, description=description, **options)

    def click(self) -> None:
        """What a click in the browser does: publish the button's payload."""
        self.publish(self.click_payload)

    def payload(self, value: Any) -> Any:
        return value

    def _on_browser_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("op") == "click":
            self.click()
        else:
            super()._on_browser_message(widget, content, buffers)


class TextBox(Control):
    """A text box; publishes its text when the user presses Enter or leaves it."""

    control_kind = "text"
    coerce = staticmethod(str)

    def __init__(self, topic: str, value: str = "", *, description: str = "", **options: Any) -> None:
        super().__init__(topic, value=value, description=description, **options)
