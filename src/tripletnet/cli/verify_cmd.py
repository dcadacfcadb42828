"""``tripletnet verify RUN_DIR --first A.npy --second B.npy``: same class or not, pair by pair,
with the distance threshold that ``tripletnet evaluate --calibrate-far/--calibrate-precision``
saved in the run folder."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..errors import TripletnetError
from ..files import save_npy_atomic
from .embed_cmd import load_samples
from .options import out_option
from .trust import trust_option


@click.command("verify")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--first",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="First sample of each pair: .npy of raw samples shaped like the dataset's (N, ...).",
)
@click.option(
    "--second",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Second sample of each pair, the same shape as --first.",
)
@click.option(
    "--threshold",
    type=float,
    help="Distance threshold (default: the run's threshold.json).",
)
@out_option("Write the N decisions here (.npy of bool, True = same class).")
@trust_option
def verify_command(
    run_dir: Path, first: Path, second: Path, threshold: float | None, out: Path | None
) -> None:
    """Decide for pairs of samples whether they share a class.

    Pair by pair: the same class when d(f(a), f(b)) <= threshold."""
    import numpy as np

    from ..evaluation.verification import load_threshold, pair_distances
    from ..runs import embed, load_run

    if threshold is not None and not (math.isfinite(threshold) and threshold >= 0):
        raise TripletnetError(
            f"--threshold must be a finite distance >= 0, got {threshold}; calibrate one with "
            "'tripletnet evaluate RUN_DIR --calibrate-far 1e-3'"
        )
    run = load_run(run_dir)
    if threshold is None:
        saved = load_threshold(run_dir)
        if saved is None:
            raise TripletnetError(
                f"{run_dir} has no threshold.json; run 'tripletnet evaluate {run_dir} "
                "--calibrate-far 1e-3' first, or pass --threshold"
            )
        threshold = float(saved["distance_threshold"])
    a, b = load_samples(first, run), load_samples(second, run)
    if len(a) != len(b):
        raise TripletnetError(
            f"--first has {len(a)} samples but --second has {len(b)}; pair them 1:1"
        )
    embeddings = embed(run.model, np.concatenate([a, b]), run.prepare)
    metric = run.spec.metric
    pairs = np.stack([np.arange(len(a)), len(a) + np.arange(len(a))], 1)
    distances = pair_distances(embeddings, pairs, metric)
    same = distances <= threshold
    if out is not None:
        save_npy_atomic(out, same)
    click.echo(
        f"{int(same.sum())} of {len(same)} pairs same class ({metric} distance <= {threshold:.4g})"
        + (f"; decisions in {out}" if out is not None else "")
    )
