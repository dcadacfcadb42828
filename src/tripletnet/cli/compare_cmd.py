"""``tripletnet compare A B``: is evaluation A better than B on the same test queries?"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import TripletnetError

FOLDER = click.Path(file_okay=False, exists=True, path_type=Path)


@click.command("compare")
@click.argument("a", type=FOLDER)
@click.argument("b", type=FOLDER)
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
)
def compare_command(a: Path, b: Path, resamples: int, alpha: float) -> None:
    """Is evaluation A better than B on the same queries?

    A paired comparison of two evaluated folders (run folders or --out folders of 'tripletnet
    evaluate'): per metric, the mean difference A - B with its bootstrap interval and a
    sign-flip randomisation p-value."""
    from ..evaluation.confidence import paired_comparison
    from ..evaluation.evaluate import HEADLINE
    from ..evaluation.report_files import PER_QUERY, load_per_query, protocol_mismatch

    scores = []
    for folder in (a, b):
        if not (folder / PER_QUERY).is_file():
            raise TripletnetError(
                f"{folder} has no {PER_QUERY}; run 'tripletnet evaluate' on it first"
            )
        scores.append(load_per_query(folder / PER_QUERY))
    mismatch = protocol_mismatch(*scores)
    if mismatch:
        raise TripletnetError(
            f"{a} and {b} were evaluated with different {mismatch}; "
            "compare evaluations of the same queries against the same gallery"
        )
    first, second = scores
    click.echo("| metric | A | B | A - B [95% CI] | p | better |")
    click.echo("|---|---:|---:|---:|---:|---|")
    for name in HEADLINE:
        if name not in first or name not in second:
            continue
        result = paired_comparison(first[name], second[name], resamples=resamples, alpha=alpha)
        low, high = result["ci"]
        click.echo(
            f"| {name} | {result['mean_a']:.2%} | {result['mean_b']:.2%} | {result['difference']:+.2%} "
            f"[{low:+.2%}, {high:+.2%}] | {result['p_value']:.4f} | {result['better']} |"
        )
