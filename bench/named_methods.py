"""Issue 20's methods against their base losses on open-set MNIST (train digits 0-4, retrieve
among the unseen 5-9; docs/results.md, issue 14's protocol), seeds 0-2, each pair compared with
``tripletnet compare`` (paired bootstrap and sign-flip test on the same test queries).

    nice -n 10 python bench/named_methods.py --data-dir ../shared/data/mnist --out /tmp/bench/named

Short runs (``--epochs 1 --steps-per-epoch 60``: 60 P x K batches of 5 classes x 24 images,
7,200 images, a quarter of a pass over the 30,596 training images) so that the 24 runs fit a
busy 2-core machine: the figures compare the methods early in training, not at convergence.
Each run is evaluated as ``tripletnet evaluate RUN --no-tsne`` would, without the raw-pixel row. A run folder
that already holds metrics.json is reused (rerun with a fresh --out to retrain). Prints, and
writes to OUT/summary.md, the mean and standard deviation over the seeds of Recall@1, MAP@R,
OPIS and the per-class FAR / FRR spreads, and each comparison's per-seed A - B and p-values.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from tripletnet.evaluation.report import evaluate_run
from tripletnet.training import TrainConfig
from tripletnet.training import train as run_training

MS = ["--loss", "multi-similarity", "--miner", "multi-similarity"]
CONFIGS = {
    "contrastive": ["--loss", "contrastive"],
    "snr-contrastive": ["--loss", "snr-contrastive"],
    "multi-similarity": MS,
    "multi-similarity + TCM": [*MS, "--tcm-weight", "1"],
    "multi-similarity + Metrix (feature)": [*MS, "--mixup", "feature"],
    "multi-similarity + energy confusion": [*MS, "--energy-weight", "0.13"],
    "arcface": ["--loss", "arcface"],
    "elasticface-arc": ["--loss", "elasticface-arc"],
}
PAIRS = [  # (method, its base)
    ("snr-contrastive", "contrastive"),
    ("multi-similarity + TCM", "multi-similarity"),
    ("multi-similarity + Metrix (feature)", "multi-similarity"),
    ("multi-similarity + energy confusion", "multi-similarity"),
    ("elasticface-arc", "arcface"),
]
METRICS = ("retrieval.recall_at_1", "retrieval.map_at_r")


def folder_name(name: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    return f"{'-'.join(filter(None, slug.split('-')))}-seed{seed}"


def train(args: argparse.Namespace, name: str, seed: int) -> Path:
    """Train as ``tripletnet train`` with these flags, then evaluate as ``tripletnet evaluate
    --no-tsne`` without the raw-pixel row (the same metrics, a third of the time)."""
    out = args.out / folder_name(name, seed)
    if (out / "metrics.json").is_file():
        return out
    flags = [
        "--dataset", "mnist", "--data-dir", args.data_dir, "--split", "classes:0.5",
        "--method", "batch-mining", "--classes-per-batch", "5", "--samples-per-class", "24",
        "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps), "--seed", str(seed),
        *CONFIGS[name],
    ]  # fmt: skip
    command = shlex.join(["tripletnet", "train", *flags, "--out", str(out)])
    print("$", command, flush=True)
    given = {
        flags[i].removeprefix("--").replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)
    }
    config = TrainConfig.from_options(**{k: coerced(k, v) for k, v in given.items()})
    run_training(config, out, overwrite=True, show_progress=False, command=command)
    evaluate_run(out, raw_baseline=False, tsne=False)
    return out


def coerced(name: str, value: str) -> object:
    """A flag's text as the option's type (ints and floats; the rest are names)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def compare(a: Path, b: Path) -> dict[str, tuple[float, str]]:
    """``tripletnet compare A B``: per metric, the difference A - B (points) and the p-value."""
    lines = subprocess.run(
        ["tripletnet", "compare", str(a), str(b)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    rows = {}
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in METRICS:
            rows[cells[0]] = (float(cells[3].split()[0].rstrip("%")), cells[4])
    return rows


def mean_sd(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    mean = statistics.mean(values) * scale
    sd = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="The official MNIST files.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench/named"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60, help="Batches per epoch.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="Train nothing: summarise the finished runs in --out (a method's row and a "
        "comparison's cells cover the seeds whose runs are finished).",
    )
    args = parser.parse_args()
    runs = {
        (name, seed): (args.out / folder_name(name, seed))
        if args.summary_only
        else train(args, name, seed)
        for seed in args.seeds
        for name in CONFIGS
    }
    runs = {key: out for key, out in runs.items() if (out / "metrics.json").is_file()}
    lines = [
        f"Open-set MNIST, {args.epochs} epochs x {args.steps} batches of 5 x 24, seeds "
        f"{', '.join(map(str, args.seeds))}: mean ± sd over the seeds.",
        "",
        "| method | Recall@1 % | MAP@R % | OPIS (x1000) | FAR spread % | FRR spread % | train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CONFIGS:
        seeds = [s for s in args.seeds if (name, s) in runs]
        if not seeds:
            lines.append(f"| {name} | not run | | | | | |")
            continue
        metrics = [json.loads((runs[name, s] / "metrics.json").read_text()) for s in seeds]
        opis = [m["opis"] for m in metrics]
        lines.append(
            f"| {name} ({len(seeds)} seeds) "
            f"| {mean_sd([m['retrieval']['recall_at_1'] for m in metrics])} "
            f"| {mean_sd([m['retrieval']['map_at_r'] for m in metrics])} "
            f"| {mean_sd([o['opis'] for o in opis], 1000, 3)} "
            f"| {mean_sd([o['far_spread'] for o in opis])} "
            f"| {mean_sd([o['frr_spread'] for o in opis])} "
            f"| {mean_sd([m['training']['seconds'] for m in metrics], 1, 0)} |"
        )
    lines += [
        "",
        "Paired comparisons (`tripletnet compare A B` on each seed's 4,861 test queries): "
        "A - B in points, p-value of the sign-flip test.",
        "",
        "| A | B | metric | " + " | ".join(f"seed {s}" for s in args.seeds) + " |",
        "|---|---|---|" + "---:|" * len(args.seeds),
    ]
    for method, base in PAIRS:
        per_seed = [
            compare(runs[method, s], runs[base, s])
            if (method, s) in runs and (base, s) in runs
            else None
            for s in args.seeds
        ]
        for metric in METRICS:
            cells = [
                "not run" if row is None else f"{row[metric][0]:+.2f} (p {row[metric][1]})"
                for row in per_seed
            ]
            lines.append(f"| {method} | {base} | {metric} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    (args.out / "summary.md").write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
