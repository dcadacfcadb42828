"""The command line as a user runs it: train, evaluate, embed, and bad input."""

import inspect
import io
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from tripletnet.cli import COMMANDS, cli, main
from tripletnet.files import read_json
from tripletnet.progress import progress, showing


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


def test_tripletnet_alone_prints_the_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Usage: tripletnet") and "Commands:" in captured.out
    assert captured.err == ""
    assert main(["index"]) == 0  # a group alone too
    assert "Usage: tripletnet index" in capsys.readouterr().out


def test_each_summary_is_the_first_line_of_its_commands_help() -> None:
    """`tripletnet --help` and completion list COMMANDS' summaries without importing the
    commands; each must say what the command's own help says first."""
    context = click.Context(cli)
    for name, entry in COMMANDS.items():
        command = cli.get_command(context, name)
        assert command is not None and command.help is not None, name
        assert inspect.cleandoc(command.help).splitlines()[0] == entry.summary, name


def _process(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip


REPORT_MODULES = (
    "import atexit, sys; atexit.register(lambda: print(sorted(m for m in sys.modules if m in "
    "('torch', 'numpy', 'sklearn') or m.endswith('_cmd')), file=sys.stderr)); "
)


def test_help_and_completion_import_no_command_and_no_torch() -> None:
    done = _process(REPORT_MODULES + "from tripletnet.cli import main; main(['--help'])")
    assert "Commands:" in done.stdout and done.stderr.strip() == "[]", done.stderr
    done = _process(
        REPORT_MODULES + "from tripletnet.cli import main; sys.argv = ['tripletnet']; main()",
        _TRIPLETNET_COMPLETE="bash_complete", COMP_WORDS="tripletnet ", COMP_CWORD="1",
    )  # fmt: skip
    assert "plain,train" in done.stdout.splitlines() and done.stderr.strip() == "[]", done.stderr
    done = _process(REPORT_MODULES + "from tripletnet.cli import main; main(['search', '--help'])")
    assert "--json" in done.stdout and "'torch'" not in done.stderr, done.stderr
    for command in ("train", "pretrain"):  # their options come from torch-free dataclasses
        done = _process(
            REPORT_MODULES + f"from tripletnet.cli import main; main([{command!r}, '--help'])"
        )
        assert "--method" in done.stdout and "'torch'" not in done.stderr, done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_draw_only_into_a_terminal_and_obey_no_progress() -> None:
    def drawn(stream: io.StringIO, **options: object) -> str:
        bar = progress(total=3, file=stream, mininterval=0, **options)
        for _ in range(3):
            bar.update()
        bar.close()
        return stream.getvalue()

    assert "\r" in drawn(_Terminal())
    assert drawn(io.StringIO()) == ""  # a log file, a pipe: nothing, no \r frames
    assert drawn(_Terminal(), show=False) == ""
    with showing(False):  # --no-progress
        assert drawn(_Terminal()) == ""
    assert "\r" in drawn(_Terminal())


@pytest.mark.parametrize("command", [["embed"], ["evaluate"], ["index", "build"], ["robustness"]])
def test_the_long_commands_offer_no_progress(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0
    assert "--no-progress" in capsys.readouterr().out


def test_training_writes_no_carriage_returns_into_a_stderr_that_is_no_terminal(
    tmp_path: Path, tiny_cli_args: list[str]
) -> None:
    args = [a for a in tiny_cli_args if a != "--no-progress"]  # the bar is on, stderr a pipe
    done = subprocess.run(
        [sys.executable, "-m", "tripletnet", "train", "--out", str(tmp_path / "run"), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr, done.stderr[:500]
