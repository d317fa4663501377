"""The work of one chunk, as plain functions a worker process runs (flows.workers): compose dicom_io, the codec
and quality; no Prefect here.

encode: each input frame is read once, encoded at its policy's mode, decoded (or reconstructed by its encoder:
codec.api.encode_decoded) and measured against the values just read (a lossless mode needs no decode: its figures
are exact by definition), and re-encoded at the next stricter
mode while it fails its gate (the escalation ladder), all before the archive is written, so the archive is written
once. confirm: each payload is decoded from the written FILE and must reproduce the values measured at encode
(their SHA-256), so the figures recorded are the figures of what the archive really decodes to, and no input is
read a second time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import api as codec_api
from codec.modes import Mode
from configs import Gate
from dicom_io import Instance
from flows.archived import frame_mode
from flows.chunks import Chunk
from quality import auto, gates, metrics
from quality.auto import Auto
from quality.escalation import settle
from quality.records import FrameId, FrameQuality


@dataclass
class EncodedFrame:
    sop_uid: str
    frame: int
    mode: Mode
    codec: str
    payload: bytes
    values_sha256: str
    decoded_sha256: str  # of the values this payload decodes to (the input's own for lossless)
    quality: FrameQuality  # measured at encode; confirmed against the file by confirm_chunk


@dataclass
class EncodedChunk:
    chunk: Chunk
    headers: dict[str, bytes]  # SOP Instance UID -> header bytes (Pixel Data cut out)
    frames: list[EncodedFrame]


def codec_name(payload: bytes) -> str:
    """The codec (and the model, for a payload with latents) that made a payload: 'medzip-residual',
    'medzip-wavelet', or e.g. 'medzip-learned:3fa2c1d0e4b5a697'."""
    info = codec_api.payload_info(payload)
    name = str(info.get("codec") or "medzip")
    return f"{name}:{info['model_hash']}" if info.get("model_hash") else name


def _measure(values: np.ndarray, values_sha: str, payload: bytes, decoded: np.ndarray | None, mode: Mode,
             gate: Gate, inst: Instance) -> tuple[gates.Evaluation, str]:
    """(evaluation, SHA-256 of the decoded values) of one payload against the values it was encoded from; `decoded`:
    what the encoder says it decodes to (codec.api.encode_decoded), None to decode it here."""
    fmt = inst.pixel
    if mode.is_lossless:  # exact by definition; confirm_chunk proves it on the decode from the file
        return gates.evaluate(values, values, gate, mode, bits_stored=fmt.bits_stored, modality=inst.modality,
                              rescale_slope=inst.rescale_slope), values_sha
    if decoded is None:
        try:
            decoded = codec_api.decode(payload)
        except codec_api.CodecError as exc:
            failed = gates.unmeasured("not decodable", fmt.bits_stored, modality=inst.modality,
                                      rescale_slope=inst.rescale_slope, integrity=(f"decode failed: {exc}",))
            return failed, "not decodable"
    judged = gates.evaluate(values, decoded, gate, mode, bits_stored=fmt.bits_stored, modality=inst.modality,
                            rescale_slope=inst.rescale_slope)
    return judged, _digest(decoded, values.dtype) or "out-of-range"  # out of range: never equal to a confirmed one


def _digest(decoded: np.ndarray, dtype: np.dtype) -> str | None:
    """SHA-256 of decoded values as stored values of `dtype` (archive.values_sha256), None when they do not fit."""
    from archive import values_sha256

    try:
        return values_sha256(decoded, dtype)
    except ValueError:
        return None


def _frame_quality(chunk: Chunk, inst: Instance, index: int, mode: Mode, codec: str, payload: bytes,
                   judged: gates.Evaluation) -> FrameQuality:
    fmt = inst.pixel
    frame_bytes = metrics.uncompressed_bytes(fmt.rows, fmt.columns, 1, fmt.bits_allocated)
    return FrameQuality(series_uid=chunk.series_uid, sop_uid=inst.sop_instance_uid, frame=index,
                        modality=chunk.modality, mode=mode, codec=codec, **judged.figures,
                        payload_bytes=len(payload), original_bytes=frame_bytes,
                        ratio=metrics.ratio(frame_bytes, len(payload)), gate_reasons=judged.gate_reasons,
                        integrity=list(judged.integrity), max_error_hu=judged.max_error_hu)


def encode_frame(chunk: Chunk, inst: Instance, index: int, values: np.ndarray, policy: Mode | Auto, gate: Gate,
                 ceiling: Mode, series: dict | None = None) -> EncodedFrame:
    """Encode one frame as quality.escalation.settle decides (the policy's mode or `auto`'s search, then stricter
    modes while its gate fails and the ladder allows), each attempt measured on what it decodes to (the encoder's
    own reconstruction where the coder has one: codec.api.SliceEncoder; confirm_chunk then decodes the kept
    payload from the file and must find the same values). `series`: shared by the frames of one chunk, so what the
    codec settles on one frame of the series (its residual coder) the next frames reuse."""
    from archive import values_sha256

    fmt = inst.pixel
    peak = metrics.psnr_peak(values)
    values_sha = values_sha256(values)
    encoder = codec_api.SliceEncoder(values, fmt.bits_stored, fmt.signed, series=series)

    def attempt(mode: Mode) -> EncodedFrame:
        payload, decoded = encoder.encode_decoded(mode)
        codec = codec_name(payload)
        judged, decoded_sha = _measure(values, values_sha, payload, decoded, mode, gate, inst)
        quality = _frame_quality(chunk, inst, index, mode, codec, payload, judged)
        return EncodedFrame(inst.sop_instance_uid, index, mode, codec, payload, values_sha, decoded_sha, quality)

    done, failed, lossless = settle(policy, values, gate, peak, ceiling, attempt, _outcome)
    earlier = None  # each failed attempt is recorded as an escalation of the next
    for tried in failed + [done]:
        if earlier is not None:
            tried.quality = tried.quality.after(earlier)
        earlier = tried.quality
    if lossless is not None:
        done.quality.lossless_bytes = len(lossless.payload)
    return done


def _outcome(frame: EncodedFrame) -> auto.Outcome:
    q = frame.quality
    return auto.Outcome(frame.mode, q.passed, q.psnr, q.ssim, len(frame.payload), bool(q.integrity))


def encode_chunk(chunk: Chunk, policy: Mode | Auto, gate: Gate, ceiling: Mode) -> EncodedChunk:
    """Read each instance's header and frames once, and encode every frame (encode_frame)."""
    from dicom_io import header_bytes, iter_frames

    headers, encoded, series = {}, [], {}
    for inst in chunk.instances:
        headers[inst.sop_instance_uid] = header_bytes(inst)
        for index, values in enumerate(iter_frames(inst)):
            encoded.append(encode_frame(chunk, inst, index, values, policy, gate, ceiling, series))
    return EncodedChunk(chunk, headers, encoded)


