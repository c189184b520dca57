#!/usr/bin/env bash
# The speed table and a correctness check on one device, in one call, in under 8 minutes on a GPU (the
# time limits below add up to 7.5 minutes, installs from carried wheels aside):
#
#   benchmarks/gpu_check.sh                      # CUDA; results in $OUT/gpu_check (or benchmarks/results/gpu_check)
#   benchmarks/gpu_check.sh --device cpu --out /tmp/check --quick   # the same script on a CPU
#
# On a lent GPU box (no package registry, its own Python 3.12 and torch), carry the wheels made here by
# benchmarks/gpu_wheels.sh: run with carry [".gpu_wheels"]. Packages the box lacks are installed from them
# into a private folder (never over the box's own), then the suite runs from this checkout (PYTHONPATH).
#
# Writes: environment.txt (device, driver, torch), correctness.json (benchmarks/gpu_correctness.py),
# pytest.txt (the SAC, batched-seed and precision tests, on that machine's torch), speed.json and speed.md
# (benchmarks/speed.py: fp32 with TF32, fp32-strict and bf16; K = 1, 5, 10; eager and compiled; end to
# end with the projection to 3M steps), and log.txt with everything printed. Exit status: non-zero if a step failed.
set -uo pipefail

device=cuda
out="${OUT:-benchmarks/results}/gpu_check"
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1' (--device cuda|cpu, --out DIR, --quick)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
mkdir -p "$out" || { echo "gpu_check.sh: cannot create $out" >&2; exit 2; }
log="$out/log.txt"
: > "$log"
say() { echo "[$(date +%T)] $*" | tee -a "$log"; }

py=python3
if ! $py -c "import gymnasium, mujoco, minari, rich" 2>/dev/null; then
  if ! ls .gpu_wheels/*.whl >/dev/null 2>&1; then
    say "gymnasium/mujoco/minari are missing and there is no .gpu_wheels/: run benchmarks/gpu_wheels.sh where a package registry is reachable and carry .gpu_wheels"
    exit 2
  fi
  site="$(mktemp -d)/site"
  wheels=()
  for w in .gpu_wheels/*.whl; do  # the box's own numpy stays: its other packages were built against it
    case "$(basename "$w")" in numpy-*) $py -c "import numpy" 2>/dev/null && continue ;; esac
    wheels+=("$w")
  done
  say "installing ${#wheels[@]} carried wheels into $site"
  $py -m pip install -q --no-index --no-deps --target "$site" "${wheels[@]}" >>"$log" 2>&1 || { say "wheel install failed (see $log)"; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MUJOCO_GL=egl

{
  date -u
  $py -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  nproc; uptime
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt" >> "$log"

# the time limits fit the 8 minutes of a GPU call; a CPU takes as long as it takes
limit() { if [ "$device" = cpu ]; then echo 3600; else echo "$1"; fi; }
status=0
say "correctness on $device"
timeout "$(limit 75)" $py benchmarks/gpu_correctness.py --device "$device" --out "$out" 2>&1 | tee -a "$log" || status=1

say "the SAC, batched-seed and precision tests on this machine's torch (CPU)"
timeout "$(limit 75)" $py -m pytest -q -x -p no:cacheprovider tests/test_sac.py tests/test_batched_seeds.py tests/test_precision.py \
  > "$out/pytest.txt" 2>&1 || status=1
tail -n 3 "$out/pytest.txt" | tee -a "$log"

if [ "$quick" = 1 ]; then
  speed=(--seeds 1,5 --compiled-seeds 1 --seconds 1 --e2e-steps 100)
else
  speed=(--seeds 1,5,10 --compiled-seeds 1,5 --seconds 2 --e2e-steps 1000)
fi
# on CUDA: fp32 (TF32 allowed), fp32-strict and bf16; on a CPU: fp32 and bf16
[ "$device" = cpu ] && speed+=(--precisions fp32,bf16)
say "speed table on $device"
timeout "$(limit 300)" $py benchmarks/speed.py --device "$device" --out "$out" "${speed[@]}" 2>&1 | tee -a "$log" || status=1
say "done (status $status): $out"
exit $status
