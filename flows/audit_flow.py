"""The quality audit: across the catalog (filtered by date, modality, status) → a JSON report, a self-contained
HTML report (flows.audit_report) and a Prefect markdown artifact."""

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task

from atomicfs import atomic_write
from configs import Config
from flows import artifacts
from flows import audit_report as R
from flows.formatting import fmt, jsonable
from quality.metrics import METRICS
from quality.summaries import mean_psnr, mode_counts, saved_vs_lossless, worst_figures

WORST_SLICES = 6


@task(name="collect-quality")
def collect(config: Config, since: str | None, until: str | None, modality: str | None,
            status: str | None) -> tuple[list[dict], list[dict], list[str]]:
    """(archives, frames, problems): catalog rows joined with each archive's quality table."""
    from archive import ArchiveError, ArchiveReader, Catalog

    if not config.paths.catalog.exists():
        return [], [], [f"no catalog at {config.paths.catalog}"]
    archives, frames, problems = [], [], []
    for rec in Catalog.from_config(config).list(since=since, until=until, modality=modality, status=status):
        row = {"catalog_id": rec.id, "study_uid": rec.study_uid, "version": rec.version, "status": rec.status,
               "created_utc": rec.created_utc, "path": rec.path, "mode": rec.mode, "codec": rec.codec,
               "modalities": list(rec.modalities), "ratio": rec.ratio, "min_psnr": rec.min_psnr,
               "min_ssim": rec.min_ssim, "max_error": rec.max_error, "n_frames": rec.n_frames,
               "n_verbatim": rec.n_verbatim, "original_bytes": rec.original_bytes,
               "archived_bytes": rec.archived_bytes, "reasons": list(rec.reasons), "modes_used": {},
               "mean_psnr": None, "escalated": 0, "gate_failures": 0, "kept_as_received": []}
        archives.append(row)
        if not rec.path or not Path(rec.path).is_file():
            problems.append(f"archive {rec.id} (study {rec.study_uid} v{rec.version}): file {rec.path} not found")
            continue
        try:
            with ArchiveReader(rec.path) as reader:
                quality = reader.quality()
                series_uid = {s.key: s.series_instance_uid for s in reader.series()}
                row["kept_as_received"] = [{"sop_instance_uid": v.sop_instance_uid,
                                            "series_uid": series_uid.get(v.key.series, "?"), "reason": v.reason,
                                            "bytes": v.nbytes} for v in reader.verbatim()]
        except ArchiveError as exc:
            problems.append(f"archive {rec.id}: {exc}")
            continue
        mine = []
        for q in quality:
            mine.append({"study_uid": rec.study_uid, "version": rec.version, "archive": rec.path,
                         "series_uid": series_uid.get(q.series, "?"), "series": q.series, "instance": q.instance,
                         "sop_uid": q.sop_instance_uid, "frame": q.frame, "modality": q.modality, "mode": q.mode,
                         "codec": q.codec, "psnr": q.psnr, "ssim": q.ssim, "max_error": q.max_error,
                         "payload_bytes": q.payload_bytes, "original_bytes": q.original_bytes, "ratio": q.ratio,
                         "gate_passed": q.gate_passed, "gate_reasons": list(q.gate_reasons),
                         "escalations": list(q.escalations), "status": rec.status,
                         "lossless_bytes": q.lossless_bytes})
        row["modes_used"] = mode_counts(mine)
        row["mean_psnr"] = mean_psnr(m["psnr"] for m in mine)
        row["escalated"] = sum(1 for m in mine if m["escalations"])
        row["gate_failures"] = sum(1 for m in mine if not m["gate_passed"])
        row["models"] = sorted({m["codec"] for m in mine})
        row["saved_vs_lossless_bytes"] = saved_vs_lossless(mine).get("saved_vs_lossless_bytes")
        frames.extend(mine)
    return archives, frames, problems


def worst(frames: list[dict], n: int = WORST_SLICES) -> list[dict]:
    """The n slices with the lowest PSNR that are not exact (lowest SSIM breaks ties)."""
    lossy = [f for f in frames if math.isfinite(f["psnr"])]
    return sorted(lossy, key=lambda f: (f["psnr"], f["ssim"]))[:n]


