"""`medzip verify`: re-read archives and check everything that can be checked without the original files.

For each archive: the archive package's own integrity pass (HDF5 checksums, SHA-256 of every header, payload and
verbatim object, structure), then every frame decoded by the codec (lossless frames against the SHA-256 of the
original stored values), the quality table re-judged by the config's gates and the frame's mode bound, and the
catalog's record of the file (status, content hash, study, SHA-256 of the whole file, which also covers bytes HDF5
never reads). Problems name the archive item (series / instance / frame, SOP UID) and the reason; nothing here
logs patient data, only paths and UIDs.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs import Config
from flows.archived import frame_mode
from flows.runners import task_runner_for
from quality import gates, metrics

MAX_PROBLEMS = 200  # per archive: a wholly wrong file should not produce a million lines


def _catalog(config: Config):
    from archive import Catalog

    return Catalog.from_config(config) if config.paths.catalog.exists() else None


def _in_folder(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _check_frames(reader, config: Config, problems: list[str]) -> int:
    """Decode every frame; lossless frames against the original checksum; every frame's quality row re-judged."""
    from archive import ArchiveError, ChecksumMismatchError
    from archive.reader import describe
    from codec import api as codec_api
    from codec.modes import ModeError

    quality = {row.key: row for row in reader.quality()}
    decoded = 0
    seen = set()
    for inst, fr in reader.iter_frames():
        seen.add(fr.key)
        if len(problems) >= MAX_PROBLEMS:
            break
        item = describe(fr.key, fr.sop_instance_uid)
        try:
            mode = frame_mode(fr)
        except ModeError as exc:
            problems.append(f"{item}: recorded mode is not a codec mode: {exc}")
            continue
        row = quality.get(fr.key)
        if row is None:
            problems.append(f"{item}: no row in the quality table")
        else:
            if row.sop_instance_uid != fr.sop_instance_uid or row.mode != str(mode):
                problems.append(f"{item}: quality row is for SOP {row.sop_instance_uid} at {row.mode}, "
                                f"the frame is {fr.sop_instance_uid} at {mode}")
            modality = row.modality or inst.modality
            judged = gates.judge(metrics.figures_of(row), config.gate_for(modality), mode)
            if judged.failures or not row.gate_passed:
                problems.append(f"{item}: fails the {modality} gate: "
                                + ("; ".join(judged.gate_reasons)
                                   or "recorded as failed: " + "; ".join(row.gate_reasons)))
            problems += [f"{item}: recorded {p}" for p in judged.integrity]
        try:
            values = codec_api.decode(reader.payload(fr))
        except ArchiveError as exc:
            problems.append(f"{item}: {exc.reason}")
            continue
        except Exception as exc:  # a damaged payload is a finding, whatever the decoder raises
            problems.append(f"{item}: payload does not decode: {type(exc).__name__}: {exc}")
            continue
        if values.shape != (inst.rows, inst.columns):
            problems.append(f"{item}: decodes to shape {values.shape}, the instance is {inst.rows}x{inst.columns}")
            continue
        if mode.is_lossless:
            try:
                reader.check_values(fr, values)
            except ChecksumMismatchError as exc:
                problems.append(f"{item}: lossless frame: {exc.reason}")
                continue
        decoded += 1
    for key in sorted(set(quality) - seen)[:10]:
        problems.append(f"quality table: row for frame {tuple(key)}, which is not in the archive")
    return decoded


def _check_catalog(path: Path, info, config: Config, catalog, problems: list[str]) -> None:
    from archive import file_sha256

    released = _in_folder(path, config.paths.released)
    record = catalog.find_by_path(path) or catalog.find_by_path(path.resolve())
    if record is None and info is not None and info.content_hash:
        record = catalog.find_by_content_hash(info.content_hash)
    if record is None:
        if released:
            problems.append("catalog: a file in released/ that the catalog does not list")
        return
    if released and record.status != "released":
        problems.append(f"catalog: status is {record.status!r}, yet the file lies in released/")
    if record.path and Path(record.path).resolve() != path.resolve():
        problems.append(f"catalog: the archive with this content is recorded at {record.path}")
    if info is not None:
        if record.study_uid != info.study_uid:
            problems.append(f"catalog: study {record.study_uid} recorded, the file holds {info.study_uid}")
        if record.content_hash != info.content_hash:
            problems.append("catalog: content hash differs from the archive's")
    if record.file_sha256 and file_sha256(path) != record.file_sha256:
        problems.append("file: SHA-256 of the whole file differs from the catalog's record (bytes changed since release)")


