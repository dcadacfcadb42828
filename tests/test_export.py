"""``tripletnet export``: a run's net in an ONNX or TorchScript file that embeds raw samples as the
run does (normalisation inside, L2 for a cosine run, any batch size), with the spec inside."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tripletnet.cli import main
from tripletnet.export import (
    DYNAMO,
    TORCHSCRIPT,
    ExportError,
    export_run,
    onnx_exporters,
    read_exported_spec,
)
from tripletnet.runs import TrainedRun, load_run
from tripletnet.runs.data import load_data
from tripletnet.search import Embedder
from tripletnet.search.onnx_embedder import (
    TORCHSCRIPT_EXTRA,
    ExportedFileError,
    read_export_info,
)
from tripletnet.training import TrainConfig, train

onnx = pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' extra")
onnxruntime = pytest.importorskip("onnxruntime", reason="the ONNX checks need onnxruntime")

TOLERANCE = 1e-4
BATCHES = (1, 37)
CURRENT = importlib.util.find_spec("onnxscript") is not None  # torch's current exporter needs it


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny digits runs: the Euclidean default net, and a cosine one (multi-similarity)."""
    root = tmp_path_factory.mktemp("export-runs")
    configs = {
        "euclidean": TrainConfig(
            dataset="digits", epochs=1, triplets_per_epoch=512, embedding_dim=16
        ),
        "cosine": TrainConfig(
            dataset="digits", loss="multi-similarity", epochs=1, embedding_dim=16
        ),
    }
    for name, config in configs.items():
        train(config, root / name, show_progress=False, log_epochs=False)
    return {name: root / name for name in configs}


@pytest.fixture(scope="module")
def samples(runs: dict[str, Path]) -> np.ndarray:
    """37 raw test digits exactly as the dataset gives them (0..16), as float32."""
    data = load_data(load_run(runs["euclidean"]).config)
    return np.asarray(data.test.x[: max(BATCHES)], dtype=np.float32)


def torch_embeddings(run: TrainedRun, samples: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run.model(run.prepare(samples)).numpy()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_onnx_embeds_like_torch(
    runs: dict[str, Path], samples: np.ndarray, tmp_path: Path, metric: str
) -> None:
    run = load_run(runs[metric])
    assert run.spec.metric == metric
    out = tmp_path / "model.onnx"
    result = export_run(runs[metric], out)
    assert result.max_abs_difference is not None and result.max_abs_difference < TOLERANCE
    assert result.exporter == (DYNAMO if CURRENT else TORCHSCRIPT) == onnx_exporters(18)[0]

    model = onnx.load(str(out))
    assert [opset.version for opset in model.opset_import if not opset.domain] == [18]
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    ops = [node for node in graph.node if node.op_type != "Constant"]
    # (x - mean) / std first: the samples go to a Sub (and at most a Shape), its output to a Div
    assert {node.op_type for node in ops if "samples" in node.input} <= {"Sub", "Shape"}
    (sub,) = [node for node in ops if node.op_type == "Sub" and node.input[0] == "samples"]
    assert [node.op_type for node in ops if sub.output[0] in node.input] == ["Div"]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 8, 8]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [
        "batch",
        16,
    ]
    assert ("ReduceL2" in {node.op_type for node in graph.node}) == (metric == "cosine")

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in BATCHES:
        got = session.run(None, {"samples": samples[:batch]})[0]
        expected = torch_embeddings(run, samples[:batch])
        assert got.shape == (batch, 16) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
        if metric == "cosine":
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    props = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(props["tripletnet.spec"]) == run.spec.to_dict()
    assert props["tripletnet.fingerprint"] == Embedder.from_run(runs[metric]).ref.fingerprint
    assert props["tripletnet.run"] == metric
    assert read_exported_spec(out) == run.spec


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_torchscript_embeds_like_torch(
    runs: dict[str, Path], samples: np.ndarray, tmp_path: Path, metric: str
) -> None:
    run = load_run(runs[metric])
    out = tmp_path / "model.pt"
    result = export_run(runs[metric], out, format="torchscript")
    assert result.opset is None and result.checked_batches == (1, 3)

    extra = {TORCHSCRIPT_EXTRA: ""}
    loaded = torch.jit.load(str(out), map_location="cpu", _extra_files=extra)
    for batch in BATCHES:
        with torch.no_grad():
            got = loaded(torch.from_numpy(samples[:batch])).numpy()
        np.testing.assert_allclose(got, torch_embeddings(run, samples[:batch]), atol=TOLERANCE)
        if metric == "cosine":
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    metadata = json.loads(extra[TORCHSCRIPT_EXTRA])
    assert json.loads(metadata["tripletnet.spec"]) == run.spec.to_dict()
    assert read_exported_spec(out) == run.spec  # read from the zip, without torch.jit.load
    assert read_export_info(out).fingerprint == Embedder.from_run(runs[metric]).ref.fingerprint


