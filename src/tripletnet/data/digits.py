"""scikit-learn's 8x8 digits (bundled, works offline): the default dataset."""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from .arrays import DatasetSplits, LabelledArray


def load_digits(data_dir: Path | None = None, download: bool = False) -> DatasetSplits:
    """1,797 digits as (1, 8, 8) images (values 0..16), split 75/25 stratified by class (seed 0)."""
    bunch = sklearn_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.images[:, None].astype("float32"),
        bunch.target,
        test_size=0.25,
        stratify=bunch.target,
        random_state=0,
    )
    return DatasetSplits(
        name="digits",
        train=LabelledArray(x_train, y_train),
        test=LabelledArray(x_test, y_test),
        num_classes=10,
        class_names=[str(d) for d in range(10)],
    )
