"""Reproduce the few-label experiments of Hoffer & Ailon's sequels on MNIST (or any dataset).

    semi-supervised:      the semi-supervised metric embedding (lambda = 1) against the same net
                          on the labelled samples alone (lambda = 0), over several seeds;
    spatial-contrasting:  spatial-contrasting pretraining, then fine-tuning on few labels, against
                          the same net and fine-tuning from random initialisation;
    differences:          the semi-supervised method with our former defaults, then with each of
                          the authors' choices added in turn (batch 32, Nesterov momentum, their
                          step schedule), to measure what each difference does.

Every number printed is measured in this run: the test error of the 1-nearest-labelled-neighbour
classifier in the embedding, and the wall time. Short runs on a CPU; the paper's protocol (e.g.
--epochs 150) needs a GPU. Example (2-core CPU, a few minutes):

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/reproduce_few_labels.py semi-supervised \
        --data-dir /work/shared/data/mnist --epochs 1 --steps-per-epoch 100 --seeds 0 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from tripletnet.data import Normalizer, load_dataset
from tripletnet.evaluation import knn_predict
from tripletnet.models import EmbeddingNet, build_model
from tripletnet.runs import HISTORY, LABELLED, embed
from tripletnet.training import TrainConfig, load_run, train
from tripletnet.training import run as training_run
from tripletnet.training.methods.semi_supervised import SemiSupervised


def labelled_nn_error(run_dir: Path, dataset: str, data_dir: str) -> float:
    """Test error of 1-NN against the run's labelled training samples, in its embedding."""
    run = load_run(run_dir)
    data = load_dataset(dataset, data_dir)
    labelled = np.load(run_dir / LABELLED, allow_pickle=False)
    train_emb = embed(run.model, data.train.x[labelled], run.prepare)
    test_emb = embed(run.model, data.test.x, run.prepare)
    predicted = knn_predict(train_emb, data.train.y[labelled], test_emb, k=1)
    return float((predicted != data.test.y).mean())


def run(config: TrainConfig, out: Path) -> tuple[float, float]:
    """Train ``config`` into ``out``; return (wall seconds, 1-NN labelled test error)."""
    started = time.perf_counter()
    train(config, out, overwrite=True, show_progress=False)
    seconds = time.perf_counter() - started
    return seconds, labelled_nn_error(out, config.data.dataset, str(config.data.data_dir))


def epoch_curve(folders: list[Path]) -> list[list[float]]:
    """Each epoch's test error of 1-NN to the labelled samples, one list per run (the runs'
    ``history.json``; only runs with some samples unlabelled log it)."""
    curves = []
    for folder in folders:
        history = json.loads((folder / HISTORY).read_text())
        curves.append([row.get("test_labelled_1nn_error", math.nan) for row in history])
    return curves


def print_curves(curves: dict[str, list[list[float]]]) -> None:
    """A table of the mean (and per-run) error against epoch, one column per setting."""
    names = list(curves)
    print("\n| epoch | " + " | ".join(f"{name} (mean; per seed)" for name in names) + " |")
    print("|---:|" + "---|" * len(names))
    for epoch in range(max(len(runs[0]) for runs in curves.values())):
        cells = []
        for name in names:
            errors = [100 * runs[epoch] for runs in curves[name] if epoch < len(runs)]
            seeds = ", ".join(f"{e:.2f}" for e in errors)
            cells.append(f"{statistics.mean(errors):.2f} % ({seeds})")
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |", flush=True)


