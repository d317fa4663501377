"""`medzip bench`: our codec's modes against the classical anchors on every grayscale frame of some DICOM files.

For each frame, each of our modes (codec.api) and each anchor (lab.anchors) this records bpp, ratio, PSNR, SSIM,
max error and median encode/decode latency, all through quality/metrics.py. It then summarises per codec/mode, compares
lossless and near-lossless totals with JPEG-LS, and computes BD-rate/BD-PSNR of our lossy curves (the learned
lossy:q and the wavelet:q without a guard) against JPEG 2000 and JPEG-XL per modality over 0.5-2 bpp.

Anchors' lossy points are hit by rate matching (lab.anchors.RateMatcher): a fixed grid of target bpp for the
rate-distortion curves, plus, per frame, the exact bpp each of our learned lossy points reached ("matched" records)
so the two can be compared pixel for pixel at equal rate.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from codec.modes import Mode
from configs import load_config
from lab import anchors as classical  # the classical anchors (`anchors` names the run's chosen ones)
from lab import gate_bytes
from lab.bench_bd import BD_RANGE, BdRateError, bd_psnr, bd_rate  # noqa: F401  (public via lab.bench)
from lab.bench_report import (  # noqa: F401  (public via lab.bench)
    OURS, _frame_key, bd_table, curves, latency_at, matched_rate_gains, plot, print_summary, summary_rows,
    versus_jpegls,
)
from lab.frames import Frame, frames_of, instance
from quality import metrics

DEFAULT_K = (1, 2, 4, 8, 16)
DEFAULT_TARGET_BPP = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
RATE_MISS = 0.10  # an anchor point more than 10% off its target rate is kept but left out of curves


class BenchError(ValueError):
    """Bad bench input: no frames found, unknown anchor or mode."""


# --- frames ----------------------------------------------------------------------------------------------------


def _candidate_files(paths: Iterable[os.PathLike | str]) -> list[Path]:
    from dicom_io.studies import iter_files

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise BenchError(f"{p}: no such file or folder")
    return list(iter_files(paths))


# --- our codec -------------------------------------------------------------------------------------------------


def codec_lossy_levels() -> list[int]:
    """The lossy rate points (q of `lossy:q`) the learned codec offers: 0 .. Q-1 of its model; none without weights."""
    from codec import learned

    try:
        return list(range(int(learned.load_model().Q)))
    except Exception:  # missing or unreadable weights: no lossy points to bench
        return []


WAVELET_Q = (96, 112, 128, 144, 160, 176)  # unguarded wavelet rate points: 0.3-4 bpp on the bundled CT/MR/CR


def default_modes() -> list[str]:
    return (["lossless"] + [f"near-lossless:{k}" for k in DEFAULT_K] + [f"lossy:{q}" for q in codec_lossy_levels()]
            + [f"wavelet:{q}" for q in WAVELET_Q])


# --- timing and metrics ----------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Warm up once, then the median of `repeats` runs in ms (one run when the warm-up alone took over 0.5 s)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    n = repeats if first < 0.5 else 1
    times = []
    for _ in range(max(1, n)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, 1e3 * statistics.median(times)


def _quality(frame: Frame, decoded: np.ndarray, payload_bytes: int) -> dict:
    v = frame.values
    if decoded.shape != v.shape:
        raise BenchError(f"decoded shape {decoded.shape} != original {v.shape}")
    err = metrics.max_error(v, decoded)
    psnr = metrics.psnr(v, decoded, frame.bits_stored)
    full = metrics.psnr_full_scale(v, decoded, frame.bits_stored)
    rec = {
        "bytes": payload_bytes,
        "bpp": metrics.bpp(payload_bytes, v.size),
        "ratio": metrics.ratio(metrics.uncompressed_bytes(*v.shape, 1, frame.bits_allocated), payload_bytes),
        "psnr": None if math.isinf(psnr) else psnr,  # the gates' PSNR (slice range peak); null = exact decode
        "psnr_full_scale": None if math.isinf(full) else full,  # the literature's peak 2**BitsStored - 1, labelled
        # SSIM of a bit-exact decode is 1 by definition; skipping it saves seconds per large frame
        "ssim": 1.0 if err == 0 else metrics.ssim(v, decoded),
        "max_error": err,
    }
    if frame.modality == "CT":
        rec["max_error_hu"] = err * abs(frame.rescale_slope)
    return rec


def _base(frame: Frame, codec: str, mode: str) -> dict:
    return {
        "file": str(frame.path), "frame": frame.index, "modality": frame.modality,
        "bits_stored": frame.bits_stored, "signed": frame.signed, "rows": frame.values.shape[0],
        "columns": frame.values.shape[1], "codec": codec, "mode": mode, "error": None,
        # filled in when the coding succeeds; left None with `error` set when it does not
        "bytes": None, "bpp": None, "ratio": None, "psnr": None, "ssim": None, "max_error": None,
        "encode_ms": None, "decode_ms": None,
    }


def _bench_ours(frame: Frame, mode: Mode, repeats: int, env: dict) -> dict:
    from codec import api

    rec = _base(frame, OURS, str(mode))
    rec["bound"] = mode.max_error_bound
    try:
        payload, enc_ms = _timed(lambda: api.encode(frame.values, mode, frame.bits_stored, frame.signed), repeats)
        decoded, dec_ms = _timed(lambda: api.decode(payload), repeats)
        rec.update(_quality(frame, decoded, len(payload)), encode_ms=enc_ms, decode_ms=dec_ms)
        if "codec_identity" not in env:
            info = api.payload_info(payload)
            env["codec_identity"] = {k: v for k, v in info.items() if isinstance(v, (str, int, float)) and any(
                w in k.lower() for w in ("codec", "model", "version", "format", "weights"))}
    except Exception as exc:  # record, never crash the run: a failing mode is itself a result
        rec["error"] = f"{type(exc).__name__}: {exc}"
    if rec["error"] is None and rec["bound"] is not None:
        rec["bound_ok"] = rec["max_error"] <= rec["bound"]
    return rec


def _bench_anchor_setting(frame: Frame, anchor: classical.Anchor, setting: classical.AnchorSetting, mode: str,
                          repeats: int, extra: dict | None = None) -> dict:
    rec = _base(frame, anchor.key, mode)
    rec.update(extra or {})
    try:
        v, bits, signed = frame.values, frame.bits_stored, frame.signed
        payload, enc_ms = _timed(lambda: anchor.encode(v, bits, signed, setting), repeats)
        decoded, dec_ms = _timed(lambda: anchor.decode(payload, bits, signed, v.dtype), repeats)
        rec.update(_quality(frame, decoded, len(payload)), encode_ms=enc_ms, decode_ms=dec_ms)
        if setting.kind == "lossy":
            rec["param"] = setting.param
        if anchor.offset(bits, signed):
            rec["offset"] = anchor.offset(bits, signed)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    return rec


def _bench_anchor(frame: Frame, anchor: classical.Anchor, ks: Sequence[int], targets: Sequence[float],
                  matched: dict[str, float], repeats: int) -> list[dict]:
    recs = [_bench_anchor_setting(frame, anchor, classical.LOSSLESS, "lossless", repeats, {"bound": 0})]
    if anchor.near_lossless:
        for k in ks:
            setting = classical.AnchorSetting.near_lossless(k)
            r = _bench_anchor_setting(frame, anchor, setting, f"near-lossless:{k}", repeats, {"bound": k})
            if r["error"] is None:
                r["bound_ok"] = r["max_error"] <= k
            recs.append(r)
    if anchor.lossy and recs[0]["error"] is None:
        matcher = classical.RateMatcher(anchor, frame.values, frame.bits_stored, frame.signed)
        wanted = [(f"lossy@{t:g}bpp", t) for t in targets] + [(f"lossy@{m}", b) for m, b in matched.items()]
        for label, target in wanted:
            try:
                hit = matcher.match(target)
            except Exception as exc:
                r = _base(frame, anchor.key, label)
                r["error"] = f"{type(exc).__name__}: {exc}"
                recs.append(r)
                continue
            r = _bench_anchor_setting(frame, anchor, hit.setting, label, repeats, {"target_bpp": target})
            if r["error"] is None:
                r["rate_miss"] = abs(r["bpp"] / target - 1) > RATE_MISS
            recs.append(r)
    return recs


# --- environment -----------------------------------------------------------------------------------------------


def _environment(repeats: int, anchors: dict[str, classical.Anchor]) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": {n: v(n) for n in ("numpy", "imagecodecs", "pyjpegls", "pydicom", "scikit-image", "tensorflow-cpu",
                                       "keras", "constriction")},
        "anchors": {k: {"name": a.name, "library": a.library} for k, a in anchors.items()},
        "anchors_unavailable": classical.unavailable(),
        "timing": f"warm-up once, then median of {repeats} runs (1 run when the warm-up took > 0.5 s)",
        "psnr_null_means": "exact decode (infinite PSNR)",
        "anchor_lossy_points": "rate-matched to target bpp; rate_miss = more than 10% off target (kept out of curves)",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- the run ---------------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    frames: list[dict]
    summary: dict
    bd_rate: dict
    environment: dict
    skipped: list[dict] = field(default_factory=list)
    gate: list[dict] = field(default_factory=list)  # lab.gate_bytes rows: bytes at each frame's default gate

    def to_json(self) -> dict:
        return {"frames": self.frames, "summary": self.summary, "bd_rate": self.bd_rate,
                "environment": self.environment, "skipped": self.skipped, "gate": self.gate}


def summarize(frames: list[dict], environment: dict | None = None, skipped: list[dict] | None = None,
              gate: list[dict] | None = None) -> BenchResult:
    """A BenchResult (summary, BD-rate) from frame records - a fresh run's, or those of saved JSON files put together."""
    summary = {"rows": summary_rows(frames), "vs_jpegls": versus_jpegls(frames),
               "matched_rate": matched_rate_gains(frames), "curves": curves(frames),
               "latency_512": latency_at(frames, (512, 512)), "gate": gate_bytes.totals(gate or []),
               "frames": len({_frame_key(r) for r in frames}), "files": len({r["file"] for r in frames})}
    return BenchResult(frames, summary, bd_table(frames), environment or {}, skipped or [], gate or [])


