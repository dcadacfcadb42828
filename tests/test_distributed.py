"""torch.distributed training on the CPU (gloo, 2 processes).

A step with B/2 samples per rank equals a step with B on one process: the same loss, the same
net gradients (after DDP's average) and the same proxies, to 1e-5. The batch-mining losses see
the other rank's embeddings through the gather, so a wrong or missing gradient through it
(PML's DistributedLossWrapper had both) shows here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed_step import CASES, one_step

from tripletnet.errors import TripletnetError
from tripletnet.training.distributed import gather
from tripletnet.world import World, world_from_environment

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_environment(rank: int, size: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TRIPLETNET_DIST_TIMEOUT": "60",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("ranks")
    port = free_port()
    script = str(HERE / "distributed_step.py")
    processes = [
        subprocess.Popen(
            [sys.executable, script, str(out)],
            env=rank_environment(rank, 2, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return [dict(np.load(out / f"rank{rank}.npz")) for rank in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_with_half_batches_equal_one_process(
    case: str, two_ranks: list[dict[str, np.ndarray]]
) -> None:
    single = one_step(case)
    for rank, results in enumerate(two_ranks):
        mine = {
            key.split("/", 1)[1]: value
            for key, value in results.items()
            if key.startswith(f"{case}/")
        }
        assert mine.keys() == single.keys()
        for key, expected in single.items():
            np.testing.assert_allclose(
                mine[key], expected, rtol=1e-5, atol=1e-5, err_msg=f"rank {rank}: {key}"
            )
    for key in single:  # the ranks agree exactly: proxies stay identical
        if key.startswith("learned."):
            np.testing.assert_array_equal(
                two_ranks[0][f"{case}/{key}"], two_ranks[1][f"{case}/{key}"]
            )


def test_the_shares_of_a_batch_are_disjoint_and_cover_it() -> None:
    for batch, groups in ((45, 3), (20, 1), (23, 1), (3, 3)):
        shares = [World(rank, 2).positions(batch, groups) for rank in range(2)]
        assert sorted(np.concatenate(shares).tolist()) == list(range(batch))
    anchors = World(1, 2).positions(45, 3).reshape(3, -1)  # whole triplets: a, p and n together
    np.testing.assert_array_equal(anchors[1] - anchors[0], 15)


def test_the_environment_names_the_place_in_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not world_from_environment().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert world_from_environment() == World(2, 4, 0)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(TripletnetError, match="not a place"):
        world_from_environment()


def test_gather_needs_a_process_group() -> None:
    with pytest.raises((RuntimeError, ValueError)):
        gather(torch.zeros(2, 3), [2, 2], 0)


def torchrun(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    port = free_port()
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port),
         "-m", "tripletnet", "train", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TRIPLETNET_DIST_TIMEOUT": "60"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def worker_of_rank(launcher: int, rank: int) -> int:
    """The pid of torchrun's worker with RANK ``rank``."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return pid
    raise AssertionError(f"no worker of rank {rank} among {children}")


@pytest.mark.slow  # about 90 s on a busy 2-core machine
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers in /proc")
def test_torchrun_digits_writes_one_run_folder_and_resumes_after_a_rank_is_killed(
    tmp_path: Path,
) -> None:
    import signal
    import time

    from tripletnet.files import read_json
    from tripletnet.runs import read_metadata

    args = ["--dataset", "digits", "--triplets-per-epoch", "1024", "--test-triplets", "500",
            "--no-progress"]  # fmt: skip
    job = torchrun([*args, "--epochs", "200"], tmp_path)
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 240
    while not list(runs.glob("*/checkpoint.safetensors")):
        assert job.poll() is None, job.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.2)
    os.kill(worker_of_rank(job.pid, 1), signal.SIGKILL)
    output = job.communicate(timeout=120)[0]
    assert job.returncode != 0, output  # the job ends, it does not hang
    (folder,) = runs.iterdir()  # one run folder, written by rank 0 alone
    done = read_metadata(folder / "checkpoint.safetensors")["epoch"]
    assert 1 <= done < 200 and not (folder / "model.safetensors").exists()

    resumed = torchrun(["--resume", "--out", str(folder), "--epochs", str(done + 1)], tmp_path)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert [row["epoch"] for row in read_json(folder / "history.json")] == list(range(1, done + 2))
    assert (folder / "model.safetensors").is_file() and (folder / "metrics.json").is_file()
    assert output.count("run folder:") == 1  # rank 0 alone reports
    assert [p.name for p in runs.iterdir()] == [folder.name]


def test_an_option_a_job_cannot_split_is_one_error_before_joining(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripletnet.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["pretrain", "--epochs", "1"]) == 2  # no rendezvous: it would wait for rank 1
    assert "cannot be split across processes" in capsys.readouterr().err
    assert main(["train", "--batch-size", "1"]) == 2
    assert "smaller than the job's 2 processes" in capsys.readouterr().err
    assert main(["train", "--adversarial", "fgsm", "--eps", "0.1"]) == 2
    assert "--adversarial fgsm attacks each batch" in capsys.readouterr().err
    monkeypatch.setenv("TRIPLETNET_DIST_TIMEOUT", "soon")
    assert main(["train", "--epochs", "1"]) == 2
    assert "TRIPLETNET_DIST_TIMEOUT must be a number" in capsys.readouterr().err
