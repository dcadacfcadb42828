"""Export a run's embedding net to ONNX or TorchScript, for serving without tripletnet (or torch).

The file holds :class:`ExportedNet`: ``(x - mean) / std`` (the run's normaliser) as its first op,
then the trained net, which for a cosine run ends in L2 normalisation. It takes float32 raw
samples (N, *input_shape), as the dataset gives them (pixels 0..255, 0..16 for the 8x8 digits),
with a dynamic batch dimension, and returns (N, embedding_dim) float32 embeddings. The run's
ModelSpec and model fingerprint go into the file's metadata (``search.onnx_embedder``).

ONNX uses torch's current, torch.export-based exporter (``dynamo=True``; torch 2.5 or newer with
onnxscript, opset DYNAMO_MIN_OPSET or newer), and the older TorchScript-based one (deprecated
in torch, needs only onnx) for older opsets, without onnxscript, or for a net the current one
cannot export; the file is checked with ``onnx.checker``. TorchScript is ``torch.jit.trace``.
Before anything is written, the file's outputs are compared with torch's on batches of 1 and 3
(onnxruntime for ONNX, where installed), which catches nets whose trace depends on the batch
size. The exporters' printed output is silenced; their Python warnings are not.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from .errors import TripletnetError
from .files import write_atomic
from .models import L2Normalize, is_normalized
from .runs import ModelSpec, TrainedRun
from .search.embedder import PREPROCESSING, Embedder
from .search.onnx_embedder import (
    DEFAULT_OPSET,
    FORMATS,
    INPUT_NAME,
    MAX_OPSET,
    MIN_OPSET,
    OUTPUT_NAME,
    TORCHSCRIPT_EXTRA,
    ExportedFileError,
    ExportInfo,
    read_export_info,
)

CHECK_BATCHES = (1, 3)  # batch sizes compared with torch (the trace uses 2)
DYNAMO = "torch.export"  # torch's current ONNX exporter (torch.onnx.export(..., dynamo=True))
TORCHSCRIPT = "torchscript"  # its older, TorchScript-based one (dynamo=False), deprecated in torch
DYNAMO_MIN_OPSET = 18  # the oldest it writes (its conversion down fails here, leaving 18)
ONNX_HINT = "try another --opset, or --format torchscript"
TRACE_HINT = "the net's forward must be traceable by torch.jit.trace (tensors in, a tensor out)"
TOLERANCE = 1e-3  # relative to the embeddings' scale: a sanity check, not a precision claim


class ExportError(TripletnetError, ValueError):
    """A run that cannot be exported, or an output path that would be clobbered."""


class ExportedNet(nn.Module):
    """Raw samples in, embeddings out: ``net((x - mean) / std)`` [then L2 normalisation]."""

    def __init__(self, net: nn.Module, mean: float, std: float, normalize: bool = False) -> None:
        super().__init__()
        self.net = net
        self.mean = float(mean)
        self.std = float(std)
        self.l2 = L2Normalize() if normalize else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embeddings = self.net((x - self.mean) / self.std)
        return embeddings if self.l2 is None else self.l2(embeddings)


def exported_net(run: TrainedRun) -> ExportedNet:
    """The run's net with its input normalisation inside (and L2 normalisation for a cosine run,
    added only if the net does not already end with it), in eval mode on the CPU."""
    net = run.model.cpu().eval()
    normalize = run.spec.metric == "cosine" and not is_normalized(net)
    normalizer = run.spec.normalizer
    return ExportedNet(net, normalizer.mean, normalizer.std, normalize).eval()


@dataclass(frozen=True)
class ExportResult:
    """What ``export_run`` wrote: the file, its format (and ONNX opset), its metadata, the
    largest absolute difference from torch's embeddings on ``checked_batches`` (None: not
    checked, because onnxruntime is not installed), and which of torch's ONNX exporters wrote
    it (DYNAMO or TORCHSCRIPT; None for a TorchScript file)."""

    path: Path
    format: str
    info: ExportInfo
    opset: int | None
    max_abs_difference: float | None
    checked_batches: tuple[int, ...]
    exporter: str | None = None


def export_run(
    run_dir: str | Path,
    out: str | Path,
    format: str = "onnx",
    opset: int | None = None,
    overwrite: bool = False,
    trust_model_code: bool | None = None,
) -> ExportResult:
    """Export the trained net of ``run_dir`` to ``out`` (written atomically; an existing file
    only with ``overwrite``) as ``format`` "onnx" (``opset`` MIN_OPSET..MAX_OPSET, default
    DEFAULT_OPSET) or "torchscript" (``trust_model_code``: as for ``load_run``)."""
    out = Path(out)
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if opset is not None and format != "onnx":
        raise ExportError("--opset applies to --format onnx only")
    opset = DEFAULT_OPSET if opset is None else opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset must be from {MIN_OPSET} to {MAX_OPSET}, got {opset}")
    _check_out(out, overwrite)
    embedder = Embedder.from_run(run_dir, trust_model_code=trust_model_code)
    run = embedder.run
    info = ExportInfo(
        spec=run.spec.to_dict(),
        fingerprint=embedder.ref.fingerprint,
        run=embedder.run_name,
        preprocessing=PREPROCESSING,
        version=__version__,
    )
    net = exported_net(run)
    exporter: str | None = None
    if format == "onnx":
        data, difference, exporter = _onnx_bytes(net, run.spec, opset, info)
    else:
        data, difference = _torchscript_bytes(net, run.spec, info)
    write_atomic(out, lambda tmp: tmp.write_bytes(data))
    checked = CHECK_BATCHES if difference is not None else ()
    used = opset if format == "onnx" else None
    return ExportResult(out, format, info, used, difference, checked, exporter)


def onnx_exporters(opset: int) -> tuple[str, ...]:
    """torch's ONNX exporters that can write ``opset``, in the order tried: DYNAMO where
    torch has it (torch.onnx.export's ``dynamo`` argument, torch 2.5 or newer), onnxscript is
    installed and ``opset`` is DYNAMO_MIN_OPSET or newer; TORCHSCRIPT always."""
    current = (
        opset >= DYNAMO_MIN_OPSET
        and "dynamo" in inspect.signature(torch.onnx.export).parameters
        and importlib.util.find_spec("onnxscript") is not None
    )
    return (DYNAMO, TORCHSCRIPT) if current else (TORCHSCRIPT,)


def read_exported_spec(path: str | Path) -> ModelSpec:
    """The ModelSpec of the run an exported ONNX or TorchScript file came from (its metadata;
    nothing is run or unpickled)."""
    return ModelSpec.from_dict(read_export_info(path).spec, f"the spec in {path}")


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give the path of the file to write")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it")


def example_samples(spec: ModelSpec, count: int, seed: int = 0) -> np.ndarray:
    """``count`` random raw samples in the range of the run's training data (float32)."""
    normalizer = spec.normalizer
    if normalizer.low is not None and normalizer.high is not None:
        low, high = normalizer.low, normalizer.high
    elif spec.pixel_top is not None:
        low, high = 0.0, spec.pixel_top
    else:
        low, high = normalizer.mean - 2 * normalizer.std, normalizer.mean + 2 * normalizer.std
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (count, *spec.input_shape)).astype(np.float32)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence what the exporters print to file descriptors 1 and 2: the current exporter's
    progress and log lines, the graph dump the TorchScript-based one's C++ code prints when it
    fails (the error says what failed). Their Python warnings are not silenced: recorded
    meanwhile (the filters in force still apply, ``-W error`` included), they are issued again
    afterwards. Not for use beside other threads that write to those descriptors."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded, tempfile.TemporaryFile() as sink:
            caught = recorded
            try:
                for fd in (1, 2):
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
            except OSError:  # no such descriptor (e.g. a daemon): nothing to silence there
                pass
            try:
                yield
            finally:
                for fd, copy in saved:
                    os.dup2(copy, fd)
                    os.close(copy)
    finally:  # also when the export failed: its warnings may say why
        for warning in caught:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _reason(error: BaseException) -> str:
    """An exception's message in one short line (TorchScript's: its last line, which says what
    failed; onnxruntime's: without its error-code prefix; the current ONNX exporter's: its
    innermost cause's, which names the operator it lacks)."""
    if type(error).__module__.startswith("torch.onnx._internal.exporter"):
        while error.__cause__ is not None:
            error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]
    line = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", line)
    node = re.match(
        r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)'", line
    )
    if node and "was false. " in line:  # the failed check's own words, after its C++ location
        line = f"its {node[1]} node {node[2]!r}: {line.split('was false. ', 1)[1]}"
    return line if len(line) <= 240 else line[:237] + "..."


