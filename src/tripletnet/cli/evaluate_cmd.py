"""``tripletnet evaluate``: evaluate a saved run, or the user's own embeddings (.npy files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import TripletnetError
from ..files import load_npy
from ..metric_names import METRICS
from .options import device_option, out_option, workers_option
from .progress import progress_option
from .trust import trust_option

if TYPE_CHECKING:
    import numpy as np

    from ..world import World

NPY = click.Path(dir_okay=False, exists=True, path_type=Path)


def _load(path: Path | None) -> np.ndarray | None:
    import numpy as np

    if path is None:
        return None
    return np.asarray(load_npy(path))


def _gallery_share(
    world: World, embeddings: Path | None, labels: Path | None
) -> tuple[Any, np.ndarray | None]:
    """This process's rows of the gallery files (``World.shard``), the embeddings memory-mapped
    (read as they are searched)."""
    from ..evaluation.inputs import check_layout

    if embeddings is None or labels is None:
        return None, None
    gallery = load_npy(embeddings, mapped=True)
    check_layout(gallery, f"{embeddings} (gallery embeddings)")
    every = _load(labels)
    assert every is not None
    rows = world.shard(len(gallery))
    if len(every) != len(gallery):
        raise TripletnetError(
            f"{labels} has {len(every)} labels but {embeddings} has {len(gallery)} rows; "
            "they must match one to one"
        )
    return gallery[rows.start : rows.stop], every[rows.start : rows.stop]


def _only_for_files() -> None:
    """A run folder takes none of the options of --embeddings."""
    context = click.get_current_context()
    only_for_files = ("labels", "gallery_embeddings", "gallery_labels", "out", "pairs", "metric")
    given = [
        "--" + name.replace("_", "-")
        for name in (*only_for_files, "no_linear_probe")
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: only with --embeddings; a run folder is evaluated on "
            "its test split against its train split, and its report is written into RUN_DIR"
        )


@click.command("evaluate")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(min=1),
    help="k of the k-NN classifiers (default: the run's, or 5).",
)
@click.option("--embeddings", type=NPY, help="Query embeddings (N, D) .npy, instead of a run.")
@click.option("--labels", type=NPY, help="Query labels (N,) .npy.")
@click.option(
    "--gallery-embeddings",
    type=NPY,
    help="Gallery (M, D) .npy; default: leave-one-out on the queries.",
)
@click.option("--gallery-labels", type=NPY, help="Gallery labels (M,) .npy.")
@out_option("Output folder (with --embeddings).", folder=True)
@click.option(
    "--pairs",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Same- and different-class pairs each, for verification (--embeddings).",
)
@click.option(
    "--calibrate-far",
    type=click.FloatRange(0, 1),
    help="Save threshold.json: the distance threshold at this FAR (run folders; train pairs).",
)
@click.option(
    "--calibrate-precision",
    type=click.FloatRange(0, 1, min_open=True),
    help="Save threshold.json: the threshold reaching this pair precision.",
)
@click.option(
    "--no-linear-probe",
    is_flag=True,
    help="Skip the logistic-regression probe (slow on big galleries).",
)
@click.option("--no-tsne", is_flag=True, help="Skip the t-SNE figure.")
@click.option(
    "--memory-mb",
    type=click.IntRange(min=1),
    help="Read the gallery (memory-mapped) this many MiB at a time: a gallery larger than "
    "memory. [default: at once]",
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    help="Compare --embeddings by this distance (a run folder uses its own). [default: euclidean]",
)
@device_option(what="Where the net, the k-NN search and the linear probe run")
@workers_option()
@trust_option
@progress_option
def evaluate_command(
    run_dir: Path | None,
    k: int | None,
    embeddings: Path | None,
    labels: Path | None,
    gallery_embeddings: Path | None,
    gallery_labels: Path | None,
    out: Path | None,
    pairs: int,
    calibrate_far: float | None,
    calibrate_precision: float | None,
    no_linear_probe: bool,
    no_tsne: bool,
    metric: str | None,
    memory_mb: int | None,
    device: str,
    workers: int,
) -> None:
    """Evaluate a trained run, or your own embeddings.

    A trained RUN_DIR (test queries, train gallery), or your own embeddings: retrieval, k-NN,
    centroid and linear accuracy, NMI/AMI, verification, intervals and figures. Under torchrun
    the processes split the gallery and rank 0 writes the report (docs/evaluation.md)."""
    if (run_dir is None) == (embeddings is None):
        raise click.UsageError("give a RUN_DIR or --embeddings E.npy --labels L.npy --out DIR")
    if calibrate_far is not None and calibrate_precision is not None:
        raise click.UsageError("choose one of --calibrate-far and --calibrate-precision")
    from ..devices import resolve_device
    from ..world import start, stop

    on = resolve_device(device)
    if run_dir is not None:
        _only_for_files()
    else:
        if labels is None or out is None:
            raise click.UsageError("--embeddings needs --labels L.npy and --out DIR")
        if (gallery_embeddings is None) != (gallery_labels is None):
            raise click.UsageError(
                "give both --gallery-embeddings and --gallery-labels, or neither"
            )
        if calibrate_far is not None or calibrate_precision is not None:
            raise click.UsageError(
                "--calibrate-far/--calibrate-precision need a RUN_DIR to save the threshold in"
            )
    world = start(on)  # under torchrun: join the job (each process its own GPU)
    try:
        if run_dir is not None:
            from ..evaluation.report import evaluate_run, result_table

            measured = evaluate_run(
                run_dir,
                k=k,
                calibrate_far=calibrate_far,
                calibrate_precision=calibrate_precision,
                tsne=not no_tsne,
                workers=workers,
                device=str(world.device(on)),
                memory_mb=memory_mb,
                world=world,
            )
            if measured is not None:
                click.echo(result_table(measured))
                click.echo(f"test triplet error {measured['test_triplet_error']:.2%}")
            out = run_dir
        else:
            assert embeddings is not None and labels is not None and out is not None
            from ..evaluation.evaluate import evaluate_shard
            from ..evaluation.report_files import write_evaluation

            gallery, own_labels = _gallery_share(world, gallery_embeddings, gallery_labels)
            evaluation = evaluate_shard(
                _load(embeddings),
                _load(labels),
                gallery,
                own_labels,
                k=k or 5,
                pairs=pairs,
                linear_probe=not no_linear_probe,
                metric=metric or "euclidean",
                device=world.device(on),
                memory_mb=memory_mb,
                world=world,
            )
            measured = None
            if evaluation is not None:
                measured = write_evaluation(out, evaluation, "embeddings", tsne=not no_tsne)
    finally:
        stop()
    if measured is None:  # not rank 0: rank 0 reports
        return
    metrics = measured
    retrieval = metrics["retrieval"]
    click.echo(
        f"Precision@1 {retrieval.get('precision_at_1', float('nan')):.2%}  R-Precision {retrieval.get('r_precision', float('nan')):.2%}  "
        f"MAP@R {retrieval.get('map_at_r', float('nan')):.2%}  NMI {metrics['clustering']['nmi']:.4f}  "
        f"ROC AUC {metrics['verification']['roc_auc']:.4f}"
    )
    click.echo(
        f"wrote {out / 'metrics.json'}, {out / 'report.md'} and {len(metrics['figures'])} figures in {out}"
    )