def check_archive(path: str | Path, config: Config, catalog=None, *, decode: bool = True) -> dict:
    """Verify one archive file (against `catalog`'s record when a Catalog is given); never raises for a damaged
    one. Returns
    {"archive": str, "ok": bool, "problems": [str, ...], "frames": decoded frames, "verbatim": checked objects}."""
    from archive import ArchiveError, ArchiveReader

    path = Path(path)
    problems: list[str] = []
    frames = verbatim = 0
    info = None
    if not path.is_file():
        problems.append("file: missing" if not path.exists() else "file: not a regular file")
    else:
        try:
            with ArchiveReader(path) as reader:
                info = reader.info
                report = reader.verify(raise_on_damage=False)
                problems += report.problems
                verbatim = report.verbatim_checked
                if decode and not report.problems:
                    frames = _check_frames(reader, config, problems)
                elif decode:
                    problems.append("frames: not decoded, the archive failed its integrity pass")
        except ArchiveError as exc:
            problems.append(f"{exc.item or 'archive'}: {exc.reason}")
        except Exception as exc:  # anything else a damaged file provokes is still a finding, never a crash
            problems.append(f"archive: cannot be read: {type(exc).__name__}: {exc}")
    try:
        if catalog is not None:
            _check_catalog(path, info, config, catalog, problems)
    except Exception as exc:
        problems.append(f"catalog: cannot be checked: {type(exc).__name__}: {exc}")
    return {"archive": str(path), "ok": not problems, "problems": problems[:MAX_PROBLEMS],
            "frames": frames, "verbatim": verbatim}


def released_archives(config: Config, catalog=None) -> list[Path]:
    """Every archive file in released/, plus released catalog entries whose file is elsewhere or gone."""
    from archive import is_temp_name

    folder = config.paths.released
    found = sorted(p for p in folder.glob("*.h5") if not is_temp_name(p.name)) if folder.is_dir() else []
    if catalog is not None:
        known = {p.resolve() for p in found}
        found += [Path(r.path) for r in catalog.list(status="released") if r.path and Path(r.path).resolve() not in known]
    return found


@task(name="verify-archive")
def verify_one(path: str, config: Config) -> dict:
    catalog = _catalog(config)
    report = check_archive(path, config, catalog)
    if catalog is None and _in_folder(Path(path), config.paths.released):
        report["problems"].append(f"catalog: {config.paths.catalog} is missing, so no released archive is listed")
        report["ok"] = False
    return report


@flow(name="verify-archives")
def verify_archives_flow(paths: list[str], config: Config) -> list[dict]:
    """Verify each archive on the task runner and publish a summary table artifact (file names, no patient data)."""
    from prefect.artifacts import create_table_artifact

    logger = get_run_logger()
    reports = [f.result() for f in [verify_one.submit(p, config) for p in paths]]
    for r in reports:
        if r["ok"]:
            logger.info("%s: ok (%d frames decoded, %d verbatim objects)", r["archive"], r["frames"], r["verbatim"])
        else:
            logger.error("%s: %d problem(s): %s", r["archive"], len(r["problems"]), "; ".join(r["problems"][:5]))
    create_table_artifact(
        key="medzip-verify",
        table=[{"archive": Path(r["archive"]).name, "ok": r["ok"], "frames": r["frames"],
                "problems": "; ".join(r["problems"][:3])} for r in reports],
        description=f"medzip verify: {sum(r['ok'] for r in reports)} of {len(reports)} archives ok",
    )
    return reports


def verify_archives(archives: Iterable[Path] | None, config: Config) -> list[dict]:
    """`medzip verify`: the given archive files, or (None) every released archive (released/ and the catalog).
    One dict per archive: {"archive", "ok", "problems", "frames", "verbatim"}. One archive is checked right here,
    without Prefect (nothing to orchestrate, no server to start); several run as the verify flow."""
    paths = [Path(p) for p in archives] if archives is not None else released_archives(config, _catalog(config))
    if not paths:
        return []
    if len(paths) == 1:
        return [verify_one.fn(str(paths[0]), config)]
    flow_ = verify_archives_flow.with_options(task_runner=task_runner_for(config))
    return flow_([str(p) for p in paths], config)
