"""Payloads that cannot be decoded faithfully are refused with CodecError: foreign model, other format version,
truncated, flipped bytes, reconstruction or checksum mismatch."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from codec import api, bitstream, entropy, learned
from codec.modes import Mode


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:160]
    v = 800 + 600 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 20, (96, 160))
    return np.clip(v, 0, 4095).astype(np.uint16)


@pytest.fixture(scope="module")
def payloads(frame):
    return {m: api.encode(frame, Mode.parse(m), 12, False) for m in ("lossy:1", "near-lossless:2", "lossless")}


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _patch(payload: bytes, offset: int, new: bytes) -> bytes:
    body = bytearray(payload[:-4])
    body[offset : offset + len(new)] = new
    return _recrc(bytes(body))


def test_round_trips(frame, payloads):
    assert np.array_equal(api.decode(payloads["lossless"]), frame)
    assert np.abs(api.decode(payloads["near-lossless:2"]).astype(int) - frame).max() <= 2


def test_other_model_refused(payloads):
    bad = _patch(payloads["lossy:1"], 8, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    with pytest.raises(api.CodecError, match="encoded by model 0102030405060708"):
        api.decode(bad)


def _weights_variant(path, shift: float = 0.0) -> None:
    """The shipped weights, the exact synthesis' last bias shifted by `shift` (0: same decoder, another file)."""
    with np.load(learned.DEFAULT_WEIGHTS) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["fx/gs_conv3/b"] = arrays["fx/gs_conv3/b"] + shift * 2.0 ** 30
    arrays["variant"] = np.frombuffer(f"{path.name}:{shift}".encode(), np.uint8)
    np.savez_compressed(path, **arrays)


@pytest.fixture
def weights_env(monkeypatch):
    """Switch the current weights (MEDZIP_CODEC_WEIGHTS) within a test; restores the shipped ones after."""

    def use(path):
        monkeypatch.setenv("MEDZIP_CODEC_WEIGHTS", str(path))
        learned.load_model.cache_clear()

    yield use
    learned.load_model.cache_clear()  # monkeypatch then restores the environment


def test_payload_of_older_weights_decodes_with_them_after_a_retrain(frame, tmp_path, weights_env):
    old, new = tmp_path / "medzip-old.npz", tmp_path / "medzip-new.npz"
    _weights_variant(old)
    _weights_variant(new, shift=0.05)
    weights_env(old)
    payload = api.encode(frame, Mode.parse("lossy:2"), 12, False)
    with_old = api.decode(payload)
    weights_env(new)  # "retrained": the current weights change, the old file stays beside them
    assert api.payload_info(payload)["model_hash"] != learned.load_model().sha256[:16]
    with_new = api.decode(api.encode(frame, Mode.parse("lossy:2"), 12, False))
    assert not np.array_equal(with_new, with_old)  # the two models really decode differently
    assert np.array_equal(api.decode(payload), with_old)
    # clutter beside the weights is skipped: a foreign npz, a folder named like one, a dangling link
    np.savez(tmp_path / "not-weights.npz", a=np.zeros(3))
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "missing.npz")
    assert np.array_equal(api.decode(payload), with_old)
    _weights_variant(old, shift=0.05)  # the old file replaced in place: no longer the payload's model
    with pytest.raises(api.CodecError, match="not among the weights here"):
        api.decode(payload)


def test_decode_only_folder_and_residual_only_payloads(frame, tmp_path, weights_env, monkeypatch):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    _weights_variant(site / "medzip-site.npz", shift=0.05)
    weights_env(site / "medzip-site.npz")
    lossy = api.encode(frame, Mode.parse("lossy:2"), 12, False)
    expected = api.decode(lossy)
    residual_only = api.encode(frame, Mode.parse("lossless"), 12, False)
    assert api.payload_info(residual_only)["latents"] is False  # this frame's lossless payload carries none
    _weights_variant(elsewhere / "medzip-current.npz", shift=-0.05)
    weights_env(elsewhere / "medzip-current.npz")
    with pytest.raises(api.CodecError, match="MEDZIP_CODEC_WEIGHTS_PATH"):
        api.decode(lossy)
    assert np.array_equal(api.decode(residual_only), frame)  # needs no model at all
    monkeypatch.setenv("MEDZIP_CODEC_WEIGHTS_PATH", str(site))
    assert np.array_equal(api.decode(lossy), expected)


