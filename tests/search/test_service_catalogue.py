"""Bad inputs against every endpoint of the service: one table, each case a clear 4xx.

Every case must get its 4xx (never a 500), a JSON body whose ``detail`` is one string saying
what is wrong, and leave the index as it was, in memory and on disk. The last tests send the
decompression bomb through a real socket and through the commands that read images.
Add a row for every new endpoint or field.
"""

from __future__ import annotations

import http.client
import json
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from search_images import bomb_png, digit_png

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from tripletnet.cli import main  # noqa: E402
from tripletnet.search import Embedder, SearchIndex, build_index, from_dataset  # noqa: E402
from tripletnet.search.images import ImageError, ImageTooLargeError, decode_image  # noqa: E402
from tripletnet.service import create_app  # noqa: E402

LIMIT = 20_000  # the service's upload limit in this module
MAX_K = 50
COUNT = 450  # items in the index
PNG = digit_png(3)
BOMB = bomb_png()
PICKLE = pickle.dumps({"vector": np.zeros(16, dtype=np.float32)})
TEXT = b"this is a text file, renamed .png\n"
GOOD = [0.25] * 16


@dataclass(frozen=True)
class Case:
    """One bad request: ``httpx`` keyword arguments, the status and a phrase of its detail."""

    method: str
    path: str
    status: int
    says: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def upload(data: bytes, name: str = "query.png", **fields: str) -> dict[str, Any]:
    return {"files": {"image": (name, data, "image/png")}, "data": fields}


def raw(body: bytes, content_type: str) -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": content_type}}


def vector_cases(path: str) -> dict[str, Case]:
    """Bad JSON bodies, shared by /search and /items."""
    post = "POST"
    return {
        "empty body": Case(post, path, 422, "Invalid JSON", raw(b"", "application/json")),
        "not JSON": Case(post, path, 422, "Invalid JSON", raw(b"{vector: 1}", "application/json")),
        "not UTF-8": Case(post, path, 422, "Invalid JSON", raw(b"\xff\xfe{", "application/json")),
        "pickle as JSON": Case(post, path, 422, "Invalid JSON", raw(PICKLE, "application/json")),
        "a list": Case(post, path, 422, "JSON body: Input should be an object", {"json": GOOD}),
        "no vector": Case(post, path, 422, "vector: Field required", {"json": {}}),
        "vector null": Case(post, path, 422, "vector: Input should be", {"json": {"vector": None}}),
        "vector of strings": Case(post, path, 422, "vector.0:", {"json": {"vector": ["a"] * 16}}),
        "nested vector": Case(post, path, 422, "vector.0:", {"json": {"vector": [GOOD]}}),
        "empty vector": Case(post, path, 422, "has 0 values", {"json": {"vector": []}}),
        "15 values": Case(post, path, 422, "16-d vectors", {"json": {"vector": [0.0] * 15}}),
        "17 values": Case(post, path, 422, "16-d vectors", {"json": {"vector": [0.0] * 17}}),
        '"NaN"': Case(
            post,
            path,
            422,
            "vector.0: Input should be a valid number",
            {"json": {"vector": ["NaN"]}},
        ),
        '"-inf"': Case(
            post,
            path,
            422,
            "vector.1: Input should be a valid number",
            {"json": {"vector": [0, "-inf"]}},
        ),
        "true": Case(
            post,
            path,
            422,
            "vector.0: Input should be a valid number",
            {"json": {"vector": [True] * 16}},
        ),
        "NaN literal": Case(
            post,
            path,
            422,
            "finite",
            raw(b'{"vector": [NaN' + b", 0" * 15 + b"]}", "application/json"),
        ),
        "Infinity literal": Case(
            post,
            path,
            422,
            "finite",
            raw(b'{"vector": [-Infinity' + b", 0" * 15 + b"]}", "application/json"),
        ),
        "1e999": Case(
            post,
            path,
            422,
            "finite",
            raw(b'{"vector": [1e999' + b", 0" * 15 + b"]}", "application/json"),
        ),
        "1e39 (over float32)": Case(
            post, path, 422, "finite in float32", {"json": {"vector": [1e39] * 16}}
        ),
        "unknown field": Case(
            post, path, 422, "lable: Extra inputs", {"json": {"vector": GOOD, "lable": 3}}
        ),
    }


