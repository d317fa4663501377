"""The encoding tasks of the archive flow: read a chunk's stored values (dicom_io), encode them (codec)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from prefect import task

from codec import api as codec_api
from codec.modes import Mode
from dicom_io import Instance
from quality import auto, metrics
from quality.auto import Auto
from flows.chunks import CHUNK_FRAMES, Chunk


@dataclass
class EncodedFrame:
    sop_uid: str
    frame: int
    mode: Mode
    codec: str
    payload: bytes
    values_sha256: str


@dataclass
class EncodedChunk:
    chunk: Chunk
    headers: dict[str, bytes]  # SOP Instance UID -> header bytes (Pixel Data cut out)
    frames: list[EncodedFrame]


def codec_name(payload: bytes) -> str:
    """The codec and model that made a payload, e.g. 'medzip-learned:3fa2c1d0e4b5a697'."""
    info = codec_api.payload_info(payload)
    name = str(info.get("codec") or "medzip")
    return f"{name}:{info['model_hash']}" if info.get("model_hash") else name


def _encode_group(frames: list[np.ndarray], mode: Mode, inst: Instance) -> list[bytes]:
    """Encode frames of one instance at one mode."""
    return [codec_api.encode(f, mode, inst.pixel.bits_stored, inst.pixel.signed) for f in frames]


def _encode_frames(frames: list[np.ndarray], policy: Mode | Auto, gate, inst: Instance) -> list[tuple[Mode, bytes]]:
    """Each frame's mode (the policy's, or `auto`'s choice for it under `gate`) and payload."""
    modes = [policy if isinstance(policy, Mode) else auto.first_mode(f, gate, metrics.psnr_peak(f)) for f in frames]
    return [(mode, _encode_group([f], mode, inst)[0]) for f, mode in zip(frames, modes)]


@task(name="encode-chunk")
def encode_chunk(chunk: Chunk, mode: Mode | Auto, gate=None) -> EncodedChunk:
    """Read each frame's stored values (dicom_io), encode it (codec) at `mode` or, for the `auto` policy, at the
    mode quality.auto picks for it under `gate`; read each instance's header."""
    from archive import values_sha256
    from dicom_io import header_bytes, iter_frames

    headers, encoded = {}, []
    for inst in chunk.instances:
        headers[inst.sop_instance_uid] = header_bytes(inst)
        batch: list[np.ndarray] = []

        def flush() -> None:
            start = len([e for e in encoded if e.sop_uid == inst.sop_instance_uid])
            for n, (values, (used, payload)) in enumerate(zip(batch, _encode_frames(batch, mode, gate, inst))):
                encoded.append(EncodedFrame(inst.sop_instance_uid, start + n, used, codec_name(payload), payload,
                                            values_sha256(values)))
            batch.clear()

        for values in iter_frames(inst):  # a long multi-frame instance is encoded CHUNK_FRAMES frames at a time
            batch.append(values)
            if len(batch) >= CHUNK_FRAMES:
                flush()
        flush()
    return EncodedChunk(chunk, headers, encoded)


@task(name="reencode-frames")
def reencode_frames(inst: Instance, frames: list[int], mode: Mode) -> list[EncodedFrame]:
    """Encode some frames of one instance again at a stricter mode (escalation)."""
    from archive import values_sha256
    from dicom_io import read_frame

    values = [read_frame(inst, i) for i in frames]
    payloads = _encode_group(values, mode, inst)
    return [EncodedFrame(inst.sop_instance_uid, i, mode, codec_name(p), p, values_sha256(v))
            for i, v, p in zip(frames, values, payloads)]
