"""The image loader alone: ImageFilesDataset + DataLoader decoding a folder, no model.

    python bench/loader.py /tmp/jpeg96 --workers 2          # 10,000 then 100,000 images

Each count runs in a fresh process (peak RSS is a lifetime figure): the folder's image files,
repeated in order up to the count, are decoded by ``--workers`` DataLoader processes in batches
of 256 (pinned memory off: CPU). It prints images/s (from the first batch to the last) and the
peak resident memory of the main process and of the largest worker (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from tripletnet.data import SourceOptions, image_loader
from tripletnet.data.folder import images_below
from tripletnet.data.sources import image_files


def measure(folder: Path, count: int, workers: int, batch_size: int, size: int | None) -> dict:
    found = images_below(str(folder))
    paths = [found[i % len(found)] for i in range(count)]
    files = image_files(paths, SourceOptions(image_size=size), str(folder))
    seen, bad, start = 0, 0, 0.0
    for images, _, ok in image_loader(files, batch_size=batch_size, workers=workers):
        start = start or time.perf_counter()  # worker start-up is not decoding
        seen += len(images)
        bad += int((~ok).sum())
    seconds = time.perf_counter() - start
    return {
        "images": seen,
        "unreadable": bad,
        "shape": list(files.shape[1:]),
        "images_per_s": round((seen - batch_size) / seconds),
        "main_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        options = (args.workers, args.batch_size, args.image_size)
        print(json.dumps(measure(args.folder, args.images[0], *options)))
        return
    for count in args.images:
        command = [sys.executable, __file__, str(args.folder), "--one", "--images", str(count)]
        command += ["--workers", str(args.workers), "--batch-size", str(args.batch_size)]
        if args.image_size:
            command += ["--image-size", str(args.image_size)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        print(json.dumps(json.loads(result.stdout.splitlines()[-1])))


if __name__ == "__main__":
    main()
