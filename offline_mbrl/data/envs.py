"""The environments the suite knows: gymnasium ids, D4RL short names, reference returns.

An environment is looked up by the exact gymnasium id (`Hopper-v5`) or by its exact short name
(`hopper`), never by a substring of a dataset name (D4RL's `'ant' in name` matched `antmaze`).

Besides the D4RL-style environments (every one has the five tiers), a task environment has one dataset
made by its own recipe: `pointmaze` (MBRCSL's stitching maze, offline_mbrl/data/make/pointmaze.py) and
`point2d` (the edge-of-reach task, offline_mbrl/data/make/point2d.py). Their
gymnasium ids are registered here, on import, so that every process that loads a dataset can `gym.make` it;
the entry point is a string, so Gymnasium-Robotics is imported only when the environment is made.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import gymnasium as gym

TIERS = ("random", "medium", "medium-replay", "medium-expert", "expert")


@dataclass(frozen=True)
class Environment:
    name: str  # short name used in dataset names: "hopper"
    gym_id: str  # evaluation environment: "Hopper-v5"
    small: bool  # part of the small CPU tier (tests, demos)
    d4rl_ids: tuple[str, ...] = ()  # other gymnasium ids of the same task (D4RL used v2/v3 mujoco-py ids)


ENVIRONMENTS: dict[str, Environment] = {
    f.name: f
    for f in (
        Environment("hopper", "Hopper-v5", small=False, d4rl_ids=("Hopper-v2", "Hopper-v3", "Hopper-v4")),
        Environment(
            "halfcheetah",
            "HalfCheetah-v5",
            small=False,
            d4rl_ids=("HalfCheetah-v2", "HalfCheetah-v3", "HalfCheetah-v4"),
        ),
        Environment(
            "walker2d", "Walker2d-v5", small=False, d4rl_ids=("Walker2d-v2", "Walker2d-v3", "Walker2d-v4")
        ),
        Environment("pendulum", "Pendulum-v1", small=True),
        Environment("inverted-double-pendulum", "InvertedDoublePendulum-v5", small=True),
    )
}


POINTMAZE_HORIZON = 200
POINTMAZE = Environment("pointmaze", "offline_mbrl/PointMazeStitch-v0", small=True)
# environments without D4RL tiers: each has its own made dataset (names.TASK_DATASETS)
POINT2D_HORIZON = 50
POINT2D = Environment("point2d", "offline_mbrl/Point2D-v0", small=True)  # the edge-of-reach task
TASK_ENVIRONMENTS: dict[str, Environment] = {POINTMAZE.name: POINTMAZE, POINT2D.name: POINT2D}

if POINTMAZE.gym_id not in gym.registry:
    gym.register(
        POINTMAZE.gym_id,
        entry_point="offline_mbrl.data.make.pointmaze:PointMazeStitchEnv",
        max_episode_steps=POINTMAZE_HORIZON,
    )
if POINT2D.gym_id not in gym.registry:
    gym.register(
        POINT2D.gym_id,
        entry_point="offline_mbrl.data.make.point2d:Point2DEnv",
        max_episode_steps=POINT2D_HORIZON,
    )


def environment_of_gym_id(gym_id: str) -> Environment | None:
    """The environment whose evaluation id or one of whose D4RL ids is exactly `gym_id`."""
    for environment in (*ENVIRONMENTS.values(), *TASK_ENVIRONMENTS.values()):
        if gym_id == environment.gym_id or gym_id in environment.d4rl_ids:
            return environment
    return None


@dataclass(frozen=True)
class ReferenceScores:
    ref_min: float
    ref_max: float
    source: str


@cache
def d4rl_reference_scores() -> dict[str, ReferenceScores]:
    """D4RL's random and expert reference returns per environment (resources/d4rl_ref_scores.csv)."""
    text = resources.files("offline_mbrl").joinpath("resources/d4rl_ref_scores.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {
        r["env"]: ReferenceScores(float(r["ref_min_score"]), float(r["ref_max_score"]), r["source"])
        for r in rows
    }
