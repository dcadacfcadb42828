"""The service on an ONNX export (onnxruntime) answers as the service on the run (torch) does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from search_images import digit_png

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' extra")
pytest.importorskip("onnxruntime", reason="serving an ONNX file needs the 'onnx' extra")
from fastapi.testclient import TestClient  # noqa: E402

from tripletnet.errors import TripletnetError  # noqa: E402
from tripletnet.export import export_run  # noqa: E402
from tripletnet.search import Embedder  # noqa: E402
from tripletnet.search.onnx_embedder import OnnxEmbedder  # noqa: E402
from tripletnet.service import create_app  # noqa: E402

ROWS = (0, 7, 42, 123, 321)


@pytest.fixture(scope="module")
def onnx_file(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_run(run_dir, tmp_path_factory.mktemp("onnx") / "digits.onnx").path


@pytest.fixture
def clients(
    run_dir: Path, index_dir: Path, onnx_file: Path
) -> Iterator[tuple[TestClient, TestClient]]:
    """The service on the run and on its ONNX file, over the same index."""
    with (
        TestClient(create_app(run_dir, index_dir)) as on_torch,
        TestClient(create_app(None, index_dir, onnx=onnx_file)) as on_onnx,
    ):
        yield on_torch, on_onnx


def image(row: int) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (f"{row}.png", digit_png(row, scale=3), "image/png")}


def test_health_names_the_runs_fingerprint(
    clients: tuple[TestClient, TestClient], run_dir: Path, onnx_file: Path
) -> None:
    on_torch, on_onnx = (client.get("/health").json() for client in clients)
    assert on_onnx["model"]["runtime"] == "onnxruntime" and on_torch["model"]["runtime"] == "torch"
    assert on_onnx["model"]["fingerprint"] == on_torch["model"]["fingerprint"]
    assert on_onnx["model"]["run"] == run_dir.name  # the run it was exported from
    for key in ("architecture", "input_shape", "metric"):
        assert on_onnx["model"][key] == on_torch["model"][key]
    assert (on_onnx["dim"], on_onnx["count"], on_onnx["accepts_images"]) == (16, 450, True)
    assert str(onnx_file.parent) not in json.dumps(on_onnx)


def test_image_and_vector_searches_find_the_same_neighbours(
    clients: tuple[TestClient, TestClient],
) -> None:
    on_torch, on_onnx = clients
    for row in ROWS:
        answers = [c.post("/search", files=image(row), data={"k": "8"}) for c in clients]
        assert [answer.status_code for answer in answers] == [200, 200]
        torch_hits, onnx_hits = (answer.json()["results"] for answer in answers)
        assert [hit["id"] for hit in onnx_hits] == [hit["id"] for hit in torch_hits]
        np.testing.assert_allclose(
            [hit["distance"] for hit in onnx_hits],
            [hit["distance"] for hit in torch_hits],
            atol=1e-4,
        )
        embedded = [c.post("/embed", files=image(row)).json()["embedding"] for c in clients]
        np.testing.assert_allclose(embedded[1], embedded[0], atol=1e-4)
        vector = {"vector": embedded[0], "k": 5}
        by_vector = [c.post("/search", json=vector).json()["results"] for c in clients]
        assert by_vector[0] == by_vector[1]


def test_items_added_through_the_onnx_service(
    clients: tuple[TestClient, TestClient],
) -> None:
    _, on_onnx = clients
    added = on_onnx.post("/items", files=image(7), data={"label": "7"})
    assert added.status_code == 201 and added.json()["label"] == 7
    thumbnail = on_onnx.get(added.json()["thumbnail"])
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")
    found = on_onnx.post("/search", files=image(7), data={"k": "2"}).json()["results"]
    assert {hit["id"] for hit in found} == {7, added.json()["id"]}


def test_the_onnx_embedder_embeds_as_the_run_does(run_dir: Path, onnx_file: Path) -> None:
    torch_side, onnx_side = Embedder.from_run(run_dir), OnnxEmbedder.from_file(onnx_file)
    assert onnx_side.ref.fingerprint == torch_side.ref.fingerprint
    assert (onnx_side.dim, onnx_side.input_shape, onnx_side.metric) == (16, (1, 8, 8), "euclidean")
    samples = np.random.default_rng(0).uniform(0, 16, (300, 1, 8, 8)).astype(np.float32)
    got = onnx_side.embed_samples(samples)  # more than one onnxruntime batch
    assert got.shape == (300, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch_side.embed_samples(samples), atol=1e-4)
    assert onnx_side.embed_samples(samples[:0]).shape == (0, 16)
    with pytest.raises(TripletnetError, match=r"expected samples of shape \(N, 1, 8, 8\)"):
        onnx_side.embed_samples(samples.reshape(300, 64))


def test_another_runs_file_and_bad_choices_are_refused(
    run_dir: Path, other_run_dir: Path, index_dir: Path, onnx_file: Path, tmp_path: Path
) -> None:
    other = export_run(other_run_dir, tmp_path / "other.onnx").path
    with pytest.raises(TripletnetError, match="does not match"):
        create_app(None, index_dir, onnx=other)
    with pytest.raises(TripletnetError, match="exactly one of"):
        create_app(run_dir, index_dir, onnx=onnx_file)
    with pytest.raises(TripletnetError, match="exactly one of"):
        create_app(None, index_dir)
    torchscript = export_run(run_dir, tmp_path / "digits.pt", format="torchscript").path
    with pytest.raises(TripletnetError, match="is a TorchScript file"):
        create_app(None, index_dir, onnx=torchscript)


# Blocks `import torch` (and every torch.* module), then serves the ONNX file.
TORCH_FREE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test (importing {name})")
            return None

    sys.meta_path.insert(0, NoTorch())
    from fastapi.testclient import TestClient
    from tripletnet.service.app import create_app

    index, model = sys.argv[1], sys.argv[2]
    with TestClient(create_app(None, index, onnx=model)) as client:
        health = client.get("/health").json()
        found = client.post("/search", json={"vector": [0.1] * health["dim"], "k": 3})
    assert found.status_code == 200 and len(found.json()["results"]) == 3, found.text
    assert "torch" not in sys.modules
    print(json.dumps(health["model"]))
    """
)


def test_the_onnx_service_runs_without_torch(index_dir: Path, onnx_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(index_dir), str(onnx_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["runtime"] == "onnxruntime"
