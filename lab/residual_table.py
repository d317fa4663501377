"""Per file: medzip lossless and near-lossless bytes against JPEG-XL (lossless, effort 7) and JPEG-LS at the same k.

    python -m lab.residual_table [FILE…]     (default: the held-out bundled files, plus the first slice of each
                                              training-folder series group when ../shared/data/train exists)
"""
from __future__ import annotations

import argparse
import glob
from pathlib import Path

from codec import api
from lab import anchors
from lab.frames import frames_of, instance
from lab.realdata import find

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
HELD_OUT = ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "MR2_UNCR.dcm", "CT_small.dcm", "MR_small.dcm")
TRAIN_GROUPS = ("CT/petct-tumorseg", "CT/wg04", "MR/dcm_qa_ge", "MR/dcm_qa_philips", "MR/dcm_qa_sag", "MR/wg04", "PT/*")


def default_files() -> list[Path]:
    files = [find(n) for n in HELD_OUT]
    for group in TRAIN_GROUPS:
        found = sorted(glob.glob(str(TRAIN / group / "*.dcm")))
        files += [Path(found[0])] if found else []
    return files


def row(path: Path, ks: tuple[int, ...]) -> dict | None:
    inst, _ = instance(path)
    if inst is None:
        return None
    frame = next(frames_of(inst))
    v, bits, signed = frame.values, frame.bits_stored, frame.signed
    found = anchors.available()
    out = {"file": path.name, "modality": frame.modality, "shape": list(v.shape)}
    for k in ks:
        ours = len(api.encode(v, "lossless" if k == 0 else f"near-lossless:{k}", bits, signed))
        setting = anchors.LOSSLESS if k == 0 else anchors.AnchorSetting.near_lossless(k)
        jls = len(found["jls"].encode(v, bits, signed, setting))
        out[f"k{k}"] = {"bytes": ours, "jpegls": jls, "per_jpegls": ours / jls}
        if k == 0:
            jxl = len(found["jxl"].encode(v, bits, signed, anchors.LOSSLESS))
            out["k0"].update(jpegxl=jxl, per_jpegxl=ours / jxl)
    return out


def totals(rows: list[dict], ks: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Per modality, the ratios of the summed bytes (what the issue's targets are stated in)."""
    out: dict[str, dict[str, float]] = {}
    for modality in sorted({r["modality"] for r in rows}):
        mine = [r for r in rows if r["modality"] == modality]
        out[modality] = {"lossless/JPEG-XL": sum(r["k0"]["bytes"] for r in mine) / sum(r["k0"]["jpegxl"] for r in mine)}
        for k in ks:
            out[modality][f"k={k}/JPEG-LS"] = sum(r[f"k{k}"]["bytes"] for r in mine) / sum(r[f"k{k}"]["jpegls"] for r in mine)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--ks", default="0,2,8")
    args = ap.parse_args(argv)
    ks = tuple(int(k) for k in args.ks.split(","))
    if 0 not in ks:
        ks = (0,) + ks
    print("file | modality | shape | lossless/JPEG-XL | " + " | ".join(f"k={k}/JPEG-LS" for k in ks))
    rows = []
    for path in args.files or default_files():
        r = row(path, ks)
        if r:
            rows.append(r)
            print(f"{r['file']} | {r['modality']} | {r['shape'][0]}x{r['shape'][1]} | {r['k0']['per_jpegxl']:.3f} | "
                  + " | ".join(f"{r[f'k{k}']['per_jpegls']:.3f}" for k in ks), flush=True)
    for modality, ratios in totals(rows, ks).items():
        print(f"total | {modality} | | " + " | ".join(f"{x:.3f}" for x in ratios.values()))


if __name__ == "__main__":
    main()
