"""The bench's summaries (per codec/mode, vs JPEG-LS, BD-rate per modality, matched-rate gains), table and plot.

Works on the plain record dicts lab/bench.py produces; knows nothing of codecs or DICOM.
"""
from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from quality import metrics
from lab.bench_bd import BD_RANGE, BdRateError, bd_psnr, bd_rate

OURS = "medzip"
OURS_WAVELET = "medzip-wavelet"  # the curve of our unguarded wavelet:q points (records say codec OURS)
NAMES = {OURS: "medzip", OURS_WAVELET: "medzip wavelet", "j2k": "JPEG 2000", "jls": "JPEG-LS", "jxl": "JPEG-XL",
         "htj2k": "HTJ2K"}


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
    """A lossy rate point: ours (the learned lossy:q, the wavelet:q) or an anchor's (lossy@…)."""
    return mode.startswith(("lossy", "wavelet"))


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


def curves(records: list[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per modality and codec: mean bpp and mean PSNR per rate point (our lossy:q; our unguarded wavelet:q as the
    curve OURS_WAVELET; the anchors' bpp grid)."""
    pts: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in _ok(records):
        if r["psnr"] is None or r.get("rate_miss"):
            continue
        if r["codec"] == OURS and r["mode"].startswith("wavelet:") and "/" not in r["mode"]:
            pts[(r["modality"], OURS_WAVELET, r["mode"])].append(r)
        elif (r["codec"] == OURS and r["mode"].startswith("lossy:")) or (
            r["codec"] != OURS and r["mode"].startswith("lossy@") and r["mode"].endswith("bpp")
        ):
            pts[(r["modality"], r["codec"], r["mode"])].append(r)
    out: dict = defaultdict(lambda: defaultdict(lambda: {"bpp": [], "psnr": [], "label": []}))
    for (mod, codec, mode), rs in sorted(pts.items()):
        c = out[mod][codec]
        c["bpp"].append(_mean(r["bpp"] for r in rs))
        c["psnr"].append(_mean(r["psnr"] for r in rs))
        c["label"].append(mode)
    return {m: dict(v) for m, v in out.items()}


def _curve_of(r: dict) -> str | None:
    """Which rate-distortion curve a record is a point of: ours (OURS: lossy:q; OURS_WAVELET: wavelet:q without a
    guard) or an anchor's bpp grid (its codec key); None for any other record."""
    if r["psnr"] is None or r.get("rate_miss"):
        return None
    if r["codec"] == OURS:
        if r["mode"].startswith("wavelet:") and "/" not in r["mode"]:
            return OURS_WAVELET
        return OURS if r["mode"].startswith("lossy:") else None
    return r["codec"] if r["mode"].startswith("lossy@") and r["mode"].endswith("bpp") else None


def bd_table(records: list[dict]) -> dict:
    """Per modality, the mean over frames of each frame's BD-rate and BD-PSNR of our lossy curves against each
    anchor's, over BD_RANGE: keyed by the anchor for the learned lossy:q curve, by "<anchor>:wavelet" for the
    wavelet's. Per frame, not between mean curves: our rate points sit at different rates on different frames (a
    content-adaptive codec), and averaging PSNR across frames at unaligned rates measured the mix of frames, not the
    codecs (the wavelet on 6 bundled CT/MR frames: mean-curve BD-rate +42 / +11 % against JPEG 2000, per frame -7 to
    +3 %)."""
    points: dict = defaultdict(lambda: defaultdict(list))  # (modality, frame) -> curve -> [(bpp, psnr)]
    for r in _ok(records):
        curve = _curve_of(r)
        if curve is not None:
            points[(r["modality"], _frame_key(r))][curve].append((r["bpp"], r["psnr"]))
    out: dict = {}
    for mod in sorted({m for m, _ in points}):
        frames = [per for (m, _), per in sorted(points.items()) if m == mod]
        for mine in (OURS, OURS_WAVELET):
            if any(mine in per for per in frames):
                for key in ("j2k", "jxl"):
                    out.setdefault(mod, {})[key if mine == OURS else f"{key}:wavelet"] = _bd_entry(frames, mine, key)
    return out


def _bd_entry(frames: list[dict], mine: str, key: str) -> dict:
    entry: dict = {"bpp_range": list(BD_RANGE), "ours": mine, "points_medzip": 0, "points_anchor": 0}
    deltas: dict[str, list[float]] = {"bd_rate_pct": [], "bd_psnr_db": []}
    problems = []
    for per in frames:
        ours, anchor = per.get(mine, []), per.get(key, [])
        if not ours:
            continue
        entry["points_medzip"] += len(ours)
        entry["points_anchor"] += len(anchor)
        if not anchor:
            problems.append("no anchor curve")
            continue
        for name, fn in (("bd_rate_pct", bd_rate), ("bd_psnr_db", bd_psnr)):
            try:  # each delta on its own: curves can share rates without sharing any PSNR
                deltas[name].append(fn([b for b, _ in anchor], [p for _, p in anchor], [b for b, _ in ours],
                                       [p for _, p in ours]))
            except BdRateError as exc:
                problems.append(f"{name}: {exc}")
    for name, got in deltas.items():
        entry[name] = _mean(got)
        entry[f"{name.split('_')[1]}_frames"] = len(got)
    skipped = sorted(set(problems))
    entry["error"] = None if entry["bd_rate_pct"] is not None and entry["bd_psnr_db"] is not None else (
        "; ".join(skipped) or "no frame with both curves")
    entry["note"] = f"{len(problems)} frame deltas not defined: {'; '.join(skipped)}" if problems else None
    return entry


def latency_at(records: list[dict], shape: tuple[int, int] = (512, 512)) -> list[dict]:
    """Median encode/decode ms per codec and mode kind over frames of one size (the issue's bound is per 512² slice)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in _ok(records):
        if (r["rows"], r["columns"]) == tuple(shape):
            kind = "lossy" if _is_lossy(r["mode"]) else r["mode"].split(":")[0]
            groups[(r["codec"], kind)].append(r)
    order = {OURS: 0, "j2k": 1, "jls": 2, "jxl": 3, "htj2k": 4}
    kinds = {"lossless": 0, "near-lossless": 1, "lossy": 2}
    return [
        {"codec": c, "kind": k, "shape": list(shape), "records": len(rs),
         "median_encode_ms": statistics.median(r["encode_ms"] for r in rs),
         "median_decode_ms": statistics.median(r["decode_ms"] for r in rs)}
        for (c, k), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kinds[kv[0][1]]))
    ]


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


# --- output ----------------------------------------------------------------------------------------------------


def plot(result, path: os.PathLike | str) -> None:
    """bpp vs PSNR per modality: our lossy curve, the anchors' lossy curves, near-lossless points; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (formatters below)

    per_mod = result.summary["curves"]
    mods = sorted(per_mod) or ["(no lossy points)"]
    cols = min(3, len(mods))
    rows = math.ceil(len(mods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    names = {**NAMES, OURS: "medzip (ours)"}
    near = defaultdict(list)
    for r in _ok(result.frames):
        if r["mode"].startswith("near-lossless") and r["psnr"] is not None:
            near[(r["modality"], r["codec"], r["mode"])].append(r)
    colour = {OURS: "C3", OURS_WAVELET: "C5", "j2k": "C0", "jxl": "C1", "jls": "C2", "htj2k": "C4"}
    marks = "^sDvP*"
    ticks = [0.125, 0.25, 0.5, 1, 2, 4, 8, 16]
    for ax, mod in zip(axes.flat, mods):
        for codec, c in sorted(per_mod.get(mod, {}).items(), key=lambda kv: kv[0] != OURS):
            order = np.argsort(c["bpp"])
            ax.plot(np.array(c["bpp"])[order], np.array(c["psnr"])[order], marker="o", color=colour.get(codec),
                    lw=2.5 if codec in (OURS, OURS_WAVELET) else 1.3, label=f"{names.get(codec, codec)} lossy")
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


def print_summary(result, console=None) -> None:
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

    b = table("BD-rate (PSNR) of medzip's lossy curves (learned lossy:q, wavelet:q) vs anchors over 0.5-2 bpp, "
              "mean of the frames' (negative = medzip needs fewer bits)",
              ("modality", "ours", "anchor", "BD-rate %", "BD-PSNR dB", "points ours/anchor", "note"), left=3)
    if not result.bd_rate:
        b.add_row("-", "-", "-", "-", "-", "-", "no lossy points from medzip (no lossy:q or wavelet:q, or all failed)")
    for mod, per in result.bd_rate.items():
        for key, e in per.items():
            anchor, _, which = key.partition(":")
            b.add_row(mod, "wavelet:q" if which else "lossy:q", names[anchor], _f(e.get("bd_rate_pct"), "{:+.1f}"),
                      _f(e.get("bd_psnr_db"), "{:+.2f}"), f"{e.get('points_medzip', 0)}/{e.get('points_anchor', 0)}",
                      e.get("error") or e.get("note") or "")
    console.print(b)

    if s.get("gate"):
        g = table("bytes at the default gate: medzip auto vs each classical codec searched for its smallest passing "
                  "payload (JPEG-LS by k, JPEG 2000 by quality, JPEG-XL by distance)",
                  ("modality", "n", "medzip kB", "JPEG-LS kB", "J2K kB", "JXL kB", "best per frame kB", "medzip/best"),
                  left=1)
        for mod, t in s["gate"].items():
            g.add_row(mod, str(t["frames"]), f"{t['medzip'] / 1e3:.1f}",
                      *(_f(t[k] / 1e3 if k in t else None, "{:.1f}") for k in ("jls", "j2k", "jxl")),
                      f"{t['best'] / 1e3:.1f}", f"{t['ratio_to_best']:.3f}")
        console.print(g)

    if s.get("latency_512"):
        lt = table("latency on 512x512 frames: median ms over all records of the kind",
                   ("codec", "kind", "records", "enc ms", "dec ms"))
        for r in s["latency_512"]:
            lt.add_row(names.get(r["codec"], r["codec"]), r["kind"], str(r["records"]),
                       _f(r["median_encode_ms"], "{:.1f}"), _f(r["median_decode_ms"], "{:.1f}"))
        console.print(lt)

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
