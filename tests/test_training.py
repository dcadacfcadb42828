"""Training: checkpoints, resume, divergence, and the run folder."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tripletnet.data import Normalizer
from tripletnet.errors import RunFolderError, TripletnetError
from tripletnet.files import read_json
from tripletnet.models import build_model
from tripletnet.runs import MODEL, ModelSpec, load_checkpoint, read_metadata, save_checkpoint
from tripletnet.training import TrainConfig, TrainingDiverged, load_run, train
from tripletnet.training.methods.random_triplets import RandomTriplets
from tripletnet.training.pretrained import load_pretrained


def test_checkpoint_round_trip_with_optimizer_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer, {"epoch": 7})
    clone = torch.nn.Linear(3, 2)
    clone_optimizer = torch.optim.SGD(clone.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(tmp_path / "c.safetensors", clone, clone_optimizer) == {"epoch": 7}
    torch.testing.assert_close(clone.weight, model.weight)
    torch.testing.assert_close(
        clone_optimizer.state[clone.weight]["momentum_buffer"],
        optimizer.state[model.weight]["momentum_buffer"],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]  # no temporary file left


def test_a_truncated_or_mismatched_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, torch.nn.Linear(3, 2), None, {"epoch": 1})
    with pytest.raises(RunFolderError, match=r"do not fit the Sequential .*missing: 0\.bias"):
        load_checkpoint(path, torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(RunFolderError, match=r"of another shape: bias, weight"):
        load_checkpoint(path, torch.nn.Linear(3, 4))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RunFolderError, match="not a readable safetensors file .* truncated"):
        load_checkpoint(path, torch.nn.Linear(3, 2))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match="not a readable safetensors file"):
        read_metadata(path)


def test_train_writes_a_loadable_run(tmp_path: Path, tiny_config: TrainConfig) -> None:
    summary = train(tiny_config, tmp_path / "run", show_progress=False)
    assert summary["epochs"] == 2
    history = read_json(tmp_path / "run" / "history.json")
    assert [row["epoch"] for row in history] == [1, 2]
    run = load_run(tmp_path / "run")
    assert run.spec.architecture == "small-conv" and run.config.data.dataset == "digits"
    assert run.model(run.prepare(torch.zeros(2, 1, 8, 8))).shape == (2, run.spec.embedding_dim)


def test_resume_continues_exactly_where_it_stopped(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_config.optim.epochs = 3
    train(tiny_config, tmp_path / "straight", show_progress=False)

    original = RandomTriplets.batches

    def killed_in_epoch_3(self, epoch):  # type: ignore[no-untyped-def]
        if epoch == 2:
            raise KeyboardInterrupt  # the process dies during the third epoch
        return original(self, epoch)

    monkeypatch.setattr(RandomTriplets, "batches", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config, tmp_path / "resumed", show_progress=False, command="tripletnet train")
    assert read_metadata(tmp_path / "resumed" / "checkpoint.safetensors")["epoch"] == 2
    monkeypatch.setattr(RandomTriplets, "batches", original)
    train(None, tmp_path / "resumed", resume=True, show_progress=False, command="... --resume")

    assert len(read_json(tmp_path / "resumed" / "history.json")) == 3
    # the killed run's command line was written before training, and the resume's appended
    commands = (tmp_path / "resumed" / "command.txt").read_text().splitlines()
    assert commands == ["tripletnet train", "... --resume"]
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RandomTriplets.loss
    calls = {"n": 0}

    def poisoned(self, model, batch, inputs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss, stats = original(self, model, batch, inputs)
        poisoned_epoch = calls["n"] > 8  # epoch 1 has 512 / 64 = 8 batches
        return (loss * float("nan"), stats) if poisoned_epoch else (loss, stats)

    monkeypatch.setattr(RandomTriplets, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match="last good checkpoint \\(epoch 1\\)"):
        train(tiny_config, tmp_path / "run", show_progress=False)
    state = read_metadata(tmp_path / "run" / "checkpoint.safetensors")
    assert state["epoch"] == 1


def test_existing_run_folder_is_refused(tmp_path: Path, tiny_config: TrainConfig) -> None:
    train(tiny_config, tmp_path / "run", show_progress=False)
    with pytest.raises(RunFolderError, match="--resume .* --overwrite"):
        train(tiny_config, tmp_path / "run", show_progress=False)
    train(tiny_config, tmp_path / "run", overwrite=True, show_progress=False)


def test_siamese_method_trains(tmp_path: Path, tiny_config: TrainConfig) -> None:
    tiny_config.method = "siamese"
    summary = train(tiny_config, tmp_path / "run", show_progress=False)
    assert summary["test_triplet_error"] < 0.5


def test_bf16_training_learns_and_saves_a_float32_model(
    tmp_path: Path, tiny_config: TrainConfig
) -> None:
    tiny_config.optim.precision = "bf16"
    summary = train(tiny_config, tmp_path / "run", show_progress=False)
    assert summary["test_triplet_error"] < 0.5
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert all(tensor.dtype == torch.float32 for tensor in weights.values())
    assert read_json(tmp_path / "run" / "config.json")["optim"]["precision"] == "bf16"


def spec_of(model: torch.nn.Module, architecture: str = "mnist") -> ModelSpec:
    net_options = model.layer_options()  # type: ignore[operator]
    return ModelSpec(architecture, (1, 28, 28), 128, Normalizer(0.0, 1.0), net_options, ["0", "1"])


def test_a_net_is_rebuilt_with_its_layer_options() -> None:
    config = TrainConfig(dataset="mnist", final_relu=False, batch_norm=True).resolved()
    assert config.model.net_options == {"dropout": None, "final_relu": False, "batch_norm": True}
    model = build_model(config.architecture, (1, 28, 28), **config.model.net_options)
    spec = spec_of(model)
    assert spec.net_options == {"final_relu": False, "batch_norm": True}
    rebuilt = spec.build()
    assert rebuilt.final_relu is False and rebuilt.batch_norm is True
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    older = spec.to_dict()
    del older["net_options"], older["metric"], older["pixel_top"]  # as version 1 saved it
    assert ModelSpec.from_dict(older).build().layer_options() == {
        "final_relu": True,
        "batch_norm": False,
    }


def test_init_needs_the_same_layer_options_as_the_pretrained_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretrained = build_model("mnist", (1, 28, 28), batch_norm=True)
    save_checkpoint(tmp_path / MODEL, pretrained, None, {"spec": spec_of(pretrained).to_dict()})
    plain = build_model("mnist", (1, 28, 28))
    with pytest.raises(RunFolderError, match="pass the same --final-relu and --batch-norm"):
        load_pretrained(plain, tmp_path, spec_of(plain))
    same = build_model("mnist", (1, 28, 28), batch_norm=True)
    load_pretrained(same, tmp_path, spec_of(same))
    assert all(torch.equal(same.state_dict()[k], v) for k, v in pretrained.state_dict().items())


def test_batch_mining_options_belong_to_the_batch_mining_method() -> None:
    assert "sampler" not in TrainConfig().resolved().options
    older_run = {"dataset": "digits", "method": "triplet", "loss": None, "sampler": "pk"}
    assert "sampler" not in TrainConfig.from_dict(older_run).resolved().options  # version 1
    with pytest.raises(TripletnetError, match="--sampler does not apply to --method triplet"):
        TrainConfig(sampler="random").resolved()
    mining = TrainConfig(loss="multi-similarity").resolved()  # the older spelling
    assert mining.method == "batch-mining" and mining.options["sampler"] == "pk"
    assert (
        TrainConfig(loss="multi-similarity", sampler="random").resolved().options["sampler"]
        == "random"
    )
    with pytest.raises(TripletnetError, match="needs --loss"):
        TrainConfig(method="batch-mining").resolved()


def test_resume_with_more_epochs_trains_on_to_the_new_total(
    tmp_path: Path, tiny_config: TrainConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume --epochs N continues a finished run to N epochs; --resume alone on a finished
    run says there is nothing to train and leaves its report as it is."""
    from tripletnet.cli import main

    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--triplets-per-epoch", "256", "--test-triplets", "200"]
    assert main([*args, "--epochs", "1", "--no-progress"]) == 0
    report = (run / "report.md").read_text()
    assert "trained 1 epoch\n" in report and "with seed 0" in report
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (run / "report.md").read_text() == report
    (run / ".checkpoint.safetensors.abc123.tmp").write_bytes(b"left by kill -9")
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert "trained 3 epochs" in capsys.readouterr().out
    assert [row["epoch"] for row in read_json(run / "history.json")] == [1, 2, 3]
    assert read_json(run / "config.json")["optim"]["epochs"] == 3
    assert not list(run.glob(".*.tmp"))  # the stale temporary file is gone
    commands = (run / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and commands[1].endswith("--resume --epochs 3 --no-progress")
    assert "then `tripletnet train" in (run / "report.md").read_text()


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def diverged(self, model, batch, inputs):  # type: ignore[no-untyped-def]
        return torch.tensor(float("nan"), requires_grad=True), {}

    monkeypatch.setattr(RandomTriplets, "loss", diverged)
    with pytest.raises(TrainingDiverged, match="no epoch finished"):
        train(tiny_config, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_options_it_cannot_honour(tmp_path: Path, tiny_config: TrainConfig) -> None:
    train(tiny_config, tmp_path / "run", show_progress=False)
    changed = TrainConfig.from_options(tiny_config, lr=0.5)
    with pytest.raises(TripletnetError, match=r"cannot change --lr \(saved: 0.1, given: 0.5\)"):
        train(changed, tmp_path / "run", resume=True, show_progress=False)
    fewer = TrainConfig.from_options(tiny_config, epochs=1)
    with pytest.raises(TripletnetError, match="has already trained 2 epochs"):
        train(fewer, tmp_path / "run", resume=True, show_progress=False)
