"""Your own data and network, end to end as a user runs them: a folder of images, a CSV with a
query/gallery split, features in an npz, a user factory model, one metric from training to
search, --config, and run folders of the previous version."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_digits

from tripletnet.cli import main
from tripletnet.files import read_json
from tripletnet.runs import embed, load_run
from tripletnet.search import SearchIndex

QUICK = ["--epochs", "2", "--triplets-per-epoch", "1024", "--test-triplets", "400", "--no-progress"]


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """400 of scikit-learn's digits as 16 x 16 PNGs in class folders (plus one corrupt file),
    and the images and labels as arrays."""
    bunch = load_digits()
    images = (bunch.images[:400] * (255 / 16)).astype(np.uint8)
    root = tmp_path_factory.mktemp("own") / "digits"
    for row, (image, label) in enumerate(zip(images, bunch.target[:400], strict=True)):
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((16, 16), Image.Resampling.NEAREST).save(
            folder / f"{row}.png"
        )
    (root / "digit3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root, images, bunch.target[:400]


def test_train_evaluate_index_and_search_an_image_folder(
    digit_images: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _, _ = digit_images
    run = tmp_path / "run"
    args = ["train", "--dataset", str(root), "--model", "small-conv", "--workers", "2"]
    assert main([*args, *QUICK, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| triplet embedding |" in out and "raw inputs (baseline)" in out
    metrics = read_json(run / "metrics.json")
    assert metrics["protocol"] == "closed set" and metrics["embedding_dim"] == 64
    assert metrics["classification"]["embedding"]["knn_accuracy"] > 0.5
    # the corrupt file: replaced in training, left out of the evaluation, named in the report
    assert metrics["unreadable_images"]["evaluation"] == 1
    assert "broken.png" in (run / "report.md").read_text()
    spec = load_run(run).spec
    assert spec.input_shape == (1, 16, 16) and spec.pixel_top == 255.0
    assert (
        main(["index", "build", str(run), "--dataset", str(root), "--out", str(tmp_path / "i")])
        == 0
    )
    source = SearchIndex.load(tmp_path / "i").item(0).source or ""
    query = root / source  # the test split's files, by their path in the folder (not the
    assert not Path(source).is_absolute() and query.parent.parent == root  # machine's)
    capsys.readouterr()
    assert main(["search", str(tmp_path / "i"), "--image", str(query), "-k", "1"]) == 0
    assert source in capsys.readouterr().out  # the test image finds itself


def test_strict_stops_at_the_unreadable_image(
    digit_images: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _, _ = digit_images
    args = ["train", "--dataset", str(root), "--model", "small-conv", "--strict", *QUICK]
    assert main([*args, "--workers", "0", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.png" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_csv_with_query_and_gallery_is_evaluated_query_against_gallery(
    digit_images: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    root, _, labels = digit_images
    files = sorted(p for p in root.rglob("*.png") if p.name != "broken.png")
    split = ["train"] * 240 + ["query"] * 60 + ["gallery"] * (len(files) - 300)
    lines = ["path,label,split"] + [
        f"{p.relative_to(root.parent).as_posix()},{p.parent.name},{s}"
        for p, s in zip(files, split, strict=True)
    ]
    csv = root.parent / "digits.csv"
    csv.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert (
        main(["train", "--dataset", str(csv), "--model", "small-conv", *QUICK, "--out", str(run)])
        == 0
    )
    metrics = read_json(run / "metrics.json")
    assert metrics["protocol"] == "query/gallery" and metrics["queries"] == 60
    assert metrics["gallery"] == len(files) - 300


def test_features_in_an_npz_train_an_mlp_and_an_open_set_split_reports_retrieval(
    tmp_path: Path,
) -> None:
    bunch = load_digits()
    np.savez(tmp_path / "features.npz", x=bunch.data.astype(np.float32), y=bunch.target)
    run = tmp_path / "run"
    args = ["train", "--dataset", str(tmp_path / "features.npz"), "--split", "classes:0.5"]
    assert main([*args, *QUICK, "--out", str(run)]) == 0
    metrics = read_json(run / "metrics.json")
    config = read_json(run / "config.json")
    assert config["model"]["model"] == "mlp"  # vectors: the MLP, chosen from the data
    assert metrics["protocol"] == "open set"
    assert set(metrics["classification"]) == {"embedding", "raw"}
    assert "linear_accuracy" not in metrics["classification"]["embedding"]  # no train classes
    assert 0 < metrics["classification"]["raw"]["map_at_r"] <= 1
    assert "Recall@1 | MAP@R | NMI" in (run / "report.md").read_text()


def test_a_user_factory_model_trains_and_every_command_rebuilds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mynets.py").write_text(
        textwrap.dedent(
            """
            from torch import nn

            def tiny(width=16):
                return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "mynets:tiny", "--factory-args", '{"width": 24}']
    assert main([*args, "--embedding-dim", "8", *QUICK, "--out", "run"]) == 0
    spec = load_run(tmp_path / "run", trust_model_code=True).spec
    assert spec.architecture == "mynets:tiny" and spec.factory_args == {"width": 24}
    assert spec.embedding_dim == 8
    capsys.readouterr()
    assert main(["evaluate", "run", "-k", "3", "--no-tsne"]) == 2  # its code: only when trusted
    assert "'tiny' of module 'mynets'" in capsys.readouterr().err
    assert main(["evaluate", "run", "-k", "3", "--no-tsne", "--trust-model-code"]) == 0
    assert main(["embed", "run", "--out", "e.npy", "--trust-model-code"]) == 0
    assert np.load(tmp_path / "e.npy").shape == (450, 8)
    capsys.readouterr()
    assert main(["train", "--model", "mynets:absent", *QUICK, "--out", "bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent" in err and err.count("\n") == 1


def test_a_cosine_loss_is_evaluated_and_searched_by_cosine(tmp_path: Path) -> None:
    """Precision@1 from `evaluate` equals a brute-force cosine nearest neighbour, and the index
    ranks and measures by cosine distance too."""
    run = tmp_path / "run"
    args = ["train", "--loss", "multi-similarity", "--epochs", "1", "--test-triplets", "300"]
    assert main([*args, "--no-progress", "--out", str(run)]) == 0
    trained = load_run(run)
    assert trained.spec.metric == "cosine"
    data = load_digits()
    from tripletnet.runs.data import load_data

    splits = load_data(trained.config)
    test = embed(trained.model, splits.test.x, trained.prepare)
    train = embed(trained.model, splits.train.x, trained.prepare)
    assert np.allclose(np.linalg.norm(test, axis=1), 1.0, atol=1e-5)  # the net normalises
    raw_test = torch.nn.functional.normalize(torch.from_numpy(test).double(), dim=1)
    raw_train = torch.nn.functional.normalize(torch.from_numpy(train).double(), dim=1)
    nearest = (raw_test @ raw_train.T).argmax(dim=1).numpy()  # the largest cosine similarity
    brute_force = float((splits.train.y[nearest] == splits.test.y).mean())
    metrics = read_json(run / "metrics.json")
    assert metrics["metric"] == "cosine"
    assert metrics["retrieval"]["precision_at_1"] == pytest.approx(brute_force, abs=1e-9)
    assert len(data.target) == 1797

    assert (
        main(["index", "build", str(run), "--dataset", "digits", "--out", str(tmp_path / "i")]) == 0
    )
    index = SearchIndex.load(tmp_path / "i")
    assert index.metric == "cosine"
    hits = index.search(test[:1] * 7.0, 3)[0]  # the scale of a query does not matter
    similarity = (raw_test[0] @ raw_test.T).numpy()
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    assert hits[1].distance == pytest.approx(1 - np.sort(similarity)[-2], abs=1e-5)


def test_config_json_is_a_valid_config_and_toml_reads_the_same_names(tmp_path: Path) -> None:
    first = tmp_path / "first"
    args = ["train", "--method", "siamese", "--margin", "0.5", "--lr", "0.05", *QUICK]
    assert main([*args, "--out", str(first)]) == 0
    again = tmp_path / "again"
    assert (
        main(
            ["train", "--config", str(first / "config.json"), "--no-progress", "--out", str(again)]
        )
        == 0
    )
    assert read_json(again / "config.json") == read_json(first / "config.json")
    torch.testing.assert_close(
        load_file(str(first / "model.safetensors")), load_file(str(again / "model.safetensors"))
    )
    toml = tmp_path / "run.toml"
    toml.write_text(
        '[method]\nname = "siamese"\nmargin = 0.5\ntriplets_per_epoch = 1024\n'
        "[optim]\nepochs = 2\nlr = 0.05\n[evaluation]\ntest_triplets = 400\n"
    )
    from_toml = tmp_path / "toml"
    assert main(["train", "--config", str(toml), "--no-progress", "--out", str(from_toml)]) == 0
    assert read_json(from_toml / "config.json") == read_json(first / "config.json")
    flags_win = tmp_path / "flags"
    assert (
        main(
            [
                "train",
                "--config",
                str(toml),
                "--margin",
                "0.7",
                "--no-progress",
                "--out",
                str(flags_win),
            ]
        )
        == 0
    )
    assert read_json(flags_win / "config.json")["method"]["margin"] == 0.7


def _as_version_1(run: Path) -> None:
    """Rewrite a run folder as version 1 wrote it: a flat config.json and a spec without the
    metric, the pixel range or the normaliser's range."""
    config = read_json(run / "config.json")
    flat = {
        key: value
        for section in ("data", "model", "optim", "evaluation")
        for key, value in config[section].items()
    }
    flat.update({key: value for key, value in config["method"].items() if key != "name"})
    flat["method"] = config["method"]["name"]
    for dropped in ("split", "image_size", "workers", "strict", "augment_crop", "augment_jitter",
                    "factory_args", "weights", "metric"):  # fmt: skip
        flat.pop(dropped, None)
    (run / "config.json").write_text(json.dumps(flat))
    for name in ("model.safetensors", "checkpoint.safetensors"):
        from safetensors import safe_open

        with safe_open(str(run / name), framework="pt") as handle:
            metadata = json.loads(handle.metadata()["tripletnet"])
        spec = metadata["spec"]
        for dropped in ("metric", "pixel_top", "factory_args"):
            spec.pop(dropped)
        spec["normalizer"] = {"mean": spec["normalizer"]["mean"], "std": spec["normalizer"]["std"]}
        tensors = load_file(str(run / name))
        save_file(tensors, str(run / name), metadata={"tripletnet": json.dumps(metadata)})


def test_a_version_1_run_folder_evaluates_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(run)]) == 0
    before = read_json(run / "metrics.json")
    _as_version_1(run)
    assert "version" not in read_json(run / "config.json")
    assert main(["evaluate", str(run), "--no-tsne"]) == 0
    after = read_json(run / "metrics.json")
    assert after["classification"]["embedding"] == before["classification"]["embedding"]
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert [row["epoch"] for row in read_json(run / "history.json")] == [1, 2, 3]
    assert read_json(run / "config.json")["version"] == 2  # written anew in today's shape
