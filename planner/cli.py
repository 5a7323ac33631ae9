"""`planner` command line: subcommands over the public API. Bad input -> one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import json
import math
import sys

import pandas as pd

EXIT_USAGE = 2


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_config(p: argparse.ArgumentParser, llm: bool = True) -> None:
    p.add_argument("--gpu", required=True, help="accelerator id (planner gpus)")
    p.add_argument("--model", required=True, help="model id (planner models)")
    p.add_argument("--precision", default="bf16", help="bf16, fp16, fp32, fp8, w8a8[-o1|-o2|-o3], w8a16, w4a16, llm-int8")
    p.add_argument("--batch", type=int, default=1, help="sequences (or images) per batch")
    p.add_argument("--input-len", type=int, default=None, help="prompt tokens (LLMs; pipelines add image tokens)")
    p.add_argument("--output-len", type=int, default=None, help="generated tokens")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    p.add_argument("--engine", default="optimized", help="optimized (TensorRT-LLM/vLLM-class), compiled, eager")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="planner", description="radplan: GPU capacity planner for radiology AI inference")
    ap.add_argument("--specs-dir", action="append", default=[], help="extra folder of accelerator YAML files")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_common(sub.add_parser("gpus", help="accelerators with dense peaks, memory, links, power, price"))
    _add_common(sub.add_parser("models", help="LLMs, vision models and radiology pipelines"))
    _add_common(sub.add_parser("precisions", help="quantization schemes"))
    p = sub.add_parser("predict", help="latency, throughput, memory, power of one configuration")
    _add_config(p)
    p.add_argument("--pp", type=int, default=1, help="pipeline-parallel degree")
    p.add_argument("--replicas", type=int, default=1, help="data-parallel replicas")
    _add_common(p)
    r = sub.add_parser("roofline", help="per-op table: FLOPs, bytes, intensity, bound, time")
    _add_config(r)
    r.add_argument("--phase", choices=["vision", "prefill", "decode", "all"], default="all")
    _add_common(r)
    s = sub.add_parser("summary", help="a short capacity summary on the default data")
    _add_common(s)
    for mod in _plugin_modules():       # subcommands of other parts (capacity planning, measurement)
        COMMANDS.update(mod.register(sub, _add_common))
    return ap


# Modules that add subcommands: each has register(subparsers, add_common) -> {name: handler(args) -> int}.
# Their heavy imports (torch, simpy) happen inside the handlers, so `planner gpus` stays fast.
PLUGIN_MODULES = ("planner.capacity_cli", "planner.measure.cli")


def _plugin_modules():
    import importlib
    out = []
    for name in PLUGIN_MODULES:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
                raise                   # the module exists but something it imports is missing: say so
    return out


def _fmt(x, digits=3) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:.{digits}g}"
    return str(x)


def cmd_gpus(args) -> int:
    import planner
    rows = []
    for gid in planner.list_gpus():
        a = planner.load_gpu(gid)
        pk = a.peak_dense
        ic = a.interconnect
        rows.append({"id": gid, "vendor": a.vendor, "name": a.name,
                     "fp32_tflops": pk.fp32_tflops, "bf16_tflops": pk.bf16_tflops, "fp16_tflops": pk.fp16_tflops,
                     "fp8_tflops": pk.fp8_tflops, "int8_tops": pk.int8_tops, "int4_tops": pk.int4_tops,
                     "memory_gb": a.memory.capacity_gb, "memory_tb_s": a.memory.bandwidth_gb_s / 1000,
                     "link": ic.link, "link_gb_s_per_direction": ic.all_to_all_gb_s_per_direction,
                     "tdp_w": a.power.tdp_w, "price_usd": a.price.purchase_usd,
                     "cloud_usd_per_gpu_hour": a.price.cloud_usd_per_gpu_hour})
    if args.json:
        print(json.dumps({"gpus": rows}, indent=1))
        return 0
    df = pd.DataFrame(rows).drop(columns=["name", "link"])
    print("Dense peaks (no sparsity); TFLOPS / TOPS; links per direction. Sources: planner gpus --json / hw_specs/")
    print(df.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:g}"))
    return 0


def cmd_models(args) -> int:
    import planner
    rows = []
    for mid in planner.list_models():
        m = planner.load_model(mid)
        a = m.arch
        row = {"id": mid, "name": m.name, "category": m.category, "kind": a.kind,
               "params_b": planner.param_count(m) / 1e9, "active_params_b": planner.active_params(m) / 1e9,
               "published_params_b": m.published.params / 1e9 if m.published else None}
        if a.kind == "decoder":
            row.update(layers=a.n_layers, context=a.max_context, kv_heads=a.n_kv_heads)
        if a.kind == "pipeline":
            row.update(vision=a.vision, llm=a.llm, image_tokens=a.image_tokens_per_image, beams=a.beams)
        rows.append(row)
    if args.json:
        print(json.dumps({"models": rows}, indent=1, default=str))
        return 0
    df = pd.DataFrame(rows).drop(columns=["name"])
    print(df.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}"))
    return 0


def cmd_precisions(args) -> int:
    from planner.quant import PRECISIONS
    rows = [{"id": p.id, "weight_bytes": p.weight_bytes, "kv_bytes": p.kv_bytes, "gemm_dtype": p.gemm_dtype,
             "attn_dtype": p.attn_dtype, "description": p.description} for p in PRECISIONS.values()]
    if args.json:
        print(json.dumps({"precisions": rows}, indent=1))
    else:
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_predict(args) -> int:
    import planner
    r = planner.estimate(args.gpu, args.model, args.precision, args.batch, args.input_len, args.output_len,
                         args.tp, args.pp, args.replicas, args.engine)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    head = f"{r['model']} on {r['tp'] * r['pp']} x {r['gpu']}, {r['precision']}, batch {r['batch']}, engine {r['engine']}"
    print(head)
    if r["category"] == "vision":
        print(f"  latency          {_fmt(r['latency_s'] * 1e3)} ms per batch   ({r.get('vision_bound', '')}-bound)")
        print(f"  throughput       {_fmt(r['images_per_s'])} images/s")
    else:
        print(f"  input/output     {r['input_len']} (+{r['image_tokens']} image) / {r['output_len']} tokens, beams {r['beams']}")
        if r.get("vision_s"):
            print(f"  vision encode    {_fmt(r['vision_s'] * 1e3)} ms")
        print(f"  TTFT             {_fmt(r['ttft_s'] * 1e3)} ms   (prefill {r.get('prefill_bound', '')}-bound)")
        print(f"  TPOT             {_fmt(r['tpot_s'] * 1e3)} ms   (decode {r.get('decode_bound', '')}-bound)")
        print(f"  end to end       {_fmt(r['e2e_s'])} s")
        print(f"  output tokens/s  {_fmt(r['output_tokens_per_s'])} (one replica)")
    print(f"  memory per GPU   {_fmt(r['memory_gb_per_gpu'])} GB  fits: {r['fits']}  ({r['fits_reason']})")
    print(f"  largest batch    {r['max_batch']}" + (f" (at these lengths); longest context at this batch "
                                                    f"{r['max_context']} tokens" if "max_context" in r else ""))
    print(f"  power per GPU    {_fmt(r['avg_power_w'])} W   energy {_fmt(r['energy_j'])} J")
    if r.get("usd_per_million_output_tokens"):
        print(f"  cloud cost       ${_fmt(r['usd_per_million_output_tokens'])} per 1M output tokens at "
              f"${r['cloud_usd_per_gpu_hour']}/GPU-h")
    if r.get("usd_per_1000_images"):
        print(f"  cloud cost       ${_fmt(r['usd_per_1000_images'])} per 1,000 images at ${r['cloud_usd_per_gpu_hour']}/GPU-h")
    return 0


def cmd_roofline(args) -> int:
    import planner
    phases = ("vision", "prefill", "decode") if args.phase == "all" else (args.phase,)
    df = planner.roofline_table(args.gpu, args.model, args.precision, args.batch, args.input_len, args.output_len,
                                args.tp, args.engine, phases)
    ridge = planner.ridge_point(args.gpu, args.precision)
    if args.json:
        print(json.dumps({"gpu": args.gpu, "model": args.model, "precision": args.precision, "batch": args.batch,
                          "ridge_flop_per_byte": ridge,
                          "ops": json.loads(df.to_json(orient="records"))}, indent=1))
        return 0
    print(f"{args.model} on {args.gpu}, {args.precision}, batch {args.batch}: ridge point {ridge:.0f} FLOP/byte "
          f"(GEMM peak / DRAM bandwidth). Decode rows: one step at the mean context.")
    show = df[["phase", "name", "group", "count", "flops", "bytes", "intensity", "bound", "time_s"]].copy()
    show["time_ms"] = show.pop("time_s") * 1e3
    for ph, part in show.groupby("phase", sort=False):
        print(f"\n{ph}: {part['time_ms'].sum():.3g} ms")
        print(part.drop(columns=["phase"]).to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}"))
    return 0


def cmd_summary(args) -> int:
    """What `make run` prints until the dashboard lands: a few radiology-relevant configurations."""
    import planner
    cases = [("h100-sxm", "llama-3-70b", "fp8", 8, 800, 200, 1), ("h100-sxm", "llama-3-70b", "bf16", 8, 800, 200, 2),
             ("l40s", "llama-3-8b", "fp8", 8, 350, 80, 1), ("l4", "densenet-121-320", "fp16", 64, None, None, 1)]
    rows = []
    for g, m, p, b, i, o, t in cases:
        r = planner.estimate(g, m, p, b, i, o, t)
        rows.append({"gpu": g, "model": m, "precision": p, "batch": b, "tp": t, "fits": r["fits"],
                     "latency_s": r.get("e2e_s", r.get("latency_s")),
                     "throughput": r.get("output_tokens_per_s", r.get("images_per_s")),
                     "unit": "tokens/s" if "output_tokens_per_s" in r else "images/s",
                     "memory_gb_per_gpu": r["memory_gb_per_gpu"], "avg_power_w": r["avg_power_w"]})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("radplan capacity summary (roofline predictions, optimized engine). Try: planner --help\n")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


COMMANDS = {"gpus": cmd_gpus, "models": cmd_models, "precisions": cmd_precisions, "predict": cmd_predict,
            "roofline": cmd_roofline, "summary": cmd_summary}


def main(argv: list[str] | None = None) -> int:
    from planner.errors import PlannerError
    args = build_parser().parse_args(argv)
    try:
        import planner
        for d in args.specs_dir:
            planner.add_specs_dir(d)
        return COMMANDS[args.cmd](args)
    except PlannerError as e:
        print(f"planner: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except Exception as e:  # never a traceback for the user; the message names the failure
        print(f"planner: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