def catalogue() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for path in ("/embed", "/search", "/items"):
        post = "POST"
        image_cases = {
            "no body": Case(post, path, 415, "send JSON"),
            "text/plain": Case(post, path, 415, "send JSON", raw(b"k=3", "text/plain")),
            "form-urlencoded": Case(
                post, path, 415, "send JSON", raw(b"k=3", "application/x-www-form-urlencoded")
            ),
            "raw PNG body": Case(post, path, 415, "send JSON", raw(PNG, "image/png")),
            "pickle body": Case(
                post, path, 415, "send JSON", raw(PICKLE, "application/octet-stream")
            ),
            "multipart, no boundary": Case(
                post, path, 400, "boundary", raw(b"", "multipart/form-data")
            ),
            "multipart, no parts": Case(
                post,
                path,
                422,
                "named 'image'",
                raw(b"--x--\r\n", "multipart/form-data; boundary=x"),
            ),
            "image as a text field": Case(
                post, path, 422, "named 'image'", {"files": {"image": (None, "not a file")}}
            ),
            "empty image": Case(post, path, 415, "not a readable image", upload(b"")),
            "truncated PNG": Case(post, path, 415, "corrupt or truncated", upload(PNG[:60])),
            "PNG, corrupt pixels": Case(
                post, path, 415, "corrupt or truncated", upload(PNG[:45] + b"\x00" * 40 + PNG[85:])
            ),
            "random bytes": Case(
                post, path, 415, "not a readable image", upload(np.random.default_rng(0).bytes(500))
            ),
            "text file as .png": Case(post, path, 415, "not a readable image", upload(TEXT)),
            "pickle as image": Case(post, path, 415, "not a readable image", upload(PICKLE)),
            "decompression bomb": Case(post, path, 413, "too large to decode", upload(BOMB)),
            "bomb, traversal name": Case(
                post, path, 413, "passwd is too large", upload(BOMB, "../../etc/passwd")
            ),
            "a file over the limit": Case(post, path, 413, "too large", upload(b"0" * (LIMIT + 1))),
            "huge Content-Length": Case(
                post,
                path,
                413,
                "the limit is 20000 bytes",
                {"content": b"{}", "headers": {"content-length": str(10**12)}},
            ),
            "two images": Case(
                post,
                path,
                422,
                "send one 'image' field",
                {"files": [("image", ("a.png", PNG, "image/png"))] * 2},
            ),
        }
        cases |= {f"{path} {name}": case for name, case in image_cases.items()}
    cases["/embed JSON"] = Case(
        "POST", "/embed", 415, "multipart image", {"json": {"vector": GOOD}}
    )
    cases["/embed extra field"] = Case("POST", "/embed", 422, "does not take k", upload(PNG, k="3"))
    for path in ("/search", "/items"):
        cases |= {f"{path} {name}": case for name, case in vector_cases(path).items()}

    for k in (0, -1, MAX_K + 1, 10**30, "abc", "3", 1.5, 3.0, True, [3]):
        says = "between 1 and 50" if type(k) is int else "k: Input should be a valid integer"
        cases[f"/search JSON k={k!r}"] = Case(
            "POST", "/search", 422, says, {"json": {"vector": GOOD, "k": k}}
        )
    for k in ("0", "-1", "51", "1e30", "abc", "1.5", ""):
        says = "between 1 and 50" if k.lstrip("-").isdigit() else "k must be an integer"
        cases[f"/search form k={k!r}"] = Case("POST", "/search", 422, says, upload(PNG, k=k))
    cases["/search label"] = Case(
        "POST", "/search", 422, "does not take label", upload(PNG, label="3")
    )
    cases["/search k as a file"] = Case(
        "POST",
        "/search",
        422,
        "'k' must be a plain form field",
        {"files": {"image": ("a.png", PNG, "image/png"), "k": ("k.txt", b"3", "text/plain")}},
    )

    rule = "label must be an integer from 0 to 2147483647"
    for label in (1e20, -5, 2**31, 3.7, "x", True, {"a": 1}):
        cases[f"/items JSON label={label!r}"] = Case(
            "POST", "/items", 422, rule, {"json": {"vector": GOOD, "label": label}}
        )
    for label in ("1e20", "-5", "2147483648", "3.7", "x", "0x10", "٣.5"):
        cases[f"/items form label={label!r}"] = Case(
            "POST", "/items", 422, rule, upload(PNG, label=label)
        )
    cases["/items k"] = Case(
        "POST", "/items", 422, "does not take k", {"json": {"vector": GOOD, "k": 3}}
    )
    cases["/items source not a string"] = Case(
        "POST",
        "/items",
        422,
        "source: Input should be a valid string",
        {"json": {"vector": GOOD, "source": 5}},
    )
    cases["/items JSON source too long"] = Case(
        "POST",
        "/items",
        422,
        "at most 1000 characters",
        {"json": {"vector": GOOD, "source": "s" * 1001}},
    )
    cases["/items form source too long"] = Case(
        "POST",
        "/items",
        422,
        "source must be at most 1000 characters",
        upload(PNG, source="s" * 1001),
    )
    cases["/items source as a file"] = Case(
        "POST",
        "/items",
        422,
        "'source' must be a plain form field",
        {"files": {"image": ("a.png", PNG, "image/png"), "source": ("s", b"../x", "text/plain")}},
    )

    # filters (issue 19): JSON labels/where, an upload's ?labels=&where= query parameters
    for name, body, says in (
        ("labels not a list", {"labels": 3}, "labels: Input should be a valid"),
        ("labels of strings", {"labels": ["3"]}, "labels.0: Input should be a valid integer"),
        ("labels empty", {"labels": []}, "labels must list 1 to 1000"),
        ("label over 2^31", {"labels": [2**31]}, "from 0 to 2147483647"),
        ("where a list", {"where": [1]}, "where: Input should be"),
        ("where nested", {"where": {"shop": {"a": 1}}}, "where.shop must be a string, number"),
        ("where no values", {"where": {"shop": []}}, "where.shop must list 1 to 1000"),
        ("where long key", {"where": {"k" * 65: 1}}, "where field names"),
    ):
        for path, extra in (("/search", {"vector": GOOD}), ("/search/batch", {"vectors": [GOOD]})):
            cases[f"{path} {name}"] = Case("POST", path, 422, says, {"json": {**extra, **body}})
    for query, says in (
        ("labels=abc", "label must be an integer"),
        ("labels=-1", "label must be an integer"),
        ("where=notjson", "where must be a JSON object"),
        ("where=[1]", "where must be a JSON object"),
        ("where={}&labels=", "labels must list 1 to 1000"),
    ):
        cases[f"/search upload ?{query}"] = Case("POST", f"/search?{query}", 422, says, upload(PNG))
    # metadata stored with an item
    for name, metadata, says in (
        ("a list", [1], "metadata: Input should be an object"),
        ("nested", {"a": {"b": 1}}, "metadata.a must be a string, number"),
        ("too many fields", {f"f{i}": i for i in range(33)}, "at most 32 fields"),
        ("text too long", {"a": "x" * 1001}, "metadata.a must be at most 1000 characters"),
    ):
        cases[f"/items metadata {name}"] = Case(
            "POST", "/items", 422, says, {"json": {"vector": GOOD, "metadata": metadata}}
        )
    cases["/items form metadata not JSON"] = Case(
        "POST", "/items", 422, "metadata must be a JSON object", upload(PNG, metadata="{shop")
    )
    cases["/items form metadata a list"] = Case(
        "POST", "/items", 422, "metadata must be a JSON object", upload(PNG, metadata="[1]")
    )
    cases["/search metadata"] = Case(
        "POST", "/search", 422, "does not take metadata", {"json": {"vector": GOOD, "metadata": {}}}
    )
    # the batch route
    batch = "/search/batch"
    for name, kwargs, status, says in (
        ("no vectors", {"json": {}}, 422, "vectors: Field required"),
        ("empty", {"json": {"vectors": []}}, 422, "send 1 to 1000 vectors"),
        (
            "one flat vector",
            {"json": {"vectors": GOOD}},
            422,
            "vectors.0: Input should be a valid list",
        ),
        ("15 values", {"json": {"vectors": [GOOD, [0.0] * 15]}}, 422, "16-d vectors"),
        ("over float32", {"json": {"vectors": [[1e39] * 16]}}, 422, "finite in float32"),
        ("k 0", {"json": {"vectors": [GOOD], "k": 0}}, 422, "between 1 and 50"),
        (
            "k string",
            {"json": {"vectors": [GOOD], "k": "3"}},
            422,
            "k: Input should be a valid integer",
        ),
        (
            "unknown field",
            {"json": {"vectors": [GOOD], "vector": GOOD}},
            422,
            "vector: Extra inputs",
        ),
        ("not JSON", raw(b"{vectors", "application/json"), 422, "JSON decode error"),
        ("an upload", upload(PNG), 422, "JSON body"),
        ("over the limit", {"json": {"vectors": [GOOD] * 400}}, 413, "the limit is 20000 bytes"),
        (
            "NaN literal",
            raw(b'{"vectors": [[NaN' + b", 0" * 15 + b"]]}", "application/json"),
            422,
            "finite",
        ),
    ):
        cases[f"{batch} {name}"] = Case("POST", batch, status, says, kwargs)
    cases["GET /search/batch"] = Case("GET", batch, 405, "Method Not Allowed")
    cases["POST /metrics"] = Case("POST", "/metrics", 405, "Method Not Allowed")

    for item_id, status, says in (
        ("99999", 404, "no item with id 99999"),
        ("-1", 404, "no item with id -1"),
        (str(10**30), 404, f"no item with id {10**30}"),
        ("abc", 422, "item_id: Input should be a valid integer"),
        ("1.5", 422, "item_id: Input should be a valid integer"),
        ("%2E%2E", 422, "item_id: Input should be a valid integer"),
    ):
        for method in ("GET", "DELETE"):
            cases[f"{method} /items/{item_id}"] = Case(method, f"/items/{item_id}", status, says)
        thumbnail = says.replace("no item with id", "no thumbnail for item")
        cases[f"GET /items/{item_id}/thumbnail.png"] = Case(
            "GET", f"/items/{item_id}/thumbnail.png", status, thumbnail
        )
    cases["GET traversal"] = Case("GET", "/items/..%2F..%2Fetc%2Fpasswd", 404, "Not Found")
    cases["GET /search"] = Case("GET", "/search", 405, "Method Not Allowed")
    cases["PUT /items/1"] = Case("PUT", "/items/1", 405, "Method Not Allowed", {"json": {}})
    cases["DELETE /items"] = Case("DELETE", "/items", 405, "Method Not Allowed")

    # vectors whose squared distances overflow float32 (they were answered with no results)
    huge = {"vector": [3e38] * 16}
    for path in ("/search", "/items"):
        cases[f"{path} 3e38 values"] = Case("POST", path, 422, "squared norm", {"json": huge})
    cases["/search/batch 3e38 values"] = Case(
        "POST", "/search/batch", 422, "overflow float32", {"json": {"vectors": [GOOD, [3e38] * 16]}}
    )
    # browsers: a foreign Host (DNS rebinding), writes from another site (CSRF)
    foreign = {"host": "evil.example:8000"}
    for method, path, kwargs in (
        ("GET", "/health", {}),
        ("GET", "/items/1", {}),
        ("POST", "/items", {"json": {"vector": GOOD}}),
        ("DELETE", "/items/1", {}),
    ):
        cases[f"{method} {path} foreign Host"] = Case(
            method, path, 400, "--allowed-host evil.example", {**kwargs, "headers": foreign}
        )
    cases["GET / foreign Host"] = Case("GET", "/", 400, "does not answer to the host name", {
        "headers": {"host": "evil.example"}})  # fmt: skip
    for name, headers, says in (
        ("Origin of another site", {"origin": "http://evil.example"}, "another origin"),
        ("Origin of another port", {"origin": "http://testserver:3000"}, "another origin"),
        ("Origin null", {"origin": "null"}, "another origin"),
        ("Sec-Fetch-Site cross-site", {"sec-fetch-site": "cross-site"}, "Sec-Fetch-Site"),
        ("Sec-Fetch-Site same-site", {"sec-fetch-site": "same-site"}, "Sec-Fetch-Site"),
    ):
        for method, path, kwargs in (
            ("POST", "/items", upload(PNG, label="3")),  # a form any web page can post
            ("POST", "/items", {"json": {"vector": GOOD}}),
            ("DELETE", "/items/1", {}),
            ("POST", "/search", {"json": {"vector": GOOD}}),
        ):
            kind = "form" if "files" in kwargs else "JSON" if "json" in kwargs else ""
            cases[f"{method} {path} {kind} {name}"] = Case(
                method, path, 403, says, {**kwargs, "headers": headers}
            )
    return cases


