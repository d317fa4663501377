"""codec/coders.py: every mode kind has its coder; end to end through codec.api (learned layer + residual layer),
lossless is bit-exact and near-lossless keeps |e| <= k (k = 1, 2, 4) on real frames. Default run: k = 0 and 4 on every bundled grayscale frame of up to 70k pixels (the small
CT/MR/CR/NM files, multi-frame included; a frame whose pixels another file already has is tested once); `-m slow` runs every grayscale frame of pydicom-data, deid-data and
pydicom's test files at k = 0, 1, 2, 4. (tests/codec/test_residual.py covers the residual layer alone with a stand-in reconstruction.)"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from functools import lru_cache

import numpy as np
import pytest

from codec import api, coders
from codec.modes import KINDS, Mode
from codec.values import value_range
from tests.helpers.slices import real_slice
from tests.realdata import decoded_frames

KS = (0, 1, 2, 4)


@lru_cache(maxsize=1)
def real_frames() -> tuple:
    out, seen = [], set()
    for path, ds, i, frame in decoded_frames():
        bits, signed = int(ds.BitsStored), bool(int(ds.get("PixelRepresentation", 0)))
        fb, fs = bits, signed
        lo, hi = value_range(bits, signed)
        if frame.min() < lo or frame.max() > hi:  # header and pixels disagree: use the dtype's own range
            fb, fs = frame.dtype.itemsize * 8, frame.dtype.kind == "i"
        key = (frame.dtype.str, frame.shape, hash(frame.tobytes()), fb, fs)
        if key in seen:  # the same pixels in another transfer syntax: once is enough end to end
            continue
        seen.add(key)
        out.append((f"{path.name}[{i}]", frame, fb, fs))
    return tuple(out)


def test_every_mode_kind_has_one_coder():
    assert set(coders.REGISTRY) == set(KINDS)
    assert isinstance(coders.coder_for("lossy"), coders.LossyCoder)
    assert coders.coder_for("lossless") is coders.coder_for("near-lossless")
    with pytest.raises(api.CodecError, match="no coder"):
        coders.coder_for("jpeg")


def test_residual_coder_keeps_the_smaller_payload_and_says_its_mode():
    flat = np.full((64, 80), 1000, np.uint16)  # nothing for latents to add: the residual alone is smaller
    payload = api.encode(flat, Mode.lossless(), 12, False)
    info = api.payload_info(payload)
    assert info["latents"] is False and info["rate_point"] is None and info["mode"] == "lossless"
    assert np.array_equal(api.decode(payload), flat)
    assert api.payload_info(api.encode(flat, Mode.near_lossless(3), 12, False))["mode"] == "near-lossless:3"


def check(frames, ks=KS):
    assert frames
    for name, frame, bits, signed in frames:
        for k in ks:
            mode = Mode.parse("lossless" if k == 0 else f"near-lossless:{k}")
            out = api.decode(api.encode(frame, mode, bits, signed))
            assert out.shape == frame.shape and out.dtype == frame.dtype, name
            err = int(np.abs(out.astype(np.int64) - frame.astype(np.int64)).max())
            assert err <= k, f"{name} k={k}: max error {err}"


def test_small_real_frames_lossless_and_k4():
    check([f for f in real_frames() if f[1].size <= 70_000], ks=(0, 4))


def test_one_real_512_slice_lossless():
    check([f for f in real_frames() if f[0] == "693_UNCR.dcm[0]"], ks=(0, 2))


@pytest.mark.slow
def test_every_real_frame_every_k():
    check(list(real_frames()))


def test_residual_coder_keeps_the_layer_that_codes_the_probe_smaller():
    """Version 2 on an ordinary CT; version 1 (interleaved levels) where the probe finds it smaller, e.g. a very
    smooth ramp at a large k (at k = 8 mixer model 2 codes the ramp's band as small as version 1 does). Both
    decode through the same coder."""
    import numpy as np

    from codec import api, residual_raster
    from lab.realdata import find
    import pydicom

    ct = pydicom.dcmread(find("CT_small.dcm")).pixel_array
    ramp = (np.add.outer(np.arange(256), np.arange(256)) * 3).astype(np.uint16)
    for frame, bits, signed, k, expect_v2 in ((ct, 16, True, 8, True), (ramp, 12, False, 16, False)):
        payload = api.encode(frame, f"near-lossless:{k}", bits, signed)
        assert residual_raster.is_raster_stream(api.sections(payload).residual) == expect_v2
        assert np.abs(api.decode(payload).astype(np.int64) - frame.astype(np.int64)).max() <= k


def test_residual_coder_never_keeps_a_layer_larger_than_the_raster_layer_whole(monkeypatch):
    """A probe that favours version 1 where it codes the whole slice larger (a centre crop of the CT 693 at k = 30:
    50 % larger): the coder keeps the smaller of the two whole streams."""
    import numpy as np

    from codec import api, coders, residual, residual_raster
    from lab.realdata import find
    import pydicom

    interleaved = residual
    tried = []
    real = interleaved.encode_residual_decoded
    monkeypatch.setattr(coders, "_probe", lambda *args: interleaved)
    monkeypatch.setattr(interleaved, "encode_residual_decoded",
                        lambda values, *a: tried.append(values.shape) or real(values, *a))
    ds = pydicom.dcmread(find("693_UNCR.dcm"))
    frame = ds.pixel_array
    payload = api.encode(frame, "near-lossless:30", int(ds.BitsStored), bool(ds.PixelRepresentation))
    kept = api.sections(payload).residual
    flat = np.full(frame.shape, int(frame.flat[0]), np.int64)
    raster = residual_raster.encode_residual(frame.astype(np.int64), flat, 30, int(ds.BitsStored),
                                             bool(ds.PixelRepresentation))
    assert tried == [frame.shape]  # version 1 was coded whole ...
    assert residual_raster.is_raster_stream(kept) and len(kept) <= len(raster)  # ... and dropped
    assert np.abs(api.decode(payload).astype(np.int64) - frame.astype(np.int64)).max() <= 30


def test_a_ct_body_in_the_centre_does_not_send_the_slice_to_a_whole_version_1_trial(monkeypatch):
    """On the CT 693 at k = 8 a centre crop (all body) favoured version 1, whose whole stream is 46 % larger: the
    probe's band across the width sees the air too, so version 1 is coded on the band only, never on the whole slice."""
    import numpy as np

    from codec import api, residual
    from lab.realdata import find
    import pydicom

    ds = pydicom.dcmread(find("693_UNCR.dcm"))
    frame = ds.pixel_array
    shapes = []
    real = residual.encode_residual

    def counting(values, *args, **kwargs):
        shapes.append(values.shape)
        return real(values, *args, **kwargs)

    monkeypatch.setattr(residual, "encode_residual", counting)
    payload = api.encode(frame, "near-lossless:8", int(ds.BitsStored), bool(ds.PixelRepresentation))
    assert shapes == [(48, 512)]  # the probe's band, and no whole-slice trial
    assert np.abs(api.decode(payload).astype(np.int64) - frame.astype(np.int64)).max() <= 8


def test_a_slice_encoder_settles_the_near_lossless_layer_once_a_frame(monkeypatch):
    """codec.api.SliceEncoder (auto's search): the first near-lossless k probes the layer, later k keep the verdict;
    a ramp where version 1 wins keeps it at every k, and where version 1 lost whole it is not tried again."""
    from codec import residual, residual_raster

    probes, wholes = [], []
    real_probe, real_v1 = coders._probe, residual.encode_residual_decoded
    monkeypatch.setattr(coders, "_probe", lambda *a: probes.append(a[2]) or real_probe(*a))
    def v1(values, *a):
        if values.shape in ((256, 256), (96, 128)):  # whole slices, not the probe's band
            wholes.append(a[1])
        return real_v1(values, *a)

    monkeypatch.setattr(residual, "encode_residual_decoded", v1)
    ramp = (np.add.outer(np.arange(256), np.arange(256)) * 3).astype(np.uint16)
    enc = api.SliceEncoder(ramp, 12, False)
    for k in (16, 12, 24):
        payload, decoded = enc.encode_decoded(Mode.near_lossless(k))
        assert not residual_raster.is_raster_stream(api.sections(payload).residual)  # version 1 each time
        assert np.array_equal(api.decode(payload), decoded) and np.abs(decoded.astype(int) - ramp).max() <= k
    assert probes == [16] and wholes == [16, 12, 24]

    probes.clear(), wholes.clear()
    monkeypatch.setattr(coders, "_probe", lambda *a: probes.append(a[2]) or residual)  # a probe that misjudges
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 4096, (96, 128)).astype(np.uint16)  # version 1 loses whole on noise
    enc = api.SliceEncoder(noise, 12, False)
    for k in (2, 3, 5):
        payload, decoded = enc.encode_decoded(Mode.near_lossless(k))
        assert residual_raster.is_raster_stream(api.sections(payload).residual)
        assert np.abs(decoded.astype(int) - noise).max() <= k
    assert probes == [2] and wholes == [2]  # tried whole once, lost, not again
    assert api.decode(enc.encode_decoded(Mode.lossless())[0]).tolist() == noise.tolist()


