"""Where tripletnet's defaults differ from pytorch-metric-learning's, measured on one batch.

Each row builds a loss with both libraries' DEFAULT arguments (nothing passed but what a
loss must have), calls both on the same batch, and prints the two values; then the same with
PML's choices passed to ours, to show the difference is the defaults, not the formula. The
last rows compare ``mean_average_precision``: ours over the top k the metrics need (the largest
class or the largest Recall@K), PML's AccuracyCalculator over its default k (the whole reference set) and over
``k="max_bin_count"``.

    python bench/pml_defaults.py [--batch 64 --dim 128 --classes 8 --seed 0]

Needs the test extra (pytorch-metric-learning). Prints only what it measured.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers as pml_reducers
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from tripletnet import losses
from tripletnet.evaluation.retrieval import retrieve

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _on_unit(loss: Loss) -> Loss:
    """``loss`` on L2-normalised embeddings (PML's distances normalise by default)."""
    return lambda x, y: loss(F.normalize(x, dim=1), y)


def rows() -> list[tuple[str, Loss, Loss, Loss, str]]:
    """(name, ours with defaults, PML with defaults, ours with PML's choices, what differs)."""
    hinge = pml_losses.ContrastiveLoss(reducer=pml_reducers.DoNothingReducer())

    def pml_contrastive_as_hadsell(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = torch.cat([0.5 * part["losses"].pow(2) for part in hinge(x, y).values()])
        return terms.sum() / max(int(torch.count_nonzero(terms)), 1)

    return [
        (
            "TripletMarginLoss",
            losses.TripletMarginLoss(),
            pml_losses.TripletMarginLoss(),
            _on_unit(losses.TripletMarginLoss(margin=0.05)),
            "margin 0.2 vs 0.05; plain vs L2-normalised embeddings",
        ),
        (
            "ContrastiveLoss",
            losses.ContrastiveLoss(),
            pml_losses.ContrastiveLoss(),
            _on_unit(losses.ContrastiveLoss()),
            "Hadsell's 1/2 max(0, .)^2 vs PML's plain hinge; plain vs normalised",
        ),
        (
            "  (PML squared, halved)",
            losses.ContrastiveLoss(),
            pml_contrastive_as_hadsell,
            _on_unit(losses.ContrastiveLoss()),
            "PML's hinges squared and halved: our formula",
        ),
        (
            "NTXentLoss",
            losses.NTXentLoss(),
            pml_losses.NTXentLoss(),
            losses.NTXentLoss(temperature=0.07),
            "temperature 0.5 (SimCLR) vs 0.07",
        ),
        (
            "SupConLoss",
            losses.SupConLoss(),
            pml_losses.SupConLoss(),
            losses.SupConLoss(temperature=0.1),
            "none (t = 0.1 in both)",
        ),
        (
            "MultiSimilarityLoss",
            losses.MultiSimilarityLoss(),
            pml_losses.MultiSimilarityLoss(),
            losses.MultiSimilarityLoss(),
            "none (cosine similarity in both)",
        ),
        (
            "CircleLoss",
            losses.CircleLoss(),
            pml_losses.CircleLoss(),
            losses.CircleLoss(),
            "none (cosine similarity in both)",
        ),
        (
            "LiftedStructureLoss",
            losses.LiftedStructureLoss(),
            pml_losses.LiftedStructureLoss(),
            _on_unit(losses.LiftedStructureLoss()),
            "plain vs L2-normalised embeddings",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, args.dim, generator=generator)
    y = torch.arange(args.batch) % args.classes
    print(f"one batch: {args.batch} x {args.dim} standard normal, {args.classes} classes")
    print(f"{'loss':22} {'ours':>9} {'PML':>9} {'ours, PML args':>15}  difference")
    for name, ours, theirs, ours_as_pml, why in rows():
        values = [float(f(x, y)) for f in (ours, theirs, ours_as_pml)]
        print(f"{name:22} {values[0]:9.3f} {values[1]:9.3f} {values[2]:15.3f}  {why}")

    embeddings = x.numpy()
    labels = y.numpy()
    ours = retrieve(embeddings, labels).summary()
    whole = retrieve(embeddings, labels, k=len(labels) - 1).summary()
    print("\nmean_average_precision, leave-one-out on the same batch:")
    print(
        f"  tripletnet default k ({ours['k']}: max(largest R, largest Recall@K)): "
        f"{ours['mean_average_precision']:.4f}"
    )
    print(f"  tripletnet k = whole gallery ({whole['k']}): {whole['mean_average_precision']:.4f}")
    for k in (None, "max_bin_count"):
        calculator = AccuracyCalculator(include=("mean_average_precision",), k=k)
        value = calculator.get_accuracy(x, y, x, y, ref_includes_query=True)
        print(f"  PML AccuracyCalculator(k={k!r}): {value['mean_average_precision']:.4f}")
    print(f"  tripletnet map_at_r {ours['map_at_r']:.4f}", end=" ")
    value = AccuracyCalculator(include=("mean_average_precision_at_r",)).get_accuracy(
        x, y, x, y, ref_includes_query=True
    )
    print(f"vs PML {value['mean_average_precision_at_r']:.4f}")


if __name__ == "__main__":
    main()
