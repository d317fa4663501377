"""Measurement: the product wavelet coder's rate-distortion curve against JPEG 2000 (BD-rate), the lossy line.

For the first frame of each file: wavelet:q without a guard at six rate points 16 apart (two-thirds of an octave
of quantiser step) around the q that quality.wavelet_search starts at for the file's default gate, and JPEG 2000
(OpenJPEG, lab.anchors) at the PSNR targets that land on the same PSNRs (OpenJPEG's target is on its own peak: the
offset is found at one point). BD-rate (lab.bench_bd, over the PSNR range both curves cover) < 0: the wavelet needs
fewer bits. "top passes": whether the mode's top rate point, wavelet:255 without a guard, passes the default gate
(PSNR, SSIM, max error); `auto` stores guarded points (wavelet:q/e), which hold the max error by construction.

    .venv/bin/python -m lab.wavelet_bd [FILE…] [--json OUT]          (about 3 minutes on 2 shared cores)

Measured 2026-12-02 (the proto's 11 files; BD-rate over the PSNR range both curves cover, 37-63 dB):
  CT   693 -3.2 %, J2K_pixelrep -5.3 %, CT_small (128²) +1.6 %, wg04 CT2 -4.8 %        mean -2.9 %
  MR   MR2 1024² -5.6 %, MR_small (64²) +1.2 %, wg04 MR1 -6.1 %, MR3 -2.0 %, GE MPRAGE n/a (J2K's points land
       at 26-38 dB, no overlap)                                                          mean -3.1 %
  CR   RG1 -5.4 %, wg04 RG2 -7.3 %                                                       mean -6.3 %
  wavelet:255 (no guard) passes the default gate on all 11. The two small slices lose to JPEG 2000 by the stream's
  header (34 bytes + 4 a band) at their 1-2 KB sizes; lab.wavelet_proto's float coder measured -5.2 / -4.7 / -7.3 %.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from codec import api
from codec.modes import WAVELET_Q_MAX, Mode
from configs import load_config
from lab import anchors
from lab.bench_bd import BdRateError, bd_rate
from lab.gate_bytes import _passes
from lab.wavelet_proto import FILES, _load
from quality import metrics
from quality.wavelet_search import first_q

OFFSETS = (-48, -32, -16, 0, 16, 32)


def curve(frame, q0: int) -> tuple[list[int], list[float], list[float]]:
    qs = sorted({min(max(q0 + d, 0), WAVELET_Q_MAX) for d in OFFSETS})
    bpp, psnr = [], []
    for q in qs:
        payload = api.encode(frame.values, Mode.wavelet(q), frame.bits_stored, frame.signed)
        bpp.append(8 * len(payload) / frame.values.size)
        psnr.append(metrics.psnr(frame.values, api.decode(payload)))
    return qs, bpp, psnr


def j2k_curve(frame, psnrs: list[float]) -> tuple[list[float], list[float]]:
    j2k = anchors.available()["j2k"]

    def at(target: float) -> tuple[float, float]:
        p = j2k.encode(frame.values, frame.bits_stored, frame.signed, anchors.AnchorSetting.lossy(target))
        d = j2k.decode(p, frame.bits_stored, frame.signed, frame.values.dtype)
        return 8 * len(p) / frame.values.size, metrics.psnr(frame.values, d)

    _, p0 = at(60.0)
    points = [at(float(np.clip(t + 60.0 - p0, 20.0, 120.0))) for t in psnrs]
    return [b for b, _ in points], [p for _, p in points]


def measure(name: str, config) -> dict | None:
    frame = _load(name)
    if frame is None:
        return None
    gate = config.gate_for(frame.modality)
    q0 = first_q(gate, metrics.psnr_peak(frame.values))
    qs, wb, wp = curve(frame, q0)
    jb, jp = j2k_curve(frame, wp)
    try:
        bd = bd_rate(jb, jp, wb, wp, bpp_range=(1e-3, 64.0))
    except BdRateError:
        bd = None
    top_payload = api.encode(frame.values, Mode.wavelet(WAVELET_Q_MAX), frame.bits_stored, frame.signed)
    top = _passes(frame.values, api.decode(top_payload), frame.bits_stored, gate)
    return {"file": frame.path.name, "modality": frame.modality, "q": qs, "wavelet_bpp": wb, "wavelet_psnr": wp,
            "j2k_bpp": jb, "j2k_psnr": jp, "bd_rate": bd, "top_passes": bool(top)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=list(FILES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    config = load_config()
    rows = []
    for name in args.files:
        row = measure(str(name), config)
        if row is None:
            continue
        rows.append(row)
        bd = "n/a" if row["bd_rate"] is None else f"{row['bd_rate']:+.1f} %"
        print(f"{row['file']:40s} {row['modality']} q {row['q'][0]}-{row['q'][-1]}  PSNR "
              f"{min(row['wavelet_psnr']):.1f}-{max(row['wavelet_psnr']):.1f} dB  BD-rate vs J2K {bd}  "
              f"top point passes the gate: {row['top_passes']}", flush=True)
    for modality in sorted({r["modality"] for r in rows}):
        mine = [r for r in rows if r["modality"] == modality]
        bds = [r["bd_rate"] for r in mine if r["bd_rate"] is not None]
        mean = f"{statistics.mean(bds):+.1f} %" if bds else "n/a"
        print(f"{modality}: mean BD-rate vs JPEG 2000 {mean} over {len(bds)} slices; top point passes on "
              f"{sum(r['top_passes'] for r in mine)} of {len(mine)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
