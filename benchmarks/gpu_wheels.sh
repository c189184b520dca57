#!/usr/bin/env bash
# Recreates .gpu_wheels/ (git-ignored, ~33 MiB): the CPython 3.12 / Linux x86_64 wheels that a GPU box
# with torch already installed, and no internet, needs to run benchmarks/gpu_check.sh (speed.py, gpu_correctness.py)
# (offline_mbrl's import closure plus the real Hopper-v5 MuJoCo env). Run it HERE, with a package
# registry at hand, never on the GPU box; then carry .gpu_wheels with the working tree.
#
# Never fetched: torch and its CUDA wheels (the box has them), hence --no-deps and an explicit list.
# Deliberately left out, though the metadata names them: mujoco-studio (+ mujoco-studio-wasm,
# websockets; the viewer, ~30 MB, never imported by `import mujoco`), pillow (imageio imports it
# lazily), typer (minari's CLI only). minari's hdf5/pyarrow backends are not imported either.
#
# On the GPU box (from the repository root):
#   python3 -m pip install --no-index --no-deps .gpu_wheels/*.whl
#   python3 -m pip install --no-deps --no-build-isolation -e .    # or skip it and use PYTHONPATH=.
#   benchmarks/gpu_check.sh   (or: python3 benchmarks/speed.py --device cuda --out DIR)
set -euo pipefail

cd "$(dirname "$0")/.."
dest=.gpu_wheels
rm -f "$dest"/*.whl  # only the wheels this script fetched before
mkdir -p "$dest"

python3 -m pip download --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$dest" \
  numpy==2.4.6 \
  gymnasium==1.4.0 farama-notifications==0.0.6 cloudpickle==3.1.3 typing_extensions==4.16.0 \
  mujoco==4.0.1 mujoco-core==4.0.1 glfw==2.11.0 pyopengl==3.1.10 \
  minari==0.5.4 packaging==26.4 \
  rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 \
  imageio==2.38.2 tqdm==4.70.1 \
  setuptools==84.2.1

ls -l "$dest"
du -sh "$dest"
