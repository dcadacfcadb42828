"""Evaluation at scale, side by side with pytorch-metric-learning's AccuracyCalculator.

Each case runs in a fresh subprocess so its peak RSS is its own. Cases:
  mnist  10,000 queries vs a 60,000 gallery (D = 128, 10 classes, synthetic), ours vs PML
  large  20,000 queries vs a 1,000,000 gallery (D = 128, 1,000 classes), ours (PML with --pml-large)
  mnist-pixels  the real MNIST test set (10,000 queries) vs its train set (60,000 gallery), raw
         pixels in [0, 1] (D = 784), ours vs PML; needs --mnist-dir
  stages the stages of ``tripletnet evaluate`` on an MNIST-sized closed-set run, the former path
         (FAISS k-NN, scikit-learn logistic regression, t-SNE at 1,000 iterations) against the
         device path (chunked matmul + topk, L-BFGS-B probe on a torch objective, t-SNE at 500),
         in one process:
         10,000 test vs 60,000 train embeddings (D = 128, synthetic) and, with --mnist-dir, the
         raw pixels (D = 784) of the baseline row
  evaluate  ``evaluate_run`` of a trained run folder (--run DIR), with empty caches (cold) and
         then with the cached raw-input row, embeddings and 2-D views (warm), --repeat times:
         the wall times, cold / warm, and the numbers' largest gap (points) between the runs
         and to --reference (a metrics.json from the code before a change)
Both compute Precision@1, R-Precision and MAP@R with k = the largest class (PML: "max_bin_count").

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/evaluation.py [--cases mnist large] [--pml-large]
    ... bench/evaluation.py --cases mnist-pixels --mnist-dir /work/shared/data/mnist
    ... bench/evaluation.py --cases stages --mnist-dir /work/shared/data/mnist --device cuda
    ... bench/evaluation.py --cases evaluate --run runs/mnist --device cpu --repeat 2 \
        --reference before/metrics.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CASES = {
    "mnist": (10_000, 60_000, 10),
    "large": (20_000, 1_000_000, 1_000),
    "mnist-pixels": None,
    "stages": None,
    "evaluate": None,
}
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


def run_one(
    case: str, implementation: str, mnist_dir: str | None = None, device: str = "cpu"
) -> dict:
    if case == "mnist-pixels":
        (q, ql), (g, gl) = mnist_pixels(str(mnist_dir))
    else:
        (q, ql), (g, gl) = synthetic(*CASES[case])
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if implementation == "tripletnet":
        from tripletnet.evaluation.retrieval import retrieve

        summary = retrieve(q, ql, g, gl, recall_ks=(1,), device=device).summary()
        values = {key: summary[key] for key in ("precision_at_1", "r_precision", "map_at_r")}
    else:
        import torch
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

        calculator = AccuracyCalculator(
            include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
            k="max_bin_count",
            device=torch.device(device),
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


def _timed(stage: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``stage(*args)``'s result, wall seconds and CPU seconds (a device's work shows in wall
    time only)."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = stage(*args)
    _synchronise()
    return result, time.perf_counter() - started, _cpu_seconds() - cpu_started


def _synchronise() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def stages(mnist_dir: str | None, device: str) -> None:
    """Each stage of a closed-set evaluation, the former path then the device path."""
    import warnings

    import faiss
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tripletnet.evaluation.neighbours import knn_search
    from tripletnet.evaluation.plots import _project
    from tripletnet.evaluation.probe import linear_probe_accuracy
    from tripletnet.evaluation.retrieval import hit_scores, retrieve

    def sklearn_probe(q, ql, g, gl) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(g, gl)
        return float((fitted.predict(q) == ql).mean())

    def device_probe(q, ql, g, gl) -> float:
        return linear_probe_accuracy(g, gl, q, ql, device=device)

    def device_retrieval(q, ql, g, gl) -> float:
        return retrieve(q, ql, g, gl, recall_ks=(1,), device=device).summary()["map_at_r"]

    def faiss_retrieval(q, ql, g, gl) -> float:
        k = int(np.bincount(gl).max())
        _, ids = faiss.knn(q, g, k)  # the former search; its scores were numpy's equivalent
        hits = torch.as_tensor(gl[ids] == ql[:, None])
        r = torch.as_tensor(np.bincount(gl)[ql])
        return float(hit_scores(hits, r, (1,), True)["map_at_r"].mean())

    def faiss_knn(q, ql, g, gl, k=5) -> float:
        _, ids = faiss.knn(q, g, k)
        votes = np.apply_along_axis(np.bincount, 1, gl[ids], minlength=gl.max() + 1)
        return float((votes.argmax(1) == ql).mean())

    def device_knn(q, ql, g, gl, k=5) -> float:
        _, ids = knn_search(q, g, k, device=device)
        votes = np.apply_along_axis(np.bincount, 1, gl[ids], minlength=gl.max() + 1)
        return float((votes.argmax(1) == ql).mean())

    sets = {"embedding": synthetic(*CASES["mnist"])}
    if mnist_dir:
        sets["raw pixels"] = mnist_pixels(mnist_dir)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{'stage':44s} {'former wall':>12s} {'CPU':>8s} {'device wall':>12s} {'CPU':>8s}  values"
    )
    for name, ((q, ql), (g, gl)) in sets.items():
        for stage, former, ours in (
            ("k-NN (k = 5)", faiss_knn, device_knn),
            ("retrieval (k = largest class)", faiss_retrieval, device_retrieval),
            ("linear probe", sklearn_probe, device_probe),
        ):
            old_value, old_wall, old_cpu = _timed(former, q, ql, g, gl)
            new_value, new_wall, new_cpu = _timed(ours, q, ql, g, gl)
            print(
                f"{name + ': ' + stage:44s} {old_wall:10.2f} s {old_cpu:6.2f} s "
                f"{new_wall:10.2f} s {new_cpu:6.2f} s  {old_value:.4f} / {new_value:.4f}"
            )
    (q, ql), _ = sets["embedding"]
    tsne_points = q[:1500]
    from sklearn.manifold import TSNE

    former_tsne = TSNE(2, perplexity=30, init="pca", random_state=0)
    _, old_wall, old_cpu = _timed(former_tsne.fit_transform, tsne_points)
    _, new_wall, new_cpu = _timed(_project, tsne_points, "tsne", 0)
    print(
        f"{'t-SNE, 1,500 points':44s} {old_wall:10.2f} s {old_cpu:6.2f} s "
        f"{new_wall:10.2f} s {new_cpu:6.2f} s  1,000 / 500 iterations"
    )


def evaluate_twice(
    run_dir: str, device: str, repeats: int = 1, reference: str | None = None
) -> None:
    """``evaluate_run`` with empty caches (cold: the raw-input row, the run's embeddings and its
    2-D views computed), then again with them cached (warm), ``repeats`` times, each pair in a
    fresh cache folder; the wall and CPU times, the cold / warm ratio, and the largest gap, in
    points, between the numbers of the cold and warm runs and those of ``reference`` (the
    metrics.json of the code before a change: copy it aside first, evaluate_run rewrites it)."""
    import os
    import tempfile

    from tripletnet.evaluation.baseline_cache import CACHE_ENV
    from tripletnet.evaluation.report import evaluate_run

    before = json.loads(Path(reference).read_text(encoding="utf-8")) if reference else None
    print(f"  load average {_load()} before; {os.cpu_count()} CPUs")
    runs: dict[str, list[float]] = {"cold": [], "warm": []}
    measured: list[dict[str, float]] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            os.environ[CACHE_ENV] = cache
            for label in ("cold", "warm"):
                metrics, wall, cpu = _timed(lambda: evaluate_run(run_dir, device=device))
                runs[label].append(wall)
                measured.append(table_numbers(metrics))
                cells = "  ".join(
                    f"{key}: linear {row.get('linear_accuracy', float('nan')):.4f} "
                    f"k-NN {row.get('knn_accuracy', float('nan')):.4f}"
                    for key, row in metrics["classification"].items()
                )
                print(
                    f"  evaluate_run, {label} ({'empty caches' if label == 'cold' else 'cached'}) "
                    f"{wall:8.2f} s wall {cpu:8.2f} s CPU  load {_load()}  {cells}"
                )
    cold, warm = min(runs["cold"]), min(runs["warm"])
    print(f"  best cold {cold:.2f} s, best warm {warm:.2f} s: cold / warm {cold / warm:.2f}x")
    first = measured[0]
    gap = max(_gap(first, other) for other in measured)
    print(f"  largest gap between the runs' numbers: {gap:.3f} points")
    if before is not None:
        gap = max(_gap(table_numbers(before), other) for other in measured)
        print(f"  largest gap to {reference}: {gap:.3f} points")


def table_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.json that the report's tables show, in points (percent)."""
    numbers = {}
    for key, row in metrics["classification"].items():
        for name in ("linear_accuracy", "knn_accuracy", "recall_at_1", "map_at_r", "nmi"):
            if row.get(name) is not None:
                numbers[f"{key}.{name}"] = 100 * float(row[name])
    for section in ("retrieval", "classifiers", "clustering", "verification"):
        for name, value in metrics.get(section, {}).items():
            if isinstance(value, float) and name != "k":
                numbers[f"{section}.{name}"] = 100 * value
    numbers["test_triplet_error"] = 100 * float(metrics["test_triplet_error"])
    return numbers


