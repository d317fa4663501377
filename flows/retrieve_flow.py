"""The retrieve flow: archive (by path, or by StudyInstanceUID through the catalog) → verify checksums → decode →
standard DICOM files in OUTDIR (dicom_io writer: lossy labelling for frames that are not bit-exact, the original
UIDs for bit-exact ones) in the transfer syntax asked for, verbatim objects (and already-lossy input, kept as its
original bitstream) restored byte for byte. Nothing is written outside OUTDIR.

Retrieving one archive orchestrates nothing: `retrieve_study` runs the same steps on a thread pool without Prefect
(no server to start); `retrieve_study_flow` is the Prefect flow of the same steps, for deployments.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task

from configs import Config
from flows.archived import frame_mode
from flows.window import bounded_map


class RetrieveError(ValueError):
    """No archive to retrieve: unknown study, nothing released, or a path that is not an archive."""


@dataclass
class InstanceJob:
    series: int
    series_dir: str
    instances: list[int]


def resolve_archive(target: str | Path, config: Config) -> Path:
    """An archive path as given, or the newest released archive of a StudyInstanceUID."""
    from archive import Catalog

    path = Path(target)
    if path.is_file():
        return path
    if config.paths.catalog.exists():
        catalog = Catalog.from_config(config)
        rec = catalog.latest(str(target), status="released")
        if rec is not None and rec.path:
            return Path(rec.path)
        others = catalog.find_by_study(str(target))
        if others:
            raise RetrieveError(f"study {target} has no released archive (versions: "
                                + ", ".join(f"v{r.version} {r.status}" for r in others)
                                + "); retrieve a quarantined one by its path")
    raise RetrieveError(f"{target!r} is neither an archive file nor a StudyInstanceUID in the catalog "
                        f"{config.paths.catalog}")


def inside(outdir: Path, child: Path) -> Path:
    if outdir.resolve() not in child.resolve().parents and child.resolve() != outdir.resolve():
        raise RetrieveError(f"{child} would lie outside {outdir}")
    return child


@task(name="verify-checksums")
def verify_checksums(archive_path: str) -> dict:
    from archive import verify_archive

    rep = verify_archive(archive_path)  # raises DamagedArchiveError naming every damaged item
    return {"frames": rep.frames_checked, "headers": rep.headers_checked, "verbatim": rep.verbatim_checked}


@task(name="restore-instances")
def restore_instances(archive_path: str, job: InstanceJob, transfer_syntax: str | None = None) -> list[dict]:
    """Decode each instance's frames and write it as DICOM. An instance whose every frame reproduces its
    values_sha256 is bit-exact (original UIDs); any other is labelled lossy (PS3.3 C.7.6.1.1.5)."""
    from archive import ArchiveReader, InstanceKey, values_sha256
    from codec import api as codec_api
    from quality import metrics
    from dicom_io.writer import LOSSY_METHOD, WAVELET_METHOD, ExplicitVRLittleEndian, LossyInfo, write_instance

    out = []
    with ArchiveReader(archive_path) as reader:
        for i in job.instances:
            inst = reader.instance(InstanceKey(job.series, i))
            frames, exact, payload_bytes, wavelet = [], True, 0, False
            for fr in reader.frames(inst.key):
                wavelet = wavelet or frame_mode(fr).kind == "wavelet"
                payload = reader.payload(fr)
                payload_bytes += len(payload)
                values = codec_api.decode(payload)
                if frame_mode(fr).is_lossless:
                    reader.check_values(fr, values)  # ChecksumMismatchError names the frame
                else:
                    try:
                        exact = exact and values_sha256(values, inst.values_dtype) == fr.values_sha256
                    except ValueError:
                        exact = False
                frames.append(values.astype(inst.values_dtype, copy=False))
            ratio = metrics.ratio(metrics.uncompressed_bytes(inst.rows, inst.columns, inst.number_of_frames,
                                                             inst.bits_allocated), payload_bytes)
            path = write_instance(reader.header(inst.key), frames, Path(job.series_dir),
                                  lossy=None if exact else
                                  LossyInfo(ratio, WAVELET_METHOD if wavelet else LOSSY_METHOD),
                                  transfer_syntax=transfer_syntax or ExplicitVRLittleEndian)
            out.append({"file": str(path), "sop_instance_uid": inst.sop_instance_uid, "bit_exact": exact,
                        "frames": inst.number_of_frames, "ratio": ratio})
    return out


@task(name="restore-verbatim")
def restore_verbatim(archive_path: str, series: int, series_dir: str) -> list[dict]:
    from archive import ArchiveReader
    from dicom_io.writer import write_verbatim

    out = []
    with ArchiveReader(archive_path) as reader:
        for v in reader.verbatim(series):
            path = write_verbatim(reader.verbatim_bytes(v), Path(series_dir))
            out.append({"file": str(path), "sop_instance_uid": v.sop_instance_uid, "verbatim": True})
    return out


def deliver_files(files: list[str], config: Config, logger=None) -> dict:
    """Push the written files where config.delivery says (C-STORE or STOW-RS); per-instance results."""
    from dicom_io.network import deliver

    results = deliver(files, config.delivery)
    failed = [r.as_dict() for r in results if not r.delivered]
    if failed and logger is not None:
        logger.warning("%d of %d instances not accepted by the %s destination: %s", len(failed),
                       len(results), config.delivery.kind, "; ".join(f["reason"] for f in failed[:5]))
    return {"kind": config.delivery.kind, "delivered": len(results) - len(failed), "failed": len(failed),
            "results": [r.as_dict() for r in results]}


@task(name="deliver-study")
def deliver_study(files: list[str], config: Config) -> dict:
    return deliver_files(files, config, get_run_logger())


def _jobs(archive_path: Path, outdir: Path, per_job: int = 16) -> tuple[str, list[InstanceJob], list[tuple[int, str]]]:
    from archive import ArchiveReader
    from dicom_io.writer import safe_filename

    jobs, verbatim = [], []
    with ArchiveReader(archive_path) as reader:
        study_uid = reader.info.study_uid
        for s in reader.series():
            series_dir = inside(outdir, outdir / safe_filename(s.series_instance_uid, suffix=""))
            series_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            instances = reader.instances(s.key)
            batch, frames = [], 0
            for inst in instances:
                if batch and frames + inst.number_of_frames > per_job:
                    jobs.append(InstanceJob(s.key, str(series_dir), batch))
                    batch, frames = [], 0
                batch.append(inst.key.instance)
                frames += inst.number_of_frames
            if batch:
                jobs.append(InstanceJob(s.key, str(series_dir), batch))
            if reader.verbatim(s.key):
                verbatim.append((s.key, str(series_dir)))
    return study_uid, jobs, verbatim


def _result(study_uid: str, archive_path: Path, out: Path, checked: dict, files: list[dict], delivery) -> dict:
    lossy = [f for f in files if f.get("bit_exact") is False]
    return {"study_uid": study_uid, "archive": str(archive_path), "outdir": str(out), "checked": checked,
            "files": [f["file"] for f in files], "instances": files,
            "bit_exact": sum(1 for f in files if f.get("bit_exact")), "lossy": len(lossy),
            "verbatim": sum(1 for f in files if f.get("verbatim")), "delivery": delivery}


def _syntax(config: Config, transfer_syntax: str | None) -> str:
    from dicom_io.writer import DELIVERY_SYNTAXES

    return DELIVERY_SYNTAXES[transfer_syntax or config.delivery.transfer_syntax]


@flow(name="retrieve-study")
def retrieve_study_flow(target: str, outdir: str, config: Config, transfer_syntax: str | None = None) -> dict:
    logger = get_run_logger()
    archive_path = resolve_archive(target, config)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    checked = verify_checksums(str(archive_path))
    study_uid, jobs, verbatim = _jobs(archive_path, out)
    ts = _syntax(config, transfer_syntax)
    files: list[dict] = []
    inputs = ({"archive_path": str(archive_path), "job": j, "transfer_syntax": ts} for j in jobs)
    for part in bounded_map(restore_instances, inputs, 2 * config.runner.max_workers):
        files.extend(part)
    for series, series_dir in verbatim:
        files.extend(restore_verbatim(str(archive_path), series, series_dir))
    logger.info("study %s: %d files written to %s", study_uid, len(files), out)
    delivery = deliver_study([f["file"] for f in files], config) if config.delivery.kind != "none" else None
    return _result(study_uid, archive_path, out, checked, files, delivery)


def retrieve_study(archive_path_or_study_uid: str | Path, outdir: str | Path, config: Config,
                   transfer_syntax: str | None = None) -> dict:
    """`medzip retrieve`: reconstruct a study as standard DICOM files under `outdir`, in `transfer_syntax` (a
    dicom_io.writer.DELIVERY_SYNTAXES name; default the config's [delivery] transfer_syntax). Runs the retrieve
    steps on a thread pool of config.runner.max_workers, without Prefect (no server is started)."""
    archive_path = resolve_archive(str(archive_path_or_study_uid), config)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    checked = verify_checksums.fn(str(archive_path))
    study_uid, jobs, verbatim = _jobs(archive_path, out)
    ts = _syntax(config, transfer_syntax)
    files: list[dict] = []
    with ThreadPoolExecutor(max_workers=config.runner.max_workers) as pool:
        for part in pool.map(lambda j: restore_instances.fn(str(archive_path), j, ts), jobs):
            files.extend(part)
    for series, series_dir in verbatim:
        files.extend(restore_verbatim.fn(str(archive_path), series, series_dir))
    delivery = deliver_files([f["file"] for f in files], config) if config.delivery.kind != "none" else None
    return _result(study_uid, archive_path, out, checked, files, delivery)
