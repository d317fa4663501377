"""Receive DICOM from a PACS or modality: a C-STORE SCP (pynetdicom) that drops each instance into the inbox.

Each instance lands at <inbox>/<study uid>/<sop instance uid>.dcm, written under a hidden temporary name in that
folder, fsynced, then renamed, so the inbox scanner never sees half a file. The dataset is stored exactly as it
arrived (File Meta from the negotiated transfer syntax, then the received bytes), never re-encoded.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import re
from pathlib import Path
from typing import Callable

from atomicfs import atomic_write

log = logging.getLogger(__name__)

# C-STORE response statuses (PS3.4 B.2.3). 0xCxxx "cannot understand" codes are ours to choose within the range.
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_DECODE = 0xC210
MISSING_UID = 0xC211
UNEXPECTED_ERROR = 0xC212
UID_MISMATCH = 0xC213  # the data set's SOP Instance UID is not the one the C-STORE request announced

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_SAFE_RE = re.compile(r"[^0-9A-Za-z._-]")


def safe_name(uid: str) -> str:
    """A file/folder name for a UID that can never leave its folder: a valid UID stays as it is; anything else
    is reduced to [0-9A-Za-z._-] without leading dots and tagged with a hash of the original, so two different
    odd UIDs never collide."""
    uid = str(uid)
    if _UID_RE.match(uid) and len(uid) <= 64:
        return uid
    cleaned = _SAFE_RE.sub("_", uid).lstrip(".")[:48]
    digest = hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{cleaned}-{digest}" if cleaned else f"uid-{digest}"


def store_instance(inbox: Path, study_uid: str, sop_uid: str, part10_bytes: bytes) -> Path:
    """Write one instance (a whole Part 10 byte stream) atomically into the inbox; returns its path. Raises OSError."""
    inbox = Path(inbox).resolve()
    folder = inbox / safe_name(study_uid)
    target = folder / f"{safe_name(sop_uid)}.dcm"
    if not target.resolve().is_relative_to(inbox):  # belt and braces: safe_name already prevents it
        raise PermissionError(errno.EPERM, f"refusing to write outside the inbox: {target}")
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, part10_bytes)


def _handle_store(event, inbox: Path, on_stored: Callable[[Path], None] | None) -> int:
    try:
        ds = event.dataset
        sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
        study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    except Exception as exc:
        log.warning("C-STORE from %s: cannot decode the dataset: %s", event.assoc.requestor.ae_title, exc)
        return CANNOT_DECODE
    if not sop_uid or not study_uid or not sop_class:
        log.warning("C-STORE refused: dataset lacks SOPInstanceUID, SOPClassUID or StudyInstanceUID")
        return MISSING_UID
    if sop_uid != str(event.request.AffectedSOPInstanceUID):
        log.warning("C-STORE refused: data set SOPInstanceUID %s, request announced %s", sop_uid,
                    event.request.AffectedSOPInstanceUID)
        return UID_MISMATCH
    if sop_class != str(event.context.abstract_syntax):
        log.warning("C-STORE refused: dataset SOP class %s sent under %s", sop_class, event.context.abstract_syntax)
        return DATASET_DOES_NOT_MATCH_SOP_CLASS
    try:
        path = store_instance(inbox, study_uid, sop_uid, event.encoded_dataset(include_meta=True))
    except OSError as exc:
        log.error("C-STORE of %s: cannot write to the inbox %s: %s", sop_uid, inbox, exc)
        return OUT_OF_RESOURCES
    except Exception as exc:
        log.error("C-STORE of %s: cannot store: %s", sop_uid, exc)
        return UNEXPECTED_ERROR
    log.info("received %s -> %s", sop_uid, path)
    if on_stored is not None:
        try:
            on_stored(path)
        except Exception:  # the instance is stored; a failing hook must not turn that into a refusal
            log.exception("on_stored hook failed for %s", path)
    return SUCCESS


def make_listener_ae(ae_title: str = "MEDZIP"):
    """The SCP's application entity: every storage SOP class, every transfer syntax pynetdicom knows, and
    Verification (C-ECHO) so a PACS can test the link."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 4 * 1024 * 1024  # large images arrive in far fewer PDUs than with pynetdicom's 16 KiB
    for ctx in AllStoragePresentationContexts:
        ae.add_supported_context(ctx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae


def run_listener(
    inbox: Path | str,
    ae_title: str = "MEDZIP",
    port: int = 11112,
    host: str = "0.0.0.0",
    *,
    block: bool = True,
    on_stored: Callable[[Path], None] | None = None,
):
    """Run a C-STORE SCP writing every received instance into `inbox` (see module doc).

    block=True serves until interrupted (Ctrl-C) and returns None; block=False returns the running
    pynetdicom server (call .shutdown() to stop it). `on_stored(path)` is called after each stored file.
    """
    from pynetdicom import evt

    inbox = Path(inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    ae = make_listener_ae(ae_title)
    handlers = [(evt.EVT_C_STORE, _handle_store, [inbox, on_stored])]
    log.info("listening as %s on %s:%d, storing into %s", ae_title, host, port, inbox)
    if block:
        try:
            ae.start_server((host, int(port)), block=True, evt_handlers=handlers)
        except KeyboardInterrupt:
            ae.shutdown()
        return None
    return ae.start_server((host, int(port)), block=False, evt_handlers=handlers)
