"""``index build`` and ``embed`` under torchrun (gloo, CPU): each process embeds its share, and
the result is the one one process writes, file for file; a rank that fails stops the job with
one error line, and the same command run again embeds only what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_distributed import free_port

from tripletnet.cli import main
from tripletnet.errors import TripletnetError
from tripletnet.search import Embedder
from tripletnet.search.build import Collection
from tripletnet.search.parts import Parts, joined
from tripletnet.world import World

IMAGES = 37  # odd: the shards of 2 and 3 processes differ in size
INDEX_FILES = ("items.json", "manifest.json", "index.faiss", "thumbnails.npy")
JOB_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "TRIPLETNET_DIST_TIMEOUT": "60"}


def image_folder(root: Path, count: int = IMAGES) -> Path:
    """``count`` random 28 x 28 greyscale PNGs in 4 class folders."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def torchrun(processes: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "tripletnet", *args]  # fmt: skip
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **JOB_ENVIRONMENT},
        capture_output=True,
        text=True,
        timeout=240,
    )


def ranks(processes: int, args: list[str], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """The job's ranks as plain processes (no torchrun to stop the others when one fails)."""
    port = str(free_port())
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "tripletnet", *args],
            cwd=cwd,
            env={
                **os.environ,
                **JOB_ENVIRONMENT,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(processes),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in range(processes)
    ]
    done = []
    for process in started:
        out, err = process.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def same_index(one: Path, other: Path) -> None:
    for name in INDEX_FILES:
        assert (one / "v000001" / name).read_bytes() == (other / "v000001" / name).read_bytes()


def spoil(path: Path) -> bytes:
    """Make ``path`` unreadable as an image, keeping its size and time (its listing facts)."""
    kept, status = path.read_bytes(), path.stat()
    path.write_bytes(b"x" * len(kept))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    return kept


def mend(path: Path, kept: bytes) -> None:
    status = path.stat()
    path.write_bytes(kept)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image_folder(tmp_path_factory.mktemp("images") / "images")


