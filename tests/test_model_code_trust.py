"""A run folder must not run code: a run whose net is ``package.module:factory`` is rebuilt only
with ``trust_model_code``, TRIPLETNET_TRUST_MODEL_CODE=1 or ``--trust-model-code``; built-in nets
and ``timm:NAME`` need none, and the run's own ``train`` needs none. (The catalogue,
tests/test_cli_catalogue.py, tries every command on a run whose spec names ``os:system``.)"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tripletnet.cli import main
from tripletnet.errors import RunFolderError, TripletnetError
from tripletnet.models import build_model, check_model_code
from tripletnet.runs import ModelSpec, load_run, read_spec
from tripletnet.search import Embedder, build_index, from_dataset
from tripletnet.training import TrainConfig, train
from tripletnet.trust import TRUST_VARIABLE, trusts_model_code

MODULE = "trust_test_nets"
NETS = """
from torch import nn

def tiny(width=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())
"""
QUICK = ["--epochs", "1", "--triplets-per-epoch", "256", "--test-triplets", "200", "--no-progress"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A digits run of the factory ``trust_test_nets:tiny`` (its module on sys.path) and an
    index of it."""
    root = tmp_path_factory.mktemp("trust")
    (root / f"{MODULE}.py").write_text(textwrap.dedent(NETS))
    sys.path.insert(0, str(root))
    try:
        config = TrainConfig(
            dataset="digits",
            model=f"{MODULE}:tiny",
            epochs=1,
            triplets_per_epoch=256,
            embedding_dim=8,
        )
        train(config, root / "run", show_progress=False, log_epochs=False)
        embedder = Embedder.from_run(root / "run", trust_model_code=True)
        build_index(embedder, from_dataset(embedder, "digits", limit=50)).save(root / "index")
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(MODULE, None)


@pytest.fixture(autouse=True)
def untrusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)


def test_the_variable_and_the_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not trusts_model_code() and trusts_model_code(True)
    for yes in ("1", "true", "YES", " on "):
        monkeypatch.setenv(TRUST_VARIABLE, yes)
        assert trusts_model_code() and not trusts_model_code(False)
    monkeypatch.setenv(TRUST_VARIABLE, "0")
    assert not trusts_model_code()


def test_built_in_and_timm_nets_need_no_trust() -> None:
    for name in ("mlp", "resnet18", "timm:resnet18"):
        check_model_code(name, "the run x", trust_model_code=False)
    with pytest.raises(RunFolderError, match="factory 'system' of module 'os'"):
        check_model_code("os:system", "the run x")


def test_loading_the_run_needs_trust_and_imports_nothing_before(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.modules.pop(MODULE, None)
    with pytest.raises(RunFolderError) as refused:
        load_run(world / "run")
    message = str(refused.value)
    for words in (f"the run {world / 'run'}", f"'tiny' of module '{MODULE}'"):
        assert words in message
    assert "--trust-model-code" in message and f"{TRUST_VARIABLE}=1" in message
    assert MODULE not in sys.modules  # refused before the import
    assert load_run(world / "run", trust_model_code=True).spec.architecture == f"{MODULE}:tiny"
    monkeypatch.setenv(TRUST_VARIABLE, "1")
    assert load_run(world / "run").model.embedding_dim == 8
    with pytest.raises(RunFolderError, match="--trust-model-code"):
        load_run(world / "run", trust_model_code=False)  # the argument wins over the variable


def test_the_flag_loads_it_for_one_command(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = str(world / "run")
    assert main(["embed", run, "--out", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--trust-model-code" in err
    assert not (tmp_path / "e.npy").exists()
    assert main(["embed", run, "--out", str(tmp_path / "e.npy"), "--trust-model-code"]) == 0
    assert TRUST_VARIABLE not in os.environ  # set for that command only
    index = str(tmp_path / "index")
    args = ["index", "build", run, "--dataset", "digits", "--limit", "30", "--out", index]
    assert main(args) == 2
    assert main([*args, "--trust-model-code"]) == 0
    assert TRUST_VARIABLE not in os.environ


def test_the_service_and_its_workers_read_the_variable(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from tripletnet.service import create_app
    from tripletnet.service.app import SETTINGS_VARIABLE, app_from_environment

    with pytest.raises(TripletnetError, match="--trust-model-code"):
        create_app(world / "run", world / "index")
    settings = {
        "run_dir": str(world / "run"),
        "index_dir": str(world / "index"),
        "max_upload_bytes": 1 << 20,
        "max_k": 10,
        "onnx": None,
        "mmap": False,
        "access_log": False,
        "token_file": None,
        "protect_reads": False,
    }
    monkeypatch.setenv(SETTINGS_VARIABLE, json.dumps(settings))
    with pytest.raises(TripletnetError, match="--trust-model-code"):
        app_from_environment()
    monkeypatch.setenv(TRUST_VARIABLE, "1")  # what `serve --trust-model-code` gives its workers
    assert app_from_environment().title == "tripletnet search"


def test_init_from_a_factory_run_needs_the_flag(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run's own --model needs no flag (training and its evaluation); --init RUN does."""
    args = ["train", "--model", f"{MODULE}:tiny", "--embedding-dim", "8", *QUICK]
    assert main([*args, "--init", str(world / "run"), "--out", str(tmp_path / "a")]) == 2
    assert "--init" in capsys.readouterr().err and not (tmp_path / "a").exists()
    out = str(tmp_path / "b")
    assert main([*args, "--init", str(world / "run"), "--out", out, "--trust-model-code"]) == 0
    assert TRUST_VARIABLE not in os.environ
    assert read_spec(tmp_path / "b" / "model.safetensors").architecture == f"{MODULE}:tiny"


def test_factory_args_must_be_json_data(world: Path) -> None:
    table = read_spec(world / "run" / "model.safetensors").to_dict()
    good = {"a": [1, 2.5, None, True, {"b": "c"}]}
    assert ModelSpec.from_dict({**table, "factory_args": good}).factory_args == good
    for bad in ("touch x", [1], {"a": object()}, {1: 2}, {"a": (1, 2)}):
        with pytest.raises(RunFolderError, match="factory_args must be a JSON object"):
            ModelSpec.from_dict({**table, "factory_args": bad})


def test_code_that_raises_is_one_clear_error() -> None:
    with pytest.raises(TripletnetError, match=r"importing 'nets_raising_at_import'.*RuntimeError"):
        build_model("nets_raising_at_import:build", (1, 8, 8))
    with pytest.raises(TripletnetError, match=r"nets_raising:build failed.*ValueError: no net"):
        build_model("nets_raising:build", (1, 8, 8), factory_args={"width": 3})


def test_a_timm_spec_that_asks_timm_to_load_weights_needs_trust() -> None:
    """``timm:NAME`` rebuilds with no code from the run, unless its factory_args ask timm to
    fetch or read weights itself (a download, a checkpoint file timm may unpickle)."""
    check_model_code("timm:resnet18", "the run", factory_args={"drop_rate": 0.1})
    for loading in ({"pretrained": True}, {"checkpoint_path": "/elsewhere/weights.pth"}):
        with pytest.raises(RunFolderError, match="asks timm to load weights itself"):
            check_model_code("timm:resnet18", "the run", factory_args=loading)
        check_model_code("timm:resnet18", "the run", True, factory_args=loading)