def test_the_cli_writes_and_reports(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "digits.onnx"
    with pytest.warns(DeprecationWarning, match="legacy TorchScript-based ONNX export"):
        # opset 13 is older than the current exporter writes: the deprecated one, which says so
        assert main(["export", str(runs["euclidean"]), "--out", str(out), "--opset", "13"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx, opset 13, torchscript exporter)" in printed
    assert "max abs difference" in printed
    assert onnx.load(str(out)).opset_import[0].version == 13
    before = out.read_bytes()
    assert main(["export", str(runs["euclidean"]), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["export", str(runs["cosine"]), "--out", str(out), "--overwrite"]) == 0
    assert (
        f"(onnx, opset 18, {DYNAMO if CURRENT else TORCHSCRIPT} exporter)"
        in capsys.readouterr().out
    )
    assert read_export_info(out).metric == "cosine"
    assert [p.name for p in tmp_path.iterdir()] == ["digits.onnx"]  # no temporary left behind


def test_without_onnxscript_the_older_exporter_writes_the_same_file(
    runs: dict[str, Path], samples: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback: torch's TorchScript-based exporter, whose deprecation warning is not
    silenced; the file embeds as the run does, at any batch size."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else find_spec(name, *a),
    )
    assert onnx_exporters(18) == (TORCHSCRIPT,)
    out = tmp_path / "model.onnx"
    with pytest.warns(DeprecationWarning, match="legacy TorchScript-based ONNX export"):
        result = export_run(runs["cosine"], out)
    assert result.exporter == TORCHSCRIPT and result.opset == 18
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    run = load_run(runs["cosine"])
    for batch in BATCHES:
        got = session.run(None, {"samples": samples[:batch]})[0]
        np.testing.assert_allclose(got, torch_embeddings(run, samples[:batch]), atol=TOLERANCE)


def test_bad_arguments_in_the_library(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_run(runs["euclidean"], tmp_path / "m", format="tflite")
    with pytest.raises(ExportError, match="--opset must be from 9 to 20, got 7"):
        export_run(runs["euclidean"], tmp_path / "m", opset=7)
    with pytest.raises(ExportError, match="--opset applies to --format onnx only"):
        export_run(runs["euclidean"], tmp_path / "m", format="torchscript", opset=17)
    with pytest.raises(ExportError, match="is a folder"):
        export_run(runs["euclidean"], tmp_path)
    assert not list(tmp_path.iterdir())


def test_files_that_are_not_exports(tmp_path: Path) -> None:
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ExportedFileError, match="not a readable ONNX model"):
        read_export_info(tmp_path / "text.onnx")
    plain = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])],
            "plain",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )
    )
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ExportedFileError, match="holds no tripletnet metadata"):
        read_export_info(tmp_path / "plain.onnx")
    with pytest.raises(ExportedFileError, match="does not exist"):
        read_export_info(tmp_path / "missing.onnx")


NETS = '''
    import torch
    from torch import nn


    class FixedBatch(nn.Module):
        """Reshapes to the batch size it was called with: a trace records a constant."""

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 8)

        def forward(self, x):
            return self.linear(x.reshape(int(x.shape[0]), 64))


    class Bessel(nn.Module):
        """An op that ONNX lacks (but TorchScript has)."""

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 8)

        def forward(self, x):
            return torch.special.i1e(self.linear(x.flatten(1)))
'''


@pytest.fixture(scope="module")
def factory_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Runs of two factory models (package.module:factory) that ONNX cannot hold."""
    root = tmp_path_factory.mktemp("factory")
    (root / "export_test_nets.py").write_text(textwrap.dedent(NETS))
    sys.path.insert(0, str(root))
    try:
        for name in ("FixedBatch", "Bessel"):
            config = TrainConfig(
                dataset="digits",
                model=f"export_test_nets:{name}",
                epochs=1,
                triplets_per_epoch=128,
                embedding_dim=8,
            )
            train(config, root / name, show_progress=False, log_epochs=False)
        yield {name: root / name for name in ("FixedBatch", "Bessel")}
    finally:
        sys.path.remove(str(root))


def test_factory_models_that_cannot_be_exported_say_why(
    factory_runs: dict[str, Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIPLETNET_TRUST_MODEL_CODE", "1")  # the test's own factories
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="fails on a batch of 1.*depends on the batch size"):
        export_run(factory_runs["FixedBatch"], out)
    with pytest.raises(ExportError, match="fails on a batch of 1.*depends on the batch size"):
        export_run(factory_runs["FixedBatch"], tmp_path / "m.pt", format="torchscript")
    with pytest.raises(ExportError, match="aten::special_i1e.*--format torchscript"):
        export_run(factory_runs["Bessel"], out)
    assert not list(tmp_path.iterdir())
    captured = capfd.readouterr()
    assert "Torch IR graph" not in captured.out + captured.err  # the exporter's dump is silenced
    assert "[E:onnxruntime" not in captured.err  # onnxruntime's own log of the failed batch

    result = export_run(factory_runs["Bessel"], tmp_path / "m.pt", format="torchscript")
    assert result.max_abs_difference is not None and result.max_abs_difference < TOLERANCE