def _gap(a: dict[str, float], b: dict[str, float]) -> float:
    """The largest difference between the numbers two metrics have (a missing one: inf)."""
    return max(abs(a[name] - b[name]) if name in b else float("inf") for name in a)


def _load() -> str:
    import os

    return "/".join(f"{value:.1f}" for value in os.getloadavg())


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
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--run", help="a trained run folder, for the evaluate case")
    parser.add_argument(
        "--repeat", type=int, default=1, help="cold and warm evaluations (evaluate case)"
    )
    parser.add_argument(
        "--reference", help="a metrics.json to compare the evaluate case's numbers with"
    )
    parser.add_argument("--one", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.mnist_dir, args.device)))
        return
    if "mnist-pixels" in args.cases and not args.mnist_dir:
        parser.error("the mnist-pixels case needs --mnist-dir")
    if "evaluate" in args.cases and not args.run:
        parser.error("the evaluate case needs --run RUN_DIR")
    for case in args.cases:
        if case == "stages":
            print("\nstages: a closed-set evaluation, former path vs device path")
            stages(args.mnist_dir, args.device)
            continue
        if case == "evaluate":
            print(f"\nevaluate: evaluate_run({args.run!r}, device={args.device!r})")
            evaluate_twice(args.run, args.device, args.repeat, args.reference)
            continue
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
                + (["--mnist-dir", args.mnist_dir] if args.mnist_dir else [])
                + ["--device", args.device],
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
