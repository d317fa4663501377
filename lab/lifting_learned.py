"""Measurement: a learned correction of lab.wavelet_proto's CDF 9/7 lifting, bytes at the gate with the real coder.

Transform: wavelet_proto's 2-D 9/7 (same passes, same symmetric extension; vectorised numpy here, bit-identical with
no correction), plus, in every 1-D pass of every level, a correction added to the odd samples right after the first
predict step, computed from the even samples only (so the decoder subtracts it: exactly invertible):
c = sum over 3 lines x 4 even samples (positions 2(j-1) .. 2(j+2), lines r-1..r+1) of w x even. Taps sum to 0 (no DC
leak: unconstrained taps rounded to 1/256 cost +5..8 % in the rate proxy). Fitted pass by pass (level 1 rows,
level 1 columns, level 2 rows, ...) by IRLS least absolute deviation of the pass's final high output (rate proxy),
each slice normalised by its plain mean |high|. Gains (quantiser steps) are recomputed for the corrected transform.
  global     one tap set per (level, direction), 10 x 12 taps, trained on 61 slices/tiles of shared/data/train
             (CT 6, PT 6, MR 33 series, CR 8 and DX 8 tiles of 512^2; whole series held out: wg04 CT2 MR1 MR2(= the
             bundled MR2_UNCR) MR3 RG2 and the GE MPRAGE series), taps in 1/4096; 8-17 s on 2 cores, numpy only
  per-image  the same fit on the slice itself, taps in 1/256 sent as signed exp-Golomb side info (61-100 bytes for
             5 levels) behind a flag; the encoder sends them only where the proxy drops > 0.5 % (else 1 flag byte)
Coder, quantiser, guard, gate search and RD points are wavelet_proto's own (encode/decode/search patched to the
corrected transform by install()); one offset r per slice (the plain winner); plain rows and JPEG 2000's RD points
from `python -m lab.wavelet_proto --cache /tmp/wav_classical.json --json /tmp/wav_rows.json`.

    PYTHONPATH=. python -m lab.lifting_learned --json /tmp/lift_rows.json       (14 minutes on 2 shared cores)
    PYTHONPATH=. python -m lab.lifting_cnn --steps 2000                         (the CNN: 2.7 minutes of training)
    PYTHONPATH=. python -m lab.lifting_cnn --eval [--levels 1] --json ...       (12 minutes each)

Bytes at the default gates, ratio to plain 9/7, BD-rate vs plain 9/7 / vs JPEG 2000 (%, PSNR-bpp, no guard):
  file           plain 9/7        linear global           linear per-image         CNN all levels       CNN level 1
  693_UNCR   CT     19,549   19,626 1.004 +0.2/-4.9   19,550 1.000 +0.0/-5.1   1.012  +3.0/ -0.4   1.008  -1.1/ -6.4
  J2K_pixrep CT     17,119   17,299 1.011 +0.6/-6.7   17,120 1.000 +0.0/-7.2   1.274 +16.6/ +9.9   1.086  +4.7/ -3.3
  CT_small   CT      4,185    4,177 0.998 +0.1/-1.9    4,234 1.012 +1.2/-0.8   1.190 +16.9/+14.3   1.159 +13.9/+11.6
  wg04 CT2   CT     16,382   16,450 1.004 +0.4/-6.1   16,383 1.000 +0.0/-6.4   1.138  +4.7/ -2.6   1.048  +3.0/ -3.8
  MR2_UNCR   MR    232,425  232,385 1.000 -0.0/-5.4  232,426 1.000 +0.0/-5.4   1.180 +17.3/+11.3   1.156 +14.9/ +9.0
  MR_small   MR      1,688    1,688 1.000 -0.1/-5.4    1,793 1.062 +5.1/-0.5   1.096  +8.3/ +2.5   1.078  +5.9/ +0.3
  wg04 MR1   MR     72,897   72,924 1.000 +0.0/-5.7   72,898 1.000 +0.0/-5.7   1.110 +13.8/ +6.7   1.060  +8.1/ +1.6
  wg04 MR3   MR     29,336   29,525 1.006 +0.6/-1.8   28,314 0.965 -3.8/-6.2   1.431 +42.0/+38.4   1.337 +33.1/+29.9
  GE MPRAGE  MR      1,605    1,597 0.995 -0.1/ n/a    1,925 1.199 +14.7/ n/a  1.386 +41.7/  n/a   1.132 +14.4/  n/a
  RG1_UNCR   CR  1,665,915 1,666,114 1.000 +0.0/-6.8 1,665,916 1.000 +0.0/-6.9 1.067 +45.1/+37.2   1.021 +23.4/+15.4
  wg04 RG2   CR    351,341  351,205 1.000 -0.0/-7.8  351,342 1.000 +0.0/-7.7   1.146 +15.2/ +5.9   1.076  +7.4/ -1.0
  total CT          57,235     1.006  +0.3/-4.9          1.001  +0.3/-4.9      1.140 +10.3/ +5.3   1.054  +5.1/ -0.5
  total MR         337,951     1.000  +0.1/-4.6          0.998  +3.2/-4.4      1.187 +24.6/+14.8   1.150 +15.3/+10.2
  total CR       2,017,256     1.000  +0.0/-7.3          1.000  +0.0/-7.3      1.081 +30.2/+21.5   1.030 +15.4/ +7.2
  (plain 9/7 BD vs JPEG 2000: CT -5.2, MR -4.7, CR -7.3; an encoder trying both plain and per-image: CT 1.000,
  MR 0.997, CR 1.000.)
Findings. The 9/7 predict is already the best linear predictor of these slices: globally trained taps come out at
|w| <= 0.02 and move bytes by -0.5..+1.1 %; per-image taps lower the rate proxy 0-3 % (8 % on the MPRAGE slice) but
the real coder gains only on wg04 MR3 (-3.5 % bytes, BD -3.8 %) and side info sinks the small slices. The CNN
(lab.lifting_cnn) cuts the level-1 high band's L1 on 3 of 4 held-out CT slices by 9-20 % (MR3 +21 %), but, trained
open-loop on clean samples, it amplifies the quantisation noise of the decoded even samples: at equal D the bytes
fall 4-8 % and PSNR 0.35-1.05 dB with them (693_UNCR, CT2), a net loss everywhere but 693_UNCR (level 1: BD -1.1 %).
Nothing here approaches 10 %.
Product note: a shipped correction must be integer (taps k/2^s, c = floor((sum k e + 2^(s-1)) / 2^s)), as must the
whole inverse transform, because the guard holds only if the decoder rebuilds the encoder's reconstruction exactly.
"""
from __future__ import annotations

