"""Strict pydantic schemas for radiology workload presets (data/workloads/*.yaml) and department files
(data/departments/*.yaml).

A workload is one AI task of a department: which catalog model serves it, tokens and images per study,
how studies arrive over the day and the latency target. Every figure carries a source in ``sources`` (a dotted
field path, or a block such as ``arrivals`` covering its fields), or the word "assumption"; the schema refuses
a file with an unsourced figure, as planner.specs does for accelerators. A department combines several
workloads that share one fleet and scales their volumes by its annual exam count.

The diurnal profiles follow shared/reference/radiology_workloads.md §4b.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

HOURS_PER_DAY = 24


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Reference §4b "proposed profile" [A from S 29-31]: ED arrivals 1.5 %/h for 00-08, 5.25 %/h for 08-16 and
# 5.6 %/h for 16-24 (the shift split 12 % / 42 % / 45 % of S 30). It sums to 98.8 %, so it is normalised.
ED_PERCENT_PER_HOUR = [1.5] * 8 + [5.25] * 8 + [5.6] * 8


class Diurnal(Strict):
    """Share of a day's studies arriving in each hour.

    ``ed``: the reference §4b emergency-department profile. ``business-hours``: ``share`` of the volume spread
    evenly over ``hours`` hours from ``start_hour`` (reference §4b: 70 % in 10 business hours for workday tasks),
    the rest evenly over the other hours. ``flat``: even. ``custom``: 24 non-negative weights."""
    kind: Literal["ed", "business-hours", "flat", "custom"]
    share: float | None = Field(None, gt=0, le=1)
    start_hour: int = Field(8, ge=0, le=23)
    hours: int = Field(10, ge=1, le=24)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _parameters_match_kind(self):
        if self.kind == "business-hours" and self.share is None:
            raise ValueError("kind 'business-hours' needs 'share' (fraction of the day's volume in the window)")
        if self.kind == "business-hours" and self.hours == HOURS_PER_DAY and self.share < 1:
            raise ValueError("a 24-hour window leaves no hours for the remaining share; use kind 'flat'")
        if self.kind == "custom":
            w = self.weights
            if w is None or len(w) != HOURS_PER_DAY:
                raise ValueError("kind 'custom' needs 'weights': 24 values, one per hour from midnight")
            if any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError("'weights' must be non-negative with a positive sum")
        elif self.weights is not None:
            raise ValueError(f"'weights' is only for kind 'custom', not '{self.kind}'")
        return self

    def fractions(self) -> np.ndarray:
        """24 hourly fractions of the day's volume, summing to 1."""
        if self.kind == "flat":
            w = np.ones(HOURS_PER_DAY)
        elif self.kind == "ed":
            w = np.array(ED_PERCENT_PER_HOUR, dtype=float)
        elif self.kind == "custom":
            w = np.array(self.weights, dtype=float)
        else:
            inside = (np.arange(HOURS_PER_DAY) - self.start_hour) % HOURS_PER_DAY < self.hours
            w = np.where(inside, self.share / self.hours, (1 - self.share) / (HOURS_PER_DAY - self.hours))
        return w / w.sum()


class Arrivals(Strict):
    """Poisson arrivals at ``daily_volume`` studies a day shaped by ``diurnal``; or a batch job of
    ``batch_size`` studies all queued at time zero (a back-catalogue run)."""
    kind: Literal["poisson", "batch"] = "poisson"
    daily_volume: float | None = Field(None, gt=0)
    diurnal: Diurnal | None = None
    batch_size: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _fields_match_kind(self):
        if self.kind == "poisson" and (self.daily_volume is None or self.diurnal is None):
            raise ValueError("poisson arrivals need 'daily_volume' (studies/day) and 'diurnal'")
        if self.kind == "batch" and self.batch_size is None:
            raise ValueError("batch arrivals need 'batch_size' (studies queued at time zero)")
        return self

    def hourly_rates(self, scale: float = 1.0) -> np.ndarray:
        """Studies per hour for each hour of the day (poisson only)."""
        return self.daily_volume * scale * self.diurnal.fractions()


class Target(Strict):
    """What 'meets the target' means. Percentile targets are p95 over every study of the simulated period."""
    p95_latency_s: float | None = Field(None, gt=0)      # study arrival -> result (last token / mask)
    p95_ttft_s: float | None = Field(None, gt=0)         # study arrival -> first token
    min_tokens_per_s_per_user: float | None = Field(None, gt=0)   # checked on the p95 time per output token
    deadline_h: float | None = Field(None, gt=0)         # batch jobs: every study done within

    @model_validator(mode="after")
    def _at_least_one(self):
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("give at least one of p95_latency_s, p95_ttft_s, min_tokens_per_s_per_user, deadline_h")
        return self

    def describe(self) -> str:
        parts = []
        if self.p95_latency_s is not None:
            parts.append(f"p95 latency <= {self.p95_latency_s:g} s")
        if self.p95_ttft_s is not None:
            parts.append(f"p95 TTFT <= {self.p95_ttft_s:g} s")
        if self.min_tokens_per_s_per_user is not None:
            parts.append(f">= {self.min_tokens_per_s_per_user:g} tokens/s per user (p95)")
        if self.deadline_h is not None:
            parts.append(f"all done within {self.deadline_h:g} h")
        return ", ".join(parts)


