"""The fuzz loop, run as a child process so that a hang, a crash or a memory blow-up ends one case, not pytest.

    python -m tests.helpers.fuzz_driver dicom   --seed S --start I --stop N --out results.jsonl SRC.dcm ...
    python -m tests.helpers.fuzz_driver archive --seed S --start I --stop N --out results.jsonl SRC.h5 ...

Case i mutates source i % len(sources) with seed S * 1_000_003 + i (tests/helpers/mutations.py), so any case is
reproduced from (S, i) alone. Before each case the driver appends {"start": i} to the results file and after it
{"case": i, "outcome": ..., ...}; the parent (`run_fuzz`) enforces the per-case time limit, restarts after a crash
at the next case and reads the file back. The child's address space is capped (RLIMIT_AS), so a mutated header that
asks for gigabytes ends in MemoryError, which counts as a failure, as does any exception that is not one of the
project's typed errors.

Outcomes: "ok:<what>" (read and decoded), "typed:<ErrorClass>" (refused with a project error),
"UNTYPED:<Class>: message", "LOST: ..." (an archive that verify passes but that does not give back exactly the
original pixels, headers or objects), and, written by the parent, "TIMEOUT" and "CRASH rc=…".
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

CASE_SEED_STRIDE = 1_000_003
MEMORY_LIMIT = 3 << 30  # address space of the child: 3 GiB (TensorFlow's own mappings fit well within it)


def case_seed(seed: int, i: int) -> int:
    return seed * CASE_SEED_STRIDE + i


def _untyped(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb))
    return f"UNTYPED:{type(exc).__name__}: {str(exc)[:200]} at {where}"


# ---- DICOM ------------------------------------------------------------------------------------------------

def dicom_case(data: bytes, seed: int, work: Path) -> tuple[str, str]:
    from dicom_io import DicomReadError, Instance, header_bytes, iter_frames, read_file, read_studies, read_verbatim_bytes
    from tests.helpers.mutations import mutate_dicom

    mutated, what = mutate_dicom(data, seed)
    path = work / "case.dcm"
    path.write_bytes(mutated)
    try:
        found = read_studies([path])  # grouping never raises: errors are collected
        assert len(found.studies) + len(found.errors) >= 1 or not mutated, "read_studies lost the file"
        obj = read_file(path)
        if isinstance(obj, Instance):
            n = 0
            for frame in iter_frames(obj):
                assert frame.shape == (obj.pixel.rows, obj.pixel.columns) and frame.dtype == obj.pixel.dtype
                n += 1
            header_bytes(obj)
            return f"ok:instance ({n} frame(s))", what
        read_verbatim_bytes(obj)
        return "ok:verbatim", what
    except DicomReadError as exc:
        return f"typed:{type(exc).__name__}", what
    except Exception as exc:  # noqa: BLE001 - the point: anything else escaped dicom_io
        return _untyped(exc), what


# ---- archives ---------------------------------------------------------------------------------------------

_TYPED_NAMES: set[str] = set()


def _typed_names() -> set[str]:
    if not _TYPED_NAMES:
        from archive.errors import ArchiveError, CatalogError
        from codec.errors import CodecError

        def walk(cls):
            yield cls.__name__
            for sub in cls.__subclasses__():
                yield from walk(sub)

        for base in (ArchiveError, CodecError, CatalogError):
            _TYPED_NAMES.update(walk(base))
    return _TYPED_NAMES


def archive_contents(path: Path) -> dict:
    """What an archive gives back: decoded values per frame, headers, verbatim objects (by SOP UID)."""
    from archive import ArchiveReader
    from codec import api as codec_api

    out = {"frames": {}, "headers": {}, "verbatim": {}}
    with ArchiveReader(path) as r:
        for inst, fr in r.iter_frames():
            out["frames"][(fr.sop_instance_uid, fr.key.frame)] = codec_api.decode(r.payload(fr))
            out["headers"][inst.sop_instance_uid] = r.header(inst.key)
        out["verbatim"] = {v.sop_instance_uid: r.verbatim_bytes(v) for v in r.verbatim()}
    return out


def _same(a: dict, b: dict) -> str | None:
    import numpy as np

    for part in ("headers", "verbatim"):
        if a[part] != b[part]:
            return f"{part} differ"
    if a["frames"].keys() != b["frames"].keys():
        return f"frames {sorted(a['frames'])} != {sorted(b['frames'])}"
    for k, v in a["frames"].items():
        if v.dtype != b["frames"][k].dtype or not np.array_equal(v, b["frames"][k]):
            return f"frame {k} decodes to other values"
    return None


def archive_case(src: Path, seed: int, work: Path, original: dict, config) -> tuple[str, str]:
    from archive import ArchiveError, ArchiveReader
    from flows.verify_flow import check_archive
    from tests.helpers.mutations import mutate_archive

    path = work / "case.h5"
    path.unlink(missing_ok=True)
    what = mutate_archive(src, path, seed)
    read = "read"
    try:  # the archive package's own reading: a result or an ArchiveError, nothing else
        with ArchiveReader(path) as r:
            r.verify(raise_on_damage=False)
            for inst, fr in r.iter_frames():
                r.header(inst.key)
                r.payload(fr)
            r.verbatim()
            r.quality()
            for uid in list(r.index())[:20]:
                r.find(uid)
    except ArchiveError as exc:
        read = f"typed:{type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001
        return _untyped(exc), what
    report = check_archive(path, config, catalog=None)  # `medzip verify` of the file
    for p in report["problems"]:  # verify reports what it caught; the caught type must be a typed one
        for marker in ("cannot be read: ", "does not decode: ", "cannot be checked: "):
            if marker in p:
                name = p.split(marker, 1)[1].split(":", 1)[0]
                if name not in _typed_names():
                    return f"UNTYPED:{name} (caught by verify: {p[:200]})", what
    if not report["ok"]:
        return f"{read}; verify:refused", what
    try:
        got = archive_contents(path)
    except Exception as exc:  # noqa: BLE001
        return f"LOST: verify passed but reading back raised {type(exc).__name__}: {exc}", what
    diff = _same(got, original)
    return (f"LOST: verify passed but {diff}" if diff else f"{read}; verify:ok, identical"), what


def _config(home: Path):
    from configs import Config, Gate
    from configs.schema import CodecSettings, Paths, Runner

    return Config(home=home, paths=Paths().resolved(home), codec=CodecSettings(mode="lossless"),
                  gates={"default": Gate()}, runner=Runner(kind="thread", max_workers=1))


# ---- the loop ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("dicom", "archive"))
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)  # pydicom's warnings about the damage are expected, thousands of them
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    sources = [p.read_bytes() for p in args.sources] if args.kind == "dicom" else args.sources
    originals = config = None
    if args.kind == "archive":
        originals = [archive_contents(p) for p in args.sources]
        config = _config(work / "home")
    with open(args.out, "a") as out:
        for i in range(args.start, args.stop):
            out.write(json.dumps({"start": i}) + "\n")
            out.flush()
            t0 = time.monotonic()
            k = i % len(sources)
            if args.kind == "dicom":
                outcome, what = dicom_case(sources[k], case_seed(args.seed, i), work)
            else:
                outcome, what = archive_case(sources[k], case_seed(args.seed, i), work, originals[k], config)
            rss = _peak_rss()
            out.write(json.dumps({"case": i, "source": str(args.sources[k].name), "mutation": what, "outcome": outcome,
                                  "seconds": round(time.monotonic() - t0, 3), "max_rss": rss}) + "\n")
            out.flush()


def _peak_rss() -> int:
    """This process's peak resident memory (VmHWM), in bytes. Not getrusage's ru_maxrss: Linux keeps that across
    fork and exec, so a driver forked from a pytest worker that had loaded TensorFlow reported the worker's 1 GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_fuzz(kind: str, sources: list[Path], seed: int, cases: int, out: Path, *, case_timeout: float = 30.0,
             startup_timeout: float = 120.0) -> list[dict]:
    """Run cases [0, cases) in child processes; returns one record per case (crashes and hangs included)."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3")
    records: dict[int, dict] = {}
    start = 0
    while start < cases:
        proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.fuzz_driver", kind, *map(str, sources),
                                 "--seed", str(seed), "--start", str(start), "--stop", str(cases), "--out", str(out)],
                                env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=_limit_memory)
        current, since = None, time.monotonic()
        while proc.poll() is None:
            time.sleep(0.05)
            lines = out.read_text().splitlines() if out.exists() else []
            started = [json.loads(x)["start"] for x in lines if x.startswith('{"start"')]
            if started and started[-1] != current:
                current, since = started[-1], time.monotonic()
            limit = case_timeout if current is not None else startup_timeout
            if time.monotonic() - since > limit:
                proc.kill()
                proc.wait()
                break
        stderr = proc.stderr.read().decode(errors="replace")[-2000:]
        proc.stderr.close()
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            if "case" in rec:
                records[rec["case"]] = rec
        if proc.returncode == 0:
            break
        if current is None or current in records:  # died outside a case: nothing to blame on one
            raise RuntimeError(f"fuzz driver failed outside a case (rc {proc.returncode}): {stderr}")
        records[current] = {"case": current, "outcome": "TIMEOUT" if proc.returncode == -9 else
                            f"CRASH rc={proc.returncode}: {stderr[-500:]}", "mutation": "?", "seconds": None}
        start = current + 1
    return [records[i] for i in sorted(records)]


if __name__ == "__main__":
    main()
