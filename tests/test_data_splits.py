"""Splits: the split column, seeded stratified fractions, and open-set class splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tripletnet.data import SourceOptions, load_dataset
from tripletnet.data.splits import class_split, parse_split, stratified_rows
from tripletnet.errors import DataFileError, TripletnetError


@pytest.mark.parametrize(
    "spec", ["stratified:1.5", "classes:0", "random:0.3", "stratified", "classes:x", "classes:1"]
)
def test_bad_split_specs_are_refused_in_one_line(spec: str) -> None:
    with pytest.raises(TripletnetError) as error:
        SourceOptions(split=spec)
    assert "\n" not in str(error.value) and spec in str(error.value)


def test_parse_split() -> None:
    spec = parse_split("classes:0.5")
    assert (spec.kind, spec.fraction, str(spec)) == ("classes", 0.5, "classes:0.5")


def test_stratified_rows_take_the_fraction_of_each_class_and_are_seeded() -> None:
    y = np.repeat([0, 1, 2, 3, 4], [10, 20, 3, 2, 1])
    rng = np.random.default_rng(1)
    y = y[rng.permutation(len(y))]
    train, test = stratified_rows(y, 0.25, seed=7)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    assert np.bincount(y[test], minlength=5).tolist() == [3, 5, 1, 1, 0]  # round(F n), n-1 at most
    assert set(y[train]) == {0, 1, 2, 3, 4}  # every class keeps a training sample
    again = stratified_rows(y, 0.25, seed=7)
    other = stratified_rows(y, 0.25, seed=8)
    assert np.array_equal(again[1], test) and not np.array_equal(other[1], test)


def test_class_split_keeps_one_class_on_each_side() -> None:
    train, test = class_split(np.arange(10), 0.5)
    assert train.tolist() == [0, 1, 2, 3, 4] and test.tolist() == [5, 6, 7, 8, 9]
    assert class_split(np.arange(3), 0.01)[1].tolist() == [2]
    with pytest.raises(DataFileError, match="two classes"):
        class_split(np.zeros(4, int), 0.5)


def write_npz(path: Path, labels: list[str], split: list[str] | None = None) -> Path:
    x = np.arange(len(labels) * 2, dtype=np.float32).reshape(-1, 2)
    arrays = {"x": x, "y": np.array(labels)}
    if split is not None:
        arrays["split"] = np.array(split)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_classes_split_is_open_set_with_consistent_names(tmp_path: Path) -> None:
    labels = [name for name in ("ant", "bee", "cat", "dog", "eel", "fox") for _ in range(4)]
    path = write_npz(tmp_path / "f.npz", labels)
    data = load_dataset(str(path), options=SourceOptions(split="classes:0.5"))
    assert data.open_set and data.num_classes == 6
    train_names = {data.class_names[c] for c in data.train.y}
    test_names = {data.class_names[c] for c in data.test.y}
    assert train_names == {"ant", "bee", "cat"} and test_names == {"dog", "eel", "fox"}
    # each sample keeps its own label: x row r belongs to labels[r]
    for part in (data.train, data.test):
        rows = (part.x[:, 0] / 2).astype(int)
        assert [data.class_names[c] for c in part.y] == [labels[r] for r in rows]


def test_stratified_split_of_a_source_is_seeded(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "f.npz", ["a"] * 8 + ["b"] * 12)
    first = load_dataset(str(path), options=SourceOptions(split="stratified:0.25", seed=3))
    again = load_dataset(str(path), options=SourceOptions(split="stratified:0.25", seed=3))
    assert np.bincount(first.test.y).tolist() == [2, 3] and not first.open_set
    np.testing.assert_array_equal(first.test.x, again.test.x)


def test_split_column_and_its_override(tmp_path: Path) -> None:
    labels = ["a", "a", "b", "b", "c", "c"]
    path = write_npz(tmp_path / "f.npz", labels, ["train"] * 4 + ["test"] * 2)
    data = load_dataset(str(path))
    assert data.train.y.tolist() == [0, 0, 1, 1] and data.test.y.tolist() == [2, 2]
    assert data.open_set  # class c is never seen in training
    assert data.class_names == ["a", "b", "c"]
    overridden = load_dataset(str(path), options=SourceOptions(split="stratified:0.5"))
    assert sorted(overridden.test.y.tolist()) == [0, 1, 2] and not overridden.open_set


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (["test"] * 4, "no train rows"),
        (["train"] * 4, "no test"),
        (["train", "train", "gallery", "gallery"], "gallery rows but no query"),
    ],
)
def test_bad_split_columns(tmp_path: Path, split: list[str], message: str) -> None:
    path = write_npz(tmp_path / "f.npz", ["a", "b", "a", "b"], split)
    with pytest.raises(DataFileError, match=message):
        load_dataset(str(path))


def test_a_source_without_a_split_column_defaults_to_stratified_quarter(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "f.npz", ["a"] * 8 + ["b"] * 4)
    data = load_dataset(str(path))
    assert np.bincount(data.test.y).tolist() == [2, 1]


def test_built_in_digits_open_set_split() -> None:
    plain = load_dataset("digits")
    data = load_dataset("digits", options=SourceOptions(split="classes:0.5"))
    assert data.open_set and data.num_classes == 10 and data.class_names == plain.class_names
    assert set(data.train.y.tolist()) == {0, 1, 2, 3, 4}
    assert set(data.test.y.tolist()) == {5, 6, 7, 8, 9}
    assert len(data.train) == int((plain.train.y < 5).sum())  # the train split's samples only
    assert len(data.test) == int((plain.test.y >= 5).sum())
    np.testing.assert_array_equal(data.test.x, plain.test.x[plain.test.y >= 5])


def test_built_in_digits_stratified_split_pools_train_and_test() -> None:
    data = load_dataset("digits", options=SourceOptions(split="stratified:0.5", seed=1))
    counts = np.bincount(np.concatenate([data.train.y, data.test.y]))
    test_counts = np.bincount(data.test.y, minlength=10)
    assert np.all(np.abs(test_counts - counts / 2) <= 0.5)
    assert len(data.train) + len(data.test) == 1797 and not data.open_set


def test_classes_split_with_a_split_column_keeps_each_sides_own_rows(tmp_path: Path) -> None:
    labels = ["a", "b", "c", "d"] * 3
    split = ["train"] * 8 + ["test"] * 4
    path = write_npz(tmp_path / "f.npz", labels, split)
    data = load_dataset(str(path), options=SourceOptions(split="classes:0.5"))
    assert data.open_set
    assert (data.train.x[:, 0] / 2).astype(int).tolist() == [0, 1, 4, 5]  # train rows of a, b
    assert (data.test.x[:, 0] / 2).astype(int).tolist() == [10, 11]  # test rows of c, d
