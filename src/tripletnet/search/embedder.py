"""A trained run put to work for search: images -> raw samples -> embeddings, with a fingerprint.

The fingerprint is sha256(model.safetensors bytes + the model spec + PREPROCESSING): the weights,
the architecture, the input normalisation and the image conversion rules. Two runs give equal
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

from ..evaluation.embed import embed
from ..training import TrainedRun, load_run
from ..training.checkpoint import MODEL
from .images import thumbnail, to_sample
from .index import ModelRef

PREPROCESSING = "raw-samples-v1"  # bump when images.to_sample changes what a model sees


def fingerprint(run_dir: Path, spec: dict[str, object]) -> str:
    digest = hashlib.sha256()
    with open(run_dir / MODEL, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(spec, sort_keys=True).encode())
    digest.update(PREPROCESSING.encode())
    return digest.hexdigest()


@dataclass
class Embedder:
    """A loaded run and its fingerprint: embeds raw samples or images for an index."""

    run: TrainedRun
    ref: ModelRef

    @classmethod
    def from_run(cls, run_dir: str | Path) -> Embedder:
        run = load_run(run_dir)
        path = Path(run_dir).resolve()
        return cls(run, ModelRef(fingerprint(path, run.spec), run.spec, str(path)))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.run.spec["input_shape"])

    @property
    def dim(self) -> int:
        return int(self.run.spec["embedding_dim"])

    def embed_samples(self, samples: np.ndarray) -> np.ndarray:
        return embed(self.run.model, samples, self.run.prepare)

    def samples(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([to_sample(image, self.input_shape) for image in images])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_samples(self.samples(images))

    def thumbnails(self, samples: np.ndarray) -> list[np.ndarray]:
        return [thumbnail(sample, self.input_shape) for sample in samples]
