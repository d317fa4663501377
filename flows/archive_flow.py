"""The archive flow: ingest → normalize/tile/compress (codec) → archive (temporary file) → verify from the file →
escalate failing slices → release or quarantine. See docs/design.md, "The path of one study"."""

import json
import math
from collections.abc import Iterable
from pathlib import Path

from prefect import flow, get_run_logger

from atomicfs import atomic_write
from codec.modes import Mode
from configs import Config
from dicom_io import Study
from flows import artifacts
from flows.chunks import chunks_of
from flows import workers
from flows.chunk_work import EncodedFrame
from flows.encoding import encode_chunk, verify_frames
from flows.ingest import Ingested, beside, claim_key, hash_inputs, ingest, policy_of
from flows.outcomes import ArchiveOutcome, failed_outcome, unplaced_outcome
from flows.runners import task_runner_for
from flows.window import bounded_map
from quality.auto import Auto
from quality.metrics import METRICS, PSNR_DEFINITION
from quality.records import FrameId, FrameQuality
from quality.summaries import study_summary

HEADER_FORMAT = "dicom-part10-no-pixels"


# ---- write ----------------------------------------------------------------------------------------------------

def write_archive(path: Path, study: Study, config: Config, policy: Mode | Auto, content_hash: str, meta: dict
                  ) -> tuple[dict[str, tuple[int, int]], dict[FrameId, EncodedFrame]]:
    """Encode every frame (bounded window of chunk tasks; failing frames escalated there) and stream the payloads,
    the quality table measured at encode included, into a new archive file, written once.
    Returns ({SOP Instance UID: (series index, instance index)}, {frame: its EncodedFrame without payload})."""
    from archive import ArchiveWriter
    from codec.api import codec_identity
    from dicom_io import read_verbatim_bytes

    window = 2 * config.runner.max_workers
    keys: dict[str, tuple[int, int]] = {}
    encoded_frames: dict[FrameId, EncodedFrame] = {}
    series_index: dict[str, int] = {}
    processes = workers.processes_for(config.runner)
    with ArchiveWriter(path, study_uid=study.study_instance_uid, codec=codec_identity(), mode=str(policy),
                       content_hash=content_hash, meta=meta) as writer:
        for series in study.series:
            series_index[series.series_instance_uid] = writer.add_series(series.series_instance_uid, series.modality)
        inputs = ({"chunk": c, "policy": policy, "gate": config.gate_for(c.modality),
                   "ceiling": config.codec.escalate_to, "processes": processes} for c in chunks_of(study))
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
                writer.add_frame(by_uid[ef.sop_uid], ef.frame, ef.payload, codec=ef.codec, mode=str(ef.mode),
                                 values_sha256=ef.values_sha256)
                ef.payload = b""  # written: memory holds the figures, not the study's payloads
                encoded_frames[(ef.sop_uid, ef.frame)] = ef
        for series in study.series:
            for obj in series.verbatim:  # byte for byte
                writer.add_verbatim(series_index[series.series_instance_uid], read_verbatim_bytes(obj),
                                    sop_instance_uid=obj.sop_instance_uid, sop_class_uid=obj.sop_class_uid,
                                    modality=obj.modality, reason=obj.reason)
        writer.set_quality(quality_rows((ef.quality for ef in encoded_frames.values()), keys))
    return keys, encoded_frames


# ---- verify from the file -------------------------------------------------------------------------------------

def verify_archive_quality(path: Path, study: Study, config: Config, encoded: dict[FrameId, EncodedFrame]
                           ) -> list[FrameQuality]:
    """Decode every frame from the written FILE, chunk by chunk, and check it reproduces what encode measured."""
    processes = workers.processes_for(config.runner)
    inputs = []
    for c in chunks_of(study):
        frames = (encoded[(i.sop_instance_uid, f)] for i in c.instances for f in range(i.number_of_frames))
        expected = {(ef.sop_uid, ef.frame): (ef.decoded_sha256, ef.quality) for ef in frames}
        inputs.append({"archive_path": str(path), "chunk": c, "expected": expected, "processes": processes})
    rows: list[FrameQuality] = []
    for part in bounded_map(verify_frames, inputs, 2 * config.runner.max_workers):
        rows.extend(part)
    return rows


