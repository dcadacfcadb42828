"""Our losses side by side with pytorch-metric-learning (PML): time and peak memory of one
forward + backward pass, D = 128, 8 samples per class, each case in a fresh subprocess.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/losses.py [--quick] [--skip-huge]

Peak memory is the rise of the process's peak resident set size (VmHWM, reset through
/proc/self/clear_refs) over its size just before the pass, the largest over the passes; time
is the median of the passes after a warm-up pass (B = 256: up to 15, B = 1024: up to 5, fewer
once 10 s are spent; larger B: the single pass).
The table prints our time, PML's, their ratio, both peaks, and whether the two values agree.
The PML batch-all case at B = 4096 needs ~12 GB and runs alone, last (--skip-huge leaves it out).

``--device cuda`` runs float32 cases on the GPU (the issue's table: batch-all at B = 1,024,
4,096 and 16,384 against PML, and every other loss at B = 1,024); the time is read after a
synchronisation, and the peak is torch's peak allocated GPU memory during the pass.

    PYTHONPATH=src python bench/losses.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIM, PER_CLASS = 128, 8
Factory = Callable[[int], Any]


def ours(name: str) -> Factory:
    from tripletnet import losses, mining

    classes: dict[str, Factory] = {
        "triplet batch-all": lambda c: losses.TripletMarginLoss(margin=0.2),
        "triplet batch-hard": lambda c: losses.TripletMarginLoss(
            margin=0.2, miner=mining.BatchHardMiner()
        ),
        "contrastive": lambda c: losses.ContrastiveLoss(),
        "lifted structure": lambda c: losses.LiftedStructureLoss(),
        "nt-xent": lambda c: losses.NTXentLoss(temperature=0.07, reduction="mean_nonzero"),
        "supcon": lambda c: losses.SupConLoss(temperature=0.1),
        "multi-similarity": lambda c: losses.MultiSimilarityLoss(),
        "circle": lambda c: losses.CircleLoss(),
        "arcface": lambda c: losses.ArcFaceLoss(c, DIM),
        "cosface": lambda c: losses.CosFaceLoss(c, DIM),
        "proxy-nca": lambda c: losses.ProxyNCALoss(c, DIM),
        "proxy-anchor": lambda c: losses.ProxyAnchorLoss(c, DIM),
    }
    return classes[name]


def pml(name: str) -> Factory:
    from pytorch_metric_learning import distances, losses, miners

    def l2() -> Any:
        return distances.LpDistance(normalize_embeddings=False, p=2, power=1)

    def mined(loss: Any, miner: Any) -> Any:
        return lambda x, y: loss(x, y, miner(x, y))

    classes: dict[str, Factory] = {
        "triplet batch-all": lambda c: losses.TripletMarginLoss(margin=0.2, distance=l2()),
        "triplet batch-hard": lambda c: mined(
            losses.TripletMarginLoss(margin=0.2, distance=l2()),
            miners.BatchHardMiner(distance=l2()),
        ),
        "contrastive": lambda c: losses.ContrastiveLoss(distance=l2()),
        "lifted structure": lambda c: losses.LiftedStructureLoss(distance=l2()),
        "nt-xent": lambda c: losses.NTXentLoss(temperature=0.07),
        "supcon": lambda c: losses.SupConLoss(temperature=0.1),
        "multi-similarity": lambda c: losses.MultiSimilarityLoss(),
        "circle": lambda c: losses.CircleLoss(),
        "arcface": lambda c: losses.ArcFaceLoss(c, DIM, margin=math.degrees(0.5), scale=64),
        "cosface": lambda c: losses.CosFaceLoss(c, DIM, margin=0.35, scale=64),
        "proxy-nca": lambda c: losses.ProxyNCALoss(c, DIM),
        "proxy-anchor": lambda c: losses.ProxyAnchorLoss(c, DIM, margin=0.1, alpha=32),
    }
    return classes[name]


# PML computes these with another formula, so their values differ by design
OTHER_FORMULA = {"contrastive": "PML's hinges are not squared (Hadsell's are)"}


def status(field: str) -> int:
    """A /proc/self/status field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def run_case(
    impl: str, name: str, size: int, dtype_name: str, repeats: int, device_name: str = "cpu"
) -> dict[str, Any]:
    """One case in this process: build the batch and loss, time forward + backward."""
    import torch

    device = torch.device(device_name)
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    classes = size // PER_CLASS
    x = torch.randn(size, DIM, dtype=dtype, generator=generator).to(device)
    labels = torch.arange(classes).repeat_interleave(PER_CLASS).to(device)
    torch.manual_seed(0)
    reference = ours(name)(classes)  # our proxies, copied into PML's loss so both agree
    loss = reference if impl == "ours" else pml(name)(classes)
    if isinstance(loss, torch.nn.Module):
        loss = loss.to(device, dtype)
        proxies = getattr(reference, "proxies", None)
        if impl == "pml" and proxies is not None:
            weight = getattr(loss, "W", None)
            target = weight if weight is not None else loss.proxies
            target.data = (
                (proxies.data.T if weight is not None else proxies.data).to(target).clone()
            )
    seconds, peaks, value = [], [], math.nan
    for _ in range(repeats + 1):  # the first pass warms up; not timed when others follow
        if len(seconds) >= 2 and sum(seconds) > 10.0:
            break
        embeddings = x.clone().requires_grad_(True)
        meter = GpuPeak(device) if device.type == "cuda" else RssPeak()
        started = time.perf_counter()
        result = loss(embeddings, labels)
        result.backward()
        meter.synchronize()
        seconds.append(time.perf_counter() - started)
        peaks.append(meter.peak())
        value = float(result.detach())
        del result, embeddings
    timed = seconds[1:] or seconds
    return {"seconds": statistics.median(timed), "peak": max(peaks), "value": value}


