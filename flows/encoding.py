"""The tasks of the archive flow. Each does one step by calling dicom_io, codec or archive; the only numbers
computed here come from codec.metrics.

A study is cut into chunks of up to CHUNK_FRAMES frames of one series, so it streams through the task runner a
chunk at a time and the codec gets a batch per call.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from prefect import task

from codec import api as codec_api
from quality import metrics
from codec.modes import Mode
from configs import Gate
from dicom_io import Instance, Study

CHUNK_FRAMES = 16

FrameId = tuple[str, int]  # (SOP Instance UID, frame index)


@dataclass
class Chunk:
    """Consecutive instances of one series, at most CHUNK_FRAMES frames (a multi-frame instance may exceed it)."""

    series_uid: str
    modality: str
    instances: list[Instance]


@dataclass
class EncodedFrame:
    sop_uid: str
    frame: int
    mode: str
    codec: str
    payload: bytes
    values_sha256: str


@dataclass
class EncodedChunk:
    chunk: Chunk
    headers: dict[str, bytes]  # SOP Instance UID -> header bytes (Pixel Data cut out)
    frames: list[EncodedFrame]


@dataclass
class FrameQuality:
    series_uid: str
    sop_uid: str
    frame: int
    modality: str
    mode: str
    codec: str
    psnr: float
    ssim: float
    max_error: int
    payload_bytes: int
    original_bytes: int
    ratio: float
    gate_reasons: list[str] = field(default_factory=list)  # the gate's reasons (empty: passed)
    integrity: list[str] = field(default_factory=list)  # checksum, bound or decode problems: never escalated away
    escalations: list[str] = field(default_factory=list)  # modes tried before this one
    max_error_hu: float | None = None

    @property
    def key(self) -> FrameId:
        return (self.sop_uid, self.frame)

    @property
    def passed(self) -> bool:
        return not self.gate_reasons and not self.integrity

    def as_dict(self) -> dict:
        return asdict(self)


def chunks_of(study: Study, limit: int = CHUNK_FRAMES) -> list[Chunk]:
    out: list[Chunk] = []
    for series in study.series:
        current: list[Instance] = []
        frames = 0
        for inst in series.instances:
            if current and frames + inst.number_of_frames > limit:
                out.append(Chunk(series.series_instance_uid, series.modality, current))
                current, frames = [], 0
            current.append(inst)
            frames += inst.number_of_frames
        if current:
            out.append(Chunk(series.series_instance_uid, series.modality, current))
    return out


def codec_name(payload: bytes) -> str:
    """The codec and model that made a payload, e.g. 'medzip-learned:3fa2c1d0e4b5a697'."""
    info = codec_api.payload_info(payload)
    name = str(info.get("codec") or "medzip")
    return f"{name}:{info['model_hash']}" if info.get("model_hash") else name


def _encode_group(frames: list[np.ndarray], mode: Mode, inst: Instance) -> list[bytes]:
    """Encode frames of one instance at one mode: the codec's batch call when it has one."""
    batch = getattr(codec_api, "encode_many", None)
    if batch is not None and len(frames) > 1:
        return list(batch(frames, mode, inst.pixel.bits_stored, inst.pixel.signed))
    return [codec_api.encode(f, mode, inst.pixel.bits_stored, inst.pixel.signed) for f in frames]


@task(name="encode-chunk")
def encode_chunk(chunk: Chunk, mode: str) -> EncodedChunk:
    """Read each frame's stored values (dicom_io), encode it (codec), read each instance's header."""
    from archive import values_sha256
    from dicom_io import header_bytes, iter_frames

    headers, encoded = {}, []
    for inst in chunk.instances:
        headers[inst.sop_instance_uid] = header_bytes(inst)
        batch: list[np.ndarray] = []

        def flush() -> None:
            start = len([e for e in encoded if e.sop_uid == inst.sop_instance_uid])
            for n, (values, payload) in enumerate(zip(batch, _encode_group(batch, Mode.parse(mode), inst))):
                encoded.append(EncodedFrame(inst.sop_instance_uid, start + n, mode, codec_name(payload), payload,
                                            values_sha256(values)))
            batch.clear()

        for values in iter_frames(inst):  # a long multi-frame instance is encoded CHUNK_FRAMES frames at a time
            batch.append(values)
            if len(batch) >= CHUNK_FRAMES:
                flush()
        flush()
    return EncodedChunk(chunk, headers, encoded)


