#!/usr/bin/env python3
"""Screenshots of the dashboard's main pages for the README: starts the real server, opens each page in
headless Debian Chromium and writes docs/screenshots/<page>.png.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--pages plan,roofline,...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.dashboard.e2e import CHROMIUM, chromium, settle, streamlit_server  # noqa: E402

# page -> query string: a view that shows what the page is for; HEIGHTS: viewport height to show its charts
HEIGHTS = {"plan": 2900, "roofline": 2200, "compare": 1800, "quantization": 1500, "measured": 900, "hardware": 1300}
VIEWS = {
    "plan": "preset=report-error-check-llama3-70b&gpus=h100-sxm,h200-sxm,a100-sxm-80gb,l40s,mi300x"
            "&precisions=bf16,fp8,w8a8",
    "roofline": "gpus=h100-sxm,l40s&model=llama-3-8b&precision=bf16&batch=16&in=800&out=200",
    "compare": "gpus=h100-sxm,h200-sxm,a100-sxm-80gb,l40s,l4,mi300x&precisions=bf16,fp8,w8a8,w4a16"
               "&model=llama-3-8b&batch=16&in=800&out=200",
    "quantization": "gpu=h100-sxm&model=llama-3-70b&batch=8&in=800&out=200&tp=2",
    "measured": "",
    "hardware": "gpu=h100-sxm",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--pages", default=",".join(VIEWS))
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--height", type=int, default=None, help="viewport height (default: per page)")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"screenshots: {CHROMIUM} is missing; run scripts/ensure_chromium.sh as root", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, chromium((args.width, 1500)) as ctx:
        page = ctx.new_page()
        for name in args.pages.split(","):
            page.set_viewport_size({"width": args.width, "height": args.height or HEIGHTS.get(name, 1500)})
            path = "" if name == "plan" else name          # the default page lives at the root URL
            page.goto(f"{url}/{path}?{VIEWS.get(name, '')}")
            settle(page, timeout_ms=120_000)
            if page.locator(".js-plotly-plot").count():
                page.wait_for_timeout(800)          # let plotly finish its first draw
            png = out / f"{name}.png"
            page.screenshot(path=str(png))
            print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
