"""Memory allocation for the batch commands (train, evaluate, ...): keep freed memory for reuse.

An evaluation allocates and frees arrays of tens to hundreds of megabytes (distance blocks, pair
scores, gathered rows). glibc's malloc hands such blocks back to the kernel on ``free`` (above
its mmap threshold, 128 KiB to 32 MiB) and trims the heap, so the next array faults every 4 KiB
page in again, which on a virtual machine costs more than the arithmetic that fills it.
``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` and ``mallopt(M_TRIM_THRESHOLD, max)`` keep freed blocks in
the process; ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch's CPU tuning guide) makes torch's allocator ask
for transparent huge pages, 512 times fewer faults where the kernel grants them on request.

``tripletnet evaluate`` of a MNIST run takes 3.4x fewer page faults and a sixth less CPU time
(docs/benchmarks.md, issue 15's CPU row a fourth time) and writes the same metrics.json. Not for
``serve``: a long-running process should give memory back. Settings the user made (glibc's
``MALLOC_*`` or ``GLIBC_TUNABLES`` variables, ``THP_MEM_ALLOC_ENABLE``) win.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 2**30  # blocks up to 1 GiB come from the heap and are reused
TRIM_THRESHOLD = 2**31 - 1  # the heap is never trimmed
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Apply the module's settings to this process (before torch is imported, for torch's part);
    whether glibc accepted them (False elsewhere: other systems, other C libraries, or the
    user's own malloc settings)."""
    if not sys.platform.startswith("linux"):
        return False
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # read at torch's first allocation
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap and trim)
