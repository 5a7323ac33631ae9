"""Microbenchmarks -> device profile -> the roofline of that device.

Measured (caches flushed before every repetition; the minimum of the repetitions, as timeit advises, since
higher values are mostly other processes interfering; the median is kept beside it; GEMM points are timed in
rounds, every point once per round, so a slow minute of a shared machine touches all points alike):
- GEMM rate per scheme over sizes: Y[M,N] = X[M,K] W[N,K]^T through the same modules the recipes run
  (prepacked oneDNN fp32/bf16 on CPU, F.linear on CUDA; the W8A8 int8 backends including their activation
  quantize; weight-only int8); the achievable rate is the median over the compute-bound points (M >= 128) of
  three Llama-7B-like shapes (the best one is kept too: on this CPU the int8 rate varies ~2x with the shape);
  the M = 1 points, with a GEMV of the fused gate/up projection beside them, give the line of a GEMV's time over
  its bytes: the rate weights stream at and a fixed cost per call (``gemv_line``).
- memory bandwidth: read-only (a sum) and copy of a buffer 4x the last-level cache; the roofline takes the best
  streaming-read rate, of the sum or of a GEMV's weight stream (inference traffic is mostly weights and KV cache
  read once; one core here streams a GEMV's weights at ~16 GB/s, sums at ~12 GB/s).
- launch overhead: the time of a one-element op (dispatch + launch), and the fixed cost per call of the eager
  small ops (norm, rope, activation, embedding, decode attention) run cold, as in a decode step (eager_ops.py).
- elementwise (vector) FLOP rate, fused-attention (SDPA) rate, DenseNet-style convolution rate and pooling rate
  (window elements per second: eager CPU pooling runs ~20x below the elementwise rate).

``roofline_for_profile`` turns a profile into a session Accelerator whose dense peaks ARE the measured achievable
rates and whose bandwidth is the measured streaming-read bandwidth, plus a Calibration whose engine fractions are 1.0
(the peaks are already achievable ones), whose per-precision GEMM streaming efficiencies, vector, attention, conv
and pooling fractions are the measured ratios, whose launch overhead is the measured one, and whose GEMMs follow
their own sweep (``gemm_fit``): a compute-efficiency table by FLOPs per weight byte (one entry per swept M: on this
project's CPU an fp32 GEMM at M=8 reaches a third of the large-M rate while M=1 runs a pure-streaming GEMV) and the
overlap exponent p that reproduces the sweep best. Microbenchmark data only: the model runs that are validated
against a profile are never used to fit it. Registered with planner.catalog.register_accelerator and applied with
planner.catalog.use_calibration, so the numeric core is unchanged.
"""
from __future__ import annotations

import functools
import math
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

from planner.errors import PlannerError

FULL_MS = (1, 8, 32, 128, 512, 1024)
# a GPU's GEMMs turn compute-bound far later (H100 bf16: ~990 TFLOP/s over 3.35 TB/s, ~300 FLOP per byte, M ~ 300
# for 16-bit weights) and prefill GEMMs reach M = batch x tokens: the CUDA sweep goes on to 16384
CUDA_MS = (1, 8, 32, 128, 512, 1024, 4096, 16384)
QUICK_MS = (1, 16, 64)
# (K, N): a square projection and Llama-7B-sized MLP up and down projections (the rate depends on the shape)
FULL_SHAPES = ((4096, 4096), (4096, 11008), (11008, 4096))
COMPUTE_BOUND_M = 128      # points with M >= this are compute-bound on every CPU measured here
CUDA_COMPUTE_BOUND_M = 1024  # ... and on a GPU (a sweep reaching past FULL_MS is a CUDA one)
# CUDA timing: the GPU time between two events, the call enqueued while the GPU is still flushing its cache and
# then spinning this many cycles (~0.5 ms at ~2 GHz), so that the host's launches (a W8A8 linear: ~10 kernels) are
# queued before the GPU reaches them and the interval holds kernels only, as the runs' op rows do
CUDA_HEAD_START_CYCLES = 1_000_000
# timed at the smallest M only: Llama-2-7B's fused gate/up projection, a GEMV twice the MLP shapes' bytes, so that
# the GEMV line (gemv_line) spans 5x in bytes and reaches the largest GEMV a decode step of the catalog's 7B runs
GEMV_SHAPES = ((4096, 22016),)
QUICK_SHAPES = ((512, 512),)
# scheme -> (planner dtype slot its rate stands for, precision ids it calibrates)
SCHEMES = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int8-fbgemm": None,
           "int8-int_mm": None, "w8a16": None, "w4a16": None}
PROFILE_VERSION = 1


class _Sync:
    """Device synchronisation plus the clock of the run: one CPU thread -> that thread's CPU time (immune to
    other processes taking the core), else wall time (see profiler.timer_for)."""

    def __init__(self, device: str):
        from planner.measure.profiler import sync, timer_for
        self.device, self._sync = device, sync
        self.timer = timer_for(device)
        self.clock = time.thread_time if self.timer == "cpu-thread" else time.perf_counter
        self.cuda = device.startswith("cuda")

    def __call__(self):
        self._sync(self.device)


def _time_once(fn, flusher, sync) -> float:
    """Seconds of one call of ``fn`` after a cache flush. CUDA: GPU time between two events, the flush and a spin
    enqueued first without waiting (CUDA_HEAD_START_CYCLES), as triton's do_bench enqueues its cache clear: a host
    clock around one call on an idle GPU would add launch and synchronisation (~10-25 us) to kernels of a few us.
    CPU: the run's clock around the call (thread CPU time on one thread, else wall)."""
    if getattr(sync, "cuda", False):
        import torch
        getattr(flusher, "enqueue", flusher)()
        torch.cuda._sleep(CUDA_HEAD_START_CYCLES)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3
    clock = getattr(sync, "clock", time.perf_counter)
    flusher()
    t0 = clock()
    fn()
    sync()
    return clock() - t0


def _timeit(fn, flusher, reps: int, sync) -> list[float]:
    fn()
    sync()
    return [_time_once(fn, flusher, sync) for _ in range(reps)]


def _gemm_module(scheme: str, k: int, n: int, device: str):
    """(module, input dtype, bytes per weight, bytes per input element, bytes per output element)."""
    import torch
    import torch.nn as nn

    from planner.measure import recipes as rc
    b16 = rc.sixteen_bit(device)
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(scheme, b16)
    lin = nn.Linear(k, n, bias=False, dtype=dt, device=device)
    nn.init.normal_(lin.weight, 0.0, 0.02)
    if scheme in ("fp32", "bf16", "fp16"):
        e = lin.weight.element_size()
        if not device.startswith("cuda") and rc.packed_linear_available():
            return rc.PackedLinear(lin), dt, e, e, e          # what the CPU recipes run
        return lin, dt, e, e, e
    if scheme.startswith("int8"):
        backend = {"int8": rc.resolve_int8_backend("auto", device), "int8-fbgemm": "fbgemm",
                   "int8-int_mm": "int_mm"}[scheme]
        gran = "per-tensor-dynamic" if backend == "fbgemm" else "per-tensor-static"
        return rc.W8A8Linear(lin, gran, backend, 4.0 / 127, dt), dt, 1, 2, 2
    if scheme == "w8a16":
        return rc.W8A16Linear(lin, dt), dt, 1, 2, 2
    if scheme == "w4a16":
        return rc.W4A16Linear(lin), torch.bfloat16, 0.5 + 4 / 128, 2, 2
    if scheme == "fp8":
        return rc.Fp8Linear(lin, 4.0), torch.bfloat16, 1, 2, 2
    raise ValueError(scheme)