def labelled_with_replacement(
    self: SemiSupervised, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The authors' draw: input and reference of a class drawn independently (so the same
    image 1 time in 10 with 10 labels), not kept distinct as ``SemiSupervised`` does."""
    first = (rng.random(self.num_classes) * self.counts).astype(np.int64)
    second = (rng.random(self.num_classes) * self.counts).astype(np.int64)
    return self.grouped[self.starts + first], self.grouped[self.starts + second]


def with_torch7_batch_norm(*args: Any, **kwargs: Any) -> EmbeddingNet:
    """``build_model``, then each batch norm's gamma drawn from U(0, 1) as torch7's ``nn`` did."""
    model = build_model(*args, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            torch.nn.init.uniform_(module.weight, 0.0, 1.0)
    return model


def scaled_as_the_authors(x: np.ndarray, *args: Any, **kwargs: Any) -> Normalizer:
    """Their input scaling, (x - 128) / 128, instead of a fitted zero mean and unit variance."""
    fitted = FIT_NORMALIZER(x, *args, **kwargs)
    return dataclasses.replace(fitted, mean=128.0, std=128.0)


FIT_NORMALIZER = Normalizer.fit
AUTHORS_PROTOCOL = {"batch_size": 32, "nesterov": True, "lr_schedule": "step"}
# Ablations that need a change inside the library, applied with a patch for one row's runs:
PATCHES: dict[str, tuple[Any, str, Any]] = {
    "replacement": (SemiSupervised, "draw_labelled", labelled_with_replacement),
    "torch7-bn": (training_run, "build_model", with_torch7_batch_norm),
    "input-scaling": (Normalizer, "fit", staticmethod(scaled_as_the_authors)),
}
# (name, options, patches): each row adds one of the authors' choices to the row before it
DIFFERENCES: tuple[tuple[str, dict[str, Any], tuple[str, ...]], ...] = (
    ("ours before: batch 128, SGD, cosine", {"batch_size": 128}, ()),
    ("+ their batch of 32 unlabelled", {"batch_size": 32}, ()),
    ("+ Nesterov momentum (their 'nag')", {"batch_size": 32, "nesterov": True}, ()),
    ("+ their steps (lr / 10 at 30, 60, 90, 120)", AUTHORS_PROTOCOL, ()),
    ("+ input and reference drawn with replacement", AUTHORS_PROTOCOL, ("replacement",)),
    (
        "+ torch7's batch-norm init (gamma ~ U(0, 1))",
        AUTHORS_PROTOCOL,
        ("replacement", "torch7-bn"),
    ),
    (
        "+ their input scaling (x - 128) / 128",
        AUTHORS_PROTOCOL,
        ("replacement", "torch7-bn", "input-scaling"),
    ),
)


def patched(names: tuple[str, ...]) -> contextlib.ExitStack:
    """The named ``PATCHES`` applied until the returned stack closes."""
    stack = contextlib.ExitStack()
    for name in names:
        target, attribute, replacement = PATCHES[name]
        stack.enter_context(mock.patch.object(target, attribute, replacement))
    return stack


def report(name: str, results: list[tuple[float, float]]) -> None:
    errors = [100 * error for _, error in results]
    spread = statistics.stdev(errors) if len(errors) > 1 else float("nan")
    runs = ", ".join(f"{e:.2f} %" for e in errors)
    wall = sum(seconds for seconds, _ in results)
    print(
        f"| {name} | {statistics.mean(errors):.2f} % +- {spread:.2f} | {runs} | {wall:.0f} s |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment", choices=["semi-supervised", "spatial-contrasting", "differences"]
    )
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="semisup-mnist")
    parser.add_argument("--epochs", type=int, default=4, help="Epochs of (fine-)tuning.")
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, help="Cap (default: a full pass).")
    parser.add_argument("--pretrain-steps", type=int, help="Cap per pretraining epoch.")
    parser.add_argument(
        "--labels-per-class", type=int, nargs="+", default=[10], help="0: every label."
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--finetune-lr", type=float, default=0.01)
    parser.add_argument(
        "--inits",
        nargs="+",
        choices=["sc", "random"],
        default=["sc", "random"],
        help="spatial-contrasting: which initialisations to fine-tune.",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--milestones", default="30,60,90,120", help="Epochs of the step schedule's drops."
    )
    parser.add_argument(
        "--nesterov", action="store_true", help="Nesterov momentum (the authors' 'nag')."
    )
    parser.add_argument(
        "--lr-schedule", choices=["cosine", "step"], default="cosine", help="step: --milestones."
    )
    parser.add_argument(
        "--rows", type=int, nargs="+", help="differences: only these rows (0-based)."
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-few-labels"))
    args = parser.parse_args()

    base = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        method="semi-supervised",
        model=args.model,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        test_triplets=1000,
        steps_per_epoch=args.steps_per_epoch,
        nesterov=args.nesterov,
        lr_schedule=args.lr_schedule,
        lr_milestones=args.milestones,
    )
    print(f"machine: torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| setting | 1-NN test error (mean +- std) | per seed | wall |\n|---|---:|---|---:|")
    for per_class in args.labels_per_class:
        labels = f"{per_class} labels per class" if per_class else "all labels"
        few = TrainConfig.from_options(base, labels_per_class=per_class or None)
        if args.experiment == "differences":
            for row, (name, options, patches) in enumerate(DIFFERENCES):
                if args.rows and row not in args.rows:
                    continue
                with patched(patches):
                    results = [
                        run(
                            TrainConfig.from_options(
                                few, seed=seed, lr_milestones=args.milestones, **options
                            ),
                            args.out / f"differences-{row}-{per_class}-{seed}",
                        )
                        for seed in args.seeds
                    ]
                report(f"{name}, {labels}, {args.epochs} epochs", results)
            continue
        if args.experiment == "semi-supervised":
            curves = {}
            for weight, name in ((1.0, "semi-supervised"), (0.0, "labelled samples alone")):
                folders = [
                    args.out / f"{name.split()[0]}-{per_class}-{seed}" for seed in args.seeds
                ]
                results = [
                    run(TrainConfig.from_options(few, seed=seed, unlabelled_weight=weight), folder)
                    for seed, folder in zip(args.seeds, folders, strict=True)
                ]
                report(f"{name}, {labels}, {args.epochs} epochs", results)
                curves[name] = epoch_curve(folders)
            print_curves(curves)
            continue
        for seed in args.seeds:
            pretrained = args.out / f"sc-pretrain-{seed}"
            if not (pretrained / "model.safetensors").is_file():
                pretrain = TrainConfig.from_options(
                    base,
                    method="spatial-contrasting",
                    seed=seed,
                    epochs=args.pretrain_epochs,
                    steps_per_epoch=args.pretrain_steps,
                    lr_schedule="plateau",
                )
                started = time.perf_counter()
                train(pretrain, pretrained, overwrite=True, show_progress=False)
                seconds = time.perf_counter() - started
                print(f"spatial-contrasting pretraining, seed {seed}: {seconds:.0f} s", flush=True)
            for init, lr, name in (
                (str(pretrained), args.finetune_lr, "SC init"),
                (None, args.lr, "random init"),
            ):
                if name.split()[0].lower() not in args.inits:
                    continue
                config = TrainConfig.from_options(
                    few, seed=seed, unlabelled_weight=0.0, init=init, lr=lr
                )
                result = run(config, args.out / f"{name.split()[0]}-{per_class}-{seed}")
                report(f"{name}, {labels}, {args.epochs} epochs, lr {lr}, seed {seed}", [result])


if __name__ == "__main__":
    main()