def _thumbnails(f: dict) -> str:
    """Original (from its source file, when it is still there and still the same values), decoded, difference."""
    from archive import ArchiveReader, FrameKey, values_sha256
    from codec import api as codec_api

    with ArchiveReader(f["archive"]) as reader:
        info = reader.instance((f["series"], f["instance"]))
        fr = next(x for x in reader.frames(info.key) if x.key == FrameKey(f["series"], f["instance"], f["frame"]))
        decoded = codec_api.decode(reader.payload(fr))
        original = _original(info.extra.get("source_path"), f["frame"], fr.values_sha256, values_sha256)
    return R.worst_slice_row(f, original, decoded)


def _original(source: str | None, frame: int, expected_sha: str, values_sha256):
    if not source or not Path(source).is_file():
        return None
    try:
        from dicom_io import read_file, read_frame

        inst = read_file(source)
        values = read_frame(inst, frame)
    except Exception:
        return None
    return values if values_sha256(values) == expected_sha else None


def summary_of(archives: list[dict], frames: list[dict]) -> dict:
    by_status: dict[str, int] = {}
    for a in archives:
        by_status[a["status"]] = by_status.get(a["status"], 0) + 1
    original = sum(f["original_bytes"] for f in frames)
    payload = sum(f["payload_bytes"] for f in frames)
    return {
        "archives": len(archives), **{f"status_{k}": v for k, v in sorted(by_status.items())},
        "frames": len(frames), "original_bytes": original, "archived_bytes": payload,
        "ratio": original / payload if payload else None,
        **worst_figures(frames),
        "escalated_frames": sum(1 for f in frames if f["escalations"]),
        "gate_failures": sum(1 for f in frames if not f["gate_passed"]),
        **saved_vs_lossless(frames),
    }


def render(archives: list[dict], frames: list[dict], summary: dict, problems: list[str], filters: dict,
           images: bool = True) -> str:
    sections = [("Summary", R.table(["measure", "value"], [[k, v] for k, v in summary.items()], "summary")
                 + (R.table(["filter", "value"], [[k, v] for k, v in filters.items()], "filters")))]
    sections.append(("Archives", R.table(
        ["study", "version", "status", "created (UTC)", "modalities", "mode asked", "modes stored (frames)", "ratio",
         "min PSNR", "mean PSNR", "min SSIM", "max error", "frames", "escalated", "gate failures",
         "bytes saved vs lossless"],
        [[a["study_uid"], a["version"], a["status"], a["created_utc"][:19], " ".join(a["modalities"]), a["mode"],
          ", ".join(f"{m} ×{n}" for m, n in a["modes_used"].items()), a["ratio"], a["min_psnr"], a["mean_psnr"],
          a["min_ssim"], a["max_error"], a["n_frames"], a["escalated"], a["gate_failures"],
          a.get("saved_vs_lossless_bytes")] for a in archives],
        "archives")))
    if archives:
        sections.append(("PSNR and SSIM per study", R.plot_section(R.study_chart(archives), "per-study PSNR and SSIM")))
    if frames:
        sections.append(("PSNR and SSIM per slice", R.plot_section(R.slice_chart(frames), "per-slice PSNR and SSIM")))
        sections.append(("Compression ratio distribution", R.plot_section(R.ratio_chart(frames), "ratio distribution")))
    worst_rows = worst(frames)
    if images:
        sections.append(("Worst slices", "".join(_thumbnails(f) for f in worst_rows)
                         or "<p>Every archived slice is bit-exact: no difference to show.</p>"))
    else:
        sections.append(("Worst slices", R.table(
            ["study", "series", "SOP instance", "frame", "mode", "PSNR", "SSIM", "max error"],
            [[f["study_uid"], f["series_uid"], f["sop_uid"], f["frame"], f["mode"], f["psnr"], f["ssim"],
              f["max_error"]] for f in worst_rows], "worst") + "<p>Thumbnails left out (--no-images).</p>"))
    flagged = [f for f in frames if f["escalations"] or not f["gate_passed"]]
    sections.append(("Gate failures and escalations", R.table(
        ["study", "series", "SOP instance", "frame", "modes tried", "final mode", "PSNR", "SSIM", "max error",
         "gate passed", "reasons"],
        [[f["study_uid"], f["series_uid"], f["sop_uid"], f["frame"], " → ".join(f["escalations"]), f["mode"],
          f["psnr"], f["ssim"], f["max_error"], "yes" if f["gate_passed"] else "NO", "; ".join(f["gate_reasons"])]
         for f in flagged], "failures") if flagged else "<p>No slice failed a gate; none was escalated.</p>"))
    released = [a for a in archives if a["status"] == "released"]
    sections.append(("Model and mode of every released archive", R.table(
        ["study", "version", "archive", "mode asked", "modes stored (frames)", "model(s)"],
        [[a["study_uid"], a["version"], a["path"], a["mode"],
          ", ".join(f"{m} ×{n}" for m, n in a["modes_used"].items()), ", ".join(a.get("models", []))]
         for a in released], "models")))
    kept = [(a, k) for a in archives for k in a["kept_as_received"]]
    sections.append(("Kept as received (verbatim: no gate applied)", R.table(
        ["study", "version", "series", "SOP instance", "bytes", "why"],
        [[a["study_uid"], a["version"], k["series_uid"], k["sop_instance_uid"], k["bytes"], k["reason"]]
         for a, k in kept], "kept") if kept else "<p>Every object was coded and judged by its gate.</p>"))
    quarantined = [a for a in archives if a["status"] == "quarantined"]
    if quarantined or problems:
        sections.append(("Quarantined archives and problems", R.table(
            ["study", "version", "archive", "reasons"],
            [[a["study_uid"], a["version"], a["path"], "; ".join(a["reasons"][:5])] for a in quarantined]
            + [["", "", "", p] for p in problems], "quarantine")))
    return R.render_html("medzip quality audit", sections)


