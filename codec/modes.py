"""Codec modes: `lossless`, `near-lossless:K`, `lossy:Q` (docs/design.md, "Codec modes").

A `Mode` is parsed once, at the edge (CLI, config), and passed as a value after that. Modes order by strictness
in this one place: lossy (a higher q is stricter) < near-lossless (a smaller k is stricter) < lossless, so
`min`, `max`, `sorted` and `<` mean "looser" / "stricter" everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

from codec.errors import ModeError

__all__ = ["KINDS", "Mode", "ModeError"]

KINDS = ("lossy", "near-lossless", "lossless")  # loosest kind first


@total_ordering
@dataclass(frozen=True)
class Mode:
    kind: str  # one of KINDS
    level: int = 0  # k for near-lossless, q for lossy, 0 for lossless

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModeError(f"unknown mode kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not isinstance(self.level, int) or self.level < 0:
            raise ModeError(f"mode level must be an integer >= 0, got {self.level!r}")
        if self.kind == "near-lossless" and self.level == 0:
            object.__setattr__(self, "kind", "lossless")  # near-lossless:0 is lossless
        if self.kind == "lossless" and self.level != 0:
            raise ModeError("lossless takes no level")

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
    def parse(cls, text: "str | Mode") -> "Mode":
        if isinstance(text, Mode):
            return text
        text = str(text).strip().lower()
        if text == "lossless":
            return cls.lossless()
        name, sep, arg = text.partition(":")
        if name in ("near-lossless", "lossy") and sep:
            try:
                level = int(arg)
            except ValueError:
                raise ModeError(f"mode {text!r}: {arg!r} is not an integer") from None
            if level < 0:
                raise ModeError(f"mode {text!r}: {'k' if name == 'near-lossless' else 'q'} must be >= 0")
            return cls(name, level)
        raise ModeError(f"unknown codec mode {text!r}: expected 'lossless', 'near-lossless:K' or 'lossy:Q'")

    @property
    def strictness(self) -> tuple[int, int]:
        """The sort key: loosest first."""
        if self.kind == "lossy":
            return (0, self.level)
        if self.kind == "near-lossless":
            return (1, -self.level)
        return (2, 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Mode):
            return NotImplemented
        return self.strictness < other.strictness

    @property
    def max_error_bound(self) -> int | None:
        """The guaranteed |original - decoded| bound, or None for lossy."""
        if self.kind == "lossless":
            return 0
        if self.kind == "near-lossless":
            return self.level
        return None

    @property
    def is_lossless(self) -> bool:
        return self.kind == "lossless"

    @property
    def is_lossy(self) -> bool:
        """Only the learned transform: no error bound. (near-lossless is irreversible too, but bounded.)"""
        return self.kind == "lossy"

    def __str__(self) -> str:
        return "lossless" if self.kind == "lossless" else f"{self.kind}:{self.level}"
