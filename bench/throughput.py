"""Training throughput: the whole pipeline against the bare net, measured in the same run.

Pipeline: ``tripletnet.training.train`` for one epoch (triplet sampling, batch gathering and
normalisation, three-way embedding, distance-ratio loss, SGD step, progress statistics), timed by
the trainer itself (the epoch's batch loop, evaluation excluded). Bare: the same net on a
pre-built batch of the same size, forward + sum + backward + SGD step (lr 0), nothing else,
in the same memory layout (channels-last) and precision (``--precision``) as the pipeline; and
the bare net once more in PyTorch's default NCHW layout, to show what channels-last gains.
The two alternate ``--repeats`` times; the table gives the medians and the pipeline's overhead.

    python bench/throughput.py --dataset digits
    python bench/throughput.py --dataset mnist --data-dir ../shared/data/mnist --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tripletnet.data import load_dataset
from tripletnet.files import read_json
from tripletnet.models import build_model, channels_last
from tripletnet.runs.config import PRECISIONS
from tripletnet.training import TrainConfig, train


def pipeline_images_per_second(config: TrainConfig, folder: Path) -> float:
    train(config, folder, overwrite=True, show_progress=False, log_epochs=False)
    epoch = read_json(folder / "history.json")[0]
    return epoch["images"] / epoch["seconds"]


def bare_images_per_second(
    config: TrainConfig, input_shape: tuple[int, ...], steps: int, layout: str = "channels-last"
) -> float:
    torch.manual_seed(0)
    model = build_model(
        config.architecture, input_shape, config.embedding_dim, **config.model.net_options
    )
    if layout == "channels-last":
        model = model.to(memory_format=torch.channels_last)
    model.compute_dtype = torch.bfloat16 if config.precision == "bf16" else None
    # lr 0: the same work per step, while the weights stay as initialised (no drift to
    # degenerate or denormal values that would change the speed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    batch = torch.randn(3 * config.batch_size, *input_shape)
    if layout == "channels-last":
        batch = channels_last(batch)
    model.train()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(batch).sum().backward()
        optimizer.step()
    return steps * len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--triplets", type=int, default=12_800, help="triplets in the timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, args.data_dir)
    config = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        epochs=1,
        triplets_per_epoch=args.triplets,
        batch_size=args.batch_size,
        test_triplets=1000,
        device="cpu",
        precision=args.precision,
    ).resolved()
    steps = -(-args.triplets // args.batch_size)
    pipeline, bare, bare_nchw = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            pipeline.append(pipeline_images_per_second(config, Path(tmp) / "run"))
            bare.append(bare_images_per_second(config, data.input_shape, steps))
            bare_nchw.append(bare_images_per_second(config, data.input_shape, steps, "nchw"))
    p, b = statistics.median(pipeline), statistics.median(bare)
    print(
        f"dataset {args.dataset}, model {config.architecture}, batch {args.batch_size} triplets "
        f"({3 * args.batch_size} images), {steps} steps, {args.threads} threads, "
        f"{args.precision}, channels-last, torch {torch.__version__}"
    )
    print(f"| measure | images/s (median of {args.repeats}) |")
    print("|---|---:|")
    print(f"| bare forward+backward+step | {b:,.0f} |")
    print(f"| the same in the NCHW layout (for comparison) | {statistics.median(bare_nchw):,.0f} |")
    print(f"| tripletnet training pipeline | {p:,.0f} |")
    print(f"| pipeline overhead | {100 * (b - p) / b:.1f} % |")


if __name__ == "__main__":
    main()
