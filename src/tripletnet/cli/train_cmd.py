"""``tripletnet train`` and ``tripletnet pretrain``: train, evaluate, write the run folder.

Their options are made from the configuration's dataclasses (``runs.config`` and each method's
``Options``, in ``training.method_options``: no torch is imported for --help), so the flags, ``--config run.toml`` and config.json share one set of names,
defaults and help texts. Only the options given on the command line override the ``--config``
file (or a resumed run's saved configuration).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..files import read_json_object, read_toml
from ..runs.config import SECTIONS
from ..runs.options import Flag, flags
from ..text import plural
from ..training.method_options import BUILT_IN, MethodFacts
from ..training.own_data import own_data_summary
from .options import out_parameter
from .trust import trust_parameter

if TYPE_CHECKING:  # torch: imported when a command runs, not for its --help
    from ..training import TrainConfig


def _json_table(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        table = json.loads(value)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON ({error.msg}): {value!r}") from None
    if not isinstance(table, dict):
        raise click.BadParameter(
            f'a JSON object of keyword arguments, e.g. {{"depth": 3}}; got {value!r}'
        )
    return table


def click_option(flag: Flag) -> click.Option:
    """A click option for ``flag``; its value is None when the flag is not given."""
    default = "" if flag.default in (None, False) else f" [default: {flag.default}]"
    names = [flag.long, *([flag.short] if flag.short else []), flag.name]
    if flag.kind is bool:
        name = flag.long[2:]
        return click.Option(
            [f"--{name}/--no-{name}", flag.name], default=None, help=flag.help + default
        )
    kind: Any = {int: int, float: float, str: str, dict: str}[flag.kind]
    if flag.choices:
        kind = click.Choice(list(flag.choices), case_sensitive=False)
    callback = _json_table if flag.kind is dict else None
    return click.Option(names, type=kind, default=None, help=flag.help + default, callback=callback)


def method_flags(methods: Iterable[MethodFacts]) -> list[Flag]:
    """The options of these methods, each name once, its help saying which methods take it."""
    seen: dict[str, Flag] = {}
    takers: dict[str, list[str]] = {}
    for method in methods:
        for flag in flags(method.Options):
            seen.setdefault(flag.name, flag)
            takers.setdefault(flag.name, []).append(method.name)
    return [
        dataclasses.replace(flag, help=f"[{', '.join(takers[name])}] {flag.help}")
        for name, flag in seen.items()
    ]


def training_options(methods: list[MethodFacts], default_method: str) -> list[click.Option]:
    """Every option of a training command: the sections', --method, and the methods'."""
    choices = [method.name for method in methods]
    method = click.Option(
        ["--method", "method"],
        type=click.Choice(choices, case_sensitive=False),
        default=None,
        help=" | ".join(f"{m.name}: {m.description.rstrip('.')}" for m in methods)
        + f" [default: {default_method}]",
    )
    sections = [click_option(flag) for kind in SECTIONS.values() for flag in flags(kind)]
    return [sections[0], method, *sections[1:], *map(click_option, method_flags(methods))]


def command_options() -> list[click.Option]:
    return [
        click.Option(
            ["--config", "config"],
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="Read the options from a .toml (or a run's config.json); flags override it.",
        ),
        out_parameter(
            "Run folder (default: runs/DATASET-METHOD, numbered -2, -3, ... when it exists).",
            folder=True,
        ),
        click.Option(
            ["--resume", "resume"],
            is_flag=True,
            help="Continue the run in --out with its saved options; a larger --epochs trains on "
            "to the new total (the learning-rate schedule is stretched over it), --device and "
            "--workers may change.",
        ),
        click.Option(
            ["--overwrite", "overwrite"], is_flag=True, help="Replace the run folder --out."
        ),
        click.Option(["--no-progress", "no_progress"], is_flag=True, help="Hide the progress bar."),
        trust_parameter(),  # for --init RUN; this run's own --model needs no flag
    ]


def read_config_file(path: Path) -> TrainConfig:
    """A --config file: TOML, or JSON (a run's config.json)."""
    from ..training import TrainConfig

    if path.suffix.lower() == ".json":
        return TrainConfig.from_dict(read_json_object(path), str(path))
    return TrainConfig.from_dict(read_toml(path), str(path))


def run_training(base: TrainConfig | None, options: dict[str, Any]) -> None:
    """What train and pretrain do once their options are parsed: the library's
    ``train_and_evaluate``, and what it reports, printed."""
    from ..evaluation.report import result_table
    from ..training import TrainConfig
    from ..training.job import train_and_evaluate
    from ..training.run import saved_config

    config_file, out = options.pop("config"), options.pop("out")
    resume, overwrite, no_progress = (
        options.pop(n) for n in ("resume", "overwrite", "no_progress")
    )
    given = {name: value for name, value in options.items() if value is not None}
    if resume and overwrite:
        raise click.UsageError("choose one of --resume (continue --out) and --overwrite")
    if resume and out is None:
        raise click.UsageError("--resume needs --out RUN_DIR, the run to continue")
    if resume and config_file is not None:
        raise click.UsageError(
            "--resume continues with the run's saved options; leave out --config"
        )
    if config_file is not None:
        base = read_config_file(config_file)
    if resume:
        assert out is not None
        base = saved_config(out)  # the flags given override the run's saved options
    finished = train_and_evaluate(
        TrainConfig.from_options(base, **given),
        out,
        resume=resume,
        overwrite=overwrite,
        show_progress=not no_progress,
        command=command_line(),
        on_trained=_echo_trained,
    )
    if finished is None:  # not rank 0 of a torchrun job: rank 0 reports
        return
    out, summary, metrics = finished.out, finished.summary, finished.metrics
    if metrics is None:
        click.echo(
            f"nothing to train: {out} has finished its {plural(summary['epochs'], 'epoch')}; "
            f"its report is {out / 'report.md'} (evaluate it again with 'tripletnet evaluate {out}')"
        )
        return
    click.echo(result_table(metrics))
    click.echo(f"test triplet error {metrics['test_triplet_error']:.2%}")
    click.echo(f"run folder: {out} (report.md, metrics.json, embedding.png, model.safetensors)")


def _echo_trained(summary: dict[str, Any]) -> None:
    click.echo(
        f"trained {plural(summary['epochs'], 'epoch')} in {summary['train_seconds']:.1f} s "
        f"({summary['images_per_second']:.0f} images/s); evaluating..."
    )


def command_line() -> str:
    """This invocation of tripletnet, as a shell would take it."""
    root = click.get_current_context().find_root().obj or {}
    return shlex.join(["tripletnet", *root.get("argv", sys.argv[1:])])


def training_command(
    name: str,
    help: str,
    methods: list[MethodFacts],
    base: Callable[[], TrainConfig | None],
    default_method: str,
) -> click.Command:
    def callback(**options: Any) -> None:
        run_training(base(), options)

    return click.Command(
        name,
        callback=callback,
        params=[*training_options(methods, default_method), *command_options()],
        help=help,
        context_settings={"max_content_width": 100},
    )


train_command = training_command(
    "train",
    "Train an embedding net, evaluate it, write a run folder.\n\nOn a built-in dataset or your "
    "own (a folder of class subfolders, a CSV or an npz); the run folder holds a report and plots.",
    list(BUILT_IN),
    lambda: None,
    f"triplet for the built-in datasets; for your own data {own_data_summary()}",
)

PRETRAINING = [method for method in BUILT_IN if method.pretraining]


def _pretraining_config() -> TrainConfig:
    from ..training import TrainConfig

    return TrainConfig.from_options(method=PRETRAINING[0].name, lr=0.1, lr_schedule="plateau")


pretrain_command = training_command(
    "pretrain",
    "Learn an embedding net without labels (spatial contrasting).\n\nIt is evaluated and "
    "written to a run folder; fine-tune the result with `tripletnet train --init RUN`. The "
    "paper's optimisation: SGD from lr 0.1, divided by 10 when the loss stops falling.",
    PRETRAINING,
    _pretraining_config,
    PRETRAINING[0].name,
)