def test_varints_round_trip_and_refuse_cut_or_endless_ones():
    values = [0, 1, 127, 128, 300, 2**32, 2**63 - 1]
    data = bitstream.write_varints(values)
    pos, got = 0, []
    for _ in values:
        v, pos = bitstream.read_varint(data, pos)
        got.append(v)
    assert got == values and pos == len(data)
    with pytest.raises(bitstream.BitstreamError, match="truncated"):
        bitstream.read_varint(bitstream.write_varints([300])[:1], 0)
    with pytest.raises(entropy.EntropyError, match="too long"):
        bitstream.read_varint(b"\xff" * 12, 0, "escape list", entropy.EntropyError)


def test_other_version_refused(payloads):
    bad = _patch(payloads["lossless"], 4, bytes([max(bitstream.VERSIONS) + 1]))
    with pytest.raises(api.CodecError, match="format version"):
        api.decode(bad)
    with pytest.raises(api.CodecError, match="format version"):
        api.payload_info(bad)


def test_not_a_payload_refused():
    for junk in (b"", b"MZC", b"hello world, not a payload", b"MZP0" + bytes(40)):
        with pytest.raises(api.CodecError):
            api.decode(junk)


@pytest.mark.parametrize("mode", ["lossy:1", "lossless"])
def test_truncated_refused(payloads, mode):
    p = payloads[mode]
    for cut in (1, 5, 30, 70, len(p) // 2, len(p) - 5, len(p) - 1):
        with pytest.raises(api.CodecError):
            api.decode(p[:cut])


@pytest.mark.parametrize("mode", ["lossy:1", "near-lossless:2", "lossless"])
def test_flipped_byte_refused(payloads, mode):
    p = payloads[mode]
    for pos in (6, 20, 40, 60, 75, len(p) // 3, len(p) // 2, len(p) - 10, len(p) - 2):
        bad = bytearray(p)
        bad[pos] ^= 0x10
        with pytest.raises(api.CodecError):
            api.decode(bytes(bad))


def _as_version_2(payload: bytes) -> bytes:
    """A payload without latents rewritten under version 2's full header (what earlier releases wrote)."""
    p = api.sections(payload)
    h = p.header
    full = replace(h, version=bitstream.FORMAT_VERSION, model_hash=learned.load_model().hash8,
                   recon_sha=bitstream.recon_digest(np.full((h.rows, h.cols), h.lo, np.int64)),
                   values_sha=h.values_sha or b"\0" * 16)
    return bitstream.pack(bitstream.Payload(full, [], p.residual))


def test_version_2_payload_without_latents_still_decodes_and_checks_its_recon(frame, payloads):
    for mode in ("near-lossless:2", "lossless"):
        old = _as_version_2(payloads[mode])
        assert api.payload_info(old)["format_version"] == 2 and len(old) > len(payloads[mode]) + 30
        assert np.array_equal(api.decode(old), api.decode(payloads[mode]))
    # a consistent stream (valid CRC) whose recorded reconstruction hash differs: the decoder must not use it
    bad = _patch(_as_version_2(payloads["near-lossless:2"]), 63, b"\xff" * 8)
    with pytest.raises(api.CodecError, match="recon"):
        api.decode(bad)


def test_compact_header_says_what_version_2_said_in_fewer_bytes(frame, payloads):
    for mode, sha in (("near-lossless:2", False), ("lossless", True)):
        info = api.payload_info(payloads[mode])
        assert info["format_version"] == bitstream.COMPACT_VERSION and info["model_hash"] is None
        assert info["codec"] == "medzip-residual" and info["latents"] is False
        assert info["shape"] == [96, 160] and info["dtype"] == "<u2" and info["bits_stored"] == 12
        assert info["lo"] == int(frame.min()) and info["hi"] == int(frame.max()) and info["signed"] is False
        assert (info["sha256_128"] == bitstream.values_digest(frame.astype(np.int64)).hex()) is sha
        varints = bitstream.write_varints((96, 160, info["tile"] // 64, bitstream.zigzag(info["lo"]),
                                           info["hi"] - info["lo"]))
        overhead = len(payloads[mode]) - len(api.sections(payloads[mode]).residual)
        assert overhead == 12 + len(varints) + (16 if sha else 0) + 4 <= 40  # fixed fields, varints, hash, CRC
    signed = api.encode(frame.astype(np.int16) - 2000, Mode.parse("near-lossless:1"), 13, True)
    info = api.payload_info(signed)
    assert info["signed"] is True and info["lo"] == int(frame.min()) - 2000 and info["dtype"] == "<i2"


def test_compact_header_refuses_what_no_encoder_writes(payloads):
    p = payloads["near-lossless:2"]
    with pytest.raises(api.CodecError, match="flags"):
        api.decode(_patch(p, 7, b"\x04"))  # an unknown flag
    with pytest.raises(api.CodecError):
        api.decode(_patch(p, 7, b"\x02"))  # a values hash said to follow where stream bytes are
    body = p[:-4]
    for cut in range(5, 30):  # the header cut anywhere, the CRC made to match
        with pytest.raises(api.CodecError):
            api.decode(_recrc(body[:cut]))
    with pytest.raises(bitstream.BitstreamError, match="latents"):
        bitstream.pack(bitstream.Payload(api.sections(p).header, [b"chunk"], b""))


def _with_header(payload: bytes, **fields) -> bytes:
    """The payload with header fields changed, packed again (a consistent CRC: what only a forged or badly
    written payload holds)."""
    p = api.sections(payload)
    return bitstream.pack(bitstream.Payload(replace(p.header, **fields), p.chunks, p.residual))


@pytest.mark.parametrize("mode", ["near-lossless:2", "lossless", "lossy:1"])
def test_headers_a_decode_cannot_honour_are_refused_before_anything_is_allocated(payloads, mode):
    p = payloads[mode]
    huge = (1 << 40) if mode != "lossy:1" else (1 << 32) - 1  # format 2 holds u32 sides
    bad = [_with_header(p, rows=huge), _with_header(p, cols=70000), _with_header(p, rows=0)]
    bad += [_with_header(p, dtype=d) for d in (",i2", "8i2", "<a2", "<f2", "<u1")]  # <u1: fewer bits than 12
    if mode != "lossy:1":
        kind = bytearray(p)
        kind[5] = 0  # a compact payload said to be lossy: it has no model to name (one bit flip away)
        bad += [bytes(kind), _recrc(bytes(kind[:-4]))]
    for data in bad:
        with pytest.raises(api.CodecError):
            api.decode(data)
        with pytest.raises(api.CodecError):
            api.payload_info(data)


def test_a_consistent_lossy_payload_with_damaged_latents_or_range_is_refused_cleanly(payloads):
    """Latent words the range decoder cannot follow (it asserts) and a value range past the bit depth (it overflowed
    in the synthesis) are CodecErrors, not crashes: 40 tile chunks with three bytes inverted, two forged ranges."""
    p = api.sections(payloads["lossy:1"])
    rng = np.random.default_rng(0)
    for _ in range(40):
        chunk = bytearray(p.chunks[0])
        for _ in range(3):
            chunk[int(rng.integers(len(chunk)))] ^= 0xFF
        try:
            api.decode(bitstream.pack(bitstream.Payload(p.header, [bytes(chunk), *p.chunks[1:]], p.residual)))
        except api.CodecError:
            pass
    for lo, hi in ((-(2**62), 2**62), (0, 2**40)):
        with pytest.raises(api.CodecError, match="value range"):
            api.decode(_with_header(payloads["lossy:1"], lo=lo, hi=hi))


def test_a_frame_wider_than_a_payload_may_say_is_refused_at_encode():
    with pytest.raises(api.CodecError, match="at most 65535"):
        api.encode(np.zeros((2, 70000), np.uint8), "lossless", 8, False)


def test_escape_values_never_lost():
    """Latents far outside every table's range survive entropy coding exactly."""
    model = learned.load_model()
    rng = np.random.default_rng(0)
    z = rng.integers(-3, 4, (4, 4, model.tables.z_n.size))
    z[0, 0, 0], z[1, 2, 3] = 10**6, -(10**5)
    y = rng.integers(-2, 3, (16, 16, 48))
    y[3, 4, 5], y[0, 0, 0], y[15, 15, 47] = 123456, -987654, 2**30
    idx = model.scale_indices(z[None])[0]
    chunk = entropy.encode_tile(z, y, idx, model.tables)
    z2, state = entropy.decode_z(chunk, z.shape, model.tables)
    assert np.array_equal(z2, z)
    assert np.array_equal(entropy.decode_y(state, model.scale_indices(z2[None])[0], model.tables), y)


@pytest.mark.parametrize("name", ["ct_693_lossy2", "ect_crop_lossy4", "ct_693_small_lossy0", "mr_small_wavelet_150_20",
                                  "mr_small_k4_format3"])
def test_kept_payloads_decode_to_the_same_values(name):
    """Lossy payloads written by the tile-window exact decoder, the first wavelet payload (format 2) and the first
    payload of format 3 (tests/data/payloads/*.json says which): every later decoder must give the same stored
    values, bit for bit."""
    import hashlib
    import json

    kept = Path(__file__).resolve().parents[1] / "data" / "payloads"
    meta = json.loads((kept / f"{name}.json").read_text())
    values = api.decode((kept / f"{name}.bin").read_bytes())
    assert values.dtype.str == meta["dtype"] and list(values.shape) == meta["shape"]
    assert hashlib.sha256(values.astype("<i8").tobytes()).hexdigest() == meta["decoded_sha256"]
