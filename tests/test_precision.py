"""--precision: autocast dtypes, fp16's GradScaler, float32 losses, bit-exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tripletnet.errors import TripletnetError
from tripletnet.models import build_model
from tripletnet.runs import read_metadata
from tripletnet.training import TrainConfig, train
from tripletnet.training.methods.random_triplets import RandomTriplets
from tripletnet.training.precision import compute_dtype

CPU = torch.device("cpu")


def test_each_precision_names_its_autocast_dtype() -> None:
    assert compute_dtype("fp32", CPU) is None
    assert compute_dtype("bf16", CPU) is torch.bfloat16
    assert compute_dtype("fp16", CPU) is torch.float16
    assert compute_dtype("auto", CPU) is None  # 16 bits only where a GPU makes them pay
    with pytest.raises(TripletnetError, match="--precision"):
        compute_dtype("fp8", CPU)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_net_returns_float32_embeddings_under_autocast(dtype: torch.dtype) -> None:
    model = build_model("small-conv", (1, 8, 8), 16)
    model.compute_dtype = dtype
    out = model(torch.randn(4, 1, 8, 8))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_fp16_keeps_its_loss_scale_in_the_checkpoint_and_resumes_exactly(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_config.optim.precision = "fp16"
    tiny_config.optim.epochs = 2
    train(tiny_config, tmp_path / "straight", show_progress=False, log_epochs=False)
    original = RandomTriplets.batches

    def killed_in_epoch_2(self, epoch):  # type: ignore[no-untyped-def]
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(RandomTriplets, "batches", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config, tmp_path / "resumed", show_progress=False, log_epochs=False)
    scaler = read_metadata(tmp_path / "resumed" / "checkpoint.safetensors")["grad_scaler"]
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler
    monkeypatch.setattr(RandomTriplets, "batches", original)
    train(None, tmp_path / "resumed", resume=True, show_progress=False, log_epochs=False)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.slow  # torch.compile builds C++ kernels on the CPU: a minute or more
def test_compile_trains_the_same_run(tmp_path: Path, tiny_config: TrainConfig) -> None:
    from tripletnet.files import read_json

    tiny_config.optim.epochs = 1
    train(tiny_config, tmp_path / "eager", show_progress=False, log_epochs=False)
    tiny_config.optim.compile = True
    train(tiny_config, tmp_path / "compiled", show_progress=False, log_epochs=False)
    eager = read_json(tmp_path / "eager" / "history.json")[0]
    compiled = read_json(tmp_path / "compiled" / "history.json")[0]
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-3)
