"""bf16 against fp32 on one device, each workload timed in both precisions in the same run (alternating).

    python benchmarks/precision_speed.py --out benchmarks/results/precision_speed_cpu

Workloads (paper sizes, Hopper's obs 11 / act 3, synthetic data unless said): the batched matrix product
of a 10 x 3x256 critic ensemble (10 x 256 x 256, 256 rows); the RAVL update (10 critics of 3x256, EDAC
η 1) and the MOPO update (2 critics of 2x256), batch 256; dynamics training (7 x 4x200, 256 rows per
member); a rollout round (50,000 starts, h 5); MOPO end to end (one such round and 1,000 gradient steps);
MOREC's paper-scale rollout round (2,000 starts x h 100 with 10 candidates per row scored by every 10th
discriminator snapshot, on the cached hopper-medium-replay ensemble and dynamics reward of
benchmarks/morec_rollout.py, timed over `--morec-steps` model steps and projected to h 100). In bf16 the
inner products of the policy and the ensemble run on bf16 copies of the weights (core/precision.py);
MOREC's round is timed with its discriminator in fp32 (as a bf16 run keeps it) and in bf16 too. Each
update's share of the matmul bound uses the FLOPs counted pass by pass, against the fp32 or the bf16
rate of the batched critic product. Writes precision_speed.json and precision_speed.md (with the CPU's
bf16 flags, torch threads and load average) under --out.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speed import (  # noqa: E402
    bench_dynamics,
    bench_end_to_end,
    bench_rollout,
    count_flops,
    device_name,
    learner,
    timed,
    write_results,
)

from offline_mbrl.algorithms.mopo import penalty_hook  # noqa: E402
from offline_mbrl.algorithms.morec.algorithm import FilterConfig  # noqa: E402
from offline_mbrl.algorithms.morec.filter import RewardConsistencyFilter  # noqa: E402
from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig  # noqa: E402
from offline_mbrl.algorithms.morec.reward_fit import load_or_fit_reward  # noqa: E402
from offline_mbrl.core.precision import apply_precision, cpu_bf16_flags, missing_bf16  # noqa: E402
from offline_mbrl.data.dataset import load_dataset  # noqa: E402
from offline_mbrl.learning.rollout import compose, rollout  # noqa: E402
from offline_mbrl.learning.sac import SAC, SACConfig  # noqa: E402
from offline_mbrl.models.dynamics import DynamicsConfig, load_or_fit  # noqa: E402
from offline_mbrl.models.termination import termination_fn  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def batched_matmul_rates(device: torch.device, seconds: float) -> dict[str, float]:
    """GFLOP/s of the critic ensemble's product (10 x 256 x 256 weights, 256 rows) in each precision."""
    out = {}
    for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = torch.randn(10, 256, 256, device=device, dtype=dtype)
        w = torch.randn(10, 256, 256, device=device, dtype=dtype)
        b = torch.randn(10, 1, 256, device=device, dtype=dtype)
        out[p] = 2 * 10 * 256**3 / timed(lambda x=x, w=w, b=b: torch.baddbmm(b, x, w), device, seconds) / 1e9
    return out


