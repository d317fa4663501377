"""Gate evaluation: a decoded slice against its original and its modality's gate (docs/design.md, "Gate").

The thresholds are configuration (configs.Gate, validated there); judging them is here, once. A gate failure is a
quality shortfall that escalation may fix; a mode's broken error bound is an integrity problem it never fixes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from quality.metrics import METRICS, figures, max_error_hu

if TYPE_CHECKING:
    from codec.modes import Mode
    from configs import Gate


@dataclass(frozen=True)
class Failure:
    """One metric of one slice outside its gate: the figure and the limit it missed."""

    metric: str
    value: float
    limit: float

    def __str__(self) -> str:
        return METRICS[self.metric].reason(self.value, self.limit)


@dataclass(frozen=True)
class Evaluation:
    """What one slice's decode measured and how it was judged."""

    figures: dict[str, float]  # metric name -> figure
    failures: tuple[Failure, ...] = ()  # the gate's
    integrity: tuple[str, ...] = ()  # the mode's error bound broken, a wrong shape: defects, never escalated away
    max_error_hu: float | None = None  # CT only
    unmeasured: str | None = None  # why no figure could be taken (the decode failed, the shape is wrong)

    @property
    def gate_reasons(self) -> list[str]:
        return [self.unmeasured] if self.unmeasured else [str(f) for f in self.failures]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.integrity and self.unmeasured is None

    def __getitem__(self, metric: str) -> float:
        return self.figures[metric]


def gate_failures(figures_: dict[str, float], gate: Gate) -> tuple[Failure, ...]:
    """The metrics whose figure misses the gate's limit (a gate without a limit for a metric passes it)."""
    out = []
    for name, metric in METRICS.items():
        limit = getattr(gate, metric.threshold, None)
        if limit is not None and metric.fails(figures_[name], limit):
            out.append(Failure(name, figures_[name], limit))
    return tuple(out)


def bound_violations(max_error: int, mode: Mode) -> tuple[str, ...]:
    """The mode's guaranteed |original - decoded| bound, when the max error breaks it."""
    bound = mode.max_error_bound
    if bound is not None and max_error > bound:
        return (f"max error {max_error} exceeds the {mode} bound {bound}",)
    return ()


def judge(figures_: dict[str, float], gate: Gate, mode: Mode, *, hu: float | None = None) -> Evaluation:
    """Judge figures already measured (a quality-table row read back, or a fresh measurement)."""
    return Evaluation(dict(figures_), gate_failures(figures_, gate), bound_violations(figures_["max_error"], mode),
                      hu)


def evaluate(original: np.ndarray, decoded: np.ndarray, gate: Gate, mode: Mode, *, bits_stored: int,
             modality: str = "", rescale_slope: float = 1.0) -> Evaluation:
    """Decoded vs original stored values: every metric's figure, the gate's failures, the mode's bound, and for CT
    the max error in HU. A decode of the wrong shape cannot be measured and fails."""
    if decoded.shape != original.shape:
        return unmeasured("wrong shape", bits_stored, modality=modality, rescale_slope=rescale_slope,
                          integrity=(f"decoded shape {decoded.shape} != original {original.shape}",))
    measured = figures(original, decoded, bits_stored)
    return judge(measured, gate, mode, hu=max_error_hu(measured["max_error"], rescale_slope, modality))


def unmeasured(reason: str, bits_stored: int, *, modality: str = "", rescale_slope: float = 1.0,
               integrity: tuple[str, ...] = ()) -> Evaluation:
    """A slice with no decode to measure: the worst figures, failing its gate for `reason`."""
    worst = {name: m.no_decode(bits_stored) for name, m in METRICS.items()}
    hu = max_error_hu(worst["max_error"], rescale_slope, modality)
    return Evaluation(worst, integrity=integrity, max_error_hu=hu, unmeasured=reason)