@task(name="reencode-frames")
def reencode_frames(inst: Instance, frames: list[int], mode: str) -> list[EncodedFrame]:
    """Encode some frames of one instance again at a stricter mode (escalation)."""
    from archive import values_sha256
    from dicom_io import read_frame

    values = [read_frame(inst, i) for i in frames]
    payloads = _encode_group(values, Mode.parse(mode), inst)
    return [EncodedFrame(inst.sop_instance_uid, i, mode, codec_name(p), p, values_sha256(v))
            for i, v, p in zip(frames, values, payloads)]


def measure(original: np.ndarray, payload: bytes, archived_sha: str, mode: Mode, bits_stored: int,
            gate: Gate) -> tuple[float, float, int, list[str], list[str]]:
    """Decode one payload and measure it against the original: (psnr, ssim, max_error, gate reasons, integrity)."""
    from archive import values_sha256

    integrity: list[str] = []
    if archived_sha != values_sha256(original):
        integrity.append("archived values_sha256 is not that of the input's stored values")
    try:
        decoded = codec_api.decode(payload)
    except codec_api.CodecError as exc:
        return -math.inf, 0.0, (1 << bits_stored), ["not decodable"], integrity + [f"decode failed: {exc}"]
    if decoded.shape != original.shape:
        return -math.inf, 0.0, (1 << bits_stored), ["wrong shape"], integrity + [
            f"decoded shape {decoded.shape} != original {original.shape}"]
    psnr = metrics.psnr(original, decoded, bits_stored)
    ssim = metrics.ssim(original, decoded)
    err = metrics.max_error(original, decoded)
    bound = mode.max_error_bound
    if bound is not None and err > bound:
        integrity.append(f"max error {err} exceeds the {mode} bound {bound}")
    if mode.is_lossless:
        try:
            exact = values_sha256(decoded, original.dtype) == archived_sha
        except ValueError:
            exact = False
        if not exact:
            integrity.append("lossless decode does not reproduce the original values_sha256")
    return psnr, ssim, err, gate.failures(psnr, ssim, err), integrity


@task(name="verify-frames")
def verify_frames(archive_path: str, chunk: Chunk, gate: Gate, only: list[FrameId] | None = None) -> list[FrameQuality]:
    """Reopen the written archive, decode the chunk's frames (all, or `only` these) and measure them against the
    originals read again from the input."""
    from archive import ArchiveReader
    from dicom_io import iter_frames, read_frame

    wanted = set(only) if only is not None else None
    rows: list[FrameQuality] = []
    with ArchiveReader(archive_path) as reader:
        for inst in chunk.instances:
            uid, fmt = inst.sop_instance_uid, inst.pixel
            indices = [f for (u, f) in sorted(wanted) if u == uid] if wanted is not None else None
            if indices == []:
                continue
            stored = reader.find(uid)
            infos = reader.frames(stored.key)
            originals = ((i, read_frame(inst, i)) for i in indices) if indices is not None else enumerate(
                iter_frames(inst))
            frame_bytes = metrics.uncompressed_bytes(fmt.rows, fmt.columns, 1, fmt.bits_allocated)
            for idx, original in originals:
                info = infos[idx]
                payload = reader.payload(info)
                mode = Mode.parse(info.mode)
                psnr, ssim, err, reasons, integrity = measure(original, payload, info.values_sha256, mode,
                                                               fmt.bits_stored, gate)
                rows.append(FrameQuality(
                    series_uid=chunk.series_uid, sop_uid=uid, frame=idx, modality=chunk.modality, mode=str(mode),
                    codec=info.codec, psnr=psnr, ssim=ssim, max_error=err, payload_bytes=len(payload),
                    original_bytes=frame_bytes, ratio=metrics.ratio(frame_bytes, len(payload)),
                    gate_reasons=reasons, integrity=integrity,
                    max_error_hu=float(err * abs(inst.rescale_slope)) if chunk.modality.upper() == "CT" else None,
                ))
    return rows


@task(name="hash-inputs")
def hash_inputs(study: Study) -> str:
    """The study's content hash: every input object's (SOP Instance UID, file SHA-256)."""
    from archive import file_sha256, study_content_hash

    objects = [*study.instances, *study.verbatim]
    return study_content_hash((o.sop_instance_uid, file_sha256(o.path)) for o in objects)
