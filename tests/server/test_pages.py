"""The hub's browser side over loopback HTTP: demo page, rtnb.js, plotly.js, /topics, prefixes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from rtnb.server.pages import STATIC_DIRECTORY, TopicActivity, plotly_bundle_path
from rtnb.server.runner import HubServer
from rtnb.testing import WirePeer, running_hub


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


@pytest.fixture
async def prefixed_hub() -> AsyncIterator[HubServer]:
    async with running_hub(prefix="/rtnb") as server:
        yield server


async def fetch(http: AsyncHTTPClient, url: str, **options: Any) -> HTTPResponse:
    return await http.fetch(url, raise_error=False, **options)


async def test_page_client_and_assets_are_served(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    page = await fetch(http, f"{hub_server.url}/")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert b'src="static/plotly.min.js"' in page.body  # relative: works under any prefix, never a CDN
    assert b"cdn" not in page.body.lower()
    script = await fetch(http, f"{hub_server.url}/rtnb.js")
    assert script.code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    # the committed bundle of server/static/src/rtnb/, as it is, exporting the client
    assert script.body == (STATIC_DIRECTORY / "rtnb.js").read_bytes()
    assert re.search(rb"^export \{[^}]*\bRtnbClient,", script.body, re.MULTILINE)
    for name in ("demo.js", "demo.css"):
        asset = await fetch(http, f"{hub_server.url}/static/{name}")
        assert asset.code == 200


async def test_plotly_comes_from_the_python_package(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    bundle = plotly_bundle_path()
    assert bundle is not None, "the plotly package is part of the notebook extra CI installs"
    served = await fetch(http, f"{hub_server.url}/static/plotly.min.js")
    assert served.code == 200
    assert served.body == bundle.read_bytes()


@pytest.mark.parametrize("name", ["nope.js", "..%2Fsse.py", "demo.html.bak", ".hidden.js"])
async def test_unknown_static_files_get_a_json_404(hub_server: HubServer, http: AsyncHTTPClient, name: str) -> None:
    response = await fetch(http, f"{hub_server.url}/static/{name}")
    assert response.code == 404
    assert orjson.loads(response.body)["error"]["code"] == "not_found"


async def test_topics_lists_offsets_rates_and_subscribers(hub_server: HubServer, http: AsyncHTTPClient) -> None:
    hub = hub_server.hub
    async with WirePeer(hub_server.ws_url) as peer:
        await peer.request({"op": "subscribe", "topic": "plant/+/temp"})
        for index in range(3):
            hub.publish_now("plant/boiler/temp", index)
        hub.publish_now("other/x", 1)
        body = orjson.loads((await fetch(http, f"{hub_server.url}/topics")).body)
        rows = {row["topic"]: row for row in body["topics"]}
        assert set(rows) == {"plant/boiler/temp", "other/x"}
        assert rows["plant/boiler/temp"]["offset"] == 3 and rows["plant/boiler/temp"]["retained"] == 3
        assert rows["plant/boiler/temp"]["subscribers"] == 1 and rows["other/x"]["subscribers"] == 0
        assert rows["plant/boiler/temp"]["rate"] is None  # one sample so far
        assert body["total"] == 2 and body["connections"] == 1
        filtered = orjson.loads((await fetch(http, f"{hub_server.url}/topics?pattern=other/%23")).body)
        assert [row["topic"] for row in filtered["topics"]] == ["other/x"]
    bad = await fetch(http, f"{hub_server.url}/topics?pattern=a/%23/b")
    assert bad.code == 400 and orjson.loads(bad.body)["error"]["code"] == "invalid_pattern"


def test_rates_come_from_offset_samples() -> None:
    now = [100.0]
    activity = TopicActivity(window=10.0, clock=lambda: now[0])
    assert activity.rate("t", 1, 10) is None
    now[0] = 102.0
    assert activity.rate("t", 1, 30) == pytest.approx(10.0)
    now[0] = 115.0  # the first samples left the window
    assert activity.rate("t", 1, 60) == pytest.approx(30 / 13)
    assert activity.rate("t", 2, 5) is None  # a new epoch starts over
    activity.forget_except(set())
    assert activity.rate("t", 2, 6) is None


async def test_everything_works_under_a_prefix(prefixed_hub: HubServer, http: AsyncHTTPClient) -> None:
    assert prefixed_hub.url.endswith("/rtnb")
    redirect = await fetch(http, prefixed_hub.url, follow_redirects=False)
    assert redirect.code in (301, 302) and redirect.headers["Location"] == "/rtnb/"
    for path in ("/", "/rtnb.js", "/static/plotly.min.js", "/topics"):
        assert (await fetch(http, prefixed_hub.url + path)).code == 200, path
    published = await fetch(http, f"{prefixed_hub.url}/publish/a/b", method="POST", body=b"1")
    assert orjson.loads(published.body)["offset"] == 1
    polled = await fetch(http, f"{prefixed_hub.url}/poll?topic=a/b&timeout=0&last=1")
    assert [item["data"] for item in orjson.loads(polled.body)["messages"]] == [1]
    assert (await fetch(http, f"{prefixed_hub.url.removesuffix('/rtnb')}/rtnb.js")).code == 404
