"""Fixtures for the search tests: a tiny trained digits run and an index built from it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tripletnet.search import Embedder, build_index, from_dataset
from tripletnet.training import TrainConfig, train


def train_tiny_run(out: Path, seed: int = 0) -> Path:
    """A digits MLP trained for one short epoch: seconds on a CPU, good enough to cluster."""
    config = TrainConfig(
        dataset="digits", epochs=2, triplets_per_epoch=2048, embedding_dim=16, seed=seed
    )
    train(config, out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("run") / "digits")


@pytest.fixture(scope="session")
def other_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("run") / "digits-other", seed=1)


@pytest.fixture(scope="session")
def embedder(run_dir: Path) -> Embedder:
    return Embedder.from_run(run_dir)


@pytest.fixture
def index_dir(tmp_path: Path, embedder: Embedder) -> Path:
    """A saved exact index of the 450 digits test images (with thumbnails)."""
    index = build_index(embedder, from_dataset(embedder, "digits"))
    folder = tmp_path / "index"
    index.save(folder)
    return folder


def serve(app: object) -> Iterator[tuple[str, int]]:
    """Serve ``app`` on a free loopback port (uvicorn in a thread) until the generator ends."""
    uvicorn = pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the service did not start")
        time.sleep(0.05)
    yield "127.0.0.1", port
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def server(run_dir: Path, index_dir: Path) -> Iterator[tuple[str, int]]:
    """The service on a free loopback port (uvicorn in a thread)."""
    pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
    from tripletnet.service import create_app

    yield from serve(create_app(run_dir, index_dir))
