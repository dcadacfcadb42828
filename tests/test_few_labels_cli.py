"""End to end on the bundled digits (as 1x8x8 images): pretrain -> fine-tune, semi-supervised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tripletnet.cli import main
from tripletnet.data import DatasetSplits, LabelledArray
from tripletnet.files import read_json
from tripletnet.models import build_model
from tripletnet.training import METHODS, load_run
from tripletnet.training.pretrained import load_pretrained

QUICK = ["--dataset", "digits", "--epochs", "2", "--test-triplets", "500", "--no-progress"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sc"
    assert main(["pretrain", *QUICK, "--patch-size", "2", "--out", str(out)]) == 0
    return out


def test_pretrain_writes_a_run_with_the_plateau_schedule(pretrained: Path) -> None:
    config = read_json(pretrained / "config.json")
    assert config["method"]["name"] == "spatial-contrasting"
    assert config["optim"]["lr_schedule"] == "plateau" and config["optim"]["lr"] == 0.1
    assert config["method"]["patch_size"] == 2
    history = read_json(pretrained / "history.json")
    assert len(history) == 2 and all(np.isfinite(row["loss"]) for row in history)
    assert (pretrained / "metrics.json").is_file()


def test_finetune_from_pretrained_semi_supervised(pretrained: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    args = ["train", *QUICK, "--method", "semi-supervised", "--labels-per-class", "5"]
    args += ["--init", str(pretrained), "--lr", "0.01", "--augment-shift", "1", "--out", str(out)]
    assert main(args) == 0
    labelled = np.load(out / "labelled.npy")
    run = load_run(out)
    assert len(labelled) == 50
    metrics = read_json(out / "metrics.json")
    assert 0.0 <= metrics["classification"]["labelled"]["knn_accuracy"] <= 1.0
    assert "fit on the labelled samples only | 64 |" in (out / "report.md").read_text()
    assert metrics["classification"]["labelled"]["k"] == 1  # a 1-NN row, in a k column
    assert read_json(out / "config.json")["model"]["init"] == str(pretrained)
    assert run.config.options["labels_per_class"] == 5


def test_init_copies_the_pretrained_weights(pretrained: Path) -> None:
    run = load_run(pretrained)
    model = build_model(run.spec.architecture, (1, 8, 8))
    load_pretrained(model, pretrained, run.spec)
    for (name, mine), theirs in zip(
        model.state_dict().items(), run.model.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs), name


def test_init_from_another_architecture_is_a_clear_error(
    pretrained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", *QUICK, "--model", "mnist", "--init", str(pretrained)]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    assert "its architecture is 'small-conv'" in capsys.readouterr().err


def test_semi_supervised_learns_from_few_digit_labels(tmp_path: Path) -> None:
    out = tmp_path / "semi"
    args = ["train", *QUICK[:2], "--epochs", "6", "--test-triplets", "500", "--no-progress"]
    args += ["--method", "semi-supervised", "--labels-per-class", "5", "--lr", "0.1"]
    args += ["--model", "semisup-mnist"]  # the authors' net: batch norm keeps lr 0.1 stable
    assert main([*args, "--batch-size", "64", "--out", str(out)]) == 0
    accuracy = read_json(out / "metrics.json")["classification"]["labelled"]["knn_accuracy"]
    assert accuracy > 0.5  # 1-NN on 50 labelled digits; chance is 0.1
    # every epoch logs the same figure (the papers' curve); the last equals the evaluation's
    curve = [row["test_labelled_1nn_error"] for row in read_json(out / "history.json")]
    assert len(curve) == 6 and curve[-1] == pytest.approx(1 - accuracy, abs=1e-9)
    assert "test_labelled_1nn_error" in (out / "epochs.csv").read_text().splitlines()[0]


def test_labels_seed_keeps_the_labelled_samples_across_training_seeds(tmp_path: Path) -> None:
    args = ["train", *QUICK, "--epochs", "1", "--method", "semi-supervised"]
    args += ["--labels-per-class", "5", "--labels-seed", "7", "--steps-per-epoch", "2"]
    runs = [tmp_path / f"s{seed}" for seed in (0, 1)]
    for seed, out in enumerate(runs):
        assert main([*args, "--seed", str(seed), "--out", str(out)]) == 0
    first, second = (np.load(out / "labelled.npy") for out in runs)
    assert len(first) == 50 and np.array_equal(first, second)
    assert load_run(runs[1]).config.options["labels_seed"] == 7


def test_fully_labelled_runs_log_no_labelled_error(tmp_path: Path) -> None:
    out = tmp_path / "all"
    args = ["train", *QUICK, "--method", "semi-supervised", "--model", "semisup-mnist"]
    assert main([*args, "--batch-size", "64", "--out", str(out)]) == 0
    assert all("test_labelled_1nn_error" not in row for row in read_json(out / "history.json"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels-per-class", "3"], "it goes with --method semi-supervised"),
        (["--method", "semi-supervised", "--labels-per-class", "0"], "at least 1"),
        (["--method", "semi-supervised", "--unlabelled-weight", "-1"], ">= 0"),
    ],
)
def test_bad_few_label_options_are_one_line_errors(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *QUICK, *extra, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1


def test_pretraining_a_net_without_spatial_maps_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["pretrain", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "mlp")]) == 2
    assert "no spatial feature map" in capsys.readouterr().err


def test_pretraining_also_uses_the_unlabelled_images() -> None:
    images = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    data = DatasetSplits(
        "toy",
        LabelledArray(images, [0, 1, 0, 1]),
        LabelledArray(images, [0, 1, 0, 1]),
        num_classes=2,
        unlabelled=np.ones((3, 1, 8, 8), dtype=np.uint8),
    )
    x, y = METHODS["spatial-contrasting"].pool(data)
    assert len(x) == 7 and y.tolist() == [0, 1, 0, 1, -1, -1, -1] and x[4:].all()
    x, y = METHODS["semi-supervised"].pool(data)
    assert len(x) == 4 and y.tolist() == [0, 1, 0, 1]


def test_the_authors_optimiser_nesterov_and_step_schedule(tmp_path: Path) -> None:
    """--nesterov reaches the SGD optimiser; --lr-schedule step divides the rate at the
    milestone epochs (here epoch 2 of 2), as the authors' regime does."""
    from tripletnet.training import TrainConfig
    from tripletnet.training.run import build

    options = ["--lr", "0.1", "--lr-schedule", "step", "--lr-milestones", "2", "--nesterov"]
    out = tmp_path / "run"
    args = ["train", *QUICK, "--method", "semi-supervised", "--labels-per-class", "5"]
    assert main([*args, "--model", "semisup-mnist", *options, "--out", str(out)]) == 0
    config = TrainConfig.from_dict(read_json(out / "config.json"))
    assert config.optim.nesterov and config.optim.milestones == [2]
    assert build(config, init=False).optimizer.param_groups[0]["nesterov"] is True
    rows = [line.split(",") for line in (out / "steps.csv").read_text().splitlines()[1:]]
    rates = sorted({float(row[2]) for row in rows})
    assert rates == pytest.approx([0.01, 0.1])
