"""A saved notebook shows each view's last frame without a kernel: ``jupyter nbconvert --to html``, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

CELLS = [
    "import rtnb, time\nhub = rtnb.start_hub()\n"
    "for i in range(60):\n    hub.call(hub.hub.publish_now, 'saved/a', {'value': float(i % 7), 'note': '<b>x</b>'})",
    "chart = rtnb.LiveChart('saved/+', window=100, title='Saved <chart>')\nchart",
    "value = rtnb.LiveValue('saved/a', fmt='{value:.1f} units')\ngauge = rtnb.Gauge('saved/a', min=0, max=10)\n"
    "table = rtnb.LiveTable('saved/+')\nrtnb.Dashboard([value, gauge, table], columns=2)",
    # new data after the views exist, as well as their history
    "for i in range(60, 90):\n"
    "    hub.call(hub.hub.publish_now, 'saved/a', {'value': float(i % 7), 'note': '<b>x</b>'})\n"
    "time.sleep(1.0)",
]


def test_nbconvert_html_shows_every_views_last_frame(tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
            for source in CELLS
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "saved.ipynb"
    path.write_text(json.dumps(notebook))
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(path)],
        check=True,
        capture_output=True,
        timeout=150,
    )
    page = (tmp_path / "saved.html").read_text()
    assert page.count('class="rtnb-static rtnb-static-chart"') == 1
    assert "Saved &lt;chart&gt;" in page and "<polyline" in page and "saved/a" in page
    assert "5.0 units" in page  # the value's last frame (89 % 7), formatted by the kernel
    assert "rtnb-static-gauge" in page and "rtnb-static-table" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # payloads escaped
