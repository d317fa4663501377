"""Residual layer: bit-exact lossless and |e| <= k near-lossless on the real bundled frames, edge cases, refusals.

The default run covers every frame of up to 70k pixels (the small CT/MR/CR/NM/RT files, multi-frame included)
lossless and at one of k = 1, 2, 4 in turn, plus two 512x512 slices (signed CT, MR) at k = 0 and 4; `-m slow` runs
every grayscale frame of pydicom-data, deid-data and pydicom's test files at every k (and a 3072x3072 frame).
The stand-in recon is a cheap 4x4 block mean of the frame.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.errors import ResidualError
from codec.residual import decode_residual, encode_residual
from codec.values import value_range
from tests.realdata import grayscale_image_files

KS = (0, 1, 2, 4)


def block_mean(frame: np.ndarray, b: int = 4) -> np.ndarray:
    """A cheap stand-in for the lossy layer's reconstruction: the frame's b x b block means."""
    h, w = frame.shape
    hp, wp = -(-h // b) * b, -(-w // b) * b
    padded = np.pad(frame.astype(np.int64), ((0, hp - h), (0, wp - w)), mode="edge")
    means = padded.reshape(hp // b, b, wp // b, b).mean(axis=(1, 3)).round().astype(np.int64)
    return np.repeat(np.repeat(means, b, 0), b, 1)[:h, :w]


@lru_cache(maxsize=None)
def real_frames(max_pixels: int | None = None) -> tuple:
    """(name, frame, bits_stored, signed) of every decodable grayscale frame, optionally only the small ones."""
    out = []
    for path in grayscale_image_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if max_pixels is not None:
                    head = pydicom.dcmread(path, stop_before_pixels=True)
                    if int(head.Rows) * int(head.Columns) > max_pixels:
                        continue
                ds = pydicom.dcmread(path)
                arr = ds.pixel_array
        except Exception:
            continue  # files the reader cannot decode are the dicom_io tests' business
        bits, signed = int(ds.BitsStored), bool(int(ds.get("PixelRepresentation", 0)))
        arr = arr.reshape((-1,) + arr.shape[-2:])
        for i, frame in enumerate(arr):
            frame = frame.astype(frame.dtype.newbyteorder("="))
            lo, hi = value_range(bits, signed)
            if frame.min() < lo or frame.max() > hi:
                # header and pixels disagree (J2K_pixelrep_mismatch): code them at the dtype's own range
                bits, signed = frame.dtype.itemsize * 8, frame.dtype.kind == "i"
            out.append((f"{path.name}[{i}]", frame, bits, signed))
    return tuple(out)


def roundtrip(frame, recon, k, bits, signed):
    data = encode_residual(frame, recon, k, bits, signed)
    out = decode_residual(data, recon, k, bits, signed)
    err = np.abs(out - frame.astype(np.int64))
    assert out.shape == frame.shape
    assert int(err.max()) <= k
    if k == 0:
        assert np.array_equal(out, frame.astype(np.int64))
    return data, out


def check_frames(frames, ks):
    assert frames
    for i, (name, frame, bits, signed) in enumerate(frames):
        recon = block_mean(frame)
        for k in ks(i) if callable(ks) else ks:
            try:
                roundtrip(frame, recon, k, bits, signed)
            except AssertionError as exc:
                raise AssertionError(f"{name} k={k}: {exc}") from None


def test_real_small_frames():
    frames = real_frames(70_000)
    assert len(frames) > 50  # the many small CT/MR/CR files and every frame of the multi-frame ones
    check_frames(frames, lambda i: (0, KS[1 + i % 3]))


def test_real_512_slices_lossless_and_k4():
    wanted = {"693_UNCI.dcm[0]", "MR-SIEMENS-DICOM-WithOverlays.dcm[0]"}
    frames = [f for f in real_frames(512 * 512) if f[0] in wanted]
    assert len(frames) == 2
    check_frames(frames, (0, 4))


@pytest.mark.slow
def test_every_real_frame_every_k():
    check_frames(list(real_frames()), KS)


def test_compresses_real_ct_better_than_raw():
    name, frame, bits, signed = next(f for f in real_frames(512 * 512) if f[0] == "693_UNCI.dcm[0]")
    data = encode_residual(frame, np.zeros_like(frame), 0, bits, signed)
    assert 8 * len(data) / frame.size < 4.0  # 14-bit CT: a working coder lands near 1.5-3 bpp


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (2, 3), (17, 33), (64, 1), (5, 130)])
@pytest.mark.parametrize("k", [0, 2])
def test_odd_shapes(shape, k):
    rng = np.random.default_rng(sum(shape) + k)
    frame = rng.integers(0, 4096, size=shape).astype(np.uint16)
    roundtrip(frame, block_mean(frame), k, 12, False)
    roundtrip(frame, np.zeros_like(frame), k, 12, False)


@pytest.mark.parametrize("k", [0, 1, 7])
def test_constant_image(k):
    frame = np.full((40, 50), 1234, dtype=np.uint16)
    data, _ = roundtrip(frame, frame, k, 12, False)
    assert len(data) < 100
    roundtrip(frame, np.zeros_like(frame), k, 12, False)


@pytest.mark.parametrize("k", [0, 1, 4])
def test_signed_16_bit_extremes(k):
    rng = np.random.default_rng(k)
    frame = rng.choice(np.array([-32768, 32767, -1, 0], dtype=np.int16), size=(33, 47))
    roundtrip(frame, np.zeros_like(frame), k, 16, True)
    roundtrip(frame, -frame.astype(np.int64) - 1, k, 16, True)  # recon as far off as the range allows


@pytest.mark.parametrize("bits,signed", [(1, False), (8, False), (12, False), (15, True), (32, False), (32, True)])
@pytest.mark.parametrize("k", [0, 3])
def test_values_at_bit_depth_limits(bits, signed, k):
    lo, hi = value_range(bits, signed)
    dtype = np.int64
    yy, xx = np.mgrid[:24, :31]
    frame = np.where((yy + xx) % 2, hi, lo).astype(dtype)
    frame[5:9, 5:20] = (lo + hi) // 2
    far = np.where(frame == lo, hi, lo)
    roundtrip(frame, far, k, bits, signed)
    roundtrip(frame, frame, k, bits, signed)


def test_recon_far_off_and_out_of_range():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 4096, size=(70, 90)).astype(np.uint16)
    for recon in (np.full(frame.shape, 4095), np.full(frame.shape, -10**9), 4095 - frame.astype(np.int64)):
        for k in (0, 4):
            roundtrip(frame, recon, k, 12, False)


def test_deterministic_bytes():
    frame, recon, bits, signed = _ct_small()
    assert encode_residual(frame, recon, 1, bits, signed) == encode_residual(frame, recon, 1, bits, signed)


def _ct_small():
    name, frame, bits, signed = next(f for f in real_frames(70_000) if f[0] == "CT_small.dcm[0]")
    return frame, block_mean(frame), bits, signed


def test_other_recon_is_refused():
    frame, recon, bits, signed = _ct_small()
    data = encode_residual(frame, recon, 0, bits, signed)
    other = recon.copy()
    other[3, 4] += 1
    with pytest.raises(ResidualError, match="recon"):
        decode_residual(data, other, 0, bits, signed)


def test_other_parameters_are_refused():
    frame, recon, bits, signed = _ct_small()
    data = encode_residual(frame, recon, 2, bits, signed)
    with pytest.raises(ResidualError, match="k=2"):
        decode_residual(data, recon, 1, bits, signed)
    with pytest.raises(ResidualError):
        decode_residual(data, recon[:, :-1], 2, bits, signed)
    with pytest.raises(ResidualError, match="magic"):
        decode_residual(b"XXXX" + data[4:], recon, 2, bits, signed)


def test_truncated_and_corrupted_streams_never_decode_silently():
    frame, recon, bits, signed = _ct_small()
    data = encode_residual(frame, recon, 0, bits, signed)
    with pytest.raises(ResidualError):
        decode_residual(data[:10], recon, 0, bits, signed)
    with pytest.raises(ResidualError):
        decode_residual(data[: len(data) // 2], recon, 0, bits, signed)
    rng = np.random.default_rng(0)
    for pos in rng.integers(30, len(data), size=25):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_residual(bytes(bad), recon, 0, bits, signed)
        except ResidualError:
            continue
        assert np.array_equal(out, frame)  # a flip in unused trailing bits may decode to the right image


def test_bad_input_is_refused():
    frame = np.full((8, 8), 5000, dtype=np.uint16)
    with pytest.raises(ResidualError, match="exceed the BitsStored=12"):
        encode_residual(frame, frame, 0, 12, False)
    with pytest.raises(ResidualError, match="shape"):
        encode_residual(frame, frame[:4], 0, 16, False)
    with pytest.raises(ResidualError, match="k must"):
        encode_residual(frame, frame, -1, 16, False)
    with pytest.raises(ResidualError, match="integers"):
        encode_residual(frame.astype(np.float32), frame, 0, 16, False)
    with pytest.raises(ResidualError, match="2-D"):
        encode_residual(frame.ravel(), frame.ravel(), 0, 16, False)


@st.composite
def cases(draw):
    h = draw(st.integers(1, 24))
    w = draw(st.integers(1, 24))
    bits = draw(st.integers(1, 16))
    signed = draw(st.booleans())
    lo, hi = value_range(bits, signed)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    smooth = draw(st.booleans())
    if smooth:
        base = np.cumsum(np.cumsum(rng.integers(-3, 4, size=(h, w)), 0), 1) + (lo + hi) // 2
        frame = np.clip(base, lo, hi)
    else:
        frame = rng.integers(lo, hi + 1, size=(h, w))
    noise = draw(st.integers(0, 1 << bits))
    recon = frame + rng.integers(-noise, noise + 1, size=(h, w))
    return frame, recon, draw(st.integers(0, 6)), bits, signed


@settings(max_examples=60, deadline=None)
@given(cases())
def test_property_bound_holds(case):
    frame, recon, k, bits, signed = case
    roundtrip(frame, recon, k, bits, signed)


@pytest.mark.slow
def test_3072_square_bounded_memory():
    import tracemalloc

    rng = np.random.default_rng(1)
    frame = np.clip(np.cumsum(rng.integers(-2, 3, size=(3072, 3072)), axis=1) + 2048, 0, 4095).astype(np.uint16)
    recon = block_mean(frame, 8)
    tracemalloc.start()
    data = encode_residual(frame, recon, 1, 12, False)
    out = decode_residual(data, recon, 1, 12, False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert int(np.abs(out - frame).max()) <= 1
    assert peak < 2.5 * 2**30  # about 30 int64 copies of the frame at most
