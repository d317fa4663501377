#!/usr/bin/env python
"""End-to-end pipeline benchmark (issue 12 item 4): a lossless `medzip archive` of an N-slice CT study beside a
CharLS (JPEG-LS) transcode + verify-decode of the same files, in one run.

    .venv/bin/python -m lab.bench_pipeline                        # 300 slices
    .venv/bin/python -m lab.bench_pipeline --slices 28 --json out.json --workdir /tmp/bp

The study: N slices of 512² CT whose pixels are the bundled real CT slices in turn (693_UNCR, explicit_VR-UN,
J2K_pixelrep_mismatch, bad_sequence, eCT_Supplemental's two frames), each written as uncompressed
Explicit VR Little Endian under 693_UNCR's header (14-bit signed) with its own SOP UID, position and number.

Measured, each in its own child process so that nothing is warm:
- medzip: `medzip archive DIR --mode lossless --json` (python -m flows.cli) with MEDZIP_HOME and PREFECT_HOME in a
  fresh folder and no PREFECT_API_URL, so it starts Prefect's temporary server as a user's first run does. Wall
  time, peak RSS of the archive process (wait4's ru_maxrss: the process or its largest reaped child) and of the
  whole process tree (psutil, sampled every 0.1 s). Its stderr log splits the wall time: up to the first flow-run
  log line (imports + Prefect's temporary server + flow run creation), the flow run, and after it (shutdown).
- Prefect start-up alone: a trivial flow in a fresh process against a fresh temporary server (import, server start
  + first run), so it can be subtracted.
- CharLS: per file, pydicom reads it, `Dataset.compress(JPEGLSLossless, encoding_plugin="pyjpegls")`, writes it,
  reads the written file back and decodes it, and compares every pixel with the original (one process, one core).
- dcmtk (when /usr/bin/dcmcjpls is there): `dcmcjpls +el` then `dcmdjpls` per file in a loop, as a shell script
  would; the decoded pixels are compared after the timing.

Printed: slices/s, wall times and their ratio medzip / CharLS (the whole run; without Prefect's start-up, i.e. the
run's own server start taken from its log; the flow run alone), peak RSS. `--check` also decodes every frame of the
released archive in this process and compares it with the input. `--api-url URL` archives against a running Prefect
server instead (nothing of Prefect's start-up is measured then; the tests use it).
Timings on a shared 2-core machine swing with its load: the 1-minute load average is printed beside each figure.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "693_UNCR.dcm"
# (bundled file, frame index) of the real 512x512 CT slices whose pixels the study cycles through. Not 693_UNCI: it
# is 693_UNCR after lossy JPEG 2000 (693_J2KI decoded), which OpenJPEG codes losslessly in 0.06 bpp.
REAL_CT = [("693_UNCR.dcm", 0), ("explicit_VR-UN.dcm", 0), ("J2K_pixelrep_mismatch.dcm", 0), ("bad_sequence.dcm", 0),
           ("eCT_Supplemental.dcm", 0), ("eCT_Supplemental.dcm", 1)]
DCMTK = Path("/usr/bin/dcmcjpls"), Path("/usr/bin/dcmdjpls")


def load() -> float:
    return os.getloadavg()[0]


def real_ct_frames() -> list[np.ndarray]:
    import warnings

    import pydicom

    from lab.realdata import find

    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, k in REAL_CT:
            arr = pydicom.dcmread(find(name)).pixel_array
            arr = arr.reshape((-1,) + arr.shape[-2:])[k]
            assert arr.shape == (512, 512) and -8192 <= int(arr.min()) and int(arr.max()) < 8192, name
            frames.append(arr.astype(np.int16))
    return frames


def build_study(folder: Path, n_slices: int) -> list[Path]:
    """N uncompressed 512² CT slices with real pixels under one real header; returns the files in order."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from lab.realdata import find

    frames = real_ct_frames()
    ds = pydicom.dcmread(find(TEMPLATE))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    for tag in ("LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if tag in ds:
            delattr(ds, tag)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_slices):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, z + 1.25 * i]
        ds.SliceLocation = z + 1.25 * i
        ds.PixelData = frames[i % len(frames)].astype("<i2").tobytes()
        paths.append(folder / f"{i:05d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


# ---- child processes -----------------------------------------------------------------------------------------

def _env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    # the trivial flow waits for its temporary server as long as medzip does (flows/__init__.py); Prefect's own 20 s
    # default is often too short on a busy 2-core machine
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env.update(MEDZIP_HOME=str(home), PREFECT_HOME=str(home / "prefect"), TF_CPP_MIN_LOG_LEVEL="2",
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


def _tree_rss_mb(proc) -> float:
    try:
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except Exception:  # a process ended between listing and reading
        return 0.0


def run_measured(cmd: list[str], env: dict, cwd: Path, log: Path) -> dict:
    """Run `cmd`; wall time, exit code, wait4 peak RSS (MB), sampled peak RSS of the process tree (MB)."""
    started_at = time.time()
    t0 = time.perf_counter()
    with open(log, "wb") as err, open(log.with_suffix(".out"), "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak_tree, stop = [0.0], threading.Event()
        try:
            import psutil

            ps = psutil.Process(proc.pid)

            def sample():
                while not stop.is_set():
                    peak_tree[0] = max(peak_tree[0], _tree_rss_mb(ps))
                    stop.wait(0.1)

            threading.Thread(target=sample, daemon=True).start()
        except Exception:
            peak_tree[0] = float("nan")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "rc": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_tree_rss_mb": peak_tree[0], "started_at": started_at, "stdout": log.with_suffix(".out").read_text(),
            "stderr": log.read_text(errors="replace")}


_TRIVIAL_FLOW = """
import json, time
t0 = time.perf_counter()
from prefect import flow
t1 = time.perf_counter()
@flow
def nothing():
    return 1
nothing()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "server_and_run_s": t2 - t1}))
"""


def prefect_startup(home: Path) -> dict:
    """A trivial flow in a fresh process against a fresh temporary server."""
    home.mkdir(parents=True, exist_ok=True)
    r = run_measured([sys.executable, "-c", _TRIVIAL_FLOW], _env(home), home, home / "trivial.log")
    if r["rc"] != 0:
        raise SystemExit(f"trivial Prefect flow failed ({r['rc']}):\n{r['stderr'][-3000:]}")
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"wall_s": r["wall_s"], **inner}


_LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \| \w+\s+\| (.*)$")


def log_phases(stderr: str, started_at: float, wall_s: float) -> dict:
    """Split the archive run's wall time at its Prefect log lines: before the first flow-run line (imports, the
    temporary server, creating the run), the flow run itself, and after its last line (shutdown)."""
    day = datetime.fromtimestamp(started_at).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    stamps, server = [], None
    for line in stderr.splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        h, mi, s, ms = (int(g) for g in m.groups()[:4])
        t = day + h * 3600 + mi * 60 + s + ms / 1000
        t = (t + 86400 if t < started_at - 1 else t) - started_at
        if "Flow run" in m.group(5):
            stamps.append(t)
        elif "Starting temporary server" in m.group(5) and server is None:
            server = t
    if not stamps:
        return {}
    first, last = min(stamps), max(stamps)
    out = {"before_flow_s": first, "flow_s": last - first, "after_flow_s": wall_s - last}
    if server is not None:  # imports etc. up to the server's start, then the server until the run begins
        out.update(until_server_s=server, server_start_s=first - server)
    return out


def medzip_archive(study: Path, home: Path, api_url: str | None = None, mode: str = "lossless") -> dict:
    cmd = [sys.executable, "-m", "flows.cli", "archive", str(study), "--mode", mode, "--json"]
    home.mkdir(parents=True, exist_ok=True)
    r = run_measured(cmd, _env(home, api_url), home, home / "archive.log")
    try:
        result = json.loads(r["stdout"])
    except ValueError:
        result = {}
    if r["rc"] != 0 or not result.get("ok", True):
        raise SystemExit(f"medzip archive failed ({r['rc']}):\n{r['stdout'][-2000:]}\n{r['stderr'][-4000:]}")
    studies = result.get("studies", [])
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "peak_tree_rss_mb": r["peak_tree_rss_mb"],
            "status": [s.get("status") for s in studies], "archive": studies[0].get("archive") if studies else None,
            "ratio": studies[0].get("ratio") if studies else None,
            **log_phases(r["stderr"], r["started_at"], r["wall_s"])}


