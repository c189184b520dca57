"""The edge-of-reach task: a 2-D point with exact, closed-form dynamics, and a dataset that covers only
part of its plane (`point2d-partial`). Made for the edge-of-reach claim (Sims et al., NeurIPS 2024):
with no model error possible at all, does bootstrapping from the states that truncated rollouts reach
only at their last step still blow up the Q-values?

The environment (gym id `offline_mbrl/Point2D-v0`, short name `point2d`):
- state = observation = the position `(x, y)` in the square [-1, 1]^2; action `(ax, ay)` in [-1, 1]^2;
  `s' = clip(s + 0.1 a, -1, 1)` (the square's walls stop the point). No terminal states; episodes end at
  a time limit of 50 steps (a time-out, never a terminal).
- reward `r(s') = x'` while `x' <= 0.5`; to the right of x = 0.5 lies a strip of "lava": `r = -1`.
  The best behaviour is to move right at full speed and stop at x = 0.5 (`optimal_value`, closed form).
- start states: x uniform in [-1, -0.8], y uniform in [-0.5, 0.5].

The dataset (`make_point2d_partial`): a behaviour policy that drifts right at half speed to x = -0.3 and
dithers there (action noise N(0, 0.3^2) on x, N(0, 0.5^2) on y). Its states cover x <= -0.1 or so: the
reward rises along every step it takes to the right, and nothing in it shows the lava. From a data
state, a 5-step rollout at full speed reaches x <= 0.4, short of the lava: its last states (the edge of
reach) are bootstrapped from but never trained, and the rising reward makes them look valuable. Full-
horizon rollouts (50 steps) reach the lava and the walls from everywhere.

Reference returns for the normalised score: the optimal policy (right at full speed, stop at 0.5) and a
uniform-random policy, each the mean over `REFERENCE_EPISODES` seeded episodes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import code_version, stack_versions
from offline_mbrl.data.envs import POINT2D, POINT2D_HORIZON
from offline_mbrl.data.minari_io import Episode, dataset_exists, publish_dataset
from offline_mbrl.data.names import POINT2D_PARTIAL, TASK_DATASETS, made_id

if TYPE_CHECKING:
    from offline_mbrl.data.make.collect import MakeSummary

BOUND = 1.0  # the square's half side
STEP = 0.1  # distance moved by a unit action
LAVA_X = 0.5  # the lava starts right of this x
LAVA_REWARD = -1.0
START_LOW, START_HIGH = np.array([-1.0, -0.5]), np.array([-0.8, 0.5])
HOVER_X = -0.3  # the behaviour policy's resting x
BEHAVIOUR_NOISE = (0.3, 0.5)  # std of the behaviour's action noise on x and on y
DEFAULT_EPISODES = 200  # 10,000 transitions
REFERENCE_EPISODES = 100
REFERENCE_SEED = 10_000


def step(obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true transition of a batch: `(B, 2)` positions and actions to `(next_obs, reward)`."""
    nxt = np.clip(obs + STEP * np.clip(act, -1.0, 1.0), -BOUND, BOUND)
    x = nxt[..., 0]
    return nxt, np.where(x <= LAVA_X, x, LAVA_REWARD)


def optimal_value(obs: np.ndarray, gamma: float) -> np.ndarray:
    """V*(s) with no time limit (what a TD target bootstraps towards): move right at full speed to
    x = 0.5, collecting x' each step, then stay there (0.5 a step). In the lava, the best is to leave it
    to the left at once (one step of -1 per 0.1 of lava), then the same from x <= 0.5."""
    x = np.asarray(obs, dtype=np.float64)[..., 0]
    value = np.zeros_like(x)
    discount = np.ones_like(x)
    for _ in range(int(np.ceil(2 * BOUND / STEP)) + 2):  # at most 22 steps reach x = 0.5 from anywhere
        target = np.where(x > LAVA_X, np.maximum(x - STEP, LAVA_X), np.minimum(x + STEP, LAVA_X))
        value += discount * np.where(target <= LAVA_X, target, LAVA_REWARD)
        discount *= gamma
        x = target
    return value + discount * LAVA_X / (1.0 - gamma)


def max_return(gamma: float) -> float:
    """The largest discounted return any state allows: 0.5 every step, forever."""
    return LAVA_X / (1.0 - gamma)


class Point2DEnv(gym.Env[np.ndarray, np.ndarray]):
    """The environment; the time limit comes from the registration (`max_episode_steps`)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-BOUND, BOUND, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.zeros(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(START_LOW, START_HIGH)
        return self._pos.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        act = np.asarray(action, dtype=np.float64).reshape(1, 2)
        nxt, rew = step(self._pos.astype(np.float32).astype(np.float64).reshape(1, 2), act)
        self._pos = nxt[0]
        return self._pos.astype(np.float32), float(rew[0]), False, False, {}


def make_env() -> gym.Env:
    return gym.make(POINT2D.gym_id)


def behaviour_action(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half speed towards x = -0.3, then dithering around it; y a random walk."""
    drift = 0.5 * np.clip((HOVER_X - obs[0]) / STEP, -1.0, 1.0)
    noise = rng.normal(0.0, BEHAVIOUR_NOISE)
    return np.clip(np.array([drift, 0.0]) + noise, -1.0, 1.0).astype(np.float32)


