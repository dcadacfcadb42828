"""Exported models put to work without torch: an ONNX file run by onnxruntime, and the tripletnet
metadata that ``tripletnet export`` writes into ONNX and TorchScript files.

An exported file takes raw float32 samples (N, *input_shape), exactly as the dataset gives them
(pixels 0..255, or 0..16 for the 8x8 digits), and returns (N, embedding_dim) float32 embeddings:
the run's input normalisation is its first op and, for a cosine run, L2 normalisation its last.
Its metadata (ONNX ``metadata_props``; TorchScript: the extra file ``tripletnet.json``, one JSON
object with the same keys) says what it is:

    tripletnet.format         "1", the version of this layout
    tripletnet.spec           the run's ModelSpec as JSON (``ModelSpec.to_dict()``)
    tripletnet.fingerprint    the run's model fingerprint (``search.embedder.fingerprint``)
    tripletnet.preprocessing  the image conversion rules the fingerprint covers
    tripletnet.run            the name of the run folder it was exported from
    tripletnet.version        the tripletnet version that exported it

:class:`OnnxEmbedder` has the fingerprint of the run it was exported from, so an index built
with the run serves queries embedded by the file (and refuses another run's file). Nothing here
imports torch; ``onnxruntime`` (the ``onnx`` extra) is imported when a file is loaded.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TripletnetError
from ..metric_names import METRICS
from .embedder import PREPROCESSING, ImageQueries
from .images import RawFormat
from .index import ModelRef

FORMAT_VERSION = "1"
FORMATS = ("onnx", "torchscript")
MIN_OPSET = 9  # below 9 torch's exporter lacks ops every net here uses (Expand, adaptive pooling)
MAX_OPSET = 20  # the newest opset torch's TorchScript-based exporter writes
DEFAULT_OPSET = 18  # the oldest opset torch's current (torch.export-based) exporter writes
KEY = "tripletnet."
TORCHSCRIPT_EXTRA = "tripletnet.json"  # the TorchScript archive's extra file with the metadata
INPUT_NAME = "samples"
OUTPUT_NAME = "embeddings"
BATCH = 256  # samples per onnxruntime call
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EXPORT_HINT = "export the run again with 'tripletnet export RUN_DIR --format onnx --out FILE'"


class ExportedFileError(TripletnetError, ValueError):
    """An exported model file that is missing, unreadable, or not one tripletnet wrote."""


@dataclass(frozen=True)
class ExportInfo:
    """The tripletnet metadata of an exported file: the run's spec (as ``ModelSpec.to_dict()``),
    its model fingerprint, the preprocessing version and the run folder's name."""

    spec: dict[str, Any]
    fingerprint: str
    run: str
    preprocessing: str = PREPROCESSING
    version: str = ""
    format_version: str = FORMAT_VERSION
    input_shape: tuple[int, ...] = field(init=False)
    embedding_dim: int = field(init=False)
    metric: str = field(init=False)
    architecture: str = field(init=False)
    pixel_top: float | None = field(init=False)

    def __post_init__(self) -> None:
        spec = self.spec
        try:
            shape = tuple(int(size) for size in spec["input_shape"])
            dim = int(spec["embedding_dim"])
            metric = str(spec.get("metric", "euclidean"))
            architecture = str(spec["architecture"])
            top = spec.get("pixel_top", 255.0)
            pixel_top = None if top is None else float(top)
        except (KeyError, TypeError, ValueError) as error:
            raise ExportedFileError(f"the spec is incomplete ({error!r})") from None
        if not shape or min(shape) < 1 or dim < 1:
            raise ExportedFileError(
                f"the spec has input shape {list(shape)} and embedding dim {dim}; both must be positive"
            )
        if metric not in METRICS:
            raise ExportedFileError(f"the spec's metric {metric!r} is not one of {METRICS}")
        if not _HEX64.match(self.fingerprint):
            raise ExportedFileError(f"the fingerprint {self.fingerprint[:80]!r} is not a sha256")
        for name, value in (
            ("input_shape", shape),
            ("embedding_dim", dim),
            ("metric", metric),
            ("architecture", architecture),
            ("pixel_top", pixel_top),
        ):
            object.__setattr__(self, name, value)

    def metadata(self) -> dict[str, str]:
        """The key/value pairs written into a file (ONNX metadata_props, TorchScript JSON)."""
        return {
            KEY + "format": self.format_version,
            KEY + "spec": json.dumps(self.spec, sort_keys=True),
            KEY + "fingerprint": self.fingerprint,
            KEY + "preprocessing": self.preprocessing,
            KEY + "run": self.run,
            KEY + "version": self.version,
        }

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str) -> ExportInfo:
        """Parse ``metadata()``'s pairs read back from ``where``; a clear error otherwise."""
        if KEY + "spec" not in props:
            raise ExportedFileError(
                f"{where} holds no tripletnet metadata; is it a file 'tripletnet export' wrote? "
                + _EXPORT_HINT
            )
        version = props.get(KEY + "format")
        if version != FORMAT_VERSION:
            raise ExportedFileError(
                f"{where} has tripletnet export format {version!r}; this tripletnet reads "
                f"{FORMAT_VERSION!r}: {_EXPORT_HINT}"
            )
        try:
            spec = json.loads(props[KEY + "spec"])
            if not isinstance(spec, dict):
                raise ValueError(f"a JSON {type(spec).__name__}, not an object")
            return cls(
                spec=spec,
                fingerprint=str(props[KEY + "fingerprint"]),
                run=str(props.get(KEY + "run", "")),
                preprocessing=str(props[KEY + "preprocessing"]),
                version=str(props.get(KEY + "version", "")),
            )
        except ExportedFileError as error:
            raise ExportedFileError(f"{where}: {error}") from None
        except (KeyError, ValueError) as error:
            raise ExportedFileError(
                f"{where} has broken tripletnet metadata ({error!r}); {_EXPORT_HINT}"
            ) from None