def _markdown(summary: dict, archives: list[dict], html_path: Path) -> str:
    lines = ["# medzip quality audit", "", f"HTML report: `{html_path}`", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in summary.items()]
    worst = [m.worst_key for m in METRICS.values()]
    heads = ["study", "v", "status", "mode", "ratio", *(m.worst_label for m in METRICS.values())]
    lines += ["", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += [f"| `{a['study_uid']}` | {a['version']} | {a['status']} | `{a['mode']}` | {fmt(a['ratio'])} | "
              + " | ".join(fmt(a[k]) for k in worst) + " |" for a in archives[:200]]
    return "\n".join(lines)


def _audit(config: Config, since: str | None, until: str | None, modality: str | None, status: str | None,
           images: bool, logger=None) -> dict:
    archives, frames, problems = collect.fn(config, since, until, modality, status)
    summary = summary_of(archives, frames)
    filters = {"since": since, "until": until, "modality": modality, "status": status}
    reports = config.paths.reports
    reports.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    html_path = atomic_write(reports / f"audit-{stamp}.html",
                             render(archives, frames, summary, problems, filters, images=images))
    data = {"generated_utc": stamp, "filters": filters, "summary": summary, "archives": archives,
            "worst_slices": worst(frames), "failures_and_escalations":
                [f for f in frames if f["escalations"] or not f["gate_passed"]], "frames": frames,
            "problems": problems}
    json_path = atomic_write(reports / f"audit-{stamp}.json", json.dumps(jsonable(data), indent=1))
    artifacts.markdown("quality-audit", _markdown(summary, archives, html_path), "medzip quality audit")
    if logger is not None:
        logger.info("audit of %d archives (%d slices): %s", len(archives), len(frames), html_path)
    return {"html": str(html_path), "json": str(json_path), "summary": summary, "archives": archives,
            "problems": problems}


@flow(name="audit-quality")
def audit_quality_flow(config: Config, since: str | None = None, until: str | None = None,
                       modality: str | None = None, status: str | None = None, images: bool = True) -> dict:
    """The audit as a Prefect flow (for deployments); `audit_quality` runs the same without Prefect."""
    return _audit(config, since, until, modality, status, images, get_run_logger())


def audit_quality(config: Config, since: str | None = None, until: str | None = None, modality: str | None = None,
                  status: str | None = None, images: bool = True) -> dict:
    """`medzip audit`: write the JSON and HTML reports; return their paths, the summary and one row per archive.
    It only reads the catalog and the archives, so it runs without Prefect (no server is started). `images`:
    thumbnails of the worst slices (patient images) in the HTML page."""
    return _audit(config, since, until, modality, status, images)
