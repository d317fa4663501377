"""The verify step of the archive flow: reopen the written FILE, decode each frame and judge it against the
original read again from the input (quality.gates does the judging)."""
from __future__ import annotations

import numpy as np
from prefect import task

from codec import api as codec_api
from codec.modes import Mode
from configs import Gate
from flows.archived import frame_mode
from flows.chunks import Chunk
from quality import gates, metrics
from quality.records import FrameId, FrameQuality


def measure(original: np.ndarray, payload: bytes, archived_sha: str, mode: Mode, bits_stored: int, gate: Gate, *,
            modality: str = "", rescale_slope: float = 1.0) -> tuple[gates.Evaluation, list[str]]:
    """Decode one payload and judge it against the original: (evaluation, integrity problems)."""
    from archive import values_sha256

    integrity: list[str] = []
    if archived_sha != values_sha256(original):
        integrity.append("archived values_sha256 is not that of the input's stored values")
    try:
        decoded = codec_api.decode(payload)
    except codec_api.CodecError as exc:
        failed = gates.unmeasured("not decodable", bits_stored, modality=modality, rescale_slope=rescale_slope)
        return failed, integrity + [f"decode failed: {exc}"]
    judged = gates.evaluate(original, decoded, gate, mode, bits_stored=bits_stored, modality=modality,
                            rescale_slope=rescale_slope)
    integrity += judged.integrity
    if judged.unmeasured is None and mode.is_lossless:
        try:
            exact = values_sha256(decoded, original.dtype) == archived_sha
        except ValueError:
            exact = False
        if not exact:
            integrity.append("lossless decode does not reproduce the original values_sha256")
    return judged, integrity


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
                mode = frame_mode(info)
                judged, integrity = measure(original, payload, info.values_sha256, mode, fmt.bits_stored, gate,
                                            modality=chunk.modality, rescale_slope=inst.rescale_slope)
                rows.append(FrameQuality(
                    series_uid=chunk.series_uid, sop_uid=uid, frame=idx, modality=chunk.modality, mode=mode,
                    codec=info.codec, **judged.figures, payload_bytes=len(payload), original_bytes=frame_bytes,
                    ratio=metrics.ratio(frame_bytes, len(payload)), gate_reasons=judged.gate_reasons,
                    integrity=integrity, max_error_hu=judged.max_error_hu,
                ))
    return rows
