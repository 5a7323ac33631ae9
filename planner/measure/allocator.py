"""Keep freed memory for reuse during measurements (glibc malloc tuning), so repetitions do not page-fault.

glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a fresh mmap and gives
it back on free, so each repetition of a prefill re-faults its large activations: on this project's CPU a
Llama-2-7B layer at batch 8 took 85,000-105,000 minor faults and 190-690 ms of system time per prefill
(4.1-5.4 s in all, 6 repetitions); with the threshold raised and trimming off it took 0-150 faults, no system
time and 3.8-4.3 s. Serving stacks avoid the faults the same way (Intel's PyTorch CPU performance guide
recommends jemalloc or tcmalloc for it), and the cost model has no page-fault term, so the measurement should
not time them either.

The price is memory: freed chunks are kept, and with large activations glibc's heaps fragment and grow from
repetition to repetition. One Llama-2-7B run with 2 layers at batch 8 and input 512 peaked at 12.3 GB of RSS
over 3 repetitions (5.6 GB with the default allocator), and at batch 16 a 24 GB machine killed it. So a
``MemoryGuard`` hands the freed pages back (``malloc_trim``) before a repetition once the process holds more
than its limit; the repetitions after a trim fault their activations in again, and the run's metadata says how
often that happened.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

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


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Give the freed heap pages back to the OS now (glibc malloc_trim(0)); False where that is unavailable."""
    libc = _libc() if sys.platform.startswith("linux") else None
    try:
        return bool(libc is not None and libc.malloc_trim(0) in (0, 1))
    except AttributeError:
        return False


def rss_bytes() -> int:
    """Resident set size of this process now (0 where /proc is missing)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryGuard:
    """Before a repetition: trim the retained heap once the process holds more than ``limit_bytes``."""

    def __init__(self, limit_bytes: float):
        self.limit = float(limit_bytes)
        self.trims = 0
        self.peak_before_trim = 0

    def check(self) -> bool:
        """Trim if over the limit; True when it did (the caller re-warms before timing: profiler.time_phase)."""
        held = rss_bytes()
        if held > self.limit and release_freed_memory():
            self.trims += 1
            self.peak_before_trim = max(self.peak_before_trim, held)
            return True
        return False

    def note(self) -> str:
        if not self.trims:
            return f"never trimmed (limit {self.limit / 1e9:.1f} GB of RSS)"
        return (f"freed pages handed back {self.trims} time(s) before a repetition: RSS reached "
                f"{self.peak_before_trim / 1e9:.1f} GB, over the limit of {self.limit / 1e9:.1f} GB (each trim is "
                "followed by an untimed repetition that faults the activations in again)")