CASES = catalogue()


@pytest.fixture(scope="module")
def module_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """One index for the whole table: each refused request must leave it as it is."""
    folder = tmp_path_factory.mktemp("catalogue") / "index"
    build_index(embedder, from_dataset(embedder, "digits")).save(folder)
    return folder


@pytest.fixture(scope="module")
def client(run_dir: Path, module_index: Path) -> Iterator[TestClient]:
    app = create_app(
        run_dir, module_index, max_upload_bytes=LIMIT, max_k=MAX_K, host="127.0.0.1",
        allowed_hosts=["testserver"],  # TestClient's Host
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_request_gets_a_clear_4xx_and_changes_nothing(
    client: TestClient, module_index: Path, case: Case
) -> None:
    response = client.request(case.method, case.path, **case.kwargs)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and case.says in detail
    assert "\n" not in detail and "Traceback" not in detail and "../" not in detail
    assert client.get("/health").json()["count"] == COUNT
    on_disk = SearchIndex.load(module_index)
    assert len(on_disk) == COUNT and sorted(on_disk.items) == list(range(COUNT))


def test_the_catalogue_covers_every_route(client: TestClient) -> None:
    tried = {
        (case.method, re.sub(r"^/items/[^/]+", "/items/{item_id}", case.path))
        for case in CASES.values()
    }
    routes = client.get("/openapi.json").json()["paths"]
    for path, methods in routes.items():
        for method in methods:
            if path not in ("/health", "/metrics"):  # they take no input
                assert (method.upper(), path) in tried, f"no bad input tried on {method} {path}"


@pytest.mark.parametrize(
    ("filename", "source"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("..", "upload"),
        ("/", "upload"),
        ("a/b/../c.png", "c.png"),
        (". .hidden.png", "hidden.png"),
    ],
)
def test_an_uploads_file_name_is_never_a_path(
    run_dir: Path, index_dir: Path, filename: str, source: str
) -> None:
    with TestClient(create_app(run_dir, index_dir)) as client:
        added = client.post("/items", files={"image": (filename, PNG, "image/png")})
        assert added.status_code == 201
        assert added.json()["source"] == source
    stored = SearchIndex.load(index_dir).item(450).source
    assert stored == source and ".." not in stored and "/" not in stored
    written = {p.name for p in index_dir.parent.rglob("*")}
    assert not written & {"passwd", "win.ini"}


# -- the bomb through a real socket and through the commands -------------------------------------


def multipart(data: bytes, name: str = "bomb.png") -> tuple[bytes, str]:
    boundary = "catalogue-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_bomb_over_a_socket_gets_413_and_the_connection_stays_open(
    server: tuple[str, int],
) -> None:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        for path in ("/embed", "/search", "/items"):
            body, content_type = multipart(BOMB)
            connection.request("POST", path, body, {"Content-Type": content_type})
            response = connection.getresponse()
            answer = json.loads(response.read())
            assert response.status == 413, answer
            assert "too large to decode" in answer["detail"]
            assert response.getheader("connection") != "close"
            used = connection.sock
            connection.request("GET", "/health")  # the same connection, still open
            health = connection.getresponse()
            assert health.status == 200 and json.loads(health.read())["count"] == COUNT
            assert connection.sock is used
    finally:
        connection.close()


