#!/usr/bin/env bash
# Every figure of docs/speed.md's precision and K-seed sections, from one command (about 2 CPU-hours on a
# 2-core CPU; finished runs and fitted ensembles are reused, so a rerun only re-times):
#
#   benchmarks/precision_figures.sh [RESULTS_ROOT]      # runs go to RESULTS_ROOT (default results/precision)
#
# Writes benchmarks/results/precision_speed_cpu/, precision_parity_{pendulum,hopper}.md and
# seed_batching_cpu.md. One torch thread per process; the two parity datasets run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-results/precision}"
export OMP_NUM_THREADS=1
python benchmarks/precision_parity.py --results "$root" --steps-scale 0.6 \
  --only mopo:pendulum-medium-replay,ravl:pendulum-medium-replay,mobile:pendulum-medium-replay \
  --out benchmarks/results/precision_parity_pendulum.md &
python benchmarks/precision_parity.py --results "$root" --steps-scale 0.6 \
  --only mopo:hopper-medium-replay,ravl:hopper-medium-replay \
  --out benchmarks/results/precision_parity_hopper.md
wait
python benchmarks/seed_batching.py --out benchmarks/results/seed_batching_cpu.md
python benchmarks/precision_speed.py --out benchmarks/results/precision_speed_cpu
