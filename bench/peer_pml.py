"""tripletnet's own-data defaults beside pytorch-metric-learning's documented MNIST example, on
MNIST given as an image folder (an unseen dataset to tripletnet: no built-in name, no built-in
defaults), judged by PML's own AccuracyCalculator.

    python bench/peer_pml.py --data-dir ../shared/data/mnist --cache /tmp/peerpml --seeds 0 1 2

Recipes, each trained once per seed:

(a) ``pml-example``: PML's notebook ``examples/notebooks/TripletMarginLossMNIST.ipynb``
    re-created: the net conv1 1->32 3x3, ReLU, conv2 32->64 3x3, ReLU, 2x2 max-pool,
    Dropout2d(0.25), flatten, fc1 9216->128 (the notebook's dropout2 and fc2 are defined but not
    used in its forward, so they are left out); inputs ToTensor (x / 255) then Normalize((0.1307,),
    (0.3081,)); Adam lr 0.01 (no weight decay, no schedule); TripletMarginLoss(margin=0.2,
    distance=CosineSimilarity(), reducer=ThresholdReducer(low=0)) on the triplets of
    TripletMarginMiner(margin=0.2, distance=CosineSimilarity(), type_of_triplets="semihard");
    batches of 256, shuffled (DataLoader, no workers, the last short batch kept); one epoch;
    embeddings by PML's BaseTester (L2-normalised, its default; batches of 256). The images
    come from the same PNG folder (decoded with PIL in the DataLoader, as the notebook's
    datasets.MNIST hands out PIL images); torch.manual_seed(seed) before the net is built. Its wall-clock (dataset
    listing + the epoch) is the budget the others are compared with.
(b) ``tripletnet-defaults``: ``tripletnet train --dataset FOLDER --seed S --out RUN``, no method,
    model or optimiser flag: the defaults for your own data (``--defaults-flags`` adds flags,
    e.g. to cap the epochs; none by default).
(c) ``tripletnet-best``, with ``--best FLAGS``: the same command plus those flags (another
    recipe to compare; none by default: of the recipes tried, docs/peer-pml.md, the defaults
    were the best).
(d) ``tripletnet-paper``, with ``--paper``: ``--method triplet`` (the paper's random triplets,
    the default of the built-in datasets: 25 epochs of 64,000 triplets, long on a CPU).

The judge, the same for every recipe: ``AccuracyCalculator(include=("precision_at_1",
"mean_average_precision_at_r", "NMI"), k="max_bin_count")`` (its default k-NN: faiss,
IndexFlatL2) on the test embeddings as queries against the train embeddings as the reference
(``get_accuracy(test, test_labels, train, train_labels, False)``). tripletnet's embeddings are
what ``tripletnet embed RUN --split train/test`` writes (``runs.load_run`` + ``embed_split``:
L2-normalised for a run that trains in cosine geometry, as the run's own search uses them).
The raw-pixel row: the normalised pixels (as (a) feeds them), flattened, 784-d, no L2 norm.

Wall-clock: (a) the dataset listing and the training epoch; (b)-(d) the ``tripletnet train``
command until it prints ``trained N epochs`` (start-up, decoding the PNGs once, training, the
per-epoch monitoring and the checkpoints), before its own evaluation and report (the whole
command's time is kept too, as ``command_seconds``). Embedding and judging are not counted for
any recipe. CPU seconds beside it (``process_time`` for (a); for (b)-(d) the command's and its
finished children's CPU time from /proc at that moment): on a shared machine the wall-clock
depends on the others' load, the CPU time much less. Each seed runs every recipe in turn, so that the
recipes share the load alike.

Prints a table of mean +- sd over the seeds and writes CACHE/peer_pml.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
PAPER = ["--method", "triplet", "--model", "mnist"]
INCLUDE = ("precision_at_1", "mean_average_precision_at_r", "NMI")
MEAN, STD = 0.1307, 0.3081  # the notebook's Normalize


class PngFolder(Dataset):
    """``ROOT/CLASS/*.png`` as (tensor, label): ToTensor then Normalize, like the notebook's."""

    def __init__(self, root: Path) -> None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [
            (str(path), code)
            for code, name in enumerate(classes)
            for path in sorted((root / name).glob("*.png"))
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        return (torch.from_numpy(pixels)[None] - MEAN) / STD, label


class PmlNet(nn.Module):
    """The notebook's Net (its unused dropout2 and fc2 left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(9216, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2))
        return self.fc1(torch.flatten(x, 1))


def make_folder(data_dir: Path, cache: Path) -> Path:
    """CACHE/mnist-folder (train/ and test/ class folders of PNGs), written once."""
    folder = cache / "mnist-folder"
    done = folder / ".complete"
    if not done.is_file():
        command = [sys.executable, str(HERE / "make_image_folder.py"), "--data-dir", str(data_dir)]
        subprocess.run([*command, "--out", str(folder)], check=True)
        done.write_text("60000 train + 10000 test PNGs\n")
    return folder


def judge(
    test: np.ndarray, test_y: np.ndarray, train: np.ndarray, train_y: np.ndarray
) -> dict[str, float]:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calculator = AccuracyCalculator(include=INCLUDE, k="max_bin_count")
    scores = calculator.get_accuracy(
        torch.as_tensor(test, dtype=torch.float32),
        torch.as_tensor(test_y),
        torch.as_tensor(train, dtype=torch.float32),
        torch.as_tensor(train_y),
        False,
    )
    return {name: float(scores[name]) for name in INCLUDE}


def pml_example(folder: Path, seed: int) -> dict[str, Any]:
    """Recipe (a), trained and judged; the seconds are the listing and the epoch."""
    from pytorch_metric_learning import distances, losses, miners, reducers, testers

    start, cpu = time.perf_counter(), time.process_time()
    train_set, test_set = PngFolder(folder / "train"), PngFolder(folder / "test")
    torch.manual_seed(seed)
    model = PmlNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    distance = distances.CosineSimilarity()
    reducer = reducers.ThresholdReducer(low=0)
    loss_func = losses.TripletMarginLoss(margin=0.2, distance=distance, reducer=reducer)
    mining_func = miners.TripletMarginMiner(
        margin=0.2, distance=distance, type_of_triplets="semihard"
    )
    model.train()
    for data, labels in DataLoader(train_set, batch_size=256, shuffle=True):
        optimizer.zero_grad()
        embeddings = model(data)
        loss = loss_func(embeddings, labels, mining_func(embeddings, labels))
        loss.backward()
        optimizer.step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tester = testers.BaseTester(batch_size=256, dataloader_num_workers=0)
    train_e, train_y = tester.get_all_embeddings(train_set, model)
    test_e, test_y = tester.get_all_embeddings(test_set, model)
    scores = judge(test_e.numpy(), test_y[:, 0].numpy(), train_e.numpy(), train_y[:, 0].numpy())
    return {**scores, "seconds": seconds, "cpu_seconds": cpu}


def children_cpu() -> float:
    """CPU seconds of the finished child processes (and theirs: the DataLoader workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a running process and of its children that have finished (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tripletnet_recipe(folder: Path, seed: int, flags: list[str], out: Path) -> dict[str, Any]:
    """``tripletnet train --dataset FOLDER`` plus ``flags``, timed, then judged."""
    from tripletnet.runs import load_run
    from tripletnet.runs.data import embed_split, load_data

    command = [sys.executable, "-m", "tripletnet", "train", "--dataset", str(folder)]
    command += ["--seed", str(seed), "--out", str(out), "--overwrite", *flags]
    start, cpu = time.perf_counter(), children_cpu()
    process = subprocess.Popen(
        [*command, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines, trained = [], None
    for line in process.stdout:  # "trained N epochs in ...": training ends, evaluation begins
        lines.append(line)
        if trained is None and line.startswith("trained "):
            trained = time.perf_counter() - start, tree_cpu(process.pid)
    process.wait()
    seconds, all_cpu = time.perf_counter() - start, children_cpu() - cpu
    if process.returncode or trained is None:
        raise SystemExit(f"{shlex.join(command)} failed:\n{''.join(lines)}")
    first = next((line.strip() for line in lines if line.startswith("net:")), "")
    run = load_run(out)
    data = load_data(run.config)
    train = embed_split(run.model, data.train, run.prepare, workers=2)
    test = embed_split(run.model, data.test, run.prepare, workers=2)
    scores = judge(test.embeddings, test.labels, train.embeddings, train.labels)
    epochs = len(json.loads((out / "history.json").read_text()))
    return {
        **scores,
        "seconds": trained[0],
        "cpu_seconds": trained[1],
        "command_seconds": seconds,
        "command_cpu_seconds": all_cpu,
        "epochs": epochs,
        "net_line": first,
    }


def raw_pixels(folder: Path) -> dict[str, Any]:
    def stack(root: Path) -> tuple[np.ndarray, np.ndarray]:
        items = PngFolder(root)
        x = np.stack([items[i][0].numpy().ravel() for i in range(len(items))])
        return x, np.array([label for _, label in items.items])

    train, train_y = stack(folder / "train")
    test, test_y = stack(folder / "test")
    return {**judge(test, test_y, train, train_y), "seconds": 0.0, "cpu_seconds": 0.0}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (*INCLUDE, "seconds", "cpu_seconds"):
        values = [row[name] for row in rows]
        out[name] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="MNIST's idx .gz files")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the PNGs and runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--defaults-flags", default="", help="flags added to (b), quoted (e.g. '--epochs 2')"
    )
    parser.add_argument("--tag", default="", help="prefix of the run folders' names")
    parser.add_argument("--best", default=None, help="run (c) with these flags, quoted")
    parser.add_argument("--paper", action="store_true", help="run (d)")
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only these recipes (and 'raw': the pixels)"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    folder = make_folder(args.data_dir, args.cache)
    best = shlex.split(args.best) if args.best is not None else None
    runs = args.cache / f"runs{'-' + args.tag if args.tag else ''}"
    recipes: dict[str, Any] = {
        "pml-example": lambda seed: pml_example(folder, seed),
        "tripletnet-defaults": lambda seed: tripletnet_recipe(
            folder, seed, shlex.split(args.defaults_flags), runs / f"defaults-{seed}"
        ),
    }
    if best is not None:
        recipes["tripletnet-best"] = lambda seed: tripletnet_recipe(
            folder, seed, best, runs / f"best-{seed}"
        )
    if args.paper:
        recipes["tripletnet-paper"] = lambda seed: tripletnet_recipe(
            folder, seed, PAPER, runs / f"paper-{seed}"
        )
    if args.only is not None:
        recipes = {name: recipe for name, recipe in recipes.items() if name in args.only}
    results: dict[str, Any] = {"seeds": args.seeds, "best_flags": best, "runs": {}}
    results["runs"] = {name: [] for name in recipes}
    for seed in args.seeds:  # each seed runs every recipe, so that they share the machine's load
        for name, recipe in recipes.items():
            row = recipe(seed)
            print(f"{name} seed {seed}: " + json.dumps(row), flush=True)
            results["runs"][name].append(row)
    if args.only is None or "raw" in args.only:
        results["runs"]["raw pixels"] = [raw_pixels(folder)]
    (args.cache / f"peer_pml{'-' + args.tag if args.tag else ''}.json").write_text(
        json.dumps(results, indent=1)
    )
    print(
        f"\n| recipe | P@1 | MAP@R | NMI | wall-clock s | CPU s |  (mean +- sd, seeds {args.seeds})"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in results["runs"].items():
        s = summary(rows)
        cells = " | ".join(f"{s[key][0]:.4f} +- {s[key][1]:.4f}" for key in INCLUDE)
        times = " | ".join(
            f"{s[key][0]:.0f} +- {s[key][1]:.0f}" for key in ("seconds", "cpu_seconds")
        )
        print(f"| {name} | {cells} | {times} |")


if __name__ == "__main__":
    main()
