"""``tripletnet search INDEX_DIR``: print the nearest neighbours of an image or a vector."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..files import load_numeric_npy

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
def search_command(
    index_dir: Path,
    image: Path | None,
    vector: Path | None,
    run_dir: Path | None,
    k: int,
    labels: tuple[int, ...],
    where: tuple[str, ...],
) -> None:
    """Print the K nearest items to a query with their distances and labels."""
    from ..errors import TripletnetError
    from ..search import Embedder, SearchIndex
    from ..search.filters import Filter
    from ..search.images import read_image

    if (image is None) == (vector is None):
        raise click.UsageError("give exactly one of --image or --vector")
    chosen = Filter.build(labels or None, _where(where))
    index = SearchIndex.load(index_dir)
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
    for number, hits in enumerate(index.search(queries, k, chosen)):
        if len(queries) > 1:
            click.echo(f"query {number}")
        click.echo(f"{'rank':>4}  {'id':>8}  {'distance':>9}  {'label':<10}  source")
        for rank, hit in enumerate(hits, 1):
            label = index.label_name(hit.item.label) or "-"
            click.echo(
                f"{rank:>4}  {hit.item.id:>8}  {hit.distance:>9.4f}  {label:<10}  {hit.item.source or '-'}"
            )


def _where(pairs: tuple[str, ...]) -> dict[str, object] | None:
    """--where FIELD=VALUE pairs as a filter's fields (a VALUE that is not JSON is text)."""
    import json

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
