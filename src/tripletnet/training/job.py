"""What ``tripletnet train`` and ``pretrain`` do once their options are parsed: resolve the
configuration (a resumed run's rules included), join the torchrun job when there is one, train,
leave the job, then evaluate the run on its device and log the evaluation. The command only
parses and prints."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..world import SINGLE, World, barrier, stop
from .config import TrainConfig
from .run import default_workers, join, run_config, train_resolved


@dataclass
class Finished:
    """A trained run: its folder, the training summary (``train``'s) and the evaluation's
    metrics (None: a resumed run that had already finished and been evaluated)."""

    out: Path
    summary: dict[str, Any]
    metrics: dict[str, Any] | None


def train_and_evaluate(
    config: TrainConfig | None,
    out: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_progress: bool = True,
    command: str | None = None,
    on_trained: Callable[[dict[str, Any]], None] | None = None,
) -> Finished | None:
    """Train as ``train`` does (``out`` None: ``default_run_folder``), then evaluate the run
    (``evaluate_trained``); ``on_trained`` gets the training summary before the evaluation
    starts. Under torchrun every process trains and takes part in the evaluation (each
    embeds and searches its share of the gallery); rank 0 writes the report, and the other
    ranks return None."""
    resolved = run_config(config, None if out is None else Path(out), resume)
    world = join(resolved)  # under torchrun: join the job
    try:
        out = Path(out) if out is not None else default_run_folder(resolved)
        barrier(world)  # every rank chose the folder before rank 0 makes it
        summary = train_resolved(
            resolved,
            out,
            world,
            resume=resume,
            overwrite=overwrite,
            show_progress=show_progress,
            log_epochs=True,
            command=command,
        )
        barrier(world)  # rank 0 saved the net before any rank loads it to evaluate
        if summary.get("already_finished") and (out / "metrics.json").is_file():
            return Finished(out, summary, None) if world.main else None
        if on_trained is not None and world.main:
            on_trained(summary)
        metrics = evaluate_trained(resolved, out, world)
    finally:
        stop()
    return Finished(out, summary, metrics) if metrics is not None else None


def evaluate_trained(
    config: TrainConfig, out: Path, world: World = SINGLE
) -> dict[str, Any] | None:
    """The evaluation of the run ``out`` just trained as ``config`` says, on its device and
    with its workers, logged to its ``--log`` loggers; returns the metrics (None: a rank of a
    torchrun job other than 0, which did its share)."""
    from ..devices import resolve_device
    from ..evaluation.report import evaluate_run
    from .tracking import Loggers, log_evaluation

    workers = config.data.workers if config.data.workers is not None else default_workers()
    device = str(world.device(resolve_device(config.optim.device)))
    # the net the user just trained (or resumed) from their own --model: its code is trusted
    metrics = evaluate_run(out, workers=workers, device=device, trust_model_code=True, world=world)
    if metrics is None:
        return None
    loggers = Loggers(config.evaluation.loggers, out)  # the same runs: resumed, appended to
    try:
        log_evaluation(loggers, out, metrics, trust_model_code=True)
    finally:
        loggers.close()
    return metrics


def default_run_folder(config: TrainConfig) -> Path:
    """runs/DATASET-METHOD (a path's last part for your own data), or -2, -3, ... after it;
    ``config``: resolved (your own data's method, when none is given)."""
    dataset = Path(config.data.dataset).stem or "data"
    name = f"{dataset}-{config.options.get('loss') or config.method}"
    for number in itertools.count(1):
        folder = Path("runs") / (name if number == 1 else f"{name}-{number}")
        if not folder.exists():
            return folder
    raise AssertionError("unreachable")
