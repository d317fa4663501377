"""Deliver DICOM files to a PACS: DICOM C-STORE (pynetdicom) and DICOMweb STOW-RS (httpx).

Both report one DeliveryResult per file. A file counts as delivered only when the PACS accepted it
without reservation: C-STORE status 0x0000, or STOW-RS listing it in ReferencedSOPSequence with no
WarningReason. Transient failures (no association, dropped connection, HTTP 5xx/timeouts, "out of
resources") are retried with exponential backoff; permanent refusals are reported at once.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

import pydicom
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts in one association request
UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)


@dataclass
class DeliveryResult:
    """What happened to one file. `status` is the C-STORE status or the STOW-RS FailureReason/WarningReason."""

    path: Path
    sop_instance_uid: str | None
    sop_class_uid: str | None
    protocol: str  # "cstore" | "stowrs"
    delivered: bool = False
    status: int | None = None
    attempts: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sop_instance_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "protocol": self.protocol,
            "delivered": self.delivered,
            "status": None if self.status is None else f"0x{self.status:04X}",
            "attempts": self.attempts,
            "reason": self.reason,
        }


class CStoreTarget(Protocol):
    """Where C-STORE sends to: configs.schema.Delivery fits, and so does CStoreDestination below."""

    host: str
    port: int
    called_ae: str
    calling_ae: str


@dataclass(frozen=True)
class CStoreDestination:
    host: str
    port: int
    called_ae: str = "ANY-SCP"
    calling_ae: str = "MEDZIP"
    timeout_s: float = 30.0


@dataclass
class _Item:
    result: DeliveryResult
    transfer_syntax: UID | None = None


def _read_headers(paths: Iterable[Path | str], protocol: str) -> list[_Item]:
    items = []
    for p in paths:
        path = Path(p)
        result = DeliveryResult(path=path, sop_instance_uid=None, sop_class_uid=None, protocol=protocol)
        item = _Item(result)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            result.sop_instance_uid = str(ds.SOPInstanceUID)
            result.sop_class_uid = str(ds.SOPClassUID)
            item.transfer_syntax = UID(ds.file_meta.TransferSyntaxUID)
        except Exception as exc:  # unreadable or incomplete file: never retried, reported as is
            result.reason = f"cannot read {path}: missing SOP/transfer syntax UIDs or not DICOM ({exc})"
        items.append(item)
    return items


def _backoff(attempt: int, backoff_s: float) -> None:
    time.sleep(backoff_s * (2 ** (attempt - 1)))


# ---------------------------------------------------------------- C-STORE

def _contexts(items: list[_Item]):
    """One presentation context per (SOP class, transfer syntax) pair; uncompressed ones also offer
    both little-endian syntaxes so pynetdicom can send in whichever the PACS accepts."""
    from pynetdicom.presentation import build_context

    pairs: dict[tuple[str, str], None] = {}
    for it in items:
        pairs.setdefault((it.result.sop_class_uid, str(it.transfer_syntax)), None)
    contexts = []
    for sop_class, ts in pairs:
        syntaxes = [ts]
        if ts in UNCOMPRESSED:
            syntaxes += [str(u) for u in UNCOMPRESSED if str(u) != ts]
        contexts.append(build_context(sop_class, syntaxes))
    return contexts


def _cstore_status_is_transient(status: int) -> bool:
    return 0xA700 <= status <= 0xA7FF  # Out of resources: the PACS may recover


def send_cstore(
    files: Iterable[Path | str],
    target: CStoreTarget,
    *,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float | None = None,
) -> list[DeliveryResult]:
    """C-STORE every file to `target` (host, port, called_ae, calling_ae); one DeliveryResult per file, in order.

    Files are sent over as few associations as their presentation contexts allow (at most 128 per association).
    An instance is retried (up to `retries` more times, sleeping backoff_s·2^(n-1)) when the association could not
    be made, dropped, timed out, or the PACS answered 0xA7xx; any other non-zero status is final.
    """
    from pynetdicom import AE

    items = _read_headers(files, "cstore")
    pending = [it for it in items if it.result.sop_class_uid]
    timeout = timeout_s if timeout_s is not None else getattr(target, "timeout_s", 30.0)
    attempt = 0
    while pending and attempt <= retries:
        attempt += 1
        if attempt > 1:
            log.info("C-STORE to %s: retrying %d instance(s), try %d", target.called_ae, len(pending), attempt)
            _backoff(attempt - 1, backoff_s)
        still: list[_Item] = []
        for batch in _batches_by_context(pending):
            still += _cstore_batch(AE, batch, target, timeout, attempt)
        pending = still
    return [it.result for it in items]


def _batches_by_context(items: list[_Item]) -> list[list[_Item]]:
    batches: list[list[_Item]] = []
    current: list[_Item] = []
    seen: set[tuple[str, str]] = set()
    for it in items:
        key = (it.result.sop_class_uid, str(it.transfer_syntax))
        if key not in seen and len(seen) == MAX_CONTEXTS:
            batches.append(current)
            current, seen = [], set()
        seen.add(key)
        current.append(it)
    if current:
        batches.append(current)
    return batches


def _cstore_batch(AE, batch: list[_Item], target: CStoreTarget, timeout: float, attempt: int) -> list[_Item]:
    """Send one batch over one association; returns the items worth another try."""
    ae = AE(ae_title=target.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for it in batch:
        it.result.attempts = attempt
    try:
        assoc = ae.associate(target.host, int(target.port), _contexts(batch), ae_title=target.called_ae)
    except Exception as exc:  # socket errors surface here on some platforms
        for it in batch:
            it.result.reason = f"association to {target.called_ae}@{target.host}:{target.port} failed: {exc}"
        return batch
    if not assoc.is_established:
        why = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not established"
        for it in batch:
            it.result.reason = f"association to {target.called_ae}@{target.host}:{target.port} {why}"
        return batch
    retry: list[_Item] = []
    try:
        for i, it in enumerate(batch):
            if not assoc.is_established:  # dropped mid-batch: the rest go again
                for rest in batch[i:]:
                    rest.result.reason = "association dropped before this instance was sent"
                retry += batch[i:]
                break
            if not _cstore_one(assoc, it):
                retry.append(it)
    finally:
        if assoc.is_established:
            assoc.release()
    return retry


def _cstore_one(assoc, it: _Item) -> bool:
    """Send one file; True when its outcome is final (delivered or permanently refused)."""
    r = it.result
    try:
        ds = pydicom.dcmread(r.path)
        status = assoc.send_c_store(ds)
    except ValueError as exc:  # pynetdicom: no accepted presentation context for this SOP class/syntax
        r.reason = f"PACS accepted no presentation context for {r.sop_class_uid} / {it.transfer_syntax}: {exc}"
        return True
    except Exception as exc:
        r.reason = f"C-STORE failed: {exc}"
        return False
    if "Status" not in status:  # timeout, abort or invalid response
        r.reason = "no C-STORE response (timeout, abort or invalid response)"
        return False
    r.status = int(status.Status)
    if r.status == 0x0000:
        r.delivered, r.reason = True, ""
        return True
    comment = str(status.get("ErrorComment", "") or "")
    kind = "warning" if r.status in (0x0001, 0xB000, 0xB006, 0xB007) else "failure"
    r.reason = f"PACS answered {kind} 0x{r.status:04X}{': ' + comment if comment else ''}; not counted as delivered"
    return not _cstore_status_is_transient(r.status)


# ---------------------------------------------------------------- STOW-RS

_REFERENCED = "00081199"  # ReferencedSOPSequence
_FAILED = "00081198"  # FailedSOPSequence
_SOP_INSTANCE = "00081155"  # ReferencedSOPInstanceUID
_FAILURE_REASON = "00081197"
_WARNING_REASON = "00081196"


def _first(item: dict, tag: str):
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _parse_stow_response(text: str) -> tuple[dict[str, int | None], dict[str, int]]:
    """(accepted SOP instance UID -> WarningReason or None, failed SOP instance UID -> FailureReason)."""
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}, {}
    if isinstance(body, list):  # some servers wrap the single dataset in a list
        body = body[0] if body else {}
    accepted = {}
    for item in body.get(_REFERENCED, {}).get("Value") or []:
        uid = _first(item, _SOP_INSTANCE)
        if uid:
            accepted[str(uid)] = _first(item, _WARNING_REASON)
    failed = {}
    for item in body.get(_FAILED, {}).get("Value") or []:
        uid = _first(item, _SOP_INSTANCE)
        if uid:
            failed[str(uid)] = int(_first(item, _FAILURE_REASON) or 0x0110)
    return accepted, failed


def _multipart(paths: list[Path]) -> tuple[bytes, str]:
    boundary = f"medzip-{uuid.uuid4().hex}"
    chunks = []
    for p in paths:
        chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        chunks.append(p.read_bytes())
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


def _stow_endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/studies") else url + "/studies"


def send_stowrs(
    files: Iterable[Path | str],
    url: str,
    auth: Any = None,
    *,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    max_request_bytes: int = 64 * 1024 * 1024,
    client: Any = None,
) -> list[DeliveryResult]:
    """STOW-RS every file to `url` (the DICOMweb root, e.g. http://pacs:8042/dicom-web, or its /studies);
    one DeliveryResult per file, in order. `auth` is anything httpx takes ((user, password) for basic auth).

    Files go as multipart/related; type="application/dicom" requests of at most `max_request_bytes` (a file larger
    than that goes alone). The response's ReferencedSOPSequence / FailedSOPSequence decide each instance; transport
    errors, timeouts, HTTP 5xx/429 and FailureReason 0xA7xx are retried, other refusals are final.
    """
    import httpx

    items = _read_headers(files, "stowrs")
    pending = [it for it in items if it.result.sop_instance_uid]
    endpoint = _stow_endpoint(url)
    own_client = client is None
    client = client or httpx.Client(timeout=timeout_s, auth=auth)
    try:
        attempt = 0
        while pending and attempt <= retries:
            attempt += 1
            if attempt > 1:
                log.info("STOW-RS to %s: retrying %d instance(s), try %d", endpoint, len(pending), attempt)
                _backoff(attempt - 1, backoff_s)
            still: list[_Item] = []
            for batch in _batches_by_size(pending, max_request_bytes):
                still += _stow_batch(client, endpoint, batch, attempt)
            pending = still
    finally:
        if own_client:
            client.close()
    return [it.result for it in items]


def _batches_by_size(items: list[_Item], limit: int) -> list[list[_Item]]:
    batches: list[list[_Item]] = []
    current: list[_Item] = []
    size = 0
    for it in items:
        n = it.result.path.stat().st_size
        if current and size + n > limit:
            batches.append(current)
            current, size = [], 0
        current.append(it)
        size += n
    if current:
        batches.append(current)
    return batches


def _stow_batch(client, endpoint: str, batch: list[_Item], attempt: int) -> list[_Item]:
    import httpx

    for it in batch:
        it.result.attempts = attempt
    try:
        body, content_type = _multipart([it.result.path for it in batch])
        response = client.post(
            endpoint, content=body, headers={"Content-Type": content_type, "Accept": "application/dicom+json"}
        )
    except (httpx.TransportError, OSError) as exc:
        for it in batch:
            it.result.reason = f"STOW-RS to {endpoint} failed: {exc}"
        return batch
    transient_http = response.status_code >= 500 or response.status_code == 429
    accepted, failed = _parse_stow_response(response.text)
    retry = []
    for it in batch:
        r, uid = it.result, it.result.sop_instance_uid
        if uid in accepted and uid not in failed:
            warning = accepted[uid]
            if warning is None and response.status_code in (200, 202):
                r.delivered, r.status, r.reason = True, 0x0000, ""
            else:
                r.status = int(warning) if warning is not None else None
                r.reason = f"accepted with warning 0x{r.status or 0:04X} (HTTP {response.status_code}); not counted as delivered"
        elif uid in failed:
            r.status = failed[uid]
            r.reason = f"PACS refused it: FailureReason 0x{r.status:04X} (HTTP {response.status_code})"
            if 0xA700 <= r.status <= 0xA7FF:
                retry.append(it)
        else:
            r.reason = f"not listed as stored in the STOW-RS response (HTTP {response.status_code}: {response.text[:200]!r})"
            if transient_http or response.status_code == 200:
                retry.append(it)
    return retry


# ---------------------------------------------------------------- from the config

class DeliveryError(ValueError):
    """A delivery destination that cannot be used (e.g. its password variable is not set)."""


def deliver(files: Iterable[Path | str], delivery: Any) -> list[DeliveryResult]:
    """Send `files` where the config's [delivery] section (configs.schema.Delivery) says; [] when kind is "none"."""
    import os

    files = list(files)
    kind = getattr(delivery, "kind", "none")
    if kind == "none" or not files:
        return []
    common = dict(retries=delivery.retries, backoff_s=delivery.backoff_seconds, timeout_s=delivery.timeout_seconds)
    if kind == "cstore":
        return send_cstore(files, delivery, **common)
    if kind == "stowrs":
        auth = None
        if delivery.username:
            password = os.environ.get(delivery.password_env, "") if delivery.password_env else ""
            if delivery.password_env and not password:
                raise DeliveryError(f"delivery.password_env names ${delivery.password_env}, which is not set")
            auth = (delivery.username, password)
        return send_stowrs(files, delivery.url, auth=auth, **common)
    raise DeliveryError(f"delivery.kind {kind!r} is not one of none, cstore, stowrs")
