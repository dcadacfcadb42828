"""Your own data against the built-in loader: MNIST from its idx files, from a folder of
70,000 PNGs (decoded once and cached, and decoded afresh every epoch) and from a CSV list, trained
with the same seed and settings one after the other; test accuracy and training images/s.

    python bench/make_image_folder.py --data-dir ../shared/data/mnist --out /tmp/mnist-folder
    python bench/own_data.py --data-dir ../shared/data/mnist --folder /tmp/mnist-folder

The folder lists its files class by class, so its random triplets are other draws than the
idx files' (the same distribution); the CSV keeps the official order, so it trains exactly as
the built-in loader does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tripletnet.evaluation.report import evaluate_run
from tripletnet.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="The official MNIST files.")
    parser.add_argument("--folder", type=Path, required=True, help="make_image_folder.py's OUT.")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--triplets", type=int, default=64_000, help="Triplets per epoch.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-own-data"))
    args = parser.parse_args()
    common = {"epochs": args.epochs, "triplets_per_epoch": args.triplets, "model": "mnist"}
    common["workers"] = args.workers
    variants = {
        "built-in (idx files in memory)": {"dataset": "mnist", "data_dir": args.data_dir},
        "folder of PNGs, decoded once (cached)": {"dataset": str(args.folder)},
        "folder of PNGs, decoded every epoch": {"dataset": str(args.folder), "cache_mb": 0},
        "CSV list (official order), cached": {"dataset": str(args.folder / "mnist.csv")},
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.workers} workers")
    print(f"MNIST net, {args.epochs} epochs x {args.triplets:,} triplets, seed 0")
    print("| source | linear | 5-NN | training images/s | ratio | training | whole run |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    baseline = None
    for name, source in variants.items():
        out = args.out / name.split()[0].replace("-", "")
        started = time.perf_counter()
        summary = train(TrainConfig(**common, **source), out, overwrite=True, show_progress=False)
        metrics = evaluate_run(out, tsne=False, workers=args.workers)
        whole = time.perf_counter() - started
        speed = summary["images_per_second"]
        baseline = baseline or speed
        rows = metrics["classification"]["embedding"]
        print(
            f"| {name} | {rows['linear_accuracy']:.2%} | {rows['knn_accuracy']:.2%} | "
            f"{speed:,.0f} | {speed / baseline:.2f} | {summary['train_seconds']:.0f} s | "
            f"{whole:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
