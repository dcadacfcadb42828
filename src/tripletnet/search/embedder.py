"""A trained run put to work for search: images -> raw samples -> embeddings, with a fingerprint.

The fingerprint is sha256(model.safetensors bytes + the model spec + PREPROCESSING + the raw
format): the weights, the architecture, the input normalisation and the image conversion rules. Two runs give equal
fingerprints only if their embeddings are comparable.

``QueryEmbedder`` is what the search service needs of a model: :class:`Embedder` (torch, a run
folder) and :class:`~tripletnet.search.onnx_embedder.OnnxEmbedder` (onnxruntime, an exported
file) both are one. This module imports torch only when a run is loaded or embeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from .images import RawFormat
from .index import ModelRef

if TYPE_CHECKING:
    from ..runs import TrainedRun

PREPROCESSING = "raw-samples-v3"  # bump when images.RawFormat changes what a model sees
MODEL_FILE = "model.safetensors"  # runs.MODEL, named here so that this module needs no torch


def fingerprint(run_dir: Path, spec: dict[str, object], raw: RawFormat) -> str:
    """sha256 of the run's model file, its spec (as saved) and the preprocessing rules."""
    digest = hashlib.sha256()
    with open(run_dir / MODEL_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(spec, sort_keys=True).encode())
    digest.update(f"{PREPROCESSING} {raw}".encode())
    return digest.hexdigest()


class ImageQueries:
    """Images -> raw samples (``raw_format``) -> embeddings (``embed_samples``, the subclass's),
    and thumbnails: what every query embedder shares."""

    raw_format: RawFormat

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def samples(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([self.raw_format.to_sample(image) for image in images])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_samples(self.samples(images))

    def thumbnails(self, samples: np.ndarray) -> list[np.ndarray]:
        return [self.raw_format.thumbnail(sample) for sample in samples]


class QueryEmbedder(Protocol):
    """What the service needs of a model: images -> raw samples -> embeddings, thumbnails, and
    the fingerprint (``ref``) that an index checks queries against."""

    raw_format: RawFormat
    ref: ModelRef

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def dim(self) -> int: ...

    @property
    def metric(self) -> str: ...

    @property
    def architecture(self) -> str: ...

    @property
    def run_name(self) -> str:
        """The name (never the path) of the run folder the model was trained in."""
        ...

    @property
    def runtime(self) -> str:
        """What computes the embeddings: "torch" or "onnxruntime"."""
        ...

    def samples(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_samples(self, samples: np.ndarray) -> np.ndarray: ...

    def thumbnails(self, samples: np.ndarray) -> list[np.ndarray]: ...


@dataclass
class Embedder(ImageQueries):
    """A loaded run and its fingerprint: embeds raw samples or images for an index (on
    ``device``: see :meth:`to`)."""

    run: TrainedRun
    raw_format: RawFormat
    ref: ModelRef
    device: str = "cpu"

    def to(self, device: str) -> Embedder:
        """Embed on ``device`` (e.g. ``cuda:1``) from now on."""
        self.run.model.to(device)
        self.device = device
        return self

    @classmethod
    def from_run(cls, run_dir: str | Path, trust_model_code: bool | None = None) -> Embedder:
        """The run's net (``trust_model_code``: as for ``load_run``) and its fingerprint."""
        from ..runs import MODEL, load_run, read_metadata

        run = load_run(run_dir, trust_model_code=trust_model_code)
        path = Path(run_dir).resolve()
        raw = RawFormat(run.spec.input_shape, run.spec.pixel_top or 255.0)
        stored = read_metadata(path / MODEL)["spec"]  # as saved: older runs keep their prints
        return cls(run, raw, ModelRef(fingerprint(path, stored, raw), stored, str(path)))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.run.spec.input_shape

    @property
    def dim(self) -> int:
        return self.run.spec.embedding_dim

    @property
    def metric(self) -> str:
        return self.run.spec.metric

    @property
    def architecture(self) -> str:
        return self.run.spec.architecture

    @property
    def run_name(self) -> str:
        return self.run.path.resolve().name

    @property
    def runtime(self) -> str:
        return "torch"

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        from ..runs import embed

        return embed(self.run.model, samples, self.run.prepare, device=self.device)
