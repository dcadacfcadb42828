"""Experiment logging (``--log csv,tensorboard,mlflow``): each step's loss and learning rate,
each epoch's row, the configuration, the final report's headline numbers, the figures and, in
TensorBoard's projector, the test embeddings with their labels (and thumbnails of images).

csv is always written (``steps.csv``, ``epochs.csv`` in the run folder). TensorBoard writes to
``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``); MLflow to the tracking URI in
``MLFLOW_TRACKING_URI``, or a file store in ``RUN/mlruns/`` (``mlflow ui --backend-store-uri
RUN/mlruns``); a resumed run continues the same MLflow run. Each backend is an optional extra,
imported only when asked for.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TripletnetError
from ..files import read_json, write_json_atomic

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # logger -> the package it needs
HEADLINE = ("precision_at_1", "recall_at_1", "map_at_r", "r_precision")
PROJECTOR_POINTS = 10_000
MLFLOW_BATCH = 1_000  # metrics in one log_batch call (MLflow's limit)


def check_loggers(names: Sequence[str]) -> None:
    """Refuse a logger whose package is not installed, naming the extra to install."""
    for name in names:
        package = EXTRAS.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            raise TripletnetError(
                f"--log {name} needs the {name!r} extra ({package} is not installed): "
                f"pip install 'tripletnet[{name}]'"
            )


class Logger:
    """One backend. Every hook may be called on a resumed run: append, do not overwrite."""

    wants_embeddings = False  # does ``embeddings`` do anything (worth embedding the test set)

    def config(self, table: dict[str, Any]) -> None:
        return None

    def steps(self, rows: list[dict[str, float]]) -> None:
        return None

    def epoch(self, row: dict[str, float]) -> None:
        return None

    def final(self, metrics: dict[str, Any], run_dir: Path) -> None:
        return None

    def embeddings(self, vectors: np.ndarray, labels: list[str], images: Any | None) -> None:
        return None

    def close(self) -> None:
        return None


class CsvLogger(Logger):
    """steps.csv (step, loss, lr) and epochs.csv (one row per epoch), appended."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _append(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        path = self.run_dir / name
        new = not path.is_file()
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def steps(self, rows: list[dict[str, float]]) -> None:
        self._append("steps.csv", rows)

    def epoch(self, row: dict[str, float]) -> None:
        self._append("epochs.csv", [row])


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The report's headline numbers, flat: retrieval, the classifiers, the triplet error."""
    numbers = {
        f"retrieval/{k}": metrics["retrieval"][k]
        for k in HEADLINE
        if k in metrics.get("retrieval", {})
    }
    for name, row in metrics.get("classification", {}).items():
        for key in ("linear_accuracy", "knn_accuracy", "recall_at_1", "map_at_r"):
            if row.get(key) is not None:
                numbers[f"{name}/{key}"] = float(row[key])
    numbers["test_triplet_error"] = float(metrics["test_triplet_error"])
    return numbers


def figures(metrics: dict[str, Any], run_dir: Path) -> list[Path]:
    return [
        run_dir / name for name in metrics.get("figures", {}).values() if (run_dir / name).is_file()
    ]


