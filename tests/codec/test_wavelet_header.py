"""codec/wavelet_header.py: version 2 (varints, predicted steps) says what version 1 said in fewer bytes, its
prediction table is the transform's, and both versions refuse corrupted fields."""
import json
import math
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from codec import api
from codec import wavelet as W
from codec import wavelet_header as H
from codec import wavelet_kernels as K
from codec.errors import WaveletError
from tests.helpers.slices import real_slice

KEPT = Path(__file__).parents[1] / "data" / "payloads"


@pytest.fixture(scope="module")
def mr():
    v, _, _ = real_slice("MR_small.dcm")
    return v


@pytest.fixture(scope="module")
def v1_stream() -> tuple[bytes, dict]:
    meta = json.loads((KEPT / "wavelet_v1_ct_small_crop.json").read_text())
    return (KEPT / "wavelet_v1_ct_small_crop.bin").read_bytes(), meta


def _with(s: bytes, **fields) -> bytes:
    """A version 2 stream with some header fields changed (the body kept)."""
    h = replace(H.parse(s), **fields)
    head = H.write(h.rows, h.cols, h.q, h.offset, h.maxbits, None if h.bound == H.NO_GUARD else h.bound, h.crc,
                   h.words, h.raw, h.steps)
    return head + s[H.parse(s).body :]


@pytest.mark.parametrize("shape", [(16, 16), (31, 31), (40, 17), (64, 64), (100, 300), (128, 97), (512, 512),
                                   (1000, 3000)])
def test_step_ratios_are_the_transforms(shape):
    """The integer table version 2 predicts with is round(65536 sqrt(g_0 / g_b)) of the gains the encoder uses,
    whatever the shape: only the level count matters."""
    g = W.gains(shape)
    levels = len(K.sizes(shape)[0]) - 1
    assert H.STEP_RATIOS[levels] == tuple(round(65536 * math.sqrt(g[0] / gb)) for gb in g)


@pytest.mark.parametrize("q,bound", [(0, 0), (60, 20), (150, None), (255, 3)])
def test_version_2_header_round_trips_and_costs_one_byte_a_step(mr, q, bound):
    lo, hi = int(mr.min()), int(mr.max())
    s = W.encode_wavelet(mr, q, bound, lo, hi)
    h = H.parse(s)
    assert s[:4] == H.MAGIC2 and h.version == 2 and (h.rows, h.cols, h.levels) == (64, 64, 3)
    assert h.bound == (H.NO_GUARD if bound is None else bound) and h.q == q
    assert np.array_equal(h.steps, W.band_steps((64, 64), W.step_of(q, lo, hi) * (1 << W.FRAC)))
    assert h.body <= 4 + 8 * 2 + 4 + 4 + (h.bands - 1)  # magic, varints, CRC, first step, one byte a later step
    assert h.body + 4 * h.words + h.raw <= len(s)
    v1_head = H.HEAD1.size + 4 * h.bands
    assert v1_head - h.body >= 40  # version 1's header (74 bytes with these 10 bands)


def test_version_2_refuses_corrupted_header_fields(mr):
    lo, hi = int(mr.min()), int(mr.max())
    s = W.encode_wavelet(mr, 120, 10, lo, hi)
    h = H.parse(s)
    bad = {
        "rows": _with(s, rows=2**20), "cols": _with(s, cols=63), "q": _with(s, q=300),
        "offset": _with(s, offset=300), "maxbits": _with(s, maxbits=60), "bound": _with(s, bound=3),
        "words": _with(s, words=h.words + 1), "step": _with(s, steps=h.steps + np.arange(h.bands)),
        "first step": _with(s, steps=np.r_[h.steps[0] + 7, h.steps[1:]]),
    }
    for what, data in bad.items():
        with pytest.raises(WaveletError):
            W.decode_wavelet(data, lo, hi)
    with pytest.raises(WaveletError, match="step"):
        H.parse(_with(s, steps=np.r_[h.steps[:-1], 0]))
    from codec.bitstream import write_varints
    huge = s[: h.body - 1] + write_varints([1 << 68]) + s[h.body :]  # the last step's delta past int64
    with pytest.raises(WaveletError, match="step"):
        H.parse(huge)
    for cut in range(h.body):  # the header cut anywhere
        with pytest.raises(WaveletError):
            H.parse(s[:cut])


def test_version_1_fields_still_checked(v1_stream):
    """The kept version 1 stream decodes (tests/codec/test_wavelet.py), and a corrupted field of it is refused."""
    s, meta = v1_stream
    lo, hi = meta["lo"], meta["hi"]
    h = H.parse(s)
    assert h.version == 1 and h.body == H.HEAD1.size + 4 * h.bands

    def patch(fmt, at, value):
        return s[:at] + struct.pack(fmt, value) + s[at + struct.calcsize(fmt) :]

    bad = {
        "rows": patch("<I", 4, 2**20), "cols": patch("<I", 8, 63), "q": patch("<H", 12, 300),
        "levels": patch("<B", 16, 1), "maxbits": patch("<B", 17, 60), "bound": patch("<I", 18, 3),
        "words": patch("<I", 26, h.words + 1), "step 0": patch("<I", H.HEAD1.size + 8, 0),
        "step": patch("<I", H.HEAD1.size + 8, 12345), "truncated steps": s[: H.HEAD1.size + 5],
    }
    for what, data in bad.items():
        with pytest.raises(WaveletError):
            W.decode_wavelet(data, lo, hi)


def test_kept_version_2_payload_decodes_to_the_values_of_the_version_1_one():
    meta = json.loads((KEPT / "mr_small_wavelet_150_20_format3.json").read_text())
    new = (KEPT / "mr_small_wavelet_150_20_format3.bin").read_bytes()
    old = (KEPT / "mr_small_wavelet_150_20.bin").read_bytes()
    assert api.sections(new).residual[:4] == H.MAGIC2 and api.sections(old).residual[:4] == H.MAGIC1
    values = api.decode(new)
    assert np.array_equal(values, api.decode(old)) and values.dtype.str == meta["dtype"]
    assert len(old) - len(new) >= 90  # the payload's and the stream's headers
