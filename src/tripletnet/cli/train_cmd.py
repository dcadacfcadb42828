"""``tripletnet train``: train, evaluate, write the run folder and print the result table."""

from __future__ import annotations

import itertools
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path

import click
from click.core import ParameterSource

from ..data import DATASETS
from ..files import read_json_object, write_text_atomic
from ..models import ARCHITECTURES
from ..text import plural
from ..training.batch_mining import LOSS_NAMES, MINERS, SAMPLERS
from ..training.config import METHODS, PRECISIONS, TrainConfig
from ..training.run_folder import COMMAND
from .few_labels_options import few_label_options


def _choice(values: tuple[str, ...] | list[str]) -> click.Choice:
    return click.Choice(list(values), case_sensitive=False)


@click.command("train")
@click.option(
    "--dataset",
    type=_choice(list(DATASETS)),
    default="digits",
    show_default=True,
    help="Dataset to train on; digits is bundled, the others read --data-dir.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with the dataset's official files.",
)
@click.option("--download", is_flag=True, help="Download missing dataset files (needs internet).")
@click.option(
    "--method",
    type=_choice(METHODS),
    default="triplet",
    show_default=True,
    help="triplet: Hoffer & Ailon's Triplet network; siamese: contrastive-loss baseline.",
)
@click.option(
    "--model", type=_choice(ARCHITECTURES), help="Embedding net (default: the dataset's)."
)
@click.option("--embedding-dim", type=int, help="Embedding size (default: the net's).")
@click.option("--dropout", type=float, help="Dropout probability (default: the net's).")
@click.option(
    "--final-relu/--no-final-relu",
    default=None,
    help="End the mnist/cifar/stl10 net in a ReLU, as the paper's nets do (default: yes).",
)
@click.option(
    "--batch-norm/--no-batch-norm",
    default=None,
    help="Batch norm after each conv of the mnist/cifar/stl10 net (default: no, as in the paper).",
)
@click.option("--epochs", type=int, help="Epochs (default: the dataset's).")
@click.option(
    "--triplets-per-epoch", type=int, help="Fresh random triplets per epoch (the paper: 640000)."
)
@click.option("--batch-size", type=int, default=128, show_default=True, help="Triplets per batch.")
@click.option("--lr", type=float, help="Initial learning rate, decayed by a cosine schedule.")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option(
    "--loss-form",
    type=_choice(("mse", "nll")),
    default="mse",
    show_default=True,
    help="Triplet loss: MSE of the distance softmax against (0, 1), or its NLL.",
)
@click.option(
    "--margin",
    type=float,
    default=1.0,
    show_default=True,
    help="Contrastive-loss margin (siamese).",
)
@click.option(
    "--test-triplets", type=int, default=64_000, show_default=True, help="Fixed test triplets."
)
@click.option(
    "-k", "--k", "k", type=int, default=5, show_default=True, help="k of the k-NN classifier."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--loss", type=_choice(list(LOSS_NAMES)), help="Batch-mining loss (default: Hoffer's)."
)
@click.option("--miner", type=_choice(list(MINERS)), help="Miner for --loss (default: none).")
@click.option(
    "--sampler", type=_choice(SAMPLERS), help="Batches for --loss: pk (default) or random."
)
@click.option(
    "--classes-per-batch", type=int, help="P (pk; default: 16, or every class when fewer)."
)
@click.option("--samples-per-class", type=int, default=8, show_default=True, help="K (pk).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=_choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="bf16: the net's forward in bfloat16 (mixed precision; losses stay float32). "
    "For CPUs with AMX/AVX-512 BF16 (1.7x on the MNIST net) and GPUs with bfloat16.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder (default: runs/DATASET-METHOD, numbered -2, -3, ... when it exists).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out with its saved options; a larger --epochs trains on to the "
    "new total (the learning-rate schedule is stretched over it), --device may change.",
)
@click.option("--overwrite", is_flag=True, help="Replace the run folder --out if it exists.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@few_label_options
def train_command(
    out: Path | None,
    resume: bool,
    overwrite: bool,
    no_progress: bool,
    data_dir: Path | None,
    **options: object,
) -> None:
    """Train an embedding net, evaluate it and write a run folder with a report and plots."""
    from ..evaluation.report import evaluate_run, result_table
    from ..training import train

    if resume and overwrite:
        raise click.UsageError("choose one of --resume (continue --out) and --overwrite")
    if resume and out is None:
        raise click.UsageError("--resume needs --out RUN_DIR, the run to continue")
    config = TrainConfig(data_dir=str(data_dir) if data_dir else None, **options)  # type: ignore[arg-type]
    if resume:
        assert out is not None
        config = _resumed(out, config)
    config.resolved()  # check the options before touching the run folder
    out = out or default_run_folder(config)
    summary = train(config, out, resume=resume, overwrite=overwrite, show_progress=not no_progress)
    if summary.get("already_finished") and (out / "metrics.json").is_file():
        click.echo(
            f"nothing to train: {out} has finished its {plural(summary['epochs'], 'epoch')}; "
            f"its report is {out / 'report.md'} (evaluate it again with 'tripletnet evaluate {out}')"
        )
        return
    earlier = (
        (out / COMMAND).read_text(encoding="utf-8") if resume and (out / COMMAND).is_file() else ""
    )
    write_text_atomic(out / COMMAND, earlier + command_line() + "\n")
    click.echo(
        f"trained {plural(summary['epochs'], 'epoch')} in {summary['train_seconds']:.1f} s "
        f"({summary['images_per_second']:.0f} images/s); evaluating..."
    )
    metrics = evaluate_run(out)
    click.echo(result_table(metrics))
    click.echo(f"test triplet error {metrics['test_triplet_error']:.2%}")
    click.echo(f"run folder: {out} (report.md, metrics.json, embedding.png, model.safetensors)")


def _resumed(out: Path, given: TrainConfig) -> TrainConfig:
    """The saved configuration of ``out`` with the options given on this command line
    (``train`` checks which of them a resumed run may change)."""
    context = click.get_current_context()
    explicit = {
        name
        for name, source in ((p, context.get_parameter_source(p)) for p in context.params)
        if source not in (ParameterSource.DEFAULT, None)
    }
    explicit |= {"data_dir"} if given.data_dir is not None else set()
    saved = TrainConfig.from_dict(read_json_object(out / "config.json"), f"{out}/config.json")
    return replace(
        saved, **{f.name: getattr(given, f.name) for f in fields(given) if f.name in explicit}
    )


def command_line() -> str:
    """This invocation of tripletnet, as a shell would take it."""
    root = click.get_current_context().find_root().obj or {}
    return shlex.join(["tripletnet", *root.get("argv", sys.argv[1:])])


def default_run_folder(config: TrainConfig) -> Path:
    """runs/DATASET-METHOD, or runs/DATASET-METHOD-2, -3, ... when that exists already."""
    name = f"{config.dataset}-{config.loss or config.method}"
    for number in itertools.count(1):
        folder = Path("runs") / (name if number == 1 else f"{name}-{number}")
        if not folder.exists():
            return folder
    raise AssertionError("unreachable")
