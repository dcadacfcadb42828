"""tripletnet.sklearn.TripletEmbedder: scikit-learn's own checks, Pipeline / GridSearchCV /
cross_val_score on digits, seeding, saving, pickling, errors, and brute-force references."""

from __future__ import annotations

import io
import json
import math
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from tripletnet.errors import TripletnetError
from tripletnet.sklearn import (
    DEFAULT_LR,
    FORMAT,
    EstimatorFileError,
    EstimatorInputError,
    TripletEmbedder,
)

Data = tuple[np.ndarray, np.ndarray]


def small(**params: object) -> TripletEmbedder:
    """A TripletEmbedder that trains in a fraction of a second."""
    settings: dict[str, object] = {
        "embedding_dim": 8,
        "hidden": 32,
        "depth": 1,
        "epochs": 2,
        "batch_size": 64,
        "triplets_per_epoch": 512,
        "random_state": 0,
    }
    settings.update(params)
    if settings.get("method") == "batch-mining":
        settings.pop("triplets_per_epoch", None)
    return TripletEmbedder(**settings)


@pytest.fixture(scope="module")
def digits() -> Data:
    X, y = load_digits(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def blobs() -> Data:
    """Three classes in 6-D: two informative features, four of noise."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(120, 6))
    X[:, 0] += 3.0 * (y == 1)
    X[:, 1] += 3.0 * (y == 2)
    return X, y


@pytest.fixture(scope="module")
def fitted(blobs: Data) -> TripletEmbedder:
    X, y = blobs
    return small(epochs=4, triplets_per_epoch=2048).fit(X, y)


# -- scikit-learn's own estimator checks ----------------------------------------------------------


@parametrize_with_checks([small(epochs=1, triplets_per_epoch=128)])
def test_scikit_learn_checks(estimator: TripletEmbedder, check: object) -> None:
    check(estimator)  # type: ignore[operator]


# -- Pipeline, GridSearchCV, cross_val_score on digits --------------------------------------------


def test_pipeline_under_grid_search_on_digits(digits: Data) -> None:
    X, y = digits
    pipeline = make_pipeline(
        small(embedding_dim=16, hidden=64, triplets_per_epoch=2048), KNeighborsClassifier()
    )
    search = GridSearchCV(
        pipeline,
        {"tripletembedder__embedding_dim": [4, 16], "kneighborsclassifier__n_neighbors": [1, 5]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    search.fit(X, y)
    assert search.best_params_["tripletembedder__embedding_dim"] == 16
    assert search.best_score_ > 0.93
    # the best pipeline predicts as a brute-force nearest-neighbour vote on its embedding
    refit = clone(search.best_estimator_).fit(X[:1500], y[:1500])
    embedder = refit[0]
    k = search.best_params_["kneighborsclassifier__n_neighbors"]
    train, test = embedder.transform(X[:1500]), embedder.transform(X[1500:])
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.array([np.bincount(y[:1500][row], minlength=10).argmax() for row in nearest])
    assert np.array_equal(refit.predict(X[1500:]), votes)


def test_cross_val_score_is_the_manual_loop(digits: Data) -> None:
    X, y = digits[0][:600], digits[1][:600]
    pipeline = make_pipeline(small(hidden=64, embedding_dim=16), KNeighborsClassifier(3))
    folds = StratifiedKFold(3, shuffle=True, random_state=1)
    scores = cross_val_score(pipeline, X, y, cv=folds)
    manual = []
    for train, test in folds.split(X, y):
        model = clone(pipeline).fit(X[train], y[train])
        manual.append(float((model.predict(X[test]) == y[test]).mean()))
    assert np.array_equal(scores, manual)
    assert scores.mean() > 0.85


# -- seeding ---------------------------------------------------------------------------------------


def test_same_seed_same_embedding(blobs: Data) -> None:
    X, y = blobs
    first = small(random_state=7).fit(X, y).transform(X)
    again = small(random_state=7).fit(X, y).transform(X)
    other = small(random_state=8).fit(X, y).transform(X)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_global_random_states_untouched(blobs: Data) -> None:
    X, y = blobs
    torch.manual_seed(123)
    np.random.seed(456)
    expected_torch, expected_numpy = torch.rand(3), np.random.random(3)
    torch.manual_seed(123)
    np.random.seed(456)
    state = torch.get_rng_state()
    small(dropout=0.5).fit(X, y).transform(X)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(3), expected_torch)
    assert np.array_equal(np.random.random(3), expected_numpy)


def test_lr_none_is_the_method_default(blobs: Data) -> None:
    X, y = blobs
    for method in ("triplet", "batch-mining"):
        default = small(method=method).fit(X, y).transform(X)
        explicit = small(method=method, lr=DEFAULT_LR[method]).fit(X, y).transform(X)
        halved = small(method=method, lr=DEFAULT_LR[method] / 2).fit(X, y).transform(X)
        assert np.array_equal(default, explicit)
        assert not np.allclose(default, halved)


# -- brute-force references ------------------------------------------------------------------------


def test_transform_is_the_net_written_out_in_numpy(fitted: TripletEmbedder, blobs: Data) -> None:
    X, _ = blobs
    hidden = (X - fitted.scaler_.mean_) / fitted.scaler_.scale_
    hidden = (hidden - fitted.normalizer_.mean) / fitted.normalizer_.std
    linears = [m for m in fitted.model_.net if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(linears):
        weight = layer.weight.detach().double().numpy()
        bias = layer.bias.detach().double().numpy()
        hidden = hidden @ weight.T + bias
        if i < len(linears) - 1:
            hidden = np.maximum(hidden, 0.0)
    np.testing.assert_allclose(fitted.transform(X), hidden, rtol=1e-12, atol=1e-12)
    float32 = fitted.transform(X.astype(np.float32))
    assert float32.dtype == np.float32
    np.testing.assert_allclose(float32, hidden, rtol=1e-5, atol=1e-5)


def test_learns_the_informative_features(fitted: TripletEmbedder, blobs: Data) -> None:
    """Leave-one-out 1-NN (brute force) is better on the embedding than on the noisy inputs."""
    X, y = blobs

    def loo_accuracy(points: np.ndarray) -> float:
        distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(distances, np.inf)
        return float((y[distances.argmin(axis=1)] == y).mean())

    raw = (X - X.mean(0)) / X.std(0)
    assert loo_accuracy(fitted.transform(X)) > loo_accuracy(raw) + 0.05
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_cosine_loss_gives_unit_vectors(blobs: Data) -> None:
    X, y = blobs
    model = small(method="batch-mining", loss="supcon", batch_size=48).fit(X, y)
    assert (model.method_, model.metric_) == ("batch-mining", "cosine")
    np.testing.assert_allclose(np.linalg.norm(model.transform(X), axis=1), 1.0, atol=1e-6)


# -- saving, loading, pickling ---------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, fitted: TripletEmbedder, blobs: Data) -> None:
    X, _ = blobs
    path = fitted.save(tmp_path / "sub" / "embedder.safetensors")
    loaded = TripletEmbedder.load(path)
    assert np.array_equal(loaded.transform(X), fitted.transform(X))
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.classes_, fitted.classes_)
    assert (loaded.n_features_in_, loaded.embedding_dim_) == (6, 8)
    assert loaded.loss_curve_ == fitted.loss_curve_
    assert list(loaded.get_feature_names_out()) == [f"tripletembedder{i}" for i in range(8)]


def test_save_load_keeps_string_classes_and_cosine(tmp_path: Path, blobs: Data) -> None:
    X, y = blobs
    names = np.array(["ant", "bee", "cat"])[y]
    model = small(method="batch-mining", loss="multi-similarity", batch_size=48).fit(X, names)
    loaded = TripletEmbedder.load(model.save(tmp_path / "m.safetensors"))
    assert list(loaded.classes_) == ["ant", "bee", "cat"]
    assert loaded.metric_ == "cosine"
    assert np.array_equal(loaded.transform(X), model.transform(X))


def test_save_takes_int_seeds_not_random_state_objects(tmp_path: Path, blobs: Data) -> None:
    X, y = blobs
    numpy_int = small(random_state=np.int64(3)).fit(X, y)
    loaded = TripletEmbedder.load(numpy_int.save(tmp_path / "n.safetensors"))
    assert loaded.random_state == 3 and np.array_equal(loaded.transform(X), numpy_int.transform(X))
    model = small(random_state=np.random.RandomState(0)).fit(X, y)
    with pytest.raises(EstimatorInputError, match="int random_state"):
        model.save(tmp_path / "m.safetensors")


class _Recording(pickle.Unpickler):
    """A restricted unpickler: it records every global the pickle references and builds only
    those of the estimator's own packages (anything else, torch included, is refused)."""

    ALLOWED = {"tripletnet", "numpy", "sklearn", "builtins", "copyreg", "collections", "_codecs"}

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: list[str] = []

    def find_class(self, module: str, name: str) -> object:
        self.globals.append(f"{module}.{name}")
        if module.split(".")[0] not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def test_pickle_holds_no_torch_object(fitted: TripletEmbedder, blobs: Data) -> None:
    X, _ = blobs
    data = pickle.dumps(fitted)
    reader = _Recording(data)
    restored = reader.load()
    assert reader.globals, "the recorder saw no globals"
    assert not [g for g in reader.globals if g.split(".")[0] == "torch"], reader.globals
    text = io.StringIO()
    pickletools.dis(data, out=text)
    assert "torch" not in text.getvalue()
    assert np.array_equal(restored.transform(X), fitted.transform(X))
    unfitted = _Recording(pickle.dumps(TripletEmbedder())).load()
    assert unfitted.get_params() == TripletEmbedder().get_params()


def test_load_refuses_other_files(tmp_path: Path, fitted: TripletEmbedder) -> None:
    good = fitted.save(tmp_path / "good.safetensors")
    data = good.read_bytes()
    cases = {
        "missing.safetensors": None,
        "truncated.safetensors": data[: len(data) // 2],
        "garbage.safetensors": bytes(range(256)) * 8,
        "empty.safetensors": b"",
        "pickle.safetensors": pickle.dumps(fitted),
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"), metadata={"a": "b"})
    cases["other.safetensors"] = b""
    future = json.dumps({"version": 99})
    save_file(
        {"w": torch.zeros(3)}, str(tmp_path / "future.safetensors"), metadata={FORMAT: future}
    )
    cases["future.safetensors"] = b""
    for name in cases:
        with pytest.raises(EstimatorFileError) as error:
            TripletEmbedder.load(tmp_path / name)
        assert "\n" not in str(error.value) and str(tmp_path / name) in str(error.value)


def test_save_to_an_unwritable_place_is_one_line(tmp_path: Path, fitted: TripletEmbedder) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(EstimatorFileError, match="cannot write") as error:
        fitted.save(tmp_path / "a-file" / "m.safetensors")
    assert "\n" not in str(error.value)


def test_verbose_prints_one_line_an_epoch(capsys: pytest.CaptureFixture[str], blobs: Data) -> None:
    X, y = blobs
    small(verbose=True).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "loss" in lines[0] and "triplet error" in lines[0]


# -- errors: one line, a ValueError and a TripletnetError ------------------------------------------


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"method": "siamese"}, "method must be one of"),
        ({"loss": "supcon"}, "goes with method='batch-mining'"),
        ({"method": "batch-mining", "loss": "nope"}, "loss must be one of"),
        ({"method": "batch-mining", "triplets_per_epoch": 100}, "goes with method='triplet'"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"hidden": True}, "hidden must be an integer"),
        ({"batch_size": 1}, "batch_size must be an integer >= 2"),
        ({"triplets_per_epoch": 0}, "triplets_per_epoch must be an integer >= 1"),
        ({"lr": -0.1}, "lr must be a number > 0.0"),
        ({"lr": math.nan}, "lr must be a number"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"dropout": 1.0}, "dropout must be a number >= 0.0 and < 1.0"),
        ({"device": "tpu"}, "device"),
        ({"device": 0}, "device must be a string"),
    ],
)
def test_bad_parameters_are_one_line_errors(
    params: dict[str, object], words: str, blobs: Data
) -> None:
    X, y = blobs
    with pytest.raises(EstimatorInputError, match=words) as error:
        TripletEmbedder(**params).fit(X, y)
    assert isinstance(error.value, ValueError) and isinstance(error.value, TripletnetError)
    assert "\n" not in str(error.value)


def test_bad_inputs_are_one_line_errors(fitted: TripletEmbedder, blobs: Data) -> None:
    X, y = blobs
    cases = [
        (lambda: small().fit(X, np.zeros(len(X))), "at least 2 classes"),
        (lambda: small().fit(X[:3], [0, 1, 2]), "at least two samples"),
        (lambda: small().fit(X, y + 0.5), "continuous"),
        (lambda: small().fit(np.where(X > 2, np.nan, X), y), "NaN"),
        (lambda: small().fit(X[:, 0], y), "must be 2-D"),
        (lambda: small().fit(X, y[:-1]), "inconsistent numbers of samples"),
        (lambda: fitted.transform(X[:, :4]), "X has 4 features"),
        (lambda: fitted.transform(X[0]), "X.reshape"),
    ]
    for call, words in cases:
        with pytest.raises(EstimatorInputError, match=words) as error:
            call()
        assert "\n" not in str(error.value)
    # batch-mining accepts classes of one sample (their samples are repeated in a P x K batch)
    small(method="batch-mining", batch_size=6).fit(X[:3], [0, 1, 2])