def _cannot(what: str, spec: ModelSpec, error: BaseException, hint: str) -> ExportError:
    return ExportError(
        f"cannot {what} the {spec.architecture!r} net: {_reason(error)} "
        f"({type(error).__name__}); {hint}"
    )


@torch.no_grad()
def _reference(net: nn.Module, samples: np.ndarray) -> np.ndarray:
    return net(torch.from_numpy(samples)).float().numpy()


def _compare(net: nn.Module, spec: ModelSpec, run: Any, what: str) -> float:
    """Run the exported model (``run(samples) -> embeddings``) on CHECK_BATCHES random batches;
    the largest absolute difference from torch, or an error if they disagree."""
    worst = 0.0
    for count in CHECK_BATCHES:
        samples = example_samples(spec, count, seed=count)
        expected = _reference(net, samples)
        try:
            got = np.asarray(run(samples))
        except Exception as error:  # onnxruntime's and TorchScript's errors: Exception only
            raise ExportError(
                f"the exported {what} fails on a batch of {count}: {_reason(error)}; the "
                f"{spec.architecture!r} net's forward depends on the batch size (e.g. a fixed "
                "size in a reshape), which a trace cannot record"
            ) from None
        if got.shape != expected.shape:
            raise ExportError(
                f"the exported {what} returns {got.shape} for a batch of {count}, torch "
                f"{expected.shape}: the {spec.architecture!r} net's trace depends on the batch size"
            )
        difference = float(np.abs(got - expected).max()) if got.size else 0.0
        if not difference <= TOLERANCE * max(1.0, float(np.abs(expected).max())):
            raise ExportError(
                f"the exported {what} disagrees with torch on a batch of {count} (max abs "
                f"difference {difference:.3g}): the {spec.architecture!r} net does something a "
                "trace cannot record (batch-dependent shapes, Python control flow on values)"
            )
        worst = max(worst, difference)
    return worst


