"""The ``tripletnet`` command. Thin: it parses options and calls the library.

Every command lives in its own module; bad input ends in one line ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import sys

import click

from ..errors import TripletnetError
from .compare_cmd import compare_command
from .embed_cmd import embed_command
from .evaluate_cmd import evaluate_command
from .index_cmd import index_command
from .search_cmd import search_command
from .serve_cmd import serve_command
from .train_cmd import pretrain_command, train_command
from .verify_cmd import verify_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tripletnet")
def cli() -> None:
    """Deep metric learning with the Triplet network (Hoffer & Ailon 2015) and its relatives."""


cli.add_command(train_command)
cli.add_command(evaluate_command)
cli.add_command(embed_command)
cli.add_command(compare_command)
cli.add_command(verify_command)
cli.add_command(index_command)
cli.add_command(search_command)
cli.add_command(serve_command)
cli.add_command(pretrain_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; print user errors as one line and return 2."""
    try:
        args = sys.argv[1:] if argv is None else argv
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
    return f"{args[0]} " if args and args[0] in cli.commands else ""
