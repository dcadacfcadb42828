"""Files written atomically, readable as the umask allows, and temporary files cleaned up."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tripletnet.errors import TripletnetError
from tripletnet.files import (
    load_npy,
    read_json,
    remove_stale_temporaries,
    save_npy_atomic,
    write_json_atomic,
)
from tripletnet.search.store import write_version


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    save_npy_atomic(tmp_path / "b.npy", np.zeros(3))
    assert mode(tmp_path / "a.json") == 0o644 and mode(tmp_path / "b.npy") == 0o644
    version = write_version(tmp_path / "index", {"f.txt": lambda p: p.write_text("x")})
    assert mode(version) == 0o755 and mode(version / "f.txt") == 0o644
    assert mode(tmp_path / "index" / "CURRENT") == 0o644
    os.umask(0o077)  # a private umask keeps them private
    write_json_atomic(tmp_path / "c.json", {})
    assert mode(tmp_path / "c.json") == 0o600


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / ".checkpoint.safetensors.k2j3.tmp").write_bytes(b"half")
    (tmp_path / ".CURRENT.x9.tmp").write_text("v1")
    (tmp_path / "keep.tmp").write_text("not ours")
    (tmp_path / "config.json").write_text("{}")
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "keep.tmp"]


def test_unreadable_files_are_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TripletnetError, match="cannot read .*bad.json as JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(TripletnetError, match="does not exist"):
        read_json(tmp_path / "missing.json")
    np.savez(tmp_path / "a.npz", x=np.zeros(2))
    with pytest.raises(TripletnetError, match="npz archive"):
        load_npy(tmp_path / "a.npz")
    np.save(tmp_path / "o.npy", np.array([None]), allow_pickle=True)
    with pytest.raises(TripletnetError, match="cannot read .*o.npy"):
        load_npy(tmp_path / "o.npy")
