"""The ``tripletnet`` command. Thin: it parses options and calls the library.

Every command lives in its own module; bad input ends in one line ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, NamedTuple

import click

from ..errors import TripletnetError
from .memory import keep_freed_memory

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


class Entry(NamedTuple):
    """Where a command lives (``module:object`` in this package) and its one-line summary, the
    first line of its help (tests/test_cli.py checks that they agree)."""

    where: str
    summary: str


# name -> each command's module and object, imported only when it runs (or its own --help is
# asked for), so that e.g. `tripletnet serve --onnx` never imports torch; `tripletnet --help` and
# shell completion list the summaries without importing any command
COMMANDS = {
    "train": Entry("train_cmd:train_command", "Train an embedding net, evaluate it, write a run folder."),
    "evaluate": Entry("evaluate_cmd:evaluate_command", "Evaluate a trained run, or your own embeddings."),
    "embed": Entry("embed_cmd:embed_command", "Write embeddings of a split (or your own array) to a .npy."),
    "compare": Entry("compare_cmd:compare_command", "Is evaluation A better than B on the same queries?"),
    "verify": Entry("verify_cmd:verify_command", "Decide for pairs of samples whether they share a class."),
    "index": Entry("index_cmd:index_command", "Build and maintain a similarity-search index."),
    "search": Entry("search_cmd:search_command", "Print the K nearest items of an index to a query."),
    "serve": Entry("serve_cmd:serve_command", "Serve a model and an index over HTTP (page and API)."),
    "export": Entry("export_cmd:export_command", "Write the embedding net to one ONNX or TorchScript file."),
    "pretrain": Entry("train_cmd:pretrain_command", "Learn an embedding net without labels (spatial contrasting)."),
    "robustness": Entry("robustness_cmd:robustness_command", "Measure a run under corruptions, perturbations and attacks."),
}  # fmt: skip


class LazyGroup(click.Group):
    """A click group whose commands are imported from COMMANDS when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].where.split(":")
        command: click.Command = getattr(importlib.import_module(f".{module}", __name__), name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, from COMMANDS (no command is imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry.summary) for name, entry in COMMANDS.items()])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The command names (with their summaries) and the group's options, from COMMANDS."""
        from click.shell_completion import CompletionItem

        names = [
            CompletionItem(name, help=entry.summary)
            for name, entry in COMMANDS.items()
            if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)


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
        if argv is None:
            sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except BrokenPipeError:  # `tripletnet search ... | head`: the reader has what it wanted
        _stop_writing_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a writer killed by a closed pipe
    except SystemExit:  # click's own answer to a closed pipe inside a command (exit 1)
        if not type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):  # (_Pacify... in 8.3+)
            raise
        _stop_writing_stdout()
        return 141
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.UsageError as error:
        if _no_arguments(error):  # `tripletnet` (or `tripletnet index`) alone: the help
            click.echo(error.format_message())
            return 0
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


def _no_arguments(error: click.UsageError) -> bool:
    """Whether click refused a group called without a command (click 8.2 and later; 8.1 printed
    the help and exited 0), whose message is the group's help."""
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
    return no_args is not None and isinstance(error, no_args)


def _stop_writing_stdout() -> None:
    """Point stdout at the null device, so that nothing (the interpreter's last flush of what
    is still buffered included) writes into the closed pipe again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # stdout is no file (a test's capture): nothing to silence
        pass


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return f"{args[0]} " if args and args[0] in COMMANDS else ""
