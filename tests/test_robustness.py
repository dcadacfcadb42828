"""Robustness: corruptions, attacks, the mCE, stability, training defences, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from tripletnet.cli import main
from tripletnet.robustness.attacks import fgsm, pgd
from tripletnet.robustness.corruptions import (
    ALL,
    IMAGENET_C,
    MNIST_C,
    CorruptionError,
    augmix,
    catalogue,
    corrupt,
    corrupted,
)
from tripletnet.robustness.mce import corruption_errors
from tripletnet.robustness.perturbations import sequence, stability
from tripletnet.training import TrainConfig, train
from tripletnet.training.run import build


def _digits(n: int = 32, channels: int = 1) -> torch.Tensor:
    """Real digit images upscaled to 28 x 28, in [0, 1] (colour: tinted copies)."""
    x = torch.tensor(load_digits().images[:n], dtype=torch.float32)[:, None] / 16
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return (
        x if channels == 1 else x.repeat(1, 3, 1, 1) * torch.tensor([1, 0.7, 0.4]).view(1, 3, 1, 1)
    )


CASES = [(name, 1) for name in MNIST_C] + [(name, 3) for name in IMAGENET_C]


@pytest.mark.parametrize(("name", "channels"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_corruption_is_seeded_identity_at_0_and_monotone(name: str, channels: int) -> None:
    x = _digits(channels=channels)
    assert corrupt(x, name, 0, seed=3) is x
    first, again = corrupt(x, name, 3, seed=3), corrupt(x, name, 3, seed=3)
    assert torch.equal(first, again)
    assert first.shape == x.shape and first.min() >= 0 and first.max() <= 1
    change = [float((corrupt(x, name, s, seed=3) - x).abs().mean()) for s in range(6)]
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), change


def test_the_catalogues() -> None:
    assert len(MNIST_C) == 15 and catalogue(1) is MNIST_C
    assert catalogue(3) is IMAGENET_C and "frost" not in IMAGENET_C  # needs frost photographs
    assert set(ALL) == set(MNIST_C) | set(IMAGENET_C)


def test_bad_corruption_requests() -> None:
    x = _digits(2)
    with pytest.raises(CorruptionError, match="frost"):
        corrupt(x, "frost", 1)
    with pytest.raises(CorruptionError, match="severity"):
        corrupt(x, "fog", 6)
    with pytest.raises(CorruptionError, match="images"):
        corrupt(x.flatten(1), "fog", 1)


def test_training_corruptions_keep_the_pixel_scale_and_change_some_images() -> None:
    torch.manual_seed(0)
    raw = _digits(16) * 16  # digits' 0..16 scale
    out = corrupted(raw, 16.0, "random")
    changed = (out - raw).flatten(1).abs().amax(1) > 0
    assert 0 < int(changed.sum()) < 16 and out.min() >= 0 and out.max() <= 16
    mixed = augmix(_digits(8), torch.Generator().manual_seed(0))
    assert mixed.shape == (8, 1, 28, 28) and torch.isfinite(mixed).all()


def _linear_loss() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    return net, _digits(16), torch.tensor(load_digits().target[:16])


def test_fgsm_raises_the_attacked_loss_within_the_ball() -> None:
    net, x, y = _linear_loss()

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(net(inputs), y, reduction="sum")

    moved = fgsm(loss, x, 0.1, low=0.0, high=1.0)
    assert float(loss(moved).detach()) > float(loss(x).detach())
    assert float((moved - x).abs().max()) <= 0.1 + 1e-6 and moved.min() >= 0 and moved.max() <= 1
    stronger = pgd(loss, x, 0.1, steps=10, low=0.0, high=1.0)
    assert float(loss(stronger).detach()) >= float(loss(moved).detach()) - 1e-3
    assert float((stronger - x).abs().max()) <= 0.1 + 1e-6
    l2 = pgd(loss, x, 1.0, steps=5, norm="l2")
    assert float((l2 - x).flatten(1).norm(dim=1).max()) <= 1.0 + 1e-4


def test_eps_0_is_the_identity_and_rows_limit_the_attack() -> None:
    net, x, y = _linear_loss()

    def loss(inputs: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(net(inputs), y, reduction="sum")

    assert torch.equal(pgd(loss, x, 0.0), x) and torch.equal(fgsm(loss, x, 0.0), x)
    rows = torch.arange(16) < 4
    moved = fgsm(loss, x, 0.1, rows=rows)
    assert torch.equal(moved[4:], x[4:]) and not torch.equal(moved[:4], x[:4])


def test_mce_arithmetic_on_a_hand_made_table() -> None:
    errors = {"blur": [0.1, 0.2, 0.3, 0.4, 0.5], "noise": [0.05] * 5}
    base = {"blur": [0.2, 0.4, 0.6, 0.8, 1.0], "noise": [0.1] * 5}
    out = corruption_errors(errors, 0.05, base, 0.1)
    assert out["ce"]["blur"] == pytest.approx(1.5 / 3.0)
    assert out["ce"]["noise"] == pytest.approx(0.25 / 0.5)
    assert out["mce"] == pytest.approx(0.5)
    # relative: sum(E - 0.05) / sum(Ebase - 0.1) = 1.25 / 2.5; noise: baseline gap 0, undefined
    assert out["relative_ce"]["blur"] == pytest.approx(0.5)
    assert out["relative_ce"]["noise"] is None and out["undefined_relative_ce"] == ["noise"]
    assert out["relative_mce"] == pytest.approx(0.5)
    nothing = corruption_errors({"a": [0.1] * 5}, 0.0, {"a": [0.0] * 5}, 0.0)
    assert nothing["ce"]["a"] is None and math.isnan(nothing["mce"])


def test_flip_probability_and_top5_overlap() -> None:
    predictions = np.array([[1, 1], [1, 2], [2, 2]])  # 3 frames, 2 queries
    ids = np.array([[[0, 1, 2, 3, 4]] * 2, [[0, 1, 2, 3, 9]] * 2, [[5, 6, 7, 8, 9]] * 2])
    consecutive = stability(predictions, ids, consecutive=True)
    assert consecutive["flip_probability"] == pytest.approx(2 / 4)  # 1->1,1->2 ; 1->2,2->2
    assert consecutive["top5_overlap"] == pytest.approx((4 / 5 + 1 / 5) / 2)
    reference = stability(predictions, ids, consecutive=False)
    assert reference["flip_probability"] == pytest.approx(3 / 4)
    assert reference["top5_overlap"] == pytest.approx((4 / 5 + 0) / 2)
    frames = sequence(_digits(4), "noise", 5, 0)
    assert frames.shape == (5, 4, 1, 28, 28) and torch.equal(frames[0], _digits(4))


def test_adversarial_training_raises_the_triplet_loss_of_the_anchors_only() -> None:
    config = TrainConfig(dataset="digits", epochs=1, triplets_per_epoch=64, batch_size=32,
                         adversarial="fgsm", eps=0.2)  # fmt: skip
    setup = build(config.resolved())
    method = setup.method
    rows = method.inner.attacked_rows(96, positives=False)  # type: ignore[attr-defined]
    assert rows[:32].all() and not rows[32:].any()
    indices, inputs = next(iter(setup.pipeline.epoch(list(method.batches(0)))))
    setup.model.eval()  # no dropout: the clean and the attacked loss see the same function
    loss, statistics = method.loss(setup.model, indices, inputs)
    clean, _ = method.inner.loss(setup.model, indices, inputs)  # type: ignore[attr-defined]
    assert float(statistics["adversarial_loss"]) > float(clean.detach())
    assert torch.isfinite(loss) and loss.requires_grad


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("robust") / "run"
    config = TrainConfig(dataset="digits", epochs=1, triplets_per_epoch=256, batch_size=64,
                         test_triplets=200, augment_corruptions=True, adversarial="pgd",
                         adversarial_steps=2, eps=0.05)  # fmt: skip
    train(config, out, show_progress=False, log_epochs=False)
    return out


def test_the_command_end_to_end_on_digits(
    digits_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tripletnet.robustness.report.CHUNK", 8)  # 30 attacked queries: 4 chunks
    out = tmp_path / "report"
    args = ["robustness", str(digits_run), "--out", str(out), "--queries", "60", "--gallery",
            "200", "--attack-queries", "30", "--eps", "0,0.1", "--pgd-steps", "3",
            "--corruptions", "fog,rotate,shot_noise"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert set(report["corruptions"]["per_corruption"]) == {"fog", "rotate", "shot_noise"}
    assert math.isfinite(report["corruptions"]["mce"])
    for target in ("knn", "retrieval"):
        assert report["adversarial"][target]["checks"]["eps0_unchanged"] is True
    assert set(report["stability"]) >= {"noise", "shift", "brightness"}
    for name in ("robustness.md", "corruptions.png", "adversarial_knn.png", "examples.png"):
        assert (out / name).is_file()
    assert "mCE" in (out / "robustness.md").read_text()
    with_baseline = tmp_path / "again"
    assert main([*args[:3], str(with_baseline), *args[4:], "--baseline", str(digits_run),
                 "--skip", "adversarial,stability"]) == 0  # fmt: skip
    again = json.loads((with_baseline / "robustness.json").read_text())
    assert again["corruptions"]["mce"] == pytest.approx(1.0)  # the run against itself
