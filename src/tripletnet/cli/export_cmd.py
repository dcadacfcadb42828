"""``tripletnet export RUN_DIR --format onnx|torchscript --out FILE``: the embedding net in one file."""

from __future__ import annotations

from pathlib import Path

import click

from ..search.onnx_embedder import DEFAULT_OPSET, FORMATS, MAX_OPSET, MIN_OPSET
from .options import out_option
from .trust import trust_option


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default="onnx",
    show_default=True,
    help="onnx (for onnxruntime and 'tripletnet serve --onnx') or torchscript (torch.jit.load).",
)
@out_option("The file to write (.onnx or .pt).", required=True)
@click.option(
    "--opset",
    type=click.IntRange(MIN_OPSET, MAX_OPSET),
    help=f"ONNX opset version [default: {DEFAULT_OPSET}].",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@trust_option
def export_command(
    run_dir: Path, file_format: str, out: Path, opset: int | None, overwrite: bool
) -> None:
    """Write the embedding net to one ONNX or TorchScript file.

    RUN_DIR's net, with its input normalisation (and L2 normalisation for a cosine run) inside:
    the file takes raw float32 samples with any batch size."""
    from ..export import export_run

    result = export_run(run_dir, out, file_format, opset, overwrite)
    info = result.info
    shape = ", ".join(map(str, info.input_shape))
    what = f"{file_format}, opset {result.opset}" if result.opset is not None else file_format
    if result.exporter is not None:
        what += f", {result.exporter} exporter"
    click.echo(
        f"wrote {out} ({what}): {info.architecture} from run {info.run}, float32 raw samples "
        f"(N, {shape}) -> (N, {info.embedding_dim}) {info.metric} embeddings"
    )
    if result.max_abs_difference is None:
        click.echo("not checked against torch: onnxruntime is not installed")
    else:
        batches = " and ".join(map(str, result.checked_batches))
        click.echo(
            f"checked against torch on batches of {batches}: "
            f"max abs difference {result.max_abs_difference:.2g}"
        )
