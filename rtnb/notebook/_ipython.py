"""IPython's display functions with types (IPython leaves them unannotated).

Imported lazily, so a view module can be imported where IPython is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["display", "update_display"]


def display(*objects: Any, **options: Any) -> Any:
    """:func:`IPython.display.display`."""
    from IPython.display import display as ipython_display

    show: Callable[..., Any] = ipython_display
    return show(*objects, **options)


def update_display(obj: Any, **options: Any) -> None:
    """:func:`IPython.display.update_display`."""
    from IPython.display import update_display as ipython_update_display

    update: Callable[..., None] = ipython_update_display
    update(obj, **options)
