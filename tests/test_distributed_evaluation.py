"""Evaluation sharded over a gloo job (2 and 3 CPU processes) equals one process's: every
number of the metrics to 1e-6 and the same neighbours, with ties, odd shard sizes,
leave-one-out and query/gallery, euclidean and cosine; and a gallery read in blocks of a memory
budget equals one read at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed_evaluation import CASES, evaluate_case, stem, write_data
from test_distributed import free_port, rank_environment

from tripletnet.evaluation.evaluate import evaluate_embeddings
from tripletnet.evaluation.retrieval import retrieve, retrieve_shard
from tripletnet.evaluation.shards import block_rows, budget_bytes

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evaluation data")
    write_data(folder)
    return folder


def flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def assert_same_numbers(mine: dict[str, Any], single: dict[str, Any]) -> None:
    mine, single = flat(mine), flat(single)
    assert mine.keys() == single.keys()
    for key, value in single.items():
        floats = value if isinstance(value, list) and value else [value, mine[key]]
        if any(isinstance(number, float) for number in floats):
            assert mine[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert mine[key] == value, key


@pytest.mark.parametrize(
    "processes",
    [2, pytest.param(3, marks=pytest.mark.slow)],  # 3: about 25 s on 2 busy cores
)
def test_a_job_evaluates_as_one_process_does(data: Path, tmp_path: Path, processes: int) -> None:
    port = free_port()
    jobs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "distributed_evaluation.py"), str(data), str(tmp_path)],
            env=rank_environment(rank, processes, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(processes)
    ]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    for job, output in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, output
    for name in CASES:
        single = evaluate_case(data, name)
        assert single is not None
        sharded = json.loads((tmp_path / f"{stem(name)}.json").read_text())
        assert sharded.pop("processes") == processes
        assert single.metrics.pop("processes") == 1
        assert_same_numbers(sharded, single.metrics)
        np.testing.assert_array_equal(np.load(tmp_path / f"{stem(name)}.npy"), single.retrieval.ids)


def test_a_gallery_read_in_blocks_equals_one_read_at_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    queries, query_labels = rng.normal(size=(70, 16)).astype(np.float32), rng.integers(0, 4, 70)
    gallery, gallery_labels = rng.normal(size=(1001, 16)).astype(np.float32), np.arange(1001) % 4
    gallery[500:600] = gallery[:100]  # exact duplicates: ties across blocks
    np.save(tmp_path / "gallery.npy", gallery)
    mapped = np.load(tmp_path / "gallery.npy", mmap_mode="r")
    budget = 0.05  # MiB: blocks of about 800 rows... of 64 at least
    assert block_rows(1001, 16, budget_bytes(budget)) < 1001
    whole = retrieve(queries, query_labels, gallery, gallery_labels)
    streamed = retrieve_shard(queries, query_labels, mapped, gallery_labels, memory_mb=budget)
    assert streamed is not None
    np.testing.assert_array_equal(streamed.ids, whole.ids)
    np.testing.assert_array_equal(streamed.distances, whole.distances)
    for name, scores in whole.scores.items():
        np.testing.assert_array_equal(streamed.scores[name], scores)
    one = evaluate_embeddings(queries, query_labels, gallery, gallery_labels, resamples=20)
    blocks = evaluate_embeddings(
        queries, query_labels, mapped, gallery_labels, resamples=20, memory_mb=budget
    )
    assert_same_numbers(blocks.metrics, one.metrics)


def evaluate_command(args: list[str], rank: int, size: int, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tripletnet", "evaluate", *args],
        env=rank_environment(rank, size, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow  # about 20 s on 2 busy cores
def test_tripletnet_evaluate_in_a_job_writes_the_metrics_of_one_process(
    data: Path, tmp_path: Path
) -> None:
    name = stem("query/gallery, blocks")
    files = ["--embeddings", f"{name} queries.npy", "--labels", f"{name} queries labels.npy",
             "--gallery-embeddings", f"{name} gallery.npy",
             "--gallery-labels", f"{name} gallery labels.npy"]  # fmt: skip
    args = [str(data / f) if f.endswith(".npy") else f for f in files]
    args += ["--no-tsne", "--pairs", "300"]
    one = evaluate_command([*args, "--out", str(tmp_path / "one")], 0, 1, free_port())
    assert one.wait(timeout=120) == 0, one.communicate()[0]
    port = free_port()
    job = [evaluate_command([*args, "--out", str(tmp_path / "two"), "--memory-mb", "1"], rank,
                            2, port) for rank in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=120)[0] for process in job]
    assert [process.returncode for process in job] == [0, 0], outputs
    assert "wrote" in outputs[0] and not outputs[1].strip()  # rank 0 alone reports
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())
    sharded = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (single.pop("processes"), sharded.pop("processes")) == (1, 2)
    single.pop("figures"), sharded.pop("figures")
    assert_same_numbers(sharded, single)


def test_a_process_that_dies_is_one_error_line(data: Path, tmp_path: Path) -> None:
    port = free_port()
    name = stem("query/gallery, ties")
    evaluating = evaluate_command(
        ["--embeddings", str(data / f"{name} queries.npy"),
         "--labels", str(data / f"{name} queries labels.npy"), "--out", str(tmp_path)], 0, 2, port
    )  # fmt: skip
    dying = subprocess.Popen(
        [sys.executable, "-c", "import os, torch.distributed as d; "
         "d.init_process_group('gloo'); os._exit(1)"],
        env=rank_environment(1, 2, port),
    )  # fmt: skip
    output = evaluating.communicate(timeout=120)[0]
    dying.wait(timeout=60)
    assert evaluating.returncode == 2, output
    assert output.startswith("error: rank 0 of 2: another process of the job died"), output
    assert "Traceback" not in output


def test_a_memory_budget_below_one_mib_is_refused(tmp_path: Path) -> None:
    from tripletnet.cli import main

    np.save(tmp_path / "x.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "y.npy", np.arange(4) % 2)
    args = ["evaluate", "--embeddings", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
            "--out", str(tmp_path / "out"), "--memory-mb", "0"]  # fmt: skip
    assert main(args) == 2


@pytest.mark.slow  # about 40 s on 2 busy cores
def test_a_run_folder_evaluated_by_a_job_gets_the_metrics_of_one_process(tmp_path: Path) -> None:
    from tripletnet.cli import main

    run = tmp_path / "run"
    args = ["--dataset", "digits", "--epochs", "1", "--triplets-per-epoch", "256",
            "--test-triplets", "300", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(["train", *args]) == 0
    single = json.loads((run / "metrics.json").read_text())
    port = free_port()
    job = [evaluate_command([str(run), "--no-progress"], rank, 3, port) for rank in range(3)]
    outputs = [process.communicate(timeout=300)[0] for process in job]
    assert [process.returncode for process in job] == [0, 0, 0], outputs
    sharded = json.loads((run / "metrics.json").read_text())
    assert (single.pop("processes"), sharded.pop("processes")) == (1, 3)
    for metrics in (single, sharded):
        metrics.pop("figures"), metrics.pop("machine")
    assert_same_numbers(sharded, single)
