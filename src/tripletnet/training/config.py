"""The training configuration: ``runs.RunConfig`` (data, model, optim, evaluation, method),
with the method's options typed and checked by the registry and the dataset's defaults filled.

Three ways to make one, all with the same names:

    TrainConfig.from_options(dataset="mnist", epochs=8, loss="multi-similarity")   # flat
    TrainConfig.from_dict(tomllib.load(f))      # nested, as config.json or --config run.toml
    tripletnet train --dataset mnist --epochs 8 --loss multi-similarity
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from ..data.catalogue import BUILT_IN, facts
from ..devices import resolve_device
from ..errors import TripletnetError
from ..models import WITH_LAYER_OPTIONS, check_layer_options, is_backbone_model
from ..models.choice import architecture_for
from ..runs.config import SECTIONS, RunConfig
from .methods import METHODS, method_class, methods_taking, typed_options
from .own_data import OWN_DATA_DEFAULTS, OWN_DATA_METHOD_OPTIONS
from .tracking import check_loggers

RESUMABLE = ("epochs", "device", "workers")  # what --resume may change
SECTION_OF = {
    item.name: section for section, kind in SECTIONS.items() for item in dataclasses.fields(kind)
}


def is_own_data(dataset: str) -> bool:
    """Is ``dataset`` the user's own (a path), not one of the built-in datasets?"""
    return dataset not in BUILT_IN


class TrainConfig(RunConfig):
    """A RunConfig that knows the training methods: ``resolved()`` fills the defaults and checks
    every option, ``method_options`` types the method's.

    Made from sections (``TrainConfig(data=DataOptions(...), ...)``, as ``from_dict`` does) or
    from options named as on the command line (``TrainConfig(dataset="mnist", epochs=8)``), or
    both. A ``loss`` without a ``method`` means ``method="batch-mining"`` (the older spelling).

    ``method_given`` says whether the method was chosen (by name, by a ``loss``, or by a
    ``[method]`` table); your own data without one trains with ``OWN_DATA_DEFAULTS``.
    """

    method_given: bool

    def __init__(self, **options: Any) -> None:
        nested = {
            name: options.pop(name)
            for name in (*SECTIONS, "options")
            if name in options and not isinstance(options[name], str | None)
        }
        object.__setattr__(self, "method_given", False)
        super().__init__(**nested)
        self.set_options(**options)

    def __getattr__(self, name: str) -> Any:
        """Deprecated: an option by its command-line name (``config.epochs``); read it from its
        section (``config.optim.epochs``), a method's from ``config.options``."""
        options = self.__dict__.get("options", {})
        if name in SECTION_OF:
            section = SECTION_OF[name]
            where, value = f"{section}.{name}", getattr(getattr(self, section), name)
        elif name in options:
            where, value = f"options[{name!r}]", options[name]
        else:
            raise AttributeError(f"{type(self).__name__} has no option {name!r}")
        warnings.warn(
            f"config.{name} is deprecated; read config.{where}", DeprecationWarning, stacklevel=2
        )
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a section, or the method (which drops the options the new method lacks); an
        option is set in its section (``config.optim.epochs = 3``) or by ``set_options``."""
        if name == "method" and "options" in self.__dict__:
            self.set_options(method=value)
        elif name in self.__dataclass_fields__:
            object.__setattr__(self, name, value)
        else:
            where = (
                f"config.{SECTION_OF[name]}.{name}"
                if name in SECTION_OF
                else f"config.set_options({name}=...)"
            )
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}; set {where}")

    def set_options(self, **given: Any) -> None:
        """Set options by their command-line names; when the method changes, the options of
        the old one that the new one lacks are dropped."""
        method = given.pop("method", None)
        if method is None and given.get("loss") is not None:
            method = "batch-mining"
        if method is not None:
            object.__setattr__(self, "method_given", True)
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
        if base is not None:
            object.__setattr__(config, "method_given", getattr(base, "method_given", True))
        config.set_options(**given)
        return config

    @classmethod
    def from_dict(cls, table: Any, where: str = "the configuration") -> TrainConfig:
        base = RunConfig.from_dict(table, where)
        sections = {item.name: getattr(base, item.name) for item in dataclasses.fields(base)}
        method, options = sections.pop("method"), sections.pop("options")
        config = cls(**sections, options=options)
        object.__setattr__(config, "method", method)  # its options as given: checked later
        object.__setattr__(config, "method_given", isinstance(table, dict) and "method" in table)
        return config

    @property
    def method_options(self) -> Any:
        """The method's Options dataclass, from ``options``."""
        return typed_options(self.method, self.options, f"the {self.method} options")

    @property
    def architecture(self) -> str | None:
        """The embedding net's name: ``model``, or the dataset's default net (None for your own
        data until its input shape is known: see ``resolved``)."""
        return self.model.model or facts(self.data.dataset).default_net

    @property
    def metric(self) -> str:
        """The geometry the run learns and is evaluated and searched in."""
        return self.model.metric or method_class(self.method).metric(self.method_options)

    def resolved(self, input_shape: tuple[int, ...] | None = None) -> TrainConfig:
        """A copy with the dataset's and the method's defaults filled in, every option checked.

        Your own data without a method gets ``OWN_DATA_DEFAULTS`` (batch mining), and its
        default net depends on its samples: with their ``input_shape`` known, the net
        ``models.choice.architecture_for`` picks; until then the net (and its learning rate)
        stays open."""
        config = TrainConfig.from_dict(self.to_dict())
        object.__setattr__(config, "method_given", self.method_given)
        dataset = config.data.dataset
        own_data = is_own_data(dataset)
        if own_data:
            config.fill_own_data_method()
        method = method_class(config.method)
        if config.model.model is None and config.architecture is None and input_shape:
            config.model.model = architecture_for(input_shape)
        known = facts(dataset)
        defaults = {"epochs": known.epochs, "lr": known.lr, "embedding_dim": known.embedding_dim}
        if own_data and config.own_data_recipe:
            defaults.update(
                {name: OWN_DATA_DEFAULTS[name] for name in OWN_DATA_DEFAULTS if name in SECTION_OF}
            )
        if config.architecture not in WITH_LAYER_OPTIONS:
            defaults.pop("final_relu", None)  # only the paper nets have the choice
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

    @property
    def own_data_recipe(self) -> bool:
        """Does this train by OWN_DATA_DEFAULTS' method and loss (its miner may differ)?"""
        recipe = OWN_DATA_DEFAULTS
        return self.method == recipe["method"] and self.options.get("loss") == recipe["loss"]

    def fill_own_data_method(self) -> None:
        """Your own data's method: ``OWN_DATA_DEFAULTS``' when none was chosen (and no option
        of another method was given), with its loss and miner when no loss was given."""
        default = OWN_DATA_DEFAULTS["method"]
        if not self.method_given:
            own = {item.name for item in dataclasses.fields(method_class(default).Options)}
            if set(self.options) <= own:
                object.__setattr__(self, "method", default)
        if self.method == default and self.options.get("loss") is None:
            for name in OWN_DATA_METHOD_OPTIONS:
                if self.options.get(name) is None:
                    self.options[name] = OWN_DATA_DEFAULTS[name]

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
