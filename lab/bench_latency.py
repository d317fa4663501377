"""Encode/decode latency of the learned codec per 512x512 CT slice, beside CharLS (JPEG-LS) and OpenJPEG (JPEG
2000) on the same frames in the same run (issue 12 item 2).

    python -m lab.bench_latency [--repeats 5] [--modes lossless,near-lossless:2,lossy:2] [--frames 693_UNCR.dcm]
                                [--json OUT] [--per-frame]

Frames: the bundled real 512² CT slices (lab.bench_pipeline.REAL_CT), each with its own BitsStored and sign.
Per frame and mode, the median of --repeats runs (after one warm-up) of: our encode, our exact decode (the
default, bit-identical everywhere) and, for lossy modes, the fast float decode; CharLS and OpenJPEG on the same
frame at the matching setting:
- lossless: both lossless;
- near-lossless:K: CharLS at NEAR=K, OpenJPEG lossy at our bpp (it has no near-lossless mode);
- lossy:Q: CharLS at the NEAR whose bpp is closest to ours, OpenJPEG lossy at our bpp.
Printed: per mode the median over the frames of those per-frame medians (ms), and the ratios to CharLS.
Timings on a shared 2-core machine swing with its load: the 1-minute load average is printed beside each mode.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from codec import api  # noqa: E402
from codec.modes import Mode  # noqa: E402
from lab import anchors  # noqa: E402
from lab.bench_pipeline import REAL_CT  # noqa: E402
from lab.realdata import find  # noqa: E402
from quality import metrics  # noqa: E402


def _median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), out


def ct_frames(names: list[str] | None = None):
    """(label, stored values, BitsStored, signed) of the bundled real 512² CT slices."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, k in REAL_CT:
            if names and name not in names:
                continue
            ds = pydicom.dcmread(find(name))
            arr = ds.pixel_array
            v = arr.reshape((-1,) + arr.shape[-2:])[k]
            out.append((f"{name}#{k}", np.ascontiguousarray(v), int(ds.BitsStored), bool(ds.PixelRepresentation)))
    return out


def _jls_near_at_bpp(v, bits, signed, bpp):
    """CharLS's NEAR whose bpp is closest to `bpp` (bpp falls as NEAR grows): bisection."""
    jls = anchors.available()["jls"]
    size = lambda k: metrics.bpp(len(jls.encode(v, bits, signed, anchors.AnchorSetting.near_lossless(k))), v.size)  # noqa: E731
    lo, hi = 0, min(255, 1 << (bits - 2))  # CharLS takes NEAR up to 255
    if size(hi) >= bpp:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) > bpp:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda k: abs(size(k) - bpp))


