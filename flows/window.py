"""Submit a task over many inputs with at most `limit` runs in flight, results in input order.

This is how the flows stream: a study's frames (or a batch of studies) pass through a bounded window instead of
being submitted all at once, so memory holds `limit` results, not all of them.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any


def bounded_map(task: Any, inputs: Iterable[dict], limit: int) -> Iterator[Any]:
    """Yield `task.submit(**kwargs).result()` for each kwargs in `inputs`, keeping <= limit submitted ahead."""
    pending: deque = deque()
    for kwargs in inputs:
        pending.append(task.submit(**kwargs))
        if len(pending) >= max(1, limit):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()

