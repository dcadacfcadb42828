"""What the training methods are, without torch: each method's name, description and
``Options`` (the dataclass of its own options), and the names its options choose from. The
command line's ``train --help`` is made from these alone; the methods' classes (which need
torch) take their facts from here (``class TripletNetwork(RandomTriplets, facts=TRIPLET)``).

Adding a method: its ``Options`` and ``MethodFacts`` here, its class in a module of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..losses.catalogue import LOSSES
from ..mining.catalogue import MINERS
from ..runs.options import option

LOSS_NAMES = tuple(LOSSES)
SAMPLERS = ("pk", "random")
MIXUP_WHERE = ("input", "feature", "embedding")
# the losses Metrix mixes: the ones whose class is ``mixable`` (batch_mining checks this list
# against the classes when it is imported)
MIXUP_LOSSES = ("contrastive", "multi-similarity", "proxy-anchor")


@dataclass
class TripletOptions:
    triplets_per_epoch: int | None = option(
        None, "Fresh random triplets per epoch (the paper: 640000; default: the dataset's)."
    )
    loss_form: str = option(
        "mse",
        "Triplet loss: MSE of the distance softmax against (0, 1), or its NLL.",
        choices=("mse", "nll"),
    )


@dataclass
class SiameseOptions:
    triplets_per_epoch: int | None = option(
        None, "Fresh random triplets per epoch (the paper: 640000; default: the dataset's)."
    )
    margin: float = option(1.0, "Contrastive-loss margin (siamese).")


@dataclass
class BatchMiningOptions:
    loss: str | None = option(
        None, "Batch-mining loss (with --method batch-mining).", choices=LOSS_NAMES
    )
    miner: str | None = option(None, "Miner for --loss (default: none).", choices=tuple(MINERS))
    sampler: str = option(
        "pk", "Batches for --loss: pk (P classes x K samples) or random.", choices=SAMPLERS
    )
    classes_per_batch: int | None = option(None, "P (pk; default: 16, or every class when fewer).")
    samples_per_class: int = option(8, "K (pk).")
    tcm_weight: float = option(
        0.0, "Weight of the threshold-consistent margin regulariser (Zhang et al. 2024); 0: off."
    )
    energy_weight: float = option(
        0.0, "Weight of the energy-confusion regulariser (Chen & Deng 2019); 0: off."
    )
    mixup: str | None = option(
        None,
        "Metrix mixup (Venkataramanan et al. 2022) of inputs, features or embeddings, for --loss "
        f"{', '.join(MIXUP_LOSSES)}.",
        choices=MIXUP_WHERE,
    )
    mixup_weight: float = option(1.0, "Weight of the mixed loss (with --mixup).")
    steps_per_epoch: int | None = option(
        None, "At most this many batches an epoch (default: a pass over the data)."
    )


@dataclass
class SemiSupervisedOptions:
    labels_per_class: int | None = option(
        None, "Label only this many seeded samples per class (default: all)."
    )
    unlabelled_weight: float = option(
        1.0, "lambda, the weight of the unlabelled entropy (0: labels alone)."
    )
    steps_per_epoch: int | None = option(
        None, "At most this many batches an epoch (default: a pass over the data)."
    )
    labels_seed: int | None = option(
        None,
        "Draw the labelled samples with this seed (default: --seed), to vary the "
        "training seed on the same labels.",
    )


@dataclass
class SpatialContrastingOptions:
    feature_layer: int | None = option(
        None,
        "Contrast the output of the first N layers (default: the last map with room for 2 patches).",
    )
    patch_size: int = option(1, "Patch side, in cells of the feature map.")
    patch_pooling: str = option(
        "avg", "How a patch's cells become one feature vector.", choices=("avg", "max")
    )
    steps_per_epoch: int | None = option(
        None, "At most this many batches an epoch (default: a pass over the data)."
    )


@dataclass(frozen=True)
class MethodFacts:
    """A method as ``--help`` shows it: its name, what it does, its options, and whether it
    learns without labels (``tripletnet pretrain``)."""

    name: str
    description: str
    Options: type
    pretraining: bool = False


TRIPLET = MethodFacts(
    "triplet",
    "Hoffer & Ailon's Triplet network: distance-ratio loss on random triplets.",
    TripletOptions,
)
SIAMESE = MethodFacts(
    "siamese",
    "The paper's Siamese baseline: contrastive loss on each triplet's two pairs.",
    SiameseOptions,
)
BATCH_MINING = MethodFacts(
    "batch-mining",
    "Any loss of tripletnet.losses on P x K batches, with an optional miner.",
    BatchMiningOptions,
)
SEMI_SUPERVISED = MethodFacts(
    "semi-supervised",
    "Hoffer & Ailon (2016): metric embedding from few labels and unlabelled data.",
    SemiSupervisedOptions,
)
SPATIAL_CONTRASTING = MethodFacts(
    "spatial-contrasting",
    "Hoffer, Hubara & Ailon (2016): contrast patches of one image's feature map.",
    SpatialContrastingOptions,
    pretraining=True,
)
# the built-in methods, in the order --help lists them
BUILT_IN: tuple[MethodFacts, ...] = (
    TRIPLET,
    SIAMESE,
    BATCH_MINING,
    SEMI_SUPERVISED,
    SPATIAL_CONTRASTING,
)
