"""How the `medzip` commands show their results to people: tables whose cells wrap (a UID or a path is folded onto
more lines, never cut), mode counts, and one study's outcome with every reason."""
from __future__ import annotations

from typing import Any

from rich.table import Table

from flows.formatting import fmt


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose cells wrap (UIDs and paths fold onto more lines, never cut with an ellipsis)."""
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    return table


def modes(counts: dict) -> str:
    return ", ".join(f"{m} ×{n}" for m, n in (counts or {}).items()) or "none"


def _db(value: Any) -> str:
    text = fmt(value)
    return text if not text or "∞" in text or value in ("inf", "-inf") else f"{text} dB"


def outcome_lines(o: dict) -> list[str]:
    """One study's outcome for people: status, where, what was stored, and every reason."""
    head = f"[bold]{(o.get('status') or '?').upper()}[/] study {o.get('study_uid') or '(unknown)'}"
    if o.get("version"):
        head += f" v{o['version']}"
    lines = [head]
    if o.get("archive"):
        lines.append(f"  archive: {o['archive']}")
    if o.get("frames") or o.get("modes_used"):
        hu = f" ({fmt(o['max_error_hu'])} HU)" if o.get("max_error_hu") is not None else ""
        lines.append(f"  {o.get('frames', 0)} frame(s) stored as {modes(o.get('modes_used', {}))}; "
                     f"{o.get('verbatim', 0)} object(s) kept verbatim; ratio {fmt(o.get('ratio'))}; "
                     f"min PSNR {_db(o.get('min_psnr'))}; min SSIM {fmt(o.get('min_ssim'))}; "
                     f"max error {fmt(o.get('max_error'))}{hu}")
    escalated = [q for q in o.get("frame_quality", []) if q.get("history")]
    if escalated:
        lines.append(f"  {len(escalated)} frame(s) failed their gate and were re-encoded:")
        lines += [f"    SOP {q['sop_uid']} frame {q['frame']}: {' → '.join(q['history'])} → stored {q['mode']}"
                  for q in escalated[:10]]
        if len(escalated) > 10:
            lines.append(f"    … {len(escalated) - 10} more (medzip audit, or --json, lists every one)")
    lines += [f"  why: {r}" for r in o.get("reasons", [])[:20]]
    lines += [f"  waiting for {h['file']}: {h['reason']}" for h in o.get("held", [])]
    lines += [f"  kept as received: {k['file']}: {k['reason']}" for k in o.get("kept_as_received", [])]
    shown = {h["file"] for h in o.get("held", [])} | {k["file"] for k in o.get("kept_as_received", [])}
    lines += [f"  not archived: {e}" for e in o.get("input_errors", []) if not any(e.startswith(f) for f in shown)]
    return lines
