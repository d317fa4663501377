#!/usr/bin/env bash
# Bench medzip against the classical anchors on the held-out validation files (the images the codec was not
# trained on: lab/split.py, listed in codec/MODEL_CARD.md). Writes OUTDIR/bench.json, OUTDIR/bench.png and
# OUTDIR/bench.txt (the printed summary); progress lines go to stderr.
#   usage: scripts/bench_heldout.sh OUTDIR [NAME-PREFIX...]
# NAME-PREFIX keeps only held-out files whose names start with one of them (e.g. `693_ MR2_J2KR`).
# The whole set (CT 512², MR 1024², CR 1955x1841) takes hours on a busy shared 2-core CPU with the learned codec's
# near-lossless/lossless modes; identical frames (one image in several transfer syntaxes) are benched once.
set -euo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 OUTDIR [NAME-PREFIX...]" >&2; exit 2; fi
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"; shift
mkdir -p "$out"
py="$here/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2
mapfile -t files < <(cd "$here" && "$py" - "$@" <<'PY'
import sys
from pathlib import Path
from lab.split import validation_files
prefixes = tuple(sys.argv[1:])
for p in validation_files():
    if not prefixes or Path(p).name.startswith(prefixes):
        print(p)
PY
)
if [ ${#files[@]} -eq 0 ]; then echo "no held-out files (lab.split.validation_files, prefixes: $*)" >&2; exit 1; fi
printf 'held-out files (%d):\n' "${#files[@]}" >&2; printf '  %s\n' "${files[@]}" >&2
cd "$here"
"$py" -m flows.cli bench "${files[@]}" --json "$out/bench.json" --plot "$out/bench.png" | tee "$out/bench.txt"
