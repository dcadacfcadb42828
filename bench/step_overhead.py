"""The training step's own CPU cost: ``training.step.Step`` against the loop it replaced (inline
forward, backward, SGD step), on a tiny MLP whose step is mostly Python. CPU time of this
process (``time.process_time``, one thread), so other jobs on the machine move it little;
the two alternate, medians of 5 rounds. Both train the same net, method and SGD, assembled as
``train`` and the scikit-learn estimator assemble them (``training.assemble``).

    PYTHONPATH=src python bench/step_overhead.py [--rounds 5] [--triplets 8192]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from tripletnet.models import build_model
from tripletnet.training.assemble import Optimisation, assemble
from tripletnet.training.methods import MethodContext, method_class, typed_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each loop (the median)")
    parser.add_argument("--triplets", type=int, default=8192, help="triplets a round trains")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = np.arange(512) % 10
    x = torch.randn(512, 16)
    options = typed_options("triplet", {"triplets_per_epoch": args.triplets})
    method = method_class("triplet")(options, MethodContext(labels, 8, (16,), 16, 0))
    model = build_model("mlp", (16,), 8, hidden=16)
    step = assemble(model, method, Optimisation(lr=0.01, momentum=0.9, weight_decay=0.0)).step
    optimizer = step.optimizer
    batches = list(method.batches(0))

    def inline() -> None:
        for indices in batches:
            for group in optimizer.param_groups:
                group["lr"] = 0.01
            loss, _ = method.loss(model, indices, x[torch.from_numpy(indices)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def stepped() -> None:
        for indices in batches:
            step(indices, x[torch.from_numpy(step.share(indices))], 0.01)

    loops: dict[str, Callable[[], None]] = {"inline loop": inline, "Step": stepped}
    micros: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            started = time.process_time()
            loop()
            micros[name].append((time.process_time() - started) / len(batches) * 1e6)
    for name, values in micros.items():
        print(f"{name}: {statistics.median(values):.0f} us of CPU per step ({len(batches)} steps)")


if __name__ == "__main__":
    main()
