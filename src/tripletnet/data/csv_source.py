"""A CSV list of images: header ``path,label`` and optionally ``split``; paths relative to the
CSV's folder, which no path may leave (``../x.png``, an absolute path elsewhere, or a path through
a symbolic link that resolves outside the folder is refused)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .arrays import LabelledArray
from .sources import SourceOptions, check_two_per_class, image_files, label_codes
from .splits import SPLIT_VALUES, Pool

HEADER_HELP = "the first line must name the columns path,label (and optionally split)"


def _column(header: list[str], name: str, path: Path) -> int:
    names = [cell.strip().lower() for cell in header]
    if name not in names:
        raise DataFileError(
            f"{path} has no {name!r} column (its header is: {','.join(header)}); {HEADER_HELP}"
        )
    return names.index(name)


def read_rows(path: Path) -> tuple[list[str], list[str], list[str] | None, list[int]]:
    """(resolved image paths, labels, split values or None, line numbers), every row checked."""
    base = os.path.abspath(path.parent)
    inside = base.rstrip(os.sep) + os.sep
    real_inside = os.path.realpath(base).rstrip(os.sep) + os.sep  # links followed
    paths: list[str] = []
    labels: list[str] = []
    splits: list[str] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise DataFileError(f"{path} is empty; {HEADER_HELP}, then one row per image")
            at_path, at_label = _column(header, "path", path), _column(header, "label", path)
            has_split = "split" in [cell.strip().lower() for cell in header]
            at_split = _column(header, "split", path) if has_split else -1
            width = max(at_path, at_label, at_split) + 1
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                where = f"line {reader.line_num} of {path}"
                if len(row) < width:
                    raise DataFileError(f"{where} has {len(row)} fields; {HEADER_HELP}")
                if any(cell.strip() for cell in row[len(header) :]):
                    raise DataFileError(
                        f"{where} has too many fields ({len(row)}, expected {len(header)}: "
                        f"{','.join(header)}); a comma inside a label or path cuts it in two: "
                        'quote that field, e.g. img/1.png,"New York, NY"'
                    )
                raw, label = row[at_path].strip(), row[at_label].strip()
                if not raw or not label:
                    raise DataFileError(f"{where} has an empty {'path' if not raw else 'label'}")
                full = os.path.normpath(os.path.join(base, raw))
                if not full.startswith(inside):
                    raise DataFileError(
                        f"{where}: {raw!r} points outside the CSV's folder {base}; keep the "
                        "images in that folder (or below it) and give paths relative to the CSV"
                    )
                real = os.path.realpath(full)
                if not real.startswith(real_inside):
                    raise DataFileError(
                        f"{where}: {raw!r} leads through a symbolic link to {real}, outside "
                        f"the CSV's folder {base}; copy the image into that folder (or below "
                        "it) in place of the link"
                    )
                if not os.path.isfile(full):
                    raise DataFileError(
                        f"{where}: {raw!r} does not exist (looked for {full}); paths are "
                        "relative to the CSV's folder"
                    )
                if has_split:
                    value = row[at_split].strip().lower()
                    if value not in SPLIT_VALUES:
                        raise DataFileError(
                            f"{where}: unknown split {row[at_split].strip()!r}; use "
                            f"{', '.join(SPLIT_VALUES)} (or drop the column and pass --split)"
                        )
                    splits.append(value)
                paths.append(full)
                labels.append(label)
                lines.append(reader.line_num)
    except OSError as error:
        raise DataFileError(f"cannot read {path}: {error.strerror or error}") from error
    except (csv.Error, UnicodeDecodeError) as error:
        raise DataFileError(f"{path} is not a readable UTF-8 CSV file: {error}") from error
    if not paths:
        raise DataFileError(f"{path} has a header but no rows; add one line per image: path,label")
    return paths, labels, splits if has_split else None, lines


def load_csv(path: Path, options: SourceOptions) -> Pool:
    """The CSV's images as lazy ImageFiles with labels coded in sorted order."""
    paths, labels, splits, lines = read_rows(path)
    y, class_names = label_codes(labels)
    source = str(path)
    check_two_per_class(
        y,
        class_names,
        source,
        lambda row: f"{paths[row]} (line {lines[row]} of {path})",
        unit="image",
    )
    codes = None
    if splits is not None:
        lookup = {value: code for code, value in enumerate(SPLIT_VALUES)}
        codes = np.fromiter((lookup[s] for s in splits), dtype=np.int8, count=len(splits))
    x = image_files(paths, options, source)
    return Pool(source, LabelledArray(x, y), class_names, codes)