import argparse
import json
import math
import struct
import time
from pathlib import Path

import numpy as np

from lab import wavelet_proto as wp

C0, C1, C2, C3 = (float(c) for c in wp.LIFT)
Z = float(wp.ZETA)
DR = (-1, 0, 1)  # tap rows (neighbouring lines of the even samples)
DJ = (-1, 0, 1, 2)  # tap even samples: positions 2(j + dj) around the odd sample 2j + 1
NT = len(DR) * len(DJ)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
STATE: dict = {"taps": {}}  # (level, direction 0 rows / 1 columns) -> (len(DR), len(DJ)) taps


# ---------------------------------------------------------------------------------------------- transform
def _er(e, no):  # e[j + 1] for j < no, whole-sample symmetric at the right end
    return e[:, 1:no + 1] if e.shape[1] > no else np.concatenate([e[:, 1:], e[:, -1:]], 1)


def _predict(e, o, c):
    o += c * (e[:, :o.shape[1]] + _er(e, o.shape[1]))


def _update(e, o, c):
    ne, no = e.shape[1], o.shape[1]
    left = np.concatenate([o[:, :1], o[:, :ne - 1]], 1)
    right = o if ne == no else np.concatenate([o, o[:, -1:]], 1)
    e += c * (left + right)


def planes(e, no):
    """The shifted even-sample planes the taps weigh: (NT, m, no), symmetric extension both ways."""
    right = 2 if e.shape[1] == no else 1
    ep = np.pad(e, ((0, 0), (1, 0)), "reflect")
    ep = np.pad(ep, ((0, 0), (0, right)), "symmetric" if e.shape[1] == no else "reflect")
    ep = np.pad(ep, ((1, 1), (0, 0)), "reflect")
    m = e.shape[0]
    return np.stack([ep[1 + dr:1 + dr + m, 1 + dj:1 + dj + no] for dr in DR for dj in DJ])


