"""Networks the user brings: ``package.module:factory`` (their own code) or ``timm:NAME``, and
safetensors weights to start them from (never unpickled).

A factory is any callable that returns an ``nn.Module`` mapping a batch to (N, F) features or
(N, C, H, W) maps; :class:`~tripletnet.models.heads.EmbeddingModel` puts the embedding head on it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import RunFolderError, TripletnetError
from ..trust import TRUST_FLAG, TRUST_VARIABLE, trusts_model_code

TIMM_PREFIX = "timm:"
EXTERNAL_FORMS = ("timm:NAME", "package.module:factory")  # for help text
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SHOWN = 3  # how many names an error lists of each kind


def is_external(architecture: str) -> bool:
    """Is ``architecture`` a network from outside tripletnet (``timm:NAME`` or
    ``package.module:factory``) rather than a built-in name?"""
    return ":" in architecture


def is_own_code(architecture: str) -> bool:
    """Is ``architecture`` a ``package.module:factory`` (code that building it runs), rather
    than a built-in net or ``timm:NAME``?"""
    return is_external(architecture) and not architecture.startswith(TIMM_PREFIX)


# timm arguments that make timm fetch or read weights itself (a download, a pickled checkpoint)
TIMM_LOADING_ARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")


def check_model_code(
    architecture: str,
    where: str,
    trust_model_code: bool | None = None,
    factory_args: Mapping[str, Any] | None = None,
) -> None:
    """Refuse to rebuild the ``package.module:factory`` that ``where`` (a run, a model file)
    names unless its code is trusted: ``trust_model_code``, or where that is None the variable
    TRIPLETNET_TRUST_MODEL_CODE. Called before anything is imported; built-in nets pass, and
    ``timm:NAME`` too unless its ``factory_args`` make timm load weights of its own."""
    if trusts_model_code(trust_model_code):
        return
    how = f"if you trust where it came from, pass {TRUST_FLAG} (or set {TRUST_VARIABLE}=1)"
    if architecture.startswith(TIMM_PREFIX):
        loading = [name for name in TIMM_LOADING_ARGS if (factory_args or {}).get(name)]
        if loading:
            raise RunFolderError(
                f"{where} asks timm to load weights itself ({', '.join(loading)} in its "
                f"factory_args), which may download or unpickle a file; {how}"
            )
        return
    if not is_own_code(architecture):
        return
    module, _, factory = architecture.partition(":")
    raise RunFolderError(
        f"{where} names its network by code, factory {factory!r} of module {module!r}: loading "
        f"it would import {module!r} and call {factory!r}; {how}"
    )


def _describe(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _split(spec: str) -> tuple[str, str]:
    module, _, attribute = spec.partition(":")
    if not (_DOTTED.match(module) and _DOTTED.match(attribute)):
        raise TripletnetError(
            f"--model {spec!r} is not package.module:factory (e.g. mynets:build, a function "
            "build in mynets.py that returns an nn.Module), timm:NAME, or a built-in net"
        )
    return module, attribute


def _import(module: str, spec: str) -> Any:
    """Import ``module`` (of ``--model spec``) from the working directory or sys.path (the
    working directory first, as ``python -m`` does; it stays on sys.path, so the module's own
    lazy imports work too). Whatever its body raises is one clear error."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module == missing or module.startswith(missing + "."):
            raise TripletnetError(
                f"cannot import {module!r}: no module {missing!r} in {cwd} or on sys.path; run "
                "from the folder that holds it, add that folder to PYTHONPATH, or pip install it"
            ) from error
        raise TripletnetError(
            f"importing {module!r} failed: it needs the module {missing!r}; pip install it"
        ) from error
    except (ImportError, SyntaxError) as error:
        raise TripletnetError(f"importing {module!r} failed: {error}") from error
    except TripletnetError:
        raise
    except Exception as error:  # the module's own code raised while it was imported
        raise TripletnetError(
            f"importing {module!r} (--model {spec}) failed: it raised {_describe(error)}"
        ) from error


def import_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:factory"`` (``factory`` may be dotted, e.g.
    ``mynets:Nets.small``), imported from the working directory or sys.path."""
    module_name, attribute = _split(spec)
    target: Any = _import(module_name, spec)
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(
                name
                for name, value in vars(target).items()
                if callable(value) and not name.startswith("_")
            )
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") or "none"
            raise TripletnetError(
                f"{module_name!r} has no {attribute!r} (--model {spec}); its callables: {shown}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise TripletnetError(
            f"--model {spec}: {attribute!r} is a {type(target).__name__}, not a callable; name "
            "a function or class that returns an nn.Module"
        )
    return target


def call_factory(
    factory: Callable[..., Any], factory_args: Mapping[str, Any], what: str
) -> nn.Module:
    """``factory(**factory_args)``, checked: the arguments must fit its signature and the result
    must be an ``nn.Module``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have none: let the call decide
        signature = None
    if signature is not None:
        try:
            signature.bind(**factory_args)
        except TypeError as error:
            raise TripletnetError(
                f"{what} does not take the arguments {dict(factory_args)} ({error}); its "
                f"signature is {signature}: fix --factory-args"
            ) from error
    try:
        module = factory(**factory_args)
    except TripletnetError:
        raise
    except Exception as error:  # the factory's own code raised
        raise TripletnetError(f"{what} failed: calling it raised {_describe(error)}") from error
    if not isinstance(module, nn.Module):
        raise TripletnetError(
            f"{what} returned a {type(module).__name__}, not a torch.nn.Module; it must return "
            "the network (a module mapping a batch to features)"
        )
    return module


