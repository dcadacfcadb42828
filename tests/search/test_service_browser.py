"""End to end, as a person would: headless Chromium uploads an image and sees the neighbours.

Needs Debian's ``chromium`` (apt-get install chromium) and the ``playwright`` Python package
(pip install playwright; its own browser download is not needed). Skipped, with the reason,
where either is missing.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from search_images import digit_png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
uvicorn = pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright to run the browser test"
)
if not Path(CHROMIUM).is_file():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

from tripletnet.service import create_app  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def base_url(run_dir: Path, index_dir: Path) -> Iterator[str]:
    """The service on a free loopback port, in a background thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(run_dir, index_dir), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(base_url: str) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(base_url)
            yield page
        finally:
            browser.close()


def test_upload_an_image_and_see_its_neighbours(page: Any, tmp_path: Path) -> None:
    query = tmp_path / "digit.png"
    query.write_bytes(digit_png(7, scale=1))
    page.wait_for_selector("text=450 items")
    page.set_input_files("#file", str(query))
    page.fill("#k", "5")
    page.click("#search-file")
    page.wait_for_selector("#results .hit")
    hits = page.locator("#results .hit")
    assert hits.count() == 5
    assert hits.first.get_attribute("data-id") == "7"
    assert "d=0.0" in hits.first.inner_text()
    width = hits.first.locator("img").evaluate("img => img.complete && img.naturalWidth")
    assert width == 32  # the 8x8 thumbnail, drawn 4x


def test_draw_a_digit_and_see_neighbours(page: Any) -> None:
    page.wait_for_selector("#draw-panel:not([hidden])")
    box = page.locator("#canvas").bounding_box()
    mouse = page.mouse
    mouse.move(box["x"] + 112, box["y"] + 30)
    mouse.down()
    mouse.move(box["x"] + 112, box["y"] + 190, steps=12)  # a "1"
    mouse.up()
    page.click("#search-drawing")
    page.wait_for_selector("#results .hit")
    assert page.locator("#results .hit").count() == 10
    assert "neighbours" in page.inner_text("#status")
