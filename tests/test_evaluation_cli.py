"""``tripletnet evaluate`` on .npy files and on a run folder: files written, errors clear."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tripletnet.cli import main
from tripletnet.data import load_dataset
from tripletnet.evaluation.report_files import PER_QUERY, load_per_query, protocol_mismatch
from tripletnet.runs import embed
from tripletnet.training import load_run


@pytest.fixture
def npy_files(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 240)
    x = (rng.normal(size=(4, 6))[labels] * 3 + rng.normal(size=(240, 6))).astype(np.float32)
    paths = {}
    for name, array in {"q": x[:80], "ql": labels[:80], "g": x[80:], "gl": labels[80:]}.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    return paths


def test_evaluate_npy_with_gallery_writes_report(npy_files, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["evaluate", "--embeddings", str(npy_files["q"]), "--labels", str(npy_files["ql"])]
    args += ["--gallery-embeddings", str(npy_files["g"]), "--gallery-labels", str(npy_files["gl"])]
    assert main([*args, "--out", str(out), "--pairs", "200", "--no-tsne"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("precision_at_1", "r_precision", "map_at_r", "recall_at_8"):
        assert 0.0 <= metrics["retrieval"][key] <= 1.0
    assert set(metrics["figures"]) == {"embedding_pca", "roc", "distances"}
    assert all((out / name).is_file() for name in metrics["figures"].values())
    assert "R-Precision" in (out / "report.md").read_text()


def test_evaluate_npy_leave_one_out(npy_files, tmp_path) -> None:
    out = tmp_path / "loo"
    args = ["evaluate", "--embeddings", str(npy_files["g"]), "--labels", str(npy_files["gl"])]
    assert main([*args, "--out", str(out), "--pairs", "100", "--no-tsne"]) == 0
    assert json.loads((out / "metrics.json").read_text())["same_set"] is True


def test_evaluate_bad_input_is_one_line_error(npy_files, tmp_path, capsys) -> None:
    args = ["evaluate", "--embeddings", str(npy_files["q"]), "--labels", str(npy_files["gl"])]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    assert "must match" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "RUN_DIR or --embeddings" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()  # refused before the folder is read: options that do not apply to a run
    assert main(["evaluate", str(run), "--out", str(tmp_path / "y"), "--pairs", "10"]) == 2
    assert "--out, --pairs: only with --embeddings" in capsys.readouterr().err


def test_run_folder_calibration_is_reused_by_evaluate_and_verify(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    train = ["train", "--epochs", "1", "--triplets-per-epoch", "600", "--test-triplets", "300"]
    assert main([*train, "--out", str(run), "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"classification", "test_triplet_error", "retrieval", "clustering"} <= set(metrics)
    assert (run / "retrieval.png").is_file() and (run / "training.png").is_file()
    x = load_dataset("digits").test.x[:40]
    b = np.concatenate([x[:20], x[20:][::-1]])  # 20 identical pairs, then 20 mixed ones
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", b)
    verify = ["verify", str(run), "--first", str(tmp_path / "a.npy")]
    verify += ["--second", str(tmp_path / "b.npy"), "--out", str(tmp_path / "same.npy")]
    assert main(verify) == 2
    assert "--calibrate-far" in capsys.readouterr().err

    assert main(["evaluate", str(run), "--calibrate-far", "0.05", "--no-tsne"]) == 0
    threshold = json.loads((run / "threshold.json").read_text())
    assert threshold["measured"]["far"] <= 0.05
    metrics = json.loads((run / "metrics.json").read_text())
    saved = metrics["verification"]["at_saved_threshold"]
    assert saved["threshold"] == threshold["distance_threshold"]

    assert main(verify) == 0  # tripletnet verify decides with the saved threshold
    same = np.load(tmp_path / "same.npy")
    trained = load_run(run)
    distance = np.linalg.norm(
        embed(trained.model, x, trained.prepare) - embed(trained.model, b, trained.prepare), axis=1
    )
    assert same.dtype == bool and same[:20].all()
    clear = np.abs(distance - threshold["distance_threshold"]) > 1e-4  # float noise at the edge
    np.testing.assert_array_equal(same[clear], (distance <= threshold["distance_threshold"])[clear])
    assert main([*verify, "--threshold", "-1"]) == 2  # no distance is negative: refused
    assert "--threshold must be a finite distance >= 0" in capsys.readouterr().err
    assert main([*verify, "--threshold", "0"]) == 0  # only the identical pairs
    assert np.array_equal(np.load(tmp_path / "same.npy"), np.arange(40) < 20)
    np.save(tmp_path / "b.npy", x[:3])
    assert main(verify) == 2
    assert "pair them 1:1" in capsys.readouterr().err


def test_compare_two_evaluations_of_the_same_queries(npy_files, tmp_path, capsys) -> None:
    base = ["evaluate", "--labels", str(npy_files["ql"]), "--pairs", "100", "--no-tsne"]
    good, noisy = tmp_path / "good", tmp_path / "noisy"
    assert main([*base, "--embeddings", str(npy_files["q"]), "--out", str(good)]) == 0
    rng = np.random.default_rng(1)
    noisy_npy = tmp_path / "noisy.npy"
    np.save(
        noisy_npy, np.load(npy_files["q"]) + rng.normal(scale=4.0, size=(80, 6)).astype(np.float32)
    )
    assert main([*base, "--embeddings", str(noisy_npy), "--out", str(noisy)]) == 0
    capsys.readouterr()
    assert main(["compare", str(good), str(noisy)]) == 0
    table = capsys.readouterr().out
    assert "| retrieval.precision_at_1 |" in table and "| a |" in table
    assert main(["compare", str(good), str(tmp_path)]) == 2
    assert "per_query.npz" in capsys.readouterr().err


def test_compare_refuses_evaluations_with_different_galleries_or_k(npy_files, tmp_path, capsys):
    base = ["evaluate", "--embeddings", str(npy_files["q"]), "--labels", str(npy_files["ql"])]
    base += ["--pairs", "100", "--no-tsne", "--no-linear-probe"]
    gallery = ["--gallery-embeddings", str(npy_files["g"]), "--gallery-labels"]
    half = tmp_path / "half.npy"
    np.save(half, np.load(npy_files["gl"])[::-1])  # the same gallery size, other labels
    folders = {name: tmp_path / name for name in ("own", "gallery", "relabelled")}
    assert main([*base, "--out", str(folders["own"])]) == 0
    assert main([*base, *gallery, str(npy_files["gl"]), "--out", str(folders["gallery"])]) == 0
    assert main([*base, *gallery, str(half), "--out", str(folders["relabelled"])]) == 0
    capsys.readouterr()
    assert main(["compare", str(folders["own"]), str(folders["gallery"])]) == 2
    assert "queries as their own gallery" in capsys.readouterr().err
    assert main(["compare", str(folders["gallery"]), str(folders["relabelled"])]) == 2
    assert "different galleries" in capsys.readouterr().err
    scores = load_per_query(folders["gallery"] / PER_QUERY)
    assert protocol_mismatch(scores, {**scores, "k": np.asarray(1)}) == "k for the k-NN classifiers"
    older = {"query_labels": scores["query_labels"]}
    assert protocol_mismatch(scores, older) is None  # files from before these were recorded
