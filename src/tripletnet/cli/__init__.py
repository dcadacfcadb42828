"""The ``tripletnet`` command. Thin: it parses options and calls the library.

Every command lives in its own module; bad input ends in one line ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import TripletnetError
from .memory import keep_freed_memory

# name -> the module and object of each command, imported only when it runs (or --help lists
# them), so that e.g. `tripletnet serve --onnx` never imports torch
COMMANDS = {
    "train": "train_cmd:train_command",
    "evaluate": "evaluate_cmd:evaluate_command",
    "embed": "embed_cmd:embed_command",
    "compare": "compare_cmd:compare_command",
    "verify": "verify_cmd:verify_command",
    "index": "index_cmd:index_command",
    "search": "search_cmd:search_command",
    "serve": "serve_cmd:serve_command",
    "export": "export_cmd:export_command",
    "pretrain": "train_cmd:pretrain_command",
    "robustness": "robustness_cmd:robustness_command",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported from COMMANDS when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(f".{module}", __name__), name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripletnet")
def cli() -> None:
    """Deep metric learning with the Triplet network (Hoffer & Ailon 2015) and its relatives."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; print user errors as one line and return 2. As the process
    itself (``argv`` None: the ``tripletnet`` script, ``python -m tripletnet``), a batch command
    keeps freed memory for reuse (``memory``); ``serve`` gives it back."""
    try:
        args = sys.argv[1:] if argv is None else argv
        if argv is None and _command(args).strip() != "serve":
            keep_freed_memory()
        cli.main(args=args, prog_name="tripletnet", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.UsageError as error:
        click.echo(
            f"error: {error.format_message()} (see 'tripletnet {_command(argv)}--help')", err=True
        )
        return 2
    except TripletnetError as error:
        click.echo(f"error: {error}", err=True)
        return 2
    except OSError as error:  # a path the user gave that cannot be read or written
        where = f"{error.filename}: " if error.filename else ""
        click.echo(f"error: {where}{error.strerror or error}", err=True)
        return 2
    return 0


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return f"{args[0]} " if args and args[0] in COMMANDS else ""