def _raster_encodes(monkeypatch) -> list:
    """Records (shape, mixed) of every raster residual encode from here on (the layer probe's crops: mixed None)."""
    from codec import residual_raster

    calls = []
    real = residual_raster.encode_residual_decoded

    def counting(values, *a, **kw):
        calls.append((values.shape, kw.get("mixed")))
        return real(values, *a, **kw)

    monkeypatch.setattr(residual_raster, "encode_residual_decoded", counting)
    return calls


def test_the_context_mixed_coder_is_kept_where_it_pays_and_the_frame_keeps_the_verdict(monkeypatch):
    """On a CT the context-mixed raster stream (flag bit 4) is 5-15 % smaller and is kept; on white noise it saves
    nothing and the range coder's stream is kept. Both are coded on the frame's first residual attempt only."""
    from codec import residual_raster

    calls = _raster_encodes(monkeypatch)
    v, bits, signed = real_slice("693_UNCR.dcm")
    noise = np.random.default_rng(2).integers(0, 4096, (128, 128)).astype(np.int64)
    for values, b, s, kept in ((v, bits, signed, True), (noise, 12, False, False)):
        calls.clear()
        enc = api.SliceEncoder(values, b, s)
        for k in (4, 2, 0):
            payload, decoded = enc.encode_decoded(Mode.lossless() if k == 0 else Mode.near_lossless(k))
            stream = api.sections(payload).residual
            assert residual_raster.is_raster_stream(stream) and bool(stream[4] & 16) == kept
            assert np.array_equal(api.decode(payload), decoded) and np.abs(decoded - values).max() <= k
        whole = [mixed for shape, mixed in calls if shape == values.shape]
        assert whole == [True, False, kept, kept]  # both coders once, then the verdict