def _corr(e, no, taps):
    return taps(e, no) if callable(taps) else np.tensordot(taps.ravel(), planes(e, no), 1)


def fpass(x, taps):
    """One forward 1-D pass along axis 1 of x (m x n): lows then highs."""
    e, o = x[:, 0::2].copy(), x[:, 1::2].copy()
    _predict(e, o, C0)
    if taps is not None:
        o += _corr(e, o.shape[1], taps)
    _update(e, o, C1)
    _predict(e, o, C2)
    _update(e, o, C3)
    return np.concatenate([e * Z, o / Z], 1)


def ipass(y, taps):
    ne = (y.shape[1] + 1) // 2
    e, o = y[:, :ne] / Z, y[:, ne:] * Z
    _update(e, o, -C3)
    _predict(e, o, -C2)
    _update(e, o, -C1)
    if taps is not None:
        o -= _corr(e, o.shape[1], taps)
    _predict(e, o, -C0)
    x = np.empty_like(y)
    x[:, 0::2], x[:, 1::2] = e, o
    return x


def rest_high(o):
    """The final high output of a correction plane o added after the first predict step (a linear map)."""
    e = np.zeros((o.shape[0], o.shape[1]))
    o = o.copy()
    _update(e, o, C1)
    _predict(e, o, C2)
    return o / Z


def dwt(a, hs, ws, inv, taps=None):
    """In place on a (float64), the corner-by-corner 2-D transform of wavelet_proto with corrections `taps`."""
    taps = STATE["taps"] if taps is None else taps
    L = len(hs) - 1
    for lev in (range(L - 1, -1, -1) if inv else range(L)):
        h, w = int(hs[lev]), int(ws[lev])
        tr, tc = taps.get((lev, 0)), taps.get((lev, 1))
        if inv:
            a[:h, :w] = ipass(np.ascontiguousarray(a[:h, :w].T), tc).T
            a[:h, :w] = ipass(a[:h, :w], tr)
        else:
            a[:h, :w] = fpass(a[:h, :w], tr)
            a[:h, :w] = fpass(np.ascontiguousarray(a[:h, :w].T), tc).T


_GAINS: dict = {}


