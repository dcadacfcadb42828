"""``tripletnet search INDEX_DIR``: print the nearest neighbours of an image or a vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..files import load_numeric_npy
from .engine_options import engine_options
from .trust import trust_option

if TYPE_CHECKING:
    from ..search.engines import IndexState, Target
    from ..search.index import Hit

_file = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.command("search")
@click.argument("index_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--image", type=_file, help="Query image, embedded with the index's model.")
@click.option("--vector", type=_file, help="Query embedding (.npy of shape (D,) or (N, D)).")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder of the model (default: the one that built the index).",
)
@click.option("-k", "--k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option(
    "--label", "labels", type=click.IntRange(0), multiple=True, help="Only items with this label."
)
@click.option(
    "--where",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only items whose metadata FIELD is VALUE (JSON, else text; repeat for more fields).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (the query and, per query, its results) instead of a table.",
)
@engine_options("index_dir")
@trust_option
def search_command(
    index_dir: Path,
    image: Path | None,
    vector: Path | None,
    run_dir: Path | None,
    k: int,
    labels: tuple[int, ...],
    where: tuple[str, ...],
    as_json: bool,
    engine: Target,
) -> None:
    """Print the K nearest items of an index to a query.

    With their distances, labels and sources: a table, or JSON for scripts (--json)."""
    import numpy as np

    from ..errors import TripletnetError
    from ..search import Embedder
    from ..search.engines import open_live
    from ..search.filters import Filter
    from ..search.images import read_image

    if (image is None) == (vector is None):
        raise click.UsageError("give exactly one of --image or --vector")
    fields = _where(where)
    chosen = Filter.build(labels or None, fields)
    index = open_live(engine).current()
    if image is not None:
        if run_dir is None:
            if index.model is None or index.model.run_dir is None:
                raise TripletnetError(f"{index_dir} does not say which run made it; pass --run")
            run_dir = Path(index.model.run_dir)
        embedder = Embedder.from_run(run_dir)
        index.check_model(embedder.ref)
        queries = embedder.embed_images([read_image(image)])
    else:
        assert vector is not None
        queries = np.atleast_2d(load_numeric_npy(vector, "query vectors"))
        if not queries.size:
            raise TripletnetError(f"{vector} holds no query vectors (shape {queries.shape})")
    found = index.search(queries, k, chosen)
    if as_json:
        query = {"image": str(image)} if image is not None else {"vector": str(vector)}
        click.echo(json.dumps({
            "index": str(index_dir),
            "query": {**query, "k": k, "labels": list(labels) or None, "where": fields},
            "results": [[_hit(index, rank, hit) for rank, hit in enumerate(hits, 1)]
                        for hits in found],
        }, indent=2))  # fmt: skip
        return
    for number, hits in enumerate(found):
        if len(queries) > 1:
            click.echo(f"query {number}")
        click.echo(f"{'rank':>4}  {'id':>8}  {'distance':>9}  {'label':<10}  source")
        for rank, hit in enumerate(hits, 1):
            label = index.label_name(hit.item.label) or "-"
            click.echo(
                f"{rank:>4}  {hit.item.id:>8}  {hit.distance:>9.4f}  {label:<10}  {hit.item.source or '-'}"
            )


def _hit(index: IndexState, rank: int, hit: Hit) -> dict[str, Any]:
    """One result of --json."""
    item = hit.item
    return {
        "rank": rank,
        "id": item.id,
        "distance": float(hit.distance),
        "label": item.label,
        "label_name": index.label_name(item.label),
        "metadata": item.metadata or {},
        "source": item.source,
    }


def _where(pairs: tuple[str, ...]) -> dict[str, object] | None:
    """--where FIELD=VALUE pairs as a filter's fields (a VALUE that is not JSON is text)."""
    fields: dict[str, object] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"expected FIELD=VALUE, got {pair!r}", param_hint="--where")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        fields[name] = value
    return fields or None
