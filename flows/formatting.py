"""How figures are written for people (tables, artifacts) and for JSON (reports, `--json`): one place each."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for a table cell: 4 significant digits, an infinite PSNR as '∞ (exact)', None as blank."""
    if isinstance(value, float):
        if math.isinf(value):
            return "∞ (exact)" if value > 0 else "-∞"
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def jsonable(value: Any) -> Any:
    """Plain JSON data: paths as strings, infinite floats as "inf"/"-inf", NaN as null, models and dataclasses
    as dicts."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return jsonable(asdict(value))
    return value