def quality_rows(rows: Iterable[FrameQuality], keys: dict[str, tuple[int, int]]) -> list[dict]:
    """The archive's per-frame quality table (archive.QualityRow fields)."""
    return [q.table_row(*keys[q.sop_uid]) for q in rows]


def summarize(rows: list[FrameQuality], study: Study) -> dict:
    return study_summary(rows, [(s.series_instance_uid, s.modality, len(s.verbatim)) for s in study.series])


def _quarantine_reasons(rows: list[FrameQuality]) -> list[str]:
    return [f"series {q.series_uid} SOP {q.sop_uid} frame {q.frame} ({q.mode}): " + "; ".join(q.reasons)
            + (f" (after {'; '.join(q.history)})" if q.history else "") for q in rows if not q.passed]


MAX_LOGGED = 10  # slices named one by one in a log line; the rest are counted


def _log_escalations(logger, uid: str, rows: list[FrameQuality]) -> None:
    """One line per escalated slice (the first MAX_LOGGED): why its first mode failed and the mode it stores."""
    named = [q for q in rows if q.escalations]
    for q in named[:MAX_LOGGED]:
        logger.info("study %s: SOP %s frame %d failed its gate at %s; re-encoded at %s", uid, q.sop_uid,
                    q.frame, "; then ".join(q.history), q.mode)
    if len(named) > MAX_LOGGED:
        logger.info("study %s: %d more slice(s) failed their gate and were re-encoded at a stricter mode "
                    "(every figure is in the quality table and the audit)", uid, len(named) - MAX_LOGGED)


# ---- the flow -------------------------------------------------------------------------------------------------

def _held_outcome(got: Ingested, asked) -> ArchiveOutcome:
    reasons = [f"held back, waiting for {h['file']}: {h['reason']}" for h in got.held]
    return ArchiveOutcome(got.study.study_instance_uid, "pending", None, mode_asked=str(asked), reasons=reasons,
                          held=got.held, kept_as_received=got.kept, input_errors=got.input_errors)


def _existing_outcome(rec, got: Ingested, key: str) -> ArchiveOutcome:
    status = "already-archived" if rec.status in ("released", "quarantined") else "in-progress"
    return ArchiveOutcome(rec.study_uid, status, rec.path, rec.version, rec.id, key, rec.mode or "",
                          modes_used=dict(rec.modes_used or {}), frames=rec.n_frames or 0,
                          verbatim=rec.n_verbatim or 0, ratio=rec.ratio, min_psnr=rec.min_psnr,
                          min_ssim=rec.min_ssim, max_error=rec.max_error,
                          reasons=[f"archived before as version {rec.version} ({rec.status}) with the same inputs "
                                   "and policy", *rec.reasons],
                          kept_as_received=got.kept, input_errors=got.input_errors)


