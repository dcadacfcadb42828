"""``index build`` of a folder of images on 1 process and on a torchrun job of several.

    python bench/index_build_sharded.py                       # 100,000 PNGs, 1 vs 2 processes
    python bench/index_build_sharded.py --images 5000         # a quick look first

Writes ``--images`` 28 x 28 greyscale PNGs in 10 class folders under ``--work`` (each class a
smooth random pattern, shifted and noised per image), trains a small run on 500 more of them
(one short epoch: what is timed is embedding, not the model's quality), then times

    tripletnet index build RUN --images FOLDER --out ONE                              (1 process)
    torchrun --nproc_per_node P -m tripletnet index build RUN --images FOLDER --out MANY

as separate commands (wall time of the whole command: start-up, listing, decoding, embedding,
adding to the index, writing it). The single process gets every core's thread
(OMP_NUM_THREADS = cores), each of the P ranks cores / P. It prints wall time, images/s and
the ratio, and checks that the two index folders hold the same items in the same order, the
same thumbnails and the same vectors (byte for byte, or the largest difference where thread
counts changed the float sums).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

SIDE, CLASSES = 28, 10


def templates(seed: int = 0) -> np.ndarray:
    """One smooth 28 x 28 pattern per class (random noise, box-blurred)."""
    noise = np.random.default_rng(seed).random((CLASSES, SIDE + 8, SIDE + 8))
    kernel = np.ones(5) / 5
    for axis in (1, 2):
        noise = np.apply_along_axis(lambda row: np.convolve(row, kernel, "same"), axis, noise)
    patterns = noise[:, 4:-4, 4:-4]
    low = patterns.min(axis=(1, 2), keepdims=True)
    return np.asarray((patterns - low) / (patterns.max(axis=(1, 2), keepdims=True) - low))


def write_images(job: tuple[Path, int, int]) -> int:
    """Images ``start`` .. ``stop`` - 1 as ``root/classC/NNNNNN.png``."""
    root, start, stop = job
    patterns = templates()
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        label = i % CLASSES
        shifted = np.roll(patterns[label], tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
        pixels = np.clip((shifted + rng.normal(0, 0.15, shifted.shape)) * 255, 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{label}" / f"{i:06d}.png")
    return stop - start


def image_folder(root: Path, count: int, first: int = 0, processes: int = 2) -> Path:
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
    step = 2_000
    jobs = [(root, s, min(s + step, first + count)) for s in range(first, first + count, step)]
    with Pool(processes) as pool:
        pool.map(write_images, jobs)
    return root


def small_run(work: Path) -> Path:
    """A run trained briefly on 500 other images of the same kind."""
    from tripletnet.training import TrainConfig, train

    data = image_folder(work / "train-images", 500, first=10**7)
    out = work / "run"
    config = TrainConfig(dataset=str(data), epochs=1, triplets_per_epoch=1024, embedding_dim=64)
    train(config, out, overwrite=True, show_progress=False, log_epochs=False)
    return out


def timed(command: list[str], threads: int) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def compare(one: Path, many: Path) -> str:
    """How the two index folders' live versions compare."""
    first, second = (sorted(p.glob("v*"))[-1] for p in (one, many))
    for name in ("items.json", "manifest.json", "thumbnails.npy"):
        if (first / name).read_bytes() != (second / name).read_bytes():
            return f"DIFFERENT: {name} differs"
    if (first / "index.faiss").read_bytes() == (second / "index.faiss").read_bytes():
        return "identical (every file byte for byte)"
    a, b = (faiss.read_index(str(v / "index.faiss")) for v in (first, second))
    gap = float(np.abs(a.reconstruct_n(0, a.ntotal) - b.reconstruct_n(0, b.ntotal)).max())
    return f"same items, thumbnails and order; vectors differ by at most {gap:.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000, help="Images to index.")
    parser.add_argument("--processes", type=int, default=2, help="Ranks of the torchrun job.")
    parser.add_argument("--work", type=Path, help="Folder for images, run and indexes (temp).")
    parser.add_argument("--keep", action="store_true", help="Keep --work afterwards.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="index-build-sharded-"))
    cores = os.cpu_count() or 1
    try:
        started = time.perf_counter()
        folder = work / "images"
        if len(list(folder.rglob("*.png"))) != args.images:
            shutil.rmtree(folder, ignore_errors=True)
            image_folder(folder, args.images, processes=max(1, min(cores, 4)))
        run = small_run(work)
        print(f"{args.images:,} images and a run in {time.perf_counter() - started:.0f} s; "
              f"{cores} cores")  # fmt: skip
        build = ["-m", "tripletnet", "index", "build", str(run), "--images", str(folder),
                 "--overwrite", "--no-progress"]  # fmt: skip
        one = timed([sys.executable, *build, "--out", str(work / "one")], cores)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(args.processes)]  # fmt: skip
        threads = max(1, cores // args.processes)
        many = timed([*torchrun, *build, "--out", str(work / "many")], threads)
        print("| processes | threads each | wall s | images/s | speed-up |")
        print("|---:|---:|---:|---:|---:|")
        for processes, each, seconds in ((1, cores, one), (args.processes, threads, many)):
            print(f"| {processes} | {each} | {seconds:.1f} | {args.images / seconds:,.0f} | "
                  f"{one / seconds:.2f} |")  # fmt: skip
        print(f"indexes: {compare(work / 'one', work / 'many')}")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