# ---- CharLS -------------------------------------------------------------------------------------------------

def charls_transcode(paths: list[Path], out: Path) -> dict:
    """Read, JPEG-LS-lossless encode (pyjpegls = CharLS), write, read back, decode, compare: one file at a time."""
    import pydicom
    from pydicom.uid import JPEGLSLossless

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_bytes = 0
    for p in paths:
        ds = pydicom.dcmread(p)
        original = ds.pixel_array
        ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
        dst = out / p.name
        ds.save_as(dst)
        back = pydicom.dcmread(dst)
        n_bytes += len(back.PixelData)
        if not np.array_equal(back.pixel_array, original):
            raise SystemExit(f"CharLS round trip differs for {p}")
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "ratio": sum(512 * 512 * 2 for _ in paths) / max(1, n_bytes)}


def dcmtk_transcode(paths: list[Path], out: Path) -> dict | None:
    """`dcmcjpls +el` + `dcmdjpls` per file, as a shell loop would; pixels compared after the timing."""
    import pydicom

    if not all(p.exists() for p in DCMTK):
        return None
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths:
        subprocess.run([str(DCMTK[0]), "+el", str(p), str(out / f"{p.stem}.jls.dcm")], check=True)
        subprocess.run([str(DCMTK[1]), str(out / f"{p.stem}.jls.dcm"), str(out / f"{p.stem}.raw.dcm")], check=True)
    wall = time.perf_counter() - t0
    for p in paths:
        if not np.array_equal(pydicom.dcmread(out / f"{p.stem}.raw.dcm").pixel_array, pydicom.dcmread(p).pixel_array):
            raise SystemExit(f"dcmtk round trip differs for {p}")
    return {"wall_s": wall}


