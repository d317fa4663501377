"""Residual layer vs JPEG-LS (CharLS) on the bundled real grayscale frames: bits per modality, lossless and k=1,2,4.

    .venv/bin/python -m lab.residual_vs_jpegls [--layer v2|v1] [--recon none|j2k] [--bpp 1.0] [--ks 0,1,2,4]

--layer: residual stream version 2 (codec/residual_raster.py, what new payloads use; recon none only) or 1
    (codec/residual.py, the interleaved layer of earlier releases).
--recon none: the residual layer alone (recon = zeros, i.e. a pure predictive coder).
--recon j2k: a lossy layer stand-in (JPEG 2000 at about --bpp) as recon; "total" adds its bytes to ours.
--recon model: the real path, codec.api.encode(frame, "lossless" | "near-lossless:k") (the residual layer the coder
    picks, no latents in new payloads); "total" is the whole payload, "residual" its residual-layer part.
Frames with identical pixels (the same image in several transfer syntaxes) are counted once; every frame of a
multi-frame file counts. JPEG-LS is CharLS through pyjpegls with the true BitsStored (as lab/anchors.py and a
DICOM encoder do; imagecodecs would declare 16 bits and weaken CharLS's contexts), signed values offset to unsigned.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from collections import defaultdict

import imagecodecs
import jpeg_ls
import numpy as np

from codec import residual, residual_raster
from codec.values import value_range
from lab.realdata import decoded_frames


def frames():
    seen = set()
    for path, ds, i, frame in decoded_frames():
        bits, signed = int(ds.BitsStored), bool(int(ds.get("PixelRepresentation", 0)))
        if bits > 16:
            continue  # JPEG-LS has no more than 16 bits
        lo, hi = value_range(bits, signed)
        if frame.min() < lo or frame.max() > hi:
            continue  # header and pixels disagree (a deliberate test file)
        key = hashlib.sha1(frame.astype(np.int64).tobytes()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        yield f"{path.name}[{i}]", str(ds.get("Modality", "OT") or "OT"), frame, bits, signed


def unsigned(frame, bits, signed):
    lo, _ = value_range(bits, signed)
    return (frame.astype(np.int64) - lo).astype(np.uint16 if bits > 8 else np.uint8)


def jpeg_ls_bytes(frame, k, bits, signed) -> bytes:
    u = unsigned(frame, bits, signed)
    return jpeg_ls.encode_buffer(u.tobytes(), u.shape[0], u.shape[1], 1, max(bits, 2), lossy_error=k)


def j2k_recon(frame, bits, signed, bpp):
    """JPEG 2000 decode at about `bpp` (bisection on its PSNR target) and its byte count."""
    u = unsigned(frame, bits, signed)
    lo, hi = 20.0, 140.0
    best = None
    for _ in range(8):
        mid = (lo + hi) / 2
        data = imagecodecs.jpeg2k_encode(u, level=mid, reversible=False, bitspersample=max(bits, 2))
        if 8 * len(data) / u.size <= bpp:
            best, lo = data, mid
        else:
            hi = mid
    if best is None:
        best = imagecodecs.jpeg2k_encode(u, level=20.0, reversible=False, bitspersample=max(bits, 2))
    rec = imagecodecs.jpeg2k_decode(best).astype(np.int64) + value_range(bits, signed)[0]
    return rec, len(best)


def model_path(frame, k, bits, signed):
    """(residual bytes, other payload bytes, decoded values, time after encode) through codec.api."""
    from codec import api

    payload = api.encode(frame, "lossless" if k == 0 else f"near-lossless:{k}", bits, signed)
    t1 = time.perf_counter()
    out = api.decode(payload)
    residual = api.sections(payload).residual  # the residual layer's share of the payload
    return residual, len(payload) - len(residual), out, t1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", choices=["v2", "v1"], default="v2")
    ap.add_argument("--recon", choices=["none", "j2k", "model"], default="none")
    ap.add_argument("--bpp", type=float, default=1.0)
    ap.add_argument("--ks", default="0,1,2,4")
    ap.add_argument("--max-pixels", type=int, default=10_000_000)
    ap.add_argument("--min-pixels", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated substrings: only files whose name has one")
    ap.add_argument("--skip", default="", help="comma-separated substrings: skip files whose name has one")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    ks = [int(x) for x in args.ks.split(",")]
    if args.layer == "v2" and args.recon == "j2k":
        ap.error("--layer v2 codes over a flat reconstruction only: use --recon none or --layer v1")
    layer = residual_raster if args.layer == "v2" else residual
    tot = defaultdict(lambda: np.zeros(4))  # (modality, k) -> ours residual bytes, lossy bytes, jls bytes, pixels
    t_enc = t_dec = 0.0
    px_timed = 0
    for name, modality, frame, bits, signed in frames():
        if not args.min_pixels <= frame.size <= args.max_pixels:
            continue
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        if args.skip and any(s in name for s in args.skip.split(",")):
            continue
        if args.recon == "j2k":
            recon, lossy_bytes = j2k_recon(frame, bits, signed, args.bpp)
        else:
            recon, lossy_bytes = np.zeros_like(frame), 0
        for k in ks:
            t0 = time.perf_counter()
            if args.recon == "model":
                data, lossy_bytes, out, t1 = model_path(frame, k, bits, signed)
            else:
                data = layer.encode_residual(frame, recon, k, bits, signed)
                t1 = time.perf_counter()
                out = layer.decode_residual(data, recon, k, bits, signed)
            t2 = time.perf_counter()
            assert int(np.abs(out - frame.astype(np.int64)).max()) <= k, name
            t_enc, t_dec, px_timed = t_enc + t1 - t0, t_dec + t2 - t1, px_timed + frame.size
            jls = jpeg_ls_bytes(frame, k, bits, signed)
            for key in ((modality, k), ("ALL", k)):
                tot[key] += (len(data), lossy_bytes, len(jls), frame.size)
            if args.verbose:
                print(f"{name:40s} {modality:6s} k={k} ours {8 * (len(data) + lossy_bytes) / frame.size:6.3f} bpp"
                      f"  jpeg-ls {8 * len(jls) / frame.size:6.3f} bpp", flush=True)
    print(f"layer: {args.layer}, recon: {args.recon}" + (f" (JPEG 2000 at <= {args.bpp} bpp; 'total' includes it)" if args.recon == "j2k" else ""))
    print(f"{'modality':8s} {'k':>2s} {'Mpixels':>8s} {'residual bpp':>12s} {'total bpp':>10s} {'JPEG-LS bpp':>11s} {'total/JLS':>9s}")
    for (modality, k), (res, lossy, jls, px) in sorted(tot.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0])):
        print(f"{modality:8s} {k:2d} {px / 1e6:8.2f} {8 * res / px:12.3f} {8 * (res + lossy) / px:10.3f} "
              f"{8 * jls / px:11.3f} {(res + lossy) / jls:9.3f}")
    print(f"residual encode {1e3 * t_enc / px_timed * 512 * 512:.0f} ms, decode {1e3 * t_dec / px_timed * 512 * 512:.0f} ms "
          f"per 512x512 (mean over all frames and k)")


if __name__ == "__main__":
    main()
