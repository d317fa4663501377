"""The bad-input corpus: malformed or unsupported DICOM made at test time from the bundled real files.

Nothing binary is committed: each case is a small function that copies and damages real files (pydicom's test
files, pydicom-data) into a folder. `CASES` maps a case name to (builder, expectation); `build_case(name, dest)`
writes that case's files into `dest` and returns them with what the archive flow should do with each:

* ``archived`` - the file is coded (its SOP Instance UID is an instance of a released archive);
* ``verbatim`` - the file is kept byte for byte (a verbatim object of a released archive);
* ``error``    - the file is reported with a typed error naming it (``reason`` is a substring of that error);
* ``archived-or-error`` - coded, or its study reported as not archived (status failed/quarantined, with reasons).

Every case with a readable study also carries one good companion slice of the same study (CT_small with the
case's StudyInstanceUID), so a test can check that the rest of the study still goes on.
"""
from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from tests import realdata

ARCHIVED, VERBATIM, ERROR, EITHER = "archived", "verbatim", "error", "archived-or-error"


@dataclass(frozen=True)
class BadFile:
    path: Path
    expect: str  # ARCHIVED | VERBATIM | ERROR | EITHER
    reason: str = ""  # for ERROR: a substring of the reported error (case-insensitive)
    sop_instance_uid: str = ""  # set when the file has a readable one


@dataclass(frozen=True)
class BadCase:
    name: str
    files: list[BadFile]
    study_uid: str | None  # the study the good files belong to (None: no study can be told)


find = lru_cache(maxsize=None)(realdata.find)  # the cases look the same few files up again and again


def _read(name: str, under: str = "") -> pydicom.Dataset:
    return pydicom.dcmread(find(name, under), force=True)  # some bundled objects lack the Part 10 preamble


def _save(ds: pydicom.Dataset, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False, **kw)
    return path


