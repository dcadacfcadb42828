"""One training step of several methods, on one process or as one rank of a gloo job.

``python tests/distributed_step.py OUT`` with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set
writes OUT/rank{RANK}.npz: each case's loss, its net's gradients and its proxies after the step.
test_distributed.py runs two of these and compares them with ``one_step`` on one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from tripletnet.models import build_model
from tripletnet.training.methods import MethodContext, method_class, typed_options
from tripletnet.training.step import Step
from tripletnet.world import SINGLE, World, start, stop

FEATURES, SAMPLES, CLASSES = 12, 96, 4
PK = {"loss": None, "classes_per_batch": 4, "samples_per_class": 5}  # 20 samples: 10 + 10
CASES: dict[str, tuple[str, dict[str, object], int]] = {  # method, options, batch size
    "distance-ratio": ("triplet", {"triplets_per_epoch": 64}, 15),  # 8 + 7 triplets per rank
    "batch-all triplet margin": ("batch-mining", {**PK, "loss": "triplet-margin"}, 20),
    "multi-similarity": ("batch-mining", {**PK, "loss": "multi-similarity"}, 20),
    "supcon": ("batch-mining", {**PK, "loss": "supcon"}, 20),
    "proxy-anchor": ("batch-mining", {**PK, "loss": "proxy-anchor"}, 20),
    "arcface, random batches": (
        "batch-mining",
        {**PK, "loss": "arcface", "sampler": "random"},
        23,  # 12 + 11 samples
    ),
}


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32), np.arange(SAMPLES) % CLASSES


def one_step(case: str, world: World = SINGLE) -> dict[str, np.ndarray]:
    """The case's first batch, one SGD step: the loss, the net's gradients, the proxies after."""
    name, given, batch_size = CASES[case]
    x, y = data()
    kind = method_class(name)
    options = typed_options(name, {k: v for k, v in given.items() if v is not None})
    method = kind(options, MethodContext(y, 8, (FEATURES,), batch_size, seed=3))
    torch.manual_seed(0)
    cosine = kind.metric(options) == "cosine"
    model = build_model("mlp", (FEATURES,), 8, normalize=cosine, hidden=16, dropout=0.0)
    learned = method.learned()
    parameters = [*model.parameters(), *(learned.parameters() if learned is not None else [])]
    step = Step(model, method, torch.optim.SGD(parameters, lr=0.1, momentum=0.9), world)
    indices = next(iter(method.batches(0)))
    loss, _ = step(indices, torch.from_numpy(x[step.share(indices)]), lr=0.1)
    result = {"loss": loss.detach().numpy()}
    result |= {
        f"grad.{n}": p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None
    }
    if learned is not None:
        result |= {f"learned.{n}": p.detach().numpy() for n, p in learned.named_parameters()}
    return result


def main(out: Path) -> None:
    torch.set_num_threads(1)
    world = start(torch.device("cpu"))
    try:
        results = {
            f"{case}/{key}": value for case in CASES for key, value in one_step(case, world).items()
        }
        np.savez(out / f"rank{world.rank}.npz", **results)
    finally:
        stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
