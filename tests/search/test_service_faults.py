"""No acknowledged write lost, none doubled: idempotent adds (Idempotency-Key, a chosen id),
a full disk (507, nothing applied, the service goes on), a damaged change log (refused), and,
in the slow suite, the worker supervisor under kill -9 and a real full disk (a small tmpfs)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from search_images import digit_png

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from tripletnet.search import SearchIndex  # noqa: E402
from tripletnet.search import changelog as changelog_module  # noqa: E402
from tripletnet.search import folder as folder_module  # noqa: E402
from tripletnet.search import store as store_module  # noqa: E402
from tripletnet.search.changelog import LOG, Change, DamagedLogError  # noqa: E402
from tripletnet.service import create_app  # noqa: E402

VECTOR = [0.5] * 16
PNG = digit_png(3)


@pytest.fixture
def client(run_dir: Path, index_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(run_dir, index_dir), raise_server_exceptions=False) as client:
        yield client


def count(client: TestClient) -> int:
    return int(client.get("/health").json()["count"])


# -- idempotent writes ---------------------------------------------------------------------------


def test_a_repeated_idempotency_key_gives_the_first_answer_and_adds_once(
    client: TestClient, run_dir: Path, index_dir: Path
) -> None:
    body = {"vector": VECTOR, "label": 3, "source": "retried", "metadata": {"shop": "lyon"}}
    key = {"Idempotency-Key": "add-0001"}
    first = client.post("/items", json=body, headers=key)
    second = client.post("/items", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and first.json()["id"] == 450
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count(client) == 451
    other = client.post("/items", json={**body, "label": 4}, headers=key)  # the key reused
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    bad = client.post("/items", json=body, headers={"Idempotency-Key": "tab\there"})
    assert bad.status_code == 422 and count(client) == 451
    client.delete("/items/450")  # the first answer stays the answer, and nothing comes back
    with TestClient(create_app(run_dir, index_dir)) as restarted:  # remembered on disk
        again = restarted.post("/items", json=body, headers=key)
        assert again.status_code == 201 and again.json() == first.json()
        assert count(restarted) == 450 and SearchIndex.load(index_dir).next_id == 451
    upload = {"files": {"image": ("a.png", PNG, "image/png")}, "data": {"label": "3"}}
    one = client.post("/items", headers={"Idempotency-Key": "img"}, **upload)  # type: ignore[arg-type]
    two = client.post("/items", headers={"Idempotency-Key": "img"}, **upload)  # type: ignore[arg-type]
    assert one.status_code == two.status_code == 201 and one.json() == two.json()
    assert one.json()["thumbnail"] == f"/items/{one.json()['id']}/thumbnail.png"
    assert count(client) == 451


def test_a_chosen_id_is_an_upsert_that_never_doubles(client: TestClient, index_dir: Path) -> None:
    body = {"vector": VECTOR, "id": 5000, "source": "mine"}
    first = client.post("/items", json=body)
    second = client.post("/items", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json() and first.json()["id"] == 5000
    assert count(client) == 451
    changed = client.post("/items", json={**body, "source": "other"})
    assert changed.status_code == 409 and "exists with another" in changed.json()["detail"]
    reused = client.post("/items", json={"vector": VECTOR, "id": 7})  # 7 exists: kept as it is
    assert reused.status_code == 409  # its source differs (a dataset item)
    client.delete("/items/8")
    gone = client.post("/items", json={"vector": VECTOR, "id": 8})
    assert gone.status_code == 409 and "never reused" in gone.json()["detail"]
    form = client.post("/items", files={"image": ("b.png", PNG, "image/png")}, data={"id": "6000"})
    assert form.status_code == 201 and form.json()["id"] == 6000
    assert client.post("/items", json={"vector": VECTOR, "id": -1}).status_code == 422
    after = client.post("/items", json={"vector": VECTOR})  # the index goes on from there
    assert after.json()["id"] == 6001
    assert len(SearchIndex.load(index_dir)) == 452


# -- a full disk ---------------------------------------------------------------------------------


def test_disk_full_at_the_append_is_507_not_applied_and_the_service_goes_on(
    client: TestClient, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    failures = {"left": 1}

    def full_fsync(fd: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(changelog_module.os, "fsync", full_fsync)
    key = {"Idempotency-Key": "after-a-full-disk"}
    refused = client.post("/items", json={"vector": VECTOR, "source": "x"}, headers=key)
    assert refused.status_code == 507, refused.text
    assert refused.json()["detail"].startswith("disk full: ")
    assert "nothing was applied" in refused.json()["detail"]
    assert count(client) == 450 and len(SearchIndex.load(index_dir)) == 450
    log = index_dir / "v000001" / LOG
    assert changelog_module.size(log) == 0  # the record taken back
    assert client.post("/search", json={"vector": VECTOR}).status_code == 200
    retried = client.post("/items", json={"vector": VECTOR, "source": "x"}, headers=key)
    assert retried.status_code == 201 and retried.json()["id"] == 450  # the id was not spent
    assert count(client) == 451 and len(SearchIndex.load(index_dir)) == 451
    failures["left"] = 1
    removal = client.delete("/items/3")
    assert removal.status_code == 507 and count(client) == 451 and 3 in client.app.state.service.index.items  # type: ignore[attr-defined]  # fmt: skip


def test_disk_full_while_folding_the_log_keeps_the_committed_add(
    client: TestClient, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scenario of the report: the fold into a new version hits ENOSPC after the append
    committed. The add is answered 201 (it is on disk), once, and a retry does not double it."""
    monkeypatch.setattr(folder_module, "COMPACT_BYTES", 0)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_write_locked", full)
    answers = [
        client.post("/items", json={"vector": VECTOR, "source": f"fold-{n}"},
                    headers={"Idempotency-Key": f"fold-{n}"})
        for n in range(5)
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [201] * 5
    retries = [
        client.post("/items", json={"vector": VECTOR, "source": f"fold-{n}"},
                    headers={"Idempotency-Key": f"fold-{n}"})
        for n in range(5)
    ]  # fmt: skip
    assert [r.json() for r in retries] == [a.json() for a in answers]
    on_disk = SearchIndex.load(index_dir)
    assert on_disk.version == "v000001" and len(on_disk) == 455 and count(client) == 455


def test_a_failure_after_the_commit_is_answered_as_success(
    client: TestClient, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the record reached the log and something fails after, the answer is success."""
    real = SearchIndex.save_changes

    def commit_then_fail(self: SearchIndex, root: Any) -> None:
        real(self, root)  # committed; then a failure leaves the state looking unsaved
        self._pending.append(Change("remove", np.array([], np.int64)))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SearchIndex, "save_changes", commit_then_fail)
    answer = client.post("/items", json={"vector": VECTOR, "source": "committed"})
    assert answer.status_code == 201 and answer.json()["id"] == 450
    assert count(client) == 451 and len(SearchIndex.load(index_dir)) == 451


# -- a damaged change log ------------------------------------------------------------------------


def append_a_damaged_record(index_dir: Path) -> Path:
    """A whole record (newline included) that fails its checksum, as another writer's record
    damaged on disk would be, at the end of the live version's log."""
    log = index_dir / "v000001" / LOG
    record = bytearray(changelog_module.encode(Change("remove", np.array([1], np.int64))))
    record[-5] ^= 1
    with open(log, "ab") as handle:
        handle.write(bytes(record))
    return log


def test_a_damaged_log_is_refused_by_writes_and_at_start(
    client: TestClient, run_dir: Path, index_dir: Path
) -> None:
    for n in range(2):
        assert client.post("/items", json={"vector": VECTOR, "source": f"s{n}"}).status_code == 201
    log = append_a_damaged_record(index_dir)
    size = log.stat().st_size
    refused = client.post("/items", json={"vector": VECTOR})
    assert refused.status_code == 503, refused.text
    assert "damaged at line 3" in refused.json()["detail"] and str(index_dir) not in refused.text
    assert log.stat().st_size == size  # nothing written over it
    assert client.get("/health").json()["count"] == 452  # reads go on from the state there is
    with pytest.raises(DamagedLogError, match="damaged at line 3.*index repair"):
        create_app(run_dir, index_dir)


# -- the slow suite: real processes, real signals, a real full disk ------------------------------

TOKEN = "s3cret-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on the port (a server binds with SO_REUSEADDR as this probe
    does, so the closed connections' TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def children(pid: int) -> list[int]:
    """The worker processes of a server (not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(p) for p in path.read_text().split()] if path.exists() else []
    workers = []
    for child in found:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:  # gone meanwhile
            pass
    return workers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def start_server(run_dir: Path, index_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tripletnet", "serve", str(run_dir), "--index",
               str(index_dir), "--port", str(port), "--workers", "2", "--no-access-log"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TRIPLETNET_TOKEN": TOKEN}
    with open(log, "ab") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=sink)


def wait_healthy(port: int, server: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "no server"
        time.sleep(0.2)


def stop(server: subprocess.Popen[bytes]) -> int | None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        return None


class Served(NamedTuple):
    port: int
    log: Path
    server: subprocess.Popen[bytes]


@pytest.fixture
def served(run_dir: Path, index_dir: Path, tmp_path: Path) -> Iterator[Served]:
    """``tripletnet serve --workers 2`` on a free port, answering, its two workers started;
    stopped after the test."""
    port, log = free_port(), tmp_path / "server.log"
    server = start_server(run_dir, index_dir, port, log)
    try:
        wait_healthy(port, server)
        deadline = time.monotonic() + 60
        while len(children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield Served(port, log, server)
    finally:
        stop(server)


class Clients:
    """Threads that add items with an Idempotency-Key each, retrying (the same key) on a
    transport error or a 5xx until acknowledged, and record what was acknowledged."""

    def __init__(self, port: int, threads: int = 4, adds: int = 40) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.acknowledged: list[str] = []
        self.retries = 0
        self.unanswered: list[str] = []
        self.threads = [
            threading.Thread(target=self.run, args=(n, adds), daemon=True) for n in range(threads)
        ]

    def run(self, part: int, adds: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=self.base, timeout=30) as http:
            for n in range(adds):
                source = f"fault-{part}-{n}-{uuid.uuid4().hex[:8]}"
                key = {"Idempotency-Key": source, **headers}
                for attempt in range(400):  # bounded: about 100 s (a restart takes ~25 s)
                    try:
                        answer = http.post(
                            "/items", json={"vector": VECTOR, "source": source}, headers=key
                        )
                        if answer.status_code == 201:
                            self.acknowledged.append(source)
                            break
                    except httpx.TransportError:
                        pass
                    self.retries += attempt == 0
                    time.sleep(0.25)
                else:
                    self.unanswered.append(source)

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join(timeout=300)


def tally(index_dir: Path, acknowledged: list[str]) -> tuple[int, int]:
    """(lost, duplicated): acknowledged adds missing on disk, sources stored more than once."""
    sources = Counter(item.source for item in SearchIndex.load(index_dir).items.values())
    lost = sum(1 for source in acknowledged if sources[source] == 0)
    duplicated = sum(n - 1 for source, n in sources.items() if source and n > 1)
    return lost, duplicated


@pytest.mark.slow
def test_kill_9_of_a_worker_under_load_restarts_it_and_loses_nothing(
    served: Served, run_dir: Path, index_dir: Path
) -> None:
    port, log, server = served
    workers = children(server.pid)
    with Clients(port) as clients:
        time.sleep(2.0)  # under load
        killed_at = time.monotonic()
        os.kill(workers[0], signal.SIGKILL)
    # restarted: a new pid beside the survivor, and the log says so in one line
    while time.monotonic() < killed_at + 120:
        now = children(server.pid)
        if len(now) == 2 and workers[0] not in now and "restarted it" in log.read_text():
            break
        time.sleep(0.2)
    now = children(server.pid)
    assert len(now) == 2 and workers[0] not in now and workers[1] in now, log.read_text()
    restarted = [line for line in log.read_text().splitlines() if "restarted it" in line]
    assert len(restarted) == 1 and f"pid {workers[0]}" in restarted[0]
    for _ in range(10):  # both workers answer
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
    assert stop(server) == 0
    lost, duplicated = tally(index_dir, clients.acknowledged)
    print(
        f"\nkill -9 of a worker under load: acknowledged {len(clients.acknowledged)}, "
        f"lost {lost}, duplicated {duplicated}, requests retried {clients.retries}, "
        f"unanswered {len(clients.unanswered)}"
    )
    assert not clients.unanswered and len(clients.acknowledged) == 160
    assert (lost, duplicated) == (0, 0)


@pytest.mark.slow
def test_kill_9_of_the_parent_takes_the_workers_and_a_restart_works(
    served: Served, run_dir: Path, index_dir: Path
) -> None:
    port, log, server = served
    again: subprocess.Popen[bytes] | None = None
    try:
        workers = children(server.pid)
        with Clients(port, threads=2, adds=20) as clients:
            time.sleep(1.0)
            killed_at = time.monotonic()
            server.kill()
            server.wait()
            while any(alive(pid) for pid in workers) and time.monotonic() < killed_at + 60:
                time.sleep(0.05)
            workers_gone = time.monotonic() - killed_at
            assert not any(alive(pid) for pid in workers), "orphaned workers"
            while not port_is_free(port) and time.monotonic() < killed_at + 60:
                time.sleep(0.05)
            port_freed = time.monotonic() - killed_at
            assert port_is_free(port)
            again = start_server(run_dir, index_dir, port, log)  # the same port
            wait_healthy(port, again)
            restart = time.monotonic() - killed_at
        assert stop(again) == 0
        lost, duplicated = tally(index_dir, clients.acknowledged)
        print(
            f"\nkill -9 of the parent: workers gone after {workers_gone:.2f} s, port free after "
            f"{port_freed:.2f} s, restarted and answering after {restart:.1f} s; adds "
            f"acknowledged {len(clients.acknowledged)}, lost {lost}, duplicated {duplicated}, "
            f"unanswered {len(clients.unanswered)}"
        )
        assert not clients.unanswered and (lost, duplicated) == (0, 0)
    finally:
        stop(server)
        if again is not None:
            stop(again)


@pytest.mark.slow
def test_sigterm_to_the_parent_drains_and_exits_0(
    served: Served, run_dir: Path, index_dir: Path
) -> None:
    port, log, server = served
    results: list[tuple[str, Any]] = []

    def add(part: int) -> None:  # adds, each on a new connection, until refused
        headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "close"}
        for n in range(200):
            source = f"drain-{part}-{n}"
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/items", headers=headers,
                                    json={"vector": VECTOR, "source": source}, timeout=60)  # fmt: skip
                results.append((source, answer.status_code))
            except httpx.TransportError as error:
                results.append((source, type(error).__name__))
                return

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=120)
    assert server.wait(timeout=60) == 0
    stored = {item.source for item in SearchIndex.load(index_dir).items.values()}
    answered = [source for source, r in results if r == 201]
    print(f"\nSIGTERM under load: answers {Counter(str(r) for _, r in results)}")
    assert all(r in (201, "ConnectError") for _, r in results), results  # none cut off
    assert answered and set(answered) <= stored
    assert port_is_free(port)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root and a kernel that allows it), unmounted after."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_real_full_disk_is_507_applies_nothing_and_the_service_goes_on(
    run_dir: Path,
    index_dir: Path,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = small_disk / "index"
    shutil.copytree(index_dir, folder)
    monkeypatch.setattr(folder_module, "COMPACT_BYTES", 16 * 1024)  # the folds need room too
    usage = shutil.disk_usage(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, usage.free - 160 * 1024))  # about 160 KiB left
    acknowledged, refused, folds_failed = [], 0, 0
    with TestClient(create_app(run_dir, folder), raise_server_exceptions=False) as client:
        for n in range(400):  # bounded: about 160 KiB of records fill it well before
            source = f"full-{n}"
            answer = client.post("/items", json={"vector": VECTOR, "source": source},
                                 headers={"Idempotency-Key": source})  # fmt: skip
            if answer.status_code == 201:
                acknowledged.append(source)
                continue
            assert answer.status_code == 507, answer.text
            assert answer.json()["detail"].startswith("disk full: ")
            refused += 1
            assert client.get("/health").status_code == 200  # still up
            assert client.post("/search", json={"vector": VECTOR}).status_code == 200
            if refused == 3:
                break
        folds_failed = caplog.text.count("could not compact the change log")
        on_disk = {i.source for i in SearchIndex.load(folder).items.values()}
        assert (
            set(acknowledged) <= on_disk
            and not {f"full-{n}" for n in range(400)} - set(acknowledged) & on_disk
        )
        assert refused == 3 and count(client) == len(SearchIndex.load(folder))
        filler.unlink()  # space again: the refused add, retried with its key, goes in once
        retry = f"full-{len(acknowledged)}"
        answer = client.post("/items", json={"vector": VECTOR, "source": retry},
                             headers={"Idempotency-Key": retry})  # fmt: skip
        assert answer.status_code == 201
    lost, duplicated = tally(folder, [*acknowledged, retry])
    print(
        f"\nENOSPC on a 2 MiB tmpfs: acknowledged {len(acknowledged)} + 1 retried, refused 507 "
        f"{refused}, lost {lost}, duplicated {duplicated}, folds that failed {folds_failed}, "
        f"live version {SearchIndex.load(folder).version}"
    )
    assert (lost, duplicated) == (0, 0)