def _unmeasured(quality: FrameQuality, inst: Instance, problem: str) -> None:
    """A frame whose file does not give back the measured values: the integrity problem, and the worst figures."""
    worst = gates.unmeasured(problem, inst.pixel.bits_stored, modality=inst.modality,
                             rescale_slope=inst.rescale_slope)
    quality.psnr, quality.ssim, quality.max_error = worst["psnr"], worst["ssim"], worst["max_error"]
    quality.max_error_hu = worst.max_error_hu
    quality.integrity.append(problem)


def confirm_chunk(archive_path: str, chunk: Chunk, expected: dict[FrameId, tuple[str, FrameQuality]]
                  ) -> list[FrameQuality]:
    """Decode each of the chunk's frames from the written archive and check it against what was measured at encode:
    `expected` maps a frame to (SHA-256 of its measured decode, its FrameQuality). Returns the qualities, each
    with an integrity problem added where the file does not decode to the measured values (and then no figures:
    those measured at encode are of values the file does not give back)."""
    from archive import ArchiveReader

    rows: list[FrameQuality] = []
    with ArchiveReader(archive_path) as reader:
        for inst in chunk.instances:
            uid, fmt = inst.sop_instance_uid, inst.pixel
            infos = reader.frames(reader.find(uid).key)
            for index in range(inst.number_of_frames):
                digest, quality = expected[(uid, index)]
                info = infos[index]
                if frame_mode(info) != quality.mode:
                    quality.integrity.append(f"archive stores {info.mode}, measured {quality.mode}")
                try:
                    got = _digest(codec_api.decode(reader.payload(info)), fmt.dtype)
                except codec_api.CodecError as exc:
                    _unmeasured(quality, inst, f"decode from the archive failed: {exc}")
                else:
                    if got is None or got != digest:
                        _unmeasured(quality, inst, "lossless decode does not reproduce the original values_sha256"
                                    if quality.mode.is_lossless else
                                    "decode from the archive does not reproduce the measured values")
                rows.append(quality)
    return rows