@flow(name="archive-study")
def archive_study_flow(paths: list[str], config: Config, study_uid: str | None = None,
                       retry_quarantined: bool = False) -> ArchiveOutcome:
    """Archive the one study in `paths` at the config's codec mode (a Mode, parsed when the config was loaded)."""
    from archive import Catalog, NoSpaceError, atomic_move, check_study_room, file_sha256, safe_archive_name, verify_archive
    from archive.catalog_inputs import InputLedger

    logger = get_run_logger()
    asked = config.codec.mode

    # ingest: the whole study or nothing
    got = ingest(paths, study_uid, config.schedule.settle_seconds)
    study = got.study
    uid = study.study_instance_uid
    catalog = Catalog.from_config(config)
    ledger = InputLedger(catalog)
    if got.held:
        ledger.hold(uid, got.held)
        outcome = _held_outcome(got, asked)
        logger.warning("study %s held back (pending): %d input(s) cannot be read now: %s", uid, len(got.held),
                       "; ".join(f"{h['file']}: {h['reason']}" for h in got.held[:MAX_LOGGED]))
        artifacts.study_artifacts(outcome)
        return outcome
    inputs_hash = hash_inputs(study)
    policy = policy_of(config, study)
    key = claim_key(inputs_hash, policy)
    claim = catalog.claim(uid, key, mode=str(asked), retry_quarantined=retry_quarantined)
    ledger.release_hold(uid)
    if not claim.claimed:
        rec = claim.record
        logger.info("study %s: same inputs and policy already in the catalog (archive %s, %s) - not archived again",
                    uid, rec.id, rec.status)
        return _existing_outcome(rec, got, key)
    rec = claim.record
    try:  # a study that cannot fit is refused before any work (NoSpaceError naming the folder); the next run retries
        check_study_room(config.paths.work, config.paths.released, _archive_bound(study))
    except NoSpaceError as exc:
        catalog.release_claim(rec.id, [f"not started: {exc}"])
        raise
    name = safe_archive_name(uid, rec.version)
    work = config.paths.work / name
    work.unlink(missing_ok=True)  # a leftover of a crashed run of this very claim
    meta = {"requested_mode": str(asked), "escalate_to": str(config.codec.escalate_to), "catalog_id": rec.id,
            "version": rec.version, "gates": {k: g.model_dump() for k, g in config.gates.items()},
            "inputs_hash": inputs_hash, "policy": policy, "psnr_definition": PSNR_DEFINITION}
    outcome = ArchiveOutcome(uid, "failed", None, rec.version, rec.id, key, str(asked),
                             frames=sum(i.number_of_frames for i in study.instances), verbatim=len(study.verbatim),
                             kept_as_received=got.kept, input_errors=got.input_errors)
    try:
        # tile + compress + measure (+ escalate) + archive (into work/), then confirm every frame from the file
        keys, encoded = write_archive(work, study, config, asked, key, meta)
        ordered = verify_archive_quality(work, study, config, encoded)
        _log_escalations(logger, uid, ordered)
        if any(q.integrity for q in ordered):  # the file does not decode to what was measured: record why
            from archive import set_quality

            set_quality(work, quality_rows(ordered, keys))
        verify_archive(work)  # every header, payload and verbatim checksum of the final file
    except Exception as exc:  # nothing half-done may look released, and nothing may block the next attempt
        logger.error("study %s: archiving failed: %s: %s", uid, type(exc).__name__, exc)
        outcome.reasons = [f"archiving failed: {type(exc).__name__}: {exc}"]
        work.unlink(missing_ok=True)
        catalog.release_claim(rec.id, outcome.reasons)  # the next run takes the claim over
        artifacts.study_artifacts(outcome)
        raise

    summary = summarize(ordered, study)
    outcome.modes_used = summary["modes_used"]
    outcome.escalated = sum(1 for q in ordered if q.escalations)
    outcome.ratio = summary["ratio"]
    for metric in METRICS.values():
        setattr(outcome, metric.worst_key, summary[metric.worst_key])
    outcome.max_error_hu = max((q.max_error_hu for q in ordered if q.max_error_hu is not None), default=None)
    outcome.series = summary["series"]
    outcome.frame_quality = [q.as_dict() for q in ordered]
    reasons = _quarantine_reasons(ordered)
    # release or quarantine
    destination = config.paths.quarantine if reasons else config.paths.released
    # a killed run of this same claim may have moved its (verified) archive already, before the catalog said so:
    # this run's archive replaces it, and never leaves it in released/ when this one is quarantined
    redo = claim.why == "taken-over"
    final = atomic_move(work, destination, name=name, overwrite=bool(reasons) or redo)
    if redo:
        stale = config.paths.released if reasons else config.paths.quarantine
        (stale / name).unlink(missing_ok=True)
        (stale / name).with_suffix(".reasons.json").unlink(missing_ok=True)
    outcome.archive = str(final)
    catalog.record_summary(rec.id, {
        **summary, "path": str(final), "n_series": len(study.series), "n_instances": len(study.instances),
        "n_frames": len(ordered), "n_verbatim": len(study.verbatim), "mode": str(asked),
        "codec": ", ".join(sorted({q.codec for q in ordered})), "file_sha256": file_sha256(final),
        "inputs_hash": inputs_hash, "kept_as_received": [f"{k['file']}: {k['reason']}" for k in got.kept],
    })
    if reasons:
        _write_reasons(final, reasons)
        outcome.status, outcome.reasons = "quarantined", reasons
        catalog.set_status(rec.id, "quarantined", reasons, path=final)
        logger.warning("study %s quarantined: %d slice(s) fail: %s", uid, len(reasons), reasons[0])
    else:
        outcome.status = "released"
        catalog.set_status(rec.id, "released", path=final)
        logger.info("study %s released: %s (ratio %.2f; stored %s)", uid, final, outcome.ratio or math.nan,
                    ", ".join(f"{m} ×{n}" for m, n in outcome.modes_used.items()) or "verbatim only")
    ledger.mark_archived(rec.id, uid, got.states)
    artifacts.study_artifacts(outcome)
    return outcome


