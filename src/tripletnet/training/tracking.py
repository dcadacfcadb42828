"""Experiment logging (``--log csv,tensorboard,mlflow``): each step's loss and learning rate,
each epoch's row, the configuration, the final report's headline numbers, the figures and, in
TensorBoard's projector, the test embeddings with their labels (and thumbnails of images).

csv is always written (``steps.csv``, ``epochs.csv`` in the run folder). TensorBoard writes to
``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``): one event file per training
session, to which the evaluation's numbers, figures and hparams are appended at the last epoch.
MLflow writes to the tracking URI in ``MLFLOW_TRACKING_URI``, or a file store in ``RUN/mlruns/``
(``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri RUN/mlruns``), with the model
(ONNX, or the run's weights) as an artifact; a resumed run continues the same MLflow run. Both
name the metrics alike (``step_metrics``, ``epoch_metrics``, ``final_metrics``). Each backend is
an optional extra, imported only when asked for.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import tempfile
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
SPRITE_SIDE = 8_192  # pixels, the most TensorBoard's projector shows of a sprite's side


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

    def final(
        self, metrics: dict[str, Any], run_dir: Path, trust_model_code: bool | None = None
    ) -> None:
        """The evaluation's numbers and figures (``trust_model_code``: as for ``load_run``, for a
        logger that loads the run's net)."""
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


# The metrics' names, the same in every logger that has names (TensorBoard's tags, MLflow's keys)
def step_metrics(row: dict[str, float]) -> dict[str, float]:
    """A step's row as metrics: ``step/loss``, ``step/lr`` (at the optimiser step)."""
    return {f"step/{name}": float(row[name]) for name in ("loss", "lr")}


def epoch_metrics(row: dict[str, float]) -> dict[str, float]:
    """An epoch's row as metrics (at the epoch): ``epoch/loss``, ``epoch/test_knn_accuracy``, ..."""
    return {
        f"epoch/{name}": float(value)
        for name, value in row.items()
        if name != "epoch" and np.isfinite(value)
    }


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The report's headline numbers as metrics (at the last epoch): ``final/test_triplet_error``,
    ``final/retrieval/precision_at_1``, ``final/embedding/knn_accuracy``, ..."""
    return {f"final/{name}": value for name, value in headline(metrics).items()}


def final_step(run_dir: Path) -> int:
    """The step the final numbers are logged at: the number of epochs the run trained."""
    history = run_dir / "history.json"
    return len(read_json(history)) if history.is_file() else 0


def flat_config(table: dict[str, Any]) -> dict[str, Any]:
    """The configuration's options as ``section.name``: ``optim.lr``, ``method.name``, ..."""
    return {
        f"{section}.{name}": value
        for section, values in table.items()
        if isinstance(values, dict)
        for name, value in values.items()
    }


def hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as TensorBoard hparams: numbers and strings as they are, lists as JSON,
    None left out (as TensorBoard does)."""
    return {
        name: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
        for name, value in flat_config(config).items()
        if value is not None
    }


class TensorBoardLogger(Logger):
    """Scalars, the configuration as text and as hparams (the final numbers their metrics), the
    figures as images, the projector's embeddings. Training writes one event file (opened on its
    first record); the evaluation, logged by another instance after training, appends to the
    newest event file in the folder, so a run that is not resumed has exactly one."""

    wants_embeddings = True

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "tensorboard"
        self._writer: Any = None  # torch.utils.tensorboard.SummaryWriter, once opened

    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder))
        return self._writer

    def config(self, table: dict[str, Any]) -> None:
        text = "```\n" + json.dumps(table, indent=2, sort_keys=True) + "\n```"
        self.writer.add_text("config", text)

    def steps(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            for name, value in step_metrics(row).items():
                self.writer.add_scalar(name, value, int(row["step"]))

    def epoch(self, row: dict[str, float]) -> None:
        for name, value in epoch_metrics(row).items():
            self.writer.add_scalar(name, value, int(row["epoch"]))

    def final(
        self, metrics: dict[str, Any], run_dir: Path, trust_model_code: bool | None = None
    ) -> None:
        """At the last epoch: the final numbers, the figures, and the configuration as hparams
        with the final numbers as their metrics (TensorBoard's HPARAMS tab)."""
        from PIL import Image
        from torch.utils.tensorboard import summary

        numbers = final_metrics(metrics)
        records = [summary.scalar(name, value) for name, value in numbers.items()]
        for path in figures(metrics, run_dir):
            picture = np.asarray(Image.open(path).convert("RGB"))
            records.append(summary.image(f"figures/{path.stem}", picture, dataformats="HWC"))
        config = run_dir / "config.json"
        if config.is_file():
            records.extend(summary.hparams(hparams(read_json(config)), numbers))
        self._write(records, final_step(run_dir))

    def _write(self, records: list[Any], step: int) -> None:
        """Summaries into this instance's event file, or else appended to the folder's newest."""
        newest = max(self.folder.glob("events.out.tfevents.*"), default=None, key=_age)
        if self._writer is not None or newest is None:
            for record in records:
                self.writer.file_writer.add_summary(record, step)
            return
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(newest, "ab") as handle:  # an event file is a sequence of records
            writer = RecordWriter(handle)
            for record in records:
                event = Event(wall_time=time.time(), step=step, summary=record)
                writer.write(event.SerializeToString())

    def embeddings(self, vectors: np.ndarray, labels: list[str], images: Any | None) -> None:
        """The projector's files (as SummaryWriter.add_embedding writes them, without an event
        file): ``STEP/test/`` with the vectors, the labels and a sprite of the images."""
        from PIL import Image
        from tensorboard.plugins.projector import ProjectorConfig, visualize_embeddings

        step = final_step(self.folder.parent)
        subdir = f"{step:05d}/test"
        folder = self.folder / subdir
        folder.mkdir(parents=True, exist_ok=True)
        np.savetxt(folder / "tensors.tsv", vectors, delimiter="\t", fmt="%.7g")
        (folder / "metadata.tsv").write_text("".join(f"{label}\n" for label in labels))
        config = ProjectorConfig()
        embedding = config.embeddings.add()
        embedding.tensor_name = f"test:{step:05d}"
        embedding.tensor_path = f"{subdir}/tensors.tsv"
        embedding.metadata_path = f"{subdir}/metadata.tsv"
        if images is not None:
            sprite = _sprite(np.asarray(images, dtype=np.float32))
            Image.fromarray(sprite.pixels).save(folder / "sprite.png")
            embedding.sprite.image_path = f"{subdir}/sprite.png"
            embedding.sprite.single_image_dim.extend([sprite.width, sprite.height])
        visualize_embeddings(str(self.folder), config)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _age(path: Path) -> tuple[float, str]:
    return path.stat().st_mtime, path.name


class _Sprite:
    def __init__(self, pixels: np.ndarray, width: int, height: int) -> None:
        self.pixels, self.width, self.height = pixels, width, height


def _sprite(images: np.ndarray) -> _Sprite:
    """(N, C, H, W) images as one square RGB grid of thumbnails, each scaled to [0, 255] by the
    images' range and shrunk (by area) so the grid fits in SPRITE_SIDE pixels a side."""
    import torch
    from torch.nn.functional import interpolate

    count, _, height, width = images.shape
    side = math.ceil(math.sqrt(count))
    scale = min(1.0, SPRITE_SIDE / (side * max(height, width)))
    pictures = torch.from_numpy(images)
    low, high = pictures.amin(), pictures.amax()
    pictures = (pictures - low) / (high - low).clamp_min(1e-12)
    if scale < 1.0:
        height, width = max(1, int(height * scale)), max(1, int(width * scale))
        pictures = interpolate(pictures, size=(height, width), mode="area")
    pictures = pictures[:, :3] if pictures.shape[1] >= 3 else pictures[:, :1].expand(-1, 3, -1, -1)
    grid = np.zeros((side * side, height, width, 3), np.uint8)
    grid[:count] = (pictures.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255)
    rows = grid.reshape(side, side, height, width, 3).transpose(0, 2, 1, 3, 4)
    return _Sprite(
        np.ascontiguousarray(rows.reshape(side * height, side * width, 3)), width, height
    )


class MlflowLogger(Logger):
    """Params (the flat configuration), metrics by step (named as TensorBoard's tags), the
    figures, report and model as artifacts."""

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

    def config(self, table: dict[str, Any]) -> None:
        flat = flat_config(table)
        known = self.mlflow.get_run(self.run.info.run_id).data.params
        self.mlflow.log_params({k: str(v) for k, v in flat.items() if k not in known})

    def steps(self, rows: list[dict[str, float]]) -> None:
        """The rows in batches of MLFLOW_BATCH metrics: one store write per batch, not per step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, value, now, int(row["step"]))
            for row in rows
            for name, value in step_metrics(row).items()
        ]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(
                self.run.info.run_id, metrics=metrics[start : start + MLFLOW_BATCH]
            )

    def epoch(self, row: dict[str, float]) -> None:
        self.mlflow.log_metrics(epoch_metrics(row), step=int(row["epoch"]))

    def final(
        self, metrics: dict[str, Any], run_dir: Path, trust_model_code: bool | None = None
    ) -> None:
        self.mlflow.log_metrics(final_metrics(metrics), step=final_step(run_dir))
        for path in [*figures(metrics, run_dir), run_dir / "report.md", run_dir / "metrics.json"]:
            if path.is_file():
                self.mlflow.log_artifact(str(path))
        self._log_model(run_dir, trust_model_code)

    def _log_model(self, run_dir: Path, trust_model_code: bool | None) -> None:
        """The model, in the artifacts' ``model/``: ``model.onnx`` as ``tripletnet export``
        writes it (opset DEFAULT_OPSET, checked against torch) where the onnx extra is
        installed, or else, or where the net cannot be exported, the run's
        ``model.safetensors`` and ``config.json`` (what ``load_run`` reads). The tag
        ``tripletnet.model`` names the file; ``tripletnet.onnx`` says why there is no ONNX."""
        if importlib.util.find_spec("onnx") is None:
            reason = "the onnx package is not installed: pip install 'tripletnet[onnx]'"
        else:
            from ..export import export_run

            with tempfile.TemporaryDirectory(prefix="tripletnet-mlflow-") as folder:
                onnx_file = Path(folder) / "model.onnx"
                try:
                    export_run(run_dir, onnx_file, trust_model_code=trust_model_code)
                except TripletnetError as error:
                    reason = str(error)
                else:
                    self.mlflow.log_artifact(str(onnx_file), artifact_path="model")
                    self.mlflow.set_tag("tripletnet.model", "model/model.onnx")
                    return
        for name in ("model.safetensors", "config.json"):
            self.mlflow.log_artifact(str(run_dir / name), artifact_path="model")
        self.mlflow.set_tags(
            {"tripletnet.model": "model/model.safetensors", "tripletnet.onnx": reason}
        )

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

    def final(
        self, metrics: dict[str, Any], run_dir: Path, trust_model_code: bool | None = None
    ) -> None:
        for logger in self.loggers:
            logger.final(metrics, run_dir, trust_model_code)

    def embeddings(self, vectors: np.ndarray, labels: list[str], images: Any | None) -> None:
        for logger in self.loggers:
            logger.embeddings(vectors, labels, images)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def log_evaluation(
    loggers: Logger,
    run_dir: Path,
    metrics: dict[str, Any],
    trust_model_code: bool | None = None,
) -> None:
    """The final report's numbers and figures, and (for the projector) up to PROJECTOR_POINTS
    test embeddings with their class names and, for images, the images (``trust_model_code``:
    as for ``load_run``)."""
    loggers.final(metrics, run_dir, trust_model_code)
    if not loggers.wants_embeddings:
        return
    from ..runs import load_run
    from ..runs.data import embed_split, load_data

    run = load_run(run_dir, trust_model_code=trust_model_code)
    test = load_data(run.config).test
    if len(test) > PROJECTOR_POINTS:
        test = test.take(np.linspace(0, len(test) - 1, PROJECTOR_POINTS).astype(np.int64))
    embedded = embed_split(run.model, test, run.prepare)
    names = run.spec.class_names
    labels = [names[y] if 0 <= y < len(names) else str(y) for y in embedded.labels.tolist()]
    images = test.x[embedded.kept] if len(run.spec.input_shape) == 3 else None
    loggers.embeddings(embedded.embeddings, labels, images)