def test_the_mixed_coder_is_not_kept_past_its_bits_a_pixel(monkeypatch):
    """Its decode time grows with the bits it codes: past coders._MIXED_MAX_BPP the range coder is kept even where
    the mixer saves more than 2 % (693 at k = 4: 0.7 bits a pixel, 8 % fewer bytes), also at a later attempt of a
    frame whose first attempt kept the mixer (lossless: 2.4 bits a pixel)."""
    v, bits, signed = real_slice("693_UNCR.dcm")
    for cap, kept in ((1.0, True), (0.5, False)):
        monkeypatch.setattr(coders, "_MIXED_MAX_BPP", cap)
        enc = api.SliceEncoder(v, bits, signed)
        stream = api.sections(enc.encode_decoded(Mode.near_lossless(4))[0]).residual
        assert bool(stream[4] & 16) == kept and len(stream) * 8 > 0.5 * v.size
        payload, decoded = enc.encode_decoded(Mode.lossless())
        stream = api.sections(payload).residual
        assert not stream[4] & 16 and len(stream) * 8 > 1.0 * v.size  # past either cap: the range coder
        assert np.array_equal(api.decode(payload), decoded) and np.array_equal(decoded, v)


def test_a_slice_over_the_size_limit_tries_the_mixed_coder_only_at_large_k(monkeypatch):
    from codec import residual_mixed

    calls = _raster_encodes(monkeypatch)
    monkeypatch.setattr(residual_mixed, "MAX_PIXELS", 64 * 64)  # the 128² crop below plays a radiograph
    v, bits, signed = real_slice("693_UNCR.dcm")
    crop = np.ascontiguousarray(v[192:320, 192:320])
    api.SliceEncoder(crop, bits, signed).encode_decoded(Mode.near_lossless(4))
    assert [mixed for shape, mixed in calls if shape == crop.shape] == [False]
    calls.clear()
    api.SliceEncoder(crop, bits, signed).encode_decoded(Mode.near_lossless(coders._MIXED_LARGE_K))
    assert [mixed for shape, mixed in calls if shape == crop.shape] == [True, False]


def test_later_frames_of_a_series_reuse_the_first_frames_coder_verdict(monkeypatch):
    calls = _raster_encodes(monkeypatch)
    v, bits, signed = real_slice("693_UNCR.dcm")
    series = {}
    for rows in (slice(0, 256), slice(256, 512)):  # two "frames" of one series
        frame = np.ascontiguousarray(v[rows])
        payload, decoded = api.SliceEncoder(frame, bits, signed, series=series).encode_decoded(Mode.near_lossless(4))
        assert np.array_equal(api.decode(payload), decoded)
    assert series == {"mixed coder": True}
    whole = [mixed for shape, mixed in calls if shape == (256, 512)]
    assert whole == [True, False, True]  # both coders on the first frame, its verdict on the second


