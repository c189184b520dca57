"""MBRCSL's PointMaze stitching benchmark: the environment, a scripted waypoint controller, the dataset.

The task (Zhou et al., ICLR 2024, "Free from Bellman Completeness", reference code zhaoyizhou1123/mbrcsl
`envs/pointmaze/`) is built so that the best behaviour exists only by stitching pieces of trajectories:
every episode starts in cell (1, 2) of a small maze whose goal is cell (2, 4); half the data walks to
(2, 2) and stays there (the first half of the direct route, never reaching the goal), the other half
takes a detour (1, 1) -> (2, 1) -> (2, 4) that does reach it. Nothing in the data follows
(1, 2) -> (2, 2) -> (2, 4) end to end, yet both pieces are there.

What is the paper's (reference code `maze_default.json`, `maze_sampler.py`, `maze_expert.py`):
- Gymnasium-Robotics `PointMaze_UMazeDense-v3` (`PointMazeEnv`, dense reward exp(-distance to goal)) with
  the 4x6 map below, start cell (1, 2) and goal cell (2, 4) marked in the map ('r', 'g'),
  `continuing_task=False`, 200 steps per episode; Gymnasium-Robotics adds uniform noise of +-0.25 to
  both the start and the goal position at each reset.
- Four groups of equal size, all from (1, 2): two go to (2, 2) and stay, one follows the detour, one
  follows the detour and takes uniform-random actions once it is within 0.5 of its last sub-goal.
- The controller: shortest waypoints over cells (value iteration there, breadth-first search here: the
  same shortest paths, unique on this map), PD control `a = clip(10 (wp - xy) - 1 v, -1, 1)`, the next
  waypoint once within 0.1 of the current one, intermediate waypoints jittered by subtracting
  U[0, 0.2) per coordinate from the cell centre, and each sub-goal cell's target drawn as its centre
  plus U(-0.25, 0.25) per coordinate. A sub-goal counts as reached at distance <= 0.5 with each
  velocity component |v| <= 0.5 (the reference's per-component test, not the norm); after the last
  one the controller keeps steering to it, which holds the point still there.
- Every episode runs all 200 steps and its return sums all 200 rewards; the reference ignores the
  environment's goal `terminated` flag and treats only the time limit as the episode's end.

What is chosen here:
- Termination. With `continuing_task=False`, Gymnasium-Robotics 1.4 returns `terminated=True` on every
  step that ends within 0.45 of the goal (and keeps stepping if called again). The data runs all 200
  steps through it, so the suite's environment (`PointMazeStitchEnv`, gym id
  `offline_mbrl/PointMazeStitch-v0`) never terminates: `terminated` is always False and the 200-step
  time limit truncates. The data records no terminals and a time-out at step 200, and the suite's
  termination function for `pointmaze` never ends a model rollout (except on non-finite states). An
  evaluated policy thus collects reward for all 200 steps, as in the paper.
- Observation: `[x, y, vx, vy, goal_x, goal_y]`. The reference kept only the first four, but the goal is
  not fixed: it carries the reset noise, so the reward exp(-|xy - goal|) is not a function of those four.
  With the goal appended the reward is a function of the observation (what a learned dynamics model
  predicts) and the observation is the whole simulator state (a recorded state can be re-created).
- Seeds. The reference drew `np.random.randint(0, 1000)` env seeds; here episode k of a dataset with
  seed S resets with seed `S * 1_000_003 + k` and draws its jitter, sub-goal noise and random actions
  from `np.random.default_rng([S, k])`, so a seed gives the same arrays bit for bit and any recorded
  episode can be replayed from its seed (both are stored in the metadata).
- The first waypoint of a route is jittered like the others (the reference left the very first one at
  the cell centre). Actions are float32 and the environment steps with exactly the stored action.
- Reference returns for the normalised score (the reference code measured only the expert, over 10
  episodes): the expert is this controller driving the direct route (1, 2) -> (2, 2) -> (2, 3) -> goal
  straight to the environment's goal, the random reference a uniform-random policy; each the mean over
  `reference_episodes` (100) seeded episodes with seeds independent of the dataset's seed. A policy
  faster than the PD controller scores above 100.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import code_version, stack_versions
from offline_mbrl.core.progress import stage
from offline_mbrl.data.envs import POINTMAZE, POINTMAZE_HORIZON
from offline_mbrl.data.minari_io import Episode, dataset_exists, publish_dataset
from offline_mbrl.data.names import POINTMAZE_STITCH, TASK_DATASETS, made_id

PIP_COMMAND = "pip install 'gymnasium-robotics>=1.4,<2'"

# 1 = wall, 0 = free (the paper's map); rows are i (y decreases with i), columns j (x increases with j).
MAZE_MAP: tuple[tuple[int, ...], ...] = (
    (1, 1, 1, 1, 1, 1),
    (1, 0, 0, 1, 1, 1),
    (1, 0, 0, 0, 0, 1),
    (1, 1, 1, 1, 1, 1),
)
Cell = tuple[int, int]
START_CELL: Cell = (1, 2)
GOAL_CELL: Cell = (2, 4)
OBS_DIM = 6  # x, y, vx, vy, goal_x, goal_y

# Controller constants (the reference's).
P_GAIN = 10.0
D_GAIN = 1.0
WAYPOINT_RADIUS = 0.1
SUBGOAL_RADIUS = 0.5
SUBGOAL_SPEED = 0.5  # per velocity component
WAYPOINT_JITTER = 0.2  # subtracted as U[0, 0.2) per coordinate from intermediate cell centres
SUBGOAL_NOISE = 0.25  # sub-goal target = cell centre + U(-0.25, 0.25) per coordinate

DEFAULT_EPISODES = 1000
DEFAULT_SIZE = DEFAULT_EPISODES * POINTMAZE_HORIZON
REFERENCE_EPISODES = 100
REFERENCE_SEED = 987_654  # the reference returns' episodes, independent of any dataset seed
EPISODE_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Group:
    """One kind of data episode: the sub-goal cells visited in order from the start cell."""

    name: str
    route: tuple[Cell, ...]
    random_after_last: bool  # uniform-random actions once within SUBGOAL_RADIUS of the last sub-goal


# The paper's four groups of equal size; the two identical (2, 2) groups give the first half of the direct
# route as much data as both detour groups together.
GROUPS: tuple[Group, ...] = (
    Group("to (2,2), stay (a)", ((2, 2),), False),
    Group("to (2,2), stay (b)", ((2, 2),), False),
    Group("detour (1,1)-(2,1)-(2,4)", ((1, 1), (2, 1), (2, 4)), False),
    Group("detour, then random", ((1, 1), (2, 1), (2, 4)), True),
)


def _point_maze_env_class() -> type:
    """Gymnasium-Robotics' `PointMazeEnv`, imported when the environment is made: a missing install is
    then a one-line UserError wherever the task is touched, and other datasets never import it."""
    try:
        # its import prints a notice about the Adroit environments to stderr; it does not concern us
        with contextlib.redirect_stderr(io.StringIO()):
            from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    except ImportError:
        raise UserError(f"the PointMaze stitching task needs gymnasium-robotics: {PIP_COMMAND}") from None
    return cast(type, PointMazeEnv)


def _marked_map() -> list[list[int | str]]:
    rows: list[list[int | str]] = [list(row) for row in MAZE_MAP]
    rows[START_CELL[0]][START_CELL[1]] = "r"
    rows[GOAL_CELL[0]][GOAL_CELL[1]] = "g"
    return rows


class PointMazeStitchEnv(gym.Env[np.ndarray, np.ndarray]):
    """The stitching maze with a flat observation and no terminal states (see the module docstring).

    Registered as `offline_mbrl/PointMazeStitch-v0` with a 200-step time limit (offline_mbrl/envs.py);
    `gym.make` of that id is both the data collector's and the evaluator's environment.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.maze_env = _point_maze_env_class()(
            maze_map=_marked_map(), reward_type="dense", continuing_task=False, reset_target=False
        )
        # Gymnasium-Robotics writes the maze's MJCF to a /tmp file per environment and never removes it;
        # MuJoCo has read it by now, so drop it instead of leaving one file behind per environment made.
        with contextlib.suppress(OSError):
            os.remove(self.maze_env.tmp_xml_file_path)
        self.action_space = self.maze_env.action_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)

    @property
    def maze(self) -> Any:
        """Gymnasium-Robotics' `Maze`: the map and the cell <-> xy conversions."""
        return self.maze_env.maze

    @staticmethod
    def _flat(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([obs["observation"], obs["desired_goal"]]).astype(np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.maze_env.reset(seed=seed)
        return self._flat(obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # the goal flag (`terminated` within 0.45 of the goal) is dropped: the task has no terminal states
        obs, rew, _goal_reached, _, info = self.maze_env.step(action)
        return self._flat(obs), float(rew), False, False, info

    def close(self) -> None:
        self.maze_env.close()


def make_env() -> gym.Env:
    """The registered environment, as the evaluator builds it."""
    return gym.make(POINTMAZE.gym_id)


def cell_center(maze: Any, cell: Cell) -> np.ndarray:
    return np.asarray(maze.cell_rowcol_to_xy(np.asarray(cell)), dtype=np.float64)


def cell_of(maze: Any, xy: np.ndarray) -> Cell:
    i, j = maze.cell_xy_to_rowcol(xy)
    return int(i), int(j)


def shortest_path(maze_map: Sequence[Sequence[int | str]], start: Cell, goal: Cell) -> list[Cell]:
    """Cells from `start` to `goal` inclusive over free cells (4-neighbour moves), by breadth-first search.

    A wall start (a point pushed into a wall's cell by rounding) is allowed as the search's origin.
    """
    rows, cols = len(maze_map), len(maze_map[0])
    parent: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = [cell]
            while (prev := parent[path[-1]]) is not None:
                path.append(prev)
            return path[::-1]
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (cell[0] + di, cell[1] + dj)
            if 0 <= nxt[0] < rows and 0 <= nxt[1] < cols and maze_map[nxt[0]][nxt[1]] != 1:
                if nxt not in parent:
                    parent[nxt] = cell
                    queue.append(nxt)
    raise ValueError(f"no path from cell {start} to cell {goal}")


class WaypointController:
    """Visits `subgoals` (xy targets; None: the observed goal) in order along shortest cell paths with PD.

    Within a sub-goal's path the intermediate cell centres (jittered) are waypoints passed within 0.1;
    the last waypoint is the sub-goal itself, steered to until it is reached (distance <= 0.5, each
    velocity component <= 0.5; without the speed test for a last sub-goal followed by random actions).
    After the last sub-goal the controller keeps steering to it, or acts uniformly at random.
    """

    def __init__(
        self,
        maze: Any,
        subgoals: Sequence[np.ndarray] | None,
        rng: np.random.Generator,
        random_after_last: bool = False,
    ) -> None:
        self.maze, self.rng, self.random_after_last = maze, rng, random_after_last
        self.subgoals = [np.asarray(g, dtype=np.float64) for g in subgoals or ()]
        self.k = 0  # current sub-goal
        self.done = False  # every sub-goal reached
        self.waypoints: list[np.ndarray] = []
        self.w = 0  # current waypoint

    def _plan(self, xy: np.ndarray) -> None:
        target = self.subgoals[self.k]
        path = shortest_path(self.maze.maze_map, cell_of(self.maze, xy), cell_of(self.maze, target))
        jitter = [self.rng.uniform(0.0, 1.0, size=2) * WAYPOINT_JITTER for _ in path[1:-1]]
        self.waypoints = [cell_center(self.maze, c) - u for c, u in zip(path[1:-1], jitter, strict=True)]
        self.waypoints.append(target)
        self.w = 0

    def _reached(self, obs: np.ndarray) -> bool:
        last = self.k == len(self.subgoals) - 1
        near = float(np.linalg.norm(obs[:2] - self.subgoals[self.k])) <= SUBGOAL_RADIUS
        if last and self.random_after_last:
            return near
        return near and bool(np.all(np.abs(obs[2:4]) <= SUBGOAL_SPEED))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The float32 action for one observation `[x, y, vx, vy, ...]`."""
        obs = np.asarray(obs, dtype=np.float64)
        if not self.subgoals:
            self.subgoals = [obs[4:6].copy()]
        if not self.waypoints:
            self._plan(obs[:2])
        if not self.done and self._reached(obs):
            if self.k + 1 < len(self.subgoals):
                self.k += 1
                self._plan(obs[:2])
            else:
                self.done = True
        if self.done and self.random_after_last:
            return UniformPolicy(self.rng)(obs)
        xy, vel = obs[:2], obs[2:4]
        if (
            self.w + 1 < len(self.waypoints)
            and np.linalg.norm(self.waypoints[self.w] - xy) <= WAYPOINT_RADIUS
        ):
            self.w += 1
        action = P_GAIN * (self.waypoints[self.w] - xy) - D_GAIN * vel
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def group_controller(env: gym.Env, group: Group, rng: np.random.Generator) -> WaypointController:
    """A data episode's controller: each sub-goal cell's target is its centre plus U(-0.25, 0.25)."""
    maze = cast(PointMazeStitchEnv, env.unwrapped).maze
    targets = [
        cell_center(maze, cell) + rng.uniform(-SUBGOAL_NOISE, SUBGOAL_NOISE, size=2) for cell in group.route
    ]
    return WaypointController(maze, targets, rng, group.random_after_last)


def expert_controller(env: gym.Env, rng: np.random.Generator) -> WaypointController:
    """The shortest (direct) route to the goal it observes: the expert reference."""
    return WaypointController(cast(PointMazeStitchEnv, env.unwrapped).maze, None, rng)


ActFn = Callable[[np.ndarray], np.ndarray]


class UniformPolicy:
    """Uniform-random actions in [-1, 1]^2 from its own generator (the random reference, group 4's end)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=2).astype(np.float32)


def run_episode(env: gym.Env, seed: int, policy: ActFn) -> Episode:
    """One episode from `env.reset(seed=seed)` to the time limit, stepping the env with the stored action."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        # float32 is what the dataset stores; stepping with it makes a replay of the data exact
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, rew, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(rew)
    n = len(rewards)
    term, trunc = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    term[-1], trunc[-1] = terminated, truncated and not terminated
    return Episode(
        obs=np.stack(observations).astype(np.float32),
        act=np.stack(actions),
        rew=np.asarray(rewards, dtype=np.float32),
        term=term,
        trunc=trunc,
    )


def episode_return(ep: Episode) -> float:
    return float(np.sum(ep.rew, dtype=np.float64))


def episode_seed(seed: int, k: int) -> int:
    return seed * EPISODE_SEED_STRIDE + k


def group_of(k: int, episodes: int) -> int:
    """Group index (0-3) of episode k: the groups are consecutive blocks of equal size, in GROUPS order."""
    return k // (episodes // len(GROUPS))


@dataclass(frozen=True)
class Collected:
    episodes: list[Episode]
    groups: list[int]  # per episode, index into GROUPS
    seeds: list[int]  # per episode, the env reset seed


def collect(episodes: int, seed: int, on_episode: Callable[[], None] | None = None) -> Collected:
    """The dataset's episodes: `episodes` (a multiple of 4) in four equal consecutive groups."""
    if episodes <= 0 or episodes % len(GROUPS):
        raise UserError(
            f"the stitching dataset needs a positive multiple of {len(GROUPS)} episodes, got {episodes}"
        )
    env = make_env()
    out: list[Episode] = []
    groups, seeds = [], []
    for k in range(episodes):
        g = group_of(k, episodes)
        rng = np.random.default_rng([seed, k])
        controller = group_controller(env, GROUPS[g], rng)
        out.append(run_episode(env, episode_seed(seed, k), controller.act))
        groups.append(g)
        seeds.append(episode_seed(seed, k))
        if on_episode is not None:
            on_episode()
    env.close()
    return Collected(out, groups, seeds)


@dataclass(frozen=True)
class ReferenceReturns:
    expert: float  # mean return of the controller on the direct route
    expert_std: float
    random: float  # mean return of uniform-random actions
    random_std: float
    episodes: int


def reference_returns(episodes: int) -> ReferenceReturns:
    """Measure the expert (direct-route controller) and uniform-random returns, seeded, on the eval env."""
    env = make_env()
    expert, random = [], []
    for i in range(episodes):
        seed = REFERENCE_SEED + i
        expert_policy = expert_controller(env, np.random.default_rng([REFERENCE_SEED, 0, i])).act
        expert.append(episode_return(run_episode(env, seed, expert_policy)))
        uniform = UniformPolicy(np.random.default_rng([REFERENCE_SEED, 1, i]))
        random.append(episode_return(run_episode(env, seed, uniform)))
    env.close()
    return ReferenceReturns(
        float(np.mean(expert)), float(np.std(expert)), float(np.mean(random)), float(np.std(random)), episodes
    )


def episodes_for_size(size: int | None) -> int:
    """`--size` counts transitions: whole 200-step episodes in four equal groups (rounded down)."""
    if size is None:
        return DEFAULT_EPISODES
    block = len(GROUPS) * POINTMAZE_HORIZON
    if size < block:
        raise UserError(
            f"--size for {POINTMAZE_STITCH} counts transitions and must be at least {block} "
            f"({len(GROUPS)} groups x one {POINTMAZE_HORIZON}-step episode); default {DEFAULT_SIZE:,}"
        )
    return size // block * len(GROUPS)


@dataclass(frozen=True)
class StitchSummary:
    dataset_id: str
    path: Path
    transitions: int
    episodes: int
    mean_return: float
    best_return: float
    group_returns: list[float]  # mean return per group, GROUPS order
    references: ReferenceReturns
    seconds: float


def make_pointmaze_stitch(
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    overwrite: bool = False,
    reference_episodes: int | None = None,
    progress: bool = True,
) -> StitchSummary:
    """Collect and publish `offline-mbrl/pointmaze/stitch-v0` (atomically, through Minari)."""
    dataset_id = made_id(TASK_DATASETS[POINTMAZE_STITCH])
    if dataset_exists(dataset_id) and not overwrite:
        raise UserError(f"dataset '{dataset_id}' already exists; pass --overwrite to replace it")
    start = time.time()
    env = make_env()  # fails early, in one line, without gymnasium-robotics
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    with stage("collect", episodes, f"make {dataset_id}", enabled=progress) as collecting:
        count = iter(range(1, episodes + 1))
        data = collect(episodes, seed, on_episode=lambda: collecting.advance(next(count)))
    refs = reference_returns(REFERENCE_EPISODES if reference_episodes is None else reference_episodes)
    returns = np.array([episode_return(ep) for ep in data.episodes])
    groups = np.array(data.groups)
    per_group = [float(returns[groups == g].mean()) for g in range(len(GROUPS))]
    best = float(returns.max())
    transitions = int(sum(len(ep.rew) for ep in data.episodes))
    extra = {
        "offline_mbrl": {
            "task": POINTMAZE_STITCH,
            "versions": stack_versions(),  # what determined these arrays (the physics stack)
            "size": transitions,
            "seed": seed,
            "episodes": episodes,
            "maze_map": [list(r) for r in MAZE_MAP],
            "start_cell": list(START_CELL),
            "goal_cell": list(GOAL_CELL),
            "horizon": POINTMAZE_HORIZON,
            "observation": "x, y, vx, vy, goal_x, goal_y",
            "groups": [
                {
                    "index": g,
                    "name": grp.name,
                    "route": [list(START_CELL), *(list(c) for c in grp.route)],
                    "random_after_last": grp.random_after_last,
                    "episodes": int((groups == g).sum()),
                    "mean_return": per_group[g],
                    "best_return": float(returns[groups == g].max()),
                }
                for g, grp in enumerate(GROUPS)
            ],
            "episode_groups": data.groups,
            "episode_seeds": data.seeds,
            "best_return": best,
            "dataset_mean_return": float(returns.mean()),
            "reference": {
                "expert": {
                    "policy": "waypoint controller, direct route",
                    "mean_return": refs.expert,
                    "std_return": refs.expert_std,
                },
                "random": {
                    "policy": "uniform random actions",
                    "mean_return": refs.random,
                    "std_return": refs.random_std,
                },
                "episodes": refs.episodes,
                "seed": REFERENCE_SEED,
            },
            "reference_source": (
                "offline-mbrl: the waypoint controller on the direct route (expert) and uniform random "
                f"actions, each over {refs.episodes} seeded episodes"
            ),
        }
    }
    path = publish_dataset(
        dataset_id,
        data.episodes,
        eval_env=POINTMAZE.gym_id,
        observation_space=obs_space,
        action_space=act_space,
        ref_min=refs.random,
        ref_max=refs.expert,
        algorithm_name="scripted waypoint controller (MBRCSL PointMaze groups)",
        description=(
            f"offline-mbrl {POINTMAZE_STITCH}: {episodes} episodes x {POINTMAZE_HORIZON} steps on "
            f"{POINTMAZE.gym_id} (MBRCSL's stitching maze), seed {seed}; best trajectory return {best:.2f}, "
            f"group mean returns {', '.join(f'{r:.2f}' for r in per_group)}; direct-route expert "
            f"{refs.expert:.2f}, random {refs.random:.2f}"
        ),
        code_permalink=f"offline_mbrl.data.make.pointmaze @ {code_version()}",
        overwrite=overwrite,
        extra_metadata=extra,
    )
    return StitchSummary(
        dataset_id,
        path,
        transitions,
        episodes,
        float(returns.mean()),
        best,
        per_group,
        refs,
        time.time() - start,
    )
