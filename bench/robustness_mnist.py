"""Issue 16's MNIST figures: train the paper's triplet net, the Siamese baseline, the triplet
net with --augment-corruptions and with --adversarial fgsm, then `tripletnet robustness` on each.

    python bench/robustness_mnist.py --data-dir ../shared/data/mnist --out runs/robust \
        --epochs 2 --triplets 64000 [--parts train,report] [--report-args "--queries 500"]

Training goes through the library's ``train`` (the same as `tripletnet train` with the options
printed below, without the evaluation that command runs after training); the reports are the
command itself. Every figure printed is measured here; the times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tripletnet.cli import main
from tripletnet.training import TrainConfig, train

RUNS = {
    "triplet": {},
    "siamese": {"method": "siamese"},
    "triplet-corrupt": {"augment_corruptions": True},
    "triplet-fgsm": {"adversarial": "fgsm", "eps": 0.25},
}
SKIP = {"triplet": [], "siamese": ["adversarial,stability"],
        "triplet-corrupt": ["adversarial,stability"], "triplet-fgsm": ["stability"]}  # fmt: skip


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="runs/robust")
    parser.add_argument("--triplets", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--parts", default="train,report")
    parser.add_argument("--report-args", default="", help="More `robustness` options.")
    args = parser.parse_args(argv)
    parts, out = args.parts.split(","), Path(args.out)
    for name in args.runs.split(","):
        folder = out / f"mnist-{name}"
        if "train" in parts:
            options = {"dataset": "mnist", "data_dir": args.data_dir, "epochs": args.epochs,
                       "triplets_per_epoch": args.triplets, **RUNS[name]}  # fmt: skip
            flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
            started = time.perf_counter()
            train(TrainConfig(**options), folder, overwrite=True, show_progress=False)
            print(f"{name}: tripletnet train {flags} (no evaluation): "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        if "report" in parts:
            started = time.perf_counter()
            skip = [f"--skip={s}" for s in SKIP[name]] + args.report_args.split()
            assert main(["robustness", str(folder), *skip]) == 0
            report = json.loads((folder / "robustness" / "robustness.json").read_text())
            print(f"{name}: tripletnet robustness {folder} {' '.join(skip)}: "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
            print(json.dumps({k: report.get(k) for k in ("clean", "seconds")}), flush=True)


if __name__ == "__main__":
    main_()
