"""The batch commands keep freed memory for reuse (cli/memory.py); the user's settings win."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tripletnet import cli

PROBE = (
    "import os; from tripletnet.cli.memory import keep_freed_memory; "
    "print(keep_freed_memory(), os.environ.get('THP_MEM_ALLOC_ENABLE'))"
)


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_", "THP"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt, torch's THP on Linux")
def test_glibc_accepts_the_settings_and_the_users_own_win() -> None:
    if os.confstr("CS_GNU_LIBC_VERSION") is None:  # pragma: no cover - musl
        pytest.skip("not glibc")
    assert _probe() == "True 1"
    assert _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") == "False 1"
    assert _probe(MALLOC_MMAP_THRESHOLD_="65536", THP_MEM_ALLOC_ENABLE="0") == "False 0"


@pytest.mark.parametrize(
    ("argv", "kept"), [(["evaluate", "--help"], True), (["serve", "--help"], False)]
)
def test_only_a_batch_process_keeps_freed_memory(monkeypatch, argv, kept) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.setattr(sys, "argv", ["tripletnet", *argv])
    assert cli.main() == 0  # the process's own arguments
    assert calls == ([True] if kept else [])
    calls.clear()
    assert cli.main(argv) == 0  # called as a function (tests, notebooks): never
    assert calls == []
