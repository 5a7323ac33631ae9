"""Keep freed memory for reuse during measurements (glibc malloc tuning), so repetitions do not page-fault.

glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a fresh mmap and gives
it back on free, so each repetition of a prefill re-faults its large activations: on this project's CPU a
Llama-2-7B layer at batch 8 took 85,000-105,000 minor faults and 190-690 ms of system time per prefill
(4.1-5.4 s in all, 6 repetitions); with the threshold raised and trimming off it took 0-150 faults, no system
time and 3.8-4.3 s. Serving stacks avoid the faults the same way (Intel's PyTorch CPU performance guide
recommends jemalloc or tcmalloc for it), and the cost model has no page-fault term, so the measurement should
not time them either.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3       # glibc malloc.h
_done: str | None = None


def keep_freed_memory() -> str:
    """Raise glibc's mmap threshold to 1 GiB and disable trimming for this process; returns what was done
    (recorded in the run's metadata). A no-op, said so, off Linux/glibc."""
    global _done
    if _done is not None:
        return _done
    if not sys.platform.startswith("linux"):
        _done = "not tuned: not Linux (allocator as default)"
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _done = ("glibc mallopt: M_MMAP_THRESHOLD = 1 GiB, M_TRIM_THRESHOLD = 2^31-1 (freed memory is reused: no "
             "page faults per repetition)") if ok else "not tuned: glibc mallopt unavailable (allocator as default)"
    return _done
