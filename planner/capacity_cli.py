"""CLI subcommands for capacity planning: `planner workloads`, `planner plan`, `planner simulate`.

planner/cli.py imports this module and calls register(); heavy imports (simpy, plotly) stay inside handlers.
Exit codes: 0 done, 2 bad input (a one-line PlannerError), 3 no configuration meets the target.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

EXIT_NO_OPTION = 3


def register(sub, add_common) -> dict:
    w = sub.add_parser("workloads", help="radiology workload presets with their sources")
    w.add_argument("--sources", action="store_true", help="print each preset's sources")
    add_common(w)

    p = sub.add_parser("plan", help="ranked hardware options that meet a workload's or department's targets")
    _add_target(p)
    p.add_argument("--gpus", help="comma-separated accelerator ids (default: all, see planner gpus)")
    p.add_argument("--precisions", help="comma-separated precisions for the LLMs (default bf16,fp8,w8a8)")
    p.add_argument("--years", type=int, default=4, help="planning horizon in years (default 4)")
    p.add_argument("--growth", type=float, default=0.05, help="volume growth per year (default 0.05)")
    p.add_argument("--electricity", type=float, default=0.13, help="USD per kWh (default 0.13)")
    p.add_argument("--pue", type=float, default=1.6, help="power usage effectiveness (default 1.6)")
    p.add_argument("--amortisation-years", type=float, default=None, help="straight-line amortisation (default 4)")
    p.add_argument("--maintenance", type=float, default=None, help="maintenance, fraction of capex per year")
    p.add_argument("--server-usd-per-gpu", type=float, default=None, help="server share per GPU (default 7500)")
    p.add_argument("--reserved-discount", type=float, default=None, help="cloud commitment discount (default 0.3)")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD", help="purchase price per GPU")
    p.add_argument("--cloud-price", action="append", default=[], metavar="GPU=USD_PER_H", help="cloud $/GPU-hour")
    p.add_argument("--p95-target-s", type=float, default=None, help="override the p95 latency target (seconds)")
    p.add_argument("--max-gpus", type=int, default=64, help="largest fleet considered (default 64)")
    p.add_argument("--max-options", type=int, default=10, help="options listed (default 10)")
    p.add_argument("--no-mig", action="store_true",
                   help="do not consider MIG 1g slices of GPUs that support MIG (A100, H100, H200, B200, GH200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hours", type=float, default=24, help="simulated hours per configuration (default 24)")
    p.add_argument("--engine", default="optimized", help="optimized, compiled or eager")
    p.add_argument("--report", metavar="FILE.html", help="write the HTML procurement report")
    p.add_argument("--csv", metavar="FILE.csv", help="write the options table as CSV")
    add_common(p)

    s = sub.add_parser("simulate", help="simulate a day of a workload on a given fleet")
    _add_target(s)
    s.add_argument("--gpu", required=True, help="accelerator id")
    s.add_argument("--count", type=int, required=True, help="GPUs in the fleet (a multiple of --tp)")
    s.add_argument("--precision", default="bf16")
    s.add_argument("--tp", type=int, default=1, help="tensor-parallel degree per replica")
    s.add_argument("--hours", type=float, default=24)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-batch", type=int, default=None, help="requests in flight (LLM) / images per batch")
    s.add_argument("--token-budget", type=int, default=None, help="prompt tokens per prefill iteration (LLM)")
    s.add_argument("--max-wait-s", type=float, default=None, help="static batching: longest wait to fill a batch")
    s.add_argument("--volume-scale", type=float, default=1.0, help="multiply the workload's volume")
    s.add_argument("--engine", default="optimized")
    add_common(s)
    return {"workloads": cmd_workloads, "plan": cmd_plan, "simulate": cmd_simulate}


def _add_target(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="workload preset id (planner workloads)")
    g.add_argument("--workload", metavar="FILE.yaml", help="a workload or department YAML file")


def _target(args):
    from planner import catalog
    return catalog.load_workload_or_department(args.preset or args.workload)


def _pairs(items: list[str], flag: str) -> dict[str, float]:
    from planner.errors import PlannerError
    out = {}
    for it in items:
        gid, sep, val = it.partition("=")
        try:
            out[gid.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep or not gid.strip():
            raise PlannerError(f"{flag} expects GPU=NUMBER, got '{it}'")
    return out


def _csv_list(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


# --------------------------------------------------------------------------------------------- workloads

def cmd_workloads(args) -> int:
    import pandas as pd
    from planner import catalog
    rows = []
    for wid in catalog.list_workloads():
        w = catalog.load_workload(wid)
        a = w.arrivals
        rows.append({"id": w.id, "name": w.name, "model": w.model, "plannable": w.plannable,
                     "studies_per_day": w.studies_per_day(), "peak_per_hour": round(w.peak_per_hour(), 1),
                     "arrivals": a.kind, "diurnal": a.diurnal.kind if a.diurnal else None,
                     "input_tokens": w.input_tokens, "output_tokens": w.output_tokens,
                     "images_per_study": w.images_per_study, "target": w.target.describe(),
                     "not_plannable_reason": w.not_plannable_reason, "sources": w.sources})
    if args.json:
        print(json.dumps({"workloads": rows, "departments": catalog.list_departments()}, indent=1))
        return 0
    cols = ["id", "model", "studies_per_day", "peak_per_hour", "input_tokens", "output_tokens",
            "images_per_study", "target"]
    df = pd.DataFrame(rows)
    df["model"] = [m if ok else "(not yet plannable)" for m, ok in zip(df["model"], df["plannable"])]
    print("Radiology workload presets (data/workloads/; reference: shared/reference/radiology_workloads.md §6)")
    print(df[cols].to_string(index=False, na_rep="-", float_format=lambda v: f"{v:g}"))
    for r in rows:
        if not r["plannable"]:
            print(f"\n{r['id']}: not yet plannable: {r['not_plannable_reason']}")
        if args.sources:
            print(f"\n{r['id']} sources:")
            for k, v in r["sources"].items():
                print(f"  {k}: {v}")
    if not args.sources:
        print("\nEvery figure has a source or is marked as an assumption: planner workloads --sources")
    print(f"Example department files (data/departments/): {', '.join(catalog.list_departments()) or '-'}")
    return 0


# --------------------------------------------------------------------------------------------- plan

def cmd_plan(args) -> int:
    from planner.capacity import plan
    from planner.workload_specs import Workload
    for path in filter(None, (args.report, args.csv)):        # fail before a minute of planning, not after
        _check_writable(path)
    target = _target(args)
    if args.p95_target_s is not None:
        target = _with_p95(target, args.p95_target_s)
    overrides = {k: v for k, v in (("amortisation_years", args.amortisation_years),
                                   ("maintenance_frac_per_year", args.maintenance),
                                   ("server_usd_per_gpu", args.server_usd_per_gpu),
                                   ("reserved_discount", args.reserved_discount)) if v is not None}
    if args.price:
        overrides["gpu_prices_usd"] = _pairs(args.price, "--price")
    if args.cloud_price:
        overrides["cloud_usd_per_gpu_hour"] = _pairs(args.cloud_price, "--cloud-price")
    r = plan(target, gpus=_csv_list(args.gpus), precisions=_csv_list(args.precisions), years=args.years,
             growth=args.growth, electricity_usd_per_kwh=args.electricity, pue=args.pue, seed=args.seed,
             hours=args.hours, engine=args.engine, max_gpus=args.max_gpus, max_options=args.max_options,
             mig=not args.no_mig, **overrides)
    if args.report:
        from planner.report import plan_report_html
        _write_atomic(args.report, plan_report_html(r))
    if args.csv:
        from planner.report import options_csv
        _write_atomic(args.csv, options_csv(r))
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        _print_plan(r, isinstance(target, Workload))
        for path in filter(None, (args.report, args.csv)):
            print(f"wrote {path}")
    return 0 if r["feasible"] else EXIT_NO_OPTION


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _with_p95(target, p95: float):
    from planner.errors import PlannerError
    from planner.workload_specs import Workload
    if not isinstance(target, Workload):
        raise PlannerError("--p95-target-s applies to a single workload; edit the department's workload files")
    if not p95 > 0:
        raise PlannerError(f"--p95-target-s must be a positive number of seconds, got {p95}")
    t = target.target.model_copy(update={"p95_latency_s": p95})
    return target.model_copy(update={"target": t})


def _print_plan(r: dict, single: bool) -> None:
    import pandas as pd
    from planner.mig import fleet_label
    print(f"{r['name']}: {r['message']}")
    for s in r.get("skipped", []):
        print(f"  not planned: {s['workload']}: {s['reason']}")
    if r["options"]:
        cols = ["id", "gpu", "count", "precision", "tp", "p95_latency_s", "p95_vs_target", "utilisation",
                "tco_per_year_usd", "cost_per_1000_studies_usd", "energy_kwh_per_year", "fails_in_year", "pareto"]
        df = pd.DataFrame(r["options"])[cols]
        df["fails_in_year"] = [f"> {r['years']}" if y is None else y for y in df["fails_in_year"]]
        print(df.to_string(index=False, na_rep="-",
                           float_format=lambda v: f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"))
        rec = r["recommendation"]
        tco = "no purchase price" if rec["tco_per_year_usd"] is None else f"${rec['tco_per_year_usd']:,.0f}/yr TCO"
        print(f"\nRecommended: {fleet_label(rec)} ({rec['precision']}, tp {rec['tp']}): {tco}, "
              f"p95 {_g(rec['p95_latency_s'])} s")
        if rec.get("efficiency_calibrated") is False:
            print(f"  caution: {rec['gpu']} belongs to a family with no published measurement in the calibration "
                  "set; its latencies use NVIDIA-fitted efficiencies and may be optimistic")
        if not single:
            for w in rec["workloads"]:
                shared = f", shares its GPUs with {', '.join(w['shares_gpu_with'])}" if w["shares_gpu_with"] else ""
                n = f"{w['slices']} MIG {w['mig']} slice(s)" if w.get("mig") else f"{w['count']} GPU(s)"
                print(f"  {w['workload']}: {n}, {w['precision']}, tp {w['tp']}, "
                      f"p95 {_g(w['p95_latency_s'])} s{shared}")
        alts = ", ".join(f"{fleet_label(a)} ({a['precision']})" for a in r["alternatives"])
        print(f"Alternatives: {alts or '-'}")
    else:
        for c in r.get("closest", []):
            print(f"  {c['count']} x {c['gpu']} {c['precision']} tp{c['tp']} ({c['workload']}): {c['achieves']}")
    v = r["validation"]
    if v.get("fit_mdape_pct") is not None:
        cv = v.get("crossval_mdape_pct")
        print(f"Model error: {v['fit_mdape_pct']:.1f} % MdAPE in-sample against published_dev"
              + (f", {cv:.1f} % out of sample (leave one source family out)" if cv is not None else "")
              + f" (see the report's trust section). Search: {r['search']['simulations']} simulations, "
              f"{r['search']['elapsed_s']:.1f} s.")


# --------------------------------------------------------------------------------------------- simulate

def cmd_simulate(args) -> int:
    from planner.errors import PlannerError
    from planner.serving import simulate
    from planner.workload_specs import Workload
    w = _target(args)
    if not isinstance(w, Workload):
        raise PlannerError("simulate takes one workload (a preset or a workload file), not a department")
    r = simulate(w, args.gpu, args.count, args.precision, hours=args.hours, seed=args.seed, tp=args.tp,
                 max_batch=args.max_batch, token_budget=args.token_budget, max_wait_s=args.max_wait_s,
                 engine=args.engine, volume_scale=args.volume_scale)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    f = lambda x, d=3: "-" if x is None else f"{x:.{d}g}"  # noqa: E731
    print(f"{w.id}: {r['count']} x {r['gpu']} ({r['precision']}, tp {r['tp']}, {r['replicas']} replica(s)), "
          f"{r['hours']:g} h simulated, seed {r['seed']}")
    lim = ", ".join(f"{k} {r[k]}" for k in ("max_seqs", "token_budget", "max_batch", "max_wait_s") if k in r)
    print(f"  batching         {r['engine_kind']}: {lim}")
    print(f"  studies          {r['studies']} ({r['throughput_studies_per_h']:.1f}/h)")
    print(f"  latency          p50 {f(r['p50_latency_s'])} s  p95 {f(r['p95_latency_s'])} s  "
          f"p99 {f(r['p99_latency_s'])} s")
    if r.get("p95_ttft_s") is not None and r["engine_kind"] == "continuous-batching":
        print(f"  TTFT             p50 {f(r['p50_ttft_s'])} s  p95 {f(r['p95_ttft_s'])} s  p99 {f(r['p99_ttft_s'])} s")
        print(f"  time per token   p95 {f(r['p95_tpot_s'] and r['p95_tpot_s'] * 1e3)} ms")
    print(f"  utilisation      {100 * r['utilisation']:.1f} % (peak hour {100 * r['peak_hour_utilisation']:.1f} %)")
    print(f"  queue            max {r['max_queue_length']} waiting")
    print(f"  energy           {r['energy_kwh']:.3g} kWh GPU board energy, {r['avg_power_w']:.0f} W average")
    verdict = "meets" if r["meets_target"] else "MISSES"
    why = f" ({'; '.join(r['misses'])})" if r["misses"] else ""
    print(f"  target           {verdict} {w.target.describe()}{why}")
    print(f"  simulator        {r['events']} events in {r['wall_s']:.2f} s")
    return 0


def _check_writable(path: str) -> None:
    from planner.errors import PlannerError
    folder = Path(path).parent
    if not folder.is_dir():
        raise PlannerError(f"cannot write '{path}': folder '{folder}' does not exist")


def _write_atomic(path: str, text: str) -> None:
    """Write so that a crash leaves the old file or the new one, never half of one."""
    import tempfile
    from planner.errors import PlannerError
    p = Path(path)
    _check_writable(path)
    try:
        with tempfile.NamedTemporaryFile("w", dir=p.parent, delete=False, suffix=".tmp", encoding="utf-8") as f:
            f.write(text)
            tmp = f.name
        os.replace(tmp, p)
    except OSError as e:
        raise PlannerError(f"cannot write '{path}': {e.strerror}") from None

