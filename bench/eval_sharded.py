"""``tripletnet evaluate`` of a large synthetic gallery on 1 process and on a job of several.

    python bench/eval_sharded.py                          # 2,000,000 x 128 gallery, 1 vs 2
    python bench/eval_sharded.py --gallery 100000         # a quick look first

Writes ``--queries`` query and ``--gallery`` gallery embeddings (``--dim`` wide, ``--classes``
balanced classes: each a random centre, N(0, 0.6^2) per coordinate, plus N(0, 1) noise) as .npy files under ``--work``, then
times

    tripletnet evaluate --embeddings Q --labels QL --gallery-embeddings G --gallery-labels GL \\
        --out ONE --memory-mb M --no-tsne --no-linear-probe                        (1 process)

and the same as the P ranks of a gloo job on the CPU (each rank started here with torchrun's
variables, so that each one's peak resident memory is its own: ``os.wait4``). The gallery is
memory-mapped and searched ``--memory-mb`` MiB at a time; MAP@R searches each query's top R
(the gallery's share of a class: 2,000 by default). The single process gets every core's
thread (OMP_NUM_THREADS = cores), each rank cores / P. The linear probe is left out (a
1,000-class logistic regression on 2,000,000 rows is a job of its own). Prints the wall time
and peak RSS of each process and the largest difference between the two metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 100_000  # rows written at a time
SPREAD = 0.6  # the centres' standard deviation, the noise's being 1: neither trivial nor hopeless


def write(folder: Path, name: str, rows: int, centres: np.ndarray, seed: int) -> None:
    """``name``.npy (rows x D, float32) and ``name`` labels.npy: balanced classes, each row its
    class's centre plus N(0, 1) noise, written a block at a time."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % len(centres)
    np.save(folder / f"{name} labels.npy", labels)
    out = np.lib.format.open_memmap(
        folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, centres.shape[1])
    )
    for start in range(0, rows, BLOCK):
        block = labels[start : start + BLOCK]
        noise = rng.standard_normal((len(block), centres.shape[1]), dtype=np.float32)
        out[start : start + len(block)] = centres[block] + noise
    out.flush()
    del out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def evaluate(args: list[str], processes: int, threads: int) -> tuple[float, list[float], str]:
    """Wall seconds of the whole job, each process's peak RSS (MiB) and rank 0's output."""
    port = free_port()
    started = time.perf_counter()
    ranks = []
    for rank in range(processes):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TRIPLETNET_DIST_TIMEOUT": "3600"}
        if processes > 1:
            env |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(processes),
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
        ranks.append(
            subprocess.Popen(
                [sys.executable, "-m", "tripletnet", "evaluate", *args, "--no-progress"],
                env=env,
                stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    output = ranks[0].stdout.read() if ranks[0].stdout else ""
    peaks = []
    for process in ranks:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            sys.exit(f"a process failed ({process.returncode}):\n{output}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return time.perf_counter() - started, peaks, output


def flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def difference(one: Path, many: Path) -> tuple[float, list[str]]:
    """The largest absolute difference between the numbers of two metrics.json, and the keys
    whose values differ otherwise (the number of processes aside)."""
    a, b = (flat(json.loads(path.read_text())) for path in (one, many))
    largest, other = 0.0, []
    for key in sorted((set(a) | set(b)) - {"processes", "figures"}):
        x, y = a.get(key), b.get(key)
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            pairs = list(zip(x, y, strict=True))
        else:
            pairs = [(x, y)]
        for u, v in pairs:
            if isinstance(u, float | int) and isinstance(v, float | int):
                largest = max(largest, abs(float(u) - float(v)))
            elif u != v:
                other.append(key)
    return largest, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=2_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--work", type=Path, help="where the .npy files go (default: a temp dir)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = options.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        centres = np.random.default_rng(0).normal(0, SPREAD, (options.classes, options.dim))
        centres = centres.astype(np.float32)
        write(work, "gallery", options.gallery, centres, 1)
        write(work, "queries", options.queries, centres, 2)
        print(f"wrote {options.queries:,} queries and a {options.gallery:,} x {options.dim} "
              f"gallery ({options.classes:,} classes) in {time.perf_counter() - started:.1f} s")  # fmt: skip
        files = ["--embeddings", work / "queries.npy", "--labels", work / "queries labels.npy",
                 "--gallery-embeddings", work / "gallery.npy",
                 "--gallery-labels", work / "gallery labels.npy",
                 "--memory-mb", options.memory_mb, "--no-tsne", "--no-linear-probe"]  # fmt: skip
        args = [str(a) for a in files]
        cores = os.cpu_count() or 1
        print(f"{'processes':>9} {'threads each':>12} {'wall s':>8}   peak RSS per process (MiB)")
        outs = {}
        for processes in (1, options.processes):
            out = work / f"{processes} processes"
            outs[processes] = out / "metrics.json"
            threads = max(1, cores // processes)
            wall, peaks, _ = evaluate([*args, "--out", str(out)], processes, threads)
            peak_text = ", ".join(f"{p:,.0f}" for p in peaks)
            print(f"{processes:>9} {threads:>12} {wall:>8.1f}   {peak_text}")
        largest, other = difference(outs[1], outs[options.processes])
        metrics = json.loads(outs[1].read_text())
        print(f"MAP@R {metrics['retrieval']['map_at_r']:.4f} (k = {metrics['retrieval']['k']}), "
              f"Recall@1 {metrics['retrieval']['recall_at_1']:.4f}")  # fmt: skip
        print(f"metrics of 1 and {options.processes} processes: largest difference {largest:.3g}"
              + (f"; other values differ: {', '.join(other)}" if other else "; nothing else differs"))  # fmt: skip


if __name__ == "__main__":
    main()
