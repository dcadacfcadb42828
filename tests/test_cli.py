"""The command line as a user runs it: train, evaluate, embed, and bad input."""

from pathlib import Path

import numpy as np
import pytest

from tripletnet.cli import main
from tripletnet.files import read_json


def test_train_evaluate_embed_on_digits(
    tmp_path: Path, tiny_cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *tiny_cli_args]) == 0
    out = capsys.readouterr().out
    assert "triplet embedding" in out and "raw inputs (baseline)" in out
    for name in (
        "model.safetensors",
        "checkpoint.safetensors",
        "metrics.json",
        "report.md",
        "embedding.png",
    ):
        assert (run / name).is_file(), name
    metrics = read_json(run / "metrics.json")
    assert 0.5 < metrics["classification"]["embedding"]["knn_accuracy"] <= 1.0
    assert "| triplet embedding |" in (run / "report.md").read_text()
    assert (run / "embedding.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["evaluate", str(run), "-k", "3"]) == 0
    assert read_json(run / "metrics.json")["k"] == 3

    assert (
        main(
            [
                "embed",
                str(run),
                "--out",
                str(tmp_path / "e.npy"),
                "--labels-out",
                str(tmp_path / "l.npy"),
            ]
        )
        == 0
    )
    embeddings = np.load(tmp_path / "e.npy")
    assert embeddings.shape == (450, metrics["embedding_dim"])
    assert np.load(tmp_path / "l.npy").shape == (450,)
    np.save(tmp_path / "mine.npy", np.zeros((5, 1, 8, 8), dtype=np.float32))
    assert (
        main(
            [
                "embed",
                str(run),
                "--input",
                str(tmp_path / "mine.npy"),
                "--out",
                str(tmp_path / "m.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "m.npy").shape == (5, metrics["embedding_dim"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "imagenet"], "imagenet"),
        (["train", "--method", "quadruplet"], "quadruplet"),
        (["train", "--dataset", "mnist", "--data-dir", "{tmp}"], "train-images-idx3-ubyte.gz"),
        (["train", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--sampler", "random"], "it goes with --method batch-mining"),
        (["train", "--dropout", "1.5"], "--dropout must be a finite number >= 0 and < 1"),
        (["train", "--precision", "fp8"], "fp8"),
        (["train", "--final-relu"], "no final-relu choice"),
        (["train", "--model", "mlp", "--batch-norm"], "no batch-norm choice"),
        (["evaluate", "{tmp}"], "not a finished tripletnet run"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_existing_run_folder_is_refused(
    tmp_path: Path, tiny_cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main(["train", "--out", str(tmp_path / "run"), *tiny_cli_args]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