@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm"])
def test_wavelet_payloads_decode_within_their_guard_and_say_their_mode(name):
    import pydicom

    from lab.realdata import find

    ds = pydicom.dcmread(find(name))
    frame, bits, signed = ds.pixel_array, int(ds.BitsStored), bool(int(ds.PixelRepresentation))
    sizes = []
    for mode in (Mode.wavelet(90, 20), Mode.wavelet(130, 3), Mode.wavelet(120, 0)):
        payload = api.encode(frame, mode, bits, signed)
        info = api.payload_info(payload)
        assert info["mode"] == str(mode) and info["codec"] == "medzip-wavelet" and not info["latents"]
        out = api.decode(payload)
        assert out.dtype == frame.dtype and out.shape == frame.shape
        err = np.abs(out.astype(np.int64) - frame.astype(np.int64))
        assert err.max() <= mode.bound, f"{mode}: max error {err.max()}"
        sizes.append(len(payload))
    assert sizes[0] < sizes[1] < sizes[2], "a finer rate point and a tighter guard cost bytes"
    unguarded = api.encode(frame, Mode.wavelet(90), bits, signed)
    assert api.payload_info(unguarded)["mode"] == "wavelet:90" and len(unguarded) <= sizes[0]


def test_a_wavelet_payload_with_a_broken_stream_is_refused():
    from dataclasses import replace

    from codec import bitstream

    frame = (np.add.outer(np.arange(40), np.arange(48)) * 17 % 4096).astype(np.uint16)
    p = api.sections(api.encode(frame, Mode.wavelet(100, 4), 12, False))
    for bad in (p.residual[:-3], p.residual + b"\0", b"XXXX" + p.residual[4:]):
        with pytest.raises(api.CodecError):
            api.decode(bitstream.pack(bitstream.Payload(p.header, [], bad)))
    lying = bitstream.Payload(replace(p.header, cols=47), [], p.residual)
    with pytest.raises(api.CodecError, match="shape"):
        api.decode(bitstream.pack(lying))
    # a range outside what the bit depth stores (the guard's correction cap would overflow int64 at bound 0)
    exact = api.sections(api.encode(frame, Mode.wavelet(150, 0), 12, False))
    for lo, hi in ((-(2**63), 2**63 - 1), (0, 2**40), (-1, 4095)):
        with pytest.raises(api.CodecError, match="value range"):
            api.decode(bitstream.pack(bitstream.Payload(replace(exact.header, lo=lo, hi=hi), [], exact.residual)))


def test_a_wavelet_stream_larger_than_its_payload_says_is_refused_before_it_is_decoded(monkeypatch):
    """A header of 1x1 over a real 2048² stream (a few KB of zeros decode to 32 MB): refused on the stream's own
    header, before anything of its size is allocated."""
    from dataclasses import replace

    from codec import bitstream, wavelet

    big = np.zeros((2048, 2048), np.uint16)
    big[0, 0] = 1
    p = api.sections(api.encode(big, Mode.wavelet(100), 12, False))
    assert wavelet.stream_shape(p.residual) == (2048, 2048) and len(p.residual) < 10_000
    small = bitstream.Payload(replace(p.header, rows=1, cols=1), [], p.residual)
    called = []
    real = wavelet.decode_wavelet
    monkeypatch.setattr(wavelet, "decode_wavelet", lambda *a: called.append(1) or real(*a))
    with pytest.raises(api.CodecError, match="shape"):
        api.decode(bitstream.pack(small))
    assert not called


@pytest.mark.slow
def test_every_real_frame_through_the_wavelet():
    """Every distinct bundled grayscale frame (85; about a minute) at a guarded, a lossless-guarded and an unguarded
    wavelet mode: shape and dtype kept, the guard's bound held."""
    for name, frame, bits, signed in real_frames():
        for mode in (Mode.wavelet(120, 5), Mode.wavelet(200, 0), Mode.wavelet(60)):
            out = api.decode(api.encode(frame, mode, bits, signed))
            assert out.shape == frame.shape and out.dtype == frame.dtype, name
            err = int(np.abs(out.astype(np.int64) - frame.astype(np.int64)).max())
            assert mode.bound is None or err <= mode.bound, f"{name} {mode}: max error {err}"
