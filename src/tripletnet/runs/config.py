"""A run's configuration, by concern: data, model, optimisation, evaluation, and the method.

    {"data": {...}, "model": {...}, "optim": {...}, "evaluation": {...},
     "method": {"name": "triplet", ...the method's own options...}, "version": 2}

is what config.json holds and what ``tripletnet train --config run.toml`` reads (as TOML tables
``[data]``, ``[model]``, ... ``[method]``). The method's options are kept here as a plain table:
the training layer's method registry types and checks them. Run folders of version 1 (one flat
table of 38 fields) are read into the same shape (``RunConfig.from_dict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data.catalogue import listed_names
from ..devices import DEVICE_HELP
from ..errors import TripletnetError
from ..metric_names import METRICS
from .options import check_count, check_range, coerce, option

VERSION = 2
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # the net's forward under autocast (16 bits)
LR_SCHEDULES = ("cosine", "plateau", "step")
LOGGERS = ("csv", "tensorboard", "mlflow")
MAX_BATCH = 1 << 20


@dataclass
class DataOptions:
    """Where the samples come from and how they reach the net."""

    dataset: str = option(
        "digits",
        f"A built-in dataset ({listed_names()}), or a path: a folder with one subfolder per "
        "class, a .csv (path,label[,split]) or a .npz (x, y[, split]).",
    )
    data_dir: str | None = option(None, "Folder with a built-in dataset's official files.")
    download: bool = option(False, "Download a built-in dataset's missing files (needs internet).")
    split: str | None = option(
        None,
        "stratified:F (a seeded fraction F of each class to test), classes:F (open set: the last "
        "F of the sorted classes are unseen in training); default: the source's own split, or "
        "stratified:0.25 for a folder or CSV without one.",
    )
    image_size: int | None = option(
        None, "Resize the shorter side of image files to this and centre-crop a square."
    )
    workers: int | None = option(
        None, "Processes decoding image files (default: up to 4, one per core)."
    )
    strict: bool = option(False, "Stop at an unreadable image (default: skip it and count it).")
    cache_mb: int = option(
        1024,
        "Decode the training images once and keep them in memory when they take at most this "
        "many MB; larger sets (and 0) are decoded afresh every epoch.",
    )
    augment_shift: int = option(0, "Shift training images by up to this many pixels.")
    augment_mirror: bool = option(False, "Flip half the training images left-right.")
    augment_crop: bool = option(
        False, "Random resized crops of the training images (scale 0.16-1, aspect 3/4-4/3)."
    )
    augment_jitter: float = option(
        0.0, "Colour jitter: brightness, contrast and saturation each by a factor in [1-J, 1+J]."
    )

    def validate(self) -> None:
        check_count("image-size", self.image_size, 4096)
        if self.cache_mb < 0:
            raise TripletnetError(f"--cache-mb must be >= 0, got {self.cache_mb}")
        if self.workers is not None and not 0 <= self.workers <= 256:
            raise TripletnetError(f"--workers must be from 0 to 256, got {self.workers}")
        if self.augment_shift < 0:
            raise TripletnetError(f"--augment-shift must be >= 0, got {self.augment_shift}")
        check_range("--augment-jitter", self.augment_jitter, below=1.0)


@dataclass
class ModelOptions:
    """The embedding net."""

    model: str | None = option(
        None,
        "The embedding net: mlp, small-conv, mnist, cifar, stl10, semisup-mnist, resnet18, "
        "resnet50, timm:NAME, or package.module:factory (your own code; default: the dataset's).",
    )
    factory_args: dict[str, Any] | None = option(
        None, "Keyword arguments (JSON) for a package.module:factory model."
    )
    weights: str | None = option(
        None,
        "A .safetensors file of backbone weights to start from (torchvision names for resnets).",
    )
    embedding_dim: int | None = option(None, "Embedding size (default: the net's).")
    metric: str | None = option(
        None,
        "euclidean, or cosine (the embeddings L2-normalised); default: the loss's geometry.",
        choices=METRICS,
    )
    dropout: float | None = option(None, "Dropout probability (default: the net's).")
    final_relu: bool | None = option(
        None, "End the mnist/cifar/stl10 net in a ReLU, as the paper's nets do (default: yes)."
    )
    batch_norm: bool | None = option(
        None, "Batch norm after each conv of the mnist/cifar/stl10 net (default: no)."
    )
    init: str | None = option(
        None, "Start from the weights of this finished run (e.g. a `tripletnet pretrain` run)."
    )

    def validate(self) -> None:
        check_count("embedding-dim", self.embedding_dim, 65_536)
        check_range("--dropout", self.dropout, below=1.0)

    @property
    def net_options(self) -> dict[str, Any]:
        """The net's constructor options for ``build_model`` (None: the net's default)."""
        return {
            "dropout": self.dropout,
            "final_relu": self.final_relu,
            "batch_norm": self.batch_norm,
        }


def parse_milestones(text: str) -> list[int]:
    """ "30,60,90" -> [30, 60, 90]: increasing epoch numbers >= 1, or a TripletnetError."""
    try:
        epochs = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        epochs = []
    if not epochs or any(e < 1 for e in epochs) or epochs != sorted(set(epochs)):
        raise TripletnetError(
            f"--lr-milestones {text!r}: give increasing epoch numbers >= 1, comma-separated, "
            "e.g. 30,60,90,120"
        )
    return epochs


@dataclass
class OptimOptions:
    """How the weights are fitted."""

    epochs: int | None = option(None, "Epochs (default: the dataset's).")
    batch_size: int = option(128, "Tuples (triplets, or samples for batch mining) per batch.")
    lr: float | None = option(None, "Initial learning rate (default: the dataset's).")
    lr_schedule: str = option(
        "cosine",
        "cosine decay; plateau: divide by 10 when the epoch loss stops falling; step: divide "
        "by 10 at each epoch of --lr-milestones.",
        choices=LR_SCHEDULES,
    )
    lr_milestones: str = option(
        "30,60,90,120",
        "With --lr-schedule step: the epochs (comma-separated) at which the learning rate is "
        "divided by 10 (Hoffer & Ailon's 30,60,90,120).",
    )
    min_lr_fraction: float = option(0.01, "Where the cosine decay ends, as a fraction of --lr.")
    momentum: float = option(0.9, "SGD momentum.")
    nesterov: bool = option(
        False, "Nesterov momentum (the authors' 'nag' in the few-label papers)."
    )
    weight_decay: float = option(1e-4, "L2 weight decay.")
    precision: str = option(
        "fp32",
        "The net's forward in bf16 or fp16 (with gradient scaling) under autocast; auto: bf16 "
        "on a GPU that has it, else fp16 on a GPU, fp32 elsewhere. Losses stay float32.",
        choices=PRECISIONS,
    )
    device: str = option("auto", f"{DEVICE_HELP}.")
    compile: bool = option(
        False, "Train the net through torch.compile (the first steps compile; a GPU gains most)."
    )
    seed: int = option(0, "Seed of every random choice (weights, batches, augmentation).")

    def validate(self) -> None:
        check_count("epochs", self.epochs, 1_000_000)
        check_count("batch-size", self.batch_size, MAX_BATCH)
        check_range("--lr", self.lr, above=0.0)
        check_range("--momentum", self.momentum, below=1.0)
        if self.nesterov and not self.momentum:
            raise TripletnetError("--nesterov needs a --momentum above 0")
        parse_milestones(self.lr_milestones)
        check_range("--weight-decay", self.weight_decay)
        if not 0 <= self.min_lr_fraction <= 1:
            raise TripletnetError(f"min_lr_fraction must be in [0, 1], got {self.min_lr_fraction}")
        if self.seed < 0:
            raise TripletnetError(f"--seed must be >= 0, got {self.seed}")

    @property
    def milestones(self) -> list[int]:
        """--lr-milestones as increasing epoch numbers."""
        return parse_milestones(self.lr_milestones)


@dataclass
class EvalOptions:
    """What the evaluation after training measures."""

    k: int = option(5, "k of the k-NN classifiers.", flag="-k")
    test_triplets: int = option(64_000, "Fixed test triplets for the test triplet error.")
    log: str = option(
        "csv",
        "Where the run is logged: csv (always: steps.csv, epochs.csv), and tensorboard and/or "
        "mlflow, comma-separated (e.g. csv,tensorboard).",
    )

    def validate(self) -> None:
        check_count("k", self.k)
        check_count("test-triplets", self.test_triplets, 100_000_000)
        unknown = sorted(set(self.loggers) - set(LOGGERS))
        if unknown:
            raise TripletnetError(
                f"--log {self.log!r}: unknown {', '.join(unknown)}; choose from {', '.join(LOGGERS)}"
            )

    @property
    def loggers(self) -> list[str]:
        """csv, then the others asked for, each once."""
        asked = [name.strip().lower() for name in self.log.split(",") if name.strip()]
        return ["csv", *dict.fromkeys(name for name in asked if name != "csv")]


ATTACKS = ("fgsm", "pgd")


@dataclass
class RobustnessOptions:
    """Training defences against corruptions and adversarial examples (docs/robustness.md)."""

    augment_corruptions: bool = option(
        False,
        "Corrupt half the training images with a random common corruption at a random severity "
        "(MNIST-C's for grayscale, ImageNet-C's for colour).",
    )
    augmix: bool = option(
        False, "With --augment-corruptions: AugMix-style mixes of corruption chains instead."
    )
    adversarial: str | None = option(
        None,
        "Adversarial training: perturb the anchors (fgsm or pgd, L-inf) to raise the loss.",
        choices=ATTACKS,
    )
    eps: float = option(0.1, "--adversarial's L-inf radius, as a fraction of the pixel range.")
    adversarial_steps: int = option(5, "PGD steps of --adversarial pgd.")
    adversarial_positives: bool = option(False, "Perturb the positives too (as CLAE does).")
    adversarial_weight: float = option(
        0.5, "The adversarial loss's weight w: (1 - w) clean + w adversarial."
    )

    def validate(self) -> None:
        check_range("--eps", self.eps, below=1.0)
        check_count("adversarial-steps", self.adversarial_steps, 1000)
        check_range("--adversarial-weight", self.adversarial_weight, above=0.0)
        if self.adversarial_weight > 1:
            raise TripletnetError(
                f"--adversarial-weight must be at most 1, got {self.adversarial_weight}"
            )
        if self.augmix and not self.augment_corruptions:
            raise TripletnetError("--augmix mixes corruptions: give it with --augment-corruptions")


SECTIONS: dict[str, type] = {
    "data": DataOptions,
    "model": ModelOptions,
    "optim": OptimOptions,
    "evaluation": EvalOptions,
    "robustness": RobustnessOptions,
}


@dataclass
class RunConfig:
    """Everything that decides a run; ``method`` is the method's name and ``options`` its own
    options as a table (typed by the training layer's registry)."""

    data: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    robustness: RobustnessOptions = field(default_factory=RobustnessOptions)
    method: str = "triplet"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def method_label(self) -> str:
        """What trained the net, for reports: the method, or a batch-mining loss and miner."""
        loss, miner = self.options.get("loss"), self.options.get("miner")
        if not loss:
            return self.method
        return loss + (f" ({miner} miner)" if miner else "")

    def validate_sections(self) -> None:
        for name in SECTIONS:
            getattr(self, name).validate()

    def to_dict(self) -> dict[str, Any]:
        table: dict[str, Any] = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        table["method"] = {"name": self.method, **self.options}
        table["version"] = VERSION
        return table

    def flat(self) -> dict[str, Any]:
        """Every option by its own name (the command line's), the method's included."""
        values: dict[str, Any] = {"method": self.method}
        for name in SECTIONS:
            values.update(dataclasses.asdict(getattr(self, name)))
        values.update(self.options)
        return values

    @classmethod
    def from_dict(cls, table: Any, where: str = "the configuration") -> RunConfig:
        """A config from ``to_dict``'s shape, or from a version-1 flat config.json."""
        if not isinstance(table, dict):
            raise TripletnetError(f"{where} must be a table of options, got {type(table).__name__}")
        check_version(table.get("version", VERSION), where)
        if table.get("version", 1) == 1 and "dataset" in table:
            table = upgrade_version_1(table)
        unknown = sorted(set(table) - {*SECTIONS, "method", "version"})
        if unknown:
            raise TripletnetError(
                f"{where}: unknown table(s) {', '.join(unknown)}; "
                f"known: {', '.join([*SECTIONS, 'method'])}"
            )
        sections = {
            name: coerce(kind, table.get(name, {}), f"{where} [{name}]")
            for name, kind in SECTIONS.items()
        }
        method = table.get("method", {"name": "triplet"})
        if isinstance(method, str):
            method = {"name": method}
        if not isinstance(method, dict) or not isinstance(method.get("name", "triplet"), str):
            raise TripletnetError(f"{where} [method] must be a table with a name")
        options = {key: value for key, value in method.items() if key != "name"}
        return cls(**sections, method=method.get("name", "triplet"), options=options)


def check_version(version: Any, where: str) -> None:
    """Refuse a ``version`` this tripletnet cannot read: not a whole number from 1, or one
    written by a newer tripletnet (read as the current format, its options would be misread)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TripletnetError(
            f"{where}: version must be a whole number from 1 to {VERSION}, got {version!r}"
        )
    if version > VERSION:
        raise TripletnetError(
            f"{where} is version {version} of the configuration format, written by a newer "
            f"tripletnet; this one reads versions up to {VERSION}: upgrade tripletnet "
            "(pip install --upgrade tripletnet)"
        )


# version 1: one flat table; each field's section, and the method options by method
_V1_METHOD_OPTIONS = {
    "triplet": ("triplets_per_epoch", "loss_form"),
    "siamese": ("triplets_per_epoch", "margin"),
    "batch-mining": ("loss", "miner", "sampler", "classes_per_batch", "samples_per_class"),
    "semi-supervised": ("labels_per_class", "unlabelled_weight", "steps_per_epoch"),
    "spatial-contrasting": ("feature_layer", "patch_size", "patch_pooling", "steps_per_epoch"),
}


def upgrade_version_1(flat: dict[str, Any]) -> dict[str, Any]:
    """A version-1 config.json (one flat table) in version 2's shape. A batch-mining loss
    used to override the method silently; it is now the batch-mining method."""
    method = "batch-mining" if flat.get("loss") else flat.get("method", "triplet")
    table: dict[str, Any] = {name: {} for name in SECTIONS}
    for name, kind in SECTIONS.items():
        known = {item.name for item in dataclasses.fields(kind)}
        table[name] = {key: value for key, value in flat.items() if key in known}
    own = _V1_METHOD_OPTIONS.get(method, ())
    table["method"] = {"name": method, **{k: flat[k] for k in own if k in flat}}
    return table
