"""Evaluations of several cases on one process or as one rank of a gloo job.

``python tests/distributed_evaluation.py DATA OUT`` with RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT set evaluates every case with this rank's share of the gallery (memory-mapped from
DATA/*.npy, written by ``write_data``) and rank 0 writes OUT/CASE.json (the metrics) and
OUT/CASE.npy (the neighbours kept). test_distributed_evaluation.py compares them with one
process's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tripletnet.evaluation.evaluate import Evaluation, evaluate_shard
from tripletnet.world import SINGLE, World, start, stop

# name: (queries, gallery (0: leave-one-out), dim, integer-valued, metric, memory_mb)
CASES: dict[str, tuple[int, int, int, bool, str, float | None]] = {
    "leave-one-out, ties": (151, 0, 3, True, "euclidean", None),
    "query/gallery, ties": (101, 203, 3, True, "euclidean", None),
    "query/gallery, cosine": (101, 203, 6, False, "cosine", None),
    "leave-one-out, cosine": (133, 0, 5, False, "cosine", None),
    "query/gallery, blocks": (99, 517, 3, True, "euclidean", 0.001),
}
CLASSES = 5


def stem(name: str) -> str:
    """The case's name as a file name."""
    return name.replace("/", "-").replace(", ", "-")


def write_data(folder: Path) -> None:
    """Each case's queries, gallery and labels as .npy files in ``folder``."""
    rng = np.random.default_rng(11)
    for name, (queries, gallery, dim, integer, _, _) in CASES.items():
        for part, size in (("queries", queries), ("gallery", gallery)):
            if not size:
                continue
            x = rng.integers(0, 3, (size, dim)) if integer else rng.normal(size=(size, dim))
            np.save(folder / f"{stem(name)} {part}.npy", x.astype(np.float32))
            np.save(folder / f"{stem(name)} {part} labels.npy", rng.integers(0, CLASSES, size))


def evaluate_case(folder: Path, name: str, world: World = SINGLE) -> Evaluation | None:
    """The case evaluated with this rank's rows of its memory-mapped gallery."""
    _, gallery, _, _, metric, memory_mb = CASES[name]

    def load(part: str) -> Any:
        return np.load(folder / f"{stem(name)} {part}.npy", mmap_mode="r")

    mine: Any = None
    own_labels: Any = None
    if gallery:
        rows = world.shard(gallery)
        mine = load("gallery")[rows.start : rows.stop]
        own_labels = load("gallery labels")[rows.start : rows.stop]
    return evaluate_shard(
        np.asarray(load("queries")), np.asarray(load("queries labels")), mine, own_labels,
        k=3, pairs=300, resamples=50, metric=metric, memory_mb=memory_mb, world=world,
    )  # fmt: skip


def main(folder: Path, out: Path) -> None:
    torch.set_num_threads(1)
    world = start(torch.device("cpu"))
    try:
        for name in CASES:
            evaluation = evaluate_case(folder, name, world)
            if evaluation is not None:
                (out / f"{stem(name)}.json").write_text(json.dumps(evaluation.metrics))
                np.save(out / f"{stem(name)}.npy", evaluation.retrieval.ids)
    finally:
        stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