def load_result(path: os.PathLike | str) -> BenchResult:
    """Re-read a bench JSON written by run_bench (summaries are recomputed from its frame records)."""
    data = json.loads(Path(path).read_text())
    return summarize(data["frames"], data.get("environment"), data.get("skipped"), data.get("gate"))


def _select_anchors(anchors: Sequence[str] | None) -> dict[str, classical.Anchor]:
    avail = classical.available()
    if anchors is None:
        return avail
    chosen = {}
    for name in anchors:
        key = name.lower().replace(" ", "")
        match = [a for a in classical.ALL_ANCHORS.values() if key in (a.key, a.name.lower().replace(" ", ""))]
        if not match:
            raise BenchError(f"unknown anchor {name!r}: choose from {', '.join(classical.ALL_ANCHORS)}")
        if match[0].key not in avail:
            raise BenchError(f"anchor {name!r} unavailable: {classical.unavailable()[match[0].key]}")
        chosen[match[0].key] = match[0]
    return chosen


class _Progress:
    """A rich progress bar when asked (or when on a terminal), a user callback, or nothing."""

    def __init__(self, progress, total: int):
        self.callback, self.bar, self.done, self.total = None, None, 0, total
        self.lines = progress is None and not sys.stderr.isatty()  # logs get one plain line per step
        self.t0 = time.perf_counter()
        if callable(progress):
            self.callback = progress
        elif progress or (progress is None and sys.stderr.isatty()):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from rich.console import Console

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task("bench", total=total)
            self.bar.start()

    def step(self, label: str, n: int = 1) -> None:
        self.done += n
        if self.callback:
            self.callback(self.done, self.total, label)
        if self.bar:
            self.bar.update(self.task, advance=n, description=label[-60:])
        if self.lines:
            print(f"[{self.done}/{self.total} {time.perf_counter() - self.t0:.0f}s] {label}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def run_bench(
    paths: Sequence[os.PathLike | str],
    *,
    json_path: os.PathLike | str | None = None,
    plot_path: os.PathLike | str | None = None,
    modes: Sequence[str] | None = None,
    anchors: Sequence[str] | None = None,
    progress: bool | Callable[[int, int, str], None] | None = None,
    anchor_bpp: Sequence[float] = DEFAULT_TARGET_BPP,
    repeats: int = 3,
    dedupe: bool = True,
    gates: bool = True,
) -> BenchResult:
    """Bench every grayscale frame of the DICOM files in `paths` (folders recursed).

    modes: our codec modes (default: lossless, near-lossless:1,2,4 and lossy:q for each q the codec offers);
    anchors: anchor keys or names (default: all available; "j2k", "jls", "jxl", "htj2k");
    progress: True for a rich bar, False for none, None for a bar on a terminal, or a callback(done, total, label);
    anchor_bpp: target rates of the anchors' lossy curves;
    dedupe: bench a frame whose stored values (and bit depth) equal an earlier frame's only once - the bundled data
    holds the same image in several transfer syntaxes - and list the repeat under "skipped";
    gates: also measure each frame's bytes at its modality's default gate, medzip `auto` against each classical
    codec searched for its smallest passing payload (lab.gate_bytes; the slowest part of a run).
    """
    our_modes = [Mode.parse(m) for m in (default_modes() if modes is None else modes)]
    chosen = _select_anchors(anchors)
    ks = sorted({m.level for m in our_modes if m.kind == "near-lossless"}) or list(DEFAULT_K)

    instances, skipped = [], []
    for path in _candidate_files(paths):
        inst, why = instance(path)
        if inst is None:
            skipped.append({"file": str(path), "reason": why})
        else:
            instances.append(inst)
    if not instances:
        raise BenchError(f"no grayscale DICOM frames under {', '.join(map(str, paths))}")
    total_frames = sum(i.number_of_frames for i in instances)

    env = _environment(repeats, chosen)
    records: list[dict] = []
    gate_rows: list[dict] = []
    config = load_config() if gates else None
    seen: dict[str, str] = {}
    per_frame = len(our_modes) + len(chosen) + int(gates)
    bar = _Progress(progress, total_frames * per_frame)
    try:
        for inst in instances:
            path = inst.path
            try:
                frames = list(frames_of(inst))
            except Exception as exc:  # dicom_io's typed errors, recorded like unreadable files
                skipped.append({"file": str(path), "reason": f"pixel data not decodable: {exc}"})
                continue
            for frame in frames:
                tag = f"{path.name}[{frame.index}]"
                if dedupe:
                    digest = hashlib.sha256(frame.values.tobytes() + repr(
                        (frame.values.shape, frame.values.dtype.str, frame.bits_stored)).encode()).hexdigest()
                    if digest in seen:
                        skipped.append({"file": str(path), "frame": frame.index,
                                        "reason": f"same stored values as {seen[digest]}"})
                        bar.step(f"{tag} same as {seen[digest]}, skipped", per_frame)
                        continue
                    seen[digest] = tag
                matched = {}
                for mode in our_modes:
                    rec = _bench_ours(frame, mode, repeats, env)
                    records.append(rec)
                    if mode.kind == "lossy" and rec["error"] is None:
                        matched[str(mode)] = rec["bpp"]
                    bar.step(f"{tag} medzip {mode}")
                for anchor in chosen.values():
                    records += _bench_anchor(frame, anchor, ks, anchor_bpp, matched, repeats)
                    bar.step(f"{tag} {anchor.name}")
                if config is not None:
                    gate_rows.append(gate_bytes.measure_frame(frame, config.gate_for(frame.modality)))
                    bar.step(f"{tag} bytes at the gate")
    finally:
        bar.close()

    env["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = summarize(records, env, skipped, gate_rows)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result.to_json(), indent=1, allow_nan=False))
    if plot_path is not None:
        plot(result, plot_path)
    return result
