"""The device-side evaluation equals scikit-learn and FAISS on small data: the exact k-NN search
(chunked, leave-one-out, ties), every retrieval metric, the torch linear probe, and the cache
of the raw-input baseline row."""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tripletnet.evaluation import baseline_cache, neighbours
from tripletnet.evaluation.evaluate import evaluate_embeddings, unit_rows
from tripletnet.evaluation.neighbours import knn_search
from tripletnet.evaluation.probe import (
    fit_linear_probe,
    linear_probe_correct,
    linear_probe_cross_validated,
    probe_loss,
)
from tripletnet.evaluation.retrieval import retrieve

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _blobs(n: int, classes: int, dim: int = 8, seed: int = 0, spread: float = 1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * spread
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def _stable_reference(q: np.ndarray, g: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Every gallery row of each query, nearest first, ties by lower row (float64 distances)."""
    squared = ((q[:, None, :].astype(np.float64) - g[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(squared, np.inf)
    order = np.argsort(squared, axis=1, kind="stable")
    return order[:, : len(g) - int(exclude_self)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_knn_equals_sklearn_and_faiss(device: str, chunk_size: int | None) -> None:
    x, _ = _blobs(300, 4, dim=12)
    q, g = x[:80], x[80:]
    distances, ids = knn_search(q, g, 10, chunk_size=chunk_size, device=device)
    sk_distances, sk_ids = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(g).kneighbors(q)
    squared, faiss_ids = faiss.knn(q, g, 10)
    np.testing.assert_allclose(distances, sk_distances, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(distances**2, squared, rtol=1e-4, atol=1e-4)
    assert (ids == sk_ids).mean() > 0.999 and (ids == faiss_ids).mean() > 0.999


@pytest.mark.parametrize("device", DEVICES)
def test_leave_one_out_equals_sklearn(device: str) -> None:
    x, _ = _blobs(200, 3, dim=6, seed=2)
    distances, ids = knn_search(x, x, 5, exclude_self=True, chunk_size=16, device=device)
    sk_distances, sk_ids = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(x).kneighbors()
    np.testing.assert_allclose(distances, sk_distances, rtol=1e-4, atol=1e-4)
    assert (ids == sk_ids).mean() > 0.999
    assert not (ids == np.arange(len(x))[:, None]).any()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("exclude_self", [False, True])
def test_ties_go_to_the_lower_gallery_row(device: str, exclude_self: bool) -> None:
    """Integer points on a small grid: many exact ties, inside the top k and at its edge."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(60, 2)).astype(np.float32)
    q, g = (x, x) if exclude_self else (x[:20], x[20:])
    expected = _stable_reference(q, g, exclude_self)
    for k in (1, 4, 9, len(g) - int(exclude_self)):
        _, ids = knn_search(q, g, k, exclude_self=exclude_self, chunk_size=6, device=device)
        np.testing.assert_array_equal(ids, expected[:, :k])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("exclude_self", [False, True])
def test_deep_search_equals_the_stable_ranking(
    device: str, exclude_self: bool, monkeypatch
) -> None:
    """A search for a large share of the gallery (the top R of MAP@R) packs each row's
    candidates and sorts them on (value, column): the ids and distances of the top-k search
    (and of the stable ranking where ties are exact: an integer grid), near scikit-learn's."""
    rng = np.random.default_rng(6)
    grid = rng.integers(0, 4, size=(1400, 2)).astype(np.float32)
    blobs, _ = _blobs(1400, 5, dim=6, seed=6)
    k = 300  # >= DEEP_MIN_K, and the gallery is over DEEP_FACTOR times longer
    for x in (grid, blobs):
        q, g = (x, x) if exclude_self else (x[:100], x[100:])
        distances, ids = knn_search(q, g, k, exclude_self=exclude_self, device=device)
        with monkeypatch.context() as patch:
            patch.setattr(neighbours, "DEEP_MIN_K", 10**9)  # the top-k search
            topk_distances, topk_ids = knn_search(q, g, k, exclude_self, device=device)
        np.testing.assert_array_equal(ids, topk_ids)
        np.testing.assert_array_equal(distances, topk_distances)
        if x is grid:
            np.testing.assert_array_equal(ids, _stable_reference(q, g, exclude_self)[:, :k])
        else:
            reference = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(g)
            sk_distances, sk_ids = reference.kneighbors(None if exclude_self else q)
            np.testing.assert_allclose(distances, sk_distances, rtol=1e-4, atol=1e-4)
            assert (ids == sk_ids).mean() > 0.999


def test_deep_search_keys_ties_by_column_in_chunks_too_large_for_flat_keys(monkeypatch) -> None:
    """A chunk of more than 2^32 entries keys ties by column, not by flat position: the same."""
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, size=(1400, 2)).astype(np.float32)
    q, g = x[:100], x[100:]
    monkeypatch.setattr(neighbours, "FLAT_KEY_LIMIT", 1000)
    _, ids = knn_search(q, g, 300, chunk_size=7)
    np.testing.assert_array_equal(ids, _stable_reference(q, g, False)[:, :300])


def test_deep_search_rows_the_sampled_bound_misses_are_searched_whole(monkeypatch) -> None:
    """The candidates' bound comes from a sample of columns; when the sampled columns hold a
    row's nearest items the bound is too low, and the row is searched whole: still exact."""
    monkeypatch.setattr(neighbours, "DEEP_MIN_K", 8)
    rng = np.random.default_rng(7)
    g = rng.normal(size=(400, 3)).astype(np.float32) + 10
    g[::20] = rng.normal(size=(20, 3)) * 0.1  # the sampled columns (every 20th) are the nearest
    q = rng.normal(size=(30, 3)).astype(np.float32) * 0.1
    monkeypatch.setattr(neighbours, "DEEP_SAMPLE", 20)
    _, ids = knn_search(q, g, 40)
    np.testing.assert_array_equal(ids, _stable_reference(q, g, False)[:, :40])


def _reference_metrics(q, ql, g, gl, exclude_self: bool, depth: int) -> dict[str, float]:
    """The metrics of retrieval.py's docstring from the stable ranking, query by query (AP and
    RR over the first ``depth`` neighbours, as retrieved)."""
    order = _stable_reference(q, g, exclude_self)
    totals: dict[str, list[float]] = {}
    for i in range(len(q)):
        r = int((gl[order[i]] == ql[i]).sum())
        hits = gl[order[i, :depth]] == ql[i]
        if r == 0:
            continue
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        values = {
            "precision_at_1": float(hits[0]),
            "r_precision": float(hits[:r].mean()),
            "map_at_r": float((precision[:r] * hits[:r]).sum() / r),
            "mean_average_precision": float((precision * hits).sum() / r),
            "mean_reciprocal_rank": 1.0 / (1 + int(np.argmax(hits))) if hits.any() else 0.0,
            "recall_at_4": float(hits[:4].any()),
            "precision_at_4": float(hits[:4].mean()),
        }
        for name, value in values.items():
            totals.setdefault(name, []).append(value)
    return {name: float(np.mean(v)) for name, v in totals.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("same_set", [True, False])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_every_retrieval_metric_equals_brute_force(
    device: str, same_set: bool, metric: str
) -> None:
    x, y = _blobs(240, 6, dim=5, seed=4, spread=0.8)  # classes overlap: no metric is 1
    q, ql = (x, y) if same_set else (x[:90], y[:90])
    g, gl = (None, None) if same_set else (x[90:], y[90:])
    evaluation = evaluate_embeddings(q, ql, g, gl, pairs=200, resamples=10, metric=metric,
                                     linear_probe=False, device=device)  # fmt: skip
    ours = evaluation.metrics["retrieval"]
    unit = unit_rows if metric == "cosine" else np.asarray
    ref_g = unit(q if same_set else g)
    theirs = _reference_metrics(unit(q), ql, ref_g, ql if same_set else gl, same_set, ours["k"])
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_large_classes_and_missing_labels() -> None:
    """k larger than a class (R > kept neighbours) and a query label absent from the gallery."""
    x, y = _blobs(150, 2, dim=4, seed=5, spread=0.5)
    y = y.copy()
    y[:5] = 7  # label 7 is only among the queries
    results = retrieve(x[:40], y[:40], x[40:], y[40:], at_least=3)
    assert results.k == np.bincount(y[40:]).max() > results.ids.shape[1]
    assert results.missing_labels == [7]
    theirs = _reference_metrics(x[:40], y[:40], x[40:], y[40:], False, results.k)
    summary = results.summary()
    for name, value in theirs.items():
        assert summary[name] == pytest.approx(value, abs=1e-9), name


def _sklearn_probe(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, tol=1e-8)).fit(
            x, y
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("classes", [2, 5])
def test_linear_probe_equals_sklearn(device: str, classes: int) -> None:
    x, y = _blobs(400, classes, dim=6, seed=6, spread=0.6)
    x[:, 0] = 3.0  # a constant feature: StandardScaler leaves it unscaled
    xt, yt = _blobs(400, classes, dim=6, seed=7, spread=0.6)
    xt[:, 0] = 3.0
    theirs = _sklearn_probe(x, y)
    probe = fit_linear_probe(x, y, device=device)
    ours_correct = linear_probe_correct(x, y, xt, yt, device=device)
    assert ours_correct.mean() == pytest.approx((theirs.predict(xt) == yt).mean(), abs=0.01)
    assert (probe.predict(xt) == theirs.predict(xt)).mean() >= 0.99
    ours_proba = torch.softmax(probe.logits(torch.as_tensor(xt, device=device)), 1)
    np.testing.assert_allclose(ours_proba.cpu().numpy(), theirs.predict_proba(xt), atol=2e-3)


@pytest.mark.parametrize("classes", [2, 4])
def test_probe_loss_and_gradient_equal_autograd_through_torch_losses(classes: int) -> None:
    """The hand-written objective equals torch's cross-entropy (binomial: BCE with logits) plus
    the penalty, and its gradient equals autograd's, in float64."""
    generator = torch.Generator().manual_seed(classes)
    z = torch.randn(50, 3, dtype=torch.float64, generator=generator)
    targets = torch.randint(0, classes, (50,), generator=generator)
    rows = 1 if classes == 2 else classes
    weight = torch.randn(rows, 3, dtype=torch.float64, generator=generator).requires_grad_(True)
    bias = torch.randn(rows, dtype=torch.float64, generator=generator).requires_grad_(True)
    logits = z @ weight.T + bias
    if classes == 2:
        data = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets.double())
    else:
        data = torch.nn.functional.cross_entropy(logits, targets)
    expected = data + 0.03 * (weight * weight).sum()
    expected.backward()
    with torch.no_grad():
        loss, grad_weight, grad_bias = probe_loss(z.T.contiguous(), targets, weight, bias, 0.03)
    assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(grad_weight, weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_bias, bias.grad, rtol=1e-10, atol=1e-12)


def test_cross_validated_probe_equals_sklearn() -> None:
    x, y = _blobs(300, 3, dim=5, seed=8, spread=0.7)
    ours = linear_probe_cross_validated(x, y, folds=4, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splitter = StratifiedKFold(4, shuffle=True, random_state=1)
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, tol=1e-8))
        theirs = cross_val_predict(pipeline, x, y, cv=splitter) == y
    assert (ours == theirs).mean() >= 0.99


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(baseline_cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_baseline_cache_hit_miss_and_invalidation(cache) -> None:
    calls = []

    def compute() -> dict[str, float]:
        calls.append(1)
        return {"knn_accuracy": 0.5 + len(calls)}

    x = np.zeros((4, 3), dtype=np.uint8)
    y = np.arange(4)
    options = {"k": 5, "gallery": baseline_cache.data_identity(x, y)}
    first, hit = baseline_cache.cached_row(options, compute)
    assert not hit and first == {"knn_accuracy": 1.5}
    again, hit = baseline_cache.cached_row(dict(options), compute)
    assert hit and again == first and len(calls) == 1
    x[2, 1] = 1  # one changed pixel: another key
    changed = {"k": 5, "gallery": baseline_cache.data_identity(x, y)}
    assert baseline_cache.cached_row(changed, compute) == ({"knn_accuracy": 2.5}, False)
    assert baseline_cache.cached_row({**options, "k": 3}, compute)[1] is False  # other options
    (path,) = [p for p in cache.iterdir() if baseline_cache.cache_key(options) in p.name]
    path.write_text("{not json")  # a damaged file is recomputed and replaced
    assert baseline_cache.cached_row(options, compute)[1] is False
    assert baseline_cache.cached_row(options, compute)[1] is True


def test_baseline_cache_image_files_and_off(cache, tmp_path, monkeypatch) -> None:
    from PIL import Image

    from tripletnet.data.image_files import ImageFiles

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.new("L", (4, 4), color=i * 40).save(paths[-1])
    files = ImageFiles(paths, channels=1, size=4)
    before = baseline_cache.data_identity(files, np.arange(3))
    Image.new("L", (4, 4), color=255).save(paths[1])
    stat = paths[1].stat()
    import os

    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert baseline_cache.data_identity(files, np.arange(3)) != before
    monkeypatch.setenv(baseline_cache.CACHE_ENV, "off")
    assert baseline_cache.cache_dir() is None
    assert baseline_cache.cached_row({"k": 1}, lambda: {"a": 1.0}) == ({"a": 1.0}, False)