def _onnx_model(net: ExportedNet, example: torch.Tensor, opset: int, exporter: str) -> Any:
    """The net as an onnx.ModelProto, exported by ``exporter`` (DYNAMO or TORCHSCRIPT) with a
    dynamic batch dimension."""
    import onnx

    names: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with _quiet():
        if exporter == DYNAMO:
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
                **names,
            )
            assert program is not None  # no file given: the ONNXProgram
            return program.model_proto
        with tempfile.TemporaryDirectory(prefix="tripletnet-export-") as folder:
            written = Path(folder) / "model.onnx"
            torch.onnx.export(
                net,
                (example,),
                written,
                dynamo=False,
                export_params=True,
                opset_version=opset,
                do_constant_folding=True,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                **names,
            )
            return onnx.load_model(str(written))


def _onnx_bytes(
    net: ExportedNet, spec: ModelSpec, opset: int, info: ExportInfo
) -> tuple[bytes, float | None, str]:
    """The ONNX file's bytes (checked by onnx.checker), the difference from torch, and the
    exporter that wrote it: the first of ``onnx_exporters(opset)`` that can export the net."""
    try:
        import onnx
    except ModuleNotFoundError as error:
        raise TripletnetError(
            "exporting to ONNX needs the onnx package: pip install 'tripletnet[onnx]'"
        ) from error
    example = torch.from_numpy(example_samples(spec, 2))
    failed: list[str] = []
    for exporter in onnx_exporters(opset):
        try:
            model = _onnx_model(net, example, opset, exporter)
            break
        except Exception as error:  # the exporters raise many kinds; say which and why
            failed.append(f"{_reason(error)} ({type(error).__name__})")
            if exporter == TORCHSCRIPT:
                if len(failed) > 1:  # both: say what each said
                    failed = [f"{DYNAMO} exporter: {failed[0]}", f"{TORCHSCRIPT} one: {failed[1]}"]
                raise ExportError(
                    f"cannot export to ONNX (opset {opset}) the {spec.architecture!r} net: "
                    f"{'; '.join(failed)}; {ONNX_HINT}"
                ) from None
    onnx.helper.set_model_props(model, info.metadata())
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == 2 and not dims[1].dim_value:  # L2 normalisation's Expand hides the width
        dims[1].Clear()
        dims[1].dim_value = spec.embedding_dim
    model.doc_string = (
        f"tripletnet embedding net {spec.architecture!r} from run {info.run!r}: float32 raw "
        f"samples (N, {', '.join(map(str, spec.input_shape))}) -> (N, {spec.embedding_dim}) "
        f"{spec.metric} embeddings"
    )
    try:
        onnx.checker.check_model(model, full_check=True)
        data = model.SerializeToString()
    except (onnx.checker.ValidationError, ValueError) as error:
        raise _cannot("export to a valid ONNX file", spec, error, ONNX_HINT) from None
    try:
        import onnxruntime
    except ModuleNotFoundError:
        return data, None, exporter
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # a failing batch is reported below, not logged
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime's errors derive from Exception only
        raise _cannot("run the ONNX export of", spec, error, ONNX_HINT) from None
    difference = _compare(net, spec, lambda x: session.run(None, {INPUT_NAME: x})[0], "ONNX model")
    return data, difference, exporter


def _torchscript_bytes(net: ExportedNet, spec: ModelSpec, info: ExportInfo) -> tuple[bytes, float]:
    """The TorchScript archive's bytes (metadata in the extra file TORCHSCRIPT_EXTRA), loaded
    back and compared with torch."""
    example = torch.from_numpy(example_samples(spec, 2))
    try:
        buffer = io.BytesIO()
        extra = {TORCHSCRIPT_EXTRA: json.dumps(info.metadata(), sort_keys=True)}
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(net, example, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files=extra)
    except Exception as error:  # tracing raises many kinds; say which and why
        raise _cannot("trace (TorchScript)", spec, error, TRACE_HINT) from None
    data = buffer.getvalue()
    with _quiet():
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    @torch.no_grad()
    def run(samples: np.ndarray) -> np.ndarray:
        return loaded(torch.from_numpy(samples)).float().numpy()

    return data, _compare(net, spec, run, "TorchScript module")


__all__ = [
    "CHECK_BATCHES",
    "DEFAULT_OPSET",
    "DYNAMO",
    "DYNAMO_MIN_OPSET",
    "FORMATS",
    "MAX_OPSET",
    "MIN_OPSET",
    "TORCHSCRIPT",
    "ExportError",
    "ExportResult",
    "ExportedFileError",
    "ExportedNet",
    "example_samples",
    "export_run",
    "exported_net",
    "onnx_exporters",
    "read_export_info",
    "read_exported_spec",
]
