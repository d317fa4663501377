"""Codec modes: `lossless`, `near-lossless:K`, `wavelet:Q/E`, `lossy:Q` (docs/design.md, "Codec modes").

A `Mode` is parsed once, at the edge (CLI, config), and passed as a value after that. Modes order by strictness
in this one place: lossy (a higher q is stricter) < wavelet (a smaller guard bound, then a higher q, is stricter)
< near-lossless (a smaller k is stricter) < lossless, so `min`, `max`, `sorted` and `<` mean "looser" / "stricter"
everywhere.

`wavelet:Q/E` is the integer 9/7 wavelet coder (codec/wavelet.py) at rate point Q (0..255, higher = finer; the
quantiser step is the slice's value range times 2^(-Q/24)) with a guard that holds every pixel within E stored values;
`wavelet:Q` has no guard (no error bound).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

from codec.errors import ModeError

__all__ = ["KINDS", "Mode", "ModeError", "NEAR_LOSSLESS_K_MAX", "WAVELET_BOUND_MAX", "WAVELET_Q_MAX",
           "WAVELET_Q_PER_OCTAVE", "wavelet_step"]

KINDS = ("lossy", "wavelet", "near-lossless", "lossless")  # loosest kind first
WAVELET_Q_MAX = 255
NEAR_LOSSLESS_K_MAX = 255  # a payload records k in one byte
WAVELET_BOUND_MAX = 2**31 - 1  # the largest guard bound a wavelet stream records
WAVELET_Q_PER_OCTAVE = 24  # the wavelet's quantiser step halves every 24 rate points (~6 dB PSNR)


def wavelet_step(q: int, lo: int, hi: int) -> float:
    """The global quantiser step D of wavelet rate point q on a slice of values lo..hi: (hi - lo + 1) 2^(-q/24)."""
    return (hi - lo + 1) * 2.0 ** (-q / WAVELET_Q_PER_OCTAVE)


@total_ordering
@dataclass(frozen=True)
class Mode:
    kind: str  # one of KINDS
    level: int = 0  # k for near-lossless, q for lossy and wavelet, 0 for lossless
    bound: int | None = None  # wavelet only: the guard's max |error| (None: unguarded)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModeError(f"unknown mode kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not isinstance(self.level, int) or self.level < 0:
            raise ModeError(f"mode level must be an integer >= 0, got {self.level!r}")
        if self.kind == "near-lossless" and self.level == 0:
            object.__setattr__(self, "kind", "lossless")  # near-lossless:0 is lossless
        if self.kind == "lossless" and self.level != 0:
            raise ModeError("lossless takes no level")
        if self.kind == "near-lossless" and self.level > NEAR_LOSSLESS_K_MAX:
            raise ModeError(f"near-lossless k {self.level} is out of range 1..{NEAR_LOSSLESS_K_MAX}")
        if self.kind == "wavelet":
            if self.level > WAVELET_Q_MAX:
                raise ModeError(f"wavelet rate point {self.level} is out of range 0..{WAVELET_Q_MAX}")
            if self.bound is not None and (not isinstance(self.bound, int) or not 0 <= self.bound <= WAVELET_BOUND_MAX):
                raise ModeError(f"wavelet guard bound must be an integer 0..{WAVELET_BOUND_MAX}, got {self.bound!r}")
        elif self.bound is not None:
            raise ModeError(f"{self.kind} takes no guard bound")

    @classmethod
    def lossless(cls) -> "Mode":
        return cls("lossless", 0)

    @classmethod
    def near_lossless(cls, k: int) -> "Mode":
        return cls("near-lossless", int(k))

    @classmethod
    def lossy(cls, q: int) -> "Mode":
        return cls("lossy", int(q))

    @classmethod
    def wavelet(cls, q: int, bound: int | None = None) -> "Mode":
        return cls("wavelet", int(q), None if bound is None else int(bound))

    @classmethod
    def parse(cls, text: "str | Mode") -> "Mode":
        if isinstance(text, Mode):
            return text
        text = str(text).strip().lower()
        if text == "lossless":
            return cls.lossless()
        name, sep, arg = text.partition(":")
        if name in ("near-lossless", "lossy", "wavelet") and sep:
            arg, slash, bound = arg.partition("/") if name == "wavelet" else (arg, "", "")
            try:
                level = int(arg)
                guard = int(bound) if slash else None
            except ValueError:
                raise ModeError(f"mode {text!r}: {(bound if slash else arg)!r} is not an integer") from None
            if level < 0 or (guard is not None and guard < 0):
                raise ModeError(f"mode {text!r}: levels and bounds must be >= 0")
            return cls(name, level, guard)
        raise ModeError(f"unknown codec mode {text!r}: expected 'lossless', 'near-lossless:K', 'wavelet:Q/E', "
                        "'wavelet:Q' or 'lossy:Q'")

    @property
    def strictness(self) -> tuple[int, int, int]:
        """The sort key: loosest first."""
        if self.kind == "lossy":
            return (0, 0, self.level)
        if self.kind == "wavelet":
            return (1, -(2**31 if self.bound is None else self.bound), self.level)
        if self.kind == "near-lossless":
            return (2, -self.level, 0)
        return (3, 0, 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Mode):
            return NotImplemented
        return self.strictness < other.strictness

    @property
    def max_error_bound(self) -> int | None:
        """The guaranteed |original - decoded| bound, or None for lossy and an unguarded wavelet."""
        if self.kind == "lossless":
            return 0
        if self.kind == "near-lossless":
            return self.level
        if self.kind == "wavelet":
            return self.bound
        return None

    @property
    def is_lossless(self) -> bool:
        return self.kind == "lossless"

    @property
    def is_lossy(self) -> bool:
        """Only the learned transform: no error bound, rate points from the weights. (near-lossless and wavelet are
        irreversible too; see is_transform.)"""
        return self.kind == "lossy"

    @property
    def is_transform(self) -> bool:
        """Coded by a transform (learned or wavelet) rather than the residual layer: the escalation ladder's next
        step after one is near-lossless."""
        return self.kind in ("lossy", "wavelet")

    def __str__(self) -> str:
        if self.kind == "lossless":
            return "lossless"
        if self.kind == "wavelet" and self.bound is not None:
            return f"wavelet:{self.level}/{self.bound}"
        return f"{self.kind}:{self.level}"
