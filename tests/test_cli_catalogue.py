"""The bad-input catalogue: every command, tried against every kind of bad input a user can give.

Each case must end in exit code 2 with exactly one line on stderr, starting ``error:``, that
contains the expected words; no traceback, and nothing written: the files of the test's world
(a finished run, an index, the bad files) are byte for byte what they were. A command added to
the CLI without cases here fails ``test_every_command_is_in_the_catalogue``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from search_images import bomb_png, digit_png

from tripletnet.cli import cli, main
from tripletnet.export import export_run
from tripletnet.search import Embedder, build_index, from_dataset
from tripletnet.training import TrainConfig, train


def _write_bad_files(folder: Path) -> None:
    """One file per kind of bad input, named after what is wrong with it."""
    folder.mkdir()
    samples = np.random.default_rng(0).uniform(0, 16, (4, 1, 8, 8)).astype(np.float32)
    np.save(folder / "samples.npy", samples)  # a good one, for pairing with bad ones
    (folder / "empty.npy").write_bytes(b"")
    (folder / "truncated.npy").write_bytes((folder / "samples.npy").read_bytes()[:90])
    (folder / "text.npy").write_text("1,2,3\n")
    np.save(folder / "pickled.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(folder / "archive.npz", x=samples)
    np.save(folder / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(folder / "complex.npy", samples.astype(np.complex64))
    np.save(folder / "nan.npy", np.where(samples > 8, np.nan, samples))
    np.save(folder / "inf.npy", np.where(samples > 8, np.inf, samples))
    np.save(folder / "wrong_shape.npy", samples.reshape(4, 64))
    np.save(folder / "no_samples.npy", samples[:0])
    np.save(folder / "scalar.npy", np.float32(3.0))
    np.save(folder / "three.npy", samples[:3])
    vectors = np.random.default_rng(1).normal(size=(6, 16)).astype(np.float32)
    np.save(folder / "vectors.npy", vectors)
    np.save(folder / "vectors_wrong_dim.npy", vectors[:, :5])
    np.save(folder / "vectors_nan.npy", np.where(vectors > 1, np.nan, vectors))
    np.save(folder / "vectors_3d.npy", vectors[None])
    np.save(folder / "labels.npy", np.arange(6) % 2)
    np.save(folder / "labels_float.npy", np.array([0.3, 1.7, 0.3, 1.7, 0.3, 1.7]))
    np.save(folder / "labels_huge.npy", np.full(6, 1e20))
    np.save(folder / "labels_negative.npy", -np.arange(6))
    np.save(folder / "labels_short.npy", np.arange(5) % 2)
    np.save(folder / "labels_2d.npy", (np.arange(6) % 2)[:, None])
    np.save(folder / "labels_one_class.npy", np.zeros(6, dtype=np.int64))
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "text.png").write_text("not an image")
    (folder / "truncated.png").write_bytes(digit_png(0, scale=4)[:40])
    (folder / "empty.png").write_bytes(b"")
    for name in ("bomb", "text", "truncated"):
        (folder / f"images_{name}" / "cls").mkdir(parents=True)
        shutil.copy(folder / f"{name}.png", folder / f"images_{name}" / "cls" / f"{name}.png")
    (folder / "images_none").mkdir()
    (folder / "images_none" / "notes.txt").write_text("no images here")
    (folder / "a_file").write_text("a file where a folder is expected")
    (folder / "empty_dir").mkdir()
    (folder / "not_an_index").mkdir()
    (folder / "not_an_index" / "mine.txt").write_text("keep me")
    _own_data(folder)


def _own_data(folder: Path) -> None:
    """Bad image folders, CSV lists, npz files, --config files and weights."""
    png = digit_png(0, scale=2)
    (folder / "classes_empty" / "a").mkdir(parents=True)
    (folder / "classes_empty" / "b").mkdir()
    (folder / "classes_empty" / "a" / "1.png").write_bytes(png)
    (folder / "classes_empty" / "a" / "2.png").write_bytes(png)
    (folder / "classes_one" / "a").mkdir(parents=True)
    (folder / "classes_one" / "b").mkdir()
    for name in ("1.png", "2.png"):
        (folder / "classes_one" / "a" / name).write_bytes(png)
    (folder / "classes_one" / "b" / "1.png").write_bytes(png)
    (folder / "no_label.csv").write_text("path,kind\na.png,1\n")
    (folder / "escaping.csv").write_text("path,label\n../../etc/passwd,1\n../x.png,2\n")
    (folder / "missing_file.csv").write_text("path,label\nnowhere.png,1\nnowhere2.png,2\n")
    (folder / "empty.csv").write_text("")
    (folder / "bad_split.csv").write_text(
        "path,label,split\nimages_text/cls/text.png,0,validation\n"
    )
    np.savez(folder / "no_y.npz", x=np.zeros((4, 3), np.float32))
    np.savez(folder / "nan_x.npz", x=np.full((4, 3), np.nan, np.float32), y=np.arange(4) % 2)
    np.savez(folder / "short_y.npz", x=np.zeros((4, 3), np.float32), y=np.arange(3))
    (folder / "notes.txt").write_text("not a dataset")
    (folder / "bad.toml").write_text("[optim\nepochs = 2\n")
    (folder / "unknown.toml").write_text("[optimiser]\nepochs = 2\n")
    (folder / "types.toml").write_text('[optim]\nepochs = "two"\n')
    (folder / "choices.toml").write_text('[optim]\nprecision = "fp8"\n')
    (folder / "other_method.toml").write_text('[method]\nname = "triplet"\nmargin = 0.5\n')
    (folder / "list.json").write_text("[1, 2]")
    (folder / "pickled.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    (folder / "future.json").write_text('{"version": 99}')
    (folder / "comma_label.csv").write_text(
        "path,label,split\nimages_text/cls/text.png,New York, NY,train\n"
    )
    (folder / "csv_link").mkdir()  # a CSV whose image is a link out of its folder
    (folder / "csv_link" / "a.png").symlink_to(folder / "text.png")
    (folder / "csv_link" / "list.csv").write_text("path,label\na.png,0\na.png,1\n")
    (folder / "classes_loop" / "a").mkdir(parents=True)  # class b: a link to the root's parent
    for name in ("1.png", "2.png"):
        (folder / "classes_loop" / "a" / name).write_bytes(png)
    (folder / "classes_loop" / "b").symlink_to("..")


def _broken_runs(run: Path, folder: Path) -> None:
    """Copies of a finished run, each broken in one way."""
    for name in ("config_corrupt", "config_missing", "config_list", "config_types", "model_cut"):
        shutil.copytree(run, folder / name)
    shutil.copytree(run, folder / "config_future")
    (folder / "config_future" / "config.json").write_text('{"version": 99}')
    (folder / "config_corrupt" / "config.json").write_text("{ not json")
    (folder / "config_missing" / "config.json").unlink()
    (folder / "config_list" / "config.json").write_text("[1, 2]")
    (folder / "config_types" / "config.json").write_text('{"epochs": "many", "dataset": "digits"}')
    model = folder / "model_cut" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    (folder / "unfinished").mkdir()
    shutil.copy(run / "checkpoint.safetensors", folder / "unfinished")
    shutil.copy(run / "config.json", folder / "unfinished")


def _code_runs(run: Path, folder: Path) -> None:
    """Copies of the run whose model spec names code, as a shared run folder could: os.system
    touching SENTINEL in the world (the snapshot would see it), and factory_args not JSON data."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    command = f"touch {folder.parent / 'SENTINEL'}"
    specs = {
        "code": {"architecture": "os:system", "factory_args": {"command": command}},
        "code_args": {"architecture": "os:system", "factory_args": command},
    }
    for name, changes in specs.items():
        shutil.copytree(run, folder / name)
        model = folder / name / "model.safetensors"
        with safe_open(str(model), framework="pt") as handle:
            metadata = json.loads(handle.metadata()["tripletnet"])
        metadata["spec"].update(changes)
        tensors = load_file(str(model))
        save_file(tensors, str(model), metadata={"tripletnet": json.dumps(metadata)})