def available_schemes(device: str) -> list[str]:
    import torch
    if device.startswith("cuda"):
        out = ["fp32", "bf16", "fp16", "int8", "w8a16", "w4a16"]
        if torch.cuda.get_device_capability(device) >= (8, 9):
            out.append("fp8")
        return out
    out = ["fp32", "bf16", "int8", "int8-fbgemm", "int8-int_mm", "w8a16"]
    return [s for s in out if s != "int8" or hasattr(torch.ops.onednn, "qlinear_pointwise")]


def bench_gemm_interleaved(schemes, ms, shapes, device: str, flusher, reps: int, sync, progress=None,
                           after_round=None, gemv_shapes=(), skipped: dict | None = None) -> dict:
    """Every (scheme, shape, M) point timed once per round, ``reps`` rounds: each point's repetitions spread over
    the whole sweep instead of one burst, so a slow minute of a shared machine cannot bend the sweep's shape (on
    this project's CPU a profile timed point by point caught the bf16/int8 kernels in a 2x slower minute that the
    fp32 ones missed). ``gemv_shapes`` are timed at the smallest M only. Returns {scheme: [points]}: each
    point's minimum (``seconds``), median, maximum and every round's time (``times_s``). With ``skipped`` (a
    dict), a scheme whose modules fail to build or run is left out and its error recorded there (a lent GPU's
    minutes are too few to lose a whole profile to one kernel); without it the error is raised."""
    import torch
    cases = []
    with torch.no_grad():
        for scheme in list(schemes):
            try:
                built = []
                for (k, n), shape_ms in [(sh, ms) for sh in shapes] + [(sh, (min(ms),)) for sh in gemv_shapes]:
                    mod, dt, wb, ib, ob = _gemm_module(scheme, k, n, device)
                    for m in shape_ms:
                        x = torch.randn(m, k, device=device).to(dt)
                        mod(x)                               # warm-up (packing, first-call dispatch)
                        built.append((scheme, k, n, m, mod, x, wb, ib, ob))
                sync()
            except Exception as e:  # noqa: BLE001 - a kernel this torch or device lacks: the other schemes go on
                if skipped is None:
                    raise
                skipped[scheme] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                continue
            cases += built
        times: list[list[float]] = [[] for _ in cases]
        for _ in range(reps):
            for i, (_, _, _, _, mod, x, *_rest) in enumerate(cases):
                times[i].append(_time_once(lambda: mod(x), flusher, sync))
            if after_round is not None:
                after_round()
            if progress is not None:
                progress.update(1)
    out: dict[str, list[dict]] = {s: [] for s in schemes if s not in (skipped or {})}
    for (scheme, k, n, m, _, _, wb, ib, ob), ts in zip(cases, times):
        t = min(ts)
        out[scheme].append({"m": m, "k": k, "n": n, "seconds": t, "median_s": statistics.median(ts), "max_s": max(ts),
                            "flops_s": 2.0 * m * k * n / t, "weight_bytes": k * n * wb,
                            "act_bytes": m * k * ib + m * n * ob,
                            # every round's time, in round order: the spread behind the statistics, for audit
                            # (this VM's times are bimodal: ~32 vs ~42 ms at M=128 on one thread)
                            "times_s": list(ts)})
    return out


def _bench_shape(scheme: str, ms, k: int, n: int, device: str, flusher, reps: int, sync) -> list[dict]:
    import torch
    mod, dt, wb, ib, ob = _gemm_module(scheme, k, n, device)
    pts = []
    with torch.no_grad():
        for m in ms:
            x = torch.randn(m, k, device=device).to(dt)
            ts = _timeit(lambda: mod(x), flusher, reps, sync)
            t = min(ts)
            pts.append({"m": m, "k": k, "n": n, "seconds": t, "median_s": statistics.median(ts), "max_s": max(ts),
                        "flops_s": 2.0 * m * k * n / t, "weight_bytes": k * n * wb,
                        "act_bytes": m * k * ib + m * n * ob})
    return pts


def _best_and_typical(work: float, ts: list[float]) -> tuple[float, float]:
    """A rate at the minimum of the repetitions (the best case) and at their median (the typical case)."""
    return work / min(ts), work / statistics.median(ts)


