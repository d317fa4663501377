"""Encode/decode latency of the learned codec per 512x512 slice, next to JPEG 2000 (OpenJPEG) in the same run.

    python -m lab.bench_latency [--repeats 5] [--mode lossy:2]

Prints median milliseconds: our encode, our exact decode (the default, bit-identical everywhere), our fast float
decode (decode(payload, exact=False)), and JPEG 2000 (OpenJPEG via lab.anchors) at the same bpp.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pydicom  # noqa: E402

from codec import api  # noqa: E402
from lab import anchors  # noqa: E402
from lab.realdata import find  # noqa: E402
from quality import metrics  # noqa: E402


def _median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mode", default="lossy:2")
    a = ap.parse_args(argv)
    path = find("693_UNCR.dcm")
    ds = pydicom.dcmread(path)
    v, bits, signed = ds.pixel_array, int(ds.BitsStored), bool(ds.PixelRepresentation)
    payload = api.encode(v, a.mode, bits, signed)  # warm-up: builds and compiles the networks
    api.decode(payload)
    api.decode(payload, exact=False)
    enc_ms, payload = _median_ms(lambda: api.encode(v, a.mode, bits, signed), a.repeats)
    dec_ms, d = _median_ms(lambda: api.decode(payload), a.repeats)
    fast_ms, _ = _median_ms(lambda: api.decode(payload, exact=False), a.repeats)
    bpp = metrics.bpp(len(payload), v.size)
    # JPEG 2000 at the same bpp (the bench helper's rate matcher picks OpenJPEG's parameter)
    anchor = anchors.available()["j2k"]
    setting = anchors.RateMatcher(anchor, v, bits, signed).match(bpp).setting
    j2k_enc, j2k = _median_ms(lambda: anchor.encode(v, bits, signed, setting), a.repeats)
    j2k_dec, jd = _median_ms(lambda: anchor.decode(j2k, bits, signed, v.dtype), a.repeats)
    print(f"slice 512x512 {path.name}, {a.mode}: {bpp:.3f} bpp, PSNR {metrics.psnr(v, d, bits):.2f} dB")
    print(f"medzip encode        {enc_ms:8.1f} ms")
    print(f"medzip decode exact  {dec_ms:8.1f} ms")
    print(f"medzip decode fast   {fast_ms:8.1f} ms")
    print(f"JPEG 2000 encode     {j2k_enc:8.1f} ms  ({metrics.bpp(len(j2k), v.size):.3f} bpp, "
          f"PSNR {metrics.psnr(v, jd, bits):.2f} dB)")
    print(f"JPEG 2000 decode     {j2k_dec:8.1f} ms")
    print(f"ratio to JPEG 2000: encode {enc_ms / j2k_enc:.2f}x, decode exact {dec_ms / j2k_dec:.2f}x, "
          f"fast {fast_ms / j2k_dec:.2f}x")


if __name__ == "__main__":
    main()
