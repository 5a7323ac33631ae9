"""One measured run: build the model, apply the precision recipe, time prefill and decode (or the vision
forward) region by region, and write the run (CSV + metadata JSON, atomically) under the measurements root.

Decode: the prompt is prefilled once (untimed), then each repetition runs ``output_len - 1`` decode steps over
the same cache positions, so the mean step attends the mean context ``input_len + output_len / 2`` that the
cost model's decode row uses.
"""
from __future__ import annotations

import resource
import statistics
from pathlib import Path

from planner.errors import PlannerError, check_positive_int
from planner.specs import CnnArch, DecoderArch, ModelSpec

GUARD_FRACTION = 0.6        # of the host memory available at the start: past it, the kept heap is handed back
OP_NAMES = {"embed", "norm", "quant", "attn_qkv", "rope", "attn_score", "attn_out", "mlp_up", "mlp_act",
            "mlp_down", "lm_head", "patch_embed", "attn_window", "patch_merge", "head", "conv", "act", "pool", "fc",
            "concat", "add"}


def check_device(device: str) -> str:
    import torch
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PlannerError(f"device '{device}' requested but CUDA is not available on this machine")
        return device
    raise PlannerError(f"device must be cpu or cuda[:N], got '{device}'")


def _progress(total: int, desc: str):
    import sys

    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="rep", file=sys.stderr, disable=None, leave=False)


def _rows(timing) -> list[dict]:
    out = []
    for r in timing.rows:
        out.append(_row(timing.phase, r.name, r.scope, r.instances, r.times, r.flops, r.kernels, r.wall))
    # "step": the end-to-end time of a forward step without the profiler (what a user gets); "step_profiled":
    # the same repetitions' steps under the profiler (the op rows' context)
    out.append(_row(timing.phase, "step", "model", 1.0, timing.step_unprofiled or timing.step_times, 0.0, 0, None))
    out.append(_row(timing.phase, "step_profiled", "model", 1.0, timing.step_times, 0.0, 0, timing.step_wall))
    return out


def _row(phase, name, scope, instances, times, flops, kernels, wall) -> dict:
    med, best = statistics.median(times), min(times)
    return {"phase": phase, "name": name, "scope": scope, "instances": instances, "measured_s": best,
            "wall_s": min(wall) if wall else None,
            "median_s": med, "min_s": best, "max_s": max(times),
            "spread_pct": (max(times) - best) / med * 100 if med else 0.0,
            "reps": len(times), "rep_times_s": ";".join(f"{t:.6g}" for t in times), "profiler_flops": flops,
            "kernels": kernels}


def check_measurable(spec: ModelSpec, precision: str) -> None:
    """Refuse a model kind or a (CNN, precision) pair the backend does not build."""
    if isinstance(spec.arch, CnnArch) and precision not in ("fp32", "bf16", "fp16"):
        raise PlannerError(f"{precision} is not measured for CNNs (no int8/fp8 convolution recipe yet): use fp32/bf16/fp16")
    if spec.arch.kind == "pipeline":
        raise PlannerError(f"model '{spec.id}' ({spec.arch.kind}) is not built by the measurement backend: decoder LLMs, "
                           "ViTs, Swins and CNNs are; for a pipeline measure its parts (e.g. its vision encoder and its LLM)")


def check_run_fits(spec: ModelSpec, layers: int | None, recipe, device: str, batch: int, input_len: int,
                   output_len: int) -> None:
    """Refuse, with advice, a run whose weights, KV cache, activations and flush buffer would not fit in this
    device's memory (planner.measure.footprint)."""
    import torch

    from planner.measure.footprint import available_bytes, check_fits, run_footprint
    from planner.measure.profiler import flush_bytes
    act = torch.empty(0, dtype=recipe.act_dtype).element_size()
    parts = run_footprint(spec, layers, act, batch, input_len, output_len, flush_bytes(device))
    n = getattr(spec.arch, "n_layers", None)
    scope = f"{min(layers, n) if layers and n else 'all'} layers" if spec.arch.kind != "cnn" else "all layers"
    what = (f"{spec.id} ({scope}, {recipe.act_dtype} before quantization) at batch {batch}"
            + (f", input {input_len}" if isinstance(spec.arch, DecoderArch) else ""))
    check_fits(parts, available_bytes(device), what)


