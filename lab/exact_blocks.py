"""Residual stream version 4's exact blocks against version 3: bytes, PSNR, SSIM and the largest k that passes the
slice's default gate, per file, the same walk with and without the block map (codec/residual_raster.py).

    python -m lab.exact_blocks [FILE…]     (default: RG2 from the training folder when present, 693_UNCR, MR2_UNCR,
                                            CT_small, RG1_UNCR)

Measured (2026-12-02; bytes v3 → v4, PSNR / SSIM v3 → v4):
  RG2_JLSL (CR 2140×1760, 10 bit, 30 % of it constant 8² blocks: a collimated border at 0)
    k = 4  622,087 → 622,977 B   50.54 → 52.57 dB   0.9707 → 0.9947   (CR gate 48 dB / 0.98: fails → passes)
    k = 5  546,555 → 547,337 B   48.93 → 50.83 dB   0.9635 → 0.9921   (fails → passes)
    k = 6  487,175 → 487,901 B   47.46 → 49.40 dB   0.9510 → 0.9891   (fails → passes)
    largest passing k: 3 → 6 or more, i.e. about 0.7x the bytes at the gate
  693_UNCR (CT 512², 19 % constant blocks: the padding outside the field of view)
    k = 2 39,747 → 39,867 B (71.05 → 71.30 dB); k = 8 20,055 → 20,243 (61.52 → 61.65); k = 24 11,027 → 11,163
    (52.54 → 53.01 dB, 0.9915 → 0.9921): +0.3 to +1.2 % bytes (mostly the map), the same largest k (max error binds)
  MR2_UNCR (MR 1024², 19 %): k = 2 315,727 → 315,627 B, SSIM 0.9926 → 0.9978; k = 4 239,495 → 239,351,
    48.10 → 48.31 dB, 0.9870 → 0.9930 (PSNR binds at k = 4 either way)
  CT_small, RG1_UNCR: no constant block: version 3, unchanged.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pydicom

from codec import residual_raster as R
from configs import load_config
from lab.realdata import find
from quality import metrics
from quality.gates import gate_failures

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
DEFAULT = ("693_UNCR.dcm", "MR2_UNCR.dcm", "CT_small.dcm", "RG1_UNCR.dcm")
KS = (2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 30, 40)


def default_files() -> list[Path]:
    rg2 = TRAIN / "CR" / "wg04" / "RG2_JLSL.dcm"
    return ([rg2] if rg2.exists() else []) + [find(n) for n in DEFAULT]


def report(path: Path) -> None:
    ds = pydicom.dcmread(path)
    v = ds.pixel_array.reshape((-1, ds.Rows, ds.Columns))[0].astype(np.int64)
    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    gate = load_config().gate_for(str(ds.Modality))
    recon = np.full(v.shape, int(v.min()), np.int64)
    share = R._expand(R.constant_blocks(v), v.shape).mean()
    print(f"{path.name} {ds.Modality} {v.shape}: constant {R.EXACT_BLOCK}² blocks cover {share:.1%}")
    passing = {3: 0, 4: 0}
    for k in KS:
        if gate.max_error_max is not None and k > gate.max_error_max:
            break
        cells = []
        for version in (3, 4):
            data = R.encode_residual(v, recon, k, bits, signed, version=version if share else 3)
            out = R.decode_residual(data, recon, k, bits, signed)
            f = metrics.figures(v, out, bits)
            ok = not gate_failures(f, gate)
            passing[version] = k if ok else passing[version]
            cells.append(f"{len(data):9,d} B {f['psnr']:6.2f} dB {f['ssim']:.4f} {'pass' if ok else 'fail'}")
        print(f"  k = {k:2d}  v3 {cells[0]}  |  v4 {cells[1]}")
    print(f"  largest passing k: version 3 {passing[3]}, version 4 {passing[4]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path)
    for path in ap.parse_args().files or default_files():
        report(path)


if __name__ == "__main__":
    main()
