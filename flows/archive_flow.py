"""The archive flow: ingest → normalize/tile/compress (codec) → archive (temporary file) → verify from the file →
escalate failing slices → release or quarantine. See docs/design.md, "The path of one study"."""

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task

from codec.modes import Mode
from configs import Config
from dicom_io import Study
from flows import publish
from flows.escalation import next_mode
from flows.runners import task_runner_for
from flows.steps import (
    FrameId,
    FrameQuality,
    chunks_of,
    encode_chunk,
    hash_inputs,
    reencode_frames,
    verify_frames,
)
from flows.window import bounded_map

HEADER_FORMAT = "dicom-part10-no-pixels"


class StudySelectionError(ValueError):
    """The paths given to archive_study do not hold exactly the one study asked for."""


@dataclass
class ArchiveOutcome:
    study_uid: str
    status: str  # released | quarantined | already-archived | in-progress
    archive: str | None
    version: int | None = None
    catalog_id: int | None = None
    content_hash: str = ""
    mode: str = ""  # the mode asked for
    modes_used: dict[str, int] = field(default_factory=dict)  # final mode -> frames
    frames: int = 0
    verbatim: int = 0
    escalated: int = 0  # frames re-encoded at a stricter mode
    ratio: float | None = None
    min_psnr: float | None = None
    min_ssim: float | None = None
    max_error: int | None = None
    reasons: list[str] = field(default_factory=list)  # why quarantined
    input_errors: list[str] = field(default_factory=list)  # files of the study that could not be read
    series: list[dict] = field(default_factory=list)  # per-series quality
    frame_quality: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# ---- ingest ---------------------------------------------------------------------------------------------------

@task(name="ingest")
def ingest(paths: list[str], study_uid: str | None = None) -> Study:
    """Read the files (headers only), group them; exactly one study (or the one named) must be there."""
    from dicom_io import read_studies

    found = read_studies([Path(p) for p in paths])
    studies = found.studies if study_uid is None else [s for s in found.studies if s.study_instance_uid == study_uid]
    if len(studies) != 1:
        names = ", ".join(s.study_instance_uid for s in found.studies) or "none"
        why = f"no study {study_uid}" if study_uid else f"{len(studies)} studies"
        raise StudySelectionError(f"{why} among {len(paths)} path(s) (found: {names}; unreadable files: "
                                  f"{len(found.errors)}); archive_paths archives each study separately")
    return studies[0]


# ---- write ----------------------------------------------------------------------------------------------------

def write_archive(path: Path, study: Study, config: Config, mode: Mode, content_hash: str, meta: dict) -> dict:
    """Encode every frame (bounded window of chunk tasks) and stream the payloads into a new archive file.
    Returns {SOP Instance UID: (series index, instance index)}."""
    from archive import ArchiveWriter
    from dicom_io import read_verbatim_bytes

    window = 2 * config.runner.max_workers
    keys: dict[str, tuple[int, int]] = {}
    series_index: dict[str, int] = {}
    chunks = chunks_of(study)
    with ArchiveWriter(path, study_uid=study.study_instance_uid, codec="", mode=str(mode),
                       content_hash=content_hash, meta=meta) as writer:
        for series in study.series:
            series_index[series.series_instance_uid] = writer.add_series(series.series_instance_uid, series.modality)
        inputs = ({"chunk": c, "mode": str(mode)} for c in chunks)
        for encoded in bounded_map(encode_chunk, inputs, window):
            s = series_index[encoded.chunk.series_uid]
            by_uid = {}
            for inst in encoded.chunk.instances:
                fmt = inst.pixel
                by_uid[inst.sop_instance_uid] = writer.add_instance(
                    s, sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
                    modality=inst.modality, rows=fmt.rows, columns=fmt.columns, bits_allocated=fmt.bits_allocated,
                    bits_stored=fmt.bits_stored, signed=fmt.signed, number_of_frames=inst.number_of_frames,
                    header=encoded.headers[inst.sop_instance_uid], header_format=HEADER_FORMAT,
                    extra={"rescale_slope": inst.rescale_slope, "rescale_intercept": inst.rescale_intercept,
                           "source_path": str(inst.path)},  # lets the audit show the original beside the decode
                )
                keys[inst.sop_instance_uid] = tuple(by_uid[inst.sop_instance_uid])
            for ef in encoded.frames:
                writer.add_frame(by_uid[ef.sop_uid], ef.frame, ef.payload, codec=ef.codec, mode=ef.mode,
                                 values_sha256=ef.values_sha256)
        for series in study.series:
            for obj in series.verbatim:  # byte for byte
                writer.add_verbatim(series_index[series.series_instance_uid], read_verbatim_bytes(obj),
                                    sop_instance_uid=obj.sop_instance_uid, sop_class_uid=obj.sop_class_uid,
                                    modality=obj.modality, reason=obj.reason)
    return keys


