"""A study cut into chunks of up to CHUNK_FRAMES frames of one series, so it streams through the task runner a
chunk at a time and the codec gets a batch per call."""
from __future__ import annotations

from dataclasses import dataclass

from dicom_io import Instance, Study

CHUNK_FRAMES = 16


@dataclass
class Chunk:
    """Consecutive instances of one series, at most CHUNK_FRAMES frames (a multi-frame instance may exceed it)."""

    series_uid: str
    modality: str
    instances: list[Instance]


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
