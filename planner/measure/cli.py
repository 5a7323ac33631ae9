"""`planner microbench | measure | validate | smoothquant` (registered by planner/cli.py's plugin list).

torch is imported inside the handlers only. Bad input raises PlannerError (one line, exit code 2).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from planner.errors import PlannerError


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PlannerError(f"{what} must be a comma-separated list of numbers, got '{text}'") from None


def _ints(text: str, what: str) -> list[int]:
    vals = _floats(text, what)
    if not vals or any(v != int(v) or v < 1 for v in vals):
        raise PlannerError(f"{what} must be a comma-separated list of positive integers, got '{text}'")
    return [int(v) for v in vals]


def _threads(n):
    if n is not None:
        import torch
        if n < 1:
            raise PlannerError(f"--threads must be a positive integer, got {n}")
        torch.set_num_threads(n)


def register(sub, add_common) -> dict:
    p = sub.add_parser("microbench", help="measure this device's achievable GEMM rates, bandwidth, launch overhead")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--out", default=None, help="measurements root (default data/measurements); writes <device>/profile.json")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not a profile to rely on)")
    p.add_argument("--reps", type=int, default=None, help="timed rounds over the GEMM points (default 11, quick 2)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    add_common(p)
    m = sub.add_parser("measure", help="time a model's ops per precision and batch; writes measured runs")
    m.add_argument("--model", required=True, help="model id (planner models): decoder LLMs, ViTs, CNNs")
    m.add_argument("--precision", default="fp32", help="comma-separated: fp32,bf16,fp16,fp8,w8a8[-o1|-o2|-o3],w8a8-f32,"
                   "w8a8-o2-f32,w8a16,w4a16; on CPU the default backend runs w8a8, -o3 and -o2 in their fp32-activation "
                   "fbgemm forms (w8a8-f32, w8a8-o2-f32)")
    m.add_argument("--batch", default="1", help="comma-separated batch sizes")
    m.add_argument("--input-len", type=int, default=128)
    m.add_argument("--output-len", type=int, default=16)
    m.add_argument("--layers", type=int, default=None, help="layers to build and time (scaled to the model in validation)")
    m.add_argument("--device", default="cpu")
    m.add_argument("--out", default=None, help="measurements root (default data/measurements)")
    m.add_argument("--reps", type=int, default=None, help="timed repetitions per phase, each once unprofiled and once "
                   "profiled (default 9 on a CPU, 5 on CUDA)")
    m.add_argument("--warmup", type=int, default=1)
    m.add_argument("--int8-backend", default="auto", help="w8a8 GEMM kernel: auto (CUDA: int_mm; CPU: fbgemm "
                   "forms of O2/O3, onednn for O1), onednn, fbgemm (CPU), int_mm")
    m.add_argument("--alpha", type=float, default=0.5, help="SmoothQuant migration strength")
    m.add_argument("--threads", type=int, default=None)
    m.add_argument("--no-trace", action="store_true", help="do not keep the compressed profiler trace")
    add_common(m)
    v = sub.add_parser("validate", help="predicted vs measured per op and end to end, and speed-ups")
    v.add_argument("run", help="a measured run (.csv, .json or stem) or a folder of runs")
    v.add_argument("--profile", default=None, help="device profile JSON (default: <root>/<device>/profile.json)")
    v.add_argument("--statistic", default="median", choices=["median", "min"],
                   help="profile and run both at their median (typical) or minimum (best-case) repetitions; the "
                        "other is reported beside (default median)")
    st = v.add_mutually_exclusive_group()
    st.add_argument("--scale-to-device-state", dest="device_state", action="store_const", const=True,
                    help="predict from the profile scaled to the device state the run probed (the default for "
                         "profiles whose reference probes span their sweep); the profile as measured is beside")
    st.add_argument("--as-measured", dest="device_state", action="store_const", const=False,
                    help="predict from the profile as measured; the scaled one is beside")
    add_common(v)
    s = sub.add_parser("smoothquant", help="W8A8 accuracy with and without SmoothQuant on all-MiniLM-L6-v2")
    s.add_argument("--alpha", default="0,0.25,0.5,0.75,1")
    s.add_argument("--granularity", default="per-token,per-tensor-dynamic,per-tensor-static")
    s.add_argument("--sentences", default=None, help="text file, one sentence a line (default: the radiology set)")
    s.add_argument("--out", default=None, help="study JSON (default data/measurements/smoothquant/study.json)")
    add_common(s)
    return {"microbench": cmd_microbench, "measure": cmd_measure, "validate": cmd_validate,
            "smoothquant": cmd_smoothquant}


def _root(out) -> Path:
    from planner.measure.runs import MEASUREMENTS_DIR
    return Path(out) if out else MEASUREMENTS_DIR


def profile_summary(prof: dict, path, acc_id: str) -> list[str]:
    """The lines `planner microbench` prints for a profile: rates per GEMM scheme over M, memory, launch, eager
    small ops, attention and convolution rates (the tables the roofline reads), overlap, warnings."""
    from planner.measure.probe import drift_note, unsteady_note
    out: list[str] = []
    out.append(f"{prof['device']}: {prof['meta']['name']}  ->  {path}")
    out.append(f"{'scheme':<12} {'GFLOP/s':>12} {'M=1 GB/s':>9} {'call ms':>8}   rate over M (GFLOP/s; achievable = median "
               "of M >= 128; M=1: GEMV line, bytes/s and fixed ms per call)")
    for s, g in prof["gemm"].items():
        pts = "  ".join(f"{p['m']}:{p['flops_s'] / 1e9:.0f}" for p in g["points"])
        out.append(f"{s:<12} {g['achievable_flops_s'] / 1e9:>12.1f} {g['stream_bytes_s'] / 1e9:>9.1f} "
                   f"{g.get('call_overhead_s', 0.0) * 1e3:>8.3f}   {pts}")
    mem = prof["memory"]
    out.append(f"memory copy {mem['copy_bytes_s'] / 1e9:.1f} GB/s (read+write), read {mem['read_bytes_s'] / 1e9:.1f} GB/s; "
               f"launch overhead {prof['launch_overhead_s'] * 1e6:.1f} us; vector {prof['vector_flops_s'] / 1e9:.1f} GFLOP/s")
    eager = prof.get("eager_op_overhead_s") or {}
    if eager:
        out.append("eager small ops, fixed cost per call (cold, as in a decode step): "
                   + ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in eager.items()))
    cnn = prof.get("cnn_op_overhead_s") or {}
    if cnn:
        out.append("CNN small ops, fixed cost per call (tiny-width DenseNet-121 and ResNet-50 passes): "
                   + ", ".join(f"{k.removeprefix('cnn.')} {v * 1e6:.0f} us" for k, v in cnn.items()))
    for key, label, unit in (("attention_flops_s", "causal attention (SDPA, prefill)", "GFLOP/s"),
                             ("conv_flops_s", "convolution mix", "GFLOP/s")):
        if prof.get(key):
            out.append(f"{label}: " + ", ".join(f"{d} {v / 1e9:.1f} {unit}" for d, v in prof[key].items()))
    for key, label, what in (("encoder_attention_by_context", "encoder attention", "keys attended"),
                             ("conv_by_intensity", "convolutions", "FLOPs per weight byte")):
        for d, pts in (prof.get(key) or {}).items():
            xs = [x * (4 if d == "fp32" else 2) if key.startswith("encoder") else x for x, _ in pts]
            out.append(f"{label} by {what} ({d}, GFLOP/s): "
                       + "  ".join(f"{x:g}:{r / 1e9:.0f}" for x, (_, r) in zip(xs, pts)))
    out.append(f"roofline overlap p = {prof['overlap_p']:g} (fitted to this GEMM sweep, MdAPE "
               f"{prof['gemm_fit_mdape_pct']:.1f} %); session accelerator id: {acc_id}")
    for note in (unsteady_note(prof), drift_note(prof["vs_previous"])):
        if note:
            out.append(f"warning: {note}")
    return out


def cmd_microbench(args) -> int:
    from planner.measure.harness import _progress, check_device
    from planner.measure.microbench import roofline_for_profile, run_microbench
    from planner.measure.runs import archive_profile, profile_path, write_json
    device = check_device(args.device)
    _threads(args.threads)
    if args.reps is not None and args.reps < 1:
        raise PlannerError(f"--reps must be a positive integer, got {args.reps}")
    bar = _progress((args.reps or (2 if args.quick else 7)) + 1, "microbench")
    prof = run_microbench(device, quick=args.quick, reps=args.reps, progress=bar)
    bar.close()
    path = profile_path(_root(args.out), prof["device"])
    from planner.measure.probe import vs_previous
    from planner.measure.runs import device_profiles
    prof["vs_previous"] = vs_previous(prof, device_profiles(path))
    kept = archive_profile(path)
    write_json(path, prof)
    if kept is not None and not args.json:
        print(f"the previous profile is kept as {kept} (planner validate --profile {kept} checks a run against it)")
    acc, _ = roofline_for_profile(prof)
    if args.json:
        print(json.dumps({"profile": str(path), "previous_profile_kept": str(kept) if kept else None, **prof},
                         indent=1, default=str))
        return 0
    print("\n".join(profile_summary(prof, path, acc.id)))
    return 0


def cmd_measure(args) -> int:
    from planner import catalog
    from planner.measure.harness import measure_model
    spec = catalog.load_model(args.model)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions:
        raise PlannerError("--precision is empty")
    batches = _ints(args.batch, "--batch")
    if args.reps is not None and args.reps < 1:
        raise PlannerError(f"--reps must be a positive integer, got {args.reps}")
    _threads(args.threads)
    out = []
    from planner.measure.recipes import cpu_form_note, make_recipe, measured_precision
    from planner.measure.harness import check_device, check_measurable, check_run_fits
    device = check_device(args.device)
    for prec in precisions:                  # every configuration fits before the first one takes minutes
        measured = measured_precision(prec, device, args.int8_backend)
        recipe = make_recipe(measured, device, args.int8_backend)
        check_measurable(spec, measured)
        for b in batches:
            check_run_fits(spec, args.layers, recipe, device, b, args.input_len, args.output_len)
    for prec in precisions:
        note = cpu_form_note(prec, measured_precision(prec, args.device, args.int8_backend))
        if note:
            print(f"note: {note}", file=sys.stderr)
        for b in batches:
            r = measure_model(spec, prec, batch=b, input_len=args.input_len, output_len=args.output_len,
                              layers=args.layers, device=args.device, reps=args.reps, warmup=args.warmup,
                              out_root=_root(args.out), int8_backend=args.int8_backend, alpha=args.alpha,
                              trace=not args.no_trace)
            out.append(r)
            if not args.json:
                ph = "  ".join(f"{k} {v['median_s'] * 1e3:.2f} ms/step" for k, v in r["phases"].items())
                print(f"{r['model']} {r['precision']} batch {r['batch']} ({r['layers_measured']}/{r['layers_total']} "
                      f"layers): {ph}  ->  {r['csv']}")
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k not in ("model_spec",)} for r in out], indent=1, default=str))
    return 0


def _fmt_ms(x):
    return "-" if x is None else f"{x * 1e3:.3f}"


def _fmt_pct(x):
    return "-" if x is None else f"{x:+.1f}"


def print_validation(v: dict) -> None:
    stat = v.get("statistic", "min")
    print(f"{v['model']} {v['precision']} batch {v['batch']} on {v['device']} (run {v['run']}; layers "
          f"{v['layers_measured']}/{v['layers_total']}); profile and run at their "
          + ("medians (typical repetitions)" if stat == "median" else "minima (fastest repetitions)")
          + (f"; the profile has no typical {', '.join(v['typical_missing'])} (minima used)"
             if v.get("typical_missing") else ""))
    st = v.get("device_state")
    if st:
        kern = st.get("kernel")
        drift = max(abs(st["compute"] - 1), abs(st["memory"] - 1), abs(kern["compute"] - 1) if kern else 0.0)
        print(f"  predictions: the device profile of {v['profile_date']} "
              + ("scaled to" if v.get("scaled_to_device_state") else "as measured; beside it scaled to")
              + f" the run's device state: compute x{st['compute']:.3f}, memory x{st['memory']:.3f} ({st['basis']})"
              + (f"; its int8 GEMMs x{kern['compute']:.3f} ({kern['basis']})" if kern else "")
              + ("; the probes read a device that changed speed since it was profiled: re-run planner microbench "
                 "right before measuring" if drift > 0.15 else ""))
    else:
        print(f"  predictions: the device profile of {v['profile_date']} as measured (the run has no device-state "
              "probe of the profile's points)")
    for k in ("profile_unsteady", "profile_drift"):
        if v.get(k):
            print(f"  warning: {v[k]}")
    print(f"  {'phase':<8} {'op':<12} {'predicted ms':>13} {'measured ms':>12} {'error %':>8} {'spread %':>9}  bound")
    for r in v["rows"]:
        spread = "-" if r["spread_pct"] is None else f"{r['spread_pct']:.1f}"
        print(f"  {r['phase']:<8} {r['name']:<12} {_fmt_ms(r['predicted_s']):>13} {_fmt_ms(r['measured_s']):>12} "
              f"{_fmt_pct(r['error_pct']):>8} {spread:>9}  {r['bound'] or r['note']}")
    for ph, s in v["e2e"].items():
        w = s["whole_model"]
        print(f"  end to end {ph:<8} predicted {_fmt_ms(s['predicted_s'])} ms, measured {_fmt_ms(s['measured_s'])} ms "
              f"(spread {s['spread_pct']:.1f} %): error {_fmt_pct(s['error_pct'])} %;  whole model "
              f"(layers x {w['layer_scale']:g}): {_fmt_ms(w['predicted_s'])} vs {_fmt_ms(w['measured_scaled_s'])} ms, "
              f"{_fmt_pct(w['error_pct'])} %")
        for k, what in (("unscaled_profile", "on the profile as measured (not scaled)"),
                        ("scaled_to_device_state", "on the profile scaled to the run's device state")):
            if k in s:
                sc = s[k]
                print(f"  {'':<19} {what}: predicted {_fmt_ms(sc['predicted_s'])} ms, error {_fmt_pct(sc['error_pct'])} %")
        for k in ("at_min", "at_median"):
            if k in s:
                o = s[k]
                print(f"  {'':<19} at {'minima (best case)' if k == 'at_min' else 'medians'}: predicted "
                      f"{_fmt_ms(o['predicted_s'])} ms, measured {_fmt_ms(o['measured_s'])} ms, error "
                      f"{_fmt_pct(o['error_pct'])} %")
        if s.get("power"):
            pw = s["power"]
            print(f"  {'':<19} board power: predicted {pw['predicted_w']:.0f} W, measured {pw['measured_w']:.0f} W "
                  f"(NVML energy counter), error {_fmt_pct(pw['error_pct'])} %")
    if "request" in v:
        r = v["request"]
        print(f"  request (prefill + {v['output_len'] - 1} decode steps): predicted {r['predicted_s']:.3f} s, "
              f"measured {r['measured_s']:.3f} s, error {_fmt_pct(r['error_pct'])} %")
    print(f"  op MdAPE {v['op_mdape_pct']:.1f} %")
    for k, s in v.get("speedups", {}).items():
        print(f"  speed-up {s['faster']} over {s['baseline']} ({s['phase']}): measured {s['measured']:.2f}x, "
              f"predicted {s['predicted']:.2f}x ({_fmt_pct(s['error_pct'])} %)")


def cmd_validate(args) -> int:
    from planner.validate import list_measured_runs, validate_run
    target = Path(args.run)
    if target.is_dir():
        runs = list_measured_runs(target)
        if not runs:
            raise PlannerError(f"no measured runs under '{target}'")
    else:
        runs = [target]
    prof = Path(args.profile) if args.profile else None
    results = [validate_run(r, prof, args.statistic, args.device_state) for r in runs]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 and not target.is_dir() else results, indent=1, default=str))
        return 0
    for v in results:
        print_validation(v)
        print()
    return 0


def cmd_smoothquant(args) -> int:
    from planner.measure.sq_study import STUDY_PATH, print_study, run_study
    alphas = _floats(args.alpha, "--alpha")
    grans = [g.strip() for g in args.granularity.split(",") if g.strip()]
    study = run_study(alphas, grans, Path(args.sentences) if args.sentences else None,
                      Path(args.out) if args.out else STUDY_PATH)
    if args.json:
        print(json.dumps(study["rows"], indent=1))
        return 0
    print_study(study)
    return 0
