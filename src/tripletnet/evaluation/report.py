"""Evaluate a run as the paper does and write metrics.json, report.md and embedding.png."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import load_dataset
from ..files import read_json
from ..sampling import fixed_test_triplets
from ..text import plural
from ..training.run_folder import COMMAND, load_run
from ..training.semi_supervised import LABELLED
from .classify import knn_accuracy, linear_probe_accuracy
from .embed import embed
from .evaluate import evaluate_embeddings
from .report_files import render_evaluation, write_evaluation
from .triplet_error import triplet_error
from .verification import (
    calibrate_threshold,
    load_threshold,
    pair_distances,
    sample_pairs,
    save_threshold,
)


def evaluate_run(
    run_dir: str | Path,
    k: int | None = None,
    raw_baseline: bool = True,
    calibrate_far: float | None = None,
    calibrate_precision: float | None = None,
    tsne: bool = True,
) -> dict[str, Any]:
    """Embed train and test with the run's net; report the test triplet error, the linear
    classifier's and k-NN's test accuracy on the embeddings and, as a baseline, on the raw inputs;
    then every embedding metric with test as queries and train as gallery (``evaluate_embeddings``)
    and its figures. A calibration target writes threshold.json from train-split pairs; a saved
    threshold is then reported on the test pairs.
    """
    run = load_run(run_dir)
    config = run.config
    k = k or config.k
    data = load_dataset(config.dataset, config.data_dir, config.download)
    train_emb = embed(run.model, data.train.x, run.prepare)
    test_emb = embed(run.model, data.test.x, run.prepare)
    triplets = fixed_test_triplets(data.test.y, config.test_triplets, config.seed)

    out = Path(run_dir)
    if calibrate_far is not None or calibrate_precision is not None:
        pairs, same = sample_pairs(data.train.y, config.test_triplets, config.seed)
        calibration = calibrate_threshold(
            pair_distances(train_emb, pairs), same, calibrate_far, calibrate_precision
        )
        save_threshold(out, {**calibration, "split": "train"})
    saved = load_threshold(out)
    evaluation = evaluate_embeddings(
        test_emb,
        data.test.y,
        train_emb,
        data.train.y,
        k=k,
        pairs=config.test_triplets,
        threshold=saved["distance_threshold"] if saved else None,
        seed=config.seed,
    )
    classifiers = evaluation.metrics["classifiers"]  # the same probe and k-NN, measured once
    rows = {
        "embedding": {
            "dim": int(train_emb.shape[1]),
            "linear_accuracy": classifiers["linear_probe_accuracy"],
            "knn_accuracy": classifiers["knn_majority_accuracy"],
            "k": k,
        }
    }
    labelled_path = Path(run_dir) / LABELLED
    if labelled_path.is_file():  # few labels: classify by the labelled samples alone (1-NN)
        labelled = np.load(labelled_path, allow_pickle=False)
        rows["labelled"] = _classification(
            train_emb[labelled], data.train.y[labelled], test_emb, data.test.y, 1
        )
    if raw_baseline:
        raw_train = run.prepare(torch.from_numpy(data.train.x)).numpy()
        raw_test = run.prepare(torch.from_numpy(data.test.x)).numpy()
        rows["raw"] = _classification(raw_train, data.train.y, raw_test, data.test.y, k)
    history_path = Path(run_dir) / "history.json"
    history = read_json(history_path) if history_path.is_file() else []
    metrics: dict[str, Any] = {
        "dataset": config.dataset,
        "method": config.method_name,
        "model": run.spec["architecture"],
        "embedding_dim": int(train_emb.shape[1]),
        "train_size": len(data.train),
        "test_size": len(data.test),
        "k": k,
        "seed": config.seed,
        "command": _command(out),
        "test_triplets": len(triplets),
        "test_triplet_error": triplet_error(test_emb, triplets),
        "classification": rows,
        "training": {
            "epochs": len(history),
            "seconds": float(sum(row["seconds"] for row in history)),
            "final_loss": history[-1]["loss"] if history else None,
        },
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    metrics.update(evaluation.metrics)
    evaluation.metrics = metrics  # metrics.json keeps the run's keys and adds the new ones
    write_evaluation(
        out,
        evaluation,
        f"{config.dataset} test embeddings ({config.method_name})",
        query_images=data.test.x,
        gallery_images=data.train.x,
        history=history,
        class_names=run.spec.get("class_names", []),
        tsne=tsne,
        render=render_report,
    )
    return metrics


def _command(run_dir: Path) -> str | None:
    """The command lines that trained the run (command.txt: the first, then each --resume),
    where they were recorded."""
    path = run_dir / COMMAND
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _classification(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int
) -> dict[str, Any]:
    return {
        "dim": int(np.prod(train_x.shape[1:])),
        "k": k,
        "linear_accuracy": linear_probe_accuracy(train_x, train_y, test_x, test_y),
        "knn_accuracy": knn_accuracy(train_x, train_y, test_x, test_y, k),
    }


def result_table(metrics: dict[str, Any]) -> str:
    """A Markdown table: one row per feature set, the classifiers' test accuracy in columns."""
    k = metrics["k"]
    lines = ["| features | dim | linear classifier | k-NN | k |", "|---|---:|---:|---:|---:|"]
    names = {"embedding": f"{metrics['method']} embedding", "raw": "raw inputs (baseline)"}
    names["labelled"] = f"{metrics['method']} embedding, fit on the labelled samples only"
    for key, row in metrics["classification"].items():
        lines.append(
            f"| {names.get(key, key)} | {row['dim']} | {row['linear_accuracy']:.2%} | "
            f"{row['knn_accuracy']:.2%} | {row.get('k', k)} |"
        )
    return "\n".join(lines)


def render_report(metrics: dict[str, Any]) -> str:
    training = metrics["training"]
    commands = (metrics.get("command") or "").splitlines()
    trained_by = (
        "\n\nTrained by " + ", then ".join(f"`{line}`" for line in commands) + "."
        if commands
        else ""
    )
    return f"""# tripletnet report: {metrics["dataset"]}, {metrics["method"]}

Model `{metrics["model"]}`, {metrics["embedding_dim"]}-d embedding, trained {plural(training["epochs"], "epoch")}
in {training["seconds"]:.1f} s with seed {metrics.get("seed", "?")}. Test accuracy on
{metrics["test_size"]} samples; the classifiers are fit on the {metrics["train_size"]} training
samples (the paper's protocol: a linear classifier on the train embeddings).{trained_by}

{result_table(metrics)}

Test triplet error: **{metrics["test_triplet_error"]:.2%}** on {metrics["test_triplets"]} fixed test
triplets (a triplet is an error when d(anchor, positive) >= d(anchor, negative)).

{render_evaluation(metrics, "test queries, train gallery")}
Machine: {metrics["machine"]["platform"]}, torch {metrics["machine"]["torch"]},
{metrics["machine"]["threads"]} threads.
"""