class RssPeak:
    """The rise of the process's peak resident set size (VmHWM) over its size now."""

    def __init__(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
        self.before = status("VmRSS")

    def synchronize(self) -> None:
        return None

    def peak(self) -> int:
        return status("VmHWM") - self.before


class GpuPeak:
    """The rise of torch's peak allocated GPU memory over the allocation now."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch, self.device = torch, device
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        self.before = torch.cuda.memory_allocated(device)

    def synchronize(self) -> None:
        self.torch.cuda.synchronize(self.device)

    def peak(self) -> int:
        return int(self.torch.cuda.max_memory_allocated(self.device)) - self.before


def in_subprocess(
    impl: str, name: str, size: int, dtype: str, repeats: int, device: str = "cpu"
) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--case", impl, name, str(size), dtype, str(repeats), device
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["killed"])[-1]
        return {"seconds": math.nan, "peak": math.nan, "value": math.nan, "error": tail[:60]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def megabytes(value: float) -> str:
    return "-" if math.isnan(value) else f"{value / 2**20:,.0f} MB"


def row(
    name: str, size: int, dtype: str, mine: dict[str, Any], theirs: dict[str, Any] | None
) -> str:
    if theirs is None:
        theirs = {"seconds": math.nan, "peak": math.nan, "value": math.nan}
    ratio = theirs["seconds"] / mine["seconds"] if mine["seconds"] > 0 else math.nan
    agree = "-"
    if name in OTHER_FORMULA:
        agree = f"n/a: {OTHER_FORMULA[name]}"
    elif not math.isnan(theirs["value"]) and not math.isnan(mine["value"]):
        tolerance = 1e-6 if dtype == "float64" else 1e-3
        close = abs(mine["value"] - theirs["value"]) <= tolerance * max(1.0, abs(theirs["value"]))
        agree = "yes" if close else f"NO ({mine['value']:.6g} vs {theirs['value']:.6g})"
    their_time = theirs.get("error") or (
        "-" if math.isnan(theirs["seconds"]) else f"{theirs['seconds']:.3f} s"
    )
    ours_time = mine.get("error") or f"{mine['seconds']:.3f} s"
    ratio_text = "-" if math.isnan(ratio) else f"{ratio:.1f}x"
    return (
        f"| {name} | {size} | {dtype} | {ours_time} | {their_time} | {ratio_text} | "
        f"{megabytes(mine['peak'])} | {megabytes(theirs['peak'])} | {agree} |"
    )


# (loss, batch size, dtype, run PML too)
CASES: list[tuple[str, int, str, bool]] = (
    [
        ("triplet batch-all", 1024, "float64", True),
        ("triplet batch-all", 4096, "float64", False),
        ("triplet batch-all", 4096, "float32", False),
        ("triplet batch-all", 16384, "float32", False),
        ("nt-xent", 256, "float64", True),
        ("nt-xent", 8192, "float32", False),
        ("supcon", 8192, "float32", False),
    ]
    + [
        (name, size, "float64", True)
        for name in (
            "supcon",
            "triplet batch-hard",
            "contrastive",
            "multi-similarity",
            "circle",
            "arcface",
            "cosface",
            "proxy-nca",
            "proxy-anchor",
        )
        for size in (256, 1024)
    ]
    + [("lifted structure", 256, "float64", True)]
    # PML's NT-Xent and lifted structure list a (pairs x B) tensor: 3.6 and 4.6 GB at B = 256,
    # out of memory at 1024, so at 1024 only ours runs
    + [("nt-xent", 1024, "float64", False), ("lifted structure", 1024, "float64", False)]
)
HUGE = ("triplet batch-all", 4096, "float64")
GPU_CASES: list[tuple[str, int, str, bool]] = [
    ("triplet batch-all", 1024, "float32", True),
    ("triplet batch-all", 4096, "float32", True),
    ("triplet batch-all", 16384, "float32", True),
    *[
        (name, 1024, "float32", True)
        for name in (
            "triplet batch-hard",
            "contrastive",
            "lifted structure",
            "nt-xent",
            "supcon",
            "multi-similarity",
            "circle",
            "arcface",
            "cosface",
            "proxy-nca",
            "proxy-anchor",
        )
    ],
    ("nt-xent", 8192, "float32", False),
    ("supcon", 8192, "float32", False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="only B <= 1024, no huge cases")
    parser.add_argument("--skip-huge", action="store_true", help="leave out PML's 12 GB case")
    args = parser.parse_args()
    if args.case:
        impl, name, size, dtype, repeats, device = args.case
        print(json.dumps(run_case(impl, name, int(size), dtype, int(repeats), device)))
        return
    import torch

    where = (
        torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else f"{torch.get_num_threads()} thread(s)"
    )
    print(f"torch {torch.__version__}, {args.device} ({where}), D = {DIM}, {PER_CLASS} per class")
    print("| loss | B | dtype | ours | PML | PML / ours | our peak | PML peak | values agree |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    cuda = args.device == "cuda"
    cases = [case for case in (GPU_CASES if cuda else CASES) if not args.quick or case[1] <= 1024]
    for name, size, dtype, with_pml in cases:
        repeats = {256: 15, 1024: 5}.get(size, 0) if not cuda else 10
        mine = in_subprocess("ours", name, size, dtype, repeats, args.device)
        theirs = in_subprocess("pml", name, size, dtype, repeats, args.device) if with_pml else None
        print(row(name, size, dtype, mine, theirs), flush=True)
    if not (args.quick or args.skip_huge or cuda):
        name, size, dtype = HUGE
        mine = in_subprocess("ours", name, size, dtype, 0)
        print(row(name, size, dtype, mine, in_subprocess("pml", name, size, dtype, 0)), flush=True)


if __name__ == "__main__":
    main()
