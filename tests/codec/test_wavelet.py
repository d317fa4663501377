"""codec.wavelet: integer CDF 9/7 lifting, dead-zone quantiser with fixed-point band steps, adaptive band coding,
max-error guard."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from codec import wavelet as W
from codec import wavelet_header as H
from codec import wavelet_kernels as K
from codec.errors import CodecError, WaveletError
from tests.helpers.slices import real_slice

KEPT = Path(__file__).parents[1] / "data" / "payloads"


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, "<i8").tobytes()).hexdigest()


def rng_of(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def ct():
    v, _, _ = real_slice("CT_small.dcm")
    return v


@pytest.fixture(scope="module")
def mr():
    v, _, _ = real_slice("MR_small.dcm")
    return v


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (17, 16), (16, 17), (33, 64), (65, 47)])
def test_integer_lifting_inverts_exactly(shape):
    """Down to 1 x 1 (more levels than the codec's MIN_SIDE allows, so tiny odd sides are lifted too)."""
    a = rng_of(sum(shape)).integers(-(1 << 20), 1 << 20, shape).astype(np.int64)
    hs, ws = [shape[0]], [shape[1]]
    while len(hs) < 6 and max(hs[-1], ws[-1]) > 1:
        hs.append((hs[-1] + 1) // 2)
        ws.append((ws[-1] + 1) // 2)
    hs, ws = np.array(hs), np.array(ws)
    b = a.copy()
    K.dwt(b, hs, ws, False)
    assert not np.array_equal(a, b) or a.size == 1
    K.dwt(b, hs, ws, True)
    assert np.array_equal(a, b)
    c = a.copy()  # and the codec's own levels
    K.dwt(c, *K.sizes(shape), False)
    K.dwt(c, *K.sizes(shape), True)
    assert np.array_equal(a, c)


def test_band_gains_match_a_2d_impulse():
    """The separable gains equal the energy of an impulse inverted through the integer transform (large impulse)."""
    shape = (40, 52)
    hs, ws = K.sizes(shape)
    for (r0, r1, c0, c1, _, _), g in zip(K.bands(shape), W.gains(shape)):
        a = np.zeros(shape, np.int64)
        a[(r0 + r1) // 2, (c0 + c1) // 2] = 1 << 24
        K.dwt(a, hs, ws, True)
        assert np.sum((a / (1 << 24)) ** 2) == pytest.approx(g, rel=1e-3)  # the rounded lifting constants


@pytest.mark.parametrize("q", [100, 150, 200])
def test_real_slices_keep_the_bound(ct, mr, q):
    for v, bound in ((ct, 30), (mr, 20), (ct, 3)):
        lo, hi = int(v.min()), int(v.max())
        s = W.encode_wavelet(v, q, bound, lo, hi)
        d = W.decode_wavelet(s, lo, hi)
        assert d.dtype == np.int64 and d.shape == v.shape
        assert np.abs(d - v).max() <= bound
        assert W.stream_bound(s) == bound and W.is_wavelet_stream(s)


@pytest.mark.parametrize("q", [0, 120])
def test_bound_zero_is_lossless(ct, mr, q):
    for v in (ct, mr):
        lo, hi = int(v.min()), int(v.max())
        assert np.array_equal(W.decode_wavelet(W.encode_wavelet(v, q, 0, lo, hi), lo, hi), v)


def test_decode_is_a_pure_function_of_the_bytes_and_equals_the_encoders_reconstruction(mr):
    lo, hi = int(mr.min()), int(mr.max())
    s = W.encode_wavelet(mr, 140, None, lo, hi, 0.5)
    d1, d2 = W.decode_wavelet(s, lo, hi), W.decode_wavelet(bytes(s), lo, hi)
    assert np.array_equal(d1, d2) and W.stream_bound(s) is None
    # the encoder's own reconstruction, re-derived from its quantised bands
    shape = mr.shape
    hs, ws = K.sizes(shape)
    a = mr.astype(np.int64) << W.FRAC
    K.dwt(a, hs, ws, False)
    steps = W.band_steps(shape, W.step_of(140, lo, hi) * (1 << W.FRAC))
    qs = [(np.sign(c) * np.floor(np.abs(c) * (256.0 / st) + W.THETA)).astype(np.int64)
          for (r0, r1, c0, c1, _, _), st in zip(K.bands(shape), steps) for c in [a[r0:r1, c0:c1]]]
    assert np.array_equal(W.reconstruct(qs, shape, steps, round((0.5 - W.THETA) * 256), lo, hi), d1)


def test_finer_q_costs_more_bytes_and_gives_less_error(ct):
    lo, hi = int(ct.min()), int(ct.max())
    sizes, mses = [], []
    for q in (110, 140, 170, 200):
        s = W.encode_wavelet(ct, q, None, lo, hi)
        d = W.decode_wavelet(s, lo, hi)
        sizes.append(len(s))
        mses.append(float(np.mean((d - ct) ** 2)))
    assert sizes == sorted(sizes) and mses == sorted(mses, reverse=True)


def test_offset_none_keeps_the_smaller_stream(mr):
    lo, hi = int(mr.min()), int(mr.max())
    both = [len(W.encode_wavelet(mr, 130, 20, lo, hi, r)) for r in W.OFFSETS]
    assert len(W.encode_wavelet(mr, 130, 20, lo, hi)) == min(both)


def test_constant_and_extreme_images():
    for v, lo, hi in ((np.full((20, 30), 7, np.int16), 7, 7),
                      (np.where(rng_of(1).random((33, 40)) < 0.5, -32768, 32767).astype(np.int16), -32768, 32767),
                      (np.where(rng_of(2).random((40, 33)) < 0.5, 0, 65535).astype(np.uint16), 0, 65535),
                      (rng_of(3).integers(0, 65536, (24, 24)).astype(np.uint16), 0, 65535)):
        for bound in (0, 5, None):
            d = W.decode_wavelet(W.encode_wavelet(v, 100, bound, lo, hi), lo, hi)
            assert d.min() >= lo and d.max() <= hi
            if bound is not None:
                assert np.abs(d - v.astype(np.int64)).max() <= bound


def test_bad_input_refused(ct):
    lo, hi = int(ct.min()), int(ct.max())
    for args in ((ct, 256, 0, lo, hi), (ct, -1, 0, lo, hi), (ct, 100, -1, lo, hi), (ct, 100, 0, lo + 1, hi),
                 (ct.astype(float), 100, 0, lo, hi), (ct[0], 100, 0, lo, hi), (ct[:0], 100, 0, lo, hi)):
        with pytest.raises(WaveletError):
            W.encode_wavelet(*args)


@pytest.fixture(scope="module")
def guarded(ct):
    lo, hi = int(ct.min()), int(ct.max())
    return W.encode_wavelet(ct, 120, 10, lo, hi), lo, hi


def test_corrupted_streams_refused(guarded):
    """Corruption after the header (codec/wavelet_header.py's tests cover the header's fields)."""
    s, lo, hi = guarded
    bad = {
        "magic": b"MZX1" + s[4:],
        "empty": b"",
        "header only": s[:20],
        "truncated": s[:-5],
        "truncated words": s[: len(s) // 2],
        "trailing": s + b"\0",
        "word": s[:200] + bytes([s[200] ^ 0x55]) + s[201:],
        "guard bit": s[:-3] + bytes([s[-3] ^ 0x10]) + s[-2:],
    }
    for what, data in bad.items():
        with pytest.raises(WaveletError):
            W.decode_wavelet(data, lo, hi)
        assert issubclass(WaveletError, CodecError), what
    with pytest.raises(WaveletError, match="lo..hi"):
        W.decode_wavelet(s, lo, hi - 1)


def test_unguarded_trailing_byte_refused(mr):
    lo, hi = int(mr.min()), int(mr.max())
    s = W.encode_wavelet(mr, 120, None, lo, hi)
    with pytest.raises(WaveletError, match="trailing"):
        W.decode_wavelet(s + b"\1", lo, hi)


def test_guard_that_decodes_past_the_image_refused():
    v = np.zeros((4, 4), np.int64)
    v[3, 3] = 100
    s = W.encode_wavelet(v, 0, 0, 0, 100)  # q 0: D = 101, the guard corrects the one pixel
    head = H.parse(s)
    at = head.body + 4 * head.words + head.raw
    from codec import wavelet_coder as C
    err = np.zeros(32, np.int64)
    err[20] = 50  # pixel 20 of a 16-pixel image
    with pytest.raises(WaveletError, match="past the image"):
        W.decode_wavelet(s[:at] + C.encode_guard(err, 0), 0, 100)


def test_guard_of_many_corrections_is_fast():
    import time
    rng = rng_of(4)
    err = rng.integers(-200, 201, (1024, 1024))
    from codec import wavelet_coder as C
    C.decode_guard(C.encode_guard(err[:8, :8], 40), (8, 8), 40, 400)
    t = time.perf_counter()
    data = C.encode_guard(err, 40)
    corr = C.decode_guard(data, err.shape, 40, 400)
    assert time.perf_counter() - t < 1.0
    assert np.abs(err - corr).max() <= 40 and np.count_nonzero(corr) == np.count_nonzero(np.abs(err) > 40)


def test_the_kept_stream_still_decodes():
    """A stream written when the wavelet codec shipped: later releases must decode it to the same values."""
    meta = json.loads((KEPT / "wavelet_v1_ct_small_crop.json").read_text())
    data = (KEPT / "wavelet_v1_ct_small_crop.bin").read_bytes()
    assert data[:4] == H.MAGIC1 and W.stream_bound(data) == meta["bound"]
    values = W.decode_wavelet(data, meta["lo"], meta["hi"])
    assert sha(values) == meta["decoded_sha256"]
    v, _, _ = real_slice("CT_small.dcm")
    crop = v[32:96, 32:96]
    assert sha(crop) == meta["values_sha256"]
    assert np.abs(values - crop).max() <= meta["bound"]


@pytest.mark.parametrize("bound", [None, 20])
def test_random_byte_flips_are_refused_or_decode_to_the_same_values(mr, bound):
    """Numba has no bounds checks: every corruption must end in WaveletError (or, in a field the decoder does not
    use, such as q, in the same values), never in a crash."""
    lo, hi = int(mr.min()), int(mr.max())
    s = W.encode_wavelet(mr, 120, bound, lo, hi)
    good = W.decode_wavelet(s, lo, hi)
    rng = rng_of(9)
    refused = 0
    for _ in range(150):
        b = bytearray(s)
        b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
        try:
            assert np.array_equal(W.decode_wavelet(bytes(b), lo, hi), good)
        except WaveletError:
            refused += 1
    assert refused > 140
