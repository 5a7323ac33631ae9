"""Configurations per second of planner.sweep over >= 100,000 configurations (target >= 200,000/s).

Usage: .venv/bin/python benchmarks/sweep_speed.py
"""
import time

import planner

GRID = dict(gpus=["h100-sxm", "a100-sxm-80gb", "l40s", "l4", "h200-sxm", "mi300x", "t4", "a100-pcie-80gb", "b200", "h100-pcie"],
            models=["llama-2-7b", "llama-3-8b", "llama-2-70b", "mistral-7b", "mixtral-8x7b"],
            precisions=["bf16", "fp8", "w8a8", "w4a16"],
            batches=[1, 2, 4, 8, 16, 32, 64, 128, 256],
            input_lens=[128, 256, 512, 1024, 2048],
            output_lens=[64, 128, 256],
            tps=[1, 2, 4, 8])


def main() -> None:
    n = 1
    for v in GRID.values():
        n *= len(v)
    planner.sweep(**{k: v[:1] for k, v in GRID.items()})      # imports, spec and model caches
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        df = planner.sweep(**GRID)
        best = min(best, time.perf_counter() - t)
    assert len(df) == n
    print(f"sweep: {n:,} configurations, best of 3: {best:.3f} s = {n / best:,.0f} configurations/s "
          f"(target >= 200,000/s); {int(df.fits.sum()):,} fit in memory")


if __name__ == "__main__":
    main()
