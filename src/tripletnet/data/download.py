"""Dataset files: where to get them, md5 checks, and atomic downloads for users who are online."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFileError
from ..files import atomic_path


@dataclass(frozen=True)
class RemoteFile:
    """One official dataset file: its name in the data folder, download URL and md5."""

    filename: str
    url: str
    md5: str


def md5_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(remote: RemoteFile, data_dir: Path) -> Path:
    """Fetch ``remote`` into ``data_dir`` (atomically) and check its md5."""
    target = data_dir / remote.filename
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(remote.url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            raise DataFileError(
                f"could not download {remote.url}: {error}. Download it by hand into {data_dir}."
            ) from error
        actual = md5_of(tmp)
        if actual != remote.md5:
            raise DataFileError(
                f"downloaded {remote.url} but its md5 is {actual}, expected {remote.md5}; "
                "the file on the server changed or the transfer was corrupted"
            )
    return target


def ensure_file(remote: RemoteFile, data_dir: Path | None, fetch: bool = False) -> Path:
    """Return the verified local path of ``remote``, downloading it first if ``fetch`` is set.

    Raises DataFileError naming the file, the expected md5 and the URL when the file is missing
    or its md5 does not match.
    """
    if data_dir is None:
        raise DataFileError(
            f"this dataset is read from files; pass --data-dir DIR with {remote.filename} in it "
            f"(get it from {remote.url}), or add --download"
        )
    data_dir = Path(data_dir)
    path = data_dir / remote.filename
    if not path.is_file():
        if fetch:
            return download(remote, data_dir)
        raise DataFileError(
            f"missing dataset file {path} (md5 {remote.md5}); download it from {remote.url} "
            "into that folder, or add --download"
        )
    actual = md5_of(path)
    if actual != remote.md5:
        raise DataFileError(
            f"{path} has md5 {actual} but the official file has {remote.md5}: it is truncated or "
            f"corrupt; delete it and download it again from {remote.url}"
        )
    return path
