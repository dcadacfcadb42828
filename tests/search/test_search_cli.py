"""The index and search commands, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from search_images import digit_png

from tripletnet.cli import main
from tripletnet.search import SearchIndex


def test_build_info_search_and_remove(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index"
    assert main(["index", "build", str(run_dir), "--dataset", "digits", "--out", str(out)]) == 0
    assert "indexed 450 items (exact, dim 16)" in capsys.readouterr().out
    assert main(["index", "info", str(out)]) == 0
    assert "450 items, dim 16" in capsys.readouterr().out

    image = tmp_path / "query.png"
    image.write_bytes(digit_png(3))
    assert main(["search", str(out), "--image", str(image), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].split()[:2] == ["1", "3"]  # itself, first

    index = SearchIndex.load(out)
    vector = tmp_path / "v.npy"
    np.save(vector, index._faiss.index.reconstruct(5))
    assert main(["search", str(out), "--vector", str(vector), "-k", "2"]) == 0
    first = capsys.readouterr().out.splitlines()[1].split()
    assert first[:3] == ["1", "5", "0.0000"] and first[4] == "digits:test:5"

    assert main(["index", "remove", str(out), "5", "6"]) == 0
    assert "removed 2 of 2 ids; 448 items left" in capsys.readouterr().out
    assert main(["search", str(out), "--vector", str(vector), "-k", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1] != "5"


def test_build_from_an_image_folder_and_from_vectors(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for row in range(6):
        folder = tmp_path / "images" / ("odd" if row % 2 else "even")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{row}.png").write_bytes(digit_png(row))
    out = tmp_path / "from-images"
    assert main(["index", "build", str(run_dir), "--images", str(tmp_path / "images"), "--out", str(out), "--kind", "hnsw"]) == 0  # fmt: skip
    index = SearchIndex.load(out)
    assert index.class_names == ["even", "odd"] and index.item(0).source == "even/0.png"
    assert index.thumbnails[0].shape == (8, 8, 1)

    vectors, labels = tmp_path / "e.npy", tmp_path / "y.npy"
    np.save(vectors, np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32))
    np.save(labels, np.arange(30) % 3)
    out = tmp_path / "from-vectors"
    assert main(["index", "build", str(run_dir), "--vectors", str(vectors), "--labels", str(labels), "--out", str(out)]) == 0  # fmt: skip
    assert SearchIndex.load(out).item(4).label == 1


def test_user_errors_end_in_one_line_and_exit_code_2(
    run_dir: Path, other_run_dir: Path, index_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def error_of(*argv: str) -> str:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
        return err

    assert "exactly one of" in error_of(
        "index", "build", str(run_dir), "--out", str(tmp_path / "x")
    )
    assert "--overwrite" in error_of("index", "build", str(run_dir), "--dataset", "digits", "--out", str(index_dir))  # fmt: skip
    image = tmp_path / "q.png"
    image.write_bytes(digit_png(0))
    mismatch = error_of(
        "search", str(index_dir), "--image", str(image), "--run", str(other_run_dir)
    )
    assert "does not match the index" in mismatch
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.zeros(5, np.float32))
    assert "dimension 16" in error_of("search", str(index_dir), "--vector", str(wrong))
    not_image = tmp_path / "n.png"
    not_image.write_text("hello")
    assert "not a readable image" in error_of("search", str(index_dir), "--image", str(not_image))
    assert "not a tripletnet index" in error_of("index", "info", str(tmp_path))


def test_a_failed_overwrite_keeps_the_old_index(
    run_dir: Path, index_dir: Path, tmp_path: Path
) -> None:
    before = len(SearchIndex.load(index_dir).items)
    missing_run = tmp_path / "no-such-run"
    argv = ["index", "build", str(missing_run), "--dataset", "digits", "--out", str(index_dir)]
    assert main([*argv, "--overwrite"]) == 2
    assert len(SearchIndex.load(index_dir).items) == before


def test_search_filters_by_label_and_metadata(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tripletnet.search import SearchIndex

    index = SearchIndex.load(index_dir)
    query = tmp_path / "q.npy"
    np.save(query, np.zeros(index.dim, dtype=np.float32))
    index.add(
        np.zeros((2, index.dim), np.float32),
        labels=[4, 4],
        metadata=[{"shop": "lyon"}, {"shop": "oslo"}],
    )
    index.save(index_dir)
    assert (
        main(
            [
                "search",
                str(index_dir),
                "--vector",
                str(query),
                "--label",
                "4",
                "--where",
                "shop=oslo",
            ]
        )
        == 0
    )
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 1 and rows[0].split()[1] == "451"
    assert (
        main(["search", str(index_dir), "--vector", str(query), "-k", "100", "--label", "2"]) == 0
    )
    labels = {line.split()[3] for line in capsys.readouterr().out.splitlines()[1:]}
    assert labels == {"2"}


def test_search_json_is_one_document_for_scripts(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = SearchIndex.load(index_dir)
    vector = tmp_path / "v.npy"
    np.save(vector, index._faiss.index.reconstruct(5))
    assert main(["search", str(index_dir), "--vector", str(vector), "-k", "3", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["query"] == {"vector": str(vector), "k": 3, "labels": None, "where": None}
    [results] = document["results"]
    assert [hit["rank"] for hit in results] == [1, 2, 3]
    first = results[0]
    assert first["id"] == 5 and first["distance"] == pytest.approx(0, abs=1e-4)
    assert set(first) == {"rank", "id", "distance", "label", "label_name", "metadata", "source"}
    assert first["label"] == index.item(5).label and first["source"] == "digits:test:5"


def test_search_into_a_closed_pipe_ends_quietly(index_dir: Path, tmp_path: Path) -> None:
    """The README's `tripletnet search ... | head -1`: no traceback, no 'Exception ignored'."""
    index = SearchIndex.load(index_dir)
    vectors = tmp_path / "many.npy"
    np.save(vectors, np.stack([index._faiss.index.reconstruct(i) for i in range(200)]))
    command = [sys.executable, "-m", "tripletnet", "search", str(index_dir), "--vector",
               str(vectors), "-k", "50"]  # fmt: skip
    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=search.stdout, capture_output=True, timeout=120)
    assert search.stdout is not None and search.stderr is not None
    search.stdout.close()  # head holds the only reading end: it closes when head exits
    err = search.stderr.read().decode()
    assert search.wait(timeout=120) in (0, 141)
    assert head.stdout.decode().startswith("query 0")
    assert err == "", err
