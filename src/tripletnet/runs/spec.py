"""The model spec: what a later command needs to rebuild a run's net and to prepare new inputs
exactly as in training. Saved as JSON in the metadata of model.safetensors and of each checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data import Normalizer
from ..errors import RunFolderError
from ..models import EmbeddingNet, build_model

METRICS = ("euclidean", "cosine")


@dataclass(frozen=True)
class ModelSpec:
    """A net by name and shape, with its input normalisation and the geometry it was trained
    for: ``metric`` "cosine" means the net ends in L2 normalisation, so every consumer compares
    unit vectors (Euclidean distance on them orders neighbours as cosine similarity does)."""

    architecture: str
    input_shape: tuple[int, ...]
    embedding_dim: int
    normalizer: Normalizer
    net_options: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    metric: str = "euclidean"
    factory_args: dict[str, Any] | None = None
    pixel_top: float | None = 255.0  # raw image values run 0..pixel_top; None: not images

    def build(self) -> EmbeddingNet:
        """The net, freshly initialised (load the weights with ``runs.checkpoint``)."""
        return build_model(
            self.architecture,
            self.input_shape,
            self.embedding_dim,
            normalize=self.metric == "cosine",
            factory_args=self.factory_args,
            **self.net_options,
        )

    def to_dict(self) -> dict[str, Any]:
        table = dataclasses.asdict(self)
        table["input_shape"] = list(self.input_shape)
        table["normalizer"] = self.normalizer.to_dict()
        return table

    @classmethod
    def from_dict(
        cls, table: dict[str, Any], where: str = "the model spec", dataset: str | None = None
    ) -> ModelSpec:
        """A spec from ``to_dict``; older specs lack the metric (Euclidean), the layer options
        (every net's defaults) and the pixel range (0..255; 0..16 for the ``dataset`` digits)."""
        try:
            known = {item.name for item in dataclasses.fields(cls)}
            values = {key: value for key, value in table.items() if key in known}
            values["input_shape"] = tuple(int(d) for d in table["input_shape"])
            values["normalizer"] = Normalizer(**table["normalizer"])
            values.setdefault("pixel_top", 16.0 if dataset == "digits" else 255.0)
            spec = cls(**values)
        except (KeyError, TypeError, ValueError) as error:
            raise RunFolderError(
                f"{where} is incomplete or not a tripletnet spec ({error!r})"
            ) from None
        if spec.metric not in METRICS:
            raise RunFolderError(
                f"{where}: metric {spec.metric!r} is not one of {', '.join(METRICS)}"
            )
        return spec