# ---- verify and escalate --------------------------------------------------------------------------------------

def verify_archive_quality(path: Path, study: Study, config: Config,
                           only: set[FrameId] | None = None) -> list[FrameQuality]:
    """Decode from the written FILE and measure every frame (or only `only`), chunk by chunk."""
    inputs = []
    for c in chunks_of(study):
        mine = None
        if only is not None:
            uids = {i.sop_instance_uid for i in c.instances}
            mine = sorted(k for k in only if k[0] in uids)
            if not mine:
                continue
        inputs.append({"archive_path": str(path), "chunk": c, "gate": config.gate_for(c.modality), "only": mine})
    rows: list[FrameQuality] = []
    for part in bounded_map(verify_frames, inputs, 2 * config.runner.max_workers):
        rows.extend(part)
    return rows


def escalate(path: Path, study: Study, config: Config, failing: list[FrameQuality],
             keys: dict[str, tuple[int, int]]) -> dict[FrameId, str]:
    """Re-encode each failing frame at its next stricter mode and rewrite the archive with them.
    Returns {frame: new mode}; frames without a stricter mode allowed are left out."""
    from archive import FrameKey, NewPayload, rewrite_archive

    ceiling = config.codec.parsed_escalate_to
    by_instance: dict[tuple[str, str], list[int]] = {}
    new_modes: dict[FrameId, str] = {}
    for q in failing:
        if q.integrity:
            continue  # a checksum or bound violation is a defect, not a quality shortfall
        nxt = next_mode(Mode.parse(q.mode), config.gate_for(q.modality), ceiling)
        if nxt is None:
            continue
        by_instance.setdefault((q.sop_uid, str(nxt)), []).append(q.frame)
        new_modes[q.key] = str(nxt)
    if not new_modes:
        return {}
    instances = {i.sop_instance_uid: i for i in study.instances}
    inputs = [{"inst": instances[uid], "frames": sorted(frames), "mode": mode}
              for (uid, mode), frames in by_instance.items()]
    replace = {}
    for encoded in bounded_map(reencode_frames, inputs, 2 * config.runner.max_workers):
        for ef in encoded:
            s, i = keys[ef.sop_uid]
            replace[FrameKey(s, i, ef.frame)] = NewPayload(ef.payload, codec=ef.codec, mode=ef.mode,
                                                           values_sha256=ef.values_sha256)
    rewrite_archive(path, frames=replace)
    return new_modes


def quality_rows(rows: Iterable[FrameQuality], keys: dict[str, tuple[int, int]]) -> list[dict]:
    """The archive's per-frame quality table (archive.QualityRow fields)."""
    out = []
    for q in rows:
        s, i = keys[q.sop_uid]
        out.append(dict(series=s, instance=i, frame=q.frame, sop_instance_uid=q.sop_uid, modality=q.modality,
                        mode=q.mode, codec=q.codec, psnr=q.psnr, ssim=q.ssim, max_error=q.max_error,
                        payload_bytes=q.payload_bytes, original_bytes=q.original_bytes, ratio=q.ratio,
                        gate_passed=q.passed, gate_reasons=tuple(q.gate_reasons + q.integrity),
                        attempts=len(q.escalations) + 1, escalations=tuple(q.escalations)))
    return out


# ---- summaries ------------------------------------------------------------------------------------------------

def _finite_min(values: Iterable[float]) -> float | None:
    values = list(values)
    return min(values) if values else None


def _mean_psnr(rows: list[FrameQuality]) -> float | None:
    """Mean over the slices that are not exact; +inf when every slice is exact."""
    if not rows:
        return None
    finite = [q.psnr for q in rows if math.isfinite(q.psnr)]
    return sum(finite) / len(finite) if finite else math.inf