def gains(shape):
    key = (tuple(shape), _key(STATE["taps"]))
    if key not in _GAINS:
        hs, ws = wp.sizes(shape)
        out = []
        for r0, r1, c0, c1, _, _ in wp.bands(shape):
            a = np.zeros(shape)
            a[(r0 + r1) // 2, (c0 + c1) // 2] = 1.0
            dwt(a, hs, ws, True)
            out.append(float((a * a).sum()))
        _GAINS[key] = tuple(out)
    return _GAINS[key]


def _key(taps):
    return tuple(sorted((k, id(v) if callable(v) else v.tobytes()) for k, v in taps.items()))


# ---------------------------------------------------------------------------------------------- fitting
def _pass_system(x):
    """(h0, A): the pass's final high output without correction and each tap's effect on it."""
    e, o = x[:, 0::2].copy(), x[:, 1::2].copy()
    _predict(e, o, C0)
    P = planes(e, o.shape[1])
    h0 = fpass(x, None)[:, e.shape[1]:]
    A = np.stack([rest_high(p) for p in P]).reshape(NT, -1)
    return h0.ravel(), A


def fit_pass(xs, irls=5, ridge=1e-3):
    """Taps minimising sum over images of |high|_1 / mean|high without correction| (IRLS from least squares)."""
    systems = [_pass_system(x) for x in xs]
    w = np.zeros(NT)
    for it in range(irls + 1):
        G, b = np.zeros((NT, NT)), np.zeros(NT)
        for h0, A in systems:
            s = np.abs(h0).mean() + 1e-9
            if it == 0:
                u = np.full(h0.shape, 1.0 / s)
            else:
                r = h0 + w @ A
                u = 1.0 / np.maximum(np.abs(r), 0.05 * s)
            u = u / (s * h0.size)
            Au = A * u
            G += Au @ A.T
            b -= Au @ h0
        G += ridge * np.trace(G) / NT * np.eye(NT)
        K = np.block([[G, np.ones((NT, 1))], [np.ones((1, NT)), np.zeros((1, 1))]])  # taps sum to 0: no DC leak
        w = np.linalg.solve(K, np.append(b, 0.0))[:NT]
    return w.reshape(len(DR), len(DJ))


def learn(values, levels=wp.MAX_LEVELS, scale=1024, clip=None, irls=5):
    """Greedy, pass by pass (level 1 rows, level 1 columns, level 2 rows, ...): each pass's taps fitted on the images
    transformed so far with the taps already chosen; taps rounded to 1/scale (clipped to +-clip/scale)."""
    states = [np.asarray(v, np.float64) for v in values]
    depth = [len(wp.sizes(v.shape)[0]) - 1 for v in values]
    taps = {}
    for lev in range(levels):
        idx = [i for i, d in enumerate(depth) if lev < d]
        if not idx:
            break
        for d in (0, 1):
            xs = [states[i] if d == 0 else np.ascontiguousarray(states[i].T) for i in idx]
            w = np.rint(fit_pass(xs, irls) * scale)
            if clip is not None:
                w = np.clip(w, -clip, clip)
            w[DR.index(0), DJ.index(0)] -= w.sum()  # the rounded taps still sum to 0
            taps[(lev, d)] = w / scale
            for i, x in zip(idx, xs):
                y = fpass(x, taps[(lev, d)])
                states[i] = y if d == 0 else y.T
        for i in idx:
            hs, ws = wp.sizes(values[i].shape)
            states[i] = np.ascontiguousarray(states[i][:hs[lev + 1], :ws[lev + 1]])
    return taps


def proxy(v, taps):
    """Rate proxy: sum over bands of |c| / step (step = 1 / sqrt(gain)) with the transform's own gains."""
    old = STATE["taps"]
    STATE["taps"] = taps
    try:
        a = np.asarray(v, np.float64).copy()
        hs, ws = wp.sizes(a.shape)
        dwt(a, hs, ws, False)
        return sum(math.sqrt(g) * np.abs(a[r0:r1, c0:c1]).sum()
                   for (r0, r1, c0, c1, o, _), g in zip(wp.bands(a.shape), gains(a.shape)) if o)
    finally:
        STATE["taps"] = old


# ---------------------------------------------------------------------------------------------- data
def training_paths() -> list[Path]:
    """Slices from shared/data/train, whole series held out: wg04 CT2/MR1/MR2(= bundled MR2_UNCR)/MR3/RG2, the GE
    MPRAGE series; a few slices per series (CT/PT: 6 of the one series each)."""
    rows = [l.split("\t") for l in (SHARED / "MANIFEST.tsv").read_text().splitlines()[1:]]
    held = {"CT2_UNC.dcm", "MR1_UNC.dcm", "MR2_UNC.dcm", "MR3_UNC.dcm", "RG2_JLSL.dcm"}
    mprage = next(r[10] for r in rows if "MP_RAGE" in r[0])
    by: dict[str, list[str]] = {}
    for r in rows:
        if Path(r[0]).name in held or r[10] == mprage or int(r[6]) != 1:
            continue
        by.setdefault(r[10], []).append(r[0])
    out = []
    for uid, ps in sorted(by.items()):
        ps = sorted(ps)
        k = 6 if ps[0].startswith(("CT/", "PT/")) else 1
        out += [SHARED / ps[i * len(ps) // k] for i in range(k)]
    return out


def training_set(tile=512):
    from lab.frames import frames_of, instance
    out = []
    for p in training_paths():
        inst, _ = instance(p)
        if inst is None:
            continue
        f = next(frames_of(inst))
        v = f.values.astype(np.float64)
        if min(v.shape) < 32:
            continue
        h, w = v.shape
        if max(h, w) > tile and f.modality in ("CR", "DX"):  # big radiographs: 4 tiles; others: the centre
            for r in sorted({max(0, h // 4 - tile // 2), max(0, 3 * h // 4 - tile // 2)}):
                for c in sorted({max(0, w // 4 - tile // 2), max(0, 3 * w // 4 - tile // 2)}):
                    out.append((f.modality, v[r:r + tile, c:c + tile]))
        else:
            r, c = max(0, (h - tile) // 2), max(0, (w - tile) // 2)
            out.append((f.modality, v[r:r + tile, c:c + tile]))
    return out


# ---------------------------------------------------------------------------------------------- the real coder
ORIG = (wp.encode, wp.decode, wp.guard_bytes)
MODE: dict = {"kind": "plain", "plain": {}, "global": {}, "fits": {}}
SCALE = 256  # per-image taps: integers / 256, sum 0 (the centre tap implied)


def _zz_gamma(bits: list, v: int):
    u = 2 * v if v >= 0 else -2 * v - 1
    bits.append(wp._gamma(u + 1))


def _side(taps) -> bytes:
    bits = ["1"]
    for k in sorted(taps):
        w = np.rint(taps[k] * SCALE).astype(int).ravel()
        for i, x in enumerate(w):
            if i != DR.index(0) * len(DJ) + DJ.index(0):
                _zz_gamma(bits, int(x))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big")


def _unside(data: bytes, shape) -> dict:
    s = bin(int.from_bytes(data, "big"))[2:].zfill(8 * len(data))
    if s[0] == "0":
        return {}
    pos, taps = 1, {}
    c = DR.index(0) * len(DJ) + DJ.index(0)
    for lev in range(len(wp.sizes(shape)[0]) - 1):
        for d in (0, 1):
            w = np.zeros(NT)
            for i in range(NT):
                if i == c:
                    continue
                z = 0
                while s[pos + z] == "0":
                    z += 1
                u = int(s[pos + z:pos + 2 * z + 1], 2) - 1
                pos += 2 * z + 1
                w[i] = u // 2 if u % 2 == 0 else -(u + 1) // 2
            w[c] = -w.sum()
            taps[(lev, d)] = w.reshape(len(DR), len(DJ)) / SCALE
    return taps


def _choose(v):
    """The encoder's taps and side info for this slice in the current mode."""
    if MODE["kind"] == "plain":
        return {}, b""
    if MODE["kind"] != "image":  # global taps or a trained network: nothing to send
        return MODE[MODE["kind"]], b""
    key = (v.shape, hash(v.tobytes()))
    if key not in MODE["fits"]:
        taps = learn([v], scale=SCALE)
        if proxy(v, taps) > 0.995 * proxy(v, {}):  # not worth it: a 0 bit, the plain transform
            taps = {}
        MODE["fits"][key] = (taps, _side(taps) if taps else b"\x00")
    return MODE["fits"][key]


def encode(values, D, offset=0.5, bound=None, theta=wp.THETA):
    taps, side = _choose(np.asarray(values, np.int64))
    STATE["taps"] = taps
    return ORIG[0](values, D, offset, bound, theta) + side + struct.pack("<H", len(side))


def decode(payload):
    n = struct.unpack("<H", payload[-2:])[0]
    side = payload[len(payload) - 2 - n:-2]
    STATE["taps"] = MODE[MODE["kind"]] if MODE["kind"] not in ("image", "plain") else (
        _unside(side, wp.HEAD.unpack_from(payload)[:2]) if side else {})
    return ORIG[1](payload[:len(payload) - 2 - n])


def guard_bytes(payload):
    return ORIG[2](payload[:len(payload) - 2 - struct.unpack("<H", payload[-2:])[0]])


def install():
    """Route wavelet_proto's encode/decode/search through the corrected transform (2 framing bytes per payload are
    measurement only: subtracted from every count)."""
    wp._dwt = lambda a, hs, ws, inv: dwt(a, hs, ws, inv)
    wp.gains = gains
    wp.encode, wp.decode, wp.guard_bytes = encode, decode, guard_bytes


def measure(name, config, plain_row, kind):
    from lab.bench_bd import BdRateError, bd_rate
    from quality import metrics
    MODE["kind"] = kind
    frame = wp._load(name)
    gate = config.gate_for(frame.modality)
    off = 0.375 if plain_row["wav0.375"] == plain_row["wav"] else 0.5
    t = time.perf_counter()
    got = wp.search(frame, gate, off)
    nbytes, D, guard = got[0] - 2, got[1], got[2]
    v = frame.values.astype(np.int64)
    _, side = _choose(v)
    wb, wpsnr = [], []
    for k in (-3, -2, -1, 0, 1, 2):
        p = encode(v, D * 2 ** (k / 1.5), off, None)
        wb.append(8 * (len(p) - 2) / v.size)
        wpsnr.append(metrics.psnr(frame.values, decode(p)))
    rd = plain_row["rd"]
    out = {"file": plain_row["file"], "modality": frame.modality, "kind": kind, "bytes": nbytes, "D": D,
           "guard": guard, "side": len(side), "wav_bpp": wb, "wav_psnr": wpsnr, "s": time.perf_counter() - t}
    for ref, (rb, rp) in (("plain", (rd["wav_bpp"], rd["wav_psnr"])), ("j2k", (rd["j2k_bpp"], rd["j2k_psnr"]))):
        try:
            out[f"bd_{ref}"] = bd_rate(rb, rp, wb, wpsnr, bpp_range=(1e-3, 64.0))
        except BdRateError:
            out[f"bd_{ref}"] = None
    return out


def main(argv=None):
    from configs import load_config
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain", type=Path, default=Path("/tmp/wav_rows.json"),
                    help="lab.wavelet_proto --json rows (the plain 9/7 figures and JPEG 2000's RD points)")
    ap.add_argument("--kinds", nargs="+", default=["global", "image"])
    ap.add_argument("--files", nargs="+", default=list(wp.FILES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    config = load_config()
    plain = {r["file"]: r for r in json.loads(args.plain.read_text())}
    t = time.perf_counter()
    MODE["global"] = learn([v for _, v in training_set()], scale=4096)
    print(f"global taps trained in {time.perf_counter() - t:.1f} s; largest |tap| "
          f"{max(np.abs(w).max() for w in MODE['global'].values()):.4f}", flush=True)
    install()
    rows = []
    for name in args.files:
        pr = plain[Path(name).name]
        for kind in args.kinds:
            r = measure(name, config, pr, kind)
            rows.append(r)
            bd = {k: (None if r[k] is None else round(r[k], 2)) for k in ("bd_plain", "bd_j2k")}
            print(f"{r['file'][:26]:26s} {r['modality']} {kind:6s} {r['bytes']:>9,d} (plain {pr['wav'][0]:>9,d}, "
                  f"{r['bytes'] / pr['wav'][0]:.4f}; guard {r['guard']:,d}, side {r['side']}) BD vs plain "
                  f"{bd['bd_plain']} %, vs j2k {bd['bd_j2k']} % (plain {pr['bd_rate'] and round(pr['bd_rate'], 2)}) "
                  f"[{r['s']:.0f} s]", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
