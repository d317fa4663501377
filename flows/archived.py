"""The archive reader boundary of the flows: what an archive recorded as text becomes a value here, once."""
from __future__ import annotations

from codec.modes import Mode


def frame_mode(frame) -> Mode:
    """The mode a frame was archived at (archive.FrameInfo.mode); ModeError when the record names no codec mode."""
    return Mode.parse(frame.mode)
