"""True-simulator transitions per second (`offline_mbrl.models.oracle`) for one batch of B states.

    python benchmarks/oracle_throughput.py [--batch 10000] [--threads 1] [--envs hopper halfcheetah]

States come from the env's own random-action episodes (tiled to B), actions are uniform in the action
box; the first call (thread pool, batch set-up) is excluded, the best of `--repeats` is reported.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

from offline_mbrl.data.envs import ENVIRONMENTS
from offline_mbrl.models.oracle import simulator


def states(gym_id: str, n: int, seed: int = 0) -> np.ndarray:
    env = gym.make(gym_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return np.asarray(rows, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--envs", nargs="+", default=["hopper", "halfcheetah"], choices=sorted(ENVIRONMENTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for name in args.envs:
        gym_id = ENVIRONMENTS[name].gym_id
        sim = simulator(name, gym_id, threads=args.threads)
        pool = states(gym_id, 1000)
        obs = pool[rng.integers(len(pool), size=args.batch)]
        act = rng.uniform(-1, 1, size=(args.batch, sim.act_dim))
        sim.step(obs, act)  # warm-up: thread pool and batch set-up
        best = min(_timed(sim.step, obs, act) for _ in range(args.repeats))
        print(f"{name:26s} B={args.batch} threads={args.threads}: {args.batch / best:10.0f} transitions/s")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
