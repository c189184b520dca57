"""Throughput of a MOREC rollout round against a MOPO one, on the same ensemble, policy and device.

A MOREC step draws `elites x samples` (10) candidate next states per row and scores each with every
averaged discriminator snapshot; a round is 2,000 rows x h 100 (MOPO's: 50,000 x h 5). The shapes are
fixed (cut rows stay in the batch, masked), so a round's cost is linear in h: the script times `--steps`
model steps of each and reports the per-step time, transitions/s, candidate-snapshot evaluations/s, the
discriminator's FLOPs and the projected time of a full round.

    python benchmarks/morec_rollout.py --dataset hopper-medium-replay --set dynamics.max_epochs=10 \
        --set algo.reward.updates=3000 --strides 10 40

It loads (or fits) the cached ensemble and dynamics reward of those settings; the policy is a freshly
initialised SAC actor (the cost does not depend on its quality). Writes
benchmarks/results/morec_rollout_<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from offline_mbrl.algorithms.mopo import penalty_hook
from offline_mbrl.algorithms.morec.algorithm import FilterConfig
from offline_mbrl.algorithms.morec.filter import RewardConsistencyFilter
from offline_mbrl.algorithms.morec.reward import DynamicsRewardConfig
from offline_mbrl.algorithms.morec.reward_fit import load_or_fit_reward
from offline_mbrl.config import apply_overrides
from offline_mbrl.data.dataset import load_dataset
from offline_mbrl.learning.rollout import compose, rollout
from offline_mbrl.learning.sac import SAC, SACConfig
from offline_mbrl.models.dynamics import DynamicsConfig, dynamics_key, load_or_fit
from offline_mbrl.models.termination import termination_fn


def _flops_per_candidate(reward) -> int:
    """Multiply-adds x 2 of the per-candidate part (Δs encoder, head) per snapshot."""
    cfg, o = reward.cfg, reward.obs_dim
    sizes = [o, *cfg.hidden, cfg.delta_embed]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    head = [cfg.delta_embed, *cfg.head_hidden, 1]
    macs += sum(a * b for a, b in zip(head[:-1], head[1:], strict=False))
    return 2 * macs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="hopper-medium-replay")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="dynamics.* / algo.reward.*")
    p.add_argument("--strides", nargs="+", type=int, default=[10, 40])
    p.add_argument("--rows", type=int, default=2000, help="MOREC rollout rows (the paper's 2,000)")
    p.add_argument("--mopo-rows", type=int, default=50_000)
    p.add_argument("--steps", type=int, default=3, help="model steps timed per configuration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    dyn_items = [o for o in args.overrides if o.startswith("dynamics.")]
    reward_items = [o.removeprefix("algo.").removeprefix("reward.") for o in args.overrides if "reward." in o]
    dyn_cfg = apply_overrides(DynamicsConfig(), [o.removeprefix("dynamics.") for o in dyn_items])
    reward_cfg = apply_overrides(DynamicsRewardConfig(), reward_items)
    ds = load_dataset(args.dataset, device=device)
    model, _, key = load_or_fit(ds, dyn_cfg, device=device)
    assert key == dynamics_key(ds.fingerprint.key, dyn_cfg)
    full, report, rkey = load_or_fit_reward(ds, model, key, reward_cfg)
    spec = ds.spec
    sac = SAC(spec.obs_dim, spec.act_dim, spec.act_low, spec.act_high, SACConfig(), device=device)
    terminated = termination_fn(spec.env, spec.gym_id)
    gen = torch.Generator(device=device).manual_seed(0)

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return sac.act(obs, deterministic=False, generator=gen)

    def timed(rows: int, hook) -> float:
        idx = torch.randint(len(ds), (rows,), device=device, generator=gen)
        rollout(model, policy, ds.data.obs[idx], 1, terminated, hook, gen)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        rollout(model, policy, ds.data.obs[idx], args.steps, terminated, hook, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.steps  # seconds per model step

    results = []
    mopo_step = timed(args.mopo_rows, penalty_hook("max_aleatoric", 1.0, "elites"))
    results.append(
        {
            "config": f"MOPO step, {args.mopo_rows} rows",
            "seconds_per_step": mopo_step,
            "transitions_per_s": args.mopo_rows / mopo_step,
            "round_seconds": mopo_step * 5,
            "round": f"{args.mopo_rows} x h 5",
        }
    )
    for stride in args.strides:
        reward = full.select(stride)
        filt = RewardConsistencyFilter(reward, FilterConfig(snapshot_stride=stride), terminated)
        hook = compose(filt, penalty_hook("max_aleatoric", 1.0, "elites"))
        step = timed(args.rows, hook)
        cands = args.rows * len(model.elites) * 2
        evals = cands * reward.members
        flops = evals * _flops_per_candidate(reward)
        results.append(
            {
                "config": f"MOREC step, {args.rows} rows, stride {stride} ({reward.members} snapshots)",
                "seconds_per_step": step,
                "transitions_per_s": args.rows / step,
                "candidate_snapshot_evals_per_s": evals / step,
                "discriminator_gflop_per_step": flops / 1e9,
                "discriminator_gflop_per_s": flops / step / 1e9,
                "round_seconds": step * 100,
                "round": f"{args.rows} x h 100",
            }
        )
    meta = {
        "dataset": args.dataset,
        "device": args.device if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "dynamics_key": key,
        "reward_key": rkey,
        "reward_snapshots": full.members,
        "steps_timed": args.steps,
    }
    out = Path("benchmarks/results") / f"morec_rollout_{device.type}"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [
        f"# MOREC vs MOPO rollout throughput: {args.dataset}, {meta['device']}, {args.threads} thread(s)",
        "",
        "| configuration | s per model step | transitions/s | candidate x snapshot evals/s | "
        "discriminator GFLOP/s | projected round |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['config']} | {r['seconds_per_step']:.3f} | {r['transitions_per_s']:,.0f} | "
            f"{r.get('candidate_snapshot_evals_per_s', float('nan')):,.0f} | "
            f"{r.get('discriminator_gflop_per_s', float('nan')):.1f} | "
            f"{r['round_seconds']:.1f} s ({r['round']}) |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
