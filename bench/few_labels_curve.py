"""The curve of test error against epoch of few-label runs, as a markdown table.

Reads each run folder's ``epochs.csv`` (written every epoch, so a run still training can be
read): the test error of 1-NN to the labelled samples (``test_labelled_1nn_error``, the
papers' figure), the loss and the lr. Prints one row per chosen epoch (by default: 1, 2, 5,
then every 10th, and the last epoch at each lr with the first at the next), then per run its
last epoch, the mean of its last 10 epochs, and its best epoch (picked on the test set, as the
authors' ``savedModel_best``: optimistic). Runs with every label log no labelled 1-NN error
each epoch; ``--metric test-5nn`` reads their 5-NN test error (1 - ``test_knn_accuracy``, the
test set's own leave-one-out 5-NN) instead. Example:

    python bench/few_labels_curve.py runs/semi150-s1 runs/semi150-s2
    python bench/few_labels_curve.py runs/sc/SC-0-0 runs/sc/random-0-0 --metric test-5nn
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import NoReturn

METRICS = {"labelled-1nn": "test_labelled_1nn_error", "test-5nn": "test_knn_accuracy"}
ERROR = "error"


def fail(message: str) -> NoReturn:
    """One ``error:`` line on stderr, exit status 2 (bad input)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_curve(folder: Path, metric: str) -> list[dict[str, float]]:
    """The rows of a run's ``epochs.csv`` as numbers, with the chosen test error as ``error``."""
    path = folder / "epochs.csv"
    if not path.is_file():
        fail(f"{path} not found; give run folders of tripletnet train")
    with path.open(newline="") as handle:
        try:
            rows = [
                {key: float(value) for key, value in row.items() if value}
                for row in csv.DictReader(handle)
            ]
        except (TypeError, ValueError):
            fail(f"{path} holds a value that is not a number; is it a tripletnet epochs.csv?")
    column = METRICS[metric]
    if not rows or column not in rows[0]:
        hint = (
            " (only runs with few labels do; try --metric test-5nn)"
            if metric == "labelled-1nn"
            else ""
        )
        fail(f"{folder} logs no {column}{hint}")
    for row in rows:
        row[ERROR] = row[column] if metric == "labelled-1nn" else 1 - row[column]
    return rows


def default_epochs(curve: list[dict[str, float]]) -> list[int]:
    """1, 2, 5, every 10th, the last epoch at each lr and the first at the next, the last."""
    last = len(curve)
    chosen = {1, 2, 5, last, *range(10, last + 1, 10)}
    for epoch in range(2, last + 1):
        if curve[epoch - 1]["lr"] != curve[epoch - 2]["lr"]:
            chosen |= {epoch - 1, epoch}
    return sorted(e for e in chosen if e <= last)


def percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="Run folders (tripletnet train --out).")
    parser.add_argument("--epochs", type=int, nargs="+", help="Only these epochs (1-based).")
    parser.add_argument(
        "--metric",
        choices=sorted(METRICS),
        default="labelled-1nn",
        help="labelled-1nn: 1-NN to the labelled samples (few labels); test-5nn: 5-NN within the test set.",
    )
    args = parser.parse_args()

    curves = {folder: read_curve(folder, args.metric) for folder in args.runs}
    longest = max(curves.values(), key=len)
    if args.epochs and not all(1 <= e <= len(longest) for e in args.epochs):
        fail(f"--epochs must lie in 1..{len(longest)}, the epochs the runs logged")
    names = [folder.name for folder in curves]
    print("| epoch | lr | " + " | ".join(names) + " | mean |")
    print("|---:|---:|" + "---:|" * (len(names) + 1))
    for epoch in args.epochs or default_epochs(longest):
        errors = [curve[epoch - 1][ERROR] for curve in curves.values() if epoch <= len(curve)]
        cells = [
            percent(curve[epoch - 1][ERROR]) if epoch <= len(curve) else "-"
            for curve in curves.values()
        ]
        mean = percent(statistics.mean(errors)) if len(errors) == len(curves) else "-"
        rates = {curve[epoch - 1]["lr"] for curve in curves.values() if epoch <= len(curve)}
        rate = f"{rates.pop():g}" if len(rates) == 1 else "varies"
        print(f"| {epoch} | {rate} | " + " | ".join(cells) + f" | {mean} |")

    print("\n| run | epochs | last epoch | mean of the last 10 | best epoch (on the test set) |")
    print("|---|---:|---:|---:|---:|")
    for name, curve in zip(names, curves.values(), strict=True):
        errors = [row[ERROR] for row in curve]
        best = min(range(len(errors)), key=errors.__getitem__)
        tail = statistics.mean(errors[-10:])
        print(
            f"| {name} | {len(curve)} | {percent(errors[-1])} | {percent(tail)} "
            f"| {percent(errors[best])} (epoch {best + 1}) |"
        )


if __name__ == "__main__":
    main()
