"""--backend, --uri and --token-file: which engine holds an index (search/engines/).

``faiss`` (the default): INDEX_DIR (or --out) is a folder. ``milvus``: it is a collection's name
in the Milvus at --uri (a Milvus Lite file NAME.db, run in this process, or http://HOST:19530),
whose token is the first line of --token-file (or the MILVUS_TOKEN variable).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..search.engines import Target

F = TypeVar("F", bound=Callable[..., Any])


def engine_options(token_flag: str = "--token-file") -> Callable[[F], F]:
    """The options, as one decorator (``token_flag``: the token option's name, for ``serve``,
    whose --token-file is its own service's)."""

    def decorate(command: F) -> F:
        command = click.option(
            token_flag,
            "milvus_token_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="--backend milvus: a file holding the server's token (or set MILVUS_TOKEN).",
        )(command)
        command = click.option(
            "--uri",
            help="--backend milvus: a Milvus Lite file (NAME.db) or a server (http://HOST:19530).",
        )(command)
        return click.option(
            "--backend",
            type=click.Choice(["faiss", "milvus"]),
            default="faiss",
            show_default=True,
            help="The engine: faiss (an index folder) or milvus (a collection; docs/scaling.md).",
        )(command)

    return decorate


def target(location: str | Path, backend: str, uri: str | None, token_file: Path | None) -> Target:
    """Where the options say the index is."""
    from ..search.engines import Target

    return Target.from_options(location, backend, uri, token_file)
