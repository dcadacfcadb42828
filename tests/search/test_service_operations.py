"""The service facing a network: tokens, filters and metadata, the batch route, metrics, the
access log and several worker processes on one index folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from search_images import digit_png

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
prometheus_parser = pytest.importorskip("prometheus_client.parser")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from tripletnet.errors import TripletnetError  # noqa: E402
from tripletnet.search import SearchIndex  # noqa: E402
from tripletnet.service import create_app  # noqa: E402
from tripletnet.service.auth import Access, check_exposure, load_token  # noqa: E402

TOKEN = "s3cret-token-0123456789abcdef"
VECTOR = [0.5] * 16
PNG = digit_png(3)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(run_dir: Path, index_dir: Path) -> Iterator[TestClient]:
    app = create_app(run_dir, index_dir, access=Access(TOKEN))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def locked(run_dir: Path, index_dir: Path) -> Iterator[TestClient]:
    app = create_app(run_dir, index_dir, access=Access(TOKEN, protect_reads=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


WRITES = [
    ("POST", "/items", {"json": {"vector": VECTOR}}),
    ("POST", "/items", {"files": {"image": ("a.png", PNG, "image/png")}}),
    ("DELETE", "/items/3", {}),
]
READS = [
    ("POST", "/search", {"json": {"vector": VECTOR}}),
    ("POST", "/search", {"files": {"image": ("a.png", PNG, "image/png")}}),
    ("POST", "/search/batch", {"json": {"vectors": [VECTOR]}}),
    ("POST", "/embed", {"files": {"image": ("a.png", PNG, "image/png")}}),
    ("GET", "/items/3", {}),
    ("GET", "/items/3/thumbnail.png", {}),
    ("GET", "/metrics", {}),
]


def refused_with(client: TestClient, method: str, path: str, kwargs: dict[str, object]) -> None:
    missing = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in missing.json()["detail"]
    for wrong in (bearer("x" + TOKEN[1:]), bearer(TOKEN[:-1]), {"Authorization": f"Basic {TOKEN}"}):
        answer = client.request(method, path, headers=wrong, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code in (401, 403), answer.text
        assert TOKEN not in answer.text and TOKEN[:-1] not in answer.text


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
def test_every_write_needs_the_token(
    guarded: TestClient, index_dir: Path, method: str, path: str, kwargs: dict[str, object]
) -> None:
    refused_with(guarded, method, path, kwargs)
    wrong = guarded.request(method, path, headers=bearer("y" * 30), **kwargs)  # type: ignore[arg-type]
    assert (
        wrong.status_code == 403
        and wrong.json()["detail"] == "the token is not valid for this service"
    )
    assert len(SearchIndex.load(index_dir)) == 450  # nothing changed
    allowed = guarded.request(method, path, headers=bearer(), **kwargs)  # type: ignore[arg-type]
    assert allowed.status_code in (200, 201), allowed.text


@pytest.mark.parametrize(("method", "path", "kwargs"), READS)
def test_reads_are_open_unless_protected(
    guarded: TestClient, locked: TestClient, method: str, path: str, kwargs: dict[str, object]
) -> None:
    assert guarded.request(method, path, **kwargs).status_code == 200  # type: ignore[arg-type]
    refused_with(locked, method, path, kwargs)
    allowed = locked.request(method, path, headers=bearer(), **kwargs)  # type: ignore[arg-type]
    assert allowed.status_code == 200, allowed.text


def test_the_page_health_and_docs_stay_open(locked: TestClient) -> None:
    for path in ("/", "/health", "/openapi.json", "/docs"):
        assert locked.get(path).status_code == 200
    assert locked.get("/health").json()["token_required"] == {"writes": True, "reads": True}


def test_the_token_is_never_logged(
    run_dir: Path, index_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(run_dir, index_dir, access=Access(TOKEN))
    with TestClient(app, raise_server_exceptions=False) as client:
        for headers in (bearer(), bearer(TOKEN + "x"), {}):
            client.post("/items", json={"vector": VECTOR}, headers=headers)
            client.post("/items", json={"vector": "bad"}, headers=headers)
    assert "status=201" in caplog.text and "status=403" in caplog.text
    assert "status=401" in caplog.text and "status=422" in caplog.text
    assert TOKEN not in caplog.text


def test_the_token_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIPLETNET_TOKEN", raising=False)
    assert load_token(None) is None
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert load_token(tmp_path / "token") == TOKEN
    monkeypatch.setenv("TRIPLETNET_TOKEN", TOKEN)
    assert load_token(None) == TOKEN
    with pytest.raises(TripletnetError, match="give the token once"):
        load_token(tmp_path / "token")
    monkeypatch.setenv("TRIPLETNET_TOKEN", "short")
    with pytest.raises(TripletnetError, match="at least 16") as short:
        load_token(None)
    assert "short" not in str(short.value).replace("shorter", "")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_a_network_address_without_a_token_is_refused_unless_insecure(host: str) -> None:
    with pytest.raises(TripletnetError, match=f"refusing to listen on {host} without a token"):
        check_exposure(host, None, insecure=False, protect_reads=False)
    check_exposure(host, None, insecure=True, protect_reads=False)
    check_exposure(host, TOKEN, insecure=False, protect_reads=True)
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(loopback, None, insecure=False, protect_reads=False)


def test_filters_and_metadata_through_the_api(guarded: TestClient) -> None:
    for shop in ("lyon", "oslo", "lyon"):
        added = guarded.post(
            "/items",
            json={"vector": VECTOR, "label": 4, "metadata": {"shop": shop}},
            headers=bearer(),
        )
        assert added.status_code == 201 and added.json()["metadata"] == {"shop": shop}
    form = guarded.post(
        "/items",
        files={"image": ("a.png", PNG, "image/png")},
        data={"metadata": '{"shop": "oslo", "year": 2024}', "label": "4"},
        headers=bearer(),
    )
    assert form.json()["metadata"] == {"shop": "oslo", "year": 2024}
    found = guarded.post("/search", json={"vector": VECTOR, "k": 10, "where": {"shop": "lyon"}})
    assert [r["id"] for r in found.json()["results"]] == [450, 452]
    by_label = guarded.post("/search", json={"vector": VECTOR, "k": 50, "labels": [4]}).json()
    index = guarded.app.state.service.index  # type: ignore[attr-defined]
    fours = {i for i, item in index.items.items() if item.label == 4}
    assert {r["id"] for r in by_label["results"]} <= fours
    assert len(by_label["results"]) == min(50, len(fours))
    upload = guarded.post(
        '/search?labels=4&where={"shop":"oslo"}', files={"image": ("a.png", PNG, "image/png")}
    )
    assert [r["id"] for r in upload.json()["results"]] == [453, 451]


def test_the_batch_route_answers_as_single_searches_do(guarded: TestClient) -> None:
    vectors = np.random.default_rng(0).normal(size=(5, 16)).tolist()
    batch = guarded.post("/search/batch", json={"vectors": vectors, "k": 3, "labels": [1, 2]})
    assert batch.status_code == 200
    for vector, results in zip(vectors, batch.json()["results"], strict=True):
        single = guarded.post("/search", json={"vector": vector, "k": 3, "labels": [1, 2]})
        assert results == single.json()["results"]


def test_metrics_parse_and_count_requests(guarded: TestClient) -> None:
    guarded.post("/search", json={"vector": VECTOR})
    guarded.post("/items", json={"vector": VECTOR})  # 401
    guarded.get("/items/999999")
    answer = guarded.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in prometheus_parser.text_string_to_metric_families(answer.text)}
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["tripletnet_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("POST", "/search", "200")] == 1
    assert requests[("POST", "unmatched", "401")] == 1  # refused before routing
    assert requests[("GET", "/items/{item_id}", "404")] == 1
    counts = [
        s for s in families["tripletnet_request_seconds"].samples if s.name.endswith("_count")
    ]
    assert any(s.labels["route"] == "/search" and s.value == 1 for s in counts)
    assert families["tripletnet_items"].samples[0].value == 450
    version = guarded.get("/health").json()["version"]
    assert families["tripletnet_index_version"].samples[0].value == int(version[1:])


def test_every_request_gets_an_id_and_one_access_log_line(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tripletnet.service.access")
    mine = guarded.get("/health", headers={"X-Request-ID": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"
    odd = guarded.get("/health", headers={"X-Request-ID": "no spaces\tor tabs"})
    assert len(odd.headers["x-request-id"]) == 32  # a fresh uuid4
    lines = [r.getMessage() for r in caplog.records if r.name == "tripletnet.service.access"]
    assert "request_id=trace-42 method=GET path=/health status=200" in lines[0]
    assert f"request_id={odd.headers['x-request-id']}" in lines[1] and len(lines) == 2


def test_a_memory_mapped_service_is_read_only(run_dir: Path, index_dir: Path) -> None:
    with TestClient(create_app(run_dir, index_dir, mmap=True)) as client:
        assert client.post("/search", json={"vector": VECTOR}).status_code == 200
        refused = client.post("/items", json={"vector": VECTOR})
        assert refused.status_code == 405 and "read-only" in refused.json()["detail"]
        assert client.get("/health").json()["read_only"] is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_workers_on_a_port_in_use_is_one_error_line(
    run_dir: Path, index_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripletnet.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["serve", str(run_dir), "--index", str(index_dir), "--port", port, "--workers", "2"]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot listen on 127.0.0.1:{port}"), err


def test_a_worker_whose_port_was_taken_after_the_probe_exits_with_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tripletnet.service.workers import _worker

    with socket.socket() as taken:  # no SO_REUSEPORT: a worker's socket cannot share the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as stopped:
            _worker(
                "tripletnet.service.app:app_from_environment", "127.0.0.1", taken.getsockname()[1]
            )
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot listen on 127.0.0.1:"), err


@pytest.mark.slow
def test_two_worker_processes_adding_at_once_lose_nothing(
    run_dir: Path, index_dir: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    command = [sys.executable, "-m", "tripletnet", "serve", str(run_dir), "--index", str(index_dir),
               "--port", str(port), "--workers", "2", "--token-file", str(token_file)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.5)
        answered: list[int] = []

        def add(part: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                for n in range(20):
                    source = f"worker-test-{part}-{n}"
                    answer = http.post(
                        "/items", json={"vector": VECTOR, "source": source}, headers=bearer()
                    )
                    answered.append(answer.status_code)

        threads = [threading.Thread(target=add, args=(part,)) for part in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answered.count(201) == 80, answered
        on_disk = SearchIndex.load(index_dir)
        sources = [item.source for item in on_disk.items.values()]
        assert (
            len(on_disk) == 530 and len({s for s in sources if s.startswith("worker-test")}) == 80
        )
        assert on_disk.version == "v000001" and on_disk.logged == 80  # appended, not rewritten
        for _ in range(8):  # either worker: it has applied the other's records
            health = httpx.get(f"{base}/health", timeout=10).json()
            assert (health["count"], health["version"]) == (530, "v000001")
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        families = {f.name: f for f in prometheus_parser.text_string_to_metric_families(metrics)}
        adds = sum(
            s.value
            for s in families["tripletnet_requests"].samples
            if s.name.endswith("_total")
            and s.labels["route"] == "/items"
            and s.labels["status"] == "201"
        )
        assert adds == 80  # both workers' requests, pooled
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert json.dumps(TOKEN) not in (server.stderr.read() if server.stderr else "")
