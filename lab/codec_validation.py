"""Measure the shipped codec on the held-out validation files (lab/split.py): bpp / PSNR / SSIM per rate point,
next to JPEG 2000 at the same size; lossless and near-lossless bits next to JPEG-LS. Writes JSON, prints a table.

    python -m lab.codec_validation [--out validation.json] [--files ...] [--modes lossy:0,...]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pydicom  # noqa: E402

from codec import api  # noqa: E402
from codec.modes import Mode  # noqa: E402
from codec.values import value_range  # noqa: E402
from lab import anchors as classical  # noqa: E402
from lab.realdata import find  # noqa: E402
from quality import metrics  # noqa: E402

DEFAULT = ["693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "MR2_UNCR.dcm", "RG1_UNCR.dcm"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--files", nargs="*", default=DEFAULT)
    ap.add_argument("--modes", default="lossy:0,lossy:1,lossy:2,lossy:3,lossy:4,lossless,near-lossless:2")
    a = ap.parse_args(argv)
    rows = []
    anchors = classical.available()
    for name in a.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(find(name))
            v = ds.pixel_array
        bits, signed = int(ds.BitsStored), bool(ds.PixelRepresentation)
        lo, hi = value_range(bits, signed)
        if v.min() < lo or v.max() > hi:
            bits, signed = v.dtype.itemsize * 8, v.dtype.kind == "i"
        for mode in a.modes.split(","):
            t = time.perf_counter()
            p = api.encode(v, mode, bits, signed)
            t1 = time.perf_counter()
            d = api.decode(p)
            t2 = time.perf_counter()
            r = {"file": name, "modality": str(ds.get("Modality", "")), "shape": list(v.shape), "bits": bits,
                 "mode": mode, "bpp": metrics.bpp(len(p), v.size), "psnr": metrics.psnr(v, d, bits),
                 "ssim": metrics.ssim(v, d), "max_error": metrics.max_error(v, d),
                 "encode_ms": (t1 - t) * 1e3, "decode_ms": (t2 - t1) * 1e3}
            if mode.startswith("lossy"):  # JPEG 2000 at the same bpp (the bench helper's rate matcher)
                m = classical.RateMatcher(anchors["j2k"], v, bits, signed).match(r["bpp"])
                jd = anchors["j2k"].decode(m.payload, bits, signed, v.dtype)
                r["j2k_bpp"], r["j2k_psnr"] = m.bpp, metrics.psnr(v, jd, bits)
            else:
                k = Mode.parse(mode).max_error_bound
                setting = classical.AnchorSetting.lossless() if k == 0 else classical.AnchorSetting.near_lossless(k)
                j = anchors["jls"].encode(v, bits, signed, setting)
                r["jpegls_bpp"] = metrics.bpp(len(j), v.size)
            rows.append(r)
            extra = (f"J2K {r['j2k_bpp']:.3f} bpp {r['j2k_psnr']:.2f} dB" if "j2k_bpp" in r
                     else f"JPEG-LS {r['jpegls_bpp']:.3f} bpp")
            print(f"{name:28s} {mode:16s} {r['bpp']:6.3f} bpp  PSNR {r['psnr']:6.2f}  SSIM {r['ssim']:.4f}  "
                  f"maxerr {r['max_error']:5d}  enc {r['encode_ms']:7.0f} ms dec {r['decode_ms']:7.0f} ms | {extra}",
                  flush=True)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
