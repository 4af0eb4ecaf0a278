"""The browser modules and their TypeScript declarations: served by every hub beside
rtnb.js with the right content types (under a prefix too), and shipped in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tornado.httpclient

from rtnb.server.pages import CLIENT_FILES, STATIC_DIRECTORY
from rtnb.testing import running_hub

ROOT = Path(__file__).resolve().parents[2]
CONTENT_TYPES = {
    "rtnb.js": "text/javascript; charset=utf-8",
    "rtnb.d.ts": "application/typescript; charset=utf-8",
    "rtnb-react.js": "text/javascript; charset=utf-8",
    "rtnb-react.d.ts": "application/typescript; charset=utf-8",
    "rtnb-rtc.js": "text/javascript; charset=utf-8",
    "rtnb-rtc.d.ts": "application/typescript; charset=utf-8",
    "rtc": "text/html; charset=utf-8",
    "static/rtc.js": "text/javascript; charset=utf-8",
    "static/rtc.css": "text/css; charset=utf-8",
}


@pytest.mark.parametrize("prefix", ["", "/rtnb"])
async def test_every_module_is_served_with_its_content_type(prefix: str) -> None:
    assert set(CLIENT_FILES) <= set(CONTENT_TYPES)
    http = tornado.httpclient.AsyncHTTPClient()
    async with running_hub(prefix=prefix) as server:
        for path, content_type in CONTENT_TYPES.items():
            response = await http.fetch(f"{server.url}/{path}")
            assert response.code == 200, path
            assert response.headers["Content-Type"] == content_type, path
            name = "rtc.html" if path == "rtc" else path.removeprefix("static/")
            assert response.body == (STATIC_DIRECTORY / name).read_bytes(), path


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_modules_their_declarations_and_the_rtc_page(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("rtnb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"rtnb/server/static/{name}" for name in (*CLIENT_FILES, "rtc.html", "rtc.js", "rtc.css")}
    assert wanted <= names, sorted(wanted - names)
