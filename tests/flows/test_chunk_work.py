"""flows.chunk_work: a chunk encoded, measured and escalated in one pass, each input frame read once."""
from pathlib import Path

import numpy as np
import pytest

from codec.modes import Mode
from configs import Gate
from tests.helpers.flows import _find, codec_has, write_study


def _chunk(tmp_path: Path, uid: str):
    from dicom_io import read_studies
    from flows.chunks import chunks_of

    files = write_study(tmp_path / "in", uid, [_find("CT_small.dcm")])
    (chunk,) = chunks_of(read_studies(files).studies[0])
    return chunk


def test_near_lossless_frames_are_measured_on_their_decode(tmp_path):
    from archive import values_sha256
    from codec import api
    from dicom_io import iter_frames
    from flows.chunk_work import encode_chunk

    chunk = _chunk(tmp_path, "1.2.826.0.1.3680043.8.498.40001")
    (ef,) = encode_chunk(chunk, Mode.parse("near-lossless:4"), Gate(), Mode.lossless()).frames
    (original,) = list(iter_frames(chunk.instances[0]))
    decoded = api.decode(ef.payload)
    assert ef.decoded_sha256 == values_sha256(decoded, original.dtype) != ef.values_sha256
    assert ef.values_sha256 == values_sha256(original)
    assert ef.quality.max_error == int(np.abs(decoded.astype(int) - original).max()) <= 4
    assert ef.quality.payload_bytes == len(ef.payload) and ef.quality.passed


def test_a_failing_frame_is_escalated_before_the_archive_is_written(tmp_path):
    if not codec_has("lossy:0"):
        pytest.skip("no lossy mode in the installed codec")
    from flows.chunk_work import encode_chunk

    chunk = _chunk(tmp_path, "1.2.826.0.1.3680043.8.498.40002")
    gate = Gate(psnr_min=45.0, max_error_max=2)
    (ef,) = encode_chunk(chunk, Mode.parse("lossy:0"), gate, Mode.lossless()).frames
    assert ef.mode == Mode.parse("near-lossless:2") and ef.quality.mode == ef.mode
    assert ef.quality.escalations == [Mode.parse("lossy:0")] and ef.quality.history[0].startswith("lossy:0: ")
    assert ef.quality.passed and ef.quality.max_error <= 2
    # the ceiling stops the ladder: a frame that still fails is returned failing, at the last mode allowed
    (stuck,) = encode_chunk(chunk, Mode.parse("lossy:0"), Gate(psnr_min=1000.0), Mode.parse("lossy:0")).frames
    assert stuck.mode == Mode.parse("lossy:0") and not stuck.quality.passed and not stuck.quality.escalations


def test_auto_keeps_the_looser_k_its_measured_error_allows(tmp_path):
    """`auto` on the CT 693 under the CT gate: the model's first k passes with room to spare, the looser k its
    measured error predicts passes too and is smaller, so that one is stored (not an escalation)."""
    from codec import api
    from dicom_io import iter_frames, read_studies
    from flows.chunk_work import encode_chunk
    from flows.chunks import chunks_of
    from quality import auto, metrics

    files = write_study(tmp_path / "in", "1.2.826.0.1.3680043.8.498.40003", [_find("693_UNCR.dcm")])
    (chunk,) = chunks_of(read_studies(files).studies[0])
    (original,) = list(iter_frames(chunk.instances[0]))
    gate = Gate(psnr_min=50.0, ssim_min=0.99, max_error_max=30)
    (ef,) = encode_chunk(chunk, auto.AUTO, gate, Mode.lossless()).frames
    first = auto.first_mode(original, gate, metrics.psnr_peak(original))
    assert ef.quality.passed and ef.mode.level > first.level and not ef.quality.escalations
    fmt = chunk.instances[0].pixel
    assert len(ef.payload) < len(api.encode(original, first, fmt.bits_stored, fmt.signed))
    assert ef.quality.max_error <= ef.mode.level
    # what auto saved: the lossless size of the same frame is measured and recorded with it
    assert ef.quality.lossless_bytes == len(api.encode(original, Mode.lossless(), fmt.bits_stored, fmt.signed))
    assert ef.quality.table_row(0, 0)["lossless_bytes"] == ef.quality.lossless_bytes > len(ef.payload)


def test_auto_stores_the_wavelet_where_psnr_holds_k_down_and_it_is_smaller(tmp_path):
    """CT_small under a gate whose PSNR binds (45 dB) and whose max error (60) leaves room: near-lossless stops at a
    k far below 60, the wavelet with its guard at 60 passes in fewer bytes, and that payload is stored, within the
    guard's bound, with the lossless size still recorded."""
    from codec import api
    from dicom_io import iter_frames
    from flows.chunk_work import encode_chunk
    from quality import auto

    chunk = _chunk(tmp_path, "1.2.826.0.1.3680043.8.498.40004")
    (original,) = list(iter_frames(chunk.instances[0]))
    gate = Gate(psnr_min=45.0, max_error_max=60)
    (ef,) = encode_chunk(chunk, auto.AUTO, gate, Mode.lossless()).frames
    assert ef.mode.kind == "wavelet" and ef.mode.bound == 60 and ef.quality.passed, ef.quality
    assert api.payload_info(ef.payload)["mode"] == str(ef.mode) == str(ef.quality.mode)
    decoded = api.decode(ef.payload)
    assert ef.quality.max_error == int(np.abs(decoded.astype(int) - original).max()) <= 60
    fmt = chunk.instances[0].pixel
    k = auto.first_k(original, 45.0, None, 60, float(original.max() - original.min()))
    assert k < 0.9 * 60 and len(ef.payload) < len(api.encode(original, Mode.near_lossless(k), fmt.bits_stored,
                                                                fmt.signed))
    assert ef.quality.lossless_bytes > len(ef.payload)
