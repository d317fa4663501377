#!/usr/bin/env bash
# Bench medzip against the classical anchors on the held-out validation files (the images the codec was not
# trained on: codec/split.py, listed in codec/MODEL_CARD.md). Writes OUTDIR/bench.json, OUTDIR/bench.png and
# OUTDIR/bench.txt (the printed summary).
#   usage: scripts/bench_heldout.sh OUTDIR
# Takes tens of minutes on a shared 2-core CPU (four 1955x1841 radiographs dominate).
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
mkdir -p "$out"
py="$here/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2
mapfile -t files < <(cd "$here" && "$py" -c 'from codec.split import validation_files
for p in validation_files(): print(p)')
if [ ${#files[@]} -eq 0 ]; then echo "codec.split lists no validation files" >&2; exit 1; fi
printf 'held-out files (%d):\n' "${#files[@]}"; printf '  %s\n' "${files[@]}"
cd "$here"
"$py" -m flows.cli bench "${files[@]}" --json "$out/bench.json" --plot "$out/bench.png" | tee "$out/bench.txt"
