"""Controls that publish: a slider, a toggle, a button and a text box bound to a topic.

IoT dashboards need to talk back: ``Slider("plant/boiler/cmd", field="setpoint")``
publishes ``{"setpoint": 80}`` when the user lets go of the slider. Widget
events arrive on the kernel's main thread; publishing does not wait for the
hub's acknowledgement (``ack=False``), so a slow network never freezes the UI.
A failed publish is logged, counted in :attr:`Control.errors` and kept in
:attr:`Control.last_error`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.errors import RtnbError
from ..core.topics import validate_topic
from ._view import ViewState, open_client

__all__ = ["Button", "Control", "Slider", "TextBox", "Toggle"]

log = logging.getLogger("rtnb.controls")


class Control:
    """Base of controls: a widget whose user actions publish to ``topic``.

    Args:
        topic: a concrete topic (wildcards are refused).
        field: publish ``{field: value}``; None publishes the bare value.
        client, url, token: where to publish (the shared client by default).
    """

    def __init__(
        self,
        topic: str,
        *,
        field: str | None = None,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        validate_topic(topic)
        self.topic = topic
        self.field = field
        self.state = ViewState.RUNNING
        self.published = 0
        self.errors = 0
        self.last_error: RtnbError | None = None
        self.client, self._owns_client = open_client(client, url, token)
        self.widget: Any = None

    def payload(self, value: Any) -> Any:
        return value if self.field is None else {self.field: value}

    def publish(self, value: Any) -> None:
        """Publish ``value`` (wrapped in ``{field: value}`` when a field is set)."""
        if self.state is ViewState.STOPPED:
            return
        try:
            self.client.publish(self.topic, self.payload(value), ack=False)
        except RtnbError as error:
            self.errors += 1
            self.last_error = error
            log.warning("control for %s could not publish: %s", self.topic, error)
            return
        self.published += 1

    def _bind(self, widget: Any, event: str = "value") -> None:
        self.widget = widget
        if event:
            widget.observe(lambda change: self.publish(change["new"]), names=event)
        widget.observe(self._on_comm_change, names="comm")

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
            self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} -> {self.topic!r} {self.state.value}: {self.published} published>"


class Slider(Control):
    """A float slider; publishes when released (``continuous=True``: while dragging)."""

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
        import ipywidgets

        super().__init__(topic, **options)
        self._bind(
            ipywidgets.FloatSlider(
                min=min, max=max, step=step, value=min if value is None else value,
                description=description or (self.field or topic.rsplit("/", 1)[-1]),
                continuous_update=continuous,
            )
        )


class Toggle(Control):
    """An on/off button; publishes ``True``/``False``."""

    def __init__(self, topic: str, value: bool = False, *, description: str = "", **options: Any) -> None:
        import ipywidgets

        super().__init__(topic, **options)
        self._bind(ipywidgets.ToggleButton(value=value, description=description or (self.field or "on")))


class Button(Control):
    """A button; each click publishes ``payload`` as given (``field`` does not apply)."""

    def __init__(self, topic: str, payload: Any = True, *, description: str = "Send", **options: Any) -> None:
        import ipywidgets

        super().__init__(topic, **options)
        self.click_payload = payload
        button = ipywidgets.Button(description=description)
        button.on_click(lambda _button: self.publish(self.click_payload))
        self._bind(button, event="")

    def payload(self, value: Any) -> Any:
        return value


class TextBox(Control):
    """A text box; publishes its text when the user presses Enter or leaves it."""

    def __init__(self, topic: str, value: str = "", *, description: str = "", **options: Any) -> None:
        import ipywidgets

        super().__init__(topic, **options)
        self._bind(ipywidgets.Text(value=value, description=description, continuous_update=False))
