"""Behaviour cloning: regress the dataset's actions on its observations. The floor any report needs.

A deterministic MLP with a tanh output mapped onto the action box, trained with MSE, Adam lr 3e-4, batch
256 (CORL's `any_percent_bc.py`; `SOURCES` names the lines); no dynamics model. Before the round-3 audit
the lr was 1e-3, a value no cited reference uses.

%BC (Chen et al., NeurIPS 2021, "Decision Transformer", section 5.3: "10%BC"): `algo.top_fraction` < 1
clones only the episodes whose returns are in that top fraction of the dataset's (at least one episode;
ties at the cut-off are all kept). Registered a second time as `percent-bc` (top 10%) so that `compare`
can put BC and %BC side by side; `bc --set algo.top_fraction=0.1` is the same run.

Deviation from MBRCSL's %BC baseline (`examples/pointmaze/run_bc_maze.py`, the Decision Transformer
repository's MLP BC model): that model reads the last 20 observations (zero-padded), 3 x 128 with dropout
0.1, AdamW lr 1e-4 with weight decay 1e-4 and a 10,000-step warm-up, observation statistics of the whole
dataset. Here %BC is Markov (one observation), without dropout, weight decay or warm-up, with statistics of
the cloned episodes. `--preset paper` on pointmaze-stitch sets its size, lr and 100,000 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from offline_mbrl.algorithm_spec import AlgorithmSpec, LearningCheck, small_steps
from offline_mbrl.config import TrainConfig
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import mlp
from offline_mbrl.core.progress import stage
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.policies import ActorPolicy
from offline_mbrl.learning.run import Parts, Run
from offline_mbrl.provenance import CORL, MBRCSL, Sourced


@dataclass(frozen=True)
class BCConfig:
    hidden: tuple[int, ...] = (256, 256)  # the policy MLP's hidden layer sizes
    lr: float = 3e-4  # Adam learning rate (CORL's BC)
    batch_size: int = 256  # dataset rows per gradient step
    top_fraction: float = 1.0  # clone only the episodes with the top returns (%BC); 1.0: all of them

    def __post_init__(self) -> None:
        if not (0.0 < self.top_fraction <= 1.0):
            raise UserError(f"algo.top_fraction must lie in (0, 1], got {self.top_fraction}")


def top_rows(dataset: OfflineDataset, fraction: float) -> torch.Tensor | None:
    """Row indices of the episodes whose return is among the top `fraction` (None: every row)."""
    if fraction >= 1.0:
        return None
    returns = dataset.episode_returns
    n = max(1, math.ceil(fraction * len(returns)))
    cut = np.sort(returns)[::-1][n - 1]
    episodes = np.flatnonzero(returns >= cut)
    rows = np.concatenate(
        [
            np.arange(s, s + n)
            for s, n in zip(dataset.episode_starts[episodes], dataset.episode_lengths[episodes], strict=True)
        ]
    )
    return torch.as_tensor(rows, device=dataset.data.obs.device)


class BCPolicy(torch.nn.Module):
    """Observation normaliser + MLP + tanh mapped onto the action box."""

    obs_mean: torch.Tensor  # buffers, registered in __init__
    obs_std: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, spec, cfg: BCConfig, obs_mean: torch.Tensor, obs_std: torch.Tensor):
        super().__init__()
        self.net = mlp(spec.obs_dim, cfg.hidden, spec.act_dim)
        self.register_buffer("obs_mean", obs_mean.clone())
        self.register_buffer("obs_std", obs_std.clone())
        self.register_buffer("low", torch.tensor(spec.act_low))
        self.register_buffer("high", torch.tensor(spec.act_high))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        unit = torch.tanh(self.net((obs - self.obs_mean) / self.obs_std))
        return self.low + (unit + 1.0) * 0.5 * (self.high - self.low)


def load_policy(cfg: TrainConfig[BCConfig], spec, state: dict, device) -> ActorPolicy:
    model = BCPolicy(spec, cfg.algo, state["obs_mean"], state["obs_std"]).to(device)
    model.load_state_dict(state)
    return ActorPolicy(model, device)


class Cloning:
    """The policy being cloned, its Adam optimiser and the rows it clones (the top episodes with %BC);
    `step(generator)` is one gradient step of MSE on a batch. `bc.train` runs it in the run loop; `fit`
    (used by `diagnose`) on its own. The caller seeds torch's RNG before building it (the policy's init)."""

    def __init__(self, dataset: OfflineDataset, cfg: BCConfig, device: torch.device | str):
        self.dataset, self.cfg, self.device = dataset, cfg, device
        self.rows = top_rows(dataset, cfg.top_fraction)
        self.data = dataset.data if self.rows is None else dataset.data.index(self.rows)
        obs_mean, obs_std = self.data.obs.mean(0), self.data.obs.std(0) + 1e-3
        self.model = BCPolicy(dataset.spec, cfg, obs_mean, obs_std).to(device)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def step(self, generator: torch.Generator) -> torch.Tensor:
        """One Adam step of MSE on a batch of the cloned rows; returns the (detached) loss."""
        if self.rows is None:
            batch = self.dataset.sample(self.cfg.batch_size, generator)
        else:
            size = (self.cfg.batch_size,)
            pick = torch.randint(0, len(self.rows), size, generator=generator, device=self.device)
            batch = self.data.index(pick)
        loss = (self.model(batch.obs) - batch.act).square().mean()
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return loss.detach()


def train(cfg: TrainConfig[BCConfig], dataset: OfflineDataset, dynamics, run: Run):
    torch.manual_seed(cfg.seed)
    cloning = Cloning(dataset, cfg.algo, run.device)
    policy = ActorPolicy(cloning.model, run.device)
    for _ in run.loop({"bc": Parts(model=cloning.model, optim=cloning.optim)}, lambda: policy):
        run.log({"bc/loss": cloning.step(run.generator)})
    return policy, cloning.model.state_dict()


def fit(
    dataset: OfflineDataset, steps: int, seed: int, cfg: BCConfig | None = None, progress: bool = True
) -> tuple[BCPolicy, float]:
    """A BC policy fitted for `steps` gradient steps outside any run (no checkpoints, no evaluation), on
    the dataset's device, seeded by `seed`; returns it (in eval mode) and the mean loss of the last 100
    steps. The global RNG is untouched."""
    cloning_cfg = cfg or BCConfig()
    device = dataset.data.obs.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cloning = Cloning(dataset, cloning_cfg, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    window: list[torch.Tensor] = []
    last = math.nan
    with stage("bc", steps, "BC policy", enabled=progress) as fitting:
        for step in range(steps):
            window.append(cloning.step(generator))
            if len(window) == 100 or step == steps - 1:
                last = torch.stack(window).mean().item()  # one host sync per 100 steps
                window.clear()
                fitting.advance(step + 1, f"MSE {last:.4g}")
    cloning.model.eval()
    return cloning.model, last


_CORL = "algorithms/offline/any_percent_bc.py"
SOURCES = {
    "algo.hidden": CORL.at(_CORL, 233, 234, 235, 236, 237, 238),
    "algo.lr": CORL.at(_CORL, 343, fixed=True, note="1e-3 before the round-3 audit"),
    "algo.batch_size": CORL.at(_CORL, 31),
    "steps": CORL.at(_CORL, 28, reference=1_000_000, note="3M here, as every algorithm's default"),
}

# the small budget's length: about 3 minutes of training on one core (benchmarks/results/small_tier.md)
SMALL_STEPS = 20_000

SPEC = AlgorithmSpec(
    name="bc",
    config_type=BCConfig,
    train=train,
    load_policy=load_policy,
    paper="behaviour cloning",
    uses_dynamics=False,
    sources=SOURCES,
    test_settings=("algo.hidden=32,32",),
    budgets={"smoke": (), "small": small_steps(SMALL_STEPS)},
    # BC imitates the data, so it must only do no worse than the data's mean (25.4 at 20k steps vs 12.7)
    learning_check=LearningCheck(steps=6000, margin=0.0),
)


@dataclass(frozen=True)
class PercentBCConfig(BCConfig):
    top_fraction: float = 0.1  # clone only the episodes with the top returns (%BC); 1.0: all of them


_BC_MAZE = "examples/pointmaze/run_bc_maze.py"
_TOP_SOURCES = {
    **SOURCES,
    "algo.top_fraction": MBRCSL.at(_BC_MAZE, 35),
    "algo.batch_size": MBRCSL.at(_BC_MAZE, 40),
}
# MBRCSL's %BC on PointMaze: its network size, lr and 100 epochs of 1,000 steps (what a Markov MLP takes)
_TOP_PRESETS = {
    "pointmaze-stitch": {
        "algo.hidden": Sourced((128, 128, 128), MBRCSL.at(_BC_MAZE, 36, 37)),
        "algo.lr": Sourced(1e-4, MBRCSL.at(_BC_MAZE, 43)),
        "steps": Sourced(100_000, MBRCSL.at(_BC_MAZE, 42, 46)),
    }
}

# %BC: the same algorithm with the top 10% of episodes (a separate name, for `compare`)
SPEC_TOP = replace(
    SPEC,
    name="percent-bc",
    config_type=PercentBCConfig,
    sources=_TOP_SOURCES,
    presets=_TOP_PRESETS,
    paper="%BC: behaviour cloning on the top 10% of episodes (Chen et al., NeurIPS 2021)",
    learning_check=None,
)
