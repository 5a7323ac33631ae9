"""Predicted vs published measurements (data/reference/published_dev.csv): one prediction per row, errors, MdAPE.

The engine of a row follows from its source family, never from the row itself: TensorRT(-LLM) and MLPerf
are 'optimized'; gpt-fast and timm's torch.compile table are 'compiled'; timm eager and NVIDIA's
DeepLearningExamples PyTorch are 'eager'.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from planner.catalog import DATA_DIR

PUBLISHED_DEV = DATA_DIR / "reference" / "published_dev.csv"

METRIC_KEY = {"ttft_s": "ttft_s", "tpot_s": "tpot_s", "e2e_s": "e2e_s",
              "output_tokens_per_s_total": "output_tokens_per_s",
              "output_tokens_per_s_per_user": "output_tokens_per_s_per_user",
              "images_per_s_total": "images_per_s", "model_memory_gb": "weights_gb_per_gpu"}


def engine_of(row: dict) -> str:
    sid, loc = row["source_id"], row.get("source_location", "") + " " + row.get("source", "")
    if sid.startswith(("gpt-fast",)) or "dynamo" in loc:
        return "compiled"
    if sid.startswith(("timm", "dle")):
        return "eager"
    return "optimized"


@dataclass(frozen=True)
class RowResult:
    case_id: str
    gpu: str
    model: str
    precision: str
    engine: str
    metric: str
    measured: float
    predicted: float | None
    error: str = ""

    @property
    def ape_pct(self) -> float | None:
        if self.predicted is None:
            return None
        return abs(self.predicted - self.measured) / self.measured * 100

    @property
    def signed_pct(self) -> float | None:
        return None if self.predicted is None else (self.predicted / self.measured - 1) * 100


def read_rows(path: Path = PUBLISHED_DEV) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("usable", "yes") == "yes"]


def predict_row(row: dict) -> RowResult:
    from planner.api import estimate
    from planner.errors import PlannerError
    metric = row["metric"]
    gpu = row["gpu"] or "a100-sxm-80gb"           # SQ-003: a memory row, the GPU does not matter
    eng = engine_of(row)
    base = dict(case_id=row["case_id"], gpu=gpu, model=row["model"], precision=row["precision"], engine=eng,
                metric=metric, measured=float(row["value"]))
    try:
        kw = dict(batch=int(row["batch"]), tp=int(row["tp"]), engine=eng, detail=False)
        if row["input_len"]:
            kw.update(input_len=int(row["input_len"]), output_len=max(1, int(row["output_len"] or 1)))
        r = estimate(gpu, row["model"], row["precision"], **kw)
        pred = r.get(METRIC_KEY[metric])
        if pred is None or not math.isfinite(pred):
            return RowResult(**base, predicted=None, error=f"no {metric} for this model")
        return RowResult(**base, predicted=float(pred))
    except PlannerError as e:
        return RowResult(**base, predicted=None, error=str(e))


def mdape(results: list[RowResult]) -> float:
    apes = sorted(r.ape_pct for r in results if r.ape_pct is not None)
    if not apes:
        return float("nan")
    n = len(apes)
    return apes[n // 2] if n % 2 else (apes[n // 2 - 1] + apes[n // 2]) / 2


def published_report(path: Path = PUBLISHED_DEV) -> list[RowResult]:
    return [predict_row(r) for r in read_rows(path)]
