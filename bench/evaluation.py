"""Evaluation at scale, side by side with pytorch-metric-learning's AccuracyCalculator.

Each case runs in a fresh subprocess so its peak RSS is its own. Cases:
  mnist  10,000 queries vs a 60,000 gallery (D = 128, 10 classes, synthetic), ours vs PML
  large  20,000 queries vs a 1,000,000 gallery (D = 128, 1,000 classes), ours (PML with --pml-large)
  mnist-pixels  the real MNIST test set (10,000 queries) vs its train set (60,000 gallery), raw
         pixels in [0, 1] (D = 784), ours vs PML; needs --mnist-dir
Both compute Precision@1, R-Precision and MAP@R with k = the largest class (PML: "max_bin_count").

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/evaluation.py [--cases mnist large] [--pml-large]
    ... bench/evaluation.py --cases mnist-pixels --mnist-dir /work/shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = {"mnist": (10_000, 60_000, 10), "large": (20_000, 1_000_000, 1_000), "mnist-pixels": None}
DIM = 128
NOISE = 1.5  # classes overlap a little, so the metrics are not all 1


def synthetic(queries: int, gallery: int, classes: int, seed: int = 0):
    """Gaussian classes around random centres, generated in chunks (float32 throughout)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, DIM)).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, n)
        x = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, 100_000):
            rows = slice(start, start + 100_000)
            x[rows] = centres[labels[rows]] + NOISE * rng.standard_normal(
                (len(labels[rows]), DIM), dtype=np.float32
            )
        return x, labels

    return draw(queries), draw(gallery)


def mnist_pixels(data_dir: str):
    """Real MNIST: (test images, labels) as queries, (train images, labels) as gallery."""
    from tripletnet.data import load_dataset

    data = load_dataset("mnist", data_dir)

    def flat(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32) / 255.0

    return (flat(data.test.x), data.test.y), (flat(data.train.x), data.train.y)


def run_one(case: str, implementation: str, mnist_dir: str | None = None) -> dict:
    if case == "mnist-pixels":
        (q, ql), (g, gl) = mnist_pixels(str(mnist_dir))
    else:
        (q, ql), (g, gl) = synthetic(*CASES[case])
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if implementation == "tripletnet":
        from tripletnet.evaluation.retrieval import retrieve

        summary = retrieve(q, ql, g, gl, recall_ks=(1,)).summary()
        values = {key: summary[key] for key in ("precision_at_1", "r_precision", "map_at_r")}
    else:
        import torch
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

        calculator = AccuracyCalculator(
            include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
            k="max_bin_count",
            device=torch.device("cpu"),
        )
        result = calculator.get_accuracy(q, ql, g, gl)
        values = {
            "precision_at_1": result["precision_at_1"],
            "r_precision": result["r_precision"],
            "map_at_r": result["mean_average_precision_at_r"],
        }
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    return {
        "case": case,
        "implementation": implementation,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_gb": peak_gb,
        **values,
    }


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): a fair clock on a machine shared with other
    jobs, where wall time depends on what else runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["mnist", "large"])
    parser.add_argument("--pml-large", action="store_true", help="also run PML on the large case")
    parser.add_argument("--mnist-dir", help="MNIST's idx files, for the mnist-pixels case")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.mnist_dir)))
        return
    if "mnist-pixels" in args.cases and not args.mnist_dir:
        parser.error("the mnist-pixels case needs --mnist-dir")
    for case in args.cases:
        if CASES[case] is None:
            print(f"\n{case}: MNIST test (10000) vs train (60000), raw pixels, D = 784, 10 classes")
        else:
            queries, gallery, classes = CASES[case]
            print(f"\n{case}: {queries} queries vs {gallery} gallery, D = {DIM}, {classes} classes")
        rows = {}
        implementations = ["tripletnet"] + (["pml"] if case != "large" or args.pml_large else [])
        for implementation in implementations:
            output = subprocess.run(
                [sys.executable, __file__, "--one", case, implementation]
                + (["--mnist-dir", args.mnist_dir] if args.mnist_dir else []),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows[implementation] = row = json.loads(output.strip().splitlines()[-1])
            print(
                f"  {implementation:10s} {row['seconds']:8.2f} s wall {row['cpu_seconds']:8.2f} s CPU  peak RSS {row['peak_rss_gb']:.2f} GB  "
                f"P@1 {row['precision_at_1']:.6f}  R-Precision {row['r_precision']:.6f}  MAP@R {row['map_at_r']:.6f}"
            )
        if "pml" in rows:
            ours, theirs = rows["tripletnet"], rows["pml"]
            gap = max(
                abs(ours[m] - theirs[m]) for m in ("precision_at_1", "r_precision", "map_at_r")
            )
            print(
                f"  PML / tripletnet: wall time {theirs['seconds'] / ours['seconds']:.2f}x, "
                f"CPU time {theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}x, "
                f"memory ratio {theirs['peak_rss_gb'] / ours['peak_rss_gb']:.2f}x, largest metric gap {gap:.1e}"
            )


if __name__ == "__main__":
    main()
