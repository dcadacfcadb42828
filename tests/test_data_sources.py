"""Folder, CSV and npz sources and lazy image files, on small files the tests write."""

from __future__ import annotations

import copy
import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tripletnet.data import (
    ImageFiles,
    ImageFilesDataset,
    ImageSizeError,
    Normalizer,
    SourceOptions,
    UnreadableImageError,
    image_loader,
    load_dataset,
    open_image,
    to_array,
)
from tripletnet.data import image_files as image_files_module
from tripletnet.errors import DataFileError, TripletnetError


def write_image(path: Path, size: tuple[int, int] = (8, 6), mode: str = "L", seed: int = 0) -> Path:
    """A random image of ``size`` (W, H) in ``mode``, format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3}[mode]
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(path)
    return path


def make_folder(root: Path, counts: dict[str, int], mode: str = "L", suffix: str = ".png") -> Path:
    for label, count in counts.items():
        for k in range(count):
            write_image(root / label / f"{k:03d}{suffix}", mode=mode, seed=k)
    return root


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` pixels (10^10 by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


# -- decoding ---------------------------------------------------------------------------


def test_open_image_names_the_file_for_corrupt_truncated_and_non_images(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", size=(64, 64))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    assert open_image(good).size == (64, 64)
    for bad in (truncated, corrupt, text, tmp_path / "missing.png"):
        with pytest.raises(UnreadableImageError, match=bad.name):
            open_image(bad)


@pytest.mark.parametrize("pillow_limit", [None, 10**12])
def test_bomb_is_refused_whatever_pillows_limit(
    monkeypatch: pytest.MonkeyPatch, pillow_limit: int | None
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with pytest.raises(UnreadableImageError, match="too large"):
        open_image(bomb_png(), "bomb.png")
    with pytest.raises(UnreadableImageError, match="too large"):
        open_image(bomb_png(7000, 7000), "bomb.png")  # 49 M: over ours, under Pillow's


def test_to_array_resizes_the_shorter_side_and_centre_crops() -> None:
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[:, 5:15] = 255  # only the centre square is white
    image = Image.fromarray(pixels)
    out = to_array(image, 1, 5)
    assert out.shape == (1, 5, 5) and out.dtype == np.uint8
    assert out[..., 1:4].min() == 255 and out.min() > 200  # edges blend a little (antialiasing)
    rgb = to_array(image, 3, None)
    assert rgb.shape == (3, 10, 20)
    np.testing.assert_array_equal(rgb[1], pixels)


# -- the folder source ------------------------------------------------------------------


def test_folder_source_labels_by_first_level_folder(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos", {"cat": 4, "dog": 4})
    write_image(root / "dog" / "nested" / "deeper" / "x.jpg")  # nested, another format
    (root / "cat" / "readme.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    data = load_dataset(str(root), options=SourceOptions(split="stratified:0.25"))
    assert data.class_names == ["cat", "dog"] and data.num_classes == 2
    assert isinstance(data.train.x, ImageFiles)
    assert len(data.train) + len(data.test) == 9
    assert data.input_shape == (1, 6, 8)
    assert not data.open_set and data.query is None
    for path, label in zip(data.train.x.paths, data.train.y, strict=True):
        assert path.relative_to(root).parts[0] == data.class_names[label]
    sample = data.train.x[0]
    assert sample.shape == (1, 6, 8) and sample.dtype == np.uint8


def test_folder_channels_three_when_any_probed_image_is_colour(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": 3, "b": 3})
    write_image(root / "b" / "colour.jpg", mode="RGB")
    data = load_dataset(str(root), options=SourceOptions(image_size=4))
    assert data.input_shape == (3, 4, 4)
    assert data.train.x[0].shape == (3, 4, 4)


def test_constructing_a_thousand_file_source_decodes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "many"
    blob = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(blob, format="PNG")
    for k in range(1000):
        folder = root / f"c{k % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k}.png").write_bytes(blob.getvalue())
    decoded: list[str] = []

    def counting_open(source: object, name: str | None = None) -> Image.Image:
        decoded.append(str(source))
        return open_image(source, name)  # type: ignore[arg-type]

    monkeypatch.setattr(image_files_module, "open_image", counting_open)
    data = load_dataset(str(root), options=SourceOptions(image_size=4))
    assert decoded == [] and len(data.train) + len(data.test) == 1000
    data.train.x[[3, 5]]
    assert len(decoded) == 2
    normalizer = Normalizer.fit_images(data.train.x, max_samples=40)
    assert len(decoded) == 2 + 40
    assert normalizer.mean == 0.0 and normalizer.std == 1.0


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a": 2, "empty": 0}, "class folder .*empty holds no images"),
        ({"a": 2, "lonely": 1}, "class 'lonely' has only one image.*a triplet needs two"),
        ({}, "has no class subfolders"),
    ],
)
def test_folder_errors(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    root = make_folder(tmp_path / "data", layout)
    for label in layout:
        (root / label).mkdir(parents=True, exist_ok=True)
    root.mkdir(exist_ok=True)
    with pytest.raises(DataFileError, match=message):
        load_dataset(str(root))


def test_images_of_different_sizes_need_image_size(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": 2, "b": 2})
    odd = write_image(root / "b" / "wide.png", size=(12, 6))
    with pytest.raises(ImageSizeError, match=r"wide\.png.*--image-size"):
        load_dataset(str(root))
    assert load_dataset(str(root), options=SourceOptions(image_size=5)).input_shape == (1, 5, 5)
    # beyond the probed headers, the check happens when a file is decoded
    files = ImageFiles([root / "a" / "000.png", odd], 1, None)
    assert files.shape == (2, 1, 6, 8)
    with pytest.raises(ImageSizeError, match=r"wide\.png is 12x6 pixels"):
        files[1]


def test_folder_with_split_subfolders_keeps_its_split(tmp_path: Path) -> None:
    make_folder(tmp_path / "d" / "train", {"0": 3, "1": 3})
    make_folder(tmp_path / "d" / "test", {"0": 2, "1": 2})
    data = load_dataset(str(tmp_path / "d"))
    assert (len(data.train), len(data.test)) == (6, 4)
    assert all("train" in p.parts for p in data.train.x.paths)


# -- lazy image files -------------------------------------------------------------------


def test_image_files_index_like_an_array_and_skip_bad_files(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{k}.png", seed=k) for k in range(4)]
    paths[2].write_bytes(b"broken")
    files = ImageFiles(paths, 1, None)
    assert files.shape == (4, 1, 6, 8) and files.ndim == 4 and files.dtype == np.uint8
    np.testing.assert_array_equal(files[-1], files.read(3))
    assert files[0:2].shape == (2, 1, 6, 8) and files[np.array([3, 0])].shape == (2, 1, 6, 8)
    assert files.try_read(2) is None
    with pytest.raises(UnreadableImageError, match="2.png"):
        files[[1, 2]]
    subset = files.subset([3, 1])
    assert subset.paths == [paths[3], paths[1]]
    clone = copy.deepcopy(files)  # through __getstate__, as to a DataLoader worker
    np.testing.assert_array_equal(clone[1], files[1])
    assert len(pickle.dumps(files)) < 600 + 100 * len(files)  # paths only, no pixels

    dataset = ImageFilesDataset(files, np.arange(4))
    image, index, ok = dataset[2]
    assert (index, ok) == (2, False) and image.dtype == torch.uint8 and not image.any()
    assert dataset[1][2] is True
    with pytest.raises(UnreadableImageError, match="2.png"):
        ImageFilesDataset(files, strict=True)[2]


def test_image_loader_decodes_in_worker_processes(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{k}.jpg", mode="RGB", seed=k) for k in range(10)]
    batches = list(image_loader(ImageFiles(paths, 3, 4), batch_size=4, workers=2))
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (10, 3, 4, 4) and images.dtype == torch.uint8
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(10))
    assert torch.cat([b[2] for b in batches]).all()


def test_normaliser_on_image_files_matches_the_array_fit(tmp_path: Path) -> None:
    files = ImageFiles([write_image(tmp_path / f"{k}.png", seed=k) for k in range(5)], 1, None)
    exact = Normalizer.fit(files[:])
    fitted = Normalizer.fit_images(files)
    assert fitted.mean == pytest.approx(exact.mean) and fitted.std == pytest.approx(exact.std)
    assert (fitted.low, fitted.high) == (exact.low, exact.high)
    # a sample of the rows: the same rows as the array fit draws, so the same numbers
    sampled = Normalizer.fit(files[:], max_samples=3, seed=4)
    assert Normalizer.fit_images(files, max_samples=3, seed=4).mean == pytest.approx(sampled.mean)


# -- the CSV source -----------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_csv_source_with_labels_sorted_by_value_and_a_split_column(tmp_path: Path) -> None:
    for k in range(8):
        write_image(tmp_path / "img" / f"{k}.png", seed=k)
    rows = ["path,label,split"]
    labels = ["10", "10", "2", "2", "10", "2", "10", "2"]
    splits = ["train", "train", "train", "train", "query", "query", "gallery", "gallery"]
    rows += [f"img/{k}.png,{labels[k]},{splits[k]}" for k in range(8)]
    data = load_dataset(str(write_csv(tmp_path / "list.csv", "\n".join(rows) + "\n")))
    assert data.class_names == ["2", "10"]  # integer labels sort by value
    assert data.train.y.tolist() == [1, 1, 0, 0]
    assert data.query is not None and data.gallery is not None
    assert data.test is data.query and data.query.y.tolist() == [1, 0]
    assert data.gallery.x.paths == [(tmp_path / "img" / f"{k}.png") for k in (6, 7)]
    assert not data.open_set


def test_csv_absolute_path_inside_its_folder_is_accepted(tmp_path: Path) -> None:
    images = [write_image(tmp_path / f"{k}.png", seed=k) for k in range(4)]
    text = "path,label\n" + "".join(f"{p},{'ab'[k % 2]}\n" for k, p in enumerate(images))
    data = load_dataset(str(write_csv(tmp_path / "l.csv", text)), options=SourceOptions())
    assert len(data.train) + len(data.test) == 4 and data.class_names == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\n../outside.png,a\n", r"line 2 of .*'\.\./outside\.png' points outside"),
        ("path,label\n/etc/passwd,a\n", "line 2 .* points outside the CSV's folder"),
        ("path,class\nimg/0.png,a\n", "no 'label' column"),
        ("file,label\nimg/0.png,a\n", "no 'path' column"),
        ("", "is empty"),
        ("path,label\n", "has a header but no rows"),
        ("path,label\nimg/0.png,a\nimg/9.png,a\n", r"line 3 .*'img/9\.png' does not exist"),
        ("path,label,split\nimg/0.png,a,train\nimg/1.png,a,val\n", "line 3 .*unknown split 'val'"),
        ("path,label\nimg/0.png,a\nimg/1.png,a\nimg/2.png,b\n", "class 'b' has only one"),
        (
            "path,label\nimg/0.png,a\nimg/1.png,New York, NY\n",
            r"line 3 .*too many fields \(3, expected 2: path,label\).*quote that field",
        ),
        ("path,label,split\nimg/0.png,a,train,x\n", r"too many fields \(4, expected 3"),
    ],
)
def test_bad_csvs_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    for k in range(3):
        write_image(tmp_path / "data" / "img" / f"{k}.png", seed=k)
    with pytest.raises(DataFileError, match=message):
        load_dataset(str(write_csv(tmp_path / "data" / "list.csv", text)))


def test_csv_trailing_empty_fields_and_quoted_commas_are_read(tmp_path: Path) -> None:
    for k in range(4):
        write_image(tmp_path / "img" / f"{k}.png", seed=k)
    text = 'path,label\nimg/0.png,"a, b",\nimg/1.png,"a, b",\nimg/2.png,c\nimg/3.png,c\n'
    data = load_dataset(str(write_csv(tmp_path / "list.csv", text)))
    assert data.class_names == ["a, b", "c"]


def test_csv_path_through_a_link_must_stay_in_its_folder(tmp_path: Path) -> None:
    outside = write_image(tmp_path / "elsewhere" / "x.png")
    folder = tmp_path / "data"
    for k in range(3):
        write_image(folder / "img" / f"{k}.png", seed=k)
    (folder / "out.png").symlink_to(outside)
    (folder / "linked").symlink_to(outside.parent, target_is_directory=True)
    (folder / "alias.png").symlink_to(folder / "img" / "2.png")  # a link inside: fine
    rows = "img/0.png,a\nimg/1.png,a\nalias.png,b\nimg/2.png,b\n"
    for bad in ("out.png", "linked/x.png"):
        csv = write_csv(folder / "list.csv", f"path,label\n{rows}{bad},b\n")
        with pytest.raises(DataFileError, match=r"line 6 .*symbolic link to .*x\.png, outside"):
            load_dataset(str(csv))
    data = load_dataset(str(write_csv(folder / "list.csv", f"path,label\n{rows}")))
    assert len(data.train) + len(data.test) == 4


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("..", "holds .*data itself: every image of every class would also be in class 'b'"),
        (".", "holds .*data itself"),
        ("a", "class folders .*a and .*b are the same folder"),
        ("a/sub", "class folder .*b is a link to .*sub, inside class folder .*a: its images"),
    ],
)
def test_a_class_folder_linked_to_the_root_or_another_class_is_refused(
    tmp_path: Path, target: str, message: str
) -> None:
    root = make_folder(tmp_path / "data", {"a": 2, "c": 2})
    write_image(root / "a" / "sub" / "x.png")
    (root / "b").symlink_to(target, target_is_directory=True)
    with pytest.raises(DataFileError, match=message):
        load_dataset(str(root))


def test_links_to_class_folders_elsewhere_are_followed_and_loops_below_are_not(
    tmp_path: Path,
) -> None:
    make_folder(tmp_path / "elsewhere", {"b": 2})
    root = make_folder(tmp_path / "data", {"a": 2})
    (root / "b").symlink_to(tmp_path / "elsewhere" / "b", target_is_directory=True)
    (root / "a" / "loop").symlink_to("..", target_is_directory=True)  # not walked into
    data = load_dataset(str(root))
    assert data.class_names == ["a", "b"] and len(data.train) + len(data.test) == 4


# -- the npz source -----------------------------------------------------------------------


def test_npz_features_and_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float64)
    y = np.array(["b", "a", "c"] * 4)
    np.savez(tmp_path / "f.npz", x=x, y=y)
    data = load_dataset(str(tmp_path / "f.npz"))
    assert data.class_names == ["a", "b", "c"] and data.input_shape == (5,)
    assert data.train.x.dtype == np.float32 and len(data.train) + len(data.test) == 12
    images = rng.integers(0, 256, (6, 1, 4, 4), dtype=np.uint8)
    split = np.array(["train"] * 4 + ["test"] * 2)
    np.savez(tmp_path / "i.npz", x=images, y=np.array([0, 1, 0, 1, 0, 1]), split=split)
    data = load_dataset(str(tmp_path / "i.npz"))
    np.testing.assert_array_equal(data.test.x, images[4:])
    assert data.train.x.dtype == np.uint8 and data.input_shape == (1, 4, 4)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 2))}, "no array y"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, "x has 4 rows but y has 3"),
        ({"x": np.array([[1.0, np.nan]] * 4), "y": np.zeros(4, int)}, "non-finite"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4, int), "split": np.array(["a"] * 4)}, "split"),
        ({"x": np.zeros((4, 2, 2)), "y": np.zeros(4, int)}, r"x has shape \(4, 2, 2\)"),
    ],
)
def test_bad_npz_files(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataFileError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_npz_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    objects = np.empty(4, dtype=object)
    objects[:] = [{"a": 1}] * 4
    np.savez(tmp_path / "evil.npz", x=np.zeros((4, 2)), y=objects)
    with pytest.raises(DataFileError, match="Python objects"):
        load_dataset(str(tmp_path / "evil.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFileError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))


def test_image_size_is_refused_for_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", x=np.zeros((4, 3)), y=np.array([0, 0, 1, 1]))
    with pytest.raises(TripletnetError, match="--image-size 8 resizes image files"):
        load_dataset(str(tmp_path / "f.npz"), options=SourceOptions(image_size=8))
    with pytest.raises(TripletnetError, match="--image-size"):
        load_dataset("digits", options=SourceOptions(image_size=32))


def test_unknown_names_list_the_built_in_datasets(tmp_path: Path) -> None:
    with pytest.raises(TripletnetError, match="not a built-in dataset.*digits, mnist"):
        load_dataset(str(tmp_path / "nowhere"))
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(TripletnetError, match=r"x\.txt is a file, but not a \.csv or \.npz"):
        load_dataset(str(tmp_path / "x.txt"))
    with pytest.raises(TripletnetError, match="--image-size must be at least 1"):
        SourceOptions(image_size=0)


def test_a_relative_path_may_be_found_under_data_dir(tmp_path: Path) -> None:
    make_folder(tmp_path / "photos", {"a": 2, "b": 2})
    assert load_dataset("photos", data_dir=tmp_path).class_names == ["a", "b"]
