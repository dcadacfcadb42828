"""Training configuration: one dataclass, saved with every run, with per-dataset defaults."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

import torch

from ..devices import resolve_device
from ..errors import TripletnetError
from ..models import DEFAULT_ARCHITECTURE, check_layer_options

METHODS: tuple[str, ...] = ("triplet", "siamese")
METHODS += ("semi-supervised",)  # few labels (issue 6)
PRETRAIN_METHODS = ("spatial-contrasting",)  # no labels (issue 6)
LR_SCHEDULES = ("cosine", "plateau")
PRECISIONS = ("fp32", "bf16")  # bf16: the net's forward under bfloat16 autocast


RESUMABLE = ("epochs", "device")  # what --resume may change: more epochs, another device
MAX_TUPLES = 100_000_000  # triplets an epoch: their (N, 3) int64 indices take 2.4 GB
MAX_BATCH = 1 << 20


def check_range(
    name: str, value: float | None, above: float | None = None, below: float | None = None
) -> None:
    """Refuse NaN and infinity, and values outside [0, ``below``): ``above`` (exclusive lower
    bound) replaces 0 where given; None ``value``: nothing to check."""
    if value is None:
        return
    low_ok = value > above if above is not None else value >= 0
    if not math.isfinite(value) or not low_ok or (below is not None and not value < below):
        bound = f"> {above:g}" if above is not None else ">= 0"
        upper = f" and < {below:g}" if below is not None else ""
        raise TripletnetError(f"{name} must be a finite number {bound}{upper}, got {value}")


@dataclass
class TrainConfig:
    """Everything that decides a training run. ``None`` fields take the dataset's defaults."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    method: str = "triplet"
    model: str | None = None
    embedding_dim: int | None = None
    dropout: float | None = None  # None: the net's own default
    final_relu: bool | None = None  # a ReLU on the embedding; None: the net's own default
    batch_norm: bool | None = None  # batch norm after each conv; None: the net's own default
    epochs: int | None = None
    triplets_per_epoch: int | None = None
    batch_size: int = 128
    lr: float | None = None
    min_lr_fraction: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    loss_form: str = "mse"
    margin: float = 1.0
    test_triplets: int = 64_000
    k: int = 5
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    # batch-mining training (tripletnet.training.batch_mining); loss None: Hoffer's triplets
    loss: str | None = None
    miner: str | None = None
    sampler: str | None = None  # batch mining only; None: "pk" with --loss, unused without
    classes_per_batch: int | None = None  # P; None: min(16, the number of classes)
    samples_per_class: int = 8
    # Learning with few or no labels (docs/few-labels.md)
    init: str | None = None
    lr_schedule: str = "cosine"
    labels_per_class: int | None = None
    unlabelled_weight: float = 1.0
    feature_layer: int | None = None
    patch_size: int = 1
    patch_pooling: str = "avg"
    augment_shift: int = 0
    augment_mirror: bool = False
    steps_per_epoch: int | None = None  # few-label methods: at most this many batches an epoch

    def resolved(self) -> TrainConfig:
        """A copy with the dataset's defaults filled in and every field checked."""
        defaults = DATASET_DEFAULTS.get(self.dataset, DATASET_DEFAULTS["mnist"])
        filled = {name: defaults[name] for name in defaults if getattr(self, name) is None}
        if self.loss is not None and self.sampler is None:
            filled["sampler"] = "pk"
        config = dataclasses.replace(self, **filled)
        config.validate()
        return config

    def validate(self) -> None:
        if self.method not in METHODS + PRETRAIN_METHODS:
            raise TripletnetError(
                f"unknown method {self.method!r}; choose one of: {', '.join(METHODS + PRETRAIN_METHODS)}"
            )
        if self.precision not in PRECISIONS:
            raise TripletnetError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.loss_form not in ("mse", "nll"):
            raise TripletnetError(f"--loss-form must be 'mse' or 'nll', got {self.loss_form!r}")
        for name, (value, most) in {
            "epochs": (self.epochs, 1_000_000),
            "triplets-per-epoch": (self.triplets_per_epoch, MAX_TUPLES),
            "batch-size": (self.batch_size, MAX_BATCH),
            "k": (self.k, None),
            "test-triplets": (self.test_triplets, MAX_TUPLES),
            "embedding-dim": (self.embedding_dim, 65_536),
        }.items():
            if value is not None and value < 1:
                raise TripletnetError(f"--{name} must be at least 1, got {value}")
            if value is not None and most is not None and value > most:
                raise TripletnetError(f"--{name} must be at most {most:,}, got {value:,}")
        for option, number, low, high in (
            ("lr", self.lr, 0.0, None),
            ("margin", self.margin, 0.0, None),
            ("dropout", self.dropout, None, 1.0),
            ("momentum", self.momentum, None, 1.0),
            ("weight-decay", self.weight_decay, None, None),
        ):
            check_range(f"--{option}", number, low, high)
        if not 0 <= self.min_lr_fraction <= 1:
            raise TripletnetError(f"min_lr_fraction must be in [0, 1], got {self.min_lr_fraction}")
        if self.seed < 0:
            raise TripletnetError(f"--seed must be >= 0, got {self.seed}")
        resolve_device(self.device)
        check_layer_options(self.architecture, self.net_options)
        from .batch_mining import check_batch_mining_options

        check_batch_mining_options(self)
        self._validate_few_labels()

    def _validate_few_labels(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise TripletnetError(
                f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.labels_per_class is not None:
            if self.method != "semi-supervised":
                raise TripletnetError("--labels-per-class needs --method semi-supervised")
            if self.labels_per_class < 1:
                raise TripletnetError(
                    f"--labels-per-class must be at least 1, got {self.labels_per_class}"
                )
        check_range("--unlabelled-weight", self.unlabelled_weight)
        if self.patch_size < 1 or (self.feature_layer is not None and self.feature_layer < 1):
            raise TripletnetError("--patch-size and --feature-layer must be at least 1")
        if self.patch_pooling not in ("avg", "max"):
            raise TripletnetError(f"--patch-pooling must be avg or max, got {self.patch_pooling!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TripletnetError(
                f"--steps-per-epoch must be at least 1, got {self.steps_per_epoch}"
            )
        if self.augment_shift < 0:
            raise TripletnetError(f"--augment-shift must be >= 0, got {self.augment_shift}")

    @property
    def architecture(self) -> str:
        """The embedding net's name: ``model``, or the dataset's default net."""
        return self.model or DEFAULT_ARCHITECTURE.get(self.dataset, "mnist")

    @property
    def net_options(self) -> dict[str, Any]:
        """The net's constructor options, for ``build_model`` (None: the net's default)."""
        return {
            "dropout": self.dropout,
            "final_relu": self.final_relu,
            "batch_norm": self.batch_norm,
        }

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """The dtype the net computes in while training (None: float32)."""
        return torch.bfloat16 if self.precision == "bf16" else None

    @property
    def method_name(self) -> str:
        """What trained the net, for reports and folder names: the method, or the batch-mining
        loss and its miner."""
        if self.loss is None:
            return self.method
        return self.loss + (f" ({self.miner} miner)" if self.miner else "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the configuration") -> TrainConfig:
        """A config from its ``to_dict`` (a run's config.json); unknown keys are ignored, a
        value of the wrong type is an error naming ``source``."""
        if not isinstance(data, dict):
            raise TripletnetError(f"{source} must be a JSON object of training options")
        types = typing.get_type_hints(cls)
        fields = {key: value for key, value in data.items() if key in types}
        for key, value in fields.items():
            if not _has_type(value, types[key]):
                raise TripletnetError(
                    f"{source}: {key} = {value!r} is not a valid value ({types[key]})"
                )
        if fields.get("loss") is None:
            fields["sampler"] = None  # older versions recorded "pk" for every run
        return cls(**fields)


# Defaults that train well on each dataset (see docs/results.md for what they reach).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 15, "triplets_per_epoch": 12_800, "lr": 0.1, "embedding_dim": 64},
    "mnist": {"epochs": 25, "triplets_per_epoch": 64_000, "lr": 0.1},
    "cifar10": {"epochs": 30, "triplets_per_epoch": 640_000, "lr": 0.05},
}


def _has_type(value: Any, annotation: Any) -> bool:
    """Is ``value`` (read from JSON) of the field type ``annotation`` (int, float, str, bool,
    or one of those or None)."""
    allowed = typing.get_args(annotation) or (annotation,)
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return any(kind is not type(None) and isinstance(value, kind) for kind in allowed)
