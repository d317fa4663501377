"""`medzip bench`: our codec's modes against the classical anchors on every grayscale frame of some DICOM files.

For each frame, each of our modes (codec.api) and each anchor (codec.baselines) this records bpp, ratio, PSNR, SSIM,
max error and median encode/decode latency, all through codec/metrics.py. It then summarises per codec/mode, compares
lossless and near-lossless totals with JPEG-LS, and computes BD-rate/BD-PSNR of our lossy curve against JPEG 2000
and JPEG-XL per modality over 0.5-2 bpp.

Anchors' lossy points are hit by rate matching (codec.baselines.RateMatcher): a fixed grid of target bpp for the
rate-distortion curves, plus, per frame, the exact bpp each of our lossy points reached ("matched" records) so the two
can be compared pixel for pixel at equal rate.
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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from codec import baselines, metrics
from codec.modes import Mode

OURS = "medzip"
DEFAULT_K = (1, 2, 4)
DEFAULT_TARGET_BPP = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
BD_RANGE = (0.5, 2.0)
RATE_MISS = 0.10  # an anchor point more than 10% off its target rate is kept but left out of curves


class BenchError(ValueError):
    """Bad bench input: no frames found, unknown anchor or mode."""


class BdRateError(ValueError):
    """Two rate-distortion curves that cannot be compared (too few points, no overlap in the range)."""


# --- frames ----------------------------------------------------------------------------------------------------


@dataclass
class Frame:
    path: Path
    index: int
    modality: str
    bits_stored: int
    bits_allocated: int
    signed: bool
    rescale_slope: float
    values: np.ndarray


def _candidate_files(paths: Iterable[os.PathLike | str]) -> list[Path]:
    from dicom_io.reader import iter_files

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise BenchError(f"{p}: no such file or folder")
    return list(iter_files(paths))


def _instance(path: Path):
    """dicom_io's Instance for a grayscale file, or (None, why it is not benched)."""
    from dicom_io import DicomReadError, VerbatimObject, read_file

    try:
        obj = read_file(path)
    except DicomReadError as exc:
        return None, f"{type(exc).__name__}: {exc.reason}"
    if isinstance(obj, VerbatimObject):
        return None, f"kept verbatim by dicom_io: {obj.reason}"
    return obj, None


def _frames_of(instance) -> Iterator[Frame]:
    """Every frame of one instance as stored values (dicom_io decodes any transfer syntax, one frame at a time)."""
    from dicom_io import iter_frames

    for i, values in enumerate(iter_frames(instance)):
        yield Frame(
            path=instance.path, index=i, modality=instance.modality or "OT", bits_stored=instance.pixel.bits_stored,
            bits_allocated=instance.pixel.bits_allocated, signed=instance.pixel.signed,
            rescale_slope=float(instance.rescale_slope or 1.0), values=np.ascontiguousarray(values),
        )


# --- our codec -------------------------------------------------------------------------------------------------


def codec_lossy_levels() -> list[int]:
    """The lossy rate points (q of `lossy:q`) the learned codec offers; none while codec.api is the placeholder."""
    from codec import api

    for name in ("lossy_levels", "rate_points", "lossy_qualities"):
        found = getattr(api, name, None)
        if found is not None:
            levels = found() if callable(found) else found
            return sorted(int(getattr(q, "level", q)) for q in levels)
    return []