def _episode(policy: Any, seed: int, rng: np.random.Generator) -> Episode:
    env = make_env()
    obs, _ = env.reset(seed=seed)
    rows, acts, rews = [obs], [], []
    done = False
    while not done:
        act = policy(obs, rng)
        obs, rew, term, trunc, _ = env.step(act)
        rows.append(obs)
        acts.append(act)
        rews.append(rew)
        done = term or trunc
    env.close()
    n = len(rews)
    return Episode(
        obs=np.asarray(rows, np.float32),
        act=np.asarray(acts, np.float32),
        rew=np.asarray(rews, np.float32),
        term=np.zeros(n, bool),
        trunc=np.arange(n) == n - 1,
    )


def optimal_action(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The optimal policy: right at full speed, stopping exactly at x = 0.5 (left out of the lava)."""
    return np.array([np.clip((LAVA_X - obs[0]) / STEP, -1.0, 1.0), 0.0], np.float32)


def random_action(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, 2).astype(np.float32)


def references(episodes: int = REFERENCE_EPISODES) -> tuple[float, float]:
    """(random, optimal) mean returns over `episodes` seeded episodes each."""
    rng = np.random.default_rng(REFERENCE_SEED)
    out = []
    for policy in (random_action, optimal_action):
        out.append(
            float(np.mean([_episode(policy, REFERENCE_SEED + k, rng).rew.sum() for k in range(episodes)]))
        )
    return out[0], out[1]


def episodes_for_size(size: int | None) -> int:
    if size is None:
        return DEFAULT_EPISODES
    if size < POINT2D_HORIZON:
        raise UserError(f"--size {size} is under one episode of {POINT2D.name} ({POINT2D_HORIZON} steps)")
    return size // POINT2D_HORIZON


def make_point2d_partial(
    episodes: int = DEFAULT_EPISODES, seed: int = 0, overwrite: bool = False
) -> MakeSummary:
    """Collect and publish `offline-mbrl/point2d/partial-v0` (atomically, through Minari)."""
    from offline_mbrl.data.make.collect import MakeSummary  # collect imports this module

    dataset_id = made_id(TASK_DATASETS[POINT2D_PARTIAL])
    if dataset_exists(dataset_id) and not overwrite:
        raise UserError(f"dataset '{dataset_id}' already exists; pass --overwrite to replace it")
    start = time.time()
    data = [
        _episode(behaviour_action, seed * 1_000_003 + k, np.random.default_rng([seed, k]))
        for k in range(episodes)
    ]
    ref_random, ref_optimal = references()
    returns = np.array([ep.rew.sum() for ep in data])
    states = np.concatenate([ep.obs for ep in data])
    transitions = int(sum(len(ep.rew) for ep in data))
    env = make_env()
    extra = {
        "offline_mbrl": {
            "task": POINT2D_PARTIAL,
            "versions": stack_versions(),
            "size": transitions,
            "seed": seed,
            "episodes": episodes,
            "horizon": POINT2D_HORIZON,
            "observation": "x, y",
            "data_x_range": [float(states[:, 0].min()), float(states[:, 0].max())],
            "dataset_mean_return": float(returns.mean()),
            "best_return": float(returns.max()),
            "reference": {"optimal": ref_optimal, "random": ref_random, "episodes": REFERENCE_EPISODES},
            "reference_source": (
                f"offline-mbrl: the optimal policy and uniform random actions, {REFERENCE_EPISODES} seeded "
                "episodes each"
            ),
        }
    }
    path = publish_dataset(
        dataset_id,
        data,
        eval_env=POINT2D.gym_id,
        observation_space=env.observation_space,
        action_space=env.action_space,
        ref_min=ref_random,
        ref_max=ref_optimal,
        algorithm_name="scripted behaviour: half speed to x = -0.3, then dithering",
        description=(
            f"offline-mbrl {POINT2D_PARTIAL}: {episodes} episodes x {POINT2D_HORIZON} steps on "
            f"{POINT2D.gym_id}, seed {seed}; data x in [{states[:, 0].min():.2f}, "
            f"{states[:, 0].max():.2f}], mean return {returns.mean():.2f}; optimal {ref_optimal:.2f}, "
            f"random {ref_random:.2f}"
        ),
        code_permalink=f"offline_mbrl.data.make.point2d @ {code_version()}",
        overwrite=overwrite,
        extra_metadata=extra,
    )
    env.close()
    return MakeSummary(dataset_id, path, transitions, episodes, float(returns.mean()), time.time() - start)
