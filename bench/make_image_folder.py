"""Write MNIST as image files, from the official idx files, for the folder and CSV sources.

    python bench/make_image_folder.py --data-dir ../shared/data/mnist --out /tmp/mnist-folder
    python bench/make_image_folder.py --data-dir ../shared/data/mnist --no-png \\
        --jpeg96 20000 --jpeg-out /tmp/jpeg96

PNG folder: ``OUT/train/<digit>/<n>.png`` (60,000) and ``OUT/test/<digit>/<n>.png`` (10,000), n
the image's index in its official file, and ``OUT/mnist.csv`` (path,label,split) in the official
order, so the CSV source reads the official split. ``--jpeg96 N``: the first N training digits
upscaled to 96 x 96 (bilinear), tinted with a random colour each, as RGB JPEGs (quality 90) in
``JPEG_OUT/<digit>/<n>.jpg``, for the streaming benchmark (bench/loader.py).
"""

from __future__ import annotations

import argparse
import csv
import time
from multiprocessing import Pool
from multiprocessing.pool import Pool as PoolType
from pathlib import Path

import numpy as np
from PIL import Image

from tripletnet.data.mnist import load_idx_dataset

Job = tuple[str, Path, np.ndarray, np.ndarray, np.ndarray]  # kind, folder, images, labels, indices


def write_chunk(job: Job) -> int:
    """Write one chunk of images as ``root/<label>/<index>.png`` (or .jpg); returns the count."""
    kind, root, images, labels, indices = job
    rng = np.random.default_rng(int(indices[0]) if len(indices) else 0)
    for image, label, index in zip(images, labels, indices, strict=True):
        folder = root / str(label)
        if kind == "png":
            Image.fromarray(image).save(folder / f"{index:05d}.png")
        else:
            big = Image.fromarray(image).resize((96, 96), Image.Resampling.BILINEAR)
            tint = rng.uniform(0.3, 1.0, 3)
            rgb = (np.asarray(big, np.float32)[..., None] * tint).astype(np.uint8)
            Image.fromarray(rgb, "RGB").save(folder / f"{index:05d}.jpg", quality=90)
    return len(images)


def write_all(
    kind: str, root: Path, images: np.ndarray, labels: np.ndarray, pool: PoolType
) -> None:
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
    indices = np.arange(len(images))
    chunks = np.array_split(indices, max(1, len(indices) // 2000))
    jobs: list[Job] = [(kind, root, images[c], labels[c], c) for c in chunks]
    print(f"{kind}: {sum(pool.imap_unordered(write_chunk, jobs)):,} files in {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with the idx .gz")
    parser.add_argument("--out", type=Path, default=Path("/tmp/mnist-folder"))
    parser.add_argument("--no-png", action="store_true", help="skip the 70,000-PNG folder")
    parser.add_argument("--jpeg96", type=int, default=0, metavar="N", help="also write N JPEGs")
    parser.add_argument("--jpeg-out", type=Path, default=Path("/tmp/jpeg96"))
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    data = load_idx_dataset("mnist", args.data_dir)  # checks the md5s
    start = time.perf_counter()
    with Pool(args.processes) as pool:
        if not args.no_png:
            args.out.mkdir(parents=True, exist_ok=True)
            with open(args.out / "mnist.csv", "w", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["path", "label", "split"])
                for split, part in (("train", data.train), ("test", data.test)):
                    out.writerows(
                        [f"{split}/{label}/{n:05d}.png", label, split]
                        for n, label in enumerate(part.y.tolist())
                    )
                    write_all("png", args.out / split, part.x[:, 0], part.y, pool)
        if args.jpeg96:
            rows = np.arange(args.jpeg96) % len(data.train)
            images, labels = data.train.x[rows, 0], data.train.y[rows]
            write_all("jpeg", args.jpeg_out, images, labels, pool)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
