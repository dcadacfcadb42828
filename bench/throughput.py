"""Training throughput: the whole pipeline against the bare net, measured in the same run.

Pipeline: ``tripletnet.training.train``'s second epoch (triplet sampling, batch gathering and
normalisation, three-way embedding, distance-ratio loss, SGD step, progress statistics), timed by
the trainer itself (the epoch's batch loop, evaluation excluded). Bare: the same net on a
pre-built batch of the same size, forward + sum + backward + SGD step (lr 0), nothing else,
in the same memory layout (channels-last) and precision (``--precision``) as the pipeline; and
the bare net once more in PyTorch's default NCHW layout, to show what channels-last gains.
The two alternate ``--repeats`` times; the table gives the medians and the pipeline's overhead.
``--device cuda`` runs both on the GPU (the bare batch made there, the clock read after a
synchronisation); fp16 steps through a GradScaler in both. ``--dataset synthetic96`` is an .npz
of random 3 x 96 x 96 uint8 images in 10 classes (for ``--model resnet18``).

    python bench/throughput.py --dataset digits
    python bench/throughput.py --dataset mnist --data-dir ../shared/data/mnist --precision bf16
    python bench/throughput.py --dataset mnist --data-dir ../shared/data/mnist --device cuda --batch-norm
    python bench/throughput.py --dataset synthetic96 --model resnet18 --device cuda --precision auto
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tripletnet.data import load_dataset
from tripletnet.files import read_json
from tripletnet.models import build_model, channels_last
from tripletnet.runs.config import PRECISIONS
from tripletnet.training import TrainConfig, train
from tripletnet.training.precision import compute_dtype


def synthetic96(folder: Path, samples: int = 4000) -> Path:
    """An .npz of random 3 x 96 x 96 uint8 images, 10 classes, 20 % of them the test split."""
    rng = np.random.default_rng(0)
    path = folder / "synthetic96.npz"
    split = np.where(np.arange(samples) % 5 == 0, "test", "train")
    x = rng.integers(0, 256, (samples, 3, 96, 96), dtype=np.uint8)
    np.savez(path, x=x, y=np.arange(samples) % 10, split=split)
    return path


def pipeline_images_per_second(config: TrainConfig, folder: Path) -> float:
    """The second epoch's rate (the first warms up: allocator, cuDNN's algorithm choice)."""
    train(config, folder, overwrite=True, show_progress=False, log_epochs=False)
    epoch = read_json(folder / "history.json")[-1]
    return epoch["images"] / epoch["seconds"]


def bare_images_per_second(
    config: TrainConfig, input_shape: tuple[int, ...], steps: int, layout: str = "channels-last"
) -> float:
    torch.manual_seed(0)
    device = torch.device(config.optim.device)
    model = build_model(
        config.architecture, input_shape, config.model.embedding_dim, **config.model.net_options
    ).to(device)
    if layout == "channels-last":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.compute_dtype = compute_dtype(config.optim.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=model.compute_dtype == torch.float16)
    # lr 0: the same work per step, while the weights stay as initialised (no drift to
    # degenerate or denormal values that would change the speed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    batch = torch.randn(3 * config.optim.batch_size, *input_shape, device=device)
    if layout == "channels-last":
        batch = channels_last(batch)
    model.train()
    for timed in (False, True):  # a warm-up pass (cuDNN's algorithm choice), then the clock
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps if timed else min(steps, 5)):
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(model(batch).sum()).backward()
            scaler.step(optimizer)
            scaler.update()
        synchronize(device)
    return steps * len(batch) / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--triplets", type=int, default=12_800, help="triplets in the timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", help="the net (default: the dataset's)")
    parser.add_argument("--batch-norm", action="store_true", help="the paper nets' batch norm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset
        if dataset == "synthetic96":
            dataset = str(synthetic96(Path(tmp)))
        data = load_dataset(dataset, args.data_dir)
        config = TrainConfig(
            dataset=dataset,
            data_dir=args.data_dir,
            model=args.model,
            batch_norm=True if args.batch_norm else None,
            epochs=2,
            triplets_per_epoch=args.triplets,
            batch_size=args.batch_size,
            test_triplets=1000,
            device=args.device,
            precision=args.precision,
        ).resolved(data.input_shape)
        run(args, config, data.input_shape, Path(tmp))


def run(
    args: argparse.Namespace, config: TrainConfig, input_shape: tuple[int, ...], tmp: Path
) -> None:
    steps = -(-args.triplets // args.batch_size)
    pipeline, bare, bare_nchw = [], [], []
    for _ in range(args.repeats):
        pipeline.append(pipeline_images_per_second(config, tmp / "run"))
        bare.append(bare_images_per_second(config, input_shape, steps))
        bare_nchw.append(bare_images_per_second(config, input_shape, steps, "nchw"))
    p, b = statistics.median(pipeline), statistics.median(bare)
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    )
    dtype = compute_dtype(config.optim.precision, device)
    print(
        f"dataset {args.dataset}, model {config.architecture}"
        f"{' with batch norm' if args.batch_norm else ''}, batch {args.batch_size} triplets "
        f"({3 * args.batch_size} images), {steps} steps, {args.device} ({where}), "
        f"{args.precision} ({dtype or torch.float32}), channels-last, torch {torch.__version__}"
    )
    print(f"| measure | images/s (median of {args.repeats}) |")
    print("|---|---:|")
    print(f"| bare forward+backward+step | {b:,.0f} |")
    print(f"| the same in the NCHW layout (for comparison) | {statistics.median(bare_nchw):,.0f} |")
    print(f"| tripletnet training pipeline | {p:,.0f} |")
    print(f"| pipeline overhead | {100 * (b - p) / b:.1f} % |")


if __name__ == "__main__":
    main()
