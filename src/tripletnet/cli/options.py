"""``--out``, ``--device`` and ``--workers``, declared once for the commands that take them (as
trust.py and progress.py declare theirs).

What ``--out`` holds is the command's own (a file or a folder, and what goes in it), so each
command gives its help; ``--device`` names the same devices everywhere. ``--workers`` here is
the processes decoding image files (evaluate; train's comes from its configuration, with its
own default); ``serve --workers`` counts server processes, a different thing, declared there.
No torch is imported: a command's --help stays quick.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..devices import DEVICE_HELP

F = TypeVar("F", bound=Callable[..., Any])


def _out(help: str, folder: bool, required: bool) -> dict[str, Any]:
    kind = click.Path(file_okay=not folder, dir_okay=folder, path_type=Path)
    return {"type": kind, "required": required, "help": help}


def out_option(help: str, *, folder: bool = False, required: bool = False) -> Callable[[F], F]:
    """``--out PATH``: a file to write, or a folder (``folder``); ``help`` says what goes there."""
    return click.option("--out", **_out(help, folder, required))


def out_parameter(help: str, *, folder: bool = False, required: bool = False) -> click.Option:
    """The same option, for commands whose options are built as a list (train, pretrain)."""
    return click.Option(["--out"], **_out(help, folder, required))


def device_option(default: str = "auto", what: str = "") -> Callable[[F], F]:
    """``--device``: one of ``DEVICE_HELP``; ``what`` runs there, when the command says."""
    help = f"{what}: {DEVICE_HELP}." if what else f"{DEVICE_HELP}."
    return click.option("--device", default=default, show_default=True, help=help)


def workers_option() -> Callable[[F], F]:
    """``--workers N``: processes decoding a run's image files."""
    return click.option(
        "--workers",
        type=click.IntRange(0, 256),
        default=0,
        show_default=True,
        help="Processes decoding a run's image files.",
    )
