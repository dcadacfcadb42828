"""The run embeddings' cache (evaluation/embedding_cache.py), the composed retrieval grid and the
2-D projections made beside the measures: the same results, less time."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tripletnet.cli import main
from tripletnet.evaluation import baseline_cache, embedding_cache, report, report_files
from tripletnet.evaluation.embedding_cache import cached_embeddings, embeddings_key
from tripletnet.evaluation.report_files import draw_views, embedding_projections, write_evaluation
from tripletnet.evaluation.retrieval_grid import compose_cells
from tripletnet.runs.data import Embedded

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(baseline_cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / embedding_cache.FOLDER


def _embedded(seed: int = 0, rows: int = 50) -> Embedded:
    rng = np.random.default_rng(seed)
    kept = np.arange(rows)
    return Embedded(rng.normal(size=(rows, 8)).astype(np.float32), kept % 3, kept, ["a.png"])


def test_embeddings_cache_hit_miss_and_invalidation(cache) -> None:
    calls = []

    def compute() -> Embedded:
        calls.append(1)
        return _embedded()

    key = embeddings_key("weights", "data", CPU)
    first, hit = cached_embeddings(key, compute)
    assert not hit and len(calls) == 1
    again, hit = cached_embeddings(key, compute)
    assert hit and len(calls) == 1
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.kept, first.kept)
    assert again.unreadable == ["a.png"]
    others = [
        embeddings_key("other weights", "data", CPU),
        embeddings_key("weights", "other data", CPU),
        embeddings_key("weights", "data", torch.device("cuda")),  # a GPU's rounding differs
    ]
    assert len({key, *others}) == 4
    (path,) = cache.iterdir()
    path.write_bytes(path.read_bytes()[:100])  # damaged: recomputed and replaced
    assert cached_embeddings(key, compute)[1] is False and len(calls) == 2
    assert cached_embeddings(key, compute)[1] is True


def test_embeddings_cache_off_read_only_and_evicted(cache, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(baseline_cache.CACHE_ENV, "off")
    assert cached_embeddings("k", _embedded)[1] is False
    assert not cache.exists()
    monkeypatch.setenv(baseline_cache.CACHE_ENV, str(cache.parent))
    for seed in range(3):
        cached_embeddings(f"k{seed}", lambda seed=seed: _embedded(seed))
        os.utime(cache / f"k{seed}.safetensors", (seed, seed))  # k0 the least recently used
    size = (cache / "k0.safetensors").stat().st_size
    embedding_cache._evict(cache, keep=cache / "k2.safetensors", limit=2 * size)
    assert sorted(p.name for p in cache.iterdir()) == ["k1.safetensors", "k2.safetensors"]
    if os.geteuid() != 0:  # root writes anywhere
        cache.chmod(0o500)
        try:
            assert cached_embeddings("k9", _embedded)[1] is False  # computed, not stored
        finally:
            cache.chmod(0o700)


def test_a_second_evaluation_reads_the_embeddings_back(cache, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    train = ["train", "--epochs", "1", "--triplets-per-epoch", "600", "--test-triplets", "300"]
    assert main([*train, "--out", str(run), "--no-progress"]) == 0  # ends with an evaluation
    first = json.loads((run / "metrics.json").read_text())
    figures = {name: (run / name).read_bytes() for name in ("embedding.png", "embedding_tsne.png")}
    assert len(list(cache.iterdir())) == 3  # the test and the train split, the test's 2-D views

    class NetRan(Exception):
        pass

    def embed_split(*args, **options):
        raise NetRan

    def embedding_projections(*args, **options):
        raise AssertionError("the 2-D views were computed again")

    monkeypatch.setattr(report, "embed_split", embed_split)
    monkeypatch.setattr(report_files, "embedding_projections", embedding_projections)
    assert main(["evaluate", str(run)]) == 0  # neither the net nor t-SNE ran again
    assert json.loads((run / "metrics.json").read_text()) == first
    assert {name: (run / name).read_bytes() for name in figures} == figures
    monkeypatch.setattr(report, "file_digest", lambda path: "other weights")
    with pytest.raises(NetRan):  # other weights: a miss
        report.evaluate_run(run)


def test_views_drawn_beforehand_are_the_figures_drawn_with_the_rest(tmp_path) -> None:
    from tripletnet.evaluation.evaluate import evaluate_embeddings

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 120)
    x = (rng.normal(size=(3, 5))[labels] * 4 + rng.normal(size=(120, 5))).astype(np.float32)
    evaluation = evaluate_embeddings(x, labels, pairs=100)
    history = [
        {"epoch": 1, "loss": 0.5, "seconds": 1.0},
        {"epoch": 2, "loss": 0.25, "seconds": 1.0},
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_evaluation(tmp_path / "a", copy.deepcopy(evaluation), "t", history=history)
    projections = embedding_projections(evaluation.queries, labels)
    views = draw_views(tmp_path / "b", "t", projections, history)
    assert set(views) == {"embedding_pca", "embedding_tsne", "training_curves"}
    b = write_evaluation(tmp_path / "b", evaluation, "t", views=views)
    assert list(a["figures"]) == list(b["figures"])  # the same names in the same order
    assert a["figures"] == b["figures"]
    for name in a["figures"].values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_compose_cells_frames_each_image_in_its_colour() -> None:
    white, grey = np.ones((4, 4)), np.full((3, 4, 4), 0.5)  # (H, W) and (C, H, W) images
    cells = [
        [(white * 0.0, "black", "query"), (white * 0.0 + np.eye(4), "tab:green", "#1")],
        [(grey, "tab:red", "#1")],
    ]
    mosaic, centres = compose_cells(cells)
    assert mosaic.shape[2] == 3 and mosaic.min() >= 0.0 and mosaic.max() <= 1.0
    assert [label for _, label in centres] == ["query", "#1", "#1"]
    frame = 1
    cell = 4 + 2 * frame
    band = round(0.6 * cell)
    gap = round(0.15 * cell)
    green = mosaic[band, cell + gap]  # the top-left corner of the second cell's frame
    np.testing.assert_allclose(green, [0.17254902, 0.62745098, 0.17254902])
    top, left = band + frame, cell + gap + frame
    inside = mosaic[top : top + 4, left : left + 4]
    np.testing.assert_array_equal(inside[..., 0], np.eye(4))  # the image, normalised to [0, 1]
    red_top = 2 * band + cell  # the second row's frame
    np.testing.assert_allclose(mosaic[red_top, 0], [0.83921569, 0.15294118, 0.15686275])
    np.testing.assert_array_equal(mosaic[red_top + frame + 1, frame + 1], [0.0, 0.0, 0.0])
    assert (mosaic[:band] == 1.0).all()  # the label band above the first row is white


def test_the_search_beside_the_other_measures_changes_nothing(monkeypatch) -> None:
    """The search in a thread (cpu, cuda) or before the other measures (other devices): the
    same metrics and per-query scores."""
    from tripletnet.evaluation import evaluate
    from tripletnet.evaluation.evaluate import evaluate_embeddings

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 300)
    x = (rng.normal(size=(4, 6))[labels] * 3 + rng.normal(size=(300, 6))).astype(np.float32)
    beside = evaluate_embeddings(x[:100], labels[:100], x[100:], labels[100:], pairs=200)
    monkeypatch.setattr(evaluate, "CONCURRENT_DEVICES", ())
    inline = evaluate_embeddings(x[:100], labels[:100], x[100:], labels[100:], pairs=200)
    assert json.dumps(beside.metrics, sort_keys=True) == json.dumps(inline.metrics, sort_keys=True)
    for name, scores in beside.per_query.items():
        np.testing.assert_array_equal(scores, inline.per_query[name])