class Workload(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    description: str | None = None
    plannable: bool = True
    not_plannable_reason: str | None = None
    model: str | None = None                        # catalog model id (planner models)
    input_tokens: int | None = Field(None, ge=1)    # text prompt tokens per call (pipelines add image tokens)
    output_tokens: int | None = Field(None, ge=1)   # generated tokens per call (per beam)
    images_per_study: float | None = Field(None, gt=0)   # mean; a study has floor or ceil of it
    calls_per_study: int = Field(1, ge=1)           # sequential LLM calls per study (multi-pass checking)
    arrivals: Arrivals
    target: Target
    reference_annual_exams: float | None = Field(None, gt=0)  # site size the volume reflects (for scaling)
    sources: dict[str, str]
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.plannable and not self.model:
            raise ValueError("a plannable workload needs 'model' (a catalog id, see `planner models`)")
        if not self.plannable and not (self.not_plannable_reason or "").strip():
            raise ValueError("'plannable: false' needs 'not_plannable_reason'")
        if self.arrivals.kind == "batch" and self.target.deadline_h is None:
            raise ValueError("batch arrivals need target.deadline_h")
        missing = [p for p in figure_paths(self) if not has_source(p, self.sources)]
        if missing:
            raise ValueError(f"figures without a 'sources' entry: {', '.join(missing)}")
        return self

    def studies_per_day(self) -> float:
        """Daily volume (a batch job counts once, as one day's volume)."""
        a = self.arrivals
        return float(a.daily_volume if a.kind == "poisson" else a.batch_size)

    def peak_per_hour(self) -> float:
        a = self.arrivals
        return float(a.hourly_rates().max()) if a.kind == "poisson" else float(a.batch_size)

    def scaled(self, factor: float) -> "Workload":
        """The same workload at ``factor`` times the volume (growth, department size)."""
        a = self.arrivals
        if a.kind == "poisson":
            new = a.model_copy(update={"daily_volume": a.daily_volume * factor})
        else:
            new = a.model_copy(update={"batch_size": max(1, int(round(a.batch_size * factor)))})
        return self.model_copy(update={"arrivals": new})


def figure_paths(w: Workload) -> list[str]:
    """Dotted paths of the figures that need a source."""
    out = []
    if w.model:
        out.append("model")
    for k in ("input_tokens", "output_tokens", "images_per_study", "reference_annual_exams"):
        if getattr(w, k) is not None:
            out.append(k)
    if w.calls_per_study != 1:
        out.append("calls_per_study")
    a = w.arrivals
    out += [f"arrivals.{k}" for k in ("daily_volume", "batch_size") if getattr(a, k) is not None]
    if a.diurnal is not None:
        out.append("arrivals.diurnal")
    out += [f"target.{k}" for k, v in w.target.model_dump().items() if v is not None]
    return out


def has_source(path: str, sources: dict[str, str]) -> bool:
    """A source may be given for the exact path or for a block that contains it."""
    parts = path.split(".")
    return any(sources.get(".".join(parts[:i]), "").strip() for i in range(len(parts), 0, -1))


# --------------------------------------------------------------------------------------------- departments

class DepartmentEntry(Strict):
    """One workload of a department: a preset id or an inline workload, optionally re-scaled."""
    preset: str | None = None
    workload: Workload | None = None
    scale: float | None = Field(None, gt=0)            # explicit volume multiplier (overrides annual_exams)
    daily_volume: float | None = Field(None, gt=0)     # explicit studies/day (overrides both)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.preset is None) == (self.workload is None):
            raise ValueError("each entry needs exactly one of 'preset' (an id from `planner workloads`) or 'workload'")
        if self.scale is not None and self.daily_volume is not None:
            raise ValueError("give 'scale' or 'daily_volume', not both")
        return self


class DepartmentFile(Strict):
    """A department file as written: several workloads sharing one fleet."""
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    annual_exams: float | None = Field(None, gt=0)     # scales each workload by annual_exams / its reference
    workloads: list[DepartmentEntry] = Field(min_length=1)
    sources: dict[str, str] = {}
    notes: str | None = None

    @model_validator(mode="after")
    def _sourced(self):
        if self.annual_exams is not None and not has_source("annual_exams", self.sources):
            raise ValueError("figure without a 'sources' entry: annual_exams")
        return self


class Department(Strict):
    """A resolved department: workloads already scaled to the department's volume."""
    id: str
    name: str
    annual_exams: float | None = None
    workloads: tuple[Workload, ...]
    scales: tuple[float, ...]                           # volume factor applied to each workload
    sources: dict[str, str] = {}
    notes: str | None = None