def morec_round(device: torch.device, precision: str, steps: int, discriminator: str) -> dict:
    """Seconds per MOREC model step (2,000 rows, stride 10), and the projected h-100 round: policy and
    ensemble at `precision`, the discriminator at its own (a bf16 run keeps it fp32)."""
    ds = load_dataset("hopper-medium-replay", device=device)
    model, _, key = load_or_fit(ds, DynamicsConfig(max_epochs=10), device=device, progress=False)
    full, _, _ = load_or_fit_reward(ds, model, key, DynamicsRewardConfig(updates=3000), progress=False)
    reward = full.select(10)
    model, reward = copy.deepcopy(model), copy.deepcopy(reward)
    apply_precision(model, precision)
    apply_precision(reward, discriminator)
    spec = ds.spec
    sac = SAC(
        spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, SACConfig(), device, precision=precision
    )  # type: ignore[arg-type]
    terminated = termination_fn(spec.env, spec.gym_id)
    gen = torch.Generator(device=device).manual_seed(0)
    hook = compose(
        RewardConsistencyFilter(reward, FilterConfig(snapshot_stride=10), terminated),
        penalty_hook("max_aleatoric", 1.0, "elites"),
    )
    start = ds.data.obs[torch.randint(len(ds), (2000,), device=device, generator=gen)]
    sampler = sac.actor.sampler(gen)
    rollout(model, sampler, start, 1, terminated, hook, gen)  # warm-up
    began = time.perf_counter()
    rollout(model, sampler, start, steps, terminated, hook, gen)
    per_step = (time.perf_counter() - began) / steps
    return {"morec_step_s": per_step, "morec_round_s": per_step * 100, "snapshots": reward.members}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=6.0, help="timing budget per measure")
    p.add_argument("--e2e-steps", type=int, default=1000)
    p.add_argument("--morec-steps", type=int, default=3, help="MOREC model steps timed (0: skip)")
    p.add_argument("--repeats", type=int, default=3, help="fp32/bf16 pairs of each short measure")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.environ.setdefault("OFFLINE_MBRL_BF16_ANYWHERE", "1")  # measured where it is slow too, and said
    started, load_before = time.time(), os.getloadavg()[0]
    res: dict = {
        "device": device_name(device),
        "cpu_model": cpu_model(),
        "cpu_bf16_flags": cpu_bf16_flags() if device.type == "cpu" else None,
        "fast_bf16_missing": missing_bf16(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    res["matmul_gflops"] = batched_matmul_rates(device, args.seconds)
    res["flops"] = count_flops(device)
    samples: dict[str, dict[str, list[float]]] = {}

    def record(name: str, precision: str, value: float) -> None:
        samples.setdefault(name, {}).setdefault(precision, []).append(value)
        print(f"{name} [{precision}]: {value:,.2f}", flush=True)

    # the short measures: fp32 and bf16 alternately, `--repeats` pairs; the table takes each one's median
    for _ in range(args.repeats):
        for name in ("ravl", "mopo"):
            for precision in PRECISIONS:
                fn, _ = learner(name, 1, device, False, precision)
                record(f"{name} update, updates/s", precision, 1 / timed(fn, device, args.seconds))
        for precision in PRECISIONS:
            rate = bench_dynamics(device, args.seconds, precision)["dynamics_train_samples_per_s"]
            record("dynamics training, samples/s", precision, rate)
        for precision in PRECISIONS:
            rate = bench_rollout(device, args.seconds, precision)["rollout_transitions_per_s"]
            record("rollout round (50,000 x h 5), transitions/s", precision, rate)
    for precision in PRECISIONS:
        e2e = bench_end_to_end(device, "mopo", False, args.e2e_steps, precision)
        record("MOPO end to end (1 round + 1,000 steps), steps/s", precision, e2e["steps_per_s"])
    if args.morec_steps:
        base = morec_round(device, "fp32", args.morec_steps, "fp32")["morec_round_s"]
        for discriminator in PRECISIONS:
            label = "fp32, as a bf16 run keeps it" if discriminator == "fp32" else "bf16 too"
            name = f"MOREC round (2,000 x h 100, stride 10; discriminator {label}), s (lower is better)"
            record(name, "fp32", base)
            record(
                name, "bf16", morec_round(device, "bf16", args.morec_steps, discriminator)["morec_round_s"]
            )
    res["samples"] = samples
    res["rows"] = {n: {p: statistics.median(v) for p, v in by.items()} for n, by in samples.items()}
    write_results(args.out / "precision_speed", res, load_before, started, markdown)


def markdown(res: dict) -> str:
    mm, flops = res["matmul_gflops"], res["flops"]
    flags = res["cpu_bf16_flags"]
    lines = [
        f"# bf16 against fp32 on {res['device']}",
        "",
        f"{res['cpu_model']}; bf16 flags {flags}; "
        f"fast bf16 missing: {res['fast_bf16_missing'] or 'nothing'}. "
        f"torch {res['torch']}, {res['threads']} thread(s), load average {res['load_before']:.2f} before and "
        f"{res['load_after']:.2f} after, {res['seconds']:.0f} s. Batched critic product (10 x 256 x 256, 256 "
        f"rows): fp32 {mm['fp32']:.0f} GFLOP/s, bf16 {mm['bf16']:.0f} GFLOP/s "
        f"({mm['bf16'] / mm['fp32']:.2f}x).",
        "",
        "Medians over the repeated pairs (each value in precision_speed.json); end to end and MOREC once.",
        "",
        "| workload | fp32 | bf16 | bf16 / fp32 |",
        "| --- | --- | --- | --- |",
    ]
    for name, v in res["rows"].items():
        ratio = v["fp32"] / v["bf16"] if "lower is better" in name else v["bf16"] / v["fp32"]
        lines.append(f"| {name} | {v['fp32']:,.2f} | {v['bf16']:,.2f} | {ratio:.2f}x |")
    lines += [
        "",
        "| update | GFLOP per update | fp32: % of fp32 rate | bf16: % of bf16 rate | bf16: % of fp32 rate |",
    ]
    lines.append("| --- | --- | --- | --- | --- |")
    for name in ("ravl", "mopo"):
        v = res["rows"][f"{name} update, updates/s"]
        g = flops[name] / 1e9
        lines.append(
            f"| {name} | {g:.3f} | {100 * v['fp32'] * g / mm['fp32']:.0f}% | "
            f"{100 * v['bf16'] * g / mm['bf16']:.0f}% | {100 * v['bf16'] * g / mm['fp32']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
