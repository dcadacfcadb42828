"""The HTTP service through FastAPI's TestClient: every route and every error code."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from search_images import bomb_png, digit_png

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from tripletnet.cli import main  # noqa: E402
from tripletnet.errors import TripletnetError  # noqa: E402
from tripletnet.search import SearchIndex  # noqa: E402
from tripletnet.service import create_app  # noqa: E402

LIMIT = 20_000


@pytest.fixture
def client(run_dir: Path, index_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(run_dir, index_dir, max_upload_bytes=LIMIT, max_k=50)) as client:
        yield client


def image(row: int = 0, data: bytes | None = None) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (f"{row}.png", digit_png(row) if data is None else data, "image/png")}


def test_health_page_and_openapi(client: TestClient, run_dir: Path) -> None:
    answer = client.get("/health")
    health = answer.json()
    assert (health["dim"], health["count"], health["model"]["architecture"]) == (
        16,
        450,
        "small-conv",
    )
    assert len(health["model"]["fingerprint"]) == 64
    assert health["model"]["run"] == run_dir.name  # the folder's name, not the server's path
    assert str(run_dir.parent) not in answer.text and "run_dir" not in health["model"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="results"' in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/embed", "/search", "/items", "/items/{item_id}", "/health"} <= set(paths)
    body = paths["/search"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)


def test_search_by_image_and_by_vector(client: TestClient) -> None:
    found = client.post("/search", files=image(7), data={"k": "4"})
    assert found.status_code == 200
    results = found.json()["results"]
    assert len(results) == 4 and results[0]["id"] == 7
    assert results[0]["source"] == "digits:test:7"
    thumbnail = client.get(results[0]["thumbnail"])
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")

    embedding = client.post("/embed", files=image(7)).json()
    assert embedding["dim"] == 16
    by_vector = client.post("/search", json={"vector": embedding["embedding"], "k": 4}).json()
    assert [r["id"] for r in by_vector["results"]] == [r["id"] for r in results]
    assert by_vector["results"][0]["distance"] == pytest.approx(results[0]["distance"], abs=1e-4)


def test_k_defaults_to_10_or_the_services_max_k(run_dir: Path, index_dir: Path) -> None:
    with TestClient(create_app(run_dir, index_dir, max_k=3)) as small:
        assert len(small.post("/search", files=image(7)).json()["results"]) == 3
        vector = small.post("/embed", files=image(7)).json()["embedding"]
        assert len(small.post("/search", json={"vector": vector}).json()["results"]) == 3
        assert small.post("/search", json={"vector": vector, "k": 4}).status_code == 422


def test_added_and_removed_items_are_persisted(
    client: TestClient, run_dir: Path, index_dir: Path
) -> None:
    added = client.post("/items", files=image(9), data={"label": "3", "source": "../../etc/passwd"})
    assert added.status_code == 201
    item = added.json()
    assert (item["id"], item["label"], item["source"]) == (450, 3, "../../etc/passwd")
    by_json = client.post("/items", json={"vector": [0.5] * 16, "source": "mine"}).json()
    assert by_json["id"] == 451 and by_json["thumbnail"] is None
    assert client.get("/items/450").json()["label_name"] == "3"
    assert client.delete("/items/12").json() == {"removed": 12, "count": 451}
    assert client.delete("/items/12").status_code == 404
    assert client.get("/items/12").status_code == 404

    reloaded = SearchIndex.load(index_dir)  # what a restart would read
    assert len(reloaded) == 451 and 12 not in reloaded.items
    assert reloaded.item(450).source == "../../etc/passwd" and 450 in reloaded.thumbnails
    assert not any(p.name == "passwd" for p in index_dir.rglob("*"))
    with TestClient(create_app(run_dir, index_dir)) as restarted:
        assert restarted.get("/health").json()["count"] == 451


def test_a_write_after_another_processs_save_applies_to_the_live_version(
    client: TestClient, index_dir: Path
) -> None:
    other = SearchIndex.load(index_dir)  # e.g. 'tripletnet index remove' while the service runs
    other.remove([0])
    other.save(index_dir)
    assert client.get("/items/0").status_code == 404  # reads see the live version
    response = client.post("/items", json={"vector": [0.5] * 16})
    assert response.status_code == 201 and response.json()["id"] == 450
    assert client.delete("/items/5").status_code == 200
    on_disk = SearchIndex.load(index_dir)
    assert len(on_disk) == 449 and {0, 5} & on_disk.items.keys() == set() and 450 in on_disk.items


def test_another_processs_logged_change_is_applied_without_a_reload(
    client: TestClient, index_dir: Path
) -> None:
    other = SearchIndex.load(index_dir)  # e.g. another worker
    other.remove([0])
    other.add(np.full((1, 16), 0.5, np.float32), sources=["theirs"])
    other.save_changes(index_dir)
    service = client.app.state.service  # type: ignore[attr-defined]
    served = service.index
    assert client.get("/items/0").status_code == 404
    assert client.get("/items/450").json()["source"] == "theirs"
    assert service.index is served and served.version == "v000001"  # replayed in place
    mine = client.post("/items", json={"vector": [0.5] * 16, "source": "mine"})
    assert mine.status_code == 201 and mine.json()["id"] == 451
    other.catch_up()
    assert other.item(451).source == "mine" and len(other) == 451


def test_a_409_reloads_the_live_version_and_a_retry_succeeds_at_once(
    client: TestClient, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    add = service.index.add

    def add_while_a_lockless_writer_saves(*args: object, **kwargs: object) -> object:
        other = SearchIndex.load(index_dir)  # a writer that ignores the folder's lock
        other.remove([0])
        other.save(index_dir)
        return add(*args, **kwargs)

    monkeypatch.setattr(service.index, "add", add_while_a_lockless_writer_saves)
    response = client.post("/items", json={"vector": [0.5] * 16, "source": "refused"})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "changed by another process" in detail and "repeat the request" in detail
    assert str(index_dir.parent) not in response.text  # no server paths in answers
    assert client.get("/health").json()["count"] == 449  # the refused add is not in memory
    retry = client.post("/items", json={"vector": [0.5] * 16, "source": "retried"})
    assert retry.status_code == 201
    on_disk = SearchIndex.load(index_dir)
    sources = {item.source for item in on_disk.items.values()}
    assert len(on_disk) == 450 and 0 not in on_disk.items
    assert "retried" in sources and "refused" not in sources


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"files": image(0, b"definitely not a png")}, 415, "not a readable image"),
        ({"files": image(0, b"\x89PNG\r\n\x1a\n" + b"0" * 40)}, 415, "not a readable image"),
        ({"content": b"k=3", "headers": {"content-type": "text/plain"}}, 415, "send JSON"),
        ({"files": image(0, b"0" * (LIMIT + 1))}, 413, "too large"),
        ({"json": {"vector": [0.0] * 15}}, 422, "16-d"),
        ({"json": {"vector": [0.0] * 16, "k": 0}}, 422, "between 1 and 50"),
        ({"json": {"vector": [0.0] * 16, "k": 51}}, 422, "between 1 and 50"),
        ({"json": {"vector": "zeros"}}, 422, "valid"),
        ({"files": image(0), "data": {"k": "1000"}}, 422, "between 1 and 50"),
        ({"files": image(0), "data": {"k": "ten"}}, 422, "integer"),
        ({"files": {"picture": ("x.png", b"x", "image/png")}}, 422, "named 'image'"),
        ({"files": image(0, bomb_png())}, 413, "too large to decode"),
        ({"json": {"vector": [0.0] * 16, "label": 3}}, 422, "does not take label"),
    ],
)
def test_bad_requests_get_clear_errors(
    client: TestClient, request_kwargs: dict[str, object], status: int, message: str
) -> None:
    response = client.post("/search", **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert message in str(response.json()["detail"])


@pytest.mark.parametrize("path", ["/embed", "/search", "/items"])
def test_a_decompression_bomb_gets_413_and_nothing_is_added(
    client: TestClient, index_dir: Path, path: str
) -> None:
    bomb = bomb_png()
    assert len(bomb) < 100  # 69 bytes that claim 20000 x 20000 pixels
    response = client.post(path, files=image(0, bomb))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"] == (
        "0.png is too large to decode: more than the 40,000,000 pixels allowed "
        "(a decompression bomb?)"
    )
    assert client.get("/health").json()["count"] == 450
    assert len(SearchIndex.load(index_dir)) == 450


@pytest.mark.parametrize(
    ("json_label", "form_label", "stored"),
    [(0, "0", 0), (2**31 - 1, "2147483647", 2**31 - 1), (None, "", None)],
)
def test_labels_from_0_to_2_31_minus_1_are_stored(
    client: TestClient, json_label: int | None, form_label: str, stored: int | None
) -> None:
    by_json = client.post("/items", json={"vector": [0.5] * 16, "label": json_label})
    by_form = client.post("/items", files=image(3), data={"label": form_label})
    assert (by_json.status_code, by_form.status_code) == (201, 201)
    assert by_json.json()["label"] == by_form.json()["label"] == stored


@pytest.mark.parametrize("label", [1e20, -5, 3.7, 2**31, "x", True, [1]])
def test_a_json_label_outside_0_to_2_31_minus_1_is_refused(
    client: TestClient, label: object
) -> None:
    response = client.post("/items", json={"vector": [0.5] * 16, "label": label})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"label must be an integer from 0 to 2147483647, got {label!r}"
    )
    assert client.get("/health").json()["count"] == 450


@pytest.mark.parametrize("label", ["1e20", "-5", "3.7", "abc", "2147483648", "0x10"])
def test_a_form_label_outside_0_to_2_31_minus_1_is_refused(client: TestClient, label: str) -> None:
    response = client.post("/items", files=image(3), data={"label": label})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"label must be an integer from 0 to 2147483647, got {label!r}"
    )
    assert client.get("/health").json()["count"] == 450


def test_an_unforeseen_error_is_a_logged_500_with_json(
    run_dir: Path,
    index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(run_dir, index_dir)

    def broken_search(*args: object) -> None:
        raise RuntimeError("a bug in /secret/path")

    monkeypatch.setattr(app.state.service.index, "search", broken_search)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/search", files=image(7))
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert "internal server error" in detail and "/secret/path" not in detail
        assert client.get("/health").status_code == 200  # the service goes on
    assert "POST /search failed" in caplog.text and "a bug in /secret/path" in caplog.text


def test_a_streamed_body_over_the_limit_gets_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts the bytes
        for _ in range(10):
            yield b"0" * 4096

    response = client.post("/items", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_ids_in_paths_must_be_integers(client: TestClient) -> None:
    assert client.get("/items/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert client.delete("/items/abc").status_code == 422
    assert client.get("/items/99999/thumbnail.png").status_code == 404


def test_a_model_other_than_the_index_model_is_refused_at_start(
    other_run_dir: Path, index_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TripletnetError, match="does not match the index"):
        create_app(other_run_dir, index_dir)
    assert main(["serve", str(other_run_dir), "--index", str(index_dir)]) == 2
    assert "does not match the index" in capsys.readouterr().err


def test_concurrent_adds_and_searches_through_the_api(client: TestClient, index_dir: Path) -> None:
    statuses: list[int] = []
    vectors = np.random.default_rng(0).normal(size=(40, 16)).tolist()

    def add(part: int) -> None:
        for vector in vectors[part::2]:
            statuses.append(client.post("/items", json={"vector": vector}).status_code)

    def search() -> None:
        for row in range(15):
            statuses.append(client.post("/search", files=image(row), data={"k": "5"}).status_code)

    threads = [threading.Thread(target=add, args=(p,)) for p in range(2)]
    threads += [threading.Thread(target=search) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(201) == 40 and statuses.count(200) == 30
    reloaded = SearchIndex.load(index_dir)
    assert len(reloaded) == 490 and sorted(reloaded.items)[-40:] == list(range(450, 490))


# -- browsers and shared machines: the Host header, cross-site writes, the log, the token file ---


def _hosts_app(run_dir: Path, index_dir: Path, bind: str, allowed: tuple[str, ...]) -> TestClient:
    return TestClient(create_app(run_dir, index_dir, host=bind, allowed_hosts=allowed))


@pytest.mark.parametrize(
    ("bind", "allowed", "answered", "refused"),
    [
        (
            "127.0.0.1",
            (),
            ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST.", "localhost:9000"],
            ["evil.example:8000", "localhost.evil.example", "10.0.0.5:8000", "testserver", ""],
        ),
        (
            "127.0.0.1",
            ("search.example.com", "[::2]"),
            ["search.example.com", "Search.Example.COM:443", "[::2]:8000", "localhost:8000"],
            ["evil.example", "example.com", "www.search.example.com"],
        ),
        (
            "0.0.0.0",
            (),
            ["192.168.1.20:8000", "[fe80::1]:8000", "localhost:8000", socket.gethostname()],
            ["evil.example:8000", "localhost:8000.evil.example"],
        ),
        ("::", (), ["[::1]:8000", "10.1.2.3"], ["evil.example"]),
        ("127.0.0.1", ("*",), ["evil.example", "anything:1"], []),
    ],
)
def test_the_host_header_must_name_the_service(
    run_dir: Path,
    index_dir: Path,
    bind: str,
    allowed: tuple[str, ...],
    answered: list[str],
    refused: list[str],
) -> None:
    with _hosts_app(run_dir, index_dir, bind, allowed) as client:
        for host in answered:
            assert client.get("/health", headers={"host": host}).status_code == 200, host
        for host in refused:
            for method, path in (("GET", "/"), ("GET", "/health"), ("POST", "/items")):
                answer = client.request(
                    method, path, headers={"host": host}, json={"vector": [0.5] * 16}
                )
                assert answer.status_code == 400, (host, answer.text)
                detail = answer.json()["detail"]
                assert "Host header" in detail and "\n" not in detail
                assert ("--allowed-host" in detail) == bool(host)
        health = client.get("/health", headers={"host": "localhost"}).json()
        assert health["count"] == 450  # nothing was added


def test_allowed_hosts_reach_the_app_of_serve_and_of_its_workers(
    run_dir: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from tripletnet.service import workers
    from tripletnet.service.app import SETTINGS_VARIABLE, app_from_environment
    from tripletnet.service.observe import MULTIPROCESS

    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr(workers, "spread_by_kernel", lambda: True)
    monkeypatch.setattr(workers, "serve", lambda *args: apps.append(app_from_environment()))
    for variable in (SETTINGS_VARIABLE, MULTIPROCESS):  # serve sets them: put them back after
        monkeypatch.setenv(variable, "")
    command = ["serve", str(run_dir), "--index", str(index_dir)]
    allowed = ["--allowed-host", "search.example.com", "--allowed-host", "10.9.8.7"]
    assert main([*command, *allowed]) == 0
    assert main([*command, *allowed, "--workers", "2"]) == 0
    assert len(apps) == 2
    for app in apps:
        with TestClient(app) as client:  # type: ignore[arg-type]
            for host in ("search.example.com", "10.9.8.7:8000", "localhost:8000"):
                assert client.get("/health", headers={"host": host}).status_code == 200
            assert client.get("/health", headers={"host": "evil.example"}).status_code == 400


def test_an_allowed_host_with_a_port_is_one_error_line(
    run_dir: Path, index_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["serve", str(run_dir), "--index", str(index_dir)]
    assert main([*command, "--allowed-host", "search.example.com:443"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allowed-host takes a host name" in err[0], err


def test_browser_writes_must_come_from_the_services_own_page(
    client: TestClient, index_dir: Path
) -> None:
    vector = {"vector": [0.5] * 16}
    own = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    assert client.post("/items", json=vector, headers=own).status_code == 201
    assert client.post("/search", files=image(7), headers=own).status_code == 200
    assert client.delete("/items/1", headers=own).status_code == 200
    assert client.post("/items", json=vector).status_code == 201  # curl, Python: no Origin
    assert client.post("/items", json=vector, headers={"sec-fetch-site": "none"}).status_code == 201
    tls_proxy = {"origin": "https://testserver"}  # a proxy in front ends TLS
    assert client.post("/items", json=vector, headers=tls_proxy).status_code == 201
    count = 450 - 1 + 4
    for headers, says in (
        ({"origin": "http://evil.example"}, "another origin"),
        ({"origin": "http://testserver:3000"}, "another origin"),  # another port: another site
        ({"origin": "null"}, "another origin"),
        ({"sec-fetch-site": "cross-site"}, "Sec-Fetch-Site"),
        ({"sec-fetch-site": "same-site", "origin": "http://testserver"}, "Sec-Fetch-Site"),
    ):
        form = client.post("/items", files=image(3), data={"label": "3"}, headers=headers)
        removal = client.delete("/items/2", headers=headers)
        for answer in (form, removal):
            assert answer.status_code == 403, answer.text
            assert says in answer.json()["detail"]
            assert "own page" in answer.json()["detail"]
    cross = {"origin": "http://evil.example", "sec-fetch-site": "cross-site"}
    assert client.get("/items/2", headers=cross).status_code == 200  # reads: the Host check
    assert client.get("/health").json()["count"] == count
    assert len(SearchIndex.load(index_dir)) == count


def test_the_access_log_escapes_what_it_prints(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripletnet.service.access")
    forged = "%0Arequest_id=forged%20method=GET%20path=/%20status=200%00%1B[2J%5C%E2%80%A8"
    assert client.get(f"/items/1{forged}").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "tripletnet.service.access"]
    assert len(lines) == 1
    line = lines[0]
    fields = [field.partition("=")[0] for field in line.split(" ")]
    assert fields == ["request_id", "method", "path", "status", "ms"] and " status=404 " in line
    assert "\n" not in line and "\x00" not in line and "\x1b" not in line and "\u2028" not in line
    escaped = (
        "\\nrequest_id=forged\\x20method=GET\\x20path=/\\x20status=200\\x00\\x1b[2J\\\\\\u2028"
    )
    assert f"path=/items/1{escaped} status=404" in line


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_token_file_others_can_read_gets_a_warning(
    run_dir: Path,
    index_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
    warned: bool,
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-0123456789abcdef\n")
    token_file.chmod(mode)
    command = ["serve", str(run_dir), "--index", str(index_dir), "--token-file", str(token_file)]
    assert main(command) == 0  # (--no-access-log would silence the access log for later tests)
    err = capsys.readouterr().err.strip().splitlines()
    if warned:
        assert len(err) == 1 and err[0].startswith("warning: "), err
        assert f"{mode:03o}" in err[0] and f"chmod 600 {token_file}" in err[0]
        assert "s3cret" not in err[0]
    else:
        assert err == []


def test_vectors_whose_distances_overflow_float32_are_refused(client: TestClient) -> None:
    for values in ([3e38] * 16, [1e19] * 16, [-3.3e38] + [0.0] * 15):
        for path in ("/search", "/items"):
            answer = client.post(path, json={"vector": values})
            assert answer.status_code == 422, answer.text
            assert "overflow float32" in answer.json()["detail"]
    big = client.post("/search", json={"vector": [1e17] * 16, "k": 3})  # large, but it fits
    assert big.status_code == 200 and len(big.json()["results"]) == 3
    assert client.get("/health").json()["count"] == 450


def test_a_streamed_batch_over_the_limit_gets_413_not_400(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"vectors": ['
        for _ in range(400):
            yield b"[" + b", ".join([b"0.25"] * 16) + b"], "

    response = client.post(
        "/search/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"request body too large: the limit is {LIMIT} bytes"


def test_an_endless_chunked_batch_is_refused_as_it_streams_in(server: tuple[str, int]) -> None:
    """The batch route's limit (1000 vectors at 32 bytes a value, + 1 MiB: 1.5 MB for 16-d
    vectors) is enforced while the body streams in: the 413 comes before the client has sent
    a fraction of its 100 MB, and quickly."""
    row = b"[" + b", ".join([b"0.25"] * 16) + b"], "
    chunk = row * 1000  # 87 KB: 1000 vectors
    total = 1200 * len(chunk)  # 1.2 million vectors, 104 MB
    sent, answer = 0, b""
    start = time.monotonic()
    with socket.create_connection(server, timeout=20) as connection:
        head = (
            f"POST /search/batch HTTP/1.1\r\nHost: {server[0]}:{server[1]}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        connection.sendall(head.encode() + b'd\r\n{"vectors": [\r\n')
        try:
            while sent < total and not select.select([connection], [], [], 0)[0]:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server closed the connection: its answer is waiting
            pass
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = connection.recv(65536)
            if not part:
                break
            answer += part
    elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"the limit is 1560576 bytes" in answer
    assert sent < total / 4, f"sent {sent} of {total} bytes before the answer"
    assert elapsed < 10
