"""`datasets make`: collect the suite's own D4RL-style datasets from the committed behaviour policies.

Tiers, as in D4RL: random (uniform actions), medium and expert (the checkpoint's stochastic actions),
medium-replay (every training checkpoint up to medium, each collecting as many steps as it collected in
training, scaled to the requested size), medium-expert (the medium and expert datasets concatenated:
both halves are collected with exactly the seeds the medium and expert tiers use, so a half whose tier
dataset already exists with the same policy, size, seed and family is read back instead of re-collected:
the result is the same bit for bit, in a fraction of the time).

Collection is vectorised (16 environments stepped together, one batched policy call per step) and
deterministic: the seed fixes every environment reset and every action sample, so one seed gives the
same dataset bit for bit on the same machine. Episodes are kept in the order they finish; the last one
is cut (marked as a time-out) to reach exactly the requested size. With `--family`, the vector slots
cycle through the family's members, so the dataset mixes the dynamics of all K members.

A task dataset (`pointmaze-stitch`) has its own recipe (offline_mbrl/datasets/pointmaze.py, a scripted
controller rather than behaviour policies); `make_dataset` hands it over, with `size` in transitions
rounded down to whole 200-step episodes in four equal groups.

Before any work, `check_size_fits` refuses a `--size` this machine cannot hold, in one line stating the
memory and disk it needs against what is available (MemAvailable, the Minari root's free space), and the
staging folders that killed makes left under the Minari root are removed (`minari_io.remove_stale_staging`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import gymnasium as gym
import minari
import numpy as np
import torch
from minari.storage import get_dataset_path

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.memory import available_bytes, gib
from offline_mbrl.core.paths import assets_dir, code_version, stack_versions
from offline_mbrl.core.progress import Stage, stage
from offline_mbrl.data.envs import ENVIRONMENTS, POINT2D, POINTMAZE, TIERS, d4rl_reference_scores
from offline_mbrl.data.make import point2d, pointmaze
from offline_mbrl.data.make.families import MDPFamily, apply_params, load_family
from offline_mbrl.data.make.policy import GaussianPolicy, load_policy_file
from offline_mbrl.data.minari_io import (
    Episode,
    dataset_damage,
    dataset_exists,
    publish_dataset,
    remove_stale_staging,
)
from offline_mbrl.data.names import MADE_NAMESPACE, made_id, parse_short_name, task_dataset

NUM_ENVS = 16
DEFAULT_SIZE = 1_000_000
TIER_SEED_OFFSET = {"random": 0, "medium": 1, "expert": 2, "medium-replay": 3}


@dataclass(frozen=True)
class MakeSummary:
    dataset_id: str
    path: Path
    transitions: int
    episodes: int
    mean_return: float
    seconds: float


class _Uniform:
    """The random tier's policy: uniform actions within the bounds (seeded through numpy)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int):
        self.low, self.high, self.rng = low, high, np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, size=(obs.shape[0], self.low.shape[0])).astype(
            np.float32
        )


