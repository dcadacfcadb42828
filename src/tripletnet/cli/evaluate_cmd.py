"""``tripletnet evaluate RUN_DIR``: re-evaluate a saved run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(min=1),
    help="k of the k-NN classifier (default: the run's).",
)
def evaluate_command(run_dir: Path, k: int | None) -> None:
    """Evaluate a trained run: triplet error, linear and k-NN accuracy, raw-input baselines."""
    from ..evaluation.report import evaluate_run, result_table

    metrics = evaluate_run(run_dir, k=k)
    click.echo(result_table(metrics))
    click.echo(f"test triplet error {metrics['test_triplet_error']:.2%}")
    click.echo(
        f"wrote {run_dir / 'metrics.json'}, {run_dir / 'report.md'}, {run_dir / 'embedding.png'}"
    )
