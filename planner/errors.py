"""Errors a user can act on. The CLI prints their message on one line and exits with code 2."""
from __future__ import annotations

import difflib


class PlannerError(ValueError):
    """Bad input: the message names the file/field/value and what is allowed."""


class UnknownIdError(PlannerError):
    def __init__(self, what: str, value: str, known: list[str]):
        close = difflib.get_close_matches(value, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
        super().__init__(f"unknown {what} '{value}'{hint}")
        self.value, self.suggestions = value, close


class SpecFileError(PlannerError):
    pass


def format_validation_error(path: str, err) -> str:
    """One line from a pydantic ValidationError: file, field, value and what is allowed."""
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        val = e.get("input")
        shown = "" if isinstance(val, dict) or val is None else f" = {val!r}"
        msg = e["msg"].replace("Value error, ", "")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not allowed by the schema)"
        parts.append(f"field '{loc}'{shown}: {msg}")
    more = f" (+{len(err.errors()) - 3} more)" if len(err.errors()) > 3 else ""
    return f"{path}: " + "; ".join(parts) + more


def check_positive_int(name: str, value, allow_zero: bool = False) -> int:
    """Batch, lengths, tp...: positive integers (or >= 0 where allowed), never bool/float/NaN."""
    ok = isinstance(value, (int,)) and not isinstance(value, bool)
    if not ok:
        try:
            ok = float(value).is_integer() and not isinstance(value, bool)
            value = int(value) if ok else value
        except (TypeError, ValueError):
            ok = False
    lo = 0 if allow_zero else 1
    if not ok or value < lo:
        want = "a non-negative integer" if allow_zero else "a positive integer"
        raise PlannerError(f"{name} must be {want}, got {value!r}")
    return int(value)