def timm_backbone(name: str, in_channels: int, factory_args: Mapping[str, Any]) -> nn.Module:
    """``timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels,
    **factory_args)``: timm's net without its classifier, returning pooled (N, F) features."""
    try:
        import timm
    except ModuleNotFoundError as error:
        raise TripletnetError(
            f"--model timm:{name} needs timm, which is not installed: pip install timm"
        ) from error
    if not timm.is_model(name):
        raise TripletnetError(
            f'timm has no model {name!r}; list them with python -c "import timm; '
            f"print(timm.list_models('*{name[:8]}*'))\""
        )
    options = {"pretrained": False, "num_classes": 0, "in_chans": in_channels, **factory_args}
    return call_factory(
        lambda **kwargs: timm.create_model(name, **kwargs), options, f"timm model {name}"
    )


def build_external(
    name: str, input_shape: tuple[int, ...], factory_args: Mapping[str, Any] | None = None
) -> nn.Module:
    """The backbone named ``timm:NAME`` (images (C, H, W): ``in_chans=C``) or
    ``package.module:factory`` (called with ``**factory_args``)."""
    factory_args = dict(factory_args or {})
    if name.startswith(TIMM_PREFIX):
        model_name = name[len(TIMM_PREFIX) :]
        if not model_name:
            raise TripletnetError("--model timm:NAME needs a NAME, e.g. timm:resnet18")
        if len(input_shape) != 3:
            raise TripletnetError(
                f"--model {name} takes images (C, H, W), got inputs of shape {input_shape}"
            )
        return timm_backbone(model_name, input_shape[0], factory_args)
    return call_factory(import_factory(name), factory_args, f"--model {name}")


# ---- weights ----------------------------------------------------------------------------------


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU; never unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise TripletnetError(f"--weights {path}: no such file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise TripletnetError(
            f"--weights {path} is not a safetensors file ({error}); convert a PyTorch .pth with "
            "safetensors.torch.save_file(torch.load(PTH, weights_only=True), PATH)"
        ) from error


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def check_state_dict(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], path: str | Path, hint: str
) -> None:
    """Refuse, in one line, tensors whose names or shapes do not match ``model.state_dict()``
    (batch norm's ``num_batches_tracked`` counter may be absent)."""
    expected = model.state_dict()
    missing = [
        name
        for name in expected
        if name not in tensors and not name.endswith("num_batches_tracked")
    ]
    unexpected = [name for name in tensors if name not in expected]
    reshaped = [
        f"{name} {tuple(tensor.shape)} in the file, {tuple(expected[name].shape)} here"
        for name, tensor in tensors.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    problems = [
        f"{label} {_few(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("reshaped", reshaped),
        )
        if names
    ]
    if problems:
        raise TripletnetError(
            f"--weights {path} do not fit the {type(model).__name__}: {'; '.join(problems)}; "
            + hint
        )


def load_weights(model: nn.Module, path: str | Path, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load a safetensors file of ``model``'s own ``state_dict()`` names (those starting with
    one of ``ignore_prefixes``, e.g. a classifier, are left out), refusing any mismatch."""
    tensors = {
        name: tensor
        for name, tensor in read_weights(path).items()
        if not any(name.startswith(prefix) for prefix in ignore_prefixes)
    }
    hint = "save the same network with safetensors.torch.save_file(model.state_dict(), PATH)"
    check_state_dict(model, tensors, path, hint)
    model.load_state_dict(tensors, strict=False)  # checked above; num_batches_tracked may lack


def timm_classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The classifier's name prefix of a timm model (its ``pretrained_cfg["classifier"]``), whose
    weights a saved ImageNet state dict has but a ``num_classes=0`` model lacks."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    classifier = config.get("classifier") if isinstance(config, Mapping) else None
    if isinstance(classifier, str):
        return (classifier + ".",)
    if isinstance(classifier, (list, tuple)):
        return tuple(f"{name}." for name in classifier if isinstance(name, str))
    return ()


__all__ = [
    "EXTERNAL_FORMS",
    "TIMM_PREFIX",
    "build_external",
    "call_factory",
    "check_model_code",
    "check_state_dict",
    "import_factory",
    "is_external",
    "is_own_code",
    "load_weights",
    "read_weights",
    "timm_backbone",
    "timm_classifier_prefixes",
]