def _existing_profile(out_root: Path | None, dev_id: str) -> dict | None:
    """The device profile the run will be validated against, if there is one already (to probe its points)."""
    import json

    from planner.measure.runs import profile_path
    from planner.validate import MEASUREMENTS_ROOT
    try:
        return json.loads(profile_path(out_root or MEASUREMENTS_ROOT, dev_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_reps(device: str) -> int:
    """Timed repetitions per phase: 9 on a CPU, 5 on CUDA. A shared CPU host's repetitions spread widely (one
    Llama-2-7B w8a8 batch-1 prefill here: 104-261 ms over 5 repetitions), and the median of 5 samples of such a
    spread moves by ~15 %, the size of the target; 9 narrow that for ~40 % more run time. A GPU's repetitions
    agree within a few per cent, and its campaign's time is scarce."""
    return 5 if device.startswith("cuda") else 9


def measure_model(spec: ModelSpec, precision: str, *, batch: int = 1, input_len: int = 128, output_len: int = 16,
                  layers: int | None = None, device: str = "cpu", reps: int | None = None, warmup: int = 1,
                  out_root: Path | None = None, int8_backend: str = "auto", alpha: float = 0.5, trace: bool = True,
                  progress: bool = True) -> dict:
    """Measure one (model, precision, batch) and write it under ``out_root`` (None: do not write).
    Returns the run's metadata (with ``rows`` and, when written, ``csv``/``json`` paths)."""
    import torch

    from planner.measure import recipes as rc
    from planner.measure.models import STEP_REGION, build_model, region
    from planner.measure.power import EnergyCounter, PowerSampler, measured_phase_power
    from planner.measure.profiler import Flusher, sync, time_phase
    from planner.measure.runs import command_line, device_id, device_info, now_iso, run_dir, write_csv, write_json

    device = check_device(device)
    reps = default_reps(device) if reps is None else reps
    if reps < 1:
        raise PlannerError(f"reps must be a positive integer, got {reps}")
    from planner.measure.allocator import MemoryGuard, keep_freed_memory, release_freed_memory
    from planner.measure.footprint import available_bytes
    allocator = keep_freed_memory()
    release_freed_memory()                             # what an earlier run of this process kept is not ours
    guard = MemoryGuard(GUARD_FRACTION * available_bytes("cpu"))
    batch, reps = check_positive_int("batch", batch), check_positive_int("reps", reps)
    warmup = check_positive_int("warmup", warmup, allow_zero=True)
    if layers is not None:
        layers = check_positive_int("layers", layers)
    asked = precision
    precision = rc.measured_precision(precision, device, int8_backend)    # on CPU w8a8 runs in its fbgemm form
    recipe = rc.make_recipe(precision, device, int8_backend)
    a = spec.arch
    llm = isinstance(a, DecoderArch)
    if llm:
        input_len, output_len = check_positive_int("input_len", input_len), check_positive_int("output_len", output_len)
        if input_len + output_len > a.max_context:
            raise PlannerError(f"input_len + output_len = {input_len + output_len} exceeds {spec.id}'s context {a.max_context}")
    check_measurable(spec, precision)
    check_run_fits(spec, layers, recipe, device, batch, input_len, output_len)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model, n_built, n_total = build_model(spec, layers, recipe.act_dtype, device)
    gen = torch.Generator(device="cpu").manual_seed(0)

    if llm:
        model.allocate(batch, input_len + output_len, recipe.kv_dtype)
        vocab = a.vocab_size
        prompt = torch.randint(0, vocab, (batch, input_len), generator=gen).to(device)
        cal_tokens = torch.randint(0, vocab, (min(batch, 2), min(input_len, 64)), generator=gen).to(device)

        def calibrate():
            saved = model.caches
            model.allocate(cal_tokens.shape[0], cal_tokens.shape[1] + 1, recipe.kv_dtype)
            model(cal_tokens, 0)
            model.caches = saved
    else:
        shape = (a.channels, a.image_size, a.image_size)
        images = torch.randn(batch, *shape, generator=gen).to(device=device, dtype=recipe.act_dtype)
        cal_images = torch.randn(1, *shape, generator=gen).to(device=device, dtype=recipe.act_dtype)

        def calibrate():
            model(cal_images)
    notes = rc.apply_recipe(model, recipe, calibrate, alpha)
    if llm:
        model.allocate(batch, input_len + output_len, recipe.kv_dtype)
    notes["linear_check_rel_error"] = rc.linear_check(recipe, device)
    flusher = Flusher(device)
    dev_id = device_id(device)
    out_dir = run_dir(out_root, dev_id, spec.id, precision) if out_root is not None else None
    stamp = now_iso().replace(":", "").replace("-", "")[:15]
    run_id = f"b{batch}" + (f"-i{input_len}-o{output_len}" if llm else "") + f"-l{n_built}-{stamp}"
    trace_path = (out_dir / f"{run_id}.trace.json.gz") if (trace and out_dir is not None) else None
    timings = []
    from planner.measure.probe import probe_plan, run_probe
    from planner.measure.probe import kernel_probe_plan
    existing = _existing_profile(out_root, dev_id)
    plan = probe_plan(existing, device)
    kplan = kernel_probe_plan(existing, f"int8-{recipe.int8_backend}" if recipe.int8_backend else None)
    probes = [run_probe(device, flusher, plan=plan)]   # device state before the phases (see planner.measure.probe),
    kprobes = [run_probe(device, flusher, plan=kplan)] if kplan else []   # the int8 kernel's own, where probed

    def sample() -> bool:                              # ... one sample before every repetition ...
        trimmed = guard.check()
        probes.append(run_probe(device, flusher, reps=1, plan=plan))
        if kplan:
            kprobes.append(run_probe(device, flusher, reps=1, plan=kplan))
        return trimmed                                 # True: time_phase re-warms before timing
    steps_dec = max(output_len - 1, 1) if llm else 0
    total = (reps + warmup) * (2 if llm else 1)
    bar = _progress(total, f"{spec.id} {precision} b{batch}") if progress else None
    energy = EnergyCounter(device)
    with torch.no_grad(), PowerSampler(device) as power:
        if llm:
            def prefill_rep(flush):
                flush()
                with region(STEP_REGION):
                    model(prompt, 0)
                    sync(device)
            timings.append(time_phase("prefill", prefill_rep, steps=1, reps=reps, warmup=warmup, device=device,
                                      flusher=flusher, op_names=OP_NAMES, between=sample, trace_path=trace_path,
                                      progress=bar, energy=energy))
            model(prompt, 0)                                     # fill the cache once
            nxt = torch.randint(0, a.vocab_size, (batch, 1), generator=gen).to(device)

            def decode_rep(flush):
                for k in range(steps_dec):
                    flush()
                    with region(STEP_REGION):
                        model(nxt, input_len + k)
                        sync(device)
            timings.append(time_phase("decode", decode_rep, steps=steps_dec, reps=reps, warmup=warmup, device=device,
                                      flusher=flusher, op_names=OP_NAMES, between=sample, progress=bar,
                                      energy=energy))
        else:
            def vision_rep(flush):
                flush()
                with region(STEP_REGION):
                    model(images)
                    sync(device)
            timings.append(time_phase("vision", vision_rep, steps=1, reps=reps, warmup=warmup, device=device,
                                      flusher=flusher, op_names=OP_NAMES, between=sample, trace_path=trace_path,
                                      progress=bar, energy=energy))
    probes.append(run_probe(device, flusher, plan=plan))   # ... and after them
    if kplan:
        kprobes.append(run_probe(device, flusher, plan=kplan))
    if bar is not None:
        bar.close()
    rows = [r for t in timings for r in _rows(t)]
    meta = {"run": run_id, "device": dev_id, "model": spec.id, "precision": precision, "requested_precision": asked,
            "precision_note": rc.cpu_form_note(asked, precision), "batch": batch,
            "input_len": input_len if llm else None, "output_len": output_len if llm else None,
            "decode_steps": steps_dec if llm else None, "layers_measured": n_built, "layers_total": n_total,
            "reps": reps, "warmup": warmup, "date": now_iso(), "command": command_line(),
            "timer": timings[0].timer,
            "timer_note": "cpu-thread: CPU time of the calling thread inside each region (one intra-op thread); "
                          "wall: profiler wall time; cuda-device: kernel time. wall_s is the profiler's wall time.",
            "end_to_end_note": "the 'step' rows (end to end) time repetitions run without the profiler, interleaved "
                               "with the profiled ones that give the op rows ('step_profiled': their steps)",
            "statistic": "measured_s = minimum over repetitions (timeit's advice: higher values are mostly other "
                         "processes interfering; this is a shared machine), median_s beside it; "
                         "spread_pct = (max - min) / median",
            "allocator": allocator, "allocator_guard": guard.note(), "allocator_trims": guard.trims,
            "device_state_probes": probes, "kernel_state_probes": kprobes or None,
            # the profile in place when the run was measured (kept under <device>/profiles/ once replaced)
            "profile_date_at_run": (existing or {}).get("date"),
            "device_state_note": "GEMM points of the profile's sweep (an M=1 GEMV: memory, an M=128 GEMM: "
                                 "compute) timed before the phases, before every repetition and after the phases; "
                                 "validation scales the profile by the medians of these samples over its reference "
                                 "probes' (planner.measure.probe)",
            "cache_flush_bytes": flusher.buf.numel() * 4, "recipe": notes, "act_dtype": str(recipe.act_dtype),
            "kv_dtype": str(recipe.kv_dtype), "device_info": device_info(device),
            "peak_memory_bytes": (torch.cuda.max_memory_allocated() if device.startswith("cuda")
                                  else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.startswith("cuda") else "process max RSS",
            "power": ({**power.summary(), "energy_counter_error": energy.error}
                      if device.startswith("cuda") else None),
            "phases": {t.phase: {"steps": t.steps, "step_times_s": t.step_unprofiled,
                                 "median_s": statistics.median(t.step_unprofiled), "min_s": min(t.step_unprofiled),
                                 "profiled_step_times_s": t.step_times, "wall_s": t.step_wall,
                                 "cpu_share": t.cpu_share,
                                 "power": measured_phase_power(t.rep_energy_j, t.rep_wall_s)} for t in timings},
            "cpu_share_note": "process CPU time / (wall time x threads) per repetition: well below 1 on a CPU "
                              "means other processes took cores during the run (contended timing)",
            "model_spec": spec.model_dump(mode="json")}
    if out_dir is not None:
        csv_path, json_path = out_dir / f"{run_id}.csv", out_dir / f"{run_id}.json"
        meta["trace"] = trace_path.name if trace_path is not None else None
        write_csv(csv_path, rows)
        write_json(json_path, meta)
        meta = {**meta, "csv": str(csv_path), "json": str(json_path)}
    return {**meta, "rows": rows}