def summarize(rows: list[FrameQuality], study: Study) -> dict:
    original = sum(q.original_bytes for q in rows)
    payload = sum(q.payload_bytes for q in rows)
    series = []
    for s in study.series:
        mine = [q for q in rows if q.series_uid == s.series_instance_uid]
        if not mine and not s.verbatim:
            continue
        series.append({
            "series_uid": s.series_instance_uid, "modality": s.modality, "frames": len(mine),
            "verbatim": len(s.verbatim),
            "modes": ", ".join(sorted({q.mode for q in mine})) or "verbatim",
            "min_psnr": _finite_min(q.psnr for q in mine),
            "mean_psnr": _mean_psnr(mine),
            "min_ssim": _finite_min(q.ssim for q in mine),
            "max_error": max((q.max_error for q in mine), default=None),
            "ratio": (sum(q.original_bytes for q in mine) / max(1, sum(q.payload_bytes for q in mine))) if mine else None,
            "escalated": sum(1 for q in mine if q.escalations),
            "failed": sum(1 for q in mine if not q.passed),
        })
    modes: dict[str, int] = {}
    for q in rows:
        modes[q.mode] = modes.get(q.mode, 0) + 1
    return {
        "original_bytes": original, "archived_bytes": payload,
        "ratio": original / payload if payload else None,
        "min_psnr": _finite_min(q.psnr for q in rows), "min_ssim": _finite_min(q.ssim for q in rows),
        "max_error": max((q.max_error for q in rows), default=None),
        "modes_used": modes, "series": series,
        "modalities": sorted({s.modality.upper() for s in study.series if s.modality}),
    }


def _quarantine_reasons(rows: list[FrameQuality]) -> list[str]:
    return [f"series {q.series_uid} SOP {q.sop_uid} frame {q.frame} ({q.mode}): " + "; ".join(q.gate_reasons + q.integrity)
            for q in rows if not q.passed]


# ---- the flow -------------------------------------------------------------------------------------------------

@flow(name="archive-study")
def archive_study_flow(paths: list[str], config: Config, mode: str | None = None, study_uid: str | None = None,
                       retry_quarantined: bool = False) -> ArchiveOutcome:
    from archive import Catalog, atomic_move, file_sha256, safe_archive_name, verify_archive

    logger = get_run_logger()
    asked = Mode.parse(mode) if mode else config.codec.parsed_mode

    # ingest
    study = ingest(paths, study_uid)
    uid = study.study_instance_uid
    content_hash = hash_inputs(study)
    input_errors = [str(e) for e in study.errors]
    catalog = Catalog.from_config(config)
    claim = catalog.claim(uid, content_hash, mode=str(asked), retry_quarantined=retry_quarantined)
    if not claim.claimed:
        rec = claim.record
        status = "already-archived" if rec.status in ("released", "quarantined") else "in-progress"
        logger.info("study %s: same content already in the catalog (archive %s, %s) - not archived again",
                    uid, rec.id, rec.status)
        return ArchiveOutcome(uid, status, rec.path, rec.version, rec.id, content_hash, rec.mode or "",
                              frames=rec.n_frames or 0, verbatim=rec.n_verbatim or 0, ratio=rec.ratio,
                              min_psnr=rec.min_psnr, min_ssim=rec.min_ssim, max_error=rec.max_error,
                              reasons=list(rec.reasons), input_errors=input_errors)
    rec = claim.record
    name = safe_archive_name(uid, rec.version)
    work = config.paths.work / name
    work.unlink(missing_ok=True)  # a leftover of a crashed run of this very claim
    meta = {"requested_mode": str(asked), "escalate_to": config.codec.escalate_to, "catalog_id": rec.id,
            "version": rec.version, "gates": {k: g.model_dump() for k, g in config.gates.items()}}
    outcome = ArchiveOutcome(uid, "quarantined", None, rec.version, rec.id, content_hash, str(asked),
                             frames=sum(i.number_of_frames for i in study.instances),
                             verbatim=len(study.verbatim), input_errors=input_errors)
    try:
        # tile + compress + archive (into work/)
        keys = write_archive(work, study, config, asked, content_hash, meta)
        # verify from the file, escalate what fails, verify the re-encoded frames again
        rows = {q.key: q for q in verify_archive_quality(work, study, config)}
        while True:
            failing = [q for q in rows.values() if not q.passed]
            if not failing:
                break
            changed = escalate(work, study, config, failing, keys)
            if not changed:
                break
            logger.info("study %s: %d slice(s) failed their gate; re-encoded at a stricter mode", uid, len(changed))
            for q in verify_archive_quality(work, study, config, only=set(changed)):
                q.escalations = rows[q.key].escalations + [rows[q.key].mode]
                rows[q.key] = q
        ordered = list(rows.values())
        from archive import set_quality

        set_quality(work, quality_rows(ordered, keys))
        verify_archive(work)  # every header, payload and verbatim checksum of the final file
    except Exception as exc:  # nothing half-done may look released: record why and quarantine the claim
        logger.error("study %s: archiving failed: %s", uid, exc)
        outcome.reasons = [f"archiving failed: {type(exc).__name__}: {exc}"]
        if work.exists():
            target = atomic_move(work, config.paths.quarantine, name=name, overwrite=True)
            outcome.archive = str(target)
            _write_reasons(target, outcome.reasons)
        catalog.set_status(rec.id, "quarantined", outcome.reasons, path=outcome.archive)
        publish.study_artifacts(outcome)
        raise

    summary = summarize(ordered, study)
    outcome.modes_used = summary["modes_used"]
    outcome.escalated = sum(1 for q in ordered if q.escalations)
    outcome.ratio, outcome.min_psnr = summary["ratio"], summary["min_psnr"]
    outcome.min_ssim, outcome.max_error = summary["min_ssim"], summary["max_error"]
    outcome.series = summary["series"]
    outcome.frame_quality = [q.as_dict() for q in ordered]
    reasons = _quarantine_reasons(ordered)
    # release or quarantine
    destination = config.paths.quarantine if reasons else config.paths.released
    # a killed run of this same claim may have moved its (verified) archive already, before the catalog said so:
    # this run's archive replaces it, and never leaves it in released/ when this one is quarantined
    redo = claim.why == "taken-over"
    final = atomic_move(work, destination, name=name, overwrite=bool(reasons) or redo)
    if redo and reasons:
        (config.paths.released / name).unlink(missing_ok=True)
    outcome.archive = str(final)
    catalog.record_summary(rec.id, {
        **summary, "path": str(final), "n_series": len(study.series), "n_instances": len(study.instances),
        "n_frames": len(ordered), "n_verbatim": len(study.verbatim), "mode": str(asked),
        "codec": ", ".join(sorted({q.codec for q in ordered})), "file_sha256": file_sha256(final),
    })
    if reasons:
        _write_reasons(final, reasons)
        outcome.status, outcome.reasons = "quarantined", reasons
        catalog.set_status(rec.id, "quarantined", reasons, path=final)
        logger.warning("study %s quarantined: %d slice(s) fail: %s", uid, len(reasons), reasons[0])
    else:
        outcome.status = "released"
        catalog.set_status(rec.id, "released", path=final)
        logger.info("study %s released: %s (ratio %.2f)", uid, final, outcome.ratio or math.nan)
    publish.study_artifacts(outcome)
    return outcome


