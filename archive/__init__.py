"""The medzip study archive: one HDF5 file per study (docs/archive-format.md), its catalog, atomic writes and
integrity checks. Knows nothing of DICOM parsing, the codec's internals, Keras or Prefect: it stores plain values."""
from archive.catalog import ArchiveRecord, Catalog, Claim
from archive.checksums import bytes_sha256, file_sha256, study_content_hash, values_sha256
from archive.errors import (
    ArchiveError,
    ArchiveWriteError,
    CatalogError,
    ChecksumMismatchError,
    DamagedArchiveError,
    ForeignArchiveError,
    IncompleteArchiveError,
    NoSpaceError,
    UnsupportedVersionError,
)
from archive.layout import FORMAT_VERSION, MAGIC, FrameKey, InstanceKey, QualityRow, VerbatimKey, stored_dtype
from archive.names import safe_archive_name
from archive.reader import ArchiveReader, verify_archive
from archive.records import ArchiveInfo, FrameInfo, InstanceInfo, Limits, SeriesInfo, VerbatimInfo, VerifyReport
from archive.rewrite import NewPayload, rewrite_archive, set_quality
from archive.space import atomic_move, check_room, check_study_room  # flows move archives; a full disk is a NoSpaceError
from archive.writer import ArchiveWriter
from atomicfs import is_temp_name, remove_stale_temp_files, stale_temp_files

__all__ = [name for name in dir() if not name.startswith("_")]
