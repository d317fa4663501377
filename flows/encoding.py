"""The archive flow's chunk tasks: encode a chunk (read, encode, measure, escalate) and confirm it from the written
file. Each task hands its chunk to a worker process (flows.workers; the work is flows.chunk_work) so that a study
uses every core while the task runner's threads wait."""
from __future__ import annotations

from prefect import task

from codec.modes import Mode
from configs import Gate
from flows import chunk_work, workers
from flows.chunk_work import EncodedChunk
from flows.chunks import Chunk
from quality.auto import Auto
from quality.records import FrameId, FrameQuality


@task(name="encode-chunk")
def encode_chunk(chunk: Chunk, policy: Mode | Auto, gate: Gate, ceiling: Mode, processes: int = 0) -> EncodedChunk:
    """Read the chunk's headers and frames once and encode each frame at `policy` (or `auto`'s choice), stricter
    while its gate fails, up to `ceiling` (chunk_work.encode_chunk)."""
    return workers.run(processes, chunk_work.encode_chunk, chunk, policy, gate, ceiling)


@task(name="verify-frames")
def verify_frames(archive_path: str, chunk: Chunk, expected: dict[FrameId, tuple[str, FrameQuality]],
                  processes: int = 0) -> list[FrameQuality]:
    """Decode the chunk's frames from the written archive and check them against what encode measured."""
    return workers.run(processes, chunk_work.confirm_chunk, archive_path, chunk, expected)
