"""Codec modes: `lossless`, `near-lossless:K`, `lossy:Q` (DESIGN.md, "Codec modes")."""
from __future__ import annotations

from dataclasses import dataclass


class ModeError(ValueError):
    """A mode string that does not name a codec mode."""


@dataclass(frozen=True, order=True)
class Mode:
    kind: str  # "lossless" | "near-lossless" | "lossy"
    level: int = 0  # k for near-lossless (0 means lossless), q for lossy

    @classmethod
    def parse(cls, text: str) -> "Mode":
        text = text.strip().lower()
        if text == "lossless":
            return cls("lossless", 0)
        name, sep, arg = text.partition(":")
        if name in ("near-lossless", "lossy") and sep:
            try:
                level = int(arg)
            except ValueError:
                raise ModeError(f"mode {text!r}: {arg!r} is not an integer") from None
            if name == "near-lossless":
                if level < 0:
                    raise ModeError(f"mode {text!r}: k must be >= 0")
                return cls("lossless", 0) if level == 0 else cls("near-lossless", level)
            if level < 0:
                raise ModeError(f"mode {text!r}: q must be >= 0")
            return cls("lossy", level)
        raise ModeError(
            f"unknown codec mode {text!r}: expected 'lossless', 'near-lossless:K' or 'lossy:Q'"
        )

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

    def __str__(self) -> str:
        return "lossless" if self.kind == "lossless" else f"{self.kind}:{self.level}"
