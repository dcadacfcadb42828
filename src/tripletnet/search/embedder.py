"""A trained run put to work for search: images -> raw samples -> embeddings, with a fingerprint.

The fingerprint is sha256(model.safetensors bytes + the model spec + PREPROCESSING + the raw
format): the weights, the architecture, the input normalisation and the image conversion rules. Two runs give equal
fingerprints only if their embeddings are comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..runs import MODEL, TrainedRun, embed, load_run, read_metadata
from .images import RawFormat
from .index import ModelRef

PREPROCESSING = "raw-samples-v2"  # bump when images.RawFormat changes what a model sees


def fingerprint(run_dir: Path, spec: dict[str, object], raw: RawFormat) -> str:
    digest = hashlib.sha256()
    with open(run_dir / MODEL, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(spec, sort_keys=True).encode())
    digest.update(f"{PREPROCESSING} {raw}".encode())
    return digest.hexdigest()


@dataclass
class Embedder:
    """A loaded run and its fingerprint: embeds raw samples or images for an index."""

    run: TrainedRun
    raw_format: RawFormat
    ref: ModelRef

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Embedder:
        run = load_run(run_dir)
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

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        return embed(self.run.model, samples, self.run.prepare)

    def samples(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([self.raw_format.to_sample(image) for image in images])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_samples(self.samples(images))

    def thumbnails(self, samples: np.ndarray) -> list[np.ndarray]:
        return [self.raw_format.thumbnail(sample) for sample in samples]