class TensorBoardLogger(Logger):
    """Scalars, the configuration as text, the figures as images, the projector's embeddings."""

    wants_embeddings = True

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.last_step = 0

    def config(self, table: dict[str, Any]) -> None:
        text = "```\n" + json.dumps(table, indent=2, sort_keys=True) + "\n```"
        self.writer.add_text("config", text)

    def steps(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            self.writer.add_scalar("step/loss", row["loss"], int(row["step"]))
            self.writer.add_scalar("step/lr", row["lr"], int(row["step"]))
            self.last_step = int(row["step"])

    def epoch(self, row: dict[str, float]) -> None:
        for name, value in row.items():
            if name != "epoch" and np.isfinite(value):
                self.writer.add_scalar(f"epoch/{name}", value, int(row["epoch"]))

    def final(self, metrics: dict[str, Any], run_dir: Path) -> None:
        from PIL import Image

        for name, value in headline(metrics).items():
            self.writer.add_scalar(f"final/{name}", value, self.last_step)
        for path in figures(metrics, run_dir):
            picture = np.asarray(Image.open(path).convert("RGB"))
            self.writer.add_image(
                f"figures/{path.stem}", picture, self.last_step, dataformats="HWC"
            )

    def embeddings(self, vectors: np.ndarray, labels: list[str], images: Any | None) -> None:
        import torch

        thumbnails = None
        if images is not None:
            pictures = torch.as_tensor(np.asarray(images), dtype=torch.float32)
            low, high = pictures.amin(), pictures.amax()
            thumbnails = (pictures - low) / (high - low).clamp_min(1e-12)  # (N, C, H, W) in [0, 1]
        self.writer.add_embedding(
            torch.from_numpy(vectors), metadata=labels, label_img=thumbnails, tag="test"
        )

    def close(self) -> None:
        self.writer.close()


class MlflowLogger(Logger):
    """Params (the flat configuration), metrics by step, the figures and report as artifacts."""

    def __init__(self, run_dir: Path) -> None:
        import mlflow

        self.mlflow = mlflow
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None:  # a file store in the run folder, which MLflow 3 allows when asked
            uri = (run_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri(uri)
        state = run_dir / "mlflow.json"  # the MLflow run a resumed run continues
        run_id = read_json(state).get("run_id") if state.is_file() else None
        self.run = mlflow.start_run(run_id=run_id, run_name=run_dir.name)
        self.client = mlflow.MlflowClient()
        write_json_atomic(state, {"run_id": self.run.info.run_id, "tracking_uri": uri})
        self.last_step = 0

    def config(self, table: dict[str, Any]) -> None:
        flat = {
            f"{section}.{name}": value
            for section, values in table.items()
            if isinstance(values, dict)
            for name, value in values.items()
        }
        known = self.mlflow.get_run(self.run.info.run_id).data.params
        self.mlflow.log_params({k: str(v) for k, v in flat.items() if k not in known})

    def steps(self, rows: list[dict[str, float]]) -> None:
        """The rows in batches of MLFLOW_BATCH metrics: one store write per batch, not per step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(row[name]), now, int(row["step"]))
            for row in rows
            for name in ("loss", "lr")
        ]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(
                self.run.info.run_id, metrics=metrics[start : start + MLFLOW_BATCH]
            )
        if rows:
            self.last_step = int(rows[-1]["step"])

    def epoch(self, row: dict[str, float]) -> None:
        values = {f"epoch_{k}": v for k, v in row.items() if k != "epoch" and np.isfinite(v)}
        self.mlflow.log_metrics(values, step=int(row["epoch"]))

    def final(self, metrics: dict[str, Any], run_dir: Path) -> None:
        self.mlflow.log_metrics({k.replace("/", "."): v for k, v in headline(metrics).items()})
        for path in [*figures(metrics, run_dir), run_dir / "report.md", run_dir / "metrics.json"]:
            if path.is_file():
                self.mlflow.log_artifact(str(path))

    def close(self) -> None:
        self.mlflow.end_run()


class Loggers(Logger):
    """The run's loggers, called together."""

    def __init__(self, names: Sequence[str], run_dir: Path) -> None:
        check_loggers(names)
        makers = {"csv": CsvLogger, "tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}
        self.loggers: list[Logger] = [makers[name](run_dir) for name in names]
        self.wants_embeddings = any(logger.wants_embeddings for logger in self.loggers)

    def config(self, table: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.config(table)

    def steps(self, rows: list[dict[str, float]]) -> None:
        for logger in self.loggers:
            logger.steps(rows)

    def epoch(self, row: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.epoch(row)

    def final(self, metrics: dict[str, Any], run_dir: Path) -> None:
        for logger in self.loggers:
            logger.final(metrics, run_dir)

    def embeddings(self, vectors: np.ndarray, labels: list[str], images: Any | None) -> None:
        for logger in self.loggers:
            logger.embeddings(vectors, labels, images)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def log_evaluation(loggers: Logger, run_dir: Path, metrics: dict[str, Any]) -> None:
    """The final report's numbers and figures, and (for the projector) up to PROJECTOR_POINTS
    test embeddings with their class names and, for images, the images."""
    loggers.final(metrics, run_dir)
    if not loggers.wants_embeddings:
        return
    from ..runs import load_run
    from ..runs.data import embed_split, load_data

    run = load_run(run_dir)
    test = load_data(run.config).test
    if len(test) > PROJECTOR_POINTS:
        test = test.take(np.linspace(0, len(test) - 1, PROJECTOR_POINTS).astype(np.int64))
    embedded = embed_split(run.model, test, run.prepare)
    names = run.spec.class_names
    labels = [names[y] if 0 <= y < len(names) else str(y) for y in embedded.labels.tolist()]
    images = test.x[embedded.kept] if len(run.spec.input_shape) == 3 else None
    loggers.embeddings(embedded.embeddings, labels, images)
