"""Leave-one-source-family-out cross-validation of the efficiency fit: how well do the fitted factors predict
rows of a source they were not fitted on? (The honest generalisation figure; the accuracy benchmark is in-sample.)

Usage: .venv/bin/python benchmarks/crossval.py [--write]   (about 10 minutes on 2 cores: one fit per family)
--write stores the figure as crossval_mdape_pct in data/calibration/efficiency.yaml (shown in plan reports).
"""
import sys

import fit_efficiency as fe
from planner import catalog
from planner.validate import mdape, read_rows


def family(row):
    return row["case_id"].split("-")[0]


def main() -> int:
    rows = read_rows()
    base = catalog.load_calibration().model_dump()
    _, u0 = fe.start_point()
    held = []
    for fam in sorted({family(r) for r in rows}):
        train = [r for r in rows if family(r) != fam]
        test = [r for r in rows if family(r) == fam]
        opt = fe.fit(base, train, u0, maxiter=1000)
        vals = [fe.from_unit(x, lo, hi) for x, (_, lo, hi) in zip(opt.x, fe.FIT)]
        res, _ = fe.predictions(base, vals, test)
        held += res
        errs = ", ".join(f"{r.case_id} {r.signed_pct:+.0f}%" for r in res)
        print(f"hold out {fam:5} ({len(test):2} rows): MdAPE {mdape(res):5.1f} %   {errs}", flush=True)
    print(f"\nleave-one-family-out MdAPE over {len(held)} rows: {mdape(held):.1f} % "
          f"(in-sample fit: {catalog.load_calibration().fit_mdape_pct} %)")
    if "--write" in sys.argv[1:]:
        data = catalog.load_calibration().model_dump()
        data["crossval_mdape_pct"] = round(mdape(held), 2)
        catalog.write_yaml_atomic(catalog.CALIBRATION_FILE, data,
                                  header="# Written by benchmarks/fit_efficiency.py --write and crossval.py --write\n")
        print(f"wrote crossval_mdape_pct to {catalog.CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
