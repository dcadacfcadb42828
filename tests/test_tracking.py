"""--log csv,tensorboard,mlflow: what each backend writes is read back with its own reader."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tripletnet.cli import main
from tripletnet.files import read_json

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

    events = EventAccumulator(str(logged / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert len(events.Scalars("step/loss")) == 2 * STEPS_PER_EPOCH
    assert [e.step for e in events.Scalars("epoch/test_knn_accuracy")] == [1, 2]
    metrics = read_json(logged / "metrics.json")
    final = events.Scalars("final/embedding/knn_accuracy")[0].value
    assert final == pytest.approx(metrics["classification"]["embedding"]["knn_accuracy"])
    assert "figures/embedding" in tags["images"] and "figures/retrieval" in tags["images"]
    assert "config/text_summary" in tags["tensors"]
    projector = (logged / "tensorboard" / "projector_config.pbtxt").read_text()
    assert "metadata.tsv" in projector and "sprite.png" in projector  # labels and thumbnails
    labels = next((logged / "tensorboard").rglob("metadata.tsv")).read_text().split()
    assert len(labels) == 450 and set(labels) == {str(d) for d in range(10)}


def test_mlflow_file_store_has_params_metrics_and_artifacts(logged: Path) -> None:
    from mlflow.tracking import MlflowClient

    state = read_json(logged / "mlflow.json")
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    run = client.get_run(state["run_id"])
    assert run.data.params["optim.lr"] == "0.1" and run.data.params["method.name"] == "triplet"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2 * STEPS_PER_EPOCH
    assert run.data.metrics["test_triplet_error"] == pytest.approx(
        read_json(logged / "metrics.json")["test_triplet_error"]
    )
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "metrics.json", "embedding.png"} <= artifacts


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
