"""End to end, as a person would: headless Chromium uploads an image and sees the neighbours.

Needs Debian's ``chromium`` (apt-get install chromium) and the ``playwright`` Python package
(pip install playwright; its own browser download is not needed). Skipped, with the reason,
where either is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from search_images import bomb_png, digit_png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
uvicorn = pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright to run the browser test"
)
if not Path(CHROMIUM).is_file():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def base_url(server: tuple[str, int]) -> str:
    host, port = server
    return f"http://{host}:{port}"


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


CARD_BOXES = """() => {
  const grid = document.querySelector("#results");
  const columns = getComputedStyle(grid).gridTemplateColumns.split(" ").map(parseFloat);
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
  };
  const cards = [...grid.querySelectorAll(".hit")].slice(0, 6).map((card) => {
    const caption = card.querySelector("figcaption");
    return {
      card: box(card), img: box(card.querySelector("img")), caption: box(caption),
      lineHeight: parseFloat(getComputedStyle(caption).lineHeight),
      loaded: card.querySelector("img").complete,
    };
  });
  return { grid: box(grid), columns, gap: parseFloat(getComputedStyle(grid).columnGap), cards };
}"""


def inside(inner: dict[str, float], outer: dict[str, float], slack: float = 0.5) -> bool:
    return (
        inner["left"] >= outer["left"] - slack
        and inner["right"] <= outer["right"] + slack
        and inner["top"] >= outer["top"] - slack
        and inner["bottom"] <= outer["bottom"] + slack
    )


@pytest.mark.parametrize("width", [1280, 700, 360])
def test_result_cards_fill_their_cells_and_hold_their_thumbnails(
    page: Any, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    query = tmp_path / "digit.png"
    query.write_bytes(digit_png(7))
    page.wait_for_selector("text=450 items")
    page.set_input_files("#file", str(query))
    page.click("#search-file")
    page.wait_for_selector("#results .hit img")
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
    layout = page.evaluate(CARD_BOXES)
    columns, gap, grid = layout["columns"], layout["gap"], layout["grid"]
    assert len(layout["cards"]) == 6 and min(columns) >= 120
    starts = [grid["left"] + sum(columns[:i]) + gap * i for i in range(len(columns))]
    for number, found in enumerate(layout["cards"]):
        card, img, caption = found["card"], found["img"], found["caption"]
        column = number % len(columns)  # the grid fills row by row
        assert abs(card["left"] - starts[column]) < 1, (number, card, starts)
        assert abs(card["width"] - columns[column]) < 1, (number, card, columns)  # the whole cell
        assert inside(card, grid)
        assert inside(img, card), (number, img, card)  # the thumbnail sits inside its card
        assert img["width"] >= 90 and abs(img["width"] - img["height"]) < 1
        assert inside(caption, card), (number, caption, card)
        assert caption["height"] <= 2 * found["lineHeight"] + 0.5, (number, caption)  # 2 lines


def shows_error(page: Any, *phrases: str) -> str:
    page.wait_for_selector("#status.error", timeout=10_000)
    text = page.inner_text("#status")
    assert all(phrase in text for phrase in phrases), text
    assert page.locator("#results .hit").count() == 0  # no stale neighbours under an error
    return text


def search_file(page: Any, path: Path) -> None:
    page.wait_for_selector("text=450 items")
    page.set_input_files("#file", str(path))
    page.click("#search-file")


def test_a_decompression_bomb_shows_the_services_error(page: Any, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    search_file(page, bomb)
    shows_error(page, "error 413:", "bomb.png is too large to decode")


def test_a_text_file_named_png_shows_the_services_error(page: Any, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    search_file(page, text)
    shows_error(page, "error 415:", "notes.png is not a readable image")


def test_a_plain_text_500_shows_its_status_and_text(page: Any, tmp_path: Path) -> None:
    page.route(
        "**/search",
        lambda route: route.fulfill(
            status=500, content_type="text/plain", body="Internal Server Error"
        ),
    )
    query = tmp_path / "digit.png"
    query.write_bytes(digit_png(7))
    search_file(page, query)
    assert shows_error(page) == "error 500: Internal Server Error"


def test_a_network_failure_shows_a_message(page: Any, tmp_path: Path) -> None:
    page.route("**/search", lambda route: route.abort())
    query = tmp_path / "digit.png"
    query.write_bytes(digit_png(7))
    search_file(page, query)
    shows_error(page, "the search failed", "is the service running?")


def test_searching_an_empty_canvas_asks_for_a_drawing(page: Any) -> None:
    posted: list[str] = []
    page.on(
        "request", lambda request: posted.append(request.url) if request.method == "POST" else None
    )
    page.wait_for_selector("#draw-panel:not([hidden])")
    page.click("#search-drawing")
    shows_error(page, "draw a digit first")
    page.click("#clear")
    page.click("#search-drawing")
    assert page.inner_text("#status") == "draw a digit first"
    assert posted == []  # refused on the page, without calling the server


def test_the_page_asks_for_the_token_when_reads_need_one(
    run_dir: Path, index_dir: Path, tmp_path: Path
) -> None:
    from conftest import serve

    from tripletnet.service import create_app
    from tripletnet.service.auth import Access

    token = "browser-token-0123456789"
    app = create_app(run_dir, index_dir, access=Access(token, protect_reads=True))
    query = tmp_path / "digit.png"
    query.write_bytes(digit_png(7, scale=1))
    for host, port in serve(app):
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"http://{host}:{port}")
                page.wait_for_selector("#token-panel:not([hidden])")
                page.set_input_files("#file", str(query))
                page.click("#search-file")
                page.wait_for_selector("#status.error")
                assert "error 401" in page.inner_text("#status")
                page.fill("#token", "wrong-token-0123456789")
                page.click("#search-file")
                page.wait_for_selector("#status.error >> text=error 403")
                page.fill("#token", token)
                page.click("#search-file")
                page.wait_for_selector("#results .hit")
                first = page.locator("#results .hit").first
                assert first.get_attribute("data-id") == "7"
                page.wait_for_function(
                    "() => document.querySelector('#results .hit img').naturalWidth === 32"
                )  # the thumbnail, fetched with the token
                assert token not in page.inner_text("body")
            finally:
                browser.close()