class _Stochastic:
    def __init__(self, policy: GaussianPolicy, seed: int):
        self.policy, self.gen = policy, torch.Generator().manual_seed(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(obs, self.gen).astype(np.float32)


def collect(
    gym_id: str,
    act_fn,
    n_transitions: int,
    seed: int,
    family: MDPFamily | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[Episode]:
    """Run `act_fn` in NUM_ENVS environments until exactly `n_transitions` steps of whole episodes;
    `on_progress(transitions so far)` after each finished episode."""
    members = family.member_params() if family else None

    def make(i: int):
        def thunk():
            env = gym.make(gym_id)
            if members:
                apply_params(env, members[i % len(members)])
            return env

        return thunk

    envs = gym.vector.SyncVectorEnv(
        [make(i) for i in range(NUM_ENVS)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs, _ = envs.reset(seed=[seed * 10_007 + i for i in range(NUM_ENVS)])
    steps: list[list[tuple]] = [[] for _ in range(NUM_ENVS)]
    first_obs = [o for o in obs]
    episodes: list[Episode] = []
    total = 0
    while total < n_transitions:
        act = act_fn(obs)
        next_obs, rew, term, trunc, info = envs.step(act)
        for i in range(NUM_ENVS):
            done = term[i] or trunc[i]
            nxt = info["final_obs"][i] if done else next_obs[i]
            steps[i].append((nxt, act[i], rew[i], term[i], trunc[i] and not term[i]))
            if done:
                ep = steps[i]
                episodes.append(
                    Episode(
                        obs=np.stack([first_obs[i], *(s[0] for s in ep)]).astype(np.float32),
                        act=np.stack([s[1] for s in ep]).astype(np.float32),
                        rew=np.asarray([s[2] for s in ep], dtype=np.float32),
                        term=np.asarray([s[3] for s in ep], dtype=bool),
                        trunc=np.asarray([s[4] for s in ep], dtype=bool),
                    )
                )
                total += len(ep)
                if on_progress is not None:
                    on_progress(min(total, n_transitions))
                steps[i], first_obs[i] = [], next_obs[i]
        obs = next_obs
    envs.close()
    return _trim(episodes, n_transitions)


def _advance(collecting: Stage, before: int, done: int) -> None:
    """A part's progress as the whole make's: `done` of this part after `before` of the earlier ones."""
    collecting.advance(before + done)


def _trim(episodes: list[Episode], n_transitions: int) -> list[Episode]:
    """Keep whole episodes in finishing order and cut the one that crosses `n_transitions` (a time-out)."""
    kept, total = [], 0
    for ep in episodes:
        keep = min(len(ep.rew), n_transitions - total)
        if keep < len(ep.rew):
            term, trunc = ep.term[:keep].copy(), ep.trunc[:keep].copy()
            trunc[-1] = not term[-1]
            ep = Episode(ep.obs[: keep + 1], ep.act[:keep], ep.rew[:keep], term, trunc)
        kept.append(ep)
        total += keep
        if total == n_transitions:
            break
    return kept


def _behaviour_dir(env: str) -> Path:
    return assets_dir() / "behaviour" / env


def _manifest(env: str, tier: str) -> dict:
    path = _behaviour_dir(env) / f"{tier}.json"
    if not path.is_file():
        raise UserError(
            f"behaviour manifest {path} is missing; "
            f"train it with `offline-mbrl datasets train-behaviour {env}`"
        )
    return json.loads(path.read_text())


def _reference_scores(env: str) -> tuple[float, float, str]:
    ref = d4rl_reference_scores().get(env)
    if ref is not None:
        return ref.ref_min, ref.ref_max, ref.source
    random, expert = _manifest(env, "random"), _manifest(env, "expert")
    return random["mean_return"], expert["mean_return"], "offline-mbrl's uniform-random and expert policies"


def _tier_sources(
    env: str, tier: str, size: int, seed: int
) -> list[tuple[str | tuple[str, int], int, int, str]]:
    """(act_fn factory input, transitions, seed, label) for each part of a tier's data."""
    gym_seed = seed * 100
    if tier == "random":
        return [("random", size, gym_seed + TIER_SEED_OFFSET["random"], "uniform random actions")]
    if tier in ("medium", "expert"):
        return [(tier, size, gym_seed + TIER_SEED_OFFSET[tier], f"{tier} checkpoint")]
    if tier == "medium-expert":
        half = size // 2
        return [
            ("medium", half, gym_seed + TIER_SEED_OFFSET["medium"], "medium checkpoint"),
            ("expert", size - half, gym_seed + TIER_SEED_OFFSET["expert"], "expert checkpoint"),
        ]
    replay = load_policy_file(_behaviour_dir(env) / "replay.pt")
    collected = np.array([c["collected"] for c in replay], dtype=np.float64)
    shares = np.floor(collected / collected.sum() * size).astype(int)
    shares[-1] += size - shares.sum()
    base = gym_seed + TIER_SEED_OFFSET["medium-replay"]
    return [
        (("replay", k), int(n), base + 1000 * k, f"training checkpoint at {c['steps']:,} steps")
        for k, (c, n) in enumerate(zip(replay, shares, strict=True))
        if n > 0
    ]


def _behaviour_summary(env: str, tier: str) -> dict:
    return {
        k: _manifest(env, tier).get(k) for k in ("mean_return", "std_return", "training_steps", "command")
    }


def _made_part(env: str, tier: str, n: int, seed: int, fam: MDPFamily | None) -> list[Episode] | None:
    """The episodes of the made `tier` dataset if it is exactly this part of a medium-expert, else None.

    Exactly: one source with the same label, size and seed, the same behaviour policy manifest and the
    same family. Collection is deterministic, so such a dataset holds the very episodes we would collect.
    """
    suffix = f"-{fam.name}" if fam else ""
    dataset_id = f"{MADE_NAMESPACE}/{env}/{tier}{suffix}-v0"
    path = Path(get_dataset_path(dataset_id))
    if not dataset_exists(dataset_id) or dataset_damage(path) is not None:
        return None  # a damaged dataset is simply not reused; collecting gives the same data
    try:
        info = json.loads((path / "data" / "metadata.json").read_bytes()).get("offline_mbrl") or {}
        same = (
            info.get("sources") == [{"label": f"{tier} checkpoint", "transitions": n, "seed": seed}]
            and (info.get("behaviour_policies") or {}).get(tier) == _behaviour_summary(env, tier)
            and (info.get("family") or {}).get("name") == (fam.name if fam else None)
        )
    except (OSError, ValueError, AttributeError):
        return None
    if not same:
        return None
    try:
        episodes = list(minari.load_dataset(dataset_id).iterate_episodes())
    except Exception:  # a damaged dataset is simply not reused; collecting gives the same data
        return None
    parts = [
        Episode(
            obs=np.asarray(ep.observations, dtype=np.float32),
            act=np.asarray(ep.actions, dtype=np.float32),
            rew=np.asarray(ep.rewards, dtype=np.float32),
            term=np.asarray(ep.terminations, dtype=bool),
            trunc=np.asarray(ep.truncations, dtype=bool),
        )
        for ep in episodes
    ]
    return parts if sum(len(ep.rew) for ep in parts) == n else None


def default_size(env: str, tier: str) -> int:
    if env == POINTMAZE.name:
        return pointmaze.DEFAULT_SIZE
    if env == POINT2D.name:
        return point2d.DEFAULT_EPISODES * point2d.POINT2D_HORIZON
    if tier == "medium-expert":
        return 2 * DEFAULT_SIZE
    if tier == "medium-replay":
        return int(_manifest(env, "replay")["collected_steps"])
    return DEFAULT_SIZE


def _target(name: str, family: str | None) -> tuple[str, str, MDPFamily | None, str]:
    """(env, tier, family, Minari id) of a makeable name; UserError for anything else."""
    short = parse_short_name(name)
    if short is None or short.version not in (None, 0):
        envs, tiers = ", ".join(ENVIRONMENTS), ", ".join(TIERS)
        raise UserError(f"cannot make '{name}': use ENV-TIER with ENV in {envs} and TIER in {tiers}")
    fam = load_family(family) if family else None
    if fam is not None and fam.env_id != ENVIRONMENTS[short.env].gym_id:
        raise UserError(f"family '{fam.name}' is for {fam.env_id}, not {ENVIRONMENTS[short.env].gym_id}")
    suffix = f"-{fam.name}" if fam else ""
    return short.env, short.tier, fam, f"{MADE_NAMESPACE}/{short.env}/{short.tier}{suffix}-v0"


def made_dataset_id(name: str, family: str | None = None) -> str:
    task = task_dataset(name)
    return made_id(task) if task is not None else _target(name, family)[3]


# Memory per transition while making, as a multiple of its stored bytes: the collected episodes, Minari's
# write buffers and Python's per-step records (measured: 103 bytes a Pendulum transition of 22 stored).
MEMORY_FACTOR = 5
EPISODE_DISK_BYTES = 16 * 2**10  # an episode's hdf5 group and headers (measured: about 15 KiB)


def _free_disk(path: Path) -> int | None:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def check_size_fits(gym_id: str, size: int) -> None:
    """Refuse, before any work, a `--size` whose collection this machine cannot hold (memory or disk)."""
    probe = gym.make(gym_id)
    obs_dim = int(np.prod(probe.observation_space.shape or (1,)))
    act_dim = int(np.prod(probe.action_space.shape or (1,)))
    horizon = (probe.spec.max_episode_steps if probe.spec else None) or 1000
    probe.close()
    stored = 4 * (obs_dim + act_dim + 1) + 2  # float32 observation, action, reward; two bool flags
    memory = MEMORY_FACTOR * stored * size
    disk = stored * size + EPISODE_DISK_BYTES * math.ceil(size / horizon)  # at least: episodes <= horizon
    root = Path(get_dataset_path())
    free_memory, free_disk = available_bytes(), _free_disk(root)
    short = []
    if free_memory is not None and memory > free_memory:
        short.append(f"about {gib(memory)} of memory ({gib(free_memory)} available)")
    if free_disk is not None and disk > free_disk:
        short.append(f"at least {gib(disk)} of disk under {root} ({gib(free_disk)} free)")
    if short:
        fits = min(
            free_memory // (MEMORY_FACTOR * stored) if free_memory is not None else size,
            int(free_disk / (stored + EPISODE_DISK_BYTES / horizon)) if free_disk is not None else size,
        )
        raise UserError(
            f"--size {size:,} needs {' and '.join(short)}: this machine cannot hold it; "
            f"choose --size {max(fits, 1):,} or less"
        )


def _make_task(name: str, size: int | None, seed: int, overwrite: bool, family: str | None) -> MakeSummary:
    if family is not None:
        raise UserError(f"'{name}' has no MDP family: --family applies to ENV-TIER datasets only")
    task = task_dataset(name)
    env = POINT2D if task is not None and task.env == POINT2D.name else POINTMAZE
    if size is not None and size > 0:
        check_size_fits(env.gym_id, size)
    remove_stale_staging()
    if env is POINT2D:
        return point2d.make_point2d_partial(point2d.episodes_for_size(size), seed=seed, overwrite=overwrite)
    s = pointmaze.make_pointmaze_stitch(pointmaze.episodes_for_size(size), seed=seed, overwrite=overwrite)
    return MakeSummary(s.dataset_id, s.path, s.transitions, s.episodes, s.mean_return, s.seconds)


def make_dataset(
    name: str, size: int | None = None, seed: int = 0, overwrite: bool = False, family: str | None = None
) -> MakeSummary:
    if task_dataset(name) is not None:
        return _make_task(name, size, seed, overwrite, family)
    env, tier, fam, dataset_id = _target(name, family)
    suffix = f"-{fam.name}" if fam else ""
    if dataset_exists(dataset_id) and not overwrite:
        raise UserError(f"dataset '{dataset_id}' already exists; pass --overwrite to replace it")
    if size is not None and size <= 0:
        raise UserError(f"--size must be positive, got {size}")
    size = size or default_size(env, tier)
    gym_id = ENVIRONMENTS[env].gym_id
    check_size_fits(gym_id, size)
    remove_stale_staging()
    sources = _tier_sources(env, tier, size, seed)
    start = time.time()
    probe = gym.make(gym_id)
    act_box = cast(gym.spaces.Box, probe.action_space)  # every suite environment has continuous actions
    low, high = act_box.low, act_box.high
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    replay = None
    episodes: list[Episode] = []
    torch.set_num_threads(1)
    with stage("collect", size, f"make {dataset_id}") as collecting:
        made = 0  # transitions of the parts before this one
        for source, n, part_seed, _label in sources:
            # a medium-expert tier's sources are the tier names "medium" and "expert"
            reused = (
                _made_part(env, cast(str, source), n, part_seed, fam) if tier == "medium-expert" else None
            )
            if reused is not None:
                print(f"reusing the made {source} tier ({n:,} transitions, seed {part_seed})")
                episodes += reused
                made += n
                collecting.advance(made)
                continue
            act_fn: _Uniform | _Stochastic
            if source == "random":
                act_fn = _Uniform(low, high, part_seed)
            elif isinstance(source, tuple):
                replay = replay or load_policy_file(_behaviour_dir(env) / "replay.pt")
                act_fn = _Stochastic(GaussianPolicy.from_checkpoint(replay[source[1]]["state"]), part_seed)
            else:
                ckpt = load_policy_file(_behaviour_dir(env) / f"{source}.pt")
                act_fn = _Stochastic(GaussianPolicy.from_checkpoint(ckpt), part_seed)
            episodes += collect(gym_id, act_fn, n, part_seed, fam, partial(_advance, collecting, made))
            made += n
    returns = np.array([float(np.sum(e.rew, dtype=np.float64)) for e in episodes])
    ref_min, ref_max, ref_source = _reference_scores(env)
    behaviour = {
        t: _behaviour_summary(env, t)
        for t in ("medium", "expert")
        if (_behaviour_dir(env) / f"{t}.json").is_file()
    }
    policy_note = {
        "random": "uniform random actions",
        "medium": f"PPO medium checkpoint (mean return {behaviour.get('medium', {}).get('mean_return')})",
        "expert": f"PPO expert checkpoint (mean return {behaviour.get('expert', {}).get('mean_return')})",
        "medium-replay": f"every PPO training checkpoint up to medium ({len(sources)} policies)",
        "medium-expert": "PPO medium and expert checkpoints, concatenated",
    }[tier]
    extra = {
        "offline_mbrl": {
            "tier": tier,
            "size": size,
            "seed": seed,
            "sources": [{"label": lab, "transitions": n, "seed": s} for _, n, s, lab in sources],
            "behaviour_policies": behaviour,
            "reference_source": ref_source,
            "family": None if fam is None else {"name": fam.name, "members": fam.member_params()},
            "dataset_mean_return": float(returns.mean()),
            "versions": stack_versions(),  # what determined these arrays (the physics stack)
        }
    }
    path = publish_dataset(
        dataset_id,
        episodes,
        eval_env=gym_id,
        observation_space=obs_space,
        action_space=act_space,
        ref_min=ref_min,
        ref_max=ref_max,
        algorithm_name=policy_note,
        description=(
            f"offline-mbrl {env}-{tier}{suffix}: {size:,} transitions from {policy_note} "
            f"on {gym_id}, seed {seed}"
        ),
        code_permalink=f"offline_mbrl.data.make.collect @ {code_version()}",
        overwrite=overwrite,
        extra_metadata=extra,
    )
    return MakeSummary(dataset_id, path, size, len(episodes), float(returns.mean()), time.time() - start)