def default_modes() -> list[str]:
    return ["lossless"] + [f"near-lossless:{k}" for k in DEFAULT_K] + [f"lossy:{q}" for q in codec_lossy_levels()]


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
    rec = {
        "bytes": payload_bytes,
        "bpp": metrics.bpp(payload_bytes, v.size),
        "ratio": metrics.ratio(metrics.uncompressed_bytes(*v.shape, 1, frame.bits_allocated), payload_bytes),
        "psnr": None if math.isinf(psnr) else psnr,  # JSON null = exact decode (infinite PSNR)
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


def _bench_anchor_setting(frame: Frame, anchor: baselines.Anchor, setting: baselines.Setting, mode: str,
                          repeats: int, extra: dict | None = None) -> dict:
    rec = _base(frame, anchor.key, mode)
    rec.update(extra or {})
    try:
        v, bits, signed = frame.values, frame.bits_stored, frame.signed
        payload, enc_ms = _timed(lambda: anchor.encode(v, bits, signed, setting), repeats)
        decoded, dec_ms = _timed(lambda: anchor.decode(payload, bits, signed, v.dtype), repeats)
        rec.update(_quality(frame, decoded, len(payload)), encode_ms=enc_ms, decode_ms=dec_ms)
        if setting.kind == "lossy":
            rec["param"] = setting.level
        if anchor.offset(bits, signed):
            rec["offset"] = anchor.offset(bits, signed)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    return rec


def _bench_anchor(frame: Frame, anchor: baselines.Anchor, ks: Sequence[int], targets: Sequence[float],
                  matched: dict[str, float], repeats: int) -> list[dict]:
    S = baselines.Setting
    recs = [_bench_anchor_setting(frame, anchor, baselines.LOSSLESS, "lossless", repeats, {"bound": 0})]
    if anchor.near_lossless:
        for k in ks:
            r = _bench_anchor_setting(frame, anchor, S("near-lossless", k), f"near-lossless:{k}", repeats,
                                      {"bound": k})
            if r["error"] is None:
                r["bound_ok"] = r["max_error"] <= k
            recs.append(r)
    if anchor.lossy and recs[0]["error"] is None:
        matcher = baselines.RateMatcher(anchor, frame.values, frame.bits_stored, frame.signed)
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


# --- BD-rate ---------------------------------------------------------------------------------------------------


def _curve(bpp: Sequence[float], psnr: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted({(float(b), float(p)) for b, p in zip(bpp, psnr) if b > 0 and p is not None and math.isfinite(p)})
    if len(pts) < 2:
        raise BdRateError(f"a curve needs at least 2 finite points, got {len(pts)}")
    r = np.log(np.array([b for b, _ in pts]))
    q = np.array([p for _, p in pts])
    return r, q


def _psnr_span(r: np.ndarray, q: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """PSNR interval this curve covers within log-rate [lo, hi] (linear interpolation between its points)."""
    a, b = max(lo, r.min()), min(hi, r.max())
    if a > b:
        raise BdRateError("curve has no point within the rate range")
    ya, yb = np.interp([a, b], r, q)
    return float(min(ya, yb)), float(max(ya, yb))


def _fit(x: np.ndarray, y: np.ndarray) -> np.poly1d:
    return np.poly1d(np.polyfit(x, y, min(3, len(x) - 1)))


def _mean_gap(f_ref: np.poly1d, f_test: np.poly1d, lo: float, hi: float) -> float:
    i_ref, i_test = np.polyint(f_ref), np.polyint(f_test)
    return float(((i_test(hi) - i_test(lo)) - (i_ref(hi) - i_ref(lo))) / (hi - lo))


def bd_rate(ref_bpp: Sequence[float], ref_psnr: Sequence[float], test_bpp: Sequence[float],
            test_psnr: Sequence[float], *, bpp_range: tuple[float, float] = BD_RANGE) -> float:
    """Bjontegaard delta rate in percent of `test` against `ref` (negative: test needs fewer bits).

    Each curve's log-rate is fitted as a cubic in PSNR (lower degree with fewer than 4 points); the difference is
    averaged over the PSNR interval both curves cover while within `bpp_range`.
    """
    r1, q1 = _curve(ref_bpp, ref_psnr)
    r2, q2 = _curve(test_bpp, test_psnr)
    lo_r, hi_r = math.log(bpp_range[0]), math.log(bpp_range[1])
    s1, s2 = _psnr_span(r1, q1, lo_r, hi_r), _psnr_span(r2, q2, lo_r, hi_r)
    lo, hi = max(s1[0], s2[0]), min(s1[1], s2[1])
    if hi - lo < 1e-6:
        raise BdRateError(f"no PSNR overlap within {bpp_range[0]}-{bpp_range[1]} bpp")
    gap = _mean_gap(_fit(q1, r1), _fit(q2, r2), lo, hi)
    return 100.0 * (math.exp(gap) - 1.0)


def bd_psnr(ref_bpp: Sequence[float], ref_psnr: Sequence[float], test_bpp: Sequence[float],
            test_psnr: Sequence[float], *, bpp_range: tuple[float, float] = BD_RANGE) -> float:
    """Bjontegaard delta PSNR in dB of `test` against `ref` over the log-rate overlap within `bpp_range`."""
    r1, q1 = _curve(ref_bpp, ref_psnr)
    r2, q2 = _curve(test_bpp, test_psnr)
    lo = max(r1.min(), r2.min(), math.log(bpp_range[0]))
    hi = min(r1.max(), r2.max(), math.log(bpp_range[1]))
    if hi - lo < 1e-6:
        raise BdRateError(f"no rate overlap within {bpp_range[0]}-{bpp_range[1]} bpp")
    return _mean_gap(_fit(r1, q1), _fit(r2, q2), lo, hi)


# --- summaries -------------------------------------------------------------------------------------------------


def _ok(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("error") is None]


def _mean(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _frame_key(r: dict) -> tuple[str, int]:
    return r["file"], r["frame"]


def _j2k_reference(records: list[dict]) -> dict[tuple, dict[str, tuple[float, float]]]:
    """Per frame, JPEG 2000's (encode, decode) ms: lossless, and the median over its lossy points."""
    ref: dict[tuple, dict[str, tuple[float, float]]] = defaultdict(dict)
    lossy: dict[tuple, list[dict]] = defaultdict(list)
    for r in _ok(records):
        if r["codec"] != "j2k":
            continue
        if r["mode"] == "lossless":
            ref[_frame_key(r)]["lossless"] = (r["encode_ms"], r["decode_ms"])
        elif r["mode"].startswith("lossy"):
            lossy[_frame_key(r)].append(r)
    for key, rs in lossy.items():
        ref[key]["lossy"] = (statistics.median(x["encode_ms"] for x in rs), statistics.median(x["decode_ms"] for x in rs))
    return ref


def _is_lossy(mode: str) -> bool:
    return mode.startswith("lossy")


def summary_rows(records: list[dict]) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["codec"], r["mode"])].append(r)
    ref = _j2k_reference(records)
    rows = []
    for (codec, mode), rs in groups.items():
        ok = _ok(rs)
        row = {"codec": codec, "mode": mode, "frames": len(ok), "errors": len(rs) - len(ok)}
        if ok:
            pixels = sum(r["rows"] * r["columns"] for r in ok)
            finite = [r["psnr"] for r in ok if r["psnr"] is not None]
            row.update(
                total_bits=8 * sum(r["bytes"] for r in ok),
                mean_bpp=_mean(r["bpp"] for r in ok),
                pooled_bpp=metrics.bpp(sum(r["bytes"] for r in ok), pixels),
                mean_psnr=_mean(finite),
                exact_frames=len(ok) - len(finite),
                mean_ssim=_mean(r["ssim"] for r in ok),
                max_error=max(r["max_error"] for r in ok),
                median_encode_ms=statistics.median(r["encode_ms"] for r in ok),
                median_decode_ms=statistics.median(r["decode_ms"] for r in ok),
            )
            kind = "lossy" if _is_lossy(mode) else "lossless"
            enc_ratio = [r["encode_ms"] / ref[_frame_key(r)][kind][0] for r in ok if kind in ref.get(_frame_key(r), {})]
            dec_ratio = [r["decode_ms"] / ref[_frame_key(r)][kind][1] for r in ok if kind in ref.get(_frame_key(r), {})]
            row["encode_vs_j2k"] = statistics.median(enc_ratio) if enc_ratio else None
            row["decode_vs_j2k"] = statistics.median(dec_ratio) if dec_ratio else None
            row["j2k_reference"] = kind
        rows.append(row)
    order = {OURS: 0, "j2k": 1, "jls": 2, "jxl": 3, "htj2k": 4}

    def sort_key(row):
        mode = row["mode"]
        if mode == "lossless":
            return order.get(row["codec"], 9), 0, 0.0, mode
        if mode.startswith("near-lossless:"):
            return order.get(row["codec"], 9), 1, float(mode.split(":")[1]), mode
        return order.get(row["codec"], 9), 2, row.get("mean_bpp") or 0.0, mode

    return sorted(rows, key=sort_key)


def versus_jpegls(records: list[dict]) -> list[dict]:
    """Our lossless and near-lossless bits against JPEG-LS at the same k, totalled over frames both coded."""
    by = defaultdict(dict)
    for r in _ok(records):
        if r["mode"] == "lossless" or r["mode"].startswith("near-lossless"):
            by[(r["mode"], r["codec"])][_frame_key(r)] = r["bytes"]
    out = []
    for mode in sorted({m for m, c in by if c == OURS}, key=lambda m: (m != "lossless", m)):
        ours, jls = by.get((mode, OURS), {}), by.get((mode, "jls"), {})
        common = sorted(set(ours) & set(jls))
        if not common:
            out.append({"mode": mode, "frames": 0, "note": "no frame coded by both medzip and JPEG-LS"})
            continue
        ob, jb = 8 * sum(ours[f] for f in common), 8 * sum(jls[f] for f in common)
        row = {"mode": mode, "frames": len(common), "medzip_bits": ob, "jpegls_bits": jb,
               "ratio_to_jpegls": ob / jb, "medzip_le_jpegls": ob <= jb}
        if mode == "lossless":
            for key in ("j2k", "jxl", "htj2k"):
                other = by.get((mode, key), {})
                if all(f in other for f in common):
                    row[f"{key}_bits"] = 8 * sum(other[f] for f in common)
        out.append(row)
    return out


def _curves(records: list[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per modality and codec: mean bpp and mean PSNR per rate point (our lossy:q; the anchors' bpp grid)."""
    pts: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in _ok(records):
        if r["psnr"] is None or r.get("rate_miss"):
            continue
        if (r["codec"] == OURS and r["mode"].startswith("lossy:")) or (
            r["codec"] != OURS and r["mode"].startswith("lossy@") and r["mode"].endswith("bpp")
        ):
            pts[(r["modality"], r["codec"], r["mode"])].append(r)
    curves: dict = defaultdict(lambda: defaultdict(lambda: {"bpp": [], "psnr": [], "label": []}))
    for (mod, codec, mode), rs in sorted(pts.items()):
        c = curves[mod][codec]
        c["bpp"].append(_mean(r["bpp"] for r in rs))
        c["psnr"].append(_mean(r["psnr"] for r in rs))
        c["label"].append(mode)
    return {m: dict(v) for m, v in curves.items()}


def bd_table(records: list[dict]) -> dict:
    out: dict = {}
    for mod, curves in sorted(_curves(records).items()):
        if OURS not in curves:
            continue
        ours = curves[OURS]
        for key in ("j2k", "jxl"):
            entry: dict = {"bpp_range": list(BD_RANGE), "points_medzip": len(ours["bpp"])}
            if key not in curves:
                entry["error"] = "no anchor curve"
            else:
                a = curves[key]
                entry["points_anchor"] = len(a["bpp"])
                try:
                    entry["bd_rate_pct"] = bd_rate(a["bpp"], a["psnr"], ours["bpp"], ours["psnr"])
                    entry["bd_psnr_db"] = bd_psnr(a["bpp"], a["psnr"], ours["bpp"], ours["psnr"])
                    entry["error"] = None
                except BdRateError as exc:
                    entry["error"] = str(exc)
            out.setdefault(mod, {})[key] = entry
    return out


def matched_rate_gains(records: list[dict]) -> list[dict]:
    """Our PSNR minus the anchor's at the same frame and (matched) rate, per our lossy point."""
    ours = {(_frame_key(r), r["mode"]): r for r in _ok(records) if r["codec"] == OURS and _is_lossy(r["mode"])}
    gains = defaultdict(list)
    for r in _ok(records):
        if r["codec"] == OURS or not r["mode"].startswith("lossy@lossy:") or r.get("rate_miss"):
            continue
        mine = ours.get((_frame_key(r), r["mode"][len("lossy@"):]))
        if mine and mine["psnr"] is not None and r["psnr"] is not None:
            gains[(r["modality"], mine["mode"], r["codec"])].append((mine["psnr"] - r["psnr"], r["bpp"]))
    return [
        {"modality": m, "mode": q, "anchor": a, "frames": len(g), "mean_bpp": _mean(b for _, b in g),
         "mean_psnr_gain_db": _mean(d for d, _ in g), "min_psnr_gain_db": min(d for d, _ in g)}
        for (m, q, a), g in sorted(gains.items())
    ]


# --- environment -----------------------------------------------------------------------------------------------


def _environment(repeats: int, anchors: dict[str, baselines.Anchor]) -> dict:
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
        "anchors_unavailable": baselines.unavailable(),
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

    def to_json(self) -> dict:
        return {"frames": self.frames, "summary": self.summary, "bd_rate": self.bd_rate,
                "environment": self.environment, "skipped": self.skipped}


def _select_anchors(anchors: Sequence[str] | None) -> dict[str, baselines.Anchor]:
    avail = baselines.available()
    if anchors is None:
        return avail
    chosen = {}
    for name in anchors:
        key = name.lower().replace(" ", "")
        match = [a for a in baselines.ALL_ANCHORS.values() if key in (a.key, a.name.lower().replace(" ", ""))]
        if not match:
            raise BenchError(f"unknown anchor {name!r}: choose from {', '.join(baselines.ALL_ANCHORS)}")
        if match[0].key not in avail:
            raise BenchError(f"anchor {name!r} unavailable: {baselines.unavailable()[match[0].key]}")
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
) -> BenchResult:
    """Bench every grayscale frame of the DICOM files in `paths` (folders recursed).

    modes: our codec modes (default: lossless, near-lossless:1,2,4 and lossy:q for each q the codec offers);
    anchors: anchor keys or names (default: all available; "j2k", "jls", "jxl", "htj2k");
    progress: True for a rich bar, False for none, None for a bar on a terminal, or a callback(done, total, label);
    anchor_bpp: target rates of the anchors' lossy curves;
    dedupe: bench a frame whose stored values (and bit depth) equal an earlier frame's only once - the bundled data
    holds the same image in several transfer syntaxes - and list the repeat under "skipped".
    """
    our_modes = [Mode.parse(m) for m in (default_modes() if modes is None else modes)]
    chosen = _select_anchors(anchors)
    ks = sorted({m.level for m in our_modes if m.kind == "near-lossless"}) or list(DEFAULT_K)

    instances, skipped = [], []
    for path in _candidate_files(paths):
        inst, why = _instance(path)
        if inst is None:
            skipped.append({"file": str(path), "reason": why})
        else:
            instances.append(inst)
    if not instances:
        raise BenchError(f"no grayscale DICOM frames under {', '.join(map(str, paths))}")
    total_frames = sum(i.number_of_frames for i in instances)

    env = _environment(repeats, chosen)
    records: list[dict] = []
    seen: dict[str, str] = {}
    bar = _Progress(progress, total_frames * (len(our_modes) + len(chosen)))
    try:
        for inst in instances:
            path = inst.path
            try:
                frames = list(_frames_of(inst))
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
                        bar.step(f"{tag} same as {seen[digest]}, skipped", len(our_modes) + len(chosen))
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
    finally:
        bar.close()

    summary = {"rows": summary_rows(records), "vs_jpegls": versus_jpegls(records),
               "matched_rate": matched_rate_gains(records), "curves": _curves(records),
               "frames": len({_frame_key(r) for r in records}), "files": len(instances)}
    env["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = BenchResult(records, summary, bd_table(records), env, skipped)
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result.to_json(), indent=1, allow_nan=False))
    if plot_path is not None:
        plot(result, plot_path)
    return result


# --- output ----------------------------------------------------------------------------------------------------


def plot(result: BenchResult, path: os.PathLike | str) -> None:
    """bpp vs PSNR per modality: our lossy curve, the anchors' lossy curves, near-lossless points; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (formatters below)

    curves = result.summary["curves"]
    mods = sorted(curves) or ["(no lossy points)"]
    cols = min(3, len(mods))
    rows = math.ceil(len(mods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    names = {OURS: "medzip (ours)", **{k: a.name for k, a in baselines.ALL_ANCHORS.items()}}
    near = defaultdict(list)
    for r in _ok(result.frames):
        if r["mode"].startswith("near-lossless") and r["psnr"] is not None:
            near[(r["modality"], r["codec"], r["mode"])].append(r)
    colour = {OURS: "C3", "j2k": "C0", "jxl": "C1", "jls": "C2", "htj2k": "C4"}
    marks = "^sDvP*"
    ticks = [0.125, 0.25, 0.5, 1, 2, 4, 8, 16]
    for ax, mod in zip(axes.flat, mods):
        for codec, c in sorted(curves.get(mod, {}).items(), key=lambda kv: kv[0] != OURS):
            order = np.argsort(c["bpp"])
            ax.plot(np.array(c["bpp"])[order], np.array(c["psnr"])[order], marker="o", color=colour.get(codec),
                    lw=2.5 if codec == OURS else 1.3, label=f"{names.get(codec, codec)} lossy")
        nl = sorted((k, rs) for k, rs in near.items() if k[0] == mod)
        ks = sorted({int(mode.split(":")[1]) for (_, _, mode), _ in nl})
        for (_, codec, mode), rs in nl:
            k = int(mode.split(":")[1])
            ax.scatter([_mean(r["bpp"] for r in rs)], [_mean(r["psnr"] for r in rs)], color=colour.get(codec),
                       marker=marks[ks.index(k) % len(marks)], s=36, label=f"{names.get(codec, codec)} |e|<={k}")
        ax.axvspan(*BD_RANGE, color="0.92", zorder=0)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xticks([t for t in ticks if lo <= t <= hi] or ticks[2:5])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(mod)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel("PSNR (dB, MAX = 2^BitsStored - 1)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(mods):]:
        ax.axis("off")
    fig.suptitle("medzip bench: mean bpp vs mean PSNR per rate point (shaded: BD-rate range 0.5-2 bpp)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _f(x, fmt="{:.2f}", none="-"):
    return none if x is None else fmt.format(x)


def print_summary(result: BenchResult, console=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = result.summary
    names = {OURS: "medzip", "j2k": "J2K", "jls": "JPEG-LS", "jxl": "JXL", "htj2k": "HTJ2K"}

    def table(title: str, cols: Sequence[str], left: int = 2) -> Table:
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        for i, col in enumerate(cols):
            t.add_column(col, justify="left" if i < left else "right", no_wrap=i < left)
        return t

    q = table(f"medzip bench: size and quality, {s['frames']} frames from {s['files']} files",
              ("codec", "mode", "n", "Mbit", "bpp", "PSNR", "SSIM", "maxerr", "err"))
    sp = table("latency: median ms per frame; xJ2K = median per-frame ratio to JPEG 2000 (lossless or lossy) "
               "in this run", ("codec", "mode", "n", "enc ms", "dec ms", "enc xJ2K", "dec xJ2K"))
    for r in s["rows"]:
        codec, n = names.get(r["codec"], r["codec"]), str(r["frames"])
        if r["frames"] == 0:
            q.add_row(codec, r["mode"], n, *["-"] * 5, str(r["errors"]))
            continue
        q.add_row(codec, r["mode"], n, f"{r['total_bits'] / 1e6:.3f}", _f(r["mean_bpp"], "{:.3f}"),
                  "inf" if r["mean_psnr"] is None else _f(r["mean_psnr"]), _f(r["mean_ssim"], "{:.4f}"),
                  str(r["max_error"]), str(r["errors"]))
        sp.add_row(codec, r["mode"], n, _f(r["median_encode_ms"], "{:.1f}"), _f(r["median_decode_ms"], "{:.1f}"),
                   _f(r["encode_vs_j2k"]), _f(r["decode_vs_j2k"]))
    console.print(q)
    console.print(sp)

    v = table("lossless / near-lossless totals vs JPEG-LS at the same k (frames coded by both)",
              ("mode", "n", "medzip Mbit", "JPEG-LS Mbit", "medzip/JLS", "<= JLS", "others / JLS"), left=1)
    for r in s["vs_jpegls"]:
        if not r["frames"]:
            v.add_row(r["mode"], "0", "-", "-", "-", "-", r.get("note", ""))
            continue
        others = ", ".join(f"{names[k]} {r[f'{k}_bits'] / r['jpegls_bits']:.3f}" for k in ("j2k", "jxl", "htj2k")
                           if f"{k}_bits" in r)
        v.add_row(r["mode"], str(r["frames"]), f"{r['medzip_bits'] / 1e6:.3f}", f"{r['jpegls_bits'] / 1e6:.3f}",
                  f"{r['ratio_to_jpegls']:.3f}", "yes" if r["medzip_le_jpegls"] else "NO", others)
    console.print(v)

    b = table("BD-rate (PSNR) of medzip lossy vs anchors over 0.5-2 bpp (negative = medzip needs fewer bits)",
              ("modality", "anchor", "BD-rate %", "BD-PSNR dB", "points ours/anchor", "note"))
    if not result.bd_rate:
        b.add_row("-", "-", "-", "-", "-", "no lossy points from medzip (codec offers no lossy:q)")
    for mod, per in result.bd_rate.items():
        for key, e in per.items():
            b.add_row(mod, names[key], _f(e.get("bd_rate_pct"), "{:+.1f}"), _f(e.get("bd_psnr_db"), "{:+.2f}"),
                      f"{e.get('points_medzip', 0)}/{e.get('points_anchor', 0)}", e.get("error") or "")
    console.print(b)

    if s["matched_rate"]:
        m = table("PSNR gain of medzip over anchors at matched rate (same frame, same bpp)",
                  ("modality", "mode", "anchor", "n", "mean bpp", "mean gain dB", "min gain dB"), left=3)
        for r in s["matched_rate"]:
            m.add_row(r["modality"], r["mode"], names[r["anchor"]], str(r["frames"]), _f(r["mean_bpp"], "{:.3f}"),
                      _f(r["mean_psnr_gain_db"], "{:+.2f}"), _f(r["min_psnr_gain_db"], "{:+.2f}"))
        console.print(m)
    if result.skipped:
        console.print(f"[dim]{len(result.skipped)} files skipped (not grayscale DICOM or undecodable); "
                      f"see 'skipped' in the JSON[/dim]")