def _archive_bound(study: Study) -> int:
    """The most a study's archive can take: each instance's stored values uncompressed (or its file, if larger),
    the verbatim objects, and room for the HDF5 structure."""
    pixels = sum(max(Path(i.path).stat().st_size, i.number_of_frames * i.pixel.rows * i.pixel.columns
                     * ((i.pixel.bits_allocated + 7) // 8)) for i in study.instances)
    return pixels + sum(Path(v.path).stat().st_size for v in study.verbatim) + 8192 * (len(study.instances) + 8)


def _write_reasons(archive_path: Path, reasons: list[str]) -> Path:
    text = json.dumps({"archive": Path(archive_path).name, "reasons": reasons}, indent=2)
    return atomic_write(Path(archive_path).with_suffix(".reasons.json"), text)


# ---- entry points ---------------------------------------------------------------------------------------------

def archive_study(paths: Iterable[str | Path], config: Config, mode: Mode | None = None, *,
                  study_uid: str | None = None, retry_quarantined: bool = False) -> ArchiveOutcome:
    """Archive the one study in `paths` (files or folders) on the task runner the config names; `mode` overrides
    the config's codec mode."""
    if mode is not None:
        config = config.with_mode(mode)
    flow_ = archive_study_flow.with_options(task_runner=task_runner_for(config))
    workers.warm_up(workers.processes_for(config.runner))  # their imports overlap Prefect's start
    return flow_([str(p) for p in paths], config, study_uid, retry_quarantined)


def archive_paths(paths: Iterable[str | Path], config: Config, mode: Mode | None = None) -> list[dict]:
    """`medzip archive PATH…`: archive every study found under `paths`, one after the other. An input of no known
    study is considered by each study with files in its folder (an unreadable one holds them back)."""
    from dicom_io import read_studies

    found = read_studies([Path(p) for p in paths])
    outcomes, considered = [], set()
    for study in found.studies:
        files = [o.path for o in (*study.instances, *study.verbatim)] + [e.path for e in study.errors]
        near = beside(found.errors, files)
        considered |= set(near)
        try:
            outcomes.append(archive_study([str(f) for f in files + near], config, mode,
                                          study_uid=study.study_instance_uid).as_dict())
        except Exception as exc:  # one study that cannot be archived must not stop the others
            outcomes.append(failed_outcome(study.study_instance_uid, exc))
    for err in found.errors:
        if err.path not in considered:
            outcomes.append(unplaced_outcome(err, config.schedule.settle_seconds))
    return outcomes