@pytest.mark.parametrize("pillow_limit", [Image.MAX_IMAGE_PIXELS, None, 10**12])
@pytest.mark.parametrize("size", [(20_000, 20_000), (10_000, 10_000), (8_000, 5_001)])
def test_the_pixel_limit_holds_whatever_pillows_own_limit(
    monkeypatch: pytest.MonkeyPatch, pillow_limit: int | None, size: tuple[int, int]
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning escapes either
        with pytest.raises(ImageTooLargeError, match="too large to decode") as refused:
            decode_image(bomb_png(*size), "bomb.png")
    assert isinstance(refused.value, ImageError)
    assert "more than the 40,000,000 pixels allowed" in str(refused.value)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_search_with_a_bomb_is_one_error_line(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BOMB)
    assert main(["search", str(index_dir), "--image", str(bomb)]) == 2
    line = one_error_line(capsys)
    assert f"{bomb} is too large to decode" in line


def test_index_build_with_a_bomb_is_one_error_line_and_writes_nothing(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "images" / "3"
    folder.mkdir(parents=True)
    (folder / "good.png").write_bytes(PNG)
    (folder / "bomb.png").write_bytes(BOMB)
    out = tmp_path / "index"
    command = ["index", "build", str(run_dir), "--images", str(tmp_path / "images")]
    assert main([*command, "--out", str(out)]) == 2
    assert "bomb.png is too large to decode" in one_error_line(capsys)
    assert not out.exists()


def test_index_compact_of_a_folder_that_is_no_index_is_one_error_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        assert main(["index", "compact", str(folder)]) == 2
        assert "is not a tripletnet index" in one_error_line(capsys)
    assert not (tmp_path / "missing").exists() and not any(tmp_path.iterdir())
