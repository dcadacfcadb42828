"""Metric learners in scikit-learn against TripletEmbedder: 5-fold cross-validated k-NN
accuracy and fit time on scikit-learn's digits, wine, breast cancer and iris and on a
50,000-sample make_classification task, and a fit-time scaling series on that task.

    python bench/sklearn_metrics.py            # the full run (65 min on docs/sklearn.md's machine)
    python bench/sklearn_metrics.py --quick    # 7.5 min: a 3,000-sample synthetic task, budgets

Every method sees the same folds (StratifiedKFold, shuffled, seed 0), the same standardised
features (a StandardScaler fitted on each training fold) and the same k-NN classifier; "fit s"
is the metric learner's fit alone, the mean over the folds. The methods, all with their
library defaults:

* raw: the standardised features;
* NCA: scikit-learn's NeighborhoodComponentsAnalysis (its n x n softmax is quadratic in time and
  memory, so on the synthetic task it is fitted on a stratified subsample of each training fold,
  --nca-max-samples; the k-NN still uses the whole fold);
* LMNN, NCA (metric-learn): metric-learn's, when it imports, in a child process stopped after
  --ml-budget seconds a fit, on at most --ml-max-samples training samples;
* TripletEmbedder: tripletnet.sklearn.TripletEmbedder(random_state=0) with its defaults.

The scaling series trains NCA and TripletEmbedder on the first n samples of the synthetic task
and tests both on 10,000 held-out samples of it; an NCA fit that would need more memory than
half of what the machine has free, or whose quadratic extrapolation from the previous size
exceeds --nca-budget seconds, is not run, and its estimate is printed as one.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

SEED = 0
SYNTHETIC = {  # make_classification: 12 informative, 4 redundant and 24 noise features
    "n_features": 40,
    "n_informative": 12,
    "n_redundant": 4,
    "n_repeated": 0,
    "n_classes": 5,
    "n_clusters_per_class": 2,
    "class_sep": 1.0,
    "flip_y": 0.01,
}
HELD_OUT = 10_000  # synthetic samples kept out of the CV task, to test the scaling series
NCA_BYTES_PER_PAIR = 34  # scikit-learn's NCA peak memory, measured: about 34 bytes x n^2
METHODS = ("raw", "NCA", "LMNN (metric-learn)", "NCA (metric-learn)", "TripletEmbedder")
METRIC_LEARN = {"LMNN (metric-learn)": "LMNN", "NCA (metric-learn)": "NCA"}


@dataclass
class Outcome:
    """One method on one data set: per-fold accuracy and fit seconds, or why it has none."""

    accuracy: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    note: str = ""
    failed: str = ""  # why there is no result (skipped, timed out, error)

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.accuracy)


# -- metric-learn, in a child process that can be stopped --------------------------------------


def _accepts_ensure_all_finite() -> bool:
    from sklearn.utils import check_array

    return "force_all_finite" not in inspect.signature(check_array).parameters


def _metric_learn_child(conn: Any, name: str, X: np.ndarray, y: np.ndarray, threads: int) -> None:
    """Fit metric-learn's ``name`` on (X, y); send back ("ok", components, seconds) or
    ("error", message, 0)."""
    try:
        warnings.simplefilter("ignore")
        import metric_learn
        import metric_learn._util as util

        if _accepts_ensure_all_finite():  # metric-learn 0.7 passes a keyword sklearn removed
            for helper in ("check_array", "check_X_y"):
                setattr(util, helper, _renamed_keyword(getattr(util, helper)))
        with threadpool_limits(threads):
            learner = getattr(metric_learn, name)(random_state=SEED)
            started = time.perf_counter()
            learner.fit(X, y)
            seconds = time.perf_counter() - started
        conn.send(("ok", np.asarray(learner.components_), seconds))
    except Exception as error:  # reported in the table, whatever it is
        conn.send(("error", f"{type(error).__name__}: {str(error).splitlines()[0]}", 0.0))


def _renamed_keyword(function: Any) -> Any:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if "force_all_finite" in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return function(*args, **kwargs)

    return call


def fit_metric_learn(
    name: str, X: np.ndarray, y: np.ndarray, threads: int, budget: float
) -> tuple[np.ndarray, float]:
    """metric-learn's ``name`` fitted in a child process; its components and fit seconds.
    Raises TimeoutError past ``budget`` seconds, RuntimeError when the fit fails."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_metric_learn_child, args=(sender, name, X, y, threads))
    child.start()
    sender.close()
    try:
        if not receiver.poll(budget):
            raise TimeoutError(f"over the {budget:.0f} s budget for a fit")
        status, payload, seconds = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the child process died (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
    if status != "ok":
        raise RuntimeError(payload)
    return payload, seconds


# -- the methods -----------------------------------------------------------------------------------


def subsample(y: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of a stratified random subsample of at most ``limit`` samples."""
    everything = np.arange(len(y))
    if limit is None or len(y) <= limit:
        return everything
    chosen, _ = train_test_split(everything, train_size=limit, stratify=y, random_state=SEED)
    return np.sort(chosen)


def fit_transform_pair(
    method: str, train: np.ndarray, labels: np.ndarray, test: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Fit ``method`` on standardised (train, labels); the embedded train and test, the fit
    seconds and a note on what it was fitted on."""
    if method == "raw":
        return train, test, 0.0, ""
    if method == "NCA":
        rows = subsample(labels, args.nca_max_samples)
        started = time.perf_counter()
        nca = NeighborhoodComponentsAnalysis(random_state=SEED).fit(train[rows], labels[rows])
        seconds = time.perf_counter() - started
        note = f"fitted on {len(rows):,} of {len(labels):,}" if len(rows) < len(labels) else ""
        return nca.transform(train), nca.transform(test), seconds, note
    if method in METRIC_LEARN:
        rows = subsample(labels, args.ml_max_samples)
        components, seconds = fit_metric_learn(
            METRIC_LEARN[method], train[rows], labels[rows], args.threads, args.ml_budget
        )
        note = f"fitted on {len(rows):,} of {len(labels):,}" if len(rows) < len(labels) else ""
        return train @ components.T, test @ components.T, seconds, note
    from tripletnet.sklearn import TripletEmbedder

    started = time.perf_counter()
    embedder = TripletEmbedder(random_state=SEED).fit(train, labels)
    seconds = time.perf_counter() - started
    return embedder.transform(train), embedder.transform(test), seconds, ""


def knn_accuracy(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, truth: np.ndarray, k: int
) -> float:
    return float(KNeighborsClassifier(n_neighbors=k).fit(train, labels).score(test, truth))


def cross_validate(method: str, X: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> Outcome:
    """``args.folds``-fold k-NN accuracy and fit seconds of ``method`` on (X, y)."""
    outcome = Outcome()
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=SEED)
    for fold, (train_rows, test_rows) in enumerate(folds.split(X, y), start=1):
        scaler = StandardScaler().fit(X[train_rows])
        train, test = scaler.transform(X[train_rows]), scaler.transform(X[test_rows])
        try:
            embedded_train, embedded_test, seconds, note = fit_transform_pair(
                method, train, y[train_rows], test, args
            )
        except TimeoutError as error:
            outcome.failed = f"fold {fold}: {error}; not run further"
            return outcome
        except RuntimeError as error:
            outcome.failed = f"fold {fold}: {error}"
            return outcome
        outcome.accuracy.append(
            knn_accuracy(embedded_train, y[train_rows], embedded_test, y[test_rows], args.k)
        )
        outcome.fit_seconds.append(seconds)
        outcome.note = note
        print(
            f"  {method:<20} fold {fold}: {outcome.accuracy[-1]:.2%} in {seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return outcome


# -- data ------------------------------------------------------------------------------------------


def datasets(synthetic_samples: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], Any]:
    """The CV data sets by name, and the synthetic task's held-out (X, y)."""
    sets = {
        name: loader(return_X_y=True)
        for name, loader in (
            ("digits", load_digits),
            ("wine", load_wine),
            ("breast cancer", load_breast_cancer),
            ("iris", load_iris),
        )
    }
    X, y = make_classification(
        n_samples=synthetic_samples + HELD_OUT, random_state=SEED, **SYNTHETIC
    )
    sets[f"synthetic {synthetic_samples // 1000}k"] = (X[:synthetic_samples], y[:synthetic_samples])
    return sets, (X[synthetic_samples:], y[synthetic_samples:])


# -- the scaling series ----------------------------------------------------------------------------


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def scaling(
    X: np.ndarray, y: np.ndarray, held_out: tuple[np.ndarray, np.ndarray], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """NCA and TripletEmbedder fitted on the first n samples, tested on the held-out set."""
    from tripletnet.sklearn import TripletEmbedder

    rows: list[dict[str, Any]] = []
    last_nca: tuple[int, float] | None = None
    for n in args.sizes:
        if n > len(X):
            continue
        scaler = StandardScaler().fit(X[:n])
        train, test = scaler.transform(X[:n]), scaler.transform(held_out[0])
        row: dict[str, Any] = {"n": n}
        need = NCA_BYTES_PER_PAIR * n * n
        free = available_bytes()
        if free is not None and need > free / 2:
            row["nca_skipped"] = (
                f"NCA not run: it needs about {need / 2**30:.0f} GiB for its n x n matrices, "
                f"{free / 2**30:.0f} GiB is free"
            )
        elif last_nca and last_nca[1] * (n / last_nca[0]) ** 2 > args.nca_budget:
            estimate = last_nca[1] * (n / last_nca[0]) ** 2
            row["nca_skipped"] = (
                f"NCA not run: about {estimate:.0f} s by quadratic extrapolation from "
                f"{last_nca[0]:,} samples ({last_nca[1]:.0f} s), over --nca-budget "
                f"{args.nca_budget:.0f} s"
            )
            row["nca_estimate"] = estimate
        else:
            started = time.perf_counter()
            nca = NeighborhoodComponentsAnalysis(random_state=SEED).fit(train, y[:n])
            row["nca_seconds"] = time.perf_counter() - started
            row["nca_accuracy"] = knn_accuracy(
                nca.transform(train), y[:n], nca.transform(test), held_out[1], args.k
            )
            last_nca = (n, row["nca_seconds"])
        started = time.perf_counter()
        embedder = TripletEmbedder(random_state=SEED).fit(train, y[:n])
        row["te_seconds"] = time.perf_counter() - started
        row["te_accuracy"] = knn_accuracy(
            embedder.transform(train), y[:n], embedder.transform(test), held_out[1], args.k
        )
        print(f"  scaling {n:,}: {row}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# -- the report ------------------------------------------------------------------------------------


def percent(values: list[float]) -> str:
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"


def environment(args: argparse.Namespace) -> list[str]:
    import torch

    def command_output(*command: str) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10)
            return result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in command_output("lscpu").splitlines()
            if line.startswith("Model name")
        ),
        platform.processor() or "unknown",
    )
    metric_learn = "not installed"
    if importlib.util.find_spec("metric_learn"):
        from importlib.metadata import version

        metric_learn = version("metric-learn")
        if _accepts_ensure_all_finite():
            metric_learn += (
                " (it passes check_array's force_all_finite, which this scikit-learn removed; "
                "its child process renames it ensure_all_finite)"
            )
    from tripletnet.sklearn import TripletEmbedder

    defaults = ", ".join(
        f"{k}={v!r}" for k, v in TripletEmbedder(random_state=SEED).get_params().items()
    )
    return [
        f"command: python {' '.join(sys.argv)}",
        f"machine: {cpu}, {os.cpu_count()} cores; {args.threads} thread(s) for every method "
        "(torch and BLAS)",
        f"python {platform.python_version()}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}, metric-learn {metric_learn}; tripletnet "
        f"at {command_output('git', 'rev-parse', '--short', 'HEAD') or 'unknown'}",
        f"k-NN: KNeighborsClassifier(n_neighbors={args.k}); {args.folds}-fold StratifiedKFold "
        f"(shuffled, seed {SEED}); accuracy: mean ± std over the folds",
        f"TripletEmbedder({defaults})",
        f"NCA on at most {args.nca_max_samples:,} training samples a fold; metric-learn on at "
        f"most {args.ml_max_samples:,}, {args.ml_budget:.0f} s a fit",
    ]


def report(
    results: dict[str, dict[str, Outcome]],
    shapes: dict[str, str],
    series: list[dict[str, Any]],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    lines = [f"- {line}" for line in environment(args)]
    lines += [
        "",
        f"| data set | samples × features, classes | method | {args.k}-NN accuracy % | fit s "
        "| accuracy − NCA (points) | fit time ÷ NCA | note |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    goals: list[str] = []
    for name, outcomes in results.items():
        nca = outcomes.get("NCA")
        for method, outcome in outcomes.items():
            if not outcome.ok:
                lines.append(
                    f"| {name} | {shapes[name]} | {method} | — | — | — | — | {outcome.failed} |"
                )
                continue
            accuracy = np.mean(outcome.accuracy)
            fit = np.mean(outcome.fit_seconds)
            delta = ratio = "—"
            if nca is not None and nca.ok and method != "NCA":
                delta = f"{100 * (accuracy - np.mean(nca.accuracy)):+.2f}"
                if method != "raw":
                    ratio = f"{fit / np.mean(nca.fit_seconds):.2f}"
            lines.append(
                f"| {name} | {shapes[name]} | {method} | {percent(outcome.accuracy)} | "
                f"{fit:.2f} | {delta} | {ratio} | {outcome.note} |"
            )
        te = outcomes.get("TripletEmbedder")
        if te is not None and te.ok and nca is not None and nca.ok:
            met = np.mean(te.accuracy) >= np.mean(nca.accuracy)
            goals.append(
                f"- accuracy on {name}: TripletEmbedder {100 * np.mean(te.accuracy):.2f} %, NCA "
                f"{100 * np.mean(nca.accuracy):.2f} %{' (' + nca.note + ')' if nca.note else ''}:"
                f" {'met' if met else 'NOT met'}"
            )
    if series:
        lines += [
            "",
            f"Scaling on the synthetic task: fitted on the first n samples, {args.k}-NN accuracy "
            f"on {HELD_OUT:,} held-out samples.",
            "",
            "| training samples | NCA fit s | NCA accuracy % | TripletEmbedder fit s | "
            "TripletEmbedder accuracy % | NCA fit ÷ TripletEmbedder fit | note |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in series:
            te_fit = row["te_seconds"]
            if "nca_seconds" in row:
                nca_fit, nca_acc = f"{row['nca_seconds']:.1f}", f"{100 * row['nca_accuracy']:.2f}"
                speedup, note = f"{row['nca_seconds'] / te_fit:.2f}", ""
            else:
                nca_fit = nca_acc = speedup = "—"
                note = row["nca_skipped"]
            lines.append(
                f"| {row['n']:,} | {nca_fit} | {nca_acc} | {te_fit:.1f} | "
                f"{100 * row['te_accuracy']:.2f} | {speedup} | {note} |"
            )
            if row["n"] >= 10_000:
                if "nca_seconds" in row:
                    met = te_fit < row["nca_seconds"]
                    verdict = f"{'met' if met else 'NOT met'} (NCA {row['nca_seconds']:.1f} s)"
                else:
                    verdict = f"not measured: {row['nca_skipped']}"
                goals.append(
                    f"- fit time at {row['n']:,} samples: TripletEmbedder {te_fit:.1f} s; {verdict}"
                )
    lines += [
        "",
        "Goals (TripletEmbedder ≥ NCA's accuracy; faster than NCA from 10,000 up):",
        *goals,
    ]
    lines += ["", f"Whole run: {seconds / 60:.1f} min."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A short run (under 10 minutes).")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (1).")
    parser.add_argument("-k", type=int, default=5, help="Neighbours of the k-NN classifier (5).")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--synthetic-samples", type=int, help="Default 50,000 (quick: 3,000).")
    parser.add_argument("--nca-max-samples", type=int, help="Default 10,000 (quick: 2,000).")
    parser.add_argument("--ml-max-samples", type=int, help="Default 2,000 (quick: 500).")
    parser.add_argument("--ml-budget", type=float, help="Seconds a metric-learn fit (180; 10).")
    parser.add_argument(
        "--nca-budget", type=float, help="Seconds an NCA fit of the scaling series (600; 60)."
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="The scaling series' sizes.")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--datasets", nargs="+", help="Only these (digits, wine, ...).")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    quick = args.quick
    defaults = {
        "synthetic_samples": 3_000 if quick else 50_000,
        "nca_max_samples": 2_000 if quick else 10_000,
        "ml_max_samples": 500 if quick else 2_000,
        "ml_budget": 10.0 if quick else 180.0,
        "nca_budget": 60.0 if quick else 600.0,
        "sizes": [1_000, 2_000, 3_000] if quick else [2_500, 5_000, 10_000, 20_000, 50_000],
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sets, held_out = datasets(args.synthetic_samples)
    if args.datasets:
        sets = {name: data for name, data in sets.items() if name.split()[0] in args.datasets}
    methods = list(args.methods)
    skipped: dict[str, str] = {}
    if not importlib.util.find_spec("metric_learn"):
        for method in METRIC_LEARN:
            skipped[method] = "metric-learn is not installed (pip install metric-learn)"
    results: dict[str, dict[str, Outcome]] = {}
    shapes: dict[str, str] = {}
    series: list[dict[str, Any]] = []
    with threadpool_limits(args.threads):
        for name, (X, y) in sets.items():
            shapes[name] = f"{X.shape[0]:,} × {X.shape[1]}, {len(np.unique(y))}"
            print(f"{name}: {shapes[name]}", file=sys.stderr, flush=True)
            results[name] = {}
            for method in methods:
                if method in skipped:
                    results[name][method] = Outcome(failed=skipped[method])
                    continue
                results[name][method] = cross_validate(method, X, y, args)
        synthetic = next(
            (data for name, data in sets.items() if name.startswith("synthetic")), None
        )
        if synthetic is not None and "NCA" in methods and "TripletEmbedder" in methods:
            series = scaling(*synthetic, held_out, args)
    seconds = time.perf_counter() - started
    print(report(results, shapes, series, args, seconds))
    if args.json:
        figures = {
            "results": {
                name: {method: outcome.__dict__ for method, outcome in outcomes.items()}
                for name, outcomes in results.items()
            },
            "scaling": series,
            "seconds": seconds,
            "environment": environment(args),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
