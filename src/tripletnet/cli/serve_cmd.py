"""``tripletnet serve RUN_DIR --index INDEX_DIR``: the HTTP search service and its web page.

``tripletnet serve --onnx FILE --index INDEX_DIR`` serves a file written by ``tripletnet export``
with onnxruntime instead of the run's torch model.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import TripletnetError

_folder = click.Path(file_okay=False, path_type=Path)


@click.command("serve")
@click.argument("run_dir", required=False, type=_folder)
@click.option(
    "--onnx",
    "onnx_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve this ONNX export of the run (tripletnet export) with onnxruntime, not RUN_DIR.",
)
@click.option("--index", "index_dir", required=True, type=_folder, help="Index folder to serve.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Refuse request bodies larger than this (413).",
)
@click.option(
    "--max-k", type=click.IntRange(min=1), default=1000, show_default=True, help="Largest k."
)
def serve_command(
    run_dir: Path | None,
    onnx_file: Path | None,
    index_dir: Path,
    host: str,
    port: int,
    max_upload_mb: float,
    max_k: int,
) -> None:
    """Serve RUN_DIR's model (or an ONNX export, --onnx) and INDEX_DIR's items over HTTP (page
    at /, API docs at /docs)."""
    if (run_dir is None) == (onnx_file is None):
        raise click.UsageError("give exactly one of RUN_DIR or --onnx FILE")
    try:
        import uvicorn

        from ..service import create_app
    except ImportError as error:
        raise TripletnetError(
            f"the service needs the 'serve' extra ({error.name} is missing): "
            "pip install 'tripletnet[serve]'"
        ) from error
    app = create_app(run_dir, index_dir, int(max_upload_mb * 1024 * 1024), max_k, onnx=onnx_file)
    click.echo(f"serving {index_dir} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
