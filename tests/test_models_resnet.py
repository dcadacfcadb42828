"""Our ResNet-18/50 against torchvision's: the same state-dict names and shapes, the same
features for the same weights, and torchvision-named safetensors weights loading into ours.

torchvision is not installed beside this torch; the fixtures in tests/fixtures/ were made with
torchvision 0.29.1 in a separate environment: the (name, shape) list of each ResNet's
state_dict(), and the pooled features of each ResNet whose tensors were all set by ``fill`` below,
on ``fixed_input()``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tripletnet.errors import TripletnetError
from tripletnet.models import EmbeddingModel, build_model
from tripletnet.models.resnet import (
    ResNet,
    adapt_input_conv,
    guess_resnet,
    load_torchvision_weights,
    resnet18,
    resnet50,
)

FIXTURES = Path(__file__).parent / "fixtures"
BUILD = {"resnet18": resnet18, "resnet50": resnet50}
WIDTH = {"resnet18": 512, "resnet50": 2048}


def fill(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The fixtures' weights: a deterministic tensor from a name's length and a shape alone
    (running variances positive, convs scaled by He's sqrt(2 / fan_in), batch-norm scales near 1).
    """
    if name.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.long)
    numel = math.prod(shape)
    values = torch.sin(torch.arange(numel, dtype=torch.float64) * 0.37 + 0.1 * len(name))
    if name.endswith("running_var"):
        values = 1.0 + 0.5 * values
    elif len(shape) > 1:
        values = values * math.sqrt(2.0 / (numel // shape[0]))
    elif name.endswith(".weight"):
        values = 1.0 + 0.1 * values
    else:
        values = 0.1 * values
    return values.reshape(shape).to(torch.float32)


def fixed_input() -> torch.Tensor:
    """The fixtures' input: one 3x64x64 image of a sine wave."""
    grid = torch.linspace(0.0, 60.0, 3 * 64 * 64, dtype=torch.float64)
    return torch.sin(grid).reshape(1, 3, 64, 64).float()


def torchvision_keys(arch: str) -> list[tuple[str, tuple[int, ...]]]:
    keys = json.loads((FIXTURES / f"torchvision_{arch}_keys.json").read_text())["keys"]
    return [(name, tuple(shape)) for name, shape in keys]


def torchvision_features(arch: str) -> torch.Tensor:
    values = json.loads((FIXTURES / f"torchvision_{arch}_features.json").read_text())["features"]
    return torch.tensor(values, dtype=torch.float32)


def torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    """A state dict as torchvision would save it (fc included), every tensor by ``fill``."""
    return {name: fill(name, shape) for name, shape in torchvision_keys(arch)}


def save_torchvision_weights(
    arch: str, path: Path, changes: dict[str, torch.Tensor | None] | None = None
) -> Path:
    """torchvision-named weights in a safetensors file; ``changes`` replace (None: drop) some."""
    state = torchvision_state(arch)
    for name, tensor in (changes or {}).items():
        if tensor is None:
            del state[name]
        else:
            state[name] = tensor
    save_file(state, str(path))
    return path


def assert_matches(features: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(features, expected, atol=1e-4 * max(scale, 1.0), rtol=1e-4)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_names_and_shapes_are_torchvisions(arch: str) -> None:
    ours = [(name, tuple(t.shape)) for name, t in BUILD[arch]().state_dict().items()]
    theirs = [(name, shape) for name, shape in torchvision_keys(arch) if not name.startswith("fc.")]
    assert ours == theirs  # same names, shapes and order; the classifier fc left out
    assert any(name.startswith("fc.") for name, _ in torchvision_keys(arch))
    assert guess_resnet(name for name, _ in torchvision_keys(arch)) == arch
    assert guess_resnet(["conv1.weight", "layer1.0.conv1.weight"]) is None


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_same_weights_give_torchvisions_features(arch: str) -> None:
    model = BUILD[arch]().eval()
    model.load_state_dict(
        {name: fill(name, tuple(t.shape)) for name, t in model.state_dict().items()}
    )
    with torch.no_grad():
        features = model(fixed_input())
    assert features.shape == (1, WIDTH[arch])
    assert_matches(features[0], torchvision_features(arch))


def test_torchvision_weights_load_from_safetensors(tmp_path: Path) -> None:
    path = save_torchvision_weights("resnet18", tmp_path / "resnet18.safetensors")
    model = resnet18()
    load_torchvision_weights(model, path)  # fc.weight and fc.bias are in the file: ignored
    with torch.no_grad():
        assert_matches(model.eval()(fixed_input())[0], torchvision_features("resnet18"))


def test_weights_load_through_build_model_before_the_head(tmp_path: Path) -> None:
    path = save_torchvision_weights("resnet18", tmp_path / "resnet18.safetensors")
    model = build_model("resnet18", (3, 64, 64), weights=str(path)).eval()
    assert isinstance(model, EmbeddingModel) and model.embedding_dim == 512
    with torch.no_grad():
        assert_matches(model(fixed_input())[0], torchvision_features("resnet18"))
    projected = build_model("resnet18", (3, 64, 64), 32, weights=str(path))
    torch.testing.assert_close(
        projected.state_dict()["backbone.conv1.weight"], fill("conv1.weight", (64, 3, 7, 7))
    )


def test_a_missing_batch_norm_counter_is_accepted(tmp_path: Path) -> None:
    state = {k: v for k, v in torchvision_state("resnet18").items() if "num_batches" not in k}
    save_file(state, str(tmp_path / "w.safetensors"))
    load_torchvision_weights(resnet18(), tmp_path / "w.safetensors")


def test_rgb_weights_on_grey_images_sum_the_stem_over_channels(tmp_path: Path) -> None:
    path = save_torchvision_weights("resnet18", tmp_path / "resnet18.safetensors")
    grey, rgb = resnet18(in_channels=1).eval(), resnet18().eval()
    load_torchvision_weights(grey, path)
    load_torchvision_weights(rgb, path)
    stem = fill("conv1.weight", (64, 3, 7, 7))
    torch.testing.assert_close(grey.conv1.weight.detach(), stem.sum(dim=1, keepdim=True))
    image = fixed_input()[:, :1]
    with torch.no_grad():  # a grey image is an RGB image with three equal channels
        torch.testing.assert_close(
            grey(image), rgb(image.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4
        )


def test_other_channel_counts_repeat_the_rgb_filters() -> None:
    stem = fill("conv1.weight", (64, 3, 7, 7))
    for channels in (2, 4, 7):
        adapted = adapt_input_conv(stem, channels)
        assert adapted.shape == (64, channels, 7, 7)
        torch.testing.assert_close(adapted[:, 0], stem[:, 0] * 3 / channels)
    six = adapt_input_conv(stem, 6)  # a multiple of 3: a constant image gives the same response
    torch.testing.assert_close(six.sum(dim=1), stem.sum(dim=1))
    assert adapt_input_conv(stem, 3) is stem


def test_mismatched_weights_are_one_clear_error(tmp_path: Path) -> None:
    dropped = save_torchvision_weights(
        "resnet18", tmp_path / "a.safetensors", {"layer1.0.conv1.weight": None}
    )
    with pytest.raises(TripletnetError, match=r"missing layer1\.0\.conv1\.weight; ") as caught:
        load_torchvision_weights(resnet18(), dropped)
    assert "\n" not in str(caught.value) and "safetensors.torch.save_file" in str(caught.value)
    extra = save_torchvision_weights(
        "resnet18", tmp_path / "b.safetensors", {"layer5.0.conv1.weight": torch.zeros(1)}
    )
    with pytest.raises(TripletnetError, match=r"unexpected layer5\.0\.conv1\.weight"):
        load_torchvision_weights(resnet18(), extra)
    reshaped = save_torchvision_weights(
        "resnet18", tmp_path / "c.safetensors", {"bn1.bias": torch.zeros(32)}
    )
    with pytest.raises(
        TripletnetError, match=r"reshaped bn1\.bias \(32,\) in the file, \(64,\) here"
    ):
        load_torchvision_weights(resnet18(), reshaped)
    deeper = save_torchvision_weights("resnet50", tmp_path / "d.safetensors")
    with pytest.raises(
        TripletnetError,
        match=r"unexpected .*\(\+\d+ more\); reshaped .*resnet50's weights; use --model resnet50$",
    ):
        load_torchvision_weights(resnet18(), deeper)
    shallower = save_torchvision_weights("resnet18", tmp_path / "e.safetensors")
    with pytest.raises(
        TripletnetError, match=r"^--weights .* do not fit the ResNet: missing .*resnet18's"
    ):
        load_torchvision_weights(resnet50(), shallower)


def test_unreadable_weight_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TripletnetError, match="no such file"):
        load_torchvision_weights(resnet18(), tmp_path / "absent.safetensors")
    pickled = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, pickled)
    with pytest.raises(TripletnetError, match="is not a safetensors file .*weights_only=True"):
        load_torchvision_weights(resnet18(), pickled)
    with pytest.raises(TripletnetError, match="no such file"):
        build_model("resnet18", (3, 32, 32), weights=str(tmp_path / "absent.safetensors"))


@pytest.mark.parametrize("size", [32, 64, 96])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_output_shapes(arch: str, size: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    plain = build_model(arch, (3, size, size)).eval()
    projected = build_model(arch, (3, size, size), embedding_dim=64).eval()
    with torch.no_grad():
        assert plain(x).shape == (2, WIDTH[arch]) and plain.embedding_dim == WIDTH[arch]
        assert projected(x).shape == (2, 64) and projected.embedding_dim == 64


def test_channels_last_inputs_give_the_same_features() -> None:
    torch.manual_seed(0)
    model = resnet18(in_channels=1).eval()
    x = torch.randn(3, 1, 40, 40)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_training_step_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", (1, 28, 28), embedding_dim=16, normalize=True)
    model(torch.randn(4, 1, 28, 28)).pow(2).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_wrong_inputs_are_refused() -> None:
    with pytest.raises(TripletnetError, match=r"takes \(N, 3, H, W\) images.*in_channels=1"):
        resnet18()(torch.zeros(1, 1, 32, 32))
    with pytest.raises(TripletnetError, match="takes images"):
        build_model("resnet50", (64,))
    with pytest.raises(TripletnetError, match="no --factory-args"):
        build_model("resnet18", (3, 32, 32), factory_args={"depth": 34})
    with pytest.raises(TripletnetError, match="no --dropout option"):
        build_model("resnet18", (3, 32, 32), dropout=0.5)
    assert isinstance(resnet50(), ResNet)