def one(v, bits, signed, mode: Mode, repeats: int) -> dict:
    """Per-frame medians (ms) for one mode: ours, CharLS, OpenJPEG."""
    payload = api.encode(v, mode, bits, signed)  # warm-up
    api.decode(payload)
    enc, payload = _median_ms(lambda: api.encode(v, mode, bits, signed), repeats)
    dec, d = _median_ms(lambda: api.decode(payload), repeats)
    bpp = metrics.bpp(len(payload), v.size)
    r = {"bpp": bpp, "enc": enc, "dec": dec, "max_err": int(np.abs(d.astype(np.int64) - v).max())}
    if mode.is_lossless:
        assert np.array_equal(d, v)
    if mode.kind == "lossy":
        r["dec_fast"], _ = _median_ms(lambda: api.decode(payload, exact=False), repeats)
    av = anchors.available()
    jls, j2k = av["jls"], av["j2k"]
    if mode.is_lossless:
        s_jls = s_j2k = anchors.LOSSLESS
    else:
        k = mode.level if mode.kind == "near-lossless" else _jls_near_at_bpp(v, bits, signed, bpp)
        s_jls = anchors.AnchorSetting.near_lossless(k)
        s_j2k = anchors.RateMatcher(j2k, v, bits, signed).match(bpp).setting
    for key, anchor, setting in (("charls", jls, s_jls), ("openjpeg", j2k, s_j2k)):
        p = anchor.encode(v, bits, signed, setting)  # warm-up
        anchor.decode(p, bits, signed, v.dtype)
        e, p = _median_ms(lambda: anchor.encode(v, bits, signed, setting), repeats)
        dd, _ = _median_ms(lambda: anchor.decode(p, bits, signed, v.dtype), repeats)
        r[key] = {"enc": e, "dec": dd, "bpp": metrics.bpp(len(p), v.size), "setting": str(setting)}
    return r


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default="lossless,near-lossless:2,lossy:2")
    ap.add_argument("--frames", default="", help="comma-separated bundled file names (default: every REAL_CT one)")
    ap.add_argument("--per-frame", action="store_true", help="also print each frame's figures")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    frames = ct_frames([n for n in a.frames.split(",") if n])
    report = {"frames": [f[0] for f in frames], "repeats": a.repeats, "modes": {}}
    print(f"{len(frames)} real 512² CT frames, median of {a.repeats} runs each, then the median over the frames")
    print(f"{'mode':16s} {'bpp':>6s} {'enc ms':>8s} {'dec ms':>8s} {'CharLS enc/dec':>16s} "
          f"{'OpenJPEG enc/dec':>17s}  {'enc/CharLS':>10s} {'dec/CharLS':>10s}  load")
    for text in a.modes.split(","):
        mode = Mode.parse(text)
        rows = []
        for label, v, bits, signed in frames:
            r = one(v, bits, signed, mode, a.repeats)
            rows.append(r)
            if a.per_frame:
                print(f"  {label:34s} {r['bpp']:6.3f} {r['enc']:8.1f} {r['dec']:8.1f} "
                      f"{r['charls']['enc']:7.1f}/{r['charls']['dec']:<7.1f} "
                      f"{r['openjpeg']['enc']:8.1f}/{r['openjpeg']['dec']:<7.1f}  ({r['charls']['setting']}, "
                      f"{r['charls']['bpp']:.3f} bpp)")
        med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
        m = {"bpp": med(lambda r: r["bpp"]), "enc": med(lambda r: r["enc"]), "dec": med(lambda r: r["dec"]),
             "charls_enc": med(lambda r: r["charls"]["enc"]), "charls_dec": med(lambda r: r["charls"]["dec"]),
             "charls_bpp": med(lambda r: r["charls"]["bpp"]),
             "openjpeg_enc": med(lambda r: r["openjpeg"]["enc"]), "openjpeg_dec": med(lambda r: r["openjpeg"]["dec"]),
             "openjpeg_bpp": med(lambda r: r["openjpeg"]["bpp"]), "load": os.getloadavg()[0], "per_frame": rows}
        if all("dec_fast" in r for r in rows):
            m["dec_fast"] = med(lambda r: r["dec_fast"])
        m["enc_ratio_charls"], m["dec_ratio_charls"] = m["enc"] / m["charls_enc"], m["dec"] / m["charls_dec"]
        report["modes"][str(mode)] = m
        print(f"{str(mode):16s} {m['bpp']:6.3f} {m['enc']:8.1f} {m['dec']:8.1f} "
              f"{m['charls_enc']:7.1f}/{m['charls_dec']:<8.1f} {m['openjpeg_enc']:8.1f}/{m['openjpeg_dec']:<8.1f} "
              f"{m['enc_ratio_charls']:9.1f}x {m['dec_ratio_charls']:9.1f}x  {m['load']:.2f}"
              + (f"   (fast float decode {m['dec_fast']:.1f} ms)" if "dec_fast" in m else ""))
    print("bpp: ours (median); CharLS at the same NEAR (near-lossless) or the NEAR nearest our bpp (lossy); "
          "OpenJPEG lossless or at our bpp")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
