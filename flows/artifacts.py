"""Prefect artifacts of the flows: a per-series quality table and a markdown summary naming the archive.

Only UIDs, never patient names, IDs or birth dates, go into artifacts (they are visible to every UI user).
"""
from __future__ import annotations

import hashlib

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext

from flows.formatting import fmt
from quality.metrics import METRICS


def artifact_key(kind: str, study_uid: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only: a short hash stands for the UID."""
    return f"{kind}-{hashlib.sha256(study_uid.encode()).hexdigest()[:16]}"


def _in_run() -> bool:
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def study_artifacts(outcome) -> None:
    if not _in_run():
        return
    rows = [{k: fmt(v) for k, v in s.items()} for s in outcome.series]
    if rows:
        create_table_artifact(table=rows, key=artifact_key("quality", outcome.study_uid),
                              description=f"Per-series quality of study {outcome.study_uid}")
    lines = [
        f"# Study `{outcome.study_uid}`: **{outcome.status}**",
        "",
        "| | |", "|---|---|",
        f"| archive | `{outcome.archive}` |",
        f"| version | {outcome.version} |",
        f"| catalog id | {outcome.catalog_id} |",
        f"| mode asked | `{outcome.mode_asked}` |",
        f"| modes stored (frames) | {', '.join(f'`{m}` × {n}' for m, n in outcome.modes_used.items()) or 'none'} |",
        f"| frames / verbatim objects | {outcome.frames} / {outcome.verbatim} |",
        f"| escalated frames | {outcome.escalated} |",
        f"| ratio | {fmt(outcome.ratio)} |",
        f"| {' / '.join(m.worst_label + (f' ({m.unit})' if m.unit else '') for m in METRICS.values())} | "
        + " / ".join(fmt(getattr(outcome, m.worst_key)) for m in METRICS.values()) + " |",
    ]
    if outcome.reasons:
        lines += ["", f"## Why {outcome.status}", ""] + [f"- {r}" for r in outcome.reasons[:50]]
    escalated = [q for q in outcome.frame_quality if q.get("history")]
    if escalated:
        lines += ["", "## Escalated slices (earlier modes and why they failed)", ""]
        lines += [f"- SOP `{q['sop_uid']}` frame {q['frame']}: {' → '.join(q['history'])} → stored `{q['mode']}`"
                  for q in escalated[:50]]
    if outcome.held:
        lines += ["", "## Inputs that cannot be read now (the study waits for them)", ""]
        lines += [f"- `{h['file']}`: {h['reason']}" for h in outcome.held[:50]]
    if outcome.kept_as_received:
        lines += ["", "## Inputs kept as received (verbatim, not re-coded, no gate applied)", ""]
        lines += [f"- `{k['file']}`: {k['reason']}" for k in outcome.kept_as_received[:50]]
    create_markdown_artifact(markdown="\n".join(lines), key=artifact_key("archive", outcome.study_uid),
                             description=f"Archive of study {outcome.study_uid}")


def markdown(key: str, text: str, description: str) -> None:
    if _in_run():
        create_markdown_artifact(markdown=text, key=key, description=description)
