#!/usr/bin/env python
"""Load and memory benchmark of the archive flow on studies built from a real slice.

    .venv/bin/python -m lab.bench_load                       # 100 and 1000 slices, then 3 studies at once
    .venv/bin/python -m lab.bench_load --slices 100 1000 --studies 3 --study-slices 100 --json bench.json

Each measured run is its own child process (`--child`), so its peak RSS (getrusage ru_maxrss) is that run's alone;
the children share one local Prefect test server started here, so no run pays for a server of its own. A series of
N slices is one real CT slice (pydicom's CT_small.dcm unless --source) copied N times with new SOP Instance UIDs,
positions and instance numbers. Reported per run: slices/s over the flow alone (imports excluded), peak RSS, and
RSS after imports (what the flow itself added is the difference). Peak memory must not grow with the number of
slices: the 1000/100 ratio of the flow's own peak is printed.
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
from pathlib import Path

from lab.loadgen import cheap_config, slice_series

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args: argparse.Namespace) -> None:
    """One measured run: archive everything in --inbox (one study: archive_paths; several: the inbox flow)."""
    import numpy as np

    from codec import api as codec_api
    from configs import load_config
    from flows.archive_flow import archive_paths
    from flows.inbox import archive_inbox

    config = load_config(args.config)
    # set-up, not the flow's work: imports, model load and the backend's first call (graph tracing)
    warm = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128) % 4096
    codec_api.decode(codec_api.encode(warm, config.codec.mode, 12, False))
    ready_rss, ready_peak = _rss_mb(), _peak_mb()
    start = time.perf_counter()
    if args.use_inbox:
        outcomes = archive_inbox(config)
    else:
        outcomes = archive_paths([Path(args.inbox)], config)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "ready_rss_mb": ready_rss, "ready_peak_mb": ready_peak, "peak_rss_mb": _peak_mb(),
        "statuses": [o["status"] for o in outcomes], "frames": sum(int(o.get("frames") or 0) for o in outcomes),
    }))


def measure(label: str, home: Path, slices: int, args: argparse.Namespace, api_url: str, use_inbox: bool,
            concurrent: int = 1) -> dict:
    cfg = home / "medzip.toml"
    cfg.write_text(cheap_config(args.mode, concurrent, args.workers))
    env = dict(os.environ, MEDZIP_HOME=str(home), PREFECT_API_URL=api_url, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "lab.bench_load", "--child", "--config", str(cfg), "--inbox",
           str(home / "inbox")] + (["--use-inbox"] if use_inbox else [])
    wall = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=home)
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        raise SystemExit(f"{label}: run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    r = json.loads(line)
    r.update(label=label, slices=slices, wall_s=wall, slices_per_s=slices / r["seconds"],
             flow_peak_mb=r["peak_rss_mb"] - r["ready_rss_mb"])
    print(f"{label:>28}: {slices:5d} slices in {r['seconds']:7.1f} s = {r['slices_per_s']:6.1f} slices/s; "
          f"peak RSS {r['peak_rss_mb']:7.1f} MB (after imports {r['ready_rss_mb']:.1f} MB, flow adds "
          f"{r['flow_peak_mb']:.1f} MB); statuses {sorted(set(r['statuses']))}", flush=True)
    bad = [s for s in r["statuses"] if s != "released"]
    if bad:
        raise SystemExit(f"{label}: not every study was released: {r['statuses']}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, nargs="+", default=[100, 1000], help="series lengths to archive, one run each")
    ap.add_argument("--studies", type=int, default=3, help="studies archived concurrently in the inbox run (0: skip)")
    ap.add_argument("--study-slices", type=int, default=100, help="slices per study in the concurrent run")
    ap.add_argument("--source", default="CT_small.dcm", help="the real slice to copy (a bundled file name)")
    ap.add_argument("--mode", default="lossy:0", help="codec mode (default: the cheapest, lossy:0)")
    ap.add_argument("--workers", type=int, default=2, help="task runner threads")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build inboxes (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--inbox", help=argparse.SUPPRESS)
    ap.add_argument("--use-inbox", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    from prefect.testing.utilities import prefect_test_harness

    work = args.workdir or Path(tempfile.mkdtemp(prefix="medzip-bench-load-"))
    runs = []
    with prefect_test_harness(server_startup_timeout=300):
        from prefect.settings import PREFECT_API_URL

        api_url = PREFECT_API_URL.value()
        for n in args.slices:
            home = work / f"series-{n}"
            slice_series(home / "inbox", n, args.source)
            runs.append(measure(f"one study, {n} slices", home, n, args, api_url, use_inbox=False))
        if args.studies:
            home = work / f"studies-{args.studies}x{args.study_slices}"
            for k in range(args.studies):
                slice_series(home / "inbox" / f"study{k}", args.study_slices, args.source)
            runs.append(measure(f"{args.studies} studies concurrently", home, args.studies * args.study_slices, args,
                                api_url, use_inbox=True, concurrent=args.studies))
    single = {r["slices"]: r for r in runs if r["label"].startswith("one study")}
    summary = {"runs": runs, "mode": args.mode, "source": args.source, "workdir": str(work)}
    if len(single) >= 2:
        lo, hi = min(single), max(single)
        summary["peak_ratio"] = single[hi]["peak_rss_mb"] / single[lo]["peak_rss_mb"]
        summary["flow_peak_ratio"] = single[hi]["flow_peak_mb"] / max(1e-9, single[lo]["flow_peak_mb"])
        print(f"peak RSS {hi} vs {lo} slices: {single[hi]['peak_rss_mb']:.1f} / {single[lo]['peak_rss_mb']:.1f} MB "
              f"= {summary['peak_ratio']:.2f}x (flow's own: {single[hi]['flow_peak_mb']:.1f} / "
              f"{single[lo]['flow_peak_mb']:.1f} MB = {summary['flow_peak_ratio']:.2f}x) for {hi / lo:.0f}x the slices")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