@pytest.fixture(scope="module")
def one_process_index(
    run_dir: Path, images: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("single") / "index"
    build = ["index", "build", str(run_dir), "--images", str(images), "--out", str(out)]
    assert main([*build, "--no-progress"]) == 0
    return out


def test_the_pieces_of_the_shards_cover_every_row_once(tmp_path: Path) -> None:
    parts = Parts(tmp_path / "parts", "key", piece=4)
    for size in (1, 2, 3):
        rows = [
            row
            for rank in range(size)
            for piece in parts.pieces(World(rank, size).shard(IMAGES))
            for row in piece
        ]
        assert rows == list(range(IMAGES))


def test_a_part_reads_back_as_saved_and_other_inputs_empty_the_folder(tmp_path: Path) -> None:
    parts = Parts(tmp_path / "out.parts", "first")
    part = Collection(
        np.arange(6, dtype=np.float32).reshape(3, 2),
        [1, None, 0],
        ["a.png", None, "c.png"],
        [np.full((4, 4, 1), i, np.uint8) for i in range(3)],
        ["x", "y"],
        ["bad.png"],
    )
    assert parts.open() == 0
    parts.save(range(0, 3), part)
    back = joined([parts.load(range(0, 3))])
    assert np.array_equal(back.vectors, part.vectors) and back.labels == part.labels
    assert back.sources == part.sources and back.unreadable == ["bad.png"]
    assert back.thumbnails is not None and np.array_equal(back.thumbnails[2], part.thumbnails[2])  # type: ignore[index]
    assert Parts(tmp_path / "out.parts", "first").open() == 1  # the same inputs: kept
    assert Parts(tmp_path / "out.parts", "second").open() == 0  # other inputs: emptied
    (tmp_path / "mine.parts").mkdir()
    (tmp_path / "mine.parts" / "notes.txt").write_text("the user's")
    with pytest.raises(TripletnetError, match="not a parts folder of tripletnet"):
        Parts(tmp_path / "mine.parts", "first").open()
    assert (tmp_path / "mine.parts" / "notes.txt").is_file()


def test_index_build_on_two_processes_writes_the_one_process_index(
    run_dir: Path, images: Path, one_process_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    args = ["index", "build", str(run_dir), "--images", str(images), "--out", str(out)]
    job = torchrun(2, [*args, "--no-progress"], tmp_path)
    assert job.returncode == 0, job.stdout + job.stderr
    assert job.stdout.count("indexed 37 items") == 1  # rank 0 alone writes and reports
    same_index(one_process_index, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no parts left behind


def test_a_failing_rank_stops_the_job_and_the_rerun_embeds_only_what_is_missing(
    run_dir: Path, images: Path, one_process_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "index"
    args = ["index", "build", str(run_dir), "--images", str(images), "--out", str(out),
            "--no-progress"]  # fmt: skip
    paths = sorted(images.rglob("*.png"))
    last = paths[-1]  # rank 1's
    kept = spoil(last)
    try:
        first, second = ranks(2, args, tmp_path)
    finally:
        mend(last, kept)
    assert (first.returncode, second.returncode) == (2, 2)
    assert first.stderr.count("\n") == 1 and first.stderr.startswith("error: rank 0 of 2: ")
    assert "another process of the job died" in first.stderr
    assert second.stderr.startswith("error: ") and "Traceback" not in second.stderr
    assert not out.exists()  # nothing half-written
    assert [p.name for p in (tmp_path / "index.parts").glob("rows-*")] == [
        "rows-000000000-000000018.npz"
    ]
    # rank 0's rows are not embedded again: its image is unreadable now, and the job succeeds
    kept = spoil(paths[0])
    try:
        rerun = ranks(2, args, tmp_path)
    finally:
        mend(paths[0], kept)
    assert [job.returncode for job in rerun] == [0, 0], rerun[0].stderr + rerun[1].stderr
    same_index(one_process_index, out)
    assert not (tmp_path / "index.parts").exists()


def test_embed_on_two_processes_writes_the_one_process_arrays(
    run_dir: Path, tmp_path: Path
) -> None:
    single = ["embed", str(run_dir), "--out", "one.npy", "--labels-out", "one-labels.npy"]
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(single) == 0
    finally:
        os.chdir(cwd)
    job = torchrun(2, ["embed", str(run_dir), "--out", "two.npy", "--labels-out", "two-labels.npy"],
                   tmp_path)  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr
    assert (tmp_path / "one.npy").read_bytes() == (tmp_path / "two.npy").read_bytes()
    assert (tmp_path / "one-labels.npy").read_bytes() == (tmp_path / "two-labels.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one-labels.npy", "one.npy", "two-labels.npy", "two.npy"
    ]  # fmt: skip


@pytest.mark.slow  # three more jobs: about 30 s on a busy 2-core machine
def test_three_processes_build_the_one_process_index_and_milvus_collection(
    run_dir: Path, images: Path, one_process_index: Path, tmp_path: Path
) -> None:
    pytest.importorskip("milvus_lite")
    from tripletnet.search.engines import Target, open_live

    out = tmp_path / "index"
    build = ["index", "build", str(run_dir), "--images", str(images), "--no-progress"]
    job = torchrun(3, [*build, "--out", str(out)], tmp_path)
    assert job.returncode == 0, job.stdout + job.stderr
    same_index(one_process_index, out)

    lite = ["--backend", "milvus", "--uri", str(tmp_path / "lite.db"), "--out", "items"]
    job = torchrun(3, [*build, *lite], tmp_path)  # rank 0 inserts: Lite opens in one process
    assert job.returncode == 0, job.stdout + job.stderr
    index = open_live(Target("items", "milvus", str(tmp_path / "lite.db"))).current()
    folder = open_live(Target(out)).current()
    assert len(index) == IMAGES
    assert [index.item(i).source for i in range(IMAGES)] == [
        folder.item(i).source for i in range(IMAGES)
    ]
    vectors = np.stack([np.linspace(-1, 1, folder.dim), np.ones(folder.dim)]).astype(np.float32)
    for mine, theirs in zip(index.search(vectors, 5), folder.search(vectors, 5), strict=True):
        assert [hit.item.id for hit in mine] == [hit.item.id for hit in theirs]


def test_the_milvus_staging_collection_becomes_the_index_one_process_makes(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's Milvus path in one process: parts, a staging collection with the ids one
    process gives, renamed onto the collection (a server's branch: this rank inserts)."""
    pytest.importorskip("milvus_lite")
    from tripletnet.search.build import dataset_source
    from tripletnet.search.engines import Target, create_live, milvus_job, open_live
    from tripletnet.search.parts import embed_shards
    from tripletnet.world import SINGLE

    source = dataset_source(embedder, "digits", limit=45)
    parts = Parts(tmp_path / "items.parts", source.key, piece=8)
    embed_shards(SINGLE, source, parts)
    uri = str(tmp_path / "lite.db")
    settings = {"dim": embedder.dim, "kind": "exact", "metric": embedder.metric,
                "model": embedder.ref, "params": None, "class_names": []}  # fmt: skip
    whole = source.everything()
    create_live(
        Target("single", "milvus", uri), whole, **{**settings, "class_names": whole.class_names}
    )
    monkeypatch.setattr(milvus_job, "is_lite", lambda uri: False)
    live = milvus_job.insert_shards(SINGLE, Target("items", "milvus", uri), parts, 45, **settings)
    assert (
        live is not None
        and live.name == "items"
        and not live.client.has_collection("items" + milvus_job.STAGING)
    )
    job, single = (open_live(Target(name, "milvus", uri)).current() for name in ("items", "single"))
    assert len(job) == len(single) == 45 and job.next_id == single.next_id == 45
    assert [job.item(i) for i in range(45)] == [single.item(i) for i in range(45)]
    assert job.class_names == single.class_names


@pytest.mark.slow  # about 60 s on a busy 2-core machine
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers in /proc")
def test_a_killed_rank_ends_the_torchrun_job_without_an_index_and_the_rerun_completes_it(
    run_dir: Path, tmp_path: Path
) -> None:
    import signal
    import time

    from test_distributed import worker_of_rank

    images = image_folder(tmp_path / "images", 3001)
    single = tmp_path / "single"
    assert main(["index", "build", str(run_dir), "--images", str(images), "--out", str(single),
                 "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / "index"
    args = ["index", "build", str(run_dir), "--images", str(images), "--out", str(out),
            "--no-progress"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "tripletnet", *args]  # fmt: skip
    job = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, **JOB_ENVIRONMENT},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    parts = tmp_path / "index.parts"
    deadline = time.monotonic() + 180
    while not (parts / "key.txt").is_file():  # both ranks have listed the images
        assert job.poll() is None, job.communicate()[0]
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    os.kill(worker_of_rank(job.pid, 1), signal.SIGKILL)  # while the ranks embed
    output = job.communicate(timeout=120)[0]
    assert job.returncode != 0, output  # the job ends, it does not hang
    assert not out.exists()  # nothing half-written
    assert not list(parts.glob("rows-000001500-*"))  # rank 1's share: not saved

    rerun = torchrun(2, args, tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    same_index(single, out)
    assert not parts.exists()
