"""The model spec: what a later command needs to rebuild a run's net and to prepare new inputs
exactly as in training. Saved as JSON in the metadata of model.safetensors and of each checkpoint.
"""

from __future__ import annotations

import dataclasses
import reprlib
from dataclasses import dataclass, field
from typing import Any

from ..data import Normalizer
from ..data.catalogue import facts
from ..errors import RunFolderError
from ..metric_names import METRICS
from ..models import EmbeddingNet, build_model, check_model_code


def is_plain_json(value: Any) -> bool:
    """Is ``value`` plain JSON data: str, int, float, bool, None, and lists and objects (with
    str keys) of them?"""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(is_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain_json(item) for key, item in value.items())
    return False


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

    def build(
        self, trust_model_code: bool | None = None, where: str = "the model spec"
    ) -> EmbeddingNet:
        """The net, freshly initialised (load the weights with ``runs.checkpoint``). A
        ``package.module:factory`` net runs that code: refused unless ``trust_model_code`` (None:
        the variable TRIPLETNET_TRUST_MODEL_CODE) says yes; ``where`` names the spec's file."""
        check_model_code(self.architecture, where, trust_model_code, self.factory_args)
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
        (every net's defaults) and the pixel range (the ``dataset``'s, else 0..255)."""
        try:
            known = {item.name for item in dataclasses.fields(cls)}
            values = {key: value for key, value in table.items() if key in known}
            values["input_shape"] = tuple(int(d) for d in table["input_shape"])
            values["normalizer"] = Normalizer(**table["normalizer"])
            values.setdefault("pixel_top", facts(dataset or "").pixel_top)
            spec = cls(**values)
        except (KeyError, TypeError, ValueError) as error:
            raise RunFolderError(
                f"{where} is incomplete or not a tripletnet spec ({error!r})"
            ) from None
        if not isinstance(spec.architecture, str):
            raise RunFolderError(f"{where}: architecture {spec.architecture!r} is not a name")
        if spec.factory_args is not None and not (
            isinstance(spec.factory_args, dict) and is_plain_json(spec.factory_args)
        ):
            raise RunFolderError(
                f"{where}: factory_args must be a JSON object of plain values (text, numbers, "
                f"true/false, null, lists and objects of them), got {reprlib.repr(spec.factory_args)}"
            )
        if spec.metric not in METRICS:
            raise RunFolderError(
                f"{where}: metric {spec.metric!r} is not one of {', '.join(METRICS)}"
            )
        return spec