def _broken_indexes(index: Path, folder: Path) -> None:
    """Copies of an index folder, each broken in one way."""
    from tripletnet.search.changelog import LOG, Change, encode

    names = ("faiss_cut", "manifest_corrupt", "items_mismatch", "current_traversal", "thumbs_cut")
    names += ("log_damaged", "log_last_damaged")
    for name in names:
        shutil.copytree(index, folder / name)
    live = (index / "CURRENT").read_text().strip()
    faiss_file = folder / "faiss_cut" / live / "index.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    (folder / "manifest_corrupt" / live / "manifest.json").write_text("{")
    (folder / "items_mismatch" / live / "items.json").write_text(
        '{"ids": [0], "labels": [0], "sources": ["x"], "thumbnail_ids": []}'
    )
    (folder / "current_traversal" / "CURRENT").write_text("../../../etc\n")
    thumbs = folder / "thumbs_cut" / live / "thumbnails.npy"
    thumbs.write_bytes(thumbs.read_bytes()[:200])
    removal = encode(Change("remove", np.array([1], np.int64)))
    (folder / "log_damaged" / live / LOG).write_bytes(b"0" + removal[1:] + removal)
    # a whole last record (newline and all) that fails its checksum: damage, not a torn tail
    (folder / "log_last_damaged" / live / LOG).write_bytes(removal + b"0" + removal[1:])


def _exports(root: Path) -> None:
    """The run exported (ONNX, TorchScript), the other run's ONNX file, and broken ONNX files."""
    import onnx

    folder = root / "exports"
    export_run(root / "run", folder / "run.onnx")
    export_run(root / "run", folder / "run.pt", format="torchscript")
    export_run(root / "other_run", folder / "other_run.onnx")
    data = (folder / "run.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (folder / "text.onnx").write_text("not an ONNX model\n")
    tensor = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "plain",
        [tensor],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(folder / "plain.onnx"))


HAS_MILVUS = importlib.util.find_spec("pymilvus") is not None


def _milvus_collection(embedder: Embedder, folder: Path) -> None:
    """A Milvus Lite file holding collection "other", made by ``embedder`` (the other run),
    opened once more so that the cases' reads leave its files as they are."""
    from tripletnet.search.engines import Target, create_live, open_live

    folder.mkdir()
    where = Target("other", "milvus", str(folder / "gallery.db"))
    collection = from_dataset(embedder, "digits", limit=20)
    create_live(where, collection, dim=embedder.dim, kind="exact", metric=embedder.metric,
                model=embedder.ref, class_names=collection.class_names)  # fmt: skip
    open_live(where).current().search(collection.vectors[:1], 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished digits run (16-d MLP), an exact index of its test split, another run's
    index, broken copies of both, and the bad files."""
    root = tmp_path_factory.mktemp("catalogue")
    run = root / "run"
    config = TrainConfig(
        dataset="digits", model="mlp", epochs=1, triplets_per_epoch=256, embedding_dim=16
    )
    train(config, run, show_progress=False, log_epochs=False)
    embedder = Embedder.from_run(run)
    build_index(embedder, from_dataset(embedder, "digits", limit=100)).save(root / "index")
    other = root / "other_run"
    train(TrainConfig.from_options(config, seed=1), other, show_progress=False)
    other_embedder = Embedder.from_run(other)
    build_index(other_embedder, from_dataset(other_embedder, "digits", limit=50)).save(
        root / "other_index"
    )
    if HAS_MILVUS:
        _milvus_collection(other_embedder, root / "milvus")
    _write_bad_files(root / "bad")
    _broken_runs(run, root / "runs")
    _code_runs(run, root / "runs")
    _broken_indexes(root / "index", root / "indexes")
    _exports(root)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``, with a digest of each file's bytes."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        )
        for path in sorted(root.rglob("*"))
        if not path.name.endswith(".lock")  # filelock leaves its lock file by design
    }


# (arguments, words the error line must contain); {w} is the world folder, {out} a new path
CATALOGUE: list[tuple[str, str]] = [
    # train: options
    ("train --dataset imagenet", "imagenet"),
    ("train --dataset mnist --data-dir {w}/bad/empty_dir", "train-images-idx3-ubyte.gz"),
    ("train --dataset mnist --data-dir {w}/bad/a_file", "a_file"),
    ("train --method quadruplet", "quadruplet"),
    ("train --epochs 0", "--epochs must be at least 1"),
    ("train --epochs -3", "--epochs must be at least 1"),
    ("train --epochs 99999999", "--epochs must be at most"),
    ("train --embedding-dim 0", "--embedding-dim must be at least 1"),
    ("train --embedding-dim 100000000", "--embedding-dim must be at most"),
    ("train --batch-size 0", "--batch-size must be at least 1"),
    ("train --batch-size 100000000", "--batch-size must be at most"),
    ("train --triplets-per-epoch 0", "--triplets-per-epoch must be at least 1"),
    ("train --triplets-per-epoch 1000000000000", "--triplets-per-epoch must be at most"),
    ("train --test-triplets 0", "--test-triplets must be at least 1"),
    ("train --momentum -3", "--momentum"),
    ("train --momentum 1.5", "--momentum"),
    ("train --momentum nan", "--momentum"),
    ("train --nesterov --momentum 0", "--nesterov needs a --momentum"),
    ("train --lr-schedule step --lr-milestones 30,x", "--lr-milestones"),
    ("train --lr-milestones 60,30", "--lr-milestones"),
    ("train --lr-milestones 0", "--lr-milestones"),
    ("train --lr 0", "--lr"),
    ("train --lr -0.1", "--lr"),
    ("train --lr nan", "--lr"),
    ("train --lr inf", "--lr"),
    ("train --weight-decay -1", "--weight-decay"),
    ("train --dropout 1.5", "--dropout"),
    ("train --margin 0", "--margin"),
    ("train --seed -1", "--seed"),
    ("train --log wandb", "unknown wandb; choose from"),
    ("train --log csv,,tensorbord", "unknown tensorbord"),
    ("train --device tpu", "unknown --device 'tpu'"),
    ("train --device cuda:99", "cuda"),
    ("train -k 0", "-k"),
    ("train -k 100000", "-k 100000 is larger than the data allows"),
    ("train --precision fp8", "fp8"),
    ("train --final-relu", "no final-relu choice"),
    ("train --model mlp --batch-norm", "no batch-norm choice"),
    ("train --model resnet-9000", "resnet-9000"),
    ("train --loss nonsense", "nonsense"),
    ("train --sampler random", "--sampler does not apply to --method triplet"),
    ("train --miner batch-hard", "it goes with --method batch-mining"),
    ("train --loss contrastive --miner batch-hard", "pair miner"),
    ("train --loss arcface --miner batch-hard", "takes no --miner"),
    ("train --loss triplet-margin --samples-per-class 0", "--samples-per-class"),
    ("train --labels-per-class 3", "it goes with --method semi-supervised"),
    ("train --method semi-supervised --labels-per-class 0", "--labels-per-class"),
    ("train --method semi-supervised --labels-per-class 100000", "--labels-per-class"),
    ("train --unlabelled-weight -1", "--unlabelled-weight"),
    ("train --labels-seed 1", "it goes with --method semi-supervised"),
    ("train --method semi-supervised --labels-seed 1", "give --labels-per-class"),
    ("train --method semi-supervised --labels-per-class 3 --labels-seed -1", "--labels-seed"),
    ("train --method semi-supervised --labels-per-class 3 --labels-seed x", "--labels-seed"),
    ("train --augment-shift -2", "--augment-shift"),
    ("train --augment-shift 100", "too large for 8x8 images"),
    ("train --augment-shift 8", "the largest shift allowed is 7"),
    (
        "train --method batch-mining --loss triplet-margin --samples-per-class 1",
        "give --samples-per-class 2 or more",
    ),
    ("train --loss contrastive --samples-per-class 1", "pairs of samples of the same class"),
    ("train --steps-per-epoch 0", "--steps-per-epoch"),
    # train: issue 20's methods (TCM, energy confusion, Metrix, ElasticFace, SNR)
    ("train --tcm-weight 1", "it goes with --method batch-mining"),
    ("train --loss multi-similarity --tcm-weight -1", "--tcm-weight"),
    ("train --loss multi-similarity --tcm-weight nan", "--tcm-weight"),
    ("train --loss contrastive --energy-weight -0.5", "--energy-weight"),
    ("train --loss contrastive --energy-weight inf", "--energy-weight"),
    ("train --loss multi-similarity --mixup pixels", "pixels"),
    ("train --loss triplet-margin --mixup input", "Metrix"),
    ("train --loss proxy-anchor --mixup feature --mixup-weight -1", "--mixup-weight"),
    ("train --loss elasticface-arc --miner batch-hard", "takes no --miner"),
    ("train --loss snr-contrastive --miner batch-hard", "pair miner"),
    ("train --loss contrastive --steps-per-epoch 0", "--steps-per-epoch"),
    ("train --init {w}/missing", "no model.safetensors"),
    ("train --init {w}/bad/empty_dir", "no model.safetensors"),
    ("train --model mlp --embedding-dim 8 --init {w}/run", "embedding_dim"),
    # train: your own data and network
    ("train --dataset {w}/bad/missing_folder", "not a built-in dataset"),
    ("train --dataset {w}/bad/notes.txt", "not a .csv or .npz"),
    ("train --dataset {w}/bad/empty_dir", "empty_dir"),
    ("train --dataset {w}/bad/classes_empty", "holds no images"),
    ("train --dataset {w}/bad/classes_one", "a triplet needs two"),
    ("train --dataset {w}/bad/no_label.csv", "label"),
    ("train --dataset {w}/bad/escaping.csv", "outside"),
    ("train --dataset {w}/bad/csv_link/list.csv", "symbolic link"),
    ("train --dataset {w}/bad/comma_label.csv", "too many fields (4, expected 3"),
    ("train --dataset {w}/bad/classes_loop", "every image of every class"),
    ("train --dataset {w}/bad/missing_file.csv", "nowhere.png"),
    ("train --dataset {w}/bad/empty.csv", "empty.csv"),
    ("train --dataset {w}/bad/bad_split.csv", "validation"),
    ("train --dataset {w}/bad/no_y.npz", "y"),
    ("train --dataset {w}/bad/nan_x.npz", "finite"),
    ("train --dataset {w}/bad/short_y.npz", "3"),
    ("train --dataset {w}/bad/archive.npz", "y"),
    ("train --split stratified:1.5", "stratified:1.5"),
    ("train --split classes:0", "classes:0"),
    ("train --split random:0.3", "random:0.3"),
    ("train --image-size 0", "--image-size"),
    ("train --image-size -5", "--image-size"),
    ("train --image-size 100000", "--image-size"),
    ("train --workers -1", "--workers"),
    ("train --augment-jitter 2", "--augment-jitter"),
    ("train --augment-jitter nan", "--augment-jitter"),
    ("train --model mynets_absent:factory", "mynets_absent"),
    ("train --model os:getcwd", "nn.Module"),
    ("train --model timm:resnet18", "timm"),
    ('train --model small-conv --factory-args {"a":1}', "--factory-args"),
    ("train --model mlp --factory-args not-json", "not JSON"),
    ("train --model mlp --factory-args [1]", "JSON object"),
    ("train --weights {w}/missing.safetensors", "missing.safetensors"),
    ("train --weights {w}/bad/pickled.safetensors", "pickled.safetensors"),
    ("train --metric manhattan", "manhattan"),
    ("train --method batch-mining", "needs --loss"),
    ("train --method siamese --loss-form nll", "--loss-form does not apply"),
    ("train --config {w}/missing.toml", "does not exist"),
    ("train --config {w}/bad/bad.toml", "TOML"),
    ("train --config {w}/bad/unknown.toml", "optimiser"),
    ("train --config {w}/bad/types.toml", "epochs = 'two'"),
    ("train --config {w}/bad/choices.toml", "fp8"),
    ("train --config {w}/bad/other_method.toml", "--margin does not apply"),
    ("train --config {w}/bad/list.json", "list.json"),
    ("train --config {w}/bad/future.json", "version 99"),
    ("train --config {w}/run/config.json --resume --out {w}/run", "leave out --config"),
    # train: run folders
    ("train --out {w}/run", "already exists"),
    ("train --out {w}/bad/a_file", "is a file"),
    ("train --resume", "--resume needs --out"),
    ("train --resume --overwrite --out {w}/run", "choose one of --resume"),
    ("train --resume --out {w}/missing", "does not exist"),
    ("train --resume --out {w}/bad/empty_dir", "config.json"),
    ("train --resume --out {w}/runs/config_corrupt", "config.json"),
    ("train --resume --out {w}/runs/config_list", "config.json"),
    ("train --resume --out {w}/runs/config_types", "epochs = 'many'"),
    ("train --resume --out {w}/runs/config_future", "upgrade tripletnet"),
    ("train --resume --out {w}/run --lr 0.5", "cannot change --lr"),
    ("train --resume --out {w}/run --dataset mnist", "cannot change --dataset"),
    ("train --resume --out {w}/run --epochs 0", "--epochs must be at least 1"),
    ("train --resume --out {w}/unfinished_copy --seed 4", "cannot change --seed"),
    # pretrain
    ("pretrain --patch-size 50", "--patch-size"),
    ("pretrain --patch-size 0", "--patch-size"),
    ("pretrain --feature-layer 99", "layer"),
    ("pretrain --feature-layer 11", "not a spatial"),
    ("pretrain --patch-pooling median", "median"),
    ("pretrain --epochs 0", "--epochs must be at least 1"),
    ("pretrain --model mlp", "spatial"),
    # evaluate
    ("evaluate {w}/missing", "not a finished tripletnet run"),
    ("evaluate {w}/bad/empty_dir", "not a finished tripletnet run"),
    ("evaluate {w}/runs/unfinished", "--resume it"),
    ("evaluate {w}/runs/config_corrupt", "config.json"),
    ("evaluate {w}/runs/config_missing", "config.json does not exist"),
    ("evaluate {w}/runs/config_types", "epochs = 'many'"),
    ("evaluate {w}/runs/config_future", "version 99"),
    ("evaluate {w}/runs/model_cut", "model.safetensors"),
    ("evaluate {w}/run -k 0", "-k"),
    ("evaluate {w}/run -k 100000", "k = 100000"),
    ("evaluate {w}/run --out {out}", "only with --embeddings"),
    ("evaluate {w}/run --device tpu", "unknown --device 'tpu'"),
    ("evaluate {w}/run --device cuda:99", "cuda"),
    ("evaluate", "give a RUN_DIR or --embeddings"),
    ("evaluate --embeddings {w}/bad/vectors.npy --out {out}", "--labels"),
    (
        "evaluate --embeddings {w}/bad/pickled.npy --labels {w}/bad/labels.npy --out {out}",
        "pickled.npy",
    ),
    ("evaluate --embeddings {w}/bad/archive.npz --labels {w}/bad/labels.npy --out {out}", ".npz"),
    (
        "evaluate --embeddings {w}/bad/empty.npy --labels {w}/bad/labels.npy --out {out}",
        "empty.npy",
    ),
    (
        "evaluate --embeddings {w}/bad/truncated.npy --labels {w}/bad/labels.npy --out {out}",
        "truncated.npy",
    ),
    (
        "evaluate --embeddings {w}/bad/strings.npy --labels {w}/bad/labels.npy --out {out}",
        "numeric",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors_nan.npy --labels {w}/bad/labels.npy --out {out}",
        "NaN",
    ),
    ("evaluate --embeddings {w}/bad/vectors_3d.npy --labels {w}/bad/labels.npy --out {out}", "2-D"),
    ("evaluate --embeddings {w}/bad/no_samples.npy --labels {w}/bad/labels.npy --out {out}", "2-D"),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels_short.npy --out {out}",
        "5 entries",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels_float.npy --out {out}",
        "integer",
    ),
    ("evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels_2d.npy --out {out}", "1-D"),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels_one_class.npy --out {out}",
        "at least 2 classes",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/vectors.npy --out {out}",
        "both --gallery",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/vectors_wrong_dim.npy --gallery-labels {w}/bad/labels.npy --out {out}",
        "dimension",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} -k 100",
        "k = 100",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --pairs 0",
        "--pairs",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {w}/bad/a_file",
        "a_file",
    ),
    ("evaluate {w}/run --calibrate-far 2", "--calibrate-far"),
    # --memory-mb: the gallery memory-mapped and checked a block at a time
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 0",
        "--memory-mb",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb lots",
        "--memory-mb",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/vectors_nan.npy",
        "NaN",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/vectors_3d.npy",
        "2-D",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/pickled.npy",
        "pickled.npy",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/strings.npy",
        "numeric",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-labels {w}/bad/labels.npy --gallery-embeddings {w}/bad/vectors_wrong_dim.npy",
        "dimension",
    ),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --memory-mb 1 --gallery-embeddings {w}/bad/vectors.npy --gallery-labels {w}/bad/labels_short.npy",
        "labels_short.npy",
    ),
    ("evaluate {w}/run --metric cosine", "only with --embeddings"),
    ("evaluate {w}/run --workers -1", "--workers"),
    (
        "evaluate --embeddings {w}/bad/vectors.npy --labels {w}/bad/labels.npy --out {out} --metric l1",
        "l1",
    ),
    ("evaluate {w}/run --calibrate-far 0.1 --calibrate-precision 0.9", "choose one of"),
    # embed
    ("embed {w}/missing --out {out}", "not a finished tripletnet run"),
    ("embed {w}/runs/config_corrupt --out {out}", "config.json"),
    ("embed {w}/run --input {w}/missing.npy --out {out}", "does not exist"),
    ("embed {w}/run --input {w}/bad/empty.npy --out {out}", "empty.npy"),
    ("embed {w}/run --input {w}/bad/truncated.npy --out {out}", "truncated.npy"),
    ("embed {w}/run --input {w}/bad/text.npy --out {out}", "text.npy"),
    ("embed {w}/run --input {w}/bad/pickled.npy --out {out}", "pickled.npy"),
    ("embed {w}/run --input {w}/bad/archive.npz --out {out}", ".npz archive"),
    ("embed {w}/run --input {w}/bad/strings.npy --out {out}", "must be numbers"),
    ("embed {w}/run --input {w}/bad/complex.npy --out {out}", "complex"),
    ("embed {w}/run --input {w}/bad/nan.npy --out {out}", "NaN"),
    ("embed {w}/run --input {w}/bad/inf.npy --out {out}", "infinite"),
    ("embed {w}/run --input {w}/bad/wrong_shape.npy --out {out}", "expected (N, 1, 8, 8)"),
    ("embed {w}/run --input {w}/bad/scalar.npy --out {out}", "expected (N, 1, 8, 8)"),
    ("embed {w}/run --input {w}/bad/no_samples.npy --out {out}", "holds no samples"),
    ("embed {w}/run --input {w}/bad --out {out}", "is a directory"),
    ("embed {w}/run --split validation --out {out}", "validation"),
    ("embed {w}/run --split query --out {out}", "no query split"),
    ("embed {w}/run --out {w}/bad/empty_dir", "empty_dir"),
    # verify
    ("verify {w}/run --first {w}/bad/samples.npy --second {w}/bad/samples.npy", "threshold.json"),
    (
        "verify {w}/run --first {w}/bad/samples.npy --second {w}/bad/samples.npy --threshold nan",
        "--threshold",
    ),
    (
        "verify {w}/run --first {w}/bad/samples.npy --second {w}/bad/samples.npy --threshold -1",
        "--threshold",
    ),
    (
        "verify {w}/run --first {w}/bad/samples.npy --second {w}/bad/samples.npy --threshold inf",
        "--threshold",
    ),
    (
        "verify {w}/run --first {w}/bad/samples.npy --second {w}/bad/three.npy --threshold 1",
        "pair them 1:1",
    ),
    ("verify {w}/run --first {w}/bad/nan.npy --second {w}/bad/samples.npy --threshold 1", "NaN"),
    (
        "verify {w}/run --first {w}/bad/pickled.npy --second {w}/bad/samples.npy --threshold 1",
        "pickled.npy",
    ),
    (
        "verify {w}/run --first {w}/bad/wrong_shape.npy --second {w}/bad/samples.npy --threshold 1",
        "expected",
    ),
    (
        "verify {w}/missing --first {w}/bad/samples.npy --second {w}/bad/samples.npy --threshold 1",
        "not a finished",
    ),
    # compare
    ("compare {w}/bad/empty_dir {w}/run", "per_query.npz"),
    ("compare {w}/missing {w}/run", "does not exist"),
    ("compare {w}/run {w}/run --resamples 10", "--resamples"),
    ("compare {w}/run {w}/run --alpha 1.5", "--alpha"),
    # index build
    ("index build {w}/run --out {out}", "give exactly one of"),
    (
        "index build {w}/run --dataset digits --vectors {w}/bad/vectors.npy --out {out}",
        "exactly one",
    ),
    (
        "index build {w}/run --labels {w}/bad/labels.npy --dataset digits --out {out}",
        "--labels goes with --vectors",
    ),
    ("index build {w}/missing --dataset digits --out {out}", "not a finished"),
    ("index build {w}/runs/model_cut --dataset digits --out {out}", "model.safetensors"),
    (
        "index build {w}/run --dataset mnist --data-dir {w}/bad/empty_dir --out {out}",
        "train-images",
    ),
    ("index build {w}/run --dataset digits --limit 0 --out {out}", "--limit"),
    ("index build {w}/run --dataset {w}/bad/missing_folder --out {out}", "not a built-in"),
    ("index build {w}/run --dataset digits --split gallery --out {out}", "no gallery split"),
    ("index build {w}/run --dataset digits --kind annoy --out {out}", "annoy"),
    ("index build {w}/run --dataset digits --kind ivfpq --limit 20 --out {out}", "needs at least"),
    ("index build {w}/run --dataset digits --out {w}/bad/not_an_index", "not empty"),
    (
        "index build {w}/run --dataset digits --out {w}/bad/not_an_index --overwrite",
        "not a tripletnet index",
    ),
    ("index build {w}/run --dataset digits --out {w}/bad/a_file", "a_file"),
    ("index build {w}/run --vectors {w}/bad/pickled.npy --out {out}", "pickled.npy"),
    ("index build {w}/run --vectors {w}/bad/archive.npz --out {out}", ".npz archive"),
    ("index build {w}/run --vectors {w}/bad/strings.npy --out {out}", "must be numbers"),
    ("index build {w}/run --vectors {w}/bad/vectors_nan.npy --out {out}", "NaN"),
    ("index build {w}/run --vectors {w}/bad/vectors_wrong_dim.npy --out {out}", "expected (N, 16)"),
    ("index build {w}/run --vectors {w}/bad/no_samples.npy --out {out}", "expected (N, 16)"),
    (
        "index build {w}/run --vectors {w}/bad/vectors.npy --labels {w}/bad/labels_float.npy --out {out}",
        "integer class id",
    ),
    (
        "index build {w}/run --vectors {w}/bad/vectors.npy --labels {w}/bad/labels_huge.npy --out {out}",
        "from 0 to",
    ),
    (
        "index build {w}/run --vectors {w}/bad/vectors.npy --labels {w}/bad/labels_negative.npy --out {out}",
        "from 0 to",
    ),
    (
        "index build {w}/run --vectors {w}/bad/vectors.npy --labels {w}/bad/labels_short.npy --out {out}",
        "expected (6,)",
    ),
    (
        "index build {w}/run --vectors {w}/bad/vectors.npy --labels {w}/bad/strings.npy --out {out}",
        "must be numbers",
    ),
    ("index build {w}/run --dataset digits --refine 4 --out {out}", "--refine re-ranks"),
    ("index build {w}/run --dataset digits --kind ivfpq --refine 0 --out {out}", "--refine"),
    (
        "index build {w}/run --dataset digits --kind ivfpq --refine 4 --refine-store int4 --out {out}",
        "'int4' is not one of 'sq8', 'float16', 'float32'",
    ),
    (
        "index build {w}/run --dataset digits --kind ivfpq --refine-store sq8 --out {out}",
        "--refine-store says how --refine keeps vectors",
    ),
    ("index build {w}/run --images {w}/bad/images_bomb --out {out}", "bomb.png"),
    ("index build {w}/run --images {w}/bad/images_text --out {out}", "text.png"),
    ("index build {w}/run --images {w}/bad/images_truncated --out {out}", "truncated.png"),
    ("index build {w}/run --images {w}/bad/images_none --out {out}", "holds no images"),
    ("index build {w}/run --images {w}/missing --out {out}", "does not exist"),
    # index info / remove
    ("index info {w}/missing", "not a tripletnet index"),
    ("index info {w}/bad/not_an_index", "not a tripletnet index"),
    ("index info {w}/indexes/faiss_cut", "index.faiss is truncated"),
    ("index info {w}/indexes/manifest_corrupt", "manifest.json"),
    ("index info {w}/indexes/items_mismatch", "does not match items.json"),
    ("index info {w}/indexes/current_traversal", "not a version"),
    ("index info {w}/indexes/thumbs_cut", "thumbnails.npy"),
    ("index remove {w}/indexes/faiss_cut 1", "index.faiss is truncated"),
    ("index remove {w}/missing 1", "not a tripletnet index"),
    ("index info {w}/indexes/log_damaged", "changes.log is damaged at line 1 (byte 0)"),
    ("index info {w}/indexes/log_last_damaged", "changes.log is damaged at line 2"),
    ("index remove {w}/indexes/log_last_damaged 5", "changes.log is damaged at line 2"),
    ("index repair {w}/missing", "not a tripletnet index"),
    ("index repair {w}/bad/not_an_index", "not a tripletnet index"),
    ("index compact {w}/missing", "not a tripletnet index"),
    ("index compact {w}/bad/not_an_index", "not a tripletnet index"),
    ("index compact {w}/indexes/faiss_cut", "index.faiss is truncated"),
    ("index compact {w}/indexes/log_damaged", "changes.log is damaged at line 1 (byte 0)"),
    ("index remove {w}/index one", "one"),
    ("index remove {w}/index", "IDS"),
    # search
    ("search {w}/index", "give exactly one of --image or --vector"),
    ("search {w}/index --image {w}/bad/bomb.png --vector {w}/bad/vectors.npy", "exactly one"),
    ("search {w}/index --image {w}/bad/bomb.png", "bomb.png"),
    ("search {w}/index --json", "give exactly one of --image or --vector"),  # errors stay lines
    ("search {w}/index --vector {w}/bad/vectors_nan.npy --json", "NaN"),
    ("search {w}/index --json=yes", "--json"),  # a flag takes no value
    ("embed {w}/run --no-progress --out {out} --split unseen", "unseen"),
    ("search {w}/index --image {w}/bad/text.png", "text.png"),
    ("search {w}/index --image {w}/bad/truncated.png", "truncated.png"),
    ("search {w}/index --image {w}/bad/empty.png", "empty.png"),
    ("search {w}/index --image {w}/missing.png", "does not exist"),
    ("search {w}/index --image {w}/bad/samples.npy --run {w}/other_run", "does not match"),
    # the milvus engine (docs/scaling.md): collection "other" was made by the other run's model
    (
        "search other --backend milvus --uri {w}/milvus/gallery.db --image {w}/bad/samples.npy --run {w}/run",
        "does not match",
    ),
    (
        "search other --backend milvus --uri {w}/milvus/gallery.db --vector {w}/bad/vectors.npy --label 1or",
        "--label",
    ),
    (  # a value that would be an expression if pasted unescaped: a filter, then a model refused
        'search other --backend milvus --uri {w}/milvus/gallery.db --image {w}/bad/samples.npy --run {w}/run --where a=1"or"id>0\\',
        "does not match",
    ),
    ("search other --backend milvus --vector {w}/bad/vectors.npy", "needs --uri"),
    ("search other --backend milvus --uri http://127.0.0.1:1 --vector x.npy", "x.npy"),
    ("index info other --backend milvus --uri http://127.0.0.1:1", "cannot reach Milvus"),
    (
        "index info missing --backend milvus --uri {w}/milvus/gallery.db",
        "no tripletnet collection 'missing'",
    ),
    (
        "index info no-name --backend milvus --uri {w}/milvus/gallery.db",
        "not a Milvus collection name",
    ),
    (
        "index compact missing --backend milvus --uri {w}/milvus/gallery.db",
        "no tripletnet collection",
    ),
    ("index remove other 1 --backend milvus --uri http://127.0.0.1:1", "cannot reach Milvus"),
    (
        "index build {w}/run --dataset digits --out other --backend milvus --uri {w}/milvus/gallery.db",
        "already holds collection",
    ),
    ("index build {w}/run --dataset digits --kind ivfflat --out {out}", "--backend milvus"),
    ("index build {w}/run --dataset digits --backend milvus --out {out}", "needs --uri"),
    (
        "index build {w}/run --dataset digits --refine 4 --kind ivfpq --out o --backend milvus --uri {w}/milvus/gallery.db",
        "re-rank",
    ),
    ("serve {w}/run --index other --backend milvus --uri {w}/milvus/gallery.db", "does not match"),
    (
        "serve {w}/run --index other --backend milvus --uri {w}/milvus/gallery.db --workers 2",
        "one process",
    ),
    ("search {w}/index --vector {w}/bad/archive.npz", ".npz archive"),
    ("search {w}/index --vector {w}/bad/vectors.npy --label -1", "--label"),
    ("search {w}/index --vector {w}/bad/vectors.npy --where shop", "expected FIELD=VALUE"),
    ("search {w}/index --vector {w}/bad/vectors.npy --where =3", "expected FIELD=VALUE"),
    ('search {w}/index --vector {w}/bad/vectors.npy --where a={"b":1}', "where.a must be a string"),
    ("search {w}/index --vector {w}/bad/vectors.npy --where a=NaN", "where.a must be finite"),
    ("search {w}/index --vector {w}/bad/strings.npy", "must be numbers"),
    ("search {w}/index --vector {w}/bad/pickled.npy", "pickled.npy"),
    ("search {w}/index --vector {w}/bad/vectors_nan.npy", "NaN"),
    ("search {w}/index --vector {w}/bad/vectors_wrong_dim.npy", "dimension 16"),
    ("search {w}/index --vector {w}/bad/vectors_3d.npy", "dimension 16"),
    ("search {w}/index --vector {w}/bad/no_samples.npy", "no query vectors"),
    ("search {w}/index --vector {w}/bad/vectors.npy -k 0", "-k"),
    ("search {w}/indexes/faiss_cut --vector {w}/bad/vectors.npy", "index.faiss is truncated"),
    ("search {w}/indexes/current_traversal --vector {w}/bad/vectors.npy", "not a version"),
    ("search {w}/missing --vector {w}/bad/vectors.npy", "not a tripletnet index"),
    # serve (every case fails before the server starts)
    ("serve {w}/run --index {w}/indexes/faiss_cut", "index.faiss is truncated"),
    ("serve {w}/run --index {w}/indexes/log_last_damaged", "changes.log is damaged at line 2"),
    ("serve {w}/run --index {w}/missing", "not a tripletnet index"),
    ("serve {w}/missing --index {w}/index", "not a finished"),
    ("serve {w}/run --index {w}/index --allowed-host search.example.com:443", "without a port"),
    ("serve {w}/run --index {w}/index --allowed-host http://search.example.com", "without a port"),
    ("serve {w}/run --index {w}/index --milvus-token-file {w}/missing", "does not exist"),
    ("serve {w}/runs/model_cut --index {w}/index", "model.safetensors"),
    ("serve {w}/run --index {w}/other_index", "does not match"),
    ("serve {w}/run --index {w}/index --port 70000", "--port"),
    ("serve {w}/run --index {w}/index --max-k 0", "--max-k"),
    ("serve {w}/run --index {w}/index --max-upload-mb 0", "--max-upload-mb"),
    ("serve {w}/run --index {w}/index --host 0.0.0.0", "refusing to listen on 0.0.0.0"),
    ("serve {w}/run --index {w}/index --host example.org", "without a token"),
    ("serve {w}/run --index {w}/index --protect-reads", "--protect-reads needs a token"),
    ("serve {w}/run --index {w}/index --token-file {w}/bad/notes.txt", "must hold one token"),
    ("serve {w}/run --index {w}/index --token-file {w}/missing", "does not exist"),
    ("serve {w}/run --index {w}/index --token-file {w}/bad/empty_dir", "is a directory"),
    ("serve {w}/run --index {w}/index --workers 0", "--workers"),
    # serve --onnx (an export of the run, served with onnxruntime)
    ("serve --onnx {w}/exports/missing.onnx --index {w}/index", "does not exist"),
    ("serve --onnx {w}/exports/truncated.onnx --index {w}/index", "not a readable ONNX model"),
    ("serve --onnx {w}/exports/text.onnx --index {w}/index", "not a readable ONNX model"),
    ("serve --onnx {w}/bad/samples.npy --index {w}/index", "not a readable ONNX model"),
    ("serve --onnx {w}/exports/plain.onnx --index {w}/index", "no tripletnet metadata"),
    ("serve --onnx {w}/exports/run.pt --index {w}/index", "is a TorchScript file"),
    ("serve --onnx {w}/exports/other_run.onnx --index {w}/index", "does not match"),
    ("serve --onnx {w}/exports --index {w}/index", "is a directory"),
    ("serve --onnx {w}/exports/run.onnx --index {w}/missing", "not a tripletnet index"),
    ("serve {w}/run --onnx {w}/exports/run.onnx --index {w}/index", "exactly one of RUN_DIR"),
    ("serve --index {w}/index", "exactly one of RUN_DIR or --onnx"),
    # export
    ("export {w}/missing --out {out}", "not a finished tripletnet run"),
    ("export {w}/runs/unfinished --out {out}", "--resume it"),
    ("export {w}/runs/model_cut --out {out}", "model.safetensors"),
    ("export {w}/runs/config_corrupt --out {out}", "config.json"),
    ("export {w}/run --format tflite --out {out}", "tflite"),
    ("export {w}/run --out {w}/exports/run.onnx", "already exists; pass --overwrite"),
    ("export {w}/run --format torchscript --out {w}/exports/run.pt", "already exists"),
    ("export {w}/run --out {w}/bad/empty_dir", "is a directory"),
    ("export {w}/run --out {out} --opset 99", "--opset"),
    ("export {w}/run --out {out} --opset 8", "--opset"),
    ("export {w}/run --out {out} --opset twelve", "--opset"),
    ("export {w}/run --format torchscript --opset 13 --out {out}", "--opset applies to"),
    ("export {w}/run", "--out"),
    ("nonsense", "No such command"),
    # a run folder whose spec names code (os:system) runs none without --trust-model-code
    ("evaluate {w}/runs/code", "factory 'system' of module 'os'"),
    ("embed {w}/runs/code --out {out}", "pass --trust-model-code"),
    ("embed {w}/runs/code_args --out {out}", "factory_args must be a JSON object"),
    ("embed {w}/runs/code_args --out {out} --trust-model-code", "factory_args must be a JSON"),
    (
        "verify {w}/runs/code --first {w}/bad/samples.npy --second {w}/bad/samples.npy --threshold 1",
        "TRIPLETNET_TRUST_MODEL_CODE=1",
    ),
    ("compare {w}/runs/code {w}/run", "per_query.npz"),  # reads no net at all
    ("index build {w}/runs/code --dataset digits --out {out}", "--trust-model-code"),
    ("search {w}/index --image {w}/bad/bomb.png --run {w}/runs/code", "--trust-model-code"),
    ("serve {w}/runs/code --index {w}/index", "--trust-model-code"),
    ("export {w}/runs/code --out {out}", "--trust-model-code"),
    ("robustness {w}/runs/code --out {out}", "--trust-model-code"),
    ("robustness {w}/run --baseline {w}/runs/code --out {out}", "--trust-model-code"),
    ("train --model mlp --init {w}/runs/code", "--trust-model-code"),
    ("pretrain --init {w}/runs/code", "--trust-model-code"),
    # your own --model whose code raises: one line naming it and the exception
    ("train --model nets_raising_at_import:build", "raised RuntimeError: this module refuses"),
    ("train --model nets_raising:build", "nets_raising:build failed: calling it raised ValueError"),
    # robustness (issue 16): the defences in train, then the command
    ("train --adversarial cw", "cw"),
    ("train --eps 2", "--eps"),
    ("train --eps nan", "--eps"),
    ("train --adversarial-steps 0", "--adversarial-steps"),
    ("train --adversarial-weight 0", "--adversarial-weight"),
    ("train --adversarial-weight 1.5", "--adversarial-weight"),
    ("train --augmix", "--augment-corruptions"),
    ("robustness {w}/missing", "missing"),
    ("robustness {w}/bad/empty_dir", "not a finished tripletnet run"),
    ("robustness {w}/runs/model_cut", "model.safetensors"),
    ("robustness {w}/run --eps a,b", "--eps"),
    ("robustness {w}/run --eps nan --out {out}", "--eps"),
    ("robustness {w}/run --eps=-0.1 --out {out}", "--eps"),
    ("robustness {w}/run --norm l3", "l3"),
    ("robustness {w}/run --skip everything", "--skip"),
    ("robustness {w}/run --corruptions frost --out {out}", "frost"),
    ("robustness {w}/run -k 0", "-k"),
    ("robustness {w}/run -k 100000 --out {out}", "-k 100000"),
    ("robustness {w}/run --queries 1", "--queries"),
    ("robustness {w}/run --pgd-steps 0", "--pgd-steps"),
    ("robustness {w}/run --stability-queries 0", "--stability-queries"),
    ("robustness {w}/run --attack-queries 0", "--attack-queries"),
    ("robustness {w}/run --gallery 1", "--gallery"),
    ("robustness {w}/run --baseline {w}/bad/empty_dir --out {out}", "not a finished"),
    ("robustness {w}/run --device tpu --out {out}", "tpu"),
]


@pytest.fixture
def checked_world(world: Path) -> Iterator[Path]:
    """The world, with a run copy that --resume cases may point at, checked unchanged after."""
    unfinished = world / "unfinished_copy"
    if not unfinished.exists():
        shutil.copytree(world / "run", unfinished)
    before = _snapshot(world)
    yield world
    assert _snapshot(world) == before, "a refused command changed files"


@pytest.mark.parametrize(("command", "words"), CATALOGUE, ids=[c for c, _ in CATALOGUE])
def test_bad_input_is_one_error_line_and_exit_2(
    checked_world: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    words: str,
) -> None:
    if "--backend milvus --uri" in command and not HAS_MILVUS:
        pytest.skip('the milvus cases need pip install "tripletnet[milvus]"')
    out = tmp_path / "out"
    args = command.replace("{w}", str(checked_world)).replace("{out}", str(out)).split()
    if "--no-progress" not in args and args[0] in ("train", "pretrain"):
        args.append("--no-progress")
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {captured.err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert words in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists(), "partial output left behind"


def _command_names(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            names += _command_names(command, f"{prefix}{name} ")
        else:
            names.append(prefix + name)
    return names


def test_every_command_is_in_the_catalogue() -> None:
    covered = {" ".join(c.split()[:2]) for c, _ in CATALOGUE} | {c.split()[0] for c, _ in CATALOGUE}
    missing = [name for name in _command_names(cli) if name not in covered]
    assert not missing, f"add bad-input cases for: {missing}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: CUDA is not available") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_warning_when_inputs_are_on_another_scale(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Digits are 0..16; the same samples scaled to 0..1 embed, with a warning that says so."""
    samples = np.load(world / "bad" / "samples.npy")
    np.save(tmp_path / "scaled.npy", samples / 16)
    assert main(["embed", str(world / "run"), "--input", str(tmp_path / "scaled.npy"),
                 "--out", str(tmp_path / "e.npy")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning:" in err and "trained on values from 0 to 16" in err
    assert main(["embed", str(world / "run"), "--input", str(world / "bad" / "samples.npy"),
                 "--out", str(tmp_path / "f.npy")]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
