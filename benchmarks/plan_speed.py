"""Capacity-planning speed: a full plan over every accelerator for the example department, a full plan for the
busiest single preset, and the serving simulator's events per second on a simulated day of each preset.

Usage: .venv/bin/python benchmarks/plan_speed.py [department id or file]   (target: a full plan < 60 s)
"""
import sys
import time

from planner import catalog
from planner.capacity import plan
from planner.serving import simulate

# (preset, accelerator, GPUs, precision, tp): one configuration that meets each preset's target
DAYS = [("report-error-check-llama3-70b", "h100-sxm", 1, "fp8", 1),
        ("impression-summarization", "l40s", 1, "fp8", 1),
        ("interactive-vqa-medgemma4b", "l40s", 1, "bf16", 1),
        ("hospital-cxr-grounded-maira2", "l40s", 1, "fp8", 1),
        ("ed-cxr-draft-r2gengpt", "l40s", 2, "w8a8", 1),
        ("cxr-triage-densenet121", "l4", 1, "fp16", 1),
        ("ct-3d-report-radfm", "l40s", 1, "fp8", 1),
        ("cxr-labeling-14-batch", "h100-sxm", 1, "fp8", 1)]


def main() -> int:
    dept = sys.argv[1] if len(sys.argv) > 1 else "example-academic-centre"
    n_gpus = len(catalog.list_gpus())
    print("Serving simulator, one simulated day per preset:")
    print(f"  {'preset':30} {'fleet':22} {'studies':>8} {'events':>8} {'wall s':>7} {'events/s':>10}")
    tot_ev, tot_wall = 0, 0.0
    for pid, gpu, count, prec, tp in DAYS:
        r = simulate(pid, gpu, count, prec, hours=24, seed=0, tp=tp)
        tot_ev, tot_wall = tot_ev + r["events"], tot_wall + r["wall_s"]
        print(f"  {pid:30} {f'{count} x {gpu} {prec}':22} {r['studies']:8d} {r['events']:8d} {r['wall_s']:7.2f} "
              f"{r['events_per_s']:10,.0f}")
    print(f"  all presets: {tot_ev / tot_wall:,.0f} events/s")
    for target in ("report-error-check-llama3-70b", dept):
        t0 = time.perf_counter()
        r = plan(target)
        wall = time.perf_counter() - t0
        s = r["search"]
        print(f"\nFull plan of '{target}' over all {n_gpus} accelerators: {wall:.1f} s (target < 60 s)")
        print(f"  {s['screened']} configurations screened analytically, {s['survived_screen']} survived, "
              f"{s['options_simulated']} sized by simulation; {s['simulations']} simulated days in all, "
              f"{len(r['options'])} options listed; stopped by the time budget: {s['stopped_by_time_budget']}")
        print(f"  {r['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