# ---- the archive decodes to the originals -----------------------------------------------------------------------

def check_archive(archive: Path, paths: list[Path]) -> int:
    """Decode every frame of `archive` (its own reader and the codec, no Prefect) and compare it with the input
    file of the same SOP Instance UID; returns the number of frames compared, raises on any difference."""
    import pydicom

    from archive import ArchiveReader
    from codec import api

    originals = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        originals[str(ds.SOPInstanceUID)] = ds.pixel_array
    seen = 0
    with ArchiveReader(archive) as reader:
        for inst, frame in reader.iter_frames():
            decoded = api.decode(reader.payload(frame))
            if not np.array_equal(decoded, originals[inst.sop_instance_uid]):
                raise AssertionError(f"frame of {inst.sop_instance_uid} differs from its input")
            seen += 1
    if seen != len(originals):
        raise AssertionError(f"{seen} frames in the archive, {len(originals)} inputs")
    return seen


# ---- the bench ------------------------------------------------------------------------------------------------

def bench(n_slices: int, work: Path, check: bool = False, dcmtk: bool = True, api_url: str | None = None,
          mode: str = "lossless") -> dict:
    """Build the study under `work`, run every measurement, return the report. With `api_url` the archive run uses
    that (running) Prefect server, and no start-up is measured or subtracted; `mode`: medzip's policy."""
    study = work / "study"
    t = time.perf_counter()
    paths = build_study(study, n_slices)
    report = {"slices": n_slices, "build_s": time.perf_counter() - t, "workdir": str(work), "load_before": load(),
              "prefect_startup": None, "api_url": api_url}
    if not api_url:
        report["prefect_startup"] = {**prefect_startup(work / "prefect-only"), "load": load()}
    report["medzip"] = {**medzip_archive(study, work / "medzip-home", api_url, mode), "load": load(), "mode": mode}
    report["charls"] = {**charls_transcode(paths, work / "charls"), "load": load()}
    if dcmtk:
        d = dcmtk_transcode(paths, work / "dcmtk")
        if d is not None:
            report["dcmtk"] = {**d, "load": load()}
    m, c, p = report["medzip"], report["charls"], report["prefect_startup"]
    # Prefect's start-up inside this very run (its log: the temporary server until the flow run begins), else the
    # trivial flow's; none when a running server was used
    m["prefect_start_s"] = 0.0 if api_url else m.get("server_start_s", p["server_and_run_s"])
    m["slices_per_s"] = n_slices / m["wall_s"]
    m["wall_without_prefect_start_s"] = m["wall_s"] - m["prefect_start_s"]
    c["slices_per_s"] = n_slices / c["wall_s"]
    report["ratio_wall"] = m["wall_s"] / c["wall_s"]
    report["ratio_without_prefect_start"] = m["wall_without_prefect_start_s"] / c["wall_s"]
    if "flow_s" in m:
        report["ratio_flow_only"] = m["flow_s"] / c["wall_s"]
    if check:
        report["checked_frames"] = check_archive(Path(m["archive"]), paths)
    return report


