"""``tripletnet robustness``: a run under common corruptions, perturbations and attacks."""

from __future__ import annotations

from pathlib import Path

import click

from .options import device_option, out_option
from .progress import progress_option
from .trust import trust_option

RUN = click.Path(file_okay=False, exists=True, path_type=Path)


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


@click.command("robustness")
@click.argument("run_dir", type=RUN)
@out_option("Output folder [default: RUN_DIR/robustness].", folder=True)
@click.option("--baseline", type=RUN,
              help="Normalise the mCE by this run's k-NN [default: k-NN on the raw pixels].")  # fmt: skip
@click.option("-k", "--k", "k", type=click.IntRange(min=1),
              help="k of the k-NN classifier (default: the run's).")  # fmt: skip
@click.option("--queries", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Test queries, spread over the classes.")  # fmt: skip
@click.option("--gallery", type=click.IntRange(min=2), default=10_000, show_default=True,
              help="Clean gallery samples, spread over the classes.")  # fmt: skip
@click.option("--attack-queries", type=click.IntRange(min=1), default=500, show_default=True,
              help="Queries attacked at each eps.")  # fmt: skip
@click.option("--stability-queries", type=click.IntRange(min=1), default=300, show_default=True,
              help="Queries followed along the perturbation sequences.")  # fmt: skip
@click.option("--eps", callback=_floats, default="0,0.05,0.1,0.2,0.25,0.3", show_default=True,
              help="Attack radii, comma-separated, as fractions of the pixel range.")  # fmt: skip
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True,
              help="The attacks' norm.")  # fmt: skip
@click.option("--pgd-steps", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="PGD steps.")  # fmt: skip
@click.option("--corruptions", callback=_names,
              help="Comma-separated corruptions [default: MNIST-C's for grayscale, ImageNet-C's "
              "for colour].")  # fmt: skip
@click.option(
    "--skip",
    callback=_names,
    help="Parts to leave out, comma-separated: corruptions, stability, adversarial.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the samples, corruptions and noise.")  # fmt: skip
@device_option(default="cpu")
@trust_option
@progress_option
def robustness_command(
    run_dir: Path,
    out: Path | None,
    baseline: Path | None,
    k: int | None,
    queries: int,
    gallery: int,
    attack_queries: int,
    stability_queries: int,
    eps: list[float],
    norm: str,
    pgd_steps: int,
    corruptions: list[str] | None,
    skip: list[str] | None,
    seed: int,
    device: str,
) -> None:
    """Measure a run under corruptions, perturbations and attacks.

    A trained RUN_DIR under the common corruptions (mCE against a baseline), perturbation
    sequences (flip probability) and FGSM/PGD attacks; writes robustness.json, robustness.md
    and figures."""
    from ..robustness.report import PARTS, Settings, robustness_report

    skipped = skip or []
    unknown = sorted(set(skipped) - set(PARTS))
    if unknown:
        raise click.UsageError(f"--skip {','.join(unknown)}: choose from {', '.join(PARTS)}")
    settings = Settings(
        k=k, queries=queries, gallery=gallery, attack_queries=attack_queries,
        stability_queries=stability_queries, eps=eps,
        norm=norm, pgd_steps=pgd_steps, corruptions=corruptions,
        parts=[part for part in PARTS if part not in skipped], seed=seed, device=device,
    )  # fmt: skip
    report = robustness_report(run_dir, out, baseline, settings)
    where = Path(out) if out is not None else run_dir / "robustness"
    clean = report["clean"]
    click.echo(f"clean k-NN {clean['knn_accuracy']:.2%}  Recall@1 {clean['recall_at_1']:.2%}")
    if "corruptions" in report:
        c = report["corruptions"]
        click.echo(f"mCE {100 * c['mce']:.1f}  relative mCE {100 * c['relative_mce']:.1f} "
                   f"(baseline: {report['baseline']['name']})")  # fmt: skip
    if "adversarial" in report:
        for name in ("fgsm", "pgd"):
            rows = report["adversarial"]["knn"][name]
            cells = "  ".join(
                f"{e:g}: {r['knn_accuracy']:.2%}" for e, r in zip(eps, rows, strict=True)
            )
            click.echo(f"{name} k-NN accuracy by eps  {cells}")
    click.echo(f"wrote {where / 'robustness.json'}, robustness.md and "
               f"{len(report['figures'])} figures in {report['seconds']['total']:.0f} s")  # fmt: skip