def _checked_file(path: Path) -> None:
    if not path.exists():
        raise ExportedFileError(f"{path} does not exist")
    if path.is_dir():
        raise ExportedFileError(f"{path} is a folder, not an exported model file")


def file_format(path: str | Path) -> str:
    """The format of an exported file: "torchscript" for a TorchScript archive (a zip), else
    "onnx"."""
    return "torchscript" if zipfile.is_zipfile(path) else "onnx"


def read_export_info(path: str | Path) -> ExportInfo:
    """The tripletnet metadata of an exported ONNX or TorchScript file, read without running or
    unpickling anything (ONNX: its protobuf; TorchScript: the JSON extra file in its zip)."""
    path = Path(path)
    _checked_file(path)
    if file_format(path) == "torchscript":
        return ExportInfo.from_metadata(_torchscript_metadata(path), str(path))
    return ExportInfo.from_metadata(_onnx_metadata(path), str(path))


def _torchscript_metadata(path: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [
                name
                for name in archive.namelist()
                if name.endswith(f"/extra/{TORCHSCRIPT_EXTRA}") or name == TORCHSCRIPT_EXTRA
            ]
            if not names:
                return {}
            table = json.loads(archive.read(names[0]).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as error:
        raise ExportedFileError(f"{path} is not a readable TorchScript archive ({error})") from None
    if not isinstance(table, dict):
        raise ExportedFileError(f"{path}: {TORCHSCRIPT_EXTRA} is not a JSON object")
    return {str(key): str(value) for key, value in table.items()}


def _onnx_metadata(path: Path) -> dict[str, str]:
    """ONNX metadata_props, parsed with the onnx package, or else with onnxruntime."""
    try:
        import onnx
    except ModuleNotFoundError:
        return dict(_session(path).get_modelmeta().custom_metadata_map)
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends: the file is not ONNX
        raise _unreadable(path, error) from None
    return {prop.key: prop.value for prop in model.metadata_props}


def _unreadable(path: Path, error: Exception) -> ExportedFileError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", reason)
    reason = re.sub(r"^Load model from .* failed:\s*", "", reason)  # it names the path again
    return ExportedFileError(
        f"{path} is not a readable ONNX model ({reason[:200]}); it may be truncated or another "
        f"kind of file: {_EXPORT_HINT}"
    )


def _session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession on the CPU for ``path``; a one-line error otherwise."""
    try:
        import onnxruntime
    except ModuleNotFoundError as error:
        raise TripletnetError(
            "serving an ONNX file needs onnxruntime, which is not installed: "
            "pip install 'tripletnet[onnx]'"
        ) from error
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime's errors derive from Exception only
        raise _unreadable(path, error) from None


@dataclass
class OnnxEmbedder(ImageQueries):
    """An exported ONNX file run by onnxruntime (CPU): embeds raw samples or images for an index,
    with the fingerprint of the run it was exported from."""

    path: Path
    info: ExportInfo
    session: Any  # onnxruntime.InferenceSession
    raw_format: RawFormat
    ref: ModelRef

    @classmethod
    def from_file(cls, path: str | Path, threads: int | None = None) -> OnnxEmbedder:
        """Load an ONNX file written by ``tripletnet export`` (``threads``: onnxruntime's
        intra-op threads; None: its default)."""
        path = Path(path)
        _checked_file(path)
        if file_format(path) == "torchscript":
            raise ExportedFileError(
                f"{path} is a TorchScript file; serve an ONNX export (--format onnx) instead"
            )
        session = _session(path, threads)
        info = ExportInfo.from_metadata(session.get_modelmeta().custom_metadata_map, str(path))
        if info.preprocessing != PREPROCESSING:
            raise ExportedFileError(
                f"{path} was exported for image preprocessing {info.preprocessing!r}, but this "
                f"tripletnet converts images by {PREPROCESSING!r}: {_EXPORT_HINT}"
            )
        _check_graph(path, session, info)
        raw = RawFormat(info.input_shape, info.pixel_top or 255.0)
        ref = ModelRef(info.fingerprint, info.spec, str(path.resolve()))
        return cls(path, info, session, raw, ref)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def dim(self) -> int:
        return self.info.embedding_dim

    @property
    def metric(self) -> str:
        return self.info.metric

    @property
    def architecture(self) -> str:
        return self.info.architecture

    @property
    def run_name(self) -> str:
        return self.info.run or self.path.stem

    @property
    def runtime(self) -> str:
        return "onnxruntime"

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        """(N, dim) float32 embeddings of raw samples (N, *input_shape), in batches of BATCH."""
        array = np.asarray(samples, dtype=np.float32)
        if array.ndim < 1 or tuple(array.shape[1:]) != self.input_shape:
            raise TripletnetError(
                f"expected samples of shape (N, {', '.join(map(str, self.input_shape))}), "
                f"got {array.shape}"
            )
        name = self.session.get_inputs()[0].name
        chunks = [
            self.session.run(None, {name: np.ascontiguousarray(array[start : start + BATCH])})[0]
            for start in range(0, len(array), BATCH)
        ]
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


def _check_graph(path: Path, session: Any, info: ExportInfo) -> None:
    """The graph must take float (N, *input_shape) and return (N, embedding_dim), as its
    metadata says; a file whose metadata was copied onto another model is refused."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportedFileError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; a tripletnet export "
            "has one of each"
        )
    takes = list(inputs[0].shape)[1:]
    gives = list(outputs[0].shape)[1:]
    if (
        inputs[0].type != "tensor(float)"
        or takes != list(info.input_shape)
        or gives != [info.embedding_dim]
    ):
        raise ExportedFileError(
            f"{path}: its graph takes {inputs[0].type} {list(inputs[0].shape)} and returns "
            f"{list(outputs[0].shape)}, but its metadata says float (N, "
            f"{', '.join(map(str, info.input_shape))}) -> (N, {info.embedding_dim}); {_EXPORT_HINT}"
        )


__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "MAX_OPSET",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "TORCHSCRIPT_EXTRA",
    "ExportInfo",
    "ExportedFileError",
    "OnnxEmbedder",
    "file_format",
    "read_export_info",
]
