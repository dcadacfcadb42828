"""``tripletnet serve RUN_DIR --index INDEX_DIR``: the HTTP search service and its web page.

``tripletnet serve --onnx FILE --index INDEX_DIR`` serves a file written by ``tripletnet export``
with onnxruntime instead of the run's torch model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import TripletnetError
from .engine_options import engine_options
from .trust import trust_option

if TYPE_CHECKING:
    from ..search.engines import Target

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
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File holding the bearer token that writes need (or set TRIPLETNET_TOKEN).",
)
@click.option("--protect-reads", is_flag=True, help="Searches and embeddings need the token too.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without a token (anyone may write).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the index folder.",
)
@click.option(
    "--mmap", is_flag=True, help="Map the index from disk, read-only (larger than memory)."
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (Host header), e.g. a reverse proxy's public "
    "name; repeatable. Without it: the --host address's own names only (docs/search.md).",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@engine_options("index_dir", "--milvus-token-file")
@trust_option
def serve_command(
    run_dir: Path | None,
    onnx_file: Path | None,
    index_dir: Path,
    host: str,
    port: int,
    max_upload_mb: float,
    max_k: int,
    token_file: Path | None,
    protect_reads: bool,
    insecure: bool,
    workers: int,
    mmap: bool,
    allowed_hosts: tuple[str, ...],
    access_log: bool,
    engine: Target,
) -> None:
    """Serve a model and an index over HTTP (page and API).

    RUN_DIR's model (or an ONNX export, --onnx) and INDEX_DIR's items: the page at /, API docs
    at /docs. Writes need a token when one is given (--token-file)."""
    if (run_dir is None) == (onnx_file is None):
        raise click.UsageError("give exactly one of RUN_DIR or --onnx FILE")
    try:
        import uvicorn

        from ..service import create_app
        from ..service.auth import Access, check_exposure, load_token, token_file_warning
        from ..service.observe import configure_logging
    except ImportError as error:
        raise TripletnetError(
            f"the service needs the 'serve' extra ({error.name} is missing): "
            "pip install 'tripletnet[serve]'"
        ) from error
    token = load_token(token_file)
    shared_token = None if token_file is None else token_file_warning(token_file)
    if shared_token:
        click.echo(shared_token, err=True)
    check_exposure(host, token, insecure, protect_reads)
    if engine.milvus and workers > 1:
        raise TripletnetError("--workers: the milvus engine serves from one process (--workers 1)")
    settings: dict[str, Any] = {
        "run_dir": None if run_dir is None else str(run_dir),
        "index_dir": str(index_dir),
        "max_upload_bytes": int(max_upload_mb * 1024 * 1024),
        "max_k": max_k,
        "onnx": None if onnx_file is None else str(onnx_file),
        "mmap": mmap,
        "host": host,
        "allowed_hosts": list(allowed_hosts),
        **engine.settings(),
    }
    # load once here, so a bad model or index is one error line before any worker starts
    app = create_app(**settings, access=Access(token, protect_reads), milvus_token=engine.token)
    configure_logging(access_log)
    click.echo(f"serving {index_dir} on http://{host}:{port}/ (API docs at /docs)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    _run_workers(
        {**settings, "access_log": access_log}, token_file, protect_reads, host, port, workers
    )


def _run_workers(
    settings: dict[str, Any],
    token_file: Path | None,
    protect_reads: bool,
    host: str,
    port: int,
    workers: int,
) -> None:
    """Worker processes, each building the app from the environment and listening on its own
    socket (service/workers.py; uvicorn's workers where the system lacks SO_REUSEPORT); their
    metrics are pooled in a temporary folder (prometheus-client's multiprocess mode)."""
    import tempfile

    import uvicorn

    from ..service import workers as own_workers
    from ..service.app import SETTINGS_VARIABLE
    from ..service.observe import MULTIPROCESS

    token_path = None if token_file is None else str(token_file.resolve())
    shared = {**settings, "token_file": token_path, "protect_reads": protect_reads}
    before = {name: os.environ.get(name) for name in (SETTINGS_VARIABLE, MULTIPROCESS)}
    try:
        with tempfile.TemporaryDirectory(prefix="tripletnet-metrics-") as metrics_dir:
            os.environ[SETTINGS_VARIABLE] = json.dumps(shared)
            os.environ[MULTIPROCESS] = metrics_dir
            factory = "tripletnet.service.app:app_from_environment"
            if own_workers.spread_by_kernel():
                own_workers.serve(factory, host, port, workers)
                return
            uvicorn.run(
                factory,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
            )
    finally:  # the workers are gone, and so is the metrics folder: no process may inherit it
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
