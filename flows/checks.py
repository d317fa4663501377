"""What the command line checks before any work starts, so a wrong argument costs one line and exit code 2, not a
Prefect server start and a half-made run. Imports nothing heavy (no Prefect, no Keras)."""
from __future__ import annotations

import os
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path

from codec.modes import Mode, ModeError
from configs import Config


class ArgumentError(ValueError):
    """An argument or option that cannot be used as given; the message names it and says what would do."""


def check_policy(config: Config) -> None:
    """The codec policy and escalation ceiling are modes the installed codec can code (lossy:Q needs a rate point Q
    the weights have)."""
    from codec.errors import ModelError
    from codec.learned import load_model

    for what, mode in (("mode", config.codec.mode), ("escalate_to", config.codec.escalate_to)):
        if isinstance(mode, Mode) and mode.is_lossy:
            try:
                q = load_model().Q
            except ModelError as exc:
                raise ModeError(f"{what} {mode}: the codec weights cannot be loaded: {exc}") from None
            if mode.level >= q:
                raise ModeError(f"{what} {mode}: the codec has rate points lossy:0 to lossy:{q - 1}")


def utc_bound(text: str | None, option: str) -> str | None:
    """A --since/--until value (YYYY-MM-DD, or an ISO date and time; UTC unless it says otherwise) as the catalog's
    UTC text; ArgumentError naming the option for anything else."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return day.strftime("%Y-%m-%dT00:00:00.000000Z")
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentError(f"{option} {text!r} is not a date: use YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SS)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_dates(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    lo, hi = utc_bound(since, "--since"), utc_bound(until, "--until")
    if lo is not None and hi is not None and hi <= lo:
        raise ArgumentError(f"--until {until} is not after --since {since}: the range is empty")
    return lo, hi


def check_choice(value: str | None, option: str, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ArgumentError(f"{option} {value!r}: expected one of {', '.join(choices)}")


def check_output_dir(path: Path, option: str = "OUTDIR") -> None:
    """A folder that exists and takes a new file, or can be made where its nearest existing parent takes one (tried
    for real: permission bits do not tell for root, a read-only mount or an ACL)."""
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{option} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".medzip-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ArgumentError(f"{option} {path}: {probe} is not writable ({exc.strerror or exc})") from None


def check_writable_inbox(inbox: Path) -> None:
    """The listener's inbox must take files: refusing to start beats accepting associations and then refusing every
    C-STORE."""
    try:
        check_output_dir(inbox, "inbox")
    except ArgumentError as exc:
        raise ArgumentError(f"{exc}; the listener would refuse every instance, so it does not start") from None
