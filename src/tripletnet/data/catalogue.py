"""Every fact about a built-in dataset, in one record: where its loader is, the net and the
optimisation that train well on it, how many random triplets an epoch draws, and its pixel
range. Training, the models' defaults, the run spec and the help text read them here.

Light on purpose (no numpy, no loader imported until a dataset is loaded), so that option
help can list the datasets. The default net is a name (``models`` builds it): data sits below
models and training and imports neither.

>>> facts("digits").default_net, facts("digits").pixel_top, facts("cifar10").epochs
('small-conv', 16.0, 30)
>>> facts("my-images/").default_net is None  # your own data: the net fits the samples' shape
True
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arrays import DatasetSplits


@dataclass(frozen=True)
class DatasetFacts:
    """A built-in dataset. ``epochs``, ``lr`` and ``embedding_dim`` (None: the net's own) are
    the training defaults (see docs/benchmarks.md for what they reach; a backbone net starts at
    lr 0.01 instead). ``pixel_top``: raw image values run 0..pixel_top. ``listed``: named in
    ``--dataset``'s help. ``OWN_DATA`` holds what a dataset that is not built in takes."""

    name: str
    loader: str | None  # "module:function" in tripletnet.data, called with data_dir=, download=
    default_net: str | None  # a name of models.ARCHITECTURES; None: chosen from the samples
    loader_args: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 25
    lr: float = 0.1
    embedding_dim: int | None = None
    triplets_per_epoch: int = 64_000  # random triplets an epoch (the paper's methods)
    pixel_top: float = 255.0
    listed: bool = True

    def load(self, data_dir: Path | None, download: bool = False) -> DatasetSplits:
        """The dataset's official splits, from the files in ``data_dir``."""
        assert self.loader is not None, f"{self.name} has no built-in loader"
        module, function = self.loader.split(":")
        load = getattr(importlib.import_module(f".{module}", __package__), function)
        splits: DatasetSplits = load(data_dir=data_dir, download=download, **self.loader_args)
        return splits


def _mnist_like(name: str) -> DatasetFacts:
    return DatasetFacts(name, "mnist:load_idx_dataset", "mnist", {"name": name})


BUILT_IN: dict[str, DatasetFacts] = {
    facts.name: facts
    for facts in (
        DatasetFacts(
            "digits",
            "digits:load_digits",
            "small-conv",
            epochs=15,
            embedding_dim=64,
            triplets_per_epoch=12_800,
            pixel_top=16.0,  # scikit-learn's 8x8 digits take values 0..16
        ),
        _mnist_like("mnist"),
        _mnist_like("fashion-mnist"),
        _mnist_like("kmnist"),
        DatasetFacts(
            "cifar10", "cifar:load_cifar10", "cifar", epochs=30, lr=0.05, triplets_per_epoch=640_000
        ),
        DatasetFacts("svhn", "svhn:load_svhn", "cifar"),
        DatasetFacts("svhn-extra", "svhn:load_svhn", "cifar", {"extra": True}),
        DatasetFacts("stl10", "stl10:load_stl10", "stl10"),
        DatasetFacts(  # + STL-10's 100,000 unlabelled images, for pretraining
            "stl10-unlabelled", "stl10:load_stl10", "stl10", {"unlabelled": True}, listed=False
        ),
    )
}
# your own data (a folder, CSV or npz): loaded by data/sources, its net chosen from the samples'
# shape (models/choice.py), mnist's optimisation unless training/config's OWN_DATA_DEFAULTS apply
OWN_DATA = DatasetFacts("your own data", None, None)


def facts(dataset: str) -> DatasetFacts:
    """The facts of the built-in dataset ``dataset``; ``OWN_DATA`` for any other (a path)."""
    return BUILT_IN.get(dataset, OWN_DATA)


def listed_names() -> str:
    """The built-in datasets for help text: "digits, mnist, ..."."""
    return ", ".join(name for name, facts in BUILT_IN.items() if facts.listed)
