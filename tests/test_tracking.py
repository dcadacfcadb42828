"""--log csv,tensorboard,mlflow: what each backend writes is read back with its own reader."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tripletnet.cli import main
from tripletnet.files import read_json
from tripletnet.training.tracking import epoch_metrics, final_metrics, step_metrics

QUICK = ["--epochs", "2", "--triplets-per-epoch", "1024", "--test-triplets", "300", "--no-progress"]
STEPS_PER_EPOCH = 8  # 1,024 triplets in batches of 128


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tracking") / "run"
    assert main(["train", *QUICK, "--log", "tensorboard,mlflow", "--out", str(run)]) == 0
    return run


def test_csv_has_every_step_and_every_epoch(logged: Path) -> None:
    with open(logged / "steps.csv", encoding="utf-8") as handle:
        steps = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in steps] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert float(steps[0]["lr"]) == pytest.approx(0.1)  # the cosine schedule's start
    with open(logged / "epochs.csv", encoding="utf-8") as handle:
        epochs = list(csv.DictReader(handle))
    history = read_json(logged / "history.json")
    assert [float(row["loss"]) for row in epochs] == pytest.approx([r["loss"] for r in history])


def test_tensorboard_has_scalars_figures_config_and_the_projector(logged: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((logged / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1  # training's and the evaluation's records in one event file
    events = EventAccumulator(str(files[0]), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert len(events.Scalars("step/loss")) == 2 * STEPS_PER_EPOCH
    assert [e.step for e in events.Scalars("epoch/test_knn_accuracy")] == [1, 2]
    metrics = read_json(logged / "metrics.json")
    (final,) = events.Scalars("final/embedding/knn_accuracy")
    assert final.value == pytest.approx(metrics["classification"]["embedding"]["knn_accuracy"])
    assert final.step == 2  # at the last epoch
    assert set(final_metrics(metrics)) <= set(tags["scalars"])
    assert all(events.Scalars(name)[0].step == 2 for name in final_metrics(metrics))
    assert "figures/embedding" in tags["images"] and "figures/retrieval" in tags["images"]
    assert {image.step for image in events.Images("figures/embedding")} == {2}
    assert "config/text_summary" in tags["tensors"]
    projector = (logged / "tensorboard" / "projector_config.pbtxt").read_text()
    assert "metadata.tsv" in projector and "sprite.png" in projector  # labels and thumbnails
    labels = next((logged / "tensorboard").rglob("metadata.tsv")).read_text().split()
    assert len(labels) == 450 and set(labels) == {str(d) for d in range(10)}
    vectors = next((logged / "tensorboard").rglob("tensors.tsv")).read_text().splitlines()
    assert len(vectors) == 450 and len(vectors[0].split("\t")) == 64  # the embedding's width


def test_tensorboard_has_the_configuration_as_hparams(logged: Path) -> None:
    """The HPARAMS tab: the options, with the final numbers as their metrics, in the run."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.plugins.hparams.metadata import (
        EXPERIMENT_TAG,
        PLUGIN_NAME,
        SESSION_START_INFO_TAG,
    )

    runs = EventMultiplexer({"run": str(logged / "tensorboard")})
    runs.Reload()
    content = runs.PluginRunToTagToContent(PLUGIN_NAME)["run"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content[EXPERIMENT_TAG]).experiment
    start = plugin_data_pb2.HParamsPluginData.FromString(content[SESSION_START_INFO_TAG])
    options = start.session_start_info.hparams
    assert options["optim.lr"].number_value == pytest.approx(0.1)
    assert options["method.name"].string_value == "triplet"
    assert options["optim.epochs"].number_value == 2
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert metrics == set(final_metrics(read_json(logged / "metrics.json")))


def test_mlflow_file_store_has_params_metrics_and_artifacts(logged: Path) -> None:
    from mlflow.tracking import MlflowClient

    state = read_json(logged / "mlflow.json")
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    run = client.get_run(state["run_id"])
    assert run.data.params["optim.lr"] == "0.1" and run.data.params["method.name"] == "triplet"
    assert len(client.get_metric_history(run.info.run_id, "step/loss")) == 2 * STEPS_PER_EPOCH
    (error,) = client.get_metric_history(run.info.run_id, "final/test_triplet_error")
    assert error.value == pytest.approx(read_json(logged / "metrics.json")["test_triplet_error"])
    assert error.step == 2  # at the last epoch, as in TensorBoard
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "metrics.json", "embedding.png", "model"} <= artifacts


def test_mlflow_and_tensorboard_name_the_metrics_alike(logged: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    state = read_json(logged / "mlflow.json")
    logged_metrics = set(MlflowClient(state["tracking_uri"]).get_run(state["run_id"]).data.metrics)
    events = EventAccumulator(str(logged / "tensorboard"))
    events.Reload()
    assert logged_metrics == set(events.Tags()["scalars"])
    history = read_json(logged / "history.json")
    expected = {
        *step_metrics({"loss": 1.0, "lr": 0.1}),
        *epoch_metrics(history[-1]),
        *final_metrics(read_json(logged / "metrics.json")),
    }
    assert logged_metrics == expected


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the 'onnx' extra")
def test_mlflow_has_the_model_as_onnx(logged: Path, tmp_path: Path) -> None:
    """The ONNX export is an artifact, and embeds as the run does."""
    import numpy as np
    import onnxruntime
    import torch
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from tripletnet.runs import load_run
    from tripletnet.runs.data import load_data
    from tripletnet.search.onnx_embedder import read_export_info

    state = read_json(logged / "mlflow.json")
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    assert client.get_run(state["run_id"]).data.tags["tripletnet.model"] == "model/model.onnx"
    assert [item.path for item in client.list_artifacts(state["run_id"], "model")] == [
        "model/model.onnx"
    ]
    path = download_artifacts(
        run_id=state["run_id"],
        artifact_path="model/model.onnx",
        dst_path=str(tmp_path),
        tracking_uri=state["tracking_uri"],
    )
    assert read_export_info(path).run == logged.name
    run = load_run(logged)
    samples = np.asarray(load_data(run.config).test.x[:5], dtype=np.float32)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = run.model(run.prepare(samples)).numpy()
    np.testing.assert_allclose(session.run(None, {"samples": samples})[0], expected, atol=1e-4)


def test_a_resumed_run_appends_to_the_same_logs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--log", "mlflow", "--out", str(run)]) == 0
    first = read_json(run / "mlflow.json")["run_id"]
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    with open(run / "steps.csv", encoding="utf-8") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(1, 3 * STEPS_PER_EPOCH + 1))  # numbered on, not restarted
    assert read_json(run / "mlflow.json")["run_id"] == first
    assert json.loads((run / "config.json").read_text())["evaluation"]["log"] == "mlflow"
    from mlflow.tracking import MlflowClient

    state = read_json(run / "mlflow.json")
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    history = client.get_metric_history(first, "final/test_triplet_error")
    assert sorted(metric.step for metric in history) == [2, 3]  # each evaluation at its epoch


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("wandb", "unknown wandb; choose from csv, tensorboard, mlflow"),
        ("csv,tensorboard,neptune", "unknown neptune"),
    ],
)
def test_an_unknown_logger_is_one_line(
    log: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *QUICK, "--log", log, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_missing_extra_is_named_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else find_spec(name, *a),
    )
    assert main(["train", *QUICK, "--log", "tensorboard", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tripletnet[tensorboard]'" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
