"""Profiler regions named like cost-model ops, and a per-region CPU-time recorder.

``region(name)`` opens a ``torch.profiler.record_function`` region (what the trace and the kernel checks read)
and, while a ``CpuTimeRecorder`` is active, also records the calling thread's CPU time spent inside it. With one
intra-op thread that is the op's own execution time, immune to the scheduler giving the core to another process
(this project's CPU is a shared 2-core machine whose load is often above 2): the issue's "CPU time on CPU".
"""
from __future__ import annotations

import time
from collections import defaultdict

from torch.profiler import record_function

STEP_REGION = "radplan.step"     # one forward pass (prefill, one decode step, or one vision batch)
LAYER_REGION = "radplan.layer"   # one repeated layer: its ops scale with n_layers / layers measured

GEMM_SHAPE_TAG = "radplan.gemm_shape"  # a GEMM whose weight shape the trace lacks (packed): its M, K, N

_active: list = []               # the recorder in use (at most one)


def gemm_shape_tag(m: int, k: int, n: int) -> str:
    """The name of a profiler event around a GEMM kernel that records its shape (``profiler.kernel_flops``
    counts 2*M*K*N from it): fbgemm's linears take packed weights whose shape record_shapes cannot see."""
    return f"{GEMM_SHAPE_TAG}[{m},{k},{n}]"


def parse_gemm_shape_tag(name: str) -> tuple[int, int, int] | None:
    if not name.startswith(GEMM_SHAPE_TAG + "["):
        return None
    try:
        m, k, n = (int(v) for v in name[len(GEMM_SHAPE_TAG) + 1:].rstrip("]").split(","))
    except ValueError:
        return None
    return m, k, n


class CpuTimeRecorder:
    """Exclusive thread CPU seconds per (op name, scope) and per step, for regions entered while active."""

    def __init__(self, op_names: set[str], clock=time.thread_time):
        self.op_names, self.clock = op_names, clock
        self.stack: list[list] = []                     # [name, start, child seconds]
        self.acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self.steps: list[float] = []

    def __enter__(self):
        if _active:
            raise RuntimeError("a CpuTimeRecorder is already active")
        _active.append(self)
        return self

    def __exit__(self, *exc):
        _active.remove(self)

    def enter(self, name: str) -> None:
        self.stack.append([name, self.clock(), 0.0])

    def exit(self) -> None:
        name, t0, child = self.stack.pop()
        el = self.clock() - t0
        if name in self.op_names:
            scope = "layer" if any(s[0] == LAYER_REGION for s in self.stack) else "model"
            a = self.acc[(name, scope)]
            a[0] += max(el - child, 0.0)
            a[1] += 1
            for s in reversed(self.stack):                # nested op regions count for themselves only
                if s[0] in self.op_names:
                    s[2] += el
                    break
        elif name == STEP_REGION:
            self.steps.append(el)


class region:
    """A profiler region named like the cost-model op it times (a no-op cost when nothing records)."""
    __slots__ = ("name", "rf")

    def __init__(self, name: str):
        self.name = name
        self.rf = record_function(name)

    def __enter__(self):
        self.rf.__enter__()
        if _active:
            _active[0].enter(self.name)
        return self

    def __exit__(self, *exc):
        if _active:
            _active[0].exit()
        return self.rf.__exit__(*exc)
