"""Predicted vs measured on CPU: every committed CPU run under data/measurements/cpu-*/ validated against its
device's microbenchmark profile (planner validate, in one table): the profile in place when the run was measured
where the run recorded it (profile_date_at_run, runs from 2026-11-23 05:00 UTC on; kept under profiles/ once
replaced), else the device's current one (older runs then carry the drift since).

Target (issue 3): end-to-end error <= 15 % on every CPU run in fp32 and in w8a8 through fbgemm (what the issue
names for this CPU), per phase, at the measured scope (the layers measured plus
embedding, final norm and lm_head), predicted from the device profile scaled to the device state each run
probed (planner.measure.probe) where the profile's reference probes span its sweep, else from the profile as
measured; the other one beside (--as-measured / --scale-to-device-state pick one for every run). Profile and runs are compared at
the same statistic: their medians (typical repetitions) by default, their minima (best case) beside; --statistic
min swaps them. The whole-model column
scales the layer rows by n_layers / layers measured; the speed-ups compare runs of the same configuration
across precisions. Measured figures come only from the committed runs (see their .json metadata).

    .venv/bin/python benchmarks/cpu_validation.py [--json] [--root data/measurements] [--statistic median|min]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner.validate import MEASUREMENTS_ROOT, list_measured_runs, validate_run  # noqa: E402

TARGET_PCT = 15.0


def in_target(r: dict) -> bool:
    """The issue's CPU target covers fp32 and w8a8 through fbgemm (AVX-512 VNNI). The oneDNN int8 (w8a8 O1/O3)
    and bf16 kernels run on AMX, whose throughput on this shared machine swung 2x within minutes (profiles of
    19:34 and 20:11 UTC, 2026-11-22; run-time probes of the int8 kernel at 0.5x the profile): shown apart."""
    return r["precision"] == "fp32" or (r["precision"].startswith("w8a8") and r.get("int8_backend") == "fbgemm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(MEASUREMENTS_ROOT))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--statistic", default="median", choices=["median", "min"])
    st = ap.add_mutually_exclusive_group()
    st.add_argument("--scale-to-device-state", dest="device_state", action="store_const", const=True)
    st.add_argument("--as-measured", dest="device_state", action="store_const", const=False)
    args = ap.parse_args(argv)
    runs = [j for j in list_measured_runs(Path(args.root)) if j.relative_to(args.root).parts[0].startswith("cpu-")]
    if not runs:
        print(f"no CPU runs under {args.root}: run planner microbench and planner measure first")
        return 1
    results = [validate_run(j, statistic=args.statistic, scale_to_state=args.device_state) for j in runs]
    other = "min" if args.statistic == "median" else "median"
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "rows"} for r in results], indent=1, default=str))
        return 0
    devices = sorted({(r["device"], r["profile_date"]) for r in results})
    print(f"CPU validation: {len(results)} measured runs; device profiles: "
          + "; ".join(f"{d} (of {date})" for d, date in devices)
          + f". Profile and runs at their {'medians' if other == 'min' else 'minima'}; 'at {other} %': the error at "
          + f"their {'minima' if other == 'min' else 'medians'}. state c/m: compute and memory speed the run probed, "
          + "as a fraction of the profile's; err %: predicted from the profile scaled to that state where the row's "
          + "state ends in *, else from the profile as measured; alt %: the other one\n")
    head = (f"{'threads':<7} {'model':<12} {'prec':<11} {'int8':<6} {'b':>2} {'run (UTC)':<9} {'phase':<8} {'pred ms':>9} {'meas ms':>9} {'err %':>7} "
            f"{'alt %':>10} {'at ' + other + ' %':>12} {'state c/m':>10} {'spread %':>8} {'whole-model %':>13} {'op MdAPE %':>10}")
    print(head)
    print("-" * len(head))
    worst = {True: 0.0, False: 0.0}
    worst_other = {True: 0.0, False: 0.0}
    for r in results:
        st = r.get("device_state")
        state = f"{st['compute']:.2f}/{st['memory']:.2f}" if st else "-"
        state += "*" if r["scaled_to_device_state"] else ""
        alt_key = "unscaled_profile" if r["scaled_to_device_state"] else "scaled_to_device_state"
        for ph, e in r["e2e"].items():
            target = in_target(r)
            worst[target] = max(worst[target], abs(e["error_pct"]))
            worst_other[target] = max(worst_other[target], abs(e[f"at_{other}"]["error_pct"]))
            scaled = e.get(alt_key, {}).get("error_pct")
            scaled = f"{scaled:+.1f}" if scaled is not None else "-"
            print(f"{r['device'].rsplit('-', 1)[-1]:<7} {r['model']:<12} {r['precision']:<11} {(r.get('int8_backend') or '-'):<6} {r['batch']:>2} {r['run'][-6:-2]:<9} {ph:<8} {e['predicted_s'] * 1e3:>9.1f} "
                  f"{e['measured_s'] * 1e3:>9.1f} {e['error_pct']:>+7.1f} {scaled:>10} {e['at_' + other]['error_pct']:>+12.1f} {state:>10} {e['spread_pct']:>8.1f} "
                  f"{e['whole_model']['error_pct']:>+13.1f} {r['op_mdape_pct']:>10.1f}")
    print(f"\nlargest end-to-end error, fp32 and fbgemm w8a8 runs: {worst[True]:.1f} % (target <= {TARGET_PCT:g} % on "
          f"every run): {'met' if worst[True] <= TARGET_PCT else 'NOT met'}; at {other}: {worst_other[True]:.1f} %")
    if worst[False]:
        print(f"largest end-to-end error, AMX runs (bf16, oneDNN w8a8; outside the CPU target): {worst[False]:.1f} %; "
              f"at {other}: {worst_other[False]:.1f} %")
    seen = set()
    print("\nspeed-ups (end to end per phase; the latest run of each precision):")
    for r in sorted(results, key=lambda r: r["run"][-15:], reverse=True):
        for k, s in r.get("speedups", {}).items():
            key = (r["batch"], k)
            if key in seen:
                continue
            seen.add(key)
            print(f"  batch {r['batch']:>2} {s['faster']:>8} over {s['baseline']:<8} {s['phase']:<8} measured "
                  f"{s['measured']:5.2f}x  predicted {s['predicted']:5.2f}x  ({s['error_pct']:+.1f} %)")
    print("\nper-op errors are in `planner validate <run>`; the small eager ops (norm, rope, mlp_act, embed) are "
          "predicted from their measured fixed cost per call where the profile has it (profiles from 21:31 UTC on; "
          "at Llama-2-7B widths, with body factors, from 23:11 UTC on).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
