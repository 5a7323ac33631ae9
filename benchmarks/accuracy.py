"""Predict every row of the published measurements the catalog covers; print each error and the MdAPE.

Usage: .venv/bin/python benchmarks/accuracy.py [path/to/published.csv]
(default: data/reference/published_dev.csv, a copy of shared/reference/published_dev.csv). Target MdAPE <= 20 %.
"""
import sys
from pathlib import Path

from planner.validate import PUBLISHED_DEV, mdape, published_report


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else PUBLISHED_DEV
    results = published_report(path)
    print(f"{'case':9} {'gpu':15} {'model':14} {'prec':17} {'engine':9} {'metric':29} {'measured':>10} "
          f"{'predicted':>10} {'error':>8}")
    for r in results:
        pred = f"{r.predicted:10.4g}" if r.predicted is not None else f"{'-':>10}"
        err = f"{r.signed_pct:+7.1f}%" if r.signed_pct is not None else f"  {r.error}"
        print(f"{r.case_id:9} {r.gpu:15} {r.model:14} {r.precision:17} {r.engine:9} {r.metric:29} "
              f"{r.measured:10.4g} {pred} {err}")
    covered = [r for r in results if r.predicted is not None]
    print(f"\nrows {len(results)}, predicted {len(covered)}; MdAPE {mdape(results):.1f} % (target <= 20 %)")
    for eng in ("optimized", "compiled", "eager"):
        sub = [r for r in covered if r.engine == eng]
        if sub:
            print(f"  {eng:9} rows {len(sub):2}  MdAPE {mdape(sub):.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