def _set(ds: pydicom.Dataset, **attrs) -> pydicom.Dataset:
    """Set attributes without pydicom's value validation (the values are wrong on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, v in attrs.items():
            setattr(ds, k, v)
            if k == "SOPInstanceUID" and getattr(ds, "file_meta", None) is not None:
                ds.file_meta.MediaStorageSOPInstanceUID = v
    return ds


def _fresh(name: str = "CT_small.dcm", study: str | None = None, **attrs) -> pydicom.Dataset:
    """A real file relabelled with a new SOP Instance UID (and `study` when given)."""
    ds = _read(name)
    _set(ds, SOPInstanceUID=generate_uid())
    if study:
        _set(ds, StudyInstanceUID=study)
    return _set(ds, **attrs)


def _companion(dest: Path, study: str, expect: str = ARCHIVED) -> BadFile:
    ds = _fresh("CT_small.dcm", study)
    return BadFile(_save(ds, dest / "good_companion.dcm"), expect, sop_instance_uid=ds.SOPInstanceUID)


def _one(dest: Path, name: str, ds: pydicom.Dataset, expect: str, reason: str = "", companion: str = ARCHIVED,
         **save) -> BadCase:
    """A case of one damaged data set plus the good companion of its study."""
    study = str(ds.StudyInstanceUID)
    bad = BadFile(_save(ds, dest / name, **save), expect, reason, str(ds.get("SOPInstanceUID", "")))
    return BadCase(dest.name, [bad, _companion(dest, study, companion)], study)


def _bytes_case(dest: Path, name: str, data: bytes, reason: str, study: str | None = None) -> BadCase:
    dest.mkdir(parents=True, exist_ok=True)
    p = dest / name
    p.write_bytes(data)
    files = [BadFile(p, ERROR, reason)]
    if study:
        files.append(_companion(dest, study))
    return BadCase(dest.name, files, study)


# ---- not DICOM, empty, truncated ---------------------------------------------------------------------------

def zero_length(dest: Path) -> BadCase:
    return _bytes_case(dest, "empty.dcm", b"", "empty")


def text_file(dest: Path) -> BadCase:
    return _bytes_case(dest, "notes.txt", b"Patient called, will resend the CT tomorrow.\n" * 20, "not")


def random_bytes(dest: Path) -> BadCase:
    import random

    return _bytes_case(dest, "noise.dcm", random.Random(6).randbytes(5000), "not")


def dicm_prefix_garbage(dest: Path) -> BadCase:
    import random

    return _bytes_case(dest, "garbage_after_dicm.dcm", b"\0" * 128 + b"DICM" + random.Random(7).randbytes(3000), "")


def png_renamed(dest: Path) -> BadCase:
    import zlib

    png = b"\x89PNG\r\n\x1a\n" + zlib.compress(b"\0" * 4096)
    return _bytes_case(dest, "image.dcm", png, "not")


def _truncated(dest: Path, source: str, keep: float | int, reason: str) -> BadCase:
    ds = _fresh(source, generate_uid())
    full = dest / "full.tmp"
    _save(ds, full)
    data = full.read_bytes()
    full.unlink()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    cut = data[:n] if n >= 0 else data[:n]
    return _bytes_case(dest, f"truncated_{source}", cut, reason, study=str(ds.StudyInstanceUID))


def truncated_in_meta(dest: Path) -> BadCase:
    return _truncated(dest, "CT_small.dcm", 150, "")


def truncated_in_header(dest: Path) -> BadCase:
    return _truncated(dest, "CT_small.dcm", 1200, "")


def truncated_in_pixels(dest: Path) -> BadCase:
    return _truncated(dest, "CT_small.dcm", 0.7, "")


def truncated_last_byte(dest: Path) -> BadCase:
    return _truncated(dest, "CT_small.dcm", -1, "")


def truncated_encapsulated(dest: Path) -> BadCase:
    return _truncated(dest, "MR_small_jp2klossless.dcm", 0.8, "")


# ---- pixel data that does not match the header --------------------------------------------------------------

def missing_pixel_data(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid())
    del ds.PixelData
    return _one(dest, "no_pixels.dcm", ds, ERROR, "Pixel Data")


def pixel_data_short(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid())
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    return _one(dest, "short_pixels.dcm", ds, ERROR, "Pixel Data")


def pixel_data_long(dest: Path) -> BadCase:
    """More pixel bytes than the header says (trailing junk): the declared frame is still there to code."""
    ds = _fresh(study=generate_uid())
    ds.PixelData = ds.PixelData + b"\x01\x02" * 64
    return _one(dest, "long_pixels.dcm", ds, ARCHIVED)


def frames_exceed_data(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), NumberOfFrames=1000)
    return _one(dest, "many_frames.dcm", ds, ERROR, "Pixel Data")


def corrupt_jpeg2000(dest: Path) -> BadCase:
    """Encapsulated JPEG 2000 whose codestream is damaged: the header reads, the pixels do not decode (found only
    when the flow decodes them). The file must be reported; its good companion may be held back with the study."""
    from pydicom.encaps import encapsulate, generate_fragments

    ds = _fresh("MR_small_jp2klossless.dcm", generate_uid())
    frag = bytearray(next(generate_fragments(ds.PixelData)))
    frag[len(frag) // 3: len(frag) // 3 + 400] = b"\xff" * 400
    ds.PixelData = encapsulate([bytes(frag)])
    return _one(dest, "corrupt_j2k.dcm", ds, ERROR, "cannot decode", companion=EITHER)


def huge_dimensions(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), Rows=65535, Columns=65535)
    return _one(dest, "huge.dcm", ds, ERROR, "65535")


def huge_rows_small_columns(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), Rows=65535, Columns=2)
    return _one(dest, "tall.dcm", ds, ERROR, "Pixel Data")


def zero_rows(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), Rows=0)
    return _one(dest, "zero_rows.dcm", ds, ERROR, "")


def bits_stored_above_allocated(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), BitsStored=17, HighBit=16)
    return _one(dest, "bits17.dcm", ds, ERROR, "BitsStored")


def bits_stored_zero(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), BitsStored=0, HighBit=0)
    return _one(dest, "bits0.dcm", ds, ERROR, "BitsStored")


def bits_stored_too_small(dest: Path) -> BadCase:
    """BitsStored 8 on 16-bit CT values: the reader masks to 8 bits, so the declared stored values are archived."""
    ds = _fresh(study=generate_uid(), BitsStored=8, HighBit=7)
    return _one(dest, "bits8.dcm", ds, ARCHIVED)


def high_bit_wrong(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), HighBit=3)
    return _one(dest, "highbit.dcm", ds, VERBATIM)  # values not in the low bits: not coded, kept whole


def bad_pixel_representation(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), PixelRepresentation=2)
    return _one(dest, "pixrep2.dcm", ds, ERROR, "PixelRepresentation")


def bits_allocated_12(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid(), BitsAllocated=12)
    return _one(dest, "alloc12.dcm", ds, VERBATIM)  # packed 12-bit pixels: not coded, kept whole


# ---- objects without grayscale pixels: kept verbatim ----------------------------------------------------------

def _verbatim(dest: Path, source: str, under: str = "") -> BadCase:
    ds = _read(source, under)
    _set(ds, StudyInstanceUID=generate_uid(), SOPInstanceUID=generate_uid())
    return _one(dest, source, ds, VERBATIM)


def seg_1bit(dest: Path) -> BadCase:
    return _verbatim(dest, "liver_1frame.dcm")


def colour_us_rgb(dest: Path) -> BadCase:
    return _verbatim(dest, "US1_J2KR.dcm")


def colour_us_palette(dest: Path) -> BadCase:
    return _verbatim(dest, "OBXXXX1A_rle.dcm")


def structured_report(dest: Path) -> BadCase:
    return _verbatim(dest, "test-SR.dcm")


def rt_plan(dest: Path) -> BadCase:
    return _verbatim(dest, "rtplan.dcm")


def rt_struct(dest: Path) -> BadCase:
    return _verbatim(dest, "rtstruct.dcm")


def rt_dose(dest: Path) -> BadCase:
    return _verbatim(dest, "rtdose_1frame.dcm")


def ecg_waveform(dest: Path) -> BadCase:
    return _verbatim(dest, "waveform_ecg.dcm")


# ---- study structure ------------------------------------------------------------------------------------------

def mixed_sizes_one_series(dest: Path) -> BadCase:
    """A 128x128 CT slice and a 64x64 MR slice claiming one series: both are coded, each at its own size."""
    study, series = generate_uid(), generate_uid()
    files = []
    for n, src in enumerate(["CT_small.dcm", "MR_small.dcm", "CT_small.dcm"]):
        ds = _fresh(src, study, SeriesInstanceUID=series, InstanceNumber=n + 1)
        files.append(BadFile(_save(ds, dest / f"{n}_{src}"), ARCHIVED, sop_instance_uid=ds.SOPInstanceUID))
    return BadCase(dest.name, files, study)


def duplicate_sop_same_bytes(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid())
    a = _save(ds, dest / "a.dcm")
    b = dest / "b_copy.dcm"
    shutil.copyfile(a, b)
    uid = ds.SOPInstanceUID
    return BadCase(dest.name, [BadFile(a, ARCHIVED, sop_instance_uid=uid),
                               BadFile(b, ERROR, "SOPInstanceUID", uid)], str(ds.StudyInstanceUID))


def duplicate_sop_different_pixels(dest: Path) -> BadCase:
    """Two files claim one SOP Instance UID with different pixels: the first (path order) is kept, the other reported."""
    import numpy as np

    ds = _fresh(study=generate_uid())
    a = _save(ds, dest / "a.dcm")
    arr = ds.pixel_array.copy()
    arr[:10, :10] = 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    b = _save(ds, dest / "b_other_pixels.dcm")
    uid = ds.SOPInstanceUID
    return BadCase(dest.name, [BadFile(a, ARCHIVED, sop_instance_uid=uid), BadFile(b, ERROR, "SOPInstanceUID", uid)],
                   str(ds.StudyInstanceUID))


def duplicate_slice_positions(dest: Path) -> BadCase:
    """Four real CT slices of one series all at the same ImagePositionPatient: all coded, order falls back to
    InstanceNumber."""
    study = generate_uid()
    folder = find("17106").parent
    files = []
    for n, src in enumerate(sorted(p for p in folder.iterdir() if p.is_file())):
        ds = pydicom.dcmread(src)
        _set(ds, StudyInstanceUID=study, SOPInstanceUID=generate_uid(), ImagePositionPatient=[0.0, 0.0, 0.0])
        files.append(BadFile(_save(ds, dest / f"slice{n}.dcm"), ARCHIVED, sop_instance_uid=ds.SOPInstanceUID))
    return BadCase(dest.name, files, study)


def missing_study_uid(dest: Path) -> BadCase:
    ds = _fresh()
    del ds.StudyInstanceUID
    p = _save(ds, dest / "no_study.dcm")
    return BadCase(dest.name, [BadFile(p, ERROR, "StudyInstanceUID", ds.SOPInstanceUID)], None)


def missing_sop_uid(dest: Path) -> BadCase:
    ds = _fresh(study=generate_uid())
    del ds.SOPInstanceUID
    return _one(dest, "no_sop.dcm", ds, ERROR, "SOPInstanceUID")


def dicomdir(dest: Path) -> BadCase:
    dest.mkdir(parents=True, exist_ok=True)
    p = dest / "DICOMDIR"
    shutil.copyfile(find("DICOMDIR", "dicomdirtests"), p)
    return BadCase(dest.name, [BadFile(p, ERROR, "DICOMDIR")], None)


def raw_dataset_no_preamble(dest: Path) -> BadCase:
    """A data set without preamble and file meta (legal for old systems): read and coded."""
    ds = _fresh("MR_small_implicit.dcm", generate_uid())
    del ds.file_meta
    ds.preamble = None
    return _one(dest, "raw_implicit.dcm", ds, ARCHIVED, implicit_vr=True, little_endian=True)


# ---- UIDs hostile as file names ------------------------------------------------------------------------------

def _hostile(dest: Path, study: str, sop: str, series: str | None = None) -> BadCase:
    """UIDs that must never become paths. The study carries two files so the archive holds something coded."""
    files = []
    for n, s in enumerate([sop, sop + ".2"]):
        ds = _fresh(study=study)
        _set(ds, SOPInstanceUID=s)
        if series is not None:
            _set(ds, SeriesInstanceUID=series)
        files.append(BadFile(_save(ds, dest / f"hostile{n}.dcm"), ARCHIVED, sop_instance_uid=s))
    return BadCase(dest.name, files, study)


def uid_dotdot(dest: Path) -> BadCase:
    return _hostile(dest, "../../../../escaped-study", "../../escaped-sop", "../escaped-series")


def uid_absolute(dest: Path) -> BadCase:
    # points into the test's own temporary folder (outside every configured one), so an escape is seen and harmless
    target = dest.parents[2] / "ESCAPED-ABSOLUTE"
    return _hostile(dest, str(target), str(target) + "-sop", str(target) + "-series")


def uid_very_long(dest: Path) -> BadCase:
    return _hostile(dest, "1." + "2" * 4000, "1.3." + "4" * 4000)


def uid_nul_and_separators(dest: Path) -> BadCase:
    # (no backslash: it is DICOM's value separator, which makes a multi-valued UID - uid_multivalued)
    return _hostile(dest, "1.2.3\x00../x/y/z", "a/b\x00c\nd\te", "ser\x00ies/..")


def uid_multivalued(dest: Path) -> BadCase:
    """A backslash makes StudyInstanceUID multi-valued (VM 2); its text must still never become a path."""
    return _hostile(dest, "1.2.3\\../../escaped-multi", "1.2.4\\/escaped-sop")


def uid_dot_names(dest: Path) -> BadCase:
    return _hostile(dest, "..", ".", "~")


def uid_high_bytes(dest: Path) -> BadCase:
    # UI values are written as latin-1 by pydicom: bytes 0x80-0xFF, DEL and escape, read back as odd text
    return _hostile(dest, "1.2.\xe9\xff\x7f\x1b[2J/..", "1.2.\xe8\xa0\x85.9")


def hostile_file_name(dest: Path) -> BadCase:
    """The inbox file's own name is odd (spaces, newline, unicode, leading dash): read and coded all the same."""
    ds = _fresh(study=generate_uid())
    p = _save(ds, dest / "-rf \n ü 'x'.dcm")
    return BadCase(dest.name, [BadFile(p, ARCHIVED, sop_instance_uid=ds.SOPInstanceUID)], str(ds.StudyInstanceUID))


