"""The catalog's clock and claim owners: UTC text timestamps, and `host:pid:t<token>` owners whose death on this host
frees their claim."""
from __future__ import annotations

import os
import re
import secrets
import socket
from datetime import date, datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_OWNER_RE = re.compile(r"^(?P<host>[^:]*):(?P<pid>[0-9]+)(:t?[0-9a-f]+)?$")  # also host:pid:thread-id


def default_owner() -> str:
    """`host:pid:t<token>` - unique per claim, so two runs in one process never share a claim by accident."""
    return f"{socket.gethostname()}:{os.getpid()}:t{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True when `owner` (`host:pid` or `host:pid:t<token>`) names a process on this host that no longer exists."""
    if not owner:
        return True
    m = _OWNER_RE.match(owner)
    if m is None or m["host"] != socket.gethostname():
        return False
    pid = m["pid"]
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def utc_text(value: datetime | date | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT00:00:00.000000Z")
