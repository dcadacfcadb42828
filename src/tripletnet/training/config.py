"""The training configuration: ``runs.RunConfig`` (data, model, optim, evaluation, method),
with the method's options typed and checked by the registry and the dataset's defaults filled.

Three ways to make one, all with the same names:

    TrainConfig.from_options(dataset="mnist", epochs=8, loss="multi-similarity")   # flat
    TrainConfig.from_dict(tomllib.load(f))      # nested, as config.json or --config run.toml
    tripletnet train --dataset mnist --epochs 8 --loss multi-similarity
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..devices import resolve_device
from ..errors import TripletnetError
from ..models import DEFAULT_ARCHITECTURE, check_layer_options, is_backbone_model
from ..runs.config import SECTIONS, RunConfig
from .methods import METHODS, method_class, methods_taking, typed_options
from .tracking import check_loggers

RESUMABLE = ("epochs", "device", "workers")  # what --resume may change
# Defaults that train well on each dataset (see docs/results.md for what they reach); other
# datasets and paths take mnist's. Backbone models (resnets, timm, your own) start at lr 0.01.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 15, "lr": 0.1, "embedding_dim": 64},
    "mnist": {"epochs": 25, "lr": 0.1},
    "cifar10": {"epochs": 30, "lr": 0.05},
}
SECTION_OF = {
    item.name: section for section, kind in SECTIONS.items() for item in dataclasses.fields(kind)
}


class TrainConfig(RunConfig):
    """A RunConfig that knows the training methods: ``resolved()`` fills the defaults and checks
    every option, ``method_options`` types the method's.

    Made from sections (``TrainConfig(data=DataOptions(...), ...)``, as ``from_dict`` does) or
    from options named as on the command line (``TrainConfig(dataset="mnist", epochs=8)``), or
    both. A ``loss`` without a ``method`` means ``method="batch-mining"`` (the older spelling).
    """

    def __init__(self, **options: Any) -> None:
        nested = {
            name: options.pop(name)
            for name in (*SECTIONS, "options")
            if name in options and not isinstance(options[name], str | None)
        }
        super().__init__(**nested)
        self.set_options(**options)

    def __getattr__(self, name: str) -> Any:
        """An option by its command-line name (``config.epochs`` is ``config.optim.epochs``)."""
        if name in SECTION_OF:
            return getattr(getattr(self, SECTION_OF[name]), name)
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__} has no option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a section, or an option by its command-line name; never a stray attribute."""
        if name == "method" and "options" in self.__dict__:
            self.set_options(method=value)  # drops the options the new method lacks
        elif name in self.__dataclass_fields__:
            object.__setattr__(self, name, value)
        else:
            self.set_options(**{name: value})

    def set_options(self, **given: Any) -> None:
        """Set options by their command-line names; when the method changes, the options of
        the old one that the new one lacks are dropped."""
        method = given.pop("method", None)
        if method is None and given.get("loss") is not None:
            method = "batch-mining"
        if method is not None and method != self.method:
            own = {item.name for item in dataclasses.fields(method_class(method).Options)}
            object.__setattr__(self, "method", method)
            self.options = {k: v for k, v in self.options.items() if k in own}
        for name, value in given.items():
            if name in SECTION_OF:
                setattr(getattr(self, SECTION_OF[name]), name, value)
            elif methods_taking(name):
                self.options[name] = value
            else:
                raise TripletnetError(f"unknown option {name!r}")

    @classmethod
    def from_options(cls, base: RunConfig | None = None, **given: Any) -> TrainConfig:
        """``base`` (default: all defaults) with the options named as on the command line."""
        config = cls.from_dict(base.to_dict() if base is not None else {})
        config.set_options(**given)
        return config

    @classmethod
    def from_dict(cls, table: Any, where: str = "the configuration") -> TrainConfig:
        base = RunConfig.from_dict(table, where)
        sections = {item.name: getattr(base, item.name) for item in dataclasses.fields(base)}
        method, options = sections.pop("method"), sections.pop("options")
        config = cls(**sections, options=options)
        object.__setattr__(config, "method", method)  # its options as given: checked later
        return config

    @property
    def method_options(self) -> Any:
        """The method's Options dataclass, from ``options``."""
        return typed_options(self.method, self.options, f"the {self.method} options")

    @property
    def architecture(self) -> str | None:
        """The embedding net's name: ``model``, or the dataset's default net (None for your own
        data until its input shape is known: see ``resolved``)."""
        return self.model.model or DEFAULT_ARCHITECTURE.get(self.data.dataset)

    @property
    def metric(self) -> str:
        """The geometry the run learns and is evaluated and searched in."""
        return self.model.metric or method_class(self.method).metric(self.method_options)

    def resolved(self, input_shape: tuple[int, ...] | None = None) -> TrainConfig:
        """A copy with the dataset's and the method's defaults filled in, every option checked.

        Your own data's default net depends on its samples: with their ``input_shape`` known,
        vectors get the ``mlp``, images ``resnet18``; until then the net (and its learning
        rate) stays open."""
        config = TrainConfig.from_dict(self.to_dict())
        method = method_class(config.method)
        dataset = config.data.dataset
        if config.model.model is None and config.architecture is None and input_shape:
            config.model.model = "mlp" if len(input_shape) == 1 else "resnet18"
        defaults = {**DATASET_DEFAULTS.get(dataset, DATASET_DEFAULTS["mnist"])}
        if config.architecture is None:
            del defaults["lr"]  # decided with the net
        elif is_backbone_model(config.architecture):
            defaults["lr"] = 0.01
        for name, value in defaults.items():
            section = getattr(config, SECTION_OF[name])
            if getattr(section, name) is None:
                setattr(section, name, value)
        options = dataclasses.asdict(config.method_options)
        for name, value in method.defaults(dataset).items():
            if options.get(name) is None:
                options[name] = value
        config.options = options
        config.validate()
        return config

    def validate(self) -> None:
        """Raise a TripletnetError for any option that cannot work (before any work starts)."""
        if self.method not in METHODS:
            raise TripletnetError(
                f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}"
            )
        self.validate_sections()
        method_class(self.method).validate(self.method_options)
        resolve_device(self.optim.device)
        check_loggers(self.evaluation.loggers)
        if self.architecture is not None:
            check_layer_options(self.architecture, self.model.net_options)


def resumed_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """The configuration a resumed run continues with: ``saved``, with the ``RESUMABLE``
    options of ``given``; any other difference is an error naming the options."""
    before, after = saved.flat(), given.flat()
    changed = [  # None: the default, which is what the saved run resolved it to
        name for name in after if after[name] is not None and after[name] != before.get(name)
    ]
    refused = [name for name in changed if name not in RESUMABLE]
    if refused:
        listed = ", ".join(
            f"--{name.replace('_', '-')} (saved: {before.get(name)!r}, given: {after[name]!r})"
            for name in refused
        )
        raise TripletnetError(
            f"--resume continues a run as it was configured; it cannot change {listed}. "
            "Leave those options out, or start a new run with another --out"
        )
    return TrainConfig.from_options(saved, **{name: after[name] for name in changed})
