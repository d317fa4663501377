"""Freeze a trained model into the shipped weights file: float weights (encoder side), the exact fixed-point
decoder networks and the integer entropy tables, all in one npz (codec/weights/).

    python -m lab.export FLOAT_WEIGHTS.npz codec/weights/medzip-hp-v1.npz --meta meta.json
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from codec import entropy, fixed
from codec import networks as cm

MODEL_NAME = "medzip-hp-v1"


def scale_grid() -> tuple[int, int]:
    """(L0, step) of the log-scale index grid as integers at scale 2**FA: log sigma_s = (L0 + s*step) / 2**FA."""
    one = 1 << fixed.FA
    l0 = round(cm.LOG_SCALE_MIN * one)
    step = round((cm.LOG_SCALE_MAX - cm.LOG_SCALE_MIN) / (cm.SCALE_LEVELS - 1) * one)
    return l0, step


def _softplus_free(d: dict, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    beta = np.square(d[f"{prefix}/beta_p"].astype(np.float64)) + 1e-4
    gamma = np.square(d[f"{prefix}/gamma_p"].astype(np.float64))
    return beta, gamma


def export(float_weights: Path, out: Path, meta: dict | None = None) -> Path:
    d = dict(np.load(float_weights))
    arrays: dict[str, np.ndarray] = {f"float/{k}": v.astype(np.float32) for k, v in d.items()}
    for i in range(3):
        layer = fixed.quantize_conv(d[f"h_s/hs_conv{i}/kernel"], d[f"h_s/hs_conv{i}/bias"])
        arrays[f"fx/hs_conv{i}/w"], arrays[f"fx/hs_conv{i}/b"] = layer["w"], layer["b"]
    for i in range(4):
        layer = fixed.quantize_conv(d[f"g_s/gs_conv{i}/kernel"], d[f"g_s/gs_conv{i}/bias"])
        arrays[f"fx/gs_conv{i}/w"], arrays[f"fx/gs_conv{i}/b"] = layer["w"], layer["b"]
    for i in range(3):
        beta, gamma = _softplus_free(d, f"g_s/gs_igdn{i}")
        layer = fixed.quantize_igdn(beta, gamma)
        arrays[f"fx/gs_igdn{i}/g"], arrays[f"fx/gs_igdn{i}/b"] = layer["g"], layer["b"]
    arrays["fx/inv_gain"] = np.round(np.exp(d["rates/rates/log_inv_gain"].astype(np.float64)) * (1 << fixed.FA))

    # entropy tables
    l0, step = scale_grid()
    sig = [math.exp((l0 + s * step) / (1 << fixed.FA)) for s in range(cm.SCALE_LEVELS)]
    radius = [max(2, math.ceil(6 * s)) for s in sig]
    y_freqs = [entropy.gaussian_table(0.0, s, -r, r) for s, r in zip(sig, radius)]
    mu = d["z_prior/z_prior/mean"].astype(np.float64)
    sc = np.exp(d["z_prior/z_prior/log_scale"].astype(np.float64))
    z_lo, z_freqs = [], []
    for m, s in zip(mu, sc):
        lo, hi = math.floor(m - 6 * s) - 1, math.ceil(m + 6 * s) + 1
        z_lo.append(lo)
        z_freqs.append(entropy.gaussian_table(float(m), float(s), lo, hi))
    arrays.update(entropy.Tables.to_arrays(z_lo, z_freqs, radius, y_freqs))
    info = {"name": MODEL_NAME, "Q": cm.Q, "M": cm.M, "NZ": cm.NZ, "scale_l0": l0, "scale_step": step,
            "scale_levels": cm.SCALE_LEVELS, "FA": fixed.FA, "FW": fixed.FW, "FG": fixed.FG, **(meta or {})}
    arrays["meta_json"] = np.frombuffer(json.dumps(info, sort_keys=True).encode(), np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("float_weights", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--meta", type=Path, default=None, help="JSON merged into the model metadata")
    a = ap.parse_args(argv)
    meta = json.loads(a.meta.read_text()) if a.meta else None
    print(export(a.float_weights, a.out, meta))


if __name__ == "__main__":
    main()