CASES: dict[str, Callable[[Path], BadCase]] = {
    f.__name__: f
    for f in [
        zero_length, text_file, random_bytes, dicm_prefix_garbage, png_renamed,
        truncated_in_meta, truncated_in_header, truncated_in_pixels, truncated_last_byte, truncated_encapsulated,
        missing_pixel_data, pixel_data_short, pixel_data_long, frames_exceed_data, corrupt_jpeg2000,
        huge_dimensions, huge_rows_small_columns, zero_rows, bits_stored_above_allocated, bits_stored_zero,
        bits_stored_too_small, high_bit_wrong, bad_pixel_representation, bits_allocated_12,
        seg_1bit, colour_us_rgb, colour_us_palette, structured_report, rt_plan, rt_struct, rt_dose, ecg_waveform,
        mixed_sizes_one_series, duplicate_sop_same_bytes, duplicate_sop_different_pixels, duplicate_slice_positions,
        missing_study_uid, missing_sop_uid, dicomdir, raw_dataset_no_preamble,
        uid_dotdot, uid_absolute, uid_very_long, uid_nul_and_separators, uid_multivalued, uid_dot_names, uid_high_bytes,
        hostile_file_name,
    ]
}


def build_case(name: str, dest: Path) -> BadCase:
    """Write case `name` into the folder `dest` (created); dest's name becomes the case name."""
    dest.mkdir(parents=True, exist_ok=True)
    return CASES[name](dest)


def build_corpus(dest: Path) -> list[BadCase]:
    """Every case, each in its own subfolder of `dest`."""
    return [build_case(name, dest / name) for name in CASES]
