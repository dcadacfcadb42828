"""--backend, --uri and --token-file: which engine holds an index (search/engines/).

``faiss`` (the default): INDEX_DIR (or --out) is a folder. ``milvus``: it is a collection's name
in the Milvus at --uri (a Milvus Lite file NAME.db, run in this process, or http://HOST:19530),
whose token is the first line of --token-file (or the MILVUS_TOKEN variable).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def engine_options(
    location: str, token_flag: str = "--token-file", opened: bool = False
) -> Callable[[F], F]:
    """The options, as one decorator: the command gets ``engine``, the :class:`Target` they
    name with its ``location`` argument (the index folder or collection), instead of the three
    values; with ``opened``, ``live`` instead, the live index there (``open_live``), in place
    of the location too (``token_flag``: the token option's name, for ``serve``, whose
    --token-file is its own service's)."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def with_engine(
            *args: Any, backend: str, uri: str | None, milvus_token_file: Path | None, **kwargs: Any
        ) -> Any:
            from ..search.engines import Target, open_live

            engine = Target.from_options(kwargs[location], backend, uri, milvus_token_file)
            if opened:
                del kwargs[location]
                kwargs["live"] = open_live(engine)
            else:
                kwargs["engine"] = engine
            return command(*args, **kwargs)

        decorated: Any = click.option(
            token_flag,
            "milvus_token_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="--backend milvus: a file holding the server's token (or set MILVUS_TOKEN).",
        )(with_engine)
        decorated = click.option(
            "--uri",
            help="--backend milvus: a Milvus Lite file (NAME.db) or a server (http://HOST:19530).",
        )(decorated)
        return click.option(
            "--backend",
            type=click.Choice(["faiss", "milvus"]),
            default="faiss",
            show_default=True,
            help="The engine: faiss (an index folder) or milvus (a collection; docs/milvus.md).",
        )(decorated)

    return decorate
