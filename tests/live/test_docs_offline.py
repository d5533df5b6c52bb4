"""The interactive API page works on an offline network: the page and everything it loads
come from the adapter itself (a real ``adapter serve``), nothing from another host."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html

from tests.live.server import LiveServer

# a URL in the page's inline script: url: '/openapi.json', "https://..."
_SCRIPT_URL = re.compile(r"""["'](https?://[^"']+|/[^"'\s]*)["']""")


def references(page: str, base: str) -> set[str]:
    """Absolute URLs of everything the page loads: src / href attributes and the URLs in
    its inline scripts."""
    tree = html.fromstring(page)
    found = {urljoin(base, v) for v in tree.xpath("//@src | //@href")}
    for script in tree.xpath("//script[not(@src)]/text()"):
        found |= {urljoin(base, m) for m in _SCRIPT_URL.findall(script)}
    return found


def test_the_docs_page_loads_nothing_from_another_host(database_url: str, tmp_path: Path) -> None:
    with LiveServer(database_url, tmp_path) as server:
        page = httpx.get(server.url("/docs"))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = references(page.text, server.url("/docs"))
        # the Swagger UI script and stylesheet, the icon and the API description at least
        assert {urlsplit(u).path for u in urls} >= {
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
            "/docs/assets/favicon-32x32.png",
            "/openapi.json",
        }
        host = urlsplit(server.base_url).netloc
        off_host = sorted(u for u in urls if urlsplit(u).netloc != host)
        assert not off_host, f"the docs page loads from other hosts: {off_host}"
        for url in urls:
            answer = httpx.get(url)
            assert answer.status_code == 200 and answer.content, url
        # Swagger UI would send the API description to its online validator
        assert '"validatorUrl": null' in page.text
        # FastAPI's own pages (which load from a CDN) are gone
        assert httpx.get(server.url("/redoc")).status_code == 404
