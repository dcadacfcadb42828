"""User networks (``package.module:factory``), timm, and the embedding head on any backbone:
projection, L2 normalisation (for every net), mixed precision, weights and the clear errors."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tripletnet.errors import TripletnetError
from tripletnet.models import (
    ARCHITECTURES,
    EmbeddingModel,
    build_model,
    check_layer_options,
    import_factory,
    is_external,
    is_normalized,
)
from tripletnet.models.external import build_external
from tripletnet.models.feature_maps import feature_map

NETS = '''
import torch
from torch import nn

CONSTANT = 3


def conv(width: int = 8, channels: int = 1) -> nn.Module:
    """Feature maps: (N, width, H, W)."""
    return nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())


def flat(features: int = 10) -> nn.Module:
    """Pooled features: (N, features)."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(features))


def not_a_module():
    return "a string"


def tokens():
    return nn.Flatten(2)


class Nets:
    @staticmethod
    def small() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of factories the test writes; a fresh name each time (imports are cached)."""
    name = f"user_nets_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_is_external() -> None:
    assert is_external("timm:resnet18") and is_external("my.nets:build")
    assert not any(is_external(name) for name in ARCHITECTURES)
    assert {"resnet18", "resnet50"} <= set(ARCHITECTURES)


def test_a_user_factory_builds_an_embedding_model(user_module: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 1, 12, 12)
    maps = build_model(f"{user_module}:conv", (1, 12, 12), factory_args={"width": 6})
    assert isinstance(maps, EmbeddingModel) and maps.embedding_dim == 6
    torch.testing.assert_close(maps(x), maps.backbone(x).mean(dim=(2, 3)))  # pooled maps
    assert build_model(f"{user_module}:conv", (1, 12, 12), 3)(x).shape == (4, 3)
    flat = build_model(f"{user_module}:flat", (1, 12, 12))
    assert flat(x).shape == (4, 10) and flat.layer_options() == {}
    dotted = build_model(f"{user_module}:Nets.small", (1, 4, 4))
    assert dotted(torch.zeros(2, 1, 4, 4)).shape == (2, 5)


def test_the_factory_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_nets_here.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    monkeypatch.delitem(sys.modules, "cwd_nets_here", raising=False)
    assert callable(import_factory("cwd_nets_here:conv"))


@pytest.mark.parametrize("spec", ["nets:", ":build", "my nets:build", "nets:build()", "a..b:c"])
def test_malformed_factory_strings_are_refused(spec: str) -> None:
    with pytest.raises(TripletnetError, match="is not package.module:factory"):
        import_factory(spec)


def test_bad_factories_are_clear_errors(user_module: str, tmp_path: Path) -> None:
    with pytest.raises(TripletnetError, match="no module 'no_such_nets_here'.*PYTHONPATH"):
        import_factory("no_such_nets_here:build")
    with pytest.raises(TripletnetError, match=r"has no 'build'.*its callables: Nets, conv, flat"):
        import_factory(f"{user_module}:build")
    with pytest.raises(TripletnetError, match="'CONSTANT' is a int, not a callable"):
        import_factory(f"{user_module}:CONSTANT")
    with pytest.raises(TripletnetError, match="returned a str, not a torch.nn.Module"):
        build_model(f"{user_module}:not_a_module", (1, 8, 8))
    with pytest.raises(TripletnetError, match=r"does not take the arguments \{'depth': 3\}.*width"):
        build_model(f"{user_module}:conv", (1, 8, 8), factory_args={"depth": 3})
    with pytest.raises(TripletnetError, match=r"returned \(2, 1, 64\).*\(N, F\) features"):
        build_model(f"{user_module}:tokens", (1, 8, 8))
    with pytest.raises(TripletnetError, match=r"fails on inputs of shape \(3, 8, 8\)"):
        build_model(f"{user_module}:conv", (3, 8, 8))  # a 1-channel conv on 3 channels
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_dependency_here\n")
    with pytest.raises(TripletnetError, match="needs the module 'no_such_dependency_here'"):
        import_factory("needs_missing_dep:build")
    (tmp_path / "broken_syntax_nets.py").write_text("def build(:\n")
    with pytest.raises(TripletnetError, match="importing 'broken_syntax_nets' failed"):
        import_factory("broken_syntax_nets:build")


def test_options_the_user_network_lacks_are_refused(user_module: str) -> None:
    for option in ("final_relu", "batch_norm"):
        flag = option.replace("_", "-")
        for name in ("resnet18", f"{user_module}:conv", "timm:resnet18"):
            with pytest.raises(TripletnetError, match=f"no {flag} choice"):
                check_layer_options(name, {option: True})
        with pytest.raises(TripletnetError, match=f"no {flag} choice"):
            build_model(f"{user_module}:conv", (1, 8, 8), **{option: False})
    with pytest.raises(TripletnetError, match="no --dropout option .pass it in --factory-args"):
        build_model(f"{user_module}:conv", (1, 8, 8), dropout=0.1)
    with pytest.raises(TripletnetError, match="--factory-args applies to"):
        build_model("mnist", (1, 28, 28), factory_args={"width": 3})
    with pytest.raises(TripletnetError, match="must be a JSON object"):
        build_model(f"{user_module}:conv", (1, 8, 8), factory_args=[3])
    with pytest.raises(TripletnetError, match="unknown model 'resnet34'.*package.module:factory"):
        build_model("resnet34", (3, 32, 32))


def test_weights_in_the_backbones_own_names(user_module: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_model(f"{user_module}:conv", (1, 8, 8), 4)
    assert isinstance(source, EmbeddingModel)
    path = tmp_path / "conv.safetensors"
    save_file(source.backbone.state_dict(), str(path))
    torch.manual_seed(1)
    loaded = build_model(f"{user_module}:conv", (1, 8, 8), weights=str(path))
    assert isinstance(loaded, EmbeddingModel)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded.backbone(x), source.backbone(x))
    with pytest.raises(
        TripletnetError,
        match=r"reshaped .*0\.weight \(8, 1, 3, 3\) in the file, \(16, 1, 3, 3\) here",
    ):
        build_model(f"{user_module}:conv", (1, 8, 8), factory_args={"width": 16}, weights=str(path))


def test_weights_for_a_paper_net_in_its_own_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_model("mnist", (1, 28, 28))
    path = tmp_path / "mnist.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = build_model("mnist", (1, 28, 28), weights=str(path), normalize=True)
    x = torch.randn(3, 1, 28, 28)
    source.eval(), loaded.eval()
    torch.testing.assert_close(loaded(x), torch.nn.functional.normalize(source(x)))
    with pytest.raises(
        TripletnetError, match=r"MnistNet: missing net\.1\.bias.*; unexpected net\.4\.bias"
    ):
        build_model("mnist", (1, 28, 28), batch_norm=True, weights=str(path))


def unit_rows(x: torch.Tensor) -> None:
    torch.testing.assert_close(x.norm(dim=1), torch.ones(len(x)), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "architecture, shape",
    [("mlp", (64,)), ("small-conv", (1, 8, 8)), ("mnist", (1, 28, 28)), ("cifar", (3, 32, 32))]
    + [("semisup-mnist", (1, 28, 28)), ("stl10", (3, 96, 96)), ("resnet18", (3, 32, 32))],
)
def test_normalize_gives_unit_rows_on_every_net(architecture: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    plain = build_model(architecture, shape)
    normalized = build_model(architecture, shape, normalize=True)
    assert is_normalized(normalized) and not is_normalized(plain)
    assert normalized.layer_options() == plain.layer_options()  # the recorded choices as before
    assert list(normalized.state_dict()) == list(plain.state_dict())  # the same weights' names
    normalized.load_state_dict(plain.state_dict())
    x = torch.randn(5, *shape)
    plain.eval(), normalized.eval()
    unit_rows(normalized(x))
    torch.testing.assert_close(normalized(x), torch.nn.functional.normalize(plain(x)))


def test_normalize_keeps_a_zero_row_finite() -> None:
    model = EmbeddingModel(nn.Flatten(), (3,), normalize=True)
    out = model(torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.8]]))


def test_embedding_dim_projects_and_normalize_follows(user_module: str) -> None:
    model = build_model(f"{user_module}:flat", (1, 6, 6), 7, normalize=True)
    assert isinstance(model, EmbeddingModel) and isinstance(model.projection, nn.Linear)
    assert model.projection.in_features == 10 and model.embedding_dim == 7
    out = model(torch.randn(3, 1, 6, 6))
    assert out.shape == (3, 7)
    unit_rows(out)
    same = build_model(f"{user_module}:flat", (1, 6, 6), 10)  # the backbone's own width
    assert isinstance(same, EmbeddingModel) and same.projection is None
    with pytest.raises(TripletnetError, match="--embedding-dim must be at least 1"):
        build_model(f"{user_module}:flat", (1, 6, 6), 0)


def test_an_embedding_model_has_no_sequential_net_to_pretend(user_module: str) -> None:
    model = build_model(f"{user_module}:conv", (1, 8, 8))
    assert not hasattr(model, "net")
    with pytest.raises(TripletnetError, match="no sequential .net"):
        feature_map(model, torch.zeros(1, 1, 8, 8), 1)


def test_bf16_compute_dtype_returns_float32(user_module: str) -> None:
    torch.manual_seed(0)
    for model in (
        build_model("resnet18", (3, 32, 32), 16, normalize=True),
        build_model(f"{user_module}:conv", (1, 12, 12), 5),
    ):
        assert isinstance(model, EmbeddingModel)
        model.eval()
        x = torch.randn(4, *model.input_shape)
        full = model(x)
        model.compute_dtype = torch.bfloat16
        mixed = model(x)
        assert mixed.dtype == torch.float32
        torch.testing.assert_close(mixed, full, atol=0.03 * full.abs().max().item(), rtol=0.05)
        mixed.sum().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_the_dry_forward_restores_training_mode() -> None:
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    model = EmbeddingModel(backbone, (1, 8, 8))
    assert backbone.training and model.feature_dim == 4
    assert int(backbone[1].num_batches_tracked) == 0  # eval mode: statistics untouched


def test_timm_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now fails, installed or not
    with pytest.raises(
        TripletnetError, match="needs timm, which is not installed: pip install timm"
    ):
        build_model("timm:resnet18", (3, 32, 32))
    with pytest.raises(TripletnetError, match="needs a NAME"):
        build_external("timm:", (3, 32, 32))


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_models_get_the_head() -> None:
    model = build_model("timm:resnet18", (1, 32, 32), 8, normalize=True)
    assert isinstance(model, EmbeddingModel) and model.feature_dim == 512
    unit_rows(model(torch.randn(2, 1, 32, 32)))
    with pytest.raises(TripletnetError, match="timm has no model 'no_such_net_here'"):
        build_model("timm:no_such_net_here", (3, 32, 32))