def print_report(r: dict) -> None:
    m, c, p = r["medzip"], r["charls"], r["prefect_startup"]
    print(f"study: {r['slices']} slices of 512² CT (real bundled slices), built in {r['build_s']:.1f} s; "
          f"load before {r['load_before']:.2f}")
    if p:
        print(f"Prefect alone (fresh process, trivial flow): import {p['import_s']:.1f} s, temporary server + first "
              f"run {p['server_and_run_s']:.1f} s, {p['wall_s']:.1f} s wall   [load {p['load']:.2f}]")
    else:
        print(f"Prefect: the running server at {r['api_url']} (no start-up)")
    print(f"medzip archive --mode {m.get('mode', 'lossless')}: {m['wall_s']:.1f} s wall, {m['slices_per_s']:.2f} slices/s, peak RSS "
          f"{m['peak_rss_mb']:.0f} MB (process tree {m['peak_tree_rss_mb']:.0f} MB), {m['status']}, ratio "
          f"{m['ratio'] or float('nan'):.2f}   [load {m['load']:.2f}]")
    if "flow_s" in m:
        start = (f"{m['until_server_s']:.1f} s imports, {m['server_start_s']:.1f} s Prefect server start, "
                 if "server_start_s" in m else f"{m['before_flow_s']:.1f} s before the flow run, ")
        print(f"  its log: {start}{m['flow_s']:.1f} s flow run, {m['after_flow_s']:.1f} s after")
    print(f"  without Prefect's start-up ({m['prefect_start_s']:.1f} s): {m['wall_without_prefect_start_s']:.1f} s, "
          f"{r['slices'] / m['wall_without_prefect_start_s']:.2f} slices/s")
    print(f"CharLS (pyjpegls) transcode + verify-decode, 1 process: {c['wall_s']:.2f} s, {c['slices_per_s']:.1f} "
          f"slices/s, ratio {c['ratio']:.2f}   [load {c['load']:.2f}]")
    if "dcmtk" in r:
        print(f"dcmtk loop (dcmcjpls +el, dcmdjpls per file): {r['dcmtk']['wall_s']:.2f} s   "
              f"[load {r['dcmtk']['load']:.2f}]")
    line = (f"wall ratio medzip / CharLS: {r['ratio_wall']:.1f}x; without Prefect's start-up "
            f"{r['ratio_without_prefect_start']:.1f}x")
    if "ratio_flow_only" in r:
        line += f"; the flow run alone {r['ratio_flow_only']:.1f}x"
    print(line)
    if "checked_frames" in r:
        print(f"check: all {r['checked_frames']} frames of the archive decode to their inputs")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    ap.add_argument("--json", type=Path, default=None, help="write the report here")
    ap.add_argument("--check", action="store_true", help="decode the archive here and compare with the inputs")
    ap.add_argument("--no-dcmtk", action="store_true", help="skip the dcmtk shell-loop column")
    ap.add_argument("--api-url", default=None, help="archive against this running Prefect server (no start-up)")
    ap.add_argument("--mode", default="lossless", help="medzip's policy, e.g. auto (--check needs lossless)")
    a = ap.parse_args(argv)
    if a.check and a.mode != "lossless":
        raise SystemExit("--check compares the decode with the inputs bit for bit: it needs --mode lossless")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="medzip-bench-pipeline-"))
    if a.workdir and work.exists() and any(work.iterdir()):
        raise SystemExit(f"--workdir {work} is not empty")
    try:
        r = bench(a.slices, work, check=a.check, dcmtk=not a.no_dcmtk, api_url=a.api_url, mode=a.mode)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_report(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