def _write_reasons(archive_path: Path, reasons: list[str]) -> Path:
    path = Path(archive_path).with_suffix(".reasons.json")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"archive": Path(archive_path).name, "reasons": reasons}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


# ---- entry points ---------------------------------------------------------------------------------------------

def archive_study(paths: Iterable[str | Path], config: Config, mode: str | None = None, *,
                  study_uid: str | None = None, retry_quarantined: bool = False) -> ArchiveOutcome:
    """Archive the one study in `paths` (files or folders) on the task runner the config names."""
    flow_ = archive_study_flow.with_options(task_runner=task_runner_for(config))
    return flow_([str(p) for p in paths], config, mode, study_uid, retry_quarantined)


def archive_paths(paths: Iterable[str | Path], config: Config, mode: str | None = None) -> list[dict]:
    """`medzip archive PATH…`: archive every study found under `paths`, one after the other."""
    from dicom_io import read_studies

    from flows.inbox import failed_outcome

    found = read_studies([Path(p) for p in paths])
    outcomes = []
    for study in found.studies:
        files = [str(o.path) for o in (*study.instances, *study.verbatim)]
        if not files:
            outcomes.append({"study_uid": study.study_instance_uid, "status": "unreadable", "archive": None,
                             "input_errors": [str(e) for e in study.errors]})
            continue
        files += [str(e.path) for e in study.errors]  # read again in ingest, so the outcome names them
        try:
            outcomes.append(archive_study(files, config, mode, study_uid=study.study_instance_uid).as_dict())
        except Exception as exc:  # one study that cannot be archived must not stop the others
            outcomes.append(failed_outcome(study.study_instance_uid, exc))
    for err in found.errors:
        outcomes.append({"study_uid": None, "status": "unreadable", "archive": None, "input_errors": [str(err)]})
    return outcomes
