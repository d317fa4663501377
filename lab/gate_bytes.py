"""Bytes at the gate: medzip's `auto` against each classical codec searched for its smallest passing payload.

For the first frame of each file, under its modality's gate from the default config: medzip `auto` (quality.auto's
search, then the escalation ladder: quality.escalation.settle, as the flow does), JPEG-LS by k (CharLS near-lossless), JPEG 2000 by its
fixed-quality target, JPEG-XL by distance, and lossless for each when nothing lossy passes.

    python -m lab.gate_bytes FILE… [--json OUT] [--classical-from EARLIER.json]

--classical-from takes the classical codecs' rows of an earlier --json run (same files, same gates) instead of
searching them again (minutes per radiograph), so a change to medzip is measured against the same anchors.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from codec import api
from codec.modes import Mode
from configs import load_config
from lab import anchors
from lab.frames import frames_of, instance
from quality import auto, gates, metrics
from quality.escalation import settle
from quality.gates import gate_failures

# each lossy axis, from its loosest end to its strictest; bisection finds the loosest setting that passes
_AXES = {
    "jls": (lambda x: anchors.AnchorSetting.near_lossless(round(x)), 255.0, 1.0),  # k
    "j2k": (lambda x: anchors.AnchorSetting.lossy(x), 30.0, 110.0),  # OpenJPEG's PSNR target, dB
    "jxl": (lambda x: anchors.AnchorSetting.lossy(x), 4.0, 0.005),  # butteraugli distance
}
_STEPS = 10


def _passes(original: np.ndarray, decoded: np.ndarray, bits: int, gate) -> bool:
    return not gate_failures(metrics.figures(original, decoded, bits), gate)


def ours(frame, gate) -> tuple[int, str]:
    """What flows.chunk_work.encode_frame stores under `auto` with a lossless ceiling (quality.escalation.settle)."""
    peak = metrics.psnr_peak(frame.values)
    encoder = api.SliceEncoder(frame.values, frame.bits_stored, frame.signed)

    def attempt(mode):
        payload, decoded = encoder.encode_decoded(mode)
        if decoded is None:
            decoded = api.decode(payload)
        judged = gates.evaluate(frame.values, decoded, gate, mode, bits_stored=frame.bits_stored,
                                modality=frame.modality, rescale_slope=frame.rescale_slope)
        return auto.Outcome(mode, judged.passed, judged["psnr"], judged["ssim"], len(payload), bool(judged.integrity))

    done, _, _ = settle(auto.AUTO, frame.values, gate, peak, Mode.lossless(), attempt, lambda tried: tried)
    return done.size, str(done.mode)


def classical(anchor: anchors.Anchor, frame, gate) -> tuple[int, str] | None:
    """The smallest payload of `anchor` that passes the gate: its lossy axis bisected for the loosest passing
    setting (pass/fail is taken as monotone along the axis), lossless when no lossy setting passes."""
    tried: list[tuple[int, str]] = []

    def attempt(setting) -> bool:
        try:
            payload = anchor.encode(frame.values, frame.bits_stored, frame.signed, setting)
            decoded = anchor.decode(payload, frame.bits_stored, frame.signed, frame.values.dtype)
        except anchors.AnchorError:
            return False
        ok = setting.kind == "lossless" or _passes(frame.values, decoded, frame.bits_stored, gate)
        if ok:
            tried.append((len(payload), str(setting)))
        return ok

    if anchor.key in _AXES:
        make, loose, strict = _AXES[anchor.key]
        if anchor.key == "jls" and gate.max_error_max is not None:
            loose = float(min(loose, gate.max_error_max))
        log_axis = anchor.key == "jxl"
        a, b = (np.log(loose), np.log(strict)) if log_axis else (loose, strict)
        to_x = (lambda t: float(np.exp(t))) if log_axis else float
        if not attempt(make(to_x(a))):
            if attempt(make(to_x(b))):
                for _ in range(_STEPS):  # a fails, b passes
                    mid = (a + b) / 2
                    if anchor.key == "jls" and round(to_x(mid)) in (round(to_x(a)), round(to_x(b))):
                        break
                    if attempt(make(to_x(mid))):
                        b = mid
                    else:
                        a = mid
    attempt(anchors.LOSSLESS)
    return min(tried) if tried else None


def measure_frame(frame, gate, earlier: dict | None = None) -> dict:
    """One frame under `gate`: medzip auto's bytes and mode (and seconds), each classical codec's smallest passing
    payload (from `earlier`, a row of a previous run, when given), the best classical codec and medzip's ratio to it."""
    start = time.perf_counter()
    row = {"file": frame.path.name, "frame": frame.index, "modality": frame.modality,
           "shape": list(frame.values.shape), "medzip": ours(frame, gate)}
    row["medzip_s"] = round(time.perf_counter() - start, 2)
    for key, anchor in anchors.available().items():
        if key != "htj2k":  # HTJ2K here is lossless only: JPEG 2000 covers the same transform searched by quality
            row[key] = earlier[key] if earlier and key in earlier else classical(anchor, frame, gate)
    best = min(((v[0], k) for k, v in row.items() if k in ("j2k", "jls", "jxl") and v), default=None)
    row["best_classical"] = best[1] if best else None
    row["ratio_to_best"] = row["medzip"][0] / best[0] if best else None
    return row


def measure(path: Path, config, earlier: dict | None = None) -> dict | None:
    inst, why = instance(path)
    if inst is None:
        return None
    frame = next(frames_of(inst))
    return measure_frame(frame, config.gate_for(frame.modality), earlier)


def totals(rows: list[dict]) -> dict[str, dict]:
    """Per modality: summed bytes of medzip auto, of the best classical codec per frame and of each codec, and
    medzip's ratio to the summed best (what the issue's target is stated in)."""
    out: dict[str, dict] = {}
    for modality in sorted({r["modality"] for r in rows}):
        mine = [r for r in rows if r["modality"] == modality and r["best_classical"]]
        if not mine:
            continue
        best = sum(r[r["best_classical"]][0] for r in mine)
        entry = {"frames": len(mine), "medzip": sum(r["medzip"][0] for r in mine), "best": best}
        for key in ("jls", "j2k", "jxl"):
            if all(r.get(key) for r in mine):
                entry[key] = sum(r[key][0] for r in mine)
        entry["ratio_to_best"] = entry["medzip"] / best
        out[modality] = entry
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--classical-from", type=Path, help="reuse the classical rows of an earlier --json run")
    args = ap.parse_args(argv)
    config = load_config()
    earlier = {r["file"]: r for r in json.loads(args.classical_from.read_text())} if args.classical_from else {}
    rows = []
    for path in args.files:
        row = measure(path, config, earlier.get(path.name))
        if row is None:
            continue
        rows.append(row)
        print(f"{row['file']:32s} {row['modality']:3s} medzip {row['medzip'][0]:>9,d} B ({row['medzip'][1]}, "
              f"{row['medzip_s']:.1f} s)  "
              + "  ".join(f"{k} {v[0]:>9,d} B ({v[1]})" for k in ("jls", "j2k", "jxl") if (v := row.get(k)))
              + f"  medzip/best {row['ratio_to_best']:.3f}", flush=True)
    for modality, t in totals(rows).items():
        print(f"total {modality}: medzip {t['medzip']:,d} B, best classical per frame {t['best']:,d} B, "
              f"medzip/best {t['ratio_to_best']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
