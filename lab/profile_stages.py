#!/usr/bin/env python
"""Where the wall time of `medzip archive` goes, stage by stage (issue 12 item 1; docs/profile.md).

    MEDZIP_HOME=$(mktemp -d) PREFECT_HOME=$(mktemp -d) .venv/bin/python -m lab.profile_stages STUDY_DIR [--json OUT]
    .venv/bin/python -m lab.profile_stages --pyspy RAW [--top 10]      # top functions of a `py-spy record -f raw`

Runs the real command in this process (flows.cli `archive STUDY_DIR --mode lossless --json`, so Prefect's
temporary server starts as on a user's first run) after wrapping, without changing them, the functions each stage
calls. Stage wall times are taken on the flow's own thread (its stages run one after the other); inside a stage
the pieces done by the task runner's worker threads are summed over threads, as wall time ("thread-seconds": on
2 cores with 4 workers they add up to more than the stage's wall time) and as those threads' CPU time (CPU-s,
which other processes' load does not inflate). Stages: imports (process start to the command),
Prefect's temporary server start, the header scan before the flow, ingest (headers + the inputs' SHA-256),
encode + write, verify (decode from the file + metrics + gates), escalation, release (quality table, the final
file's checksums, move, catalog, artifacts), and the rest of the flow (Prefect task/flow bookkeeping).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import threading
import time
from collections import Counter, defaultdict


class Stages:
    """Wall time per stage (one at a time) and thread-seconds per (stage, part)."""

    def __init__(self):
        self.wall: dict[str, float] = defaultdict(float)
        self.parts: dict[tuple[str, str], float] = defaultdict(float)
        self.cpu: dict[tuple[str, str], float] = defaultdict(float)  # the same, in CPU seconds of those threads
        self.calls: Counter = Counter()
        self.current = "outside"
        self._lock = threading.Lock()

    def _add(self, key, dt, dcpu, count=1):
        with self._lock:
            self.parts[key] += dt
            self.cpu[key] += dcpu
            self.calls[key] += count

    def stage(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            before, self.current = self.current, name
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.wall[name] += time.perf_counter() - t
                self.current = before
        return timed

    def part(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            stage, t, c = self.current, time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                self._add((stage, name), time.perf_counter() - t, time.thread_time() - c)
        return timed

    def part_iter(self, name: str, fn):
        """A generator function: the time of each next() counts."""
        @functools.wraps(fn)
        def timed(*a, **k):
            stage = self.current
            it = iter(fn(*a, **k))
            while True:
                t, c = time.perf_counter(), time.thread_time()
                try:
                    item = next(it)
                except StopIteration:
                    self._add((stage, name), time.perf_counter() - t, time.thread_time() - c, 0)
                    return
                self._add((stage, name), time.perf_counter() - t, time.thread_time() - c)
                yield item
        return timed


def instrument(st: Stages) -> None:
    """Wrap the functions the stages call (module attributes, looked up at call time by the flows)."""
    import archive
    import codec.api as codec_api
    import dicom_io
    import flows.archive_flow as af
    import flows.artifacts as artifacts
    import quality.gates as gates
    from archive.catalog import Catalog
    from archive.reader import ArchiveReader
    from archive.writer import ArchiveWriter
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer.start = st.stage("prefect server start", SubprocessASGIServer.start)
    af.archive_paths = st.stage("archive_paths", af.archive_paths)
    for name, stage in (("ingest", "ingest"), ("hash_inputs", "ingest"), ("write_archive", "encode + write"),
                        ("verify_archive_quality", "verify (decode from the file)")):
        setattr(af, name, st.stage(stage, getattr(af, name)))
    for name in ("set_quality", "verify_archive", "atomic_move"):
        setattr(archive, name, st.stage("release", getattr(archive, name)))
    artifacts.study_artifacts = st.stage("release", artifacts.study_artifacts)
    for name in ("record_summary", "set_status", "claim"):
        setattr(Catalog, name, st.part("catalog", getattr(Catalog, name)))
    codec_api.encode = st.part("codec encode", codec_api.encode)
    codec_api.encode_many = st.part("codec encode", codec_api.encode_many)
    codec_api.decode = st.part("codec decode", codec_api.decode)
    gates.evaluate = st.part("metrics + gate", gates.evaluate)
    dicom_io.iter_frames = st.part_iter("read pixels (dicom_io)", dicom_io.iter_frames)
    dicom_io.read_frame = st.part("read pixels (dicom_io)", dicom_io.read_frame)
    dicom_io.header_bytes = st.part("read header bytes", dicom_io.header_bytes)
    dicom_io.read_studies = st.part("scan headers (read_studies)", dicom_io.read_studies)
    archive.values_sha256 = st.part("values sha256", archive.values_sha256)
    archive.file_sha256 = st.part("file sha256", archive.file_sha256)
    for name in ("add_series", "add_instance", "add_frame", "add_verbatim", "__exit__"):
        setattr(ArchiveWriter, name, st.part("hdf5 write", getattr(ArchiveWriter, name)))
    ArchiveReader.payload = st.part("hdf5 read payload", ArchiveReader.payload)
    for name in ("__init__", "find", "frames"):
        setattr(ArchiveReader, name, st.part("hdf5 open/index", getattr(ArchiveReader, name)))


def report(st: Stages, total: float, command_start: float, cpu: dict) -> dict:
    stages = {"imports + set-up (before the command)": command_start}
    stages["prefect server start"] = st.wall.get("prefect server start", 0.0)
    inner = sum(v for k, v in st.wall.items() if k not in ("archive_paths", "prefect server start"))
    for k in ("ingest", "encode + write", "verify (decode from the file)", "release"):
        stages[k] = st.wall.get(k, 0.0)
    scan = st.parts.get(("archive_paths", "scan headers (read_studies)"), 0.0)
    stages["header scan before the flow"] = scan
    stages["Prefect flow/task bookkeeping (rest)"] = (st.wall.get("archive_paths", 0.0) - inner - scan
                                                      - stages["prefect server start"])
    stages["exit (after the command)"] = total - command_start - st.wall.get("archive_paths", 0.0)
    parts = defaultdict(dict)
    for (stage, part), v in sorted(st.parts.items()):
        parts[stage][part] = {"thread_s": v, "cpu_s": st.cpu[(stage, part)], "calls": st.calls[(stage, part)]}
    return {"total_s": total, "stages_s": stages, "parts": parts, "cpu": cpu}


def print_report(r: dict) -> None:
    print(f"total wall {r['total_s']:.1f} s; CPU: this process {r['cpu']['self_s']:.1f} s, its children (Prefect "
          "server, worker processes) "
          f"{r['cpu'].get('children_s', float('nan')):.1f} s; load {r['cpu']['load']:.2f}")
    for k, v in r["stages_s"].items():
        print(f"  {k:40s} {v:8.2f} s  {100 * v / r['total_s']:5.1f} %")
        for part, p in sorted(r["parts"].get(k, {}).items(), key=lambda kv: -kv[1]["thread_s"]):
            print(f"      {part:36s} {p['thread_s']:8.2f} thread-s {p['cpu_s']:8.2f} CPU-s  ({p['calls']} calls)")


def _config_with_processes(processes: str) -> str:
    """A copy of the bundled config with runner.processes set (0: the work in this process, so every part is seen)."""
    import re
    import tempfile
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "configs" / "default.toml").read_text()
    value = '"auto"' if processes == "auto" else str(int(processes))
    text, n = re.subn(r'(?m)^processes = .*$', f"processes = {value}", text)
    assert n == 1, "configs/default.toml has no runner.processes line"
    path = Path(tempfile.mkdtemp()) / "config.toml"
    path.write_text(text)
    return str(path)


def run(study_dir: str, processes: str = "auto") -> dict:
    import psutil

    st = Stages()
    from flows.cli import app

    instrument(st)
    children_cpu = {}
    import flows.archive_flow as af

    inner = af.archive_paths

    def with_children(*a, **k):  # the temporary server's CPU, read before it stops at exit
        try:
            return inner(*a, **k)
        finally:
            kids = psutil.Process().children(recursive=True)
            children_cpu["children_s"] = sum(sum(c.cpu_times()[:2]) for c in kids if c.is_running())

    af.archive_paths = with_children
    t_cmd = time.perf_counter()
    try:
        app(["archive", study_dir, "--mode", "lossless", "--json", "-c", _config_with_processes(processes)],
            standalone_mode=False)
    except SystemExit:
        pass
    end = time.perf_counter()
    since_start = time.time() - psutil.Process().create_time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {"self_s": ru.ru_utime + ru.ru_stime, "load": os.getloadavg()[0], "peak_rss_mb": ru.ru_maxrss / 1024,
           **children_cpu}
    before_cmd = since_start - (end - t_cmd)
    return report(st, since_start, before_cmd, cpu)


IDLE = ("select (selectors", "Condition.wait", "Event.wait", "heartbeat_loop", "_worker (concurrent", "sleep")


def pyspy_top(raw_path: str, top: int = 10) -> dict:
    """Top functions of a py-spy raw (collapsed) file: by own samples (waiting threads counted apart as idle) and
    by inclusive samples. Line numbers are dropped, so a function's lines add up."""
    own, incl, total, idle = Counter(), Counter(), 0, 0
    with open(raw_path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(n)
            frames = [fr.rsplit(":", 1)[0] + ")" if fr.endswith(")") and ":" in fr else fr for fr in stack.split(";")]
            total += n
            if any(frames[-1].startswith(i) or i in frames[-1] for i in IDLE):
                idle += n
                continue
            own[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    return {"samples": total, "idle": idle, "own": own.most_common(top), "inclusive": incl.most_common(top * 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", nargs="?")
    ap.add_argument("--json", default=None)
    ap.add_argument("--pyspy", default=None, help="summarise this py-spy raw file instead")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--processes", default="auto",
                    help="runner.processes: 'auto' (as shipped) or 0, which keeps the codec work in this process so "
                         "its parts are timed (with worker processes only the stages' wall times are)")
    a = ap.parse_args(argv)
    if a.pyspy:
        r = pyspy_top(a.pyspy, a.top)
        print(f"{r['samples']} samples, {100 * r['idle'] / max(1, r['samples']):.1f} % of them waiting; own time:")
        for name, n in r["own"]:
            print(f"  {100 * n / r['samples']:5.1f} %  {name}")
        print("inclusive:")
        for name, n in r["inclusive"]:
            print(f"  {100 * n / r['samples']:5.1f} %  {name}")
    else:
        if not a.study:
            ap.error("a study folder (or --pyspy RAW)")
        r = run(a.study, a.processes)
        print_report(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
