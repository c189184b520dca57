#!/bin/bash
# A newcomer's first hour (issue 27), one command after another on a fresh clone of this repository:
# the README's main job (its command (a), verbatim), the design card's sweep stopped by SIGINT after 60 s,
# `sweep show`, diagnose, compare and reproduce at the smoke budget. Each command's output goes to
# OUT/NAME.log (not a terminal: plain progress lines), every line stamped with the seconds since that
# command started; OUT/times.txt has each command's exit status, wall time and the load at its start.
#
#   bash benchmarks/newcomer_trial.sh [CLONE_DIR] [OUT_DIR]     # about 60 min on a 2-core CPU
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
CLONE=${1:-/tmp/offline-mbrl-newcomer}
L=${2:-/tmp/offline-mbrl-newcomer-logs}
if [ -e "$CLONE" ]; then echo "$CLONE exists: pass a new folder" >&2; exit 2; fi
mkdir -p "$L"
git clone -q "$SRC" "$CLONE" && cd "$CLONE" || exit 1
export MINARI_DATASETS_PATH=$CLONE/.minari OFFLINE_MBRL_CACHE=$CLONE/.cache
stamp() { python3 -u -c "
import sys, time
t = time.time()
for line in sys.stdin:
    print(f'{time.time() - t:7.1f}s {line}', end='', flush=True)
"; }
step() {
  name=$1; shift
  echo "$name start $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$L/times.txt"
  start=$(date +%s.%N)
  bash -c "$*" 2>&1 | stamp > "$L/$name.log"
  rc=${PIPESTATUS[0]}
  echo "$name rc=$rc $(python3 -c "print(round($(date +%s.%N)-$start,1))") s" >> "$L/times.txt"
}
git log --oneline | head -1 > "$L/commit.txt"
step main "$(grep -m1 "^python3 -m venv .venv .*offline-mbrl sweep " README.md)"
. .venv/bin/activate
step sweep60 "timeout -s INT 60 offline-mbrl sweep --algo ravl --dataset hopper-medium"
step sweepshow "offline-mbrl sweep show ravl-hopper-medium"
step diagnose "offline-mbrl diagnose --dataset hopper-medium --set dynamics.max_epochs=10"
step compare "offline-mbrl compare --algo mopo --algo ravl --algo mobile --dataset hopper-medium --budget smoke"
step reproduce "offline-mbrl reproduce offlinerlkit_d4rl_v2 --budget smoke"
cat "$L/times.txt"
