"""What a measured run will hold in memory, checked before it starts: a run that cannot fit gets a one-line
refusal instead of the kernel's OOM killer (which ends the process without a word, after the configurations
before it have taken minutes).

The eager torch model holds, at the peak of a prefill, the weights (built in the activation dtype, quantized
after), the KV cache, the prefill's live activations and the cache-flush buffer. The activation term is
``tokens x (4 d_ff + 8 d_model) x bytes``: the gated MLP's gate, up, product and output plus the residual
stream, normed input, Q/K/V and attention output. Measured on this project's CPU for Llama-2-7B fp32, 2 layers,
batch 8, input 512 (4096 tokens), default glibc allocator: 5.6 GB peak RSS; this estimate, with the
0.5 GB runtime below, 6.0 GB. Vision models and CNNs: weights only (their activations are small at the batches measured).
"""
from __future__ import annotations

from planner.errors import PlannerError
from planner.specs import DecoderArch, ModelSpec

RUNTIME_BYTES = 0.5e9      # torch, its kernels' libraries and the profiler (process RSS before a model: ~0.3 GB)
FIT_FRACTION = 0.9         # of the memory available: the rest is for the allocator's slack


def run_footprint(spec: ModelSpec, layers: int | None, act_bytes: int, batch: int, input_len: int,
                  output_len: int, flush_bytes: int) -> dict[str, float]:
    """Bytes a run needs, by part."""
    from planner.arch.params import param_count
    a = spec.arch
    scoped = spec
    n = getattr(a, "n_layers", None)
    if layers is not None and n and a.kind != "cnn":
        scoped = spec.model_copy(update={"arch": a.model_copy(update={"n_layers": min(layers, n)})})
    parts = {"weights": float(param_count(scoped) * act_bytes), "kv_cache": 0.0, "activations": 0.0,
             "cache_flush": float(flush_bytes), "runtime": RUNTIME_BYTES}
    if isinstance(a, DecoderArch):
        n_l = scoped.arch.n_layers
        parts["kv_cache"] = float(2 * n_l * batch * (input_len + output_len) * a.n_kv_heads * a.hd * act_bytes)
        parts["activations"] = float(batch * input_len * (4 * a.d_ff + 8 * a.d_model) * act_bytes)
    return parts


def check_fits(parts: dict[str, float], have: float, what: str) -> None:
    """Refuse, naming the parts and the remedies, a run whose footprint exceeds the memory it may use."""
    need = sum(parts.values())
    if have and need > FIT_FRACTION * have:
        detail = ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.1f}" for k, v in parts.items() if v)
        raise PlannerError(f"{what} needs ~{need / 1e9:.1f} GB ({detail} GB) and this device has {have / 1e9:.1f} GB "
                           f"available: measure fewer layers (--layers N; the validation scales them), a smaller "
                           f"--batch or a shorter --input-len")


def available_bytes(device: str) -> float:
    """Memory a run may use: the GPU's total on CUDA; on a CPU, MemAvailable (free plus reclaimable caches)."""
    from pathlib import Path
    if device.startswith("cuda"):
        import torch
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return float(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    from planner.measure.runs import _mem_total_bytes
    return float(_mem_total_bytes())