def bench_memory(device: str, flusher, reps: int, sync) -> tuple[dict, dict]:
    import torch
    # half the flush buffer (2x the LLC); on a GPU 1 GiB (its flush buffer, 4x a 50 MB L2, would be read in
    # ~60 us on an H100, too short to stream at the full rate)
    nb = max(flusher.buf.numel() * 4 // 2, (1 << 30) if device.startswith("cuda") else 0)
    a = torch.ones(nb // 4, device=device)
    b = torch.empty_like(a)
    copy = _best_and_typical(2 * nb, _timeit(lambda: b.copy_(a), flusher, reps, sync))
    read = _best_and_typical(nb, _timeit(lambda: a.sum(), flusher, reps, sync))
    return tuple({"buffer_bytes": nb, "copy_bytes_s": copy[i], "read_bytes_s": read[i]} for i in (0, 1))


def bench_launch(device: str, sync, n: int = 2000) -> tuple[float, float]:
    """Seconds per tiny op: what a kernel launch (or a CPU op dispatch) costs beyond its work (best, typical)."""
    import torch
    x = torch.ones(1, device=device)
    for _ in range(100):
        x.add_(1.0)
    sync()
    clock = getattr(sync, "clock", time.perf_counter)
    ts = []
    for _ in range(5):
        t0 = clock()
        for _ in range(n):
            x.add_(1.0)
        sync()
        ts.append((clock() - t0) / n)
    return min(ts), statistics.median(ts)


def bench_vector(device: str, sync, reps: int) -> tuple[float, float]:
    """FLOP/s of an elementwise multiply-add on an in-cache buffer (the non-tensor rate of norms/activations)."""
    import torch
    # CUDA: 3 x 8 MiB (in a 50 MB L2) and 20 calls per sample: one call of a few us is below what events resolve
    n, calls = ((1 << 21), 20) if device.startswith("cuda") else ((1 << 18), 1)
    x = torch.rand(n, device=device)
    y, z = torch.rand_like(x), torch.empty_like(x)

    def fn():
        for _ in range(calls):
            torch.addcmul(x, x, y, out=z)
    ts = _timeit(fn, lambda: None, reps * 5, sync)                                  # in cache: no flush
    return _best_and_typical(2.0 * x.numel() * calls, ts)


def bench_attention(device: str, dtype_name: str, flusher, reps: int, sync, quick: bool) -> tuple[float, float]:
    """FLOP/s of causal SDPA counted as the cost model counts it: 4*S*C*h*hd with C = (S+1)/2."""
    import torch
    import torch.nn.functional as F
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    h, s, hd = (4, 128, 64) if quick else (32, 2048 if device.startswith("cuda") else 512, 128)
    q = torch.randn(1, h, s, hd, device=device, dtype=dt)
    ts = _timeit(lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True), flusher, reps, sync)
    return _best_and_typical(4.0 * s * (s + 1) / 2 * h * hd, ts)


# Vision encoders' attention by keys attended per query (C): (label, batch x windows, tokens = C, heads, head dim,
# window side or None). A 7x7 window (Swin's in every published size) at Swin's head dim 32, its unshifted and
# shifted blocks alike (the relative-position bias gathered, the shift mask added); full attention at ViT's head
# dim 64 over 256 and 1024 tokens (ViT-B/16 at 256 px and at 512 px). Generic points, not one network's stages:
# the roofline interpolates a model's C between them.
ENCODER_ATTENTION = (("window", 32, 49, 8, 32, 7), ("full", 2, 256, 12, 64, None), ("full", 1, 1024, 12, 64, None))
QUICK_ENCODER_ATTENTION = (("window", 4, 16, 2, 16, 4), ("full", 2, 64, 2, 16, None))


def bench_encoder_attention(device: str, flusher, reps: int, sync, quick: bool) -> tuple[str, dict]:
    """(dtype, {"best"|"typical": [[FLOPs per activation byte, FLOP/s], ...]}) of a vision encoder's attention
    as the measurement backend runs it (models.encoder_attention on a fused QKV output, models.window_attn_mask
    for windows), counted as the cost model counts it: 4 x tokens x C x width FLOPs over 4 x tokens x width x
    bytes per element of activations, i.e. C / bytes per element. The profile's causal SDPA rate (a 512-token
    prefill at head dim 128) misreads these: on this project's CPU, 49-token windows at head dim 32 ran at
    ~55 GFLOP/s and 197 tokens at head dim 64 at ~100, against ~90 for the causal prefill. fp32 on a CPU,
    fp16 on CUDA (the vision models' dtypes there)."""
    import torch

    from planner.measure.models import encoder_attention, shift_mask, window_attn_mask, window_index
    cuda = device.startswith("cuda")
    dtype, dt, elem = ("fp16", torch.float16, 2) if cuda else ("fp32", torch.float32, 4)
    gen = torch.Generator(device="cpu").manual_seed(0)
    pts = []
    for label, bw, n, heads, hd, w in (QUICK_ENCODER_ATTENTION if quick else ENCODER_ATTENTION):
        d = heads * hd
        qkv = torch.randn(bw, n, 3 * d, generator=gen).to(device=device, dtype=dt)
        if w is None:
            calls = [lambda: encoder_attention(qkv, heads)]
        else:                                        # an unshifted and a shifted block of a 2x2-window map
            side = 2 * w
            table = (torch.randn((2 * w - 1) ** 2, heads, generator=gen) * 0.02).to(device=device, dtype=dt)
            idx = window_index(w).to(device)
            smask = shift_mask(side, w, w // 2).to(device=device, dtype=dt)
            b = bw // smask.shape[0]
            calls = [lambda: encoder_attention(qkv, heads, window_attn_mask(table, idx, b)),
                     lambda: encoder_attention(qkv, heads, window_attn_mask(table, idx, b, smask))]

        def fn():
            for c in calls:
                c()
        with torch.no_grad():
            ts = _timeit(fn, flusher, reps, sync)
        flops = len(calls) * 4.0 * bw * n * n * d
        pts.append((n / elem, *_best_and_typical(flops, ts)))
    pts.sort()
    return dtype, {"best": [[x, r] for x, r, _ in pts], "typical": [[x, r] for x, _, r in pts]}


# DenseNet-121's convolutions (Huang et al. 2017; torchvision's densenet121), one of each kind per resolution,
# with the number of times the network runs it: (count, C_in, C_out, kernel, stride, input size). The 1x1
# bottleneck's input grows through each block (64..256, 128..512, 256..1024, 512..1024 channels): the block's
# middle width stands for it. Eager torch runs most 1x1 convolutions of this mix through its slow im2col path
# and the 3x3 ones through oneDNN (seen in this project's DenseNet traces), at 11-80 GFLOP/s on one core where
# one block-1 pair ran at 80: the mix, not one shape, is the achievable conv rate of a CNN.
DENSENET_CONVS = ((1, 3, 64, 7, 2, 224),
                  (6, 160, 128, 1, 1, 56), (6, 128, 32, 3, 1, 56), (1, 256, 128, 1, 1, 56),
                  (12, 320, 128, 1, 1, 28), (12, 128, 32, 3, 1, 28), (1, 512, 256, 1, 1, 28),
                  (24, 640, 128, 1, 1, 14), (24, 128, 32, 3, 1, 14), (1, 1024, 512, 1, 1, 14),
                  (16, 768, 128, 1, 1, 7), (16, 128, 32, 3, 1, 7))


def conv_batches(device: str, quick: bool) -> tuple[int, ...]:
    """Batches of the convolution benchmark: 1 (a single study's image, the small-M end where the rate falls:
    on this project's CPU the 7x7 stage ran at 20-31 GFLOP/s at batch 1 against 72-87 at batch 8) and the mix's
    batch (8 on a CPU, 32 on CUDA); quick: 1 and 2 at a quarter of the resolution."""
    return (1, 2) if quick else (1, 32 if device.startswith("cuda") else 8)


def bench_conv(device: str, flusher, reps: int, sync, quick: bool) -> tuple[str, float, float, dict]:
    """(dtype, best, typical FLOP/s, by_intensity) of DenseNet-121's convolution mix (DENSENET_CONVS: each shape
    timed once per repetition, weighted by how often the network runs it) at the larger of ``conv_batches``: the
    conv fraction of that dtype's GEMM peak for CNN predictions. fp32 on a CPU; fp16 on CUDA, where cuDNN would
    run fp32 convolutions as TF32 against an IEEE-fp32 GEMM peak and the CNNs are measured in fp16.

    ``by_intensity``: {"best"|"typical": [[FLOPs per weight byte, FLOP/s], ...]}, the mix's rate per resolution
    and batch: every conv of one resolution at one batch has the same FLOPs per weight byte (2 x batch x output
    pixels / bytes per weight), the figure the roofline reads a conv op's rate from (a batch-1 7x7 conv is a
    49-row GEMM)."""
    import torch
    import torch.nn.functional as F
    cuda = device.startswith("cuda")
    dtype = "fp16" if cuda else "fp32"
    dt = torch.float16 if cuda else torch.float32
    elem = 2 if cuda else 4
    shrink = 4 if quick else 1
    clock = getattr(sync, "clock", time.perf_counter)
    levels: dict[float, list] = {}                   # FLOPs per weight byte -> [flops, per-pass seconds]
    mix = None
    for b in conv_batches(device, quick):
        cases = []
        for n, cin, cout, k, stride, size in DENSENET_CONVS:
            hw = max(size // shrink, k)
            x = torch.randn(b, cin, hw, hw, device=device).to(dt)
            w = torch.randn(cout, cin, k, k, device=device).to(dt)
            out = (hw + 2 * (k // 2) - k) // stride + 1
            cases.append((n, x, w, stride, k // 2, 2.0 * b * out * out / elem, n * 2.0 * b * out * out * cout * cin * k * k))
        passes = []
        for _ in range(reps + 1):                    # the first pass warms up (oneDNN primitive creation)
            ts = []
            if not cuda:
                flusher()                            # once per pass: in a network each conv reads what the
            for n, x, w, stride, pad, _, _ in cases:     # op before it just wrote
                if cuda:                             # GPU time of each call (_time_once flushes before it)
                    ts.append(n * _time_once(lambda: F.conv2d(x, w, stride=stride, padding=pad), flusher, sync))
                    continue
                t0 = clock()
                F.conv2d(x, w, stride=stride, padding=pad)
                sync()
                ts.append(n * (clock() - t0))
            passes.append(ts)
        passes = passes[1:]
        for i, case in enumerate(cases):
            lv = levels.setdefault(case[5], [0.0, [0.0] * len(passes)])
            lv[0] += case[6]
            lv[1] = [a + p[i] for a, p in zip(lv[1], passes)]
        mix = (sum(c[6] for c in cases), [sum(p) for p in passes])
    best, typ = _best_and_typical(*mix)
    pts = sorted((x, *_best_and_typical(f, ts)) for x, (f, ts) in levels.items())
    return dtype, best, typ, {"best": [[x, r] for x, r, _ in pts], "typical": [[x, r] for x, _, r in pts]}


def bench_pool(device: str, dtype_name: str, flusher, reps: int, sync, quick: bool) -> tuple[float, float]:
    """Window elements per second (outputs x kernel area) of DenseNet/ResNet pooling: the stem's 3x3/2 max-pool
    and a transition's 2x2/2 average pool, batch 8 (eager CPU pooling kernels run far below the elementwise
    rate, so pooling gets its own measured rate)."""
    import torch
    import torch.nn.functional as F
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    b, hw = (2, 28) if quick else (8, 112)
    x = torch.randn(b, 64, hw, hw, device=device).to(dt)
    y = torch.randn(b, 128, hw // 2, hw // 2, device=device).to(dt)
    out_max = b * 64 * ((hw + 2 - 3) // 2 + 1) ** 2
    out_avg = b * 128 * (hw // 4) ** 2
    elems = 9 * out_max + 4 * out_avg

    def both():
        F.max_pool2d(x, 3, 2, 1)
        F.avg_pool2d(y, 2, 2)
    return _best_and_typical(elems, _timeit(both, flusher, reps, sync))


def run_microbench(device: str, quick: bool = False, reps: int | None = None, schemes=None, progress=None) -> dict:
    """Measure this device and return its profile (a JSON-able dict)."""
    import torch

    from planner.measure.allocator import keep_freed_memory
    from planner.measure.profiler import Flusher
    from planner.measure.runs import command_line, device_info, now_iso
    allocator = keep_freed_memory()
    torch.set_flush_denormal(True)
    sync = _Sync(device)
    reps = reps or (2 if quick else 11)
    flusher = Flusher(device, (64 << 20) if quick else None)
    ms, shapes = (QUICK_MS, QUICK_SHAPES) if quick else (CUDA_MS if device.startswith("cuda") else FULL_MS, FULL_SHAPES)
    schemes = schemes or available_schemes(device)
    skipped: dict[str, str] = {}       # scheme -> the error that left it out (CUDA: see bench_gemm_interleaved)
    prof = {"version": PROFILE_VERSION, "device": None, "date": now_iso(), "command": command_line(),
            "quick": quick, "reps": reps, "timer": sync.timer,
            "statistic": "minimum of repetitions at the top level, their median beside each GEMM point and under "
                         "'typical' (profile_at picks one); caches flushed before each; GEMM points are timed in "
                         "rounds (every point once per round) so each point's repetitions span the sweep",
            "meta": device_info(device), "allocator": allocator, "gemm": {}}
    prof["device"] = prof["meta"]["device"]
    from planner.measure.probe import probe_plan_for_sweep, run_probe
    plan = probe_plan_for_sweep(ms, shapes, device)
    # the device-state reference: the probe as runs take it (a fresh module, one flush), once per round of the
    # sweep, so that it samples the same minutes as the rates it stands beside (a burst after the sweep read
    # one moment: 50 ms at M=128 on one thread here where the sweep's median was 38 and the runs' probes 40)
    ref: list[dict] = []
    from planner.measure.probe import KERNEL_PROBE, kernel_probe_plan
    kplans = [kp for kp in (kernel_probe_plan(None, s) for s in schemes)
              if kp is not None and KERNEL_PROBE[0] in ms and KERNEL_PROBE[1:] in tuple(shapes)]
    kref: list[dict] = []          # the same for the int8 kernels whose runs probe their own kernel

    def after_round():
        ref.append(run_probe(device, flusher, reps=1, plan=plan))
        kref.extend(run_probe(device, flusher, reps=1, plan=kp) for kp in kplans)
    sweep = bench_gemm_interleaved(schemes, ms, shapes, device, flusher, reps, sync, progress, after_round=after_round,
                                   gemv_shapes=() if quick else GEMV_SHAPES,
                                   skipped=skipped if device.startswith("cuda") else None)
    if skipped:
        prof["schemes_skipped"] = skipped
    for s in sweep:
        prof["gemm"][s] = summarize_sweep(sweep[s], "seconds")
    # every rate below at the minimum of its repetitions (top level) and at their median ("typical")
    typical = {}
    prof["memory"], typical["memory"] = bench_memory(device, flusher, reps, sync)
    prof["launch_overhead_s"], typical["launch_overhead_s"] = bench_launch(device, sync, 200 if quick else 2000)
    try:
        _bench_eager(prof, typical, device, flusher, reps, quick)
    except Exception as e:  # noqa: BLE001 - on CUDA (never run there yet) the profile goes on without them
        if not device.startswith("cuda"):
            raise
        prof["eager_ops_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    prof["vector_flops_s"], typical["vector_flops_s"] = bench_vector(device, sync, reps)
    dts = ("fp32", "bf16") if not device.startswith("cuda") else ("bf16", "fp16")
    for key, fn in (("attention_flops_s", bench_attention), ("pool_elems_s", bench_pool)):
        pairs = {d: fn(device, d, flusher, reps, sync, quick) for d in dts}
        prof[key], typical[key] = ({d: v[i] for d, v in pairs.items()} for i in (0, 1))
    att_dt, att_lv = bench_encoder_attention(device, flusher, reps, sync, quick)
    prof["encoder_attention_by_context"] = {att_dt: att_lv["best"]}
    typical["encoder_attention_by_context"] = {att_dt: att_lv["typical"]}
    conv_dt, conv_best, conv_typ, conv_lv = bench_conv(device, flusher, reps, sync, quick)
    prof["conv_flops_s"], typical["conv_flops_s"] = {conv_dt: conv_best}, {conv_dt: conv_typ}
    prof["conv_by_intensity"], typical["conv_by_intensity"] = {conv_dt: conv_lv["best"]}, {conv_dt: conv_lv["typical"]}
    prof["typical"] = typical
    prof["probe_reference"], prof["probe_reference_per_round"] = ref, True
    if kref:
        prof["kernel_probe_reference"] = kref
    from planner.measure.probe import sweep_vs_reference
    prof["sweep_vs_reference"] = sweep_vs_reference(prof)   # ~1 on a steady machine (probe.unsteady_note)
    if progress is not None:
        progress.update(1)
    prof["overlap_p"] = fit_overlap(prof)
    prof["gemm_fit_mdape_pct"] = gemm_fit_mdape(prof)
    return prof


def _bench_eager(prof: dict, typical: dict, device: str, flusher, reps: int, quick: bool) -> None:
    """The eager small ops' fixed cost per call and their bodies' rates (eager_ops), into the profile."""
    from planner.measure.eager_ops import bench_cnn_ops, bench_eager_bodies, bench_eager_ops
    cnn = bench_cnn_ops(device, flusher, reps, quick=quick)
    prof["cnn_op_overhead_s"], typical["cnn_op_overhead_s"] = cnn.pop("per_call_s"), cnn.pop("per_call_median_s")
    prof["cnn_ops"] = cnn
    eager = bench_eager_ops(device, flusher, reps, quick=quick)
    prof["eager_op_overhead_s"], typical["eager_op_overhead_s"] = eager.pop("per_call_s"), eager.pop("per_call_median_s")
    prof["eager_ops"] = eager
    bodies = bench_eager_bodies(device, reps, quick)
    prof["eager_op_bodies"] = {k: v for k, v in bodies.items() if k != "median_s"}
    typical["eager_op_bodies"] = {**prof["eager_op_bodies"], "seconds": bodies["median_s"]}


# ------------------------------------------------------------------------------------------ statistics

STATISTICS = ("median", "min")


def summarize_sweep(pts: list[dict], key: str) -> dict:
    """A scheme's sweep entry from its points, timed by ``key`` (``seconds``: the minimum of the repetitions;
    ``median_s``): the achievable rate is the median over the compute-bound points, the best one beside it, and
    the weights' streaming rate and fixed cost per call the GEMV line of the smallest-M points (gemv_line)."""
    pts = [{**p, "seconds": p[key], "flops_s": 2.0 * p["m"] * p["k"] * p["n"] / p[key]} for p in pts]
    ms = [p["m"] for p in pts]
    big = [p["flops_s"] for p in pts if p["m"] >= min(compute_bound_m(ms), max(ms))]
    call, stream = gemv_line([(p["weight_bytes"] + p["act_bytes"], p["seconds"]) for p in pts if p["m"] == min(ms)])
    return {"points": pts, "achievable_flops_s": statistics.median(big), "best_flops_s": max(big),
            "stream_bytes_s": stream, "call_overhead_s": call}


def compute_bound_m(ms) -> int:
    """The smallest M of a sweep's compute-bound points: COMPUTE_BOUND_M on a CPU sweep, CUDA_COMPUTE_BOUND_M on
    one that goes past FULL_MS (a CUDA sweep)."""
    return CUDA_COMPUTE_BOUND_M if max(ms) > FULL_MS[-1] else COMPUTE_BOUND_M


GEMV_SPAN = 2.0          # the GEMV line needs byte counts at least this far apart
GEMV_MIN_CALL = 0.05     # ... and an intercept of at least this share of the smallest GEMV's time to be used,
GEMV_MAX_CALL = 0.75     # at most this share (fbgemm's 16.8 MB int8 GEMV here: 0.9-1.0 ms of 1.6-1.8 ms)


def gemv_line(points) -> tuple[float, float]:
    """(fixed seconds per call, bytes per second) of a scheme's smallest-M GEMMs from (bytes, seconds) pairs.

    A GEMV's time is not proportional to its bytes: on this project's CPU fbgemm's int8 GEMV streamed 16.8 MB
    in 1.75 ms, 45 MB in 3.3 ms and 90 MB (Llama-2-7B's fused gate/up projection) in 5.2 ms, i.e. ~1 ms per call
    plus 21 GB/s, where one rate through the origin (14 GB/s, the median of the 16.8 and 45 MB points) predicted
    the model's decode GEMVs 30-50 % slow (benchmarks/gemv_line.py). So where the points span at least
    GEMV_SPAN in bytes, the least-squares line t = c + bytes / r is fitted, and its intercept c is kept when it is
    material (>= GEMV_MIN_CALL of the smallest time; capped at GEMV_MAX_CALL of it, r refitted through that c). Otherwise
    (one shape, as in a quick sweep; a line through the origin; a negative slope) c = 0 and r is the median rate."""
    pts = [(float(b), float(t)) for b, t in points if b > 0 and t > 0]
    if not pts:
        raise PlannerError("a GEMM sweep has no timed smallest-M points")
    median_rate = statistics.median(b / t for b, t in pts)
    bs = [b for b, _ in pts]
    if max(bs) < GEMV_SPAN * min(bs):
        return 0.0, median_rate
    mb, mt = statistics.fmean(bs), statistics.fmean(t for _, t in pts)
    sxx = sum((b - mb) ** 2 for b in bs)
    slope = sum((b - mb) * (t - mt) for b, t in pts) / sxx
    t_min = min(t for _, t in pts)
    call = mt - slope * mb
    if slope <= 0 or call < GEMV_MIN_CALL * t_min:
        return 0.0, median_rate
    if call > GEMV_MAX_CALL * t_min:
        call = GEMV_MAX_CALL * t_min
        return call, statistics.median(b / (t - call) for b, t in pts)
    return call, 1.0 / slope


def profile_at(prof: dict, statistic: str) -> dict:
    """The profile with every rate at ``statistic``: ``min`` (each benchmark's fastest repetition, the profile as
    stored) or ``median`` (its typical repetition). On a shared machine a step of many kernels is rarely lucky in
    all of them at once, so typical rates predict typical steps; a profile from before the typical block existed
    has medians for its GEMM points only (its other rates stay minima, listed under ``typical_missing``)."""
    if statistic not in STATISTICS:
        raise PlannerError(f"statistic must be one of {', '.join(STATISTICS)}, got '{statistic}'")
    if statistic == "min":
        return prof
    out = {**prof, "gemm": {s: {**g, **summarize_sweep(g["points"], "median_s")} for s, g in prof["gemm"].items()},
           "statistic_used": "median"}
    typical = prof.get("typical") or {}
    for k in ("memory", "launch_overhead_s", "eager_op_overhead_s", "cnn_op_overhead_s", "eager_op_bodies",
              "vector_flops_s",
              "attention_flops_s", "pool_elems_s", "conv_flops_s", "conv_by_intensity",
              "encoder_attention_by_context"):
        if k in typical:
            out[k] = typical[k]
    out["typical_missing"] = [k for k in ("memory", "launch_overhead_s", "vector_flops_s") if k not in typical]
    return out


# ------------------------------------------------------------------------------------------ profile -> roofline

def int8_scheme_for(prof: dict, backend: str | None) -> str:
    """The profile's sweep of the int8 kernel a run used: 'int8' is the default backend's (oneDNN on CPU,
    _int_mm on CUDA); a run through another backend (--int8-backend fbgemm) is predicted from that one's sweep."""
    name = f"int8-{backend}" if backend else ""
    return name if name in prof.get("gemm", {}) else "int8"


def slot_rates(prof: dict, int8_scheme: str = "int8") -> dict[str, float]:
    """Dense-peak slots of the session accelerator (FLOP/s): each slot scheme's fitted large-M rate."""
    g = prof["gemm"]
    src = {"int8": int8_scheme}
    out = {d: gemm_fit(prof, src.get(d, d))["peak_flops_s"] for d in ("fp32", "bf16", "fp16", "fp8", "int8")
           if src.get(d, d) in g}
    if "fp16" not in out and "bf16" in out and prof["meta"].get("kind") == "cpu":
        out["fp16"] = out["bf16"]   # CPU recipes run 16-bit work (w8a8 attention, weight-only) in bf16
    return out


# scheme -> (precision ids it calibrates, the slot its GEMMs use in the core)
PRECISION_OF = {"fp32": (("fp32",), "fp32"), "bf16": (("bf16",), "bf16"), "fp16": (("fp16",), "fp16"),
                "fp8": (("fp8",), "fp8"), "int8": (("w8a8",), "int8"), "w8a16": (("w8a16",), "fp16"),
                "w4a16": (("w4a16",), "fp16")}


def _calibrated_ids(prof: dict, scheme: str) -> tuple[str, ...]:
    pids = PRECISION_OF[scheme][0]
    if scheme == "bf16" and "fp16" not in prof["gemm"] and prof["meta"].get("kind") == "cpu":
        pids = pids + ("fp16",)     # the 16-bit GEMMs a CPU recipe keeps (a w8a8 model's lm_head) run in bf16
    return pids


def _precision_effs(prof: dict, bw: float, int8_scheme: str = "int8", r_host: float = 1.0) -> dict[str, dict]:
    slots = slot_rates(prof, int8_scheme)
    out = {"default": {"gemm_scale": 1.0, "mem_scale": 1.0,
                       "basis": "measured profile: GEMM rates are the dtype peaks themselves"}}
    for key, (_, slot) in PRECISION_OF.items():
        scheme = int8_scheme if key == "int8" else key
        if scheme not in prof["gemm"] or slot not in slots:
            continue
        fit = gemm_fit(prof, scheme)                  # from the stored sweep points: no new measurement
        eff = {"gemm_scale": min(max(fit["peak_flops_s"] / slots[slot], 0.01), 1.5),
               "mem_scale": min(max(fit["stream_bytes_s"] / (bw * plain_read_frac(prof)), 0.01), 1.5),
               "overlap_p": fit["overlap_p"],
               "eff_by_intensity": fit["eff_by_intensity"], "call_overhead_s": min(fit["call_overhead_s"], 0.1) / r_host,
               "basis": f"measured: {scheme} GEMM sweep (large-M rate / {slot} slot, compute efficiency per swept M, "
                        f"overlap exponent fitted; MdAPE {fit['mdape_pct']:.1f} % over {fit['points']} points), "
                        "M=1 GEMV line: streaming rate / read bandwidth and fixed cost per call"}
        for pid in _calibrated_ids(prof, key):
            out[pid] = eff
    return out


def _rate_to_slot(rates: dict, slots: dict, fp32_only: bool = False) -> float | None:
    """A benchmark's rate over a GEMM slot's: the fp32 one where measured, else the first 16-bit one (a GPU
    profile times its convolutions in fp16 and its pooling in bf16/fp16) over that dtype's slot, or, for
    ``fp32_only`` rates (pooling elements, which the core scales by the fp32 slot), over the fp32 slot."""
    for d in ("fp32", "fp16", "bf16"):
        if d in rates and rates[d] and (d if not fp32_only else "fp32") in slots:
            return rates[d] / slots[d if not fp32_only else "fp32"]
    return None


# How a run's probed device state scales a CPU profile's fixed costs (launch, eager small ops' fixed cost per
# call, a GEMV's fixed cost per call): they are host work, slowed or sped up with the host like its GEMMs, so they
# scale by the compute ratio; on a GPU they are the host's launch path, which a GPU probe does not see (1.0).
HOST_COSTS_SCALE_WITH_STATE = True
# The eager ops' body factors (measured body / roofline body) are a property of the profile: taken against the
# profile's own, unscaled roofline, so that the bodies then follow the run's state like the rest of the step.
BODY_SCALES_UNSCALED = True


def roofline_for_profile(prof: dict, state: dict | None = None, int8_scheme: str = "int8"):
    """(Accelerator, Calibration) of a measured profile; see the module docstring. ``state`` (probe.device_state)
    scales the peaks by its compute ratio and the bandwidth by its memory ratio, and on a CPU the host's fixed
    costs by the compute ratio (HOST_COSTS_SCALE_WITH_STATE): the device as it ran.
    ``int8_scheme``: the sweep that stands for the int8 slot and w8a8 (int8_scheme_for a run's backend)."""
    from planner.efficiency import Calibration
    slots = slot_rates(prof, int8_scheme)
    if "fp32" not in slots:
        raise PlannerError(f"profile of {prof.get('device')} has no fp32 GEMM rate")
    bw = read_bandwidth(prof)
    gpu = prof["meta"].get("kind") == "gpu"
    r_host = state["compute"] if state and not gpu and HOST_COSTS_SCALE_WITH_STATE else 1.0
    acc = _profile_accelerator(prof, slots, bw, state, int8_scheme)
    data = _profile_calibration_data(prof, slots, bw, int8_scheme, r_host)
    cal = Calibration.model_validate(data)
    if prof.get("eager_op_bodies"):
        if state and BODY_SCALES_UNSCALED:
            acc0 = _profile_accelerator(prof, slots, bw, None, int8_scheme)
            cal0 = Calibration.model_validate(_profile_calibration_data(prof, slots, bw, int8_scheme, 1.0))
        else:
            acc0, cal0 = acc, cal
        scales = _eager_body_scales(prof["eager_op_bodies"], acc0, cal0)
        data["engines"] = {e: {**eng, "op_body_scale": scales} for e, eng in data["engines"].items()}
        data["fitted_parameters"] = data["fitted_parameters"] + ["engines.*.op_body_scale (measured eager op bodies)"]
        cal = Calibration.model_validate(data)
    return acc, cal


def _profile_accelerator(prof: dict, slots: dict, bw: float, state: dict | None, int8_scheme: str):
    """The session Accelerator of a profile: measured peaks and bandwidth, scaled to ``state`` if given."""
    from planner.specs import Accelerator
    meta = prof["meta"]
    r_c, r_m = (state["compute"], state["memory"]) if state else (1.0, 1.0)
    # the int8 kernel's own probe, where the run took one of the sweep that stands for the int8 slot
    kern = (state or {}).get("kernel")
    r_i8 = kern["compute"] if kern and kern.get("scheme") == int8_scheme else r_c
    keys = {"fp32": "fp32_tflops", "bf16": "bf16_tflops", "fp16": "fp16_tflops", "fp8": "fp8_tflops",
            "int8": "int8_tops"}
    peaks = {keys[d]: v * (r_i8 if d == "int8" else r_c) / 1e12 for d, v in slots.items()}
    gpu = meta.get("kind") == "gpu"
    mem_bytes = meta.get("memory_bytes") or meta.get("host_memory_bytes") or 1 << 34
    tdp = meta.get("power_limit_w") or 100.0
    idle = min(meta.get("idle_power_w") or tdp * 0.25, tdp * 0.9)
    src = f"measured by planner microbench on {prof['date']} (profile of {prof['device']})"
    if state:
        src += (f", scaled to the device state of a run (compute x{r_c:.3f}, memory x{r_m:.3f}: "
                f"{state.get('basis', 'probe')}"
                + (f"; int8 GEMMs x{r_i8:.3f}: {kern['basis']}" if kern and r_i8 is not r_c else "") + ")")
    return Accelerator.model_validate({
        "id": measured_id(prof["device"]), "name": f"{meta.get('name', prof['device'])} (measured profile)",
        "vendor": "NVIDIA" if gpu else "measured", "kind": "gpu" if gpu else "cpu", "family": "measured",
        "form_factor": "measured device profile", "launch_year": 2024, "peak_dense": peaks,
        "memory": {"capacity_gb": mem_bytes / 2 ** 30, "type": "measured", "bandwidth_gb_s": bw * r_m / 1e9},
        "interconnect": {"link": "none", "topology": "none", "max_gpus_per_node": 1, "pcie_gen": 4,
                         "pcie_gb_s_per_direction": 32.0},
        "power": {"tdp_w": tdp, "idle_w": idle}, "price": {},
        "sources": {"peak_dense": src + ": median large-M (M >= 128) GEMM rate per scheme"
                    + ("; the fp16 slot holds the bf16 rate (CPU recipes run 16-bit work in bf16)" if not gpu else ""),
                    "memory.bandwidth_gb_s": src + ": best streaming-read rate (a large sum or a GEMV's weight "
                                              "stream; weights and KV cache, the bulk of inference traffic, are read)",
                    "memory.capacity_gb": "device properties (host memory on CPU)",
                    "interconnect": "assumption: single device, no scale-up link measured",
                    "power": "NVML power limit and idle reading" if gpu and meta.get("power_limit_w")
                    else "assumption: not measured (power is not validated on this device)",
                    "launch_year": "assumption: placeholder, not used by the model"}})


def _rate_table(by_dtype: dict, slots: dict) -> tuple[tuple[float, float], ...]:
    """A benchmark's rates by intensity (conv: FLOPs per weight byte; encoder attention: FLOPs per activation
    byte) over its dtype's GEMM slot (as _rate_to_slot takes the conv mix's)."""
    for d in ("fp32", "fp16", "bf16"):
        if by_dtype.get(d) and d in slots:
            return tuple((float(x), max(min(r / slots[d], 1.0), 1e-3)) for x, r in by_dtype[d])
    return ()


def _profile_calibration_data(prof: dict, slots: dict, bw: float, int8_scheme: str, r_host: float) -> dict:
    """The Calibration (as a dict) of a profile: engine fractions 1.0 on the measured peaks, measured ratios for
    the rest, the host's fixed costs divided by ``r_host`` (the run's compute ratio on a CPU, else 1)."""
    from planner import catalog
    base = catalog.load_calibration()
    fp32 = slots["fp32"]
    attn = prof.get("attention_flops_s", {})
    attn_fracs = [min(v / slots[d], 1.0) for d, v in attn.items() if d in slots]
    conv = _rate_to_slot(prof.get("conv_flops_s", {}), slots)
    pool = _rate_to_slot(prof.get("pool_elems_s", {}), slots, fp32_only=True)
    eng = {"gemm_compute_frac": 1.0, "conv_compute_frac": max(min(conv, 1.0), 1e-3) if conv else 1.0,
           "attn_compute_frac": max(min(statistics.mean(attn_fracs), 1.0), 1e-3) if attn_fracs else 1.0,
           "vector_compute_frac": max(min(prof["vector_flops_s"] / fp32, 1.0), 1e-4),
           "pool_compute_frac": max(min(pool, 1.0), 1e-5) if pool else None,
           "mem_frac": plain_read_frac(prof), "link_frac": 1.0, "launch_overhead_s": min(prof["launch_overhead_s"], 1e-3) / r_host,
           "step_overhead_s": 0.0, "request_overhead_s": 0.0, "overlap_p": fit_overlap(prof),
           "fused_elementwise_frac": 0.0,
           "op_overhead_s": tuple((n, min(t, 0.1) / r_host) for n, t in sorted(
               {**prof.get("eager_op_overhead_s", {}), **prof.get("cnn_op_overhead_s", {})}.items())),
           "conv_eff_by_intensity": _rate_table(prof.get("conv_by_intensity") or {}, slots),
           "encoder_attn_eff_by_context": _rate_table(prof.get("encoder_attention_by_context") or {}, slots)}
    data = base.model_dump()
    data.update(description=f"measured profile of {prof['device']} ({prof['date']}): engine fractions 1.0 on measured "
                            "peaks; conv, attention, vector and pooling fractions are measured ratios to those peaks",
                fitted_by="planner.measure.microbench", fitted_on=prof["date"], fit_mdape_pct=gemm_fit_mdape(prof),
                fitted_parameters=["precisions.*.eff_by_intensity (per swept M)",
                                   "precisions.*.overlap_p", "engines.*.overlap_p (the fp32 one)"],
                engines={e: eng for e in ("optimized", "compiled", "eager")},
                precisions=_precision_effs(prof, bw, int8_scheme, r_host))
    return data


def _eager_body_scales(bench: dict, acc, cal) -> tuple[tuple[str, float], ...]:
    """The measured eager bodies of the small ops over the roofline's for the same calls (eager_ops.body_scales),
    the roofline being this profile's own without the factors."""
    from planner import catalog
    from planner.api import roofline_rows
    from planner.arch.pipeline import compile_model
    from planner.measure.eager_ops import body_scales, body_spec
    from planner.quant import load_precision
    plan = compile_model(body_spec(bench["arch"]), load_precision(bench.get("dtype", "fp32")), {})
    memo: dict[int, list[dict]] = {}

    def body(name: str, tokens: int) -> float:
        if tokens not in memo:
            with catalog.use_calibration(cal):
                memo[tokens] = roofline_rows(plan, acc, plan.precision.id, 1, tokens, 1, 1, "eager", "prefill")
        row = next((r for r in memo[tokens] if r["name"] == name), None)   # the layers' op (final norm after)
        return (row["time_s"] - row["overhead_s"]) / row["count"] if row else 0.0
    return body_scales(bench, body)


def read_bandwidth(prof: dict) -> float:
    """The device's achievable streaming-read rate: the best of a large sum and of the GEMV weight streams
    (the core caps a precision's GEMM streaming efficiency at 1.0 of this figure, so it must be the highest)."""
    return max([prof["memory"]["read_bytes_s"]] + [gemm_fit(prof, s)["stream_bytes_s"] for s in prof["gemm"]])


def plain_read_frac(prof: dict) -> float:
    """The engine's streaming fraction: a large sum's read rate over the device bandwidth (read_bandwidth, the
    best GEMV weight stream). Ops without a GEMM sweep of their own (decode attention's KV reads, embeddings,
    norms) stream like the sum; each GEMM scheme's mem_scale lifts its weights back to its own GEMV rate (at most
    1.5x, PrecisionEff's bound: so the fraction is at least 1/1.5; 21.7 / 28.4 GB/s = 0.76 on this project's CPU)."""
    return min(max(prof["memory"]["read_bytes_s"] / read_bandwidth(prof), 1 / 1.5), 1.0)


def measured_id(device: str) -> str:
    return f"measured-{device}"


@contextmanager
def use_profile(prof: dict, state: dict | None = None, int8_scheme: str = "int8"):
    """Register the profile's accelerator (scaled to ``state`` if given) and evaluate with its calibration;
    yields the accelerator id."""
    from planner import catalog
    acc, cal = roofline_for_profile(prof, state, int8_scheme)
    catalog.register_accelerator(acc)
    try:
        with catalog.use_calibration(cal):
            yield acc.id
    finally:
        catalog.unregister_accelerator(acc.id)


# ------------------------------------------------------------------------------------------ GEMM sweep fit

OVERLAP_GRID = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 16.0, 64.0]
EFF_CAP = 2.0        # a point faster than its memory time needs no compute time: efficiency capped here


def _sweep_arrays(g: dict):
    import numpy as np
    pts = g["points"]
    col = lambda k: np.array([p[k] for p in pts], dtype=float)  # noqa: E731
    return col("m"), 2.0 * col("m") * col("k") * col("n"), col("weight_bytes"), col("act_bytes"), col("seconds")


def _predict_points(flops, wb, ab, peak, stream, p_exp, eff, launch):
    import numpy as np
    tc = flops / (peak * eff)
    tm = (wb + ab) / stream
    hi, lo = np.maximum(tc, tm), np.minimum(tc, tm)
    return hi * (1.0 + (lo / hi) ** p_exp) ** (1.0 / p_exp) + launch


def _table_for(m, flops, wb, ab, meas, peak, stream, p_exp, launch):
    """Per distinct M: the compute efficiency (median over the sweep's shapes) that makes the roofline with
    overlap ``p_exp`` reproduce the measured time; returned as ((FLOPs per weight byte, efficiency), ...)."""
    import numpy as np
    tm = (wb + ab) / stream
    t = np.maximum(meas - launch, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.where(t > tm * 1.0001, (t ** p_exp - tm ** p_exp) ** (1.0 / p_exp), 0.0)
        eff = np.where(need > 0, flops / peak / need, EFF_CAP)
    eff = np.clip(eff, 0.01, EFF_CAP)
    table = []
    for mv in np.unique(m):
        sel = m == mv
        table.append((float(np.median(flops[sel] / wb[sel])), float(np.median(eff[sel]))))
    return tuple(sorted(table))


def gemm_fit(prof: dict, scheme: str) -> dict:
    """A scheme's GEMM sweep as the roofline sees it: the large-M rate (median over M >= 128, as measured), the
    M=1 streaming rate, a compute-efficiency table by FLOPs per weight byte (one entry per swept M: what makes
    the roofline reproduce the median shape at that M) and the overlap exponent p that, with that table,
    reproduces every point best (least mean |log error|). Derived from the stored points only; memoised on them
    (validating a directory of runs fits the same sweeps hundreds of times: 7 ms each, most of a validation)."""
    g = prof["gemm"][scheme]
    key = tuple((p["m"], p["k"], p["n"], p["seconds"], p["weight_bytes"], p["act_bytes"]) for p in g["points"])
    return dict(_gemm_fit_of(key, float(prof.get("launch_overhead_s", 0.0)), float(g["achievable_flops_s"]),
                             float(g["stream_bytes_s"])))


@functools.lru_cache(maxsize=512)
def _gemm_fit_of(points: tuple, launch_s: float, peak: float, stored_stream: float) -> dict:
    import numpy as np
    m, flops, wb, ab, meas = _sweep_arrays({"points": [dict(zip(("m", "k", "n", "seconds", "weight_bytes", "act_bytes"), p))
                                                       for p in points]})
    # the GEMV line from the stored points (a profile written before it existed gets it too): its intercept is
    # a fixed cost of every call of this scheme's kernel, added beside the launch overhead at every M
    small = m == m.min()
    call, stream = gemv_line(zip(wb[small] + ab[small], meas[small]))
    if call == 0.0:
        stream = stored_stream                    # no line: the sweep's own median rate, as stored
    launch = launch_s + call
    best = None
    for p_exp in OVERLAP_GRID:
        table = _table_for(m, flops, wb, ab, meas, peak, stream, p_exp, launch)
        xs, es = np.array(table).T
        eff = np.interp(np.log(flops / wb), np.log(xs), es)
        pred = _predict_points(flops, wb, ab, peak, stream, p_exp, eff, launch)
        err = float(np.abs(np.log(pred / meas)).mean())
        if best is None or err < best[0]:
            best = (err, p_exp, table, pred)
    _, p_exp, table, pred = best
    return {"peak_flops_s": peak, "overlap_p": p_exp, "eff_by_intensity": table, "stream_bytes_s": stream,
            "call_overhead_s": call, "mdape_pct": float(np.median(np.abs(pred / meas - 1.0)) * 100),
            "points": int(meas.size)}


def fit_overlap(prof: dict) -> float:
    """The engine-wide overlap p (for ops without a scheme of their own): the fp32 sweep's."""
    return gemm_fit(prof, "fp32")["overlap_p"] if "fp32" in prof["gemm"] else 2.0


def gemm_fit_mdape(prof: dict) -> float:
    """MdAPE of the fitted roofline over every GEMM point of the schemes the recipes run."""
    import numpy as np
    errs = []
    for scheme, g in prof["gemm"].items():
        if scheme not in PRECISION_OF:        # informational kernels (fbgemm, _int_mm on CPU) the recipes do not run
            continue
        f = gemm_fit(prof, scheme)
        _, flops, wb, ab, meas = _sweep_arrays(g)
        xs, es = np.array(f["eff_by_intensity"]).T
        eff = np.interp(np.log(flops / wb), np.log(xs), es)
        pred = _predict_points(flops, wb, ab, f["peak_flops_s"], f["stream_bytes_s"], f["overlap_p"], eff,
                               prof.get("launch_overhead_s", 0.0) + f["call_overhead_s"])
        errs += list(np.abs(pred / meas - 1.0) * 100)
    return float(np.median(errs)) if errs else float("nan")


def load_profile(path: Path) -> dict:
    import json
    try:
        prof = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PlannerError(f"cannot read device profile '{path}': {e}") from None
    for k in ("device", "gemm", "memory", "launch_overhead_s", "overlap_p", "meta"):
        if k not in prof:
            raise PlannerError(f"device profile '{path}' lacks '{k}' (re-run planner microbench)")
    return prof
