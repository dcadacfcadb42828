"""Train/test splits of a source's samples: its own split column, stratified, or by class.

- ``stratified:F`` puts a seeded fraction F of each class in test, round(F * n) of a class of
  n, keeping at least one sample of every class in train.
- ``classes:F`` is the open-set protocol of deep metric learning (CUB-200, Cars-196, Stanford
  Online Products; Musgrave et al. 2020, "A Metric Learning Reality Check"): the first
  round((1 - F) * C) of the C sorted classes train, the others are unseen until test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataFileError, TripletnetError
from .arrays import DatasetSplits, LabelledArray

SPLIT_VALUES = ("train", "test", "query", "gallery")  # a split column's values, coded 0..3
KINDS = ("stratified", "classes")
DEFAULT_SPLIT = "stratified:0.25"  # for a folder or CSV without a split column


@dataclass(frozen=True)
class SplitSpec:
    """``kind:fraction``: the fraction of each class (stratified) or of the classes (classes)
    that goes to test."""

    kind: str
    fraction: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.fraction:g}"


def parse_split(text: str) -> SplitSpec:
    """Parse ``stratified:F`` or ``classes:F`` with 0 < F < 1; one clear error otherwise."""
    kind, _, value = text.strip().partition(":")
    usage = "use stratified:F or classes:F with F between 0 and 1 (e.g. stratified:0.25)"
    if kind not in KINDS:
        raise TripletnetError(f"unknown split {text!r}; {usage}")
    try:
        fraction = float(value)
    except ValueError:
        raise TripletnetError(f"split {text!r} has no fraction; {usage}") from None
    if not 0.0 < fraction < 1.0:
        raise TripletnetError(f"split {text!r}: the fraction must lie strictly inside (0, 1)")
    return SplitSpec(kind, fraction)


@dataclass
class Pool:
    """Every labelled sample of a source before splitting; ``split`` holds the codes of its
    split column (indices into SPLIT_VALUES), or None when it has none."""

    name: str
    samples: LabelledArray
    class_names: list[str]
    split: np.ndarray | None = None


def stratified_rows(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) row indices: per class of n samples, floor(F * n + 0.5) chosen at
    random (seeded) for test, but never all n."""
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    keys = np.random.default_rng(seed).random(len(y))
    order = np.lexsort((keys, codes))  # by class, then in a random order within each class
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(y)) - np.repeat(starts, counts)
    n_test = np.minimum(np.floor(fraction * counts + 0.5), counts - 1)
    chosen = rank < np.repeat(n_test, counts)
    return np.sort(order[~chosen]), np.sort(order[chosen])


def class_split(classes: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train classes, test classes): the first round((1 - F) * C) sorted classes train
    (at least one, and at least one left for test)."""
    classes = np.unique(classes)
    if len(classes) < 2:
        raise DataFileError(f"a classes:F split needs two classes or more; found {len(classes)}")
    n_train = int(np.clip(np.floor((1 - fraction) * len(classes) + 0.5), 1, len(classes) - 1))
    return classes[:n_train], classes[n_train:]


def _splits(
    name: str,
    class_names: list[str],
    train: LabelledArray,
    test: LabelledArray,
    open_set: bool,
    how: str,
    query: LabelledArray | None = None,
    gallery: LabelledArray | None = None,
) -> DatasetSplits:
    for part, label in ((train, "train"), (test, "test")):
        if not len(part):
            raise DataFileError(f"{name}: {how} leaves the {label} split empty; add samples")
    return DatasetSplits(
        name=name,
        train=train,
        test=test,
        num_classes=len(class_names),
        class_names=class_names,
        query=query,
        gallery=gallery,
        open_set=open_set,
    )


def split_pool(pool: Pool, spec: SplitSpec | None, seed: int = 0) -> DatasetSplits:
    """Split ``pool`` by ``spec``; None means its own split column, else DEFAULT_SPLIT.

    ``stratified:F`` pools every sample, whatever the split column says. ``classes:F`` with a
    split column keeps the train rows of the train classes and the other rows of the test
    classes (as for a built-in dataset); without one, all samples of each class.
    """
    samples, names = pool.samples, pool.class_names
    if spec is None and pool.split is not None:
        return _column_split(pool)
    spec = spec or parse_split(DEFAULT_SPLIT)
    if spec.kind == "stratified":
        train_rows, test_rows = stratified_rows(samples.y, spec.fraction, seed)
        return _splits(
            pool.name, names, samples.take(train_rows), samples.take(test_rows), False, str(spec)
        )
    train_classes, _ = class_split(samples.y, spec.fraction)
    in_train = np.isin(samples.y, train_classes)
    train_mask, test_mask = in_train, ~in_train
    if pool.split is not None:
        train_row = pool.split == SPLIT_VALUES.index("train")
        train_mask, test_mask = in_train & train_row, ~in_train & ~train_row
    return _splits(
        pool.name,
        names,
        samples.take(np.flatnonzero(train_mask)),
        samples.take(np.flatnonzero(test_mask)),
        True,
        str(spec),
    )


def _column_split(pool: Pool) -> DatasetSplits:
    assert pool.split is not None
    parts = {
        value: pool.samples.take(np.flatnonzero(pool.split == code))
        for code, value in enumerate(SPLIT_VALUES)
    }
    parts_present = {value for value, part in parts.items() if len(part)}
    where = f"{pool.name}'s split column"
    if "train" not in parts_present:
        raise DataFileError(f"{where} has no train rows; mark the training samples 'train'")
    if "gallery" in parts_present and "query" not in parts_present:
        raise DataFileError(f"{where} has gallery rows but no query rows; mark some 'query'")
    if not parts_present & {"test", "query"}:
        raise DataFileError(
            f"{where} has no test (or query) rows; mark some, or pass --split stratified:0.25 "
            "to split the samples"
        )
    query = parts["query"] if "query" in parts_present else None
    gallery = parts["gallery"] if "gallery" in parts_present else None
    test = parts["test"] if "test" in parts_present else parts["query"]
    train = parts["train"]
    open_set = bool(np.intersect1d(train.y, test.y).size == 0)
    return _splits(
        pool.name,
        pool.class_names,
        train,
        test,
        open_set,
        "the split column",
        query=query,
        gallery=gallery,
    )


def resplit(data: DatasetSplits, spec: SplitSpec, seed: int = 0) -> DatasetSplits:
    """Re-split a built-in dataset that comes with its own train/test, like a source whose
    split column says train/test (``split_pool``); the unlabelled images (STL-10) are kept."""
    assert isinstance(data.train.x, np.ndarray) and isinstance(data.test.x, np.ndarray)
    pooled = LabelledArray(
        np.concatenate([data.train.x, data.test.x]), np.concatenate([data.train.y, data.test.y])
    )
    codes = np.repeat(np.array([0, 1], dtype=np.int8), [len(data.train), len(data.test)])
    split = split_pool(Pool(data.name, pooled, list(data.class_names), codes), spec, seed)
    split.num_classes = data.num_classes
    split.unlabelled = data.unlabelled
    return split
