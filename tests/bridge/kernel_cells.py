"""Run code cells in a real IPython kernel (jupyter_client), keeping each cell's outputs.

What a notebook cell shows is what the kernel sends on IOPub while (and after)
it runs: stream text on stdout/stderr, results, errors. Tests use this to check
what a reader would see, e.g. that a cell prints one line and no red text.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class CellOutput:
    stdout: str = ""
    stderr: str = ""
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Kernel:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.stray: list[dict[str, Any]] = []  # IOPub messages of no cell we ran (e.g. late thread output)

    def run(self, code: str, timeout: float = 60.0) -> CellOutput:
        """Execute ``code`` as one cell and collect its outputs until the kernel is idle again."""
        started = time.monotonic()
        message_id = self.client.execute(code)
        output = CellOutput()
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the cell did not finish within {timeout}s: {code!r}")
            try:
                message = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != message_id:
                self.stray.append(message)
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    output.stdout += content["text"]
                else:
                    output.stderr += content["text"]
            elif kind == "error":
                output.errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                output.seconds = time.monotonic() - started
                return output

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """IOPub messages that arrive in the next ``seconds`` while no cell runs (kept in ``stray``)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.stray.append(self.client.get_iopub_msg(timeout=remaining))
            except queue.Empty:
                break
        return self.stray


@contextmanager
def running_kernel(environment: dict[str, str] | None = None) -> Iterator[Kernel]:
    """A fresh python3 kernel of this environment, shut down at the end."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, **(environment or {})})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
