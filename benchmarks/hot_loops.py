"""The hot loops of the suite, timed in one process, for side-by-side runs against an older checkout.

    PYTHONPATH=/path/to/checkout python benchmarks/hot_loops.py --only ravl_update --repeats 30

Prints one JSON object: seconds per call (median of `--rounds` rounds) of each measure. It uses only the
API that the suite has had since round 1 (`SAC.update`, `rollout`, `training_loss`), so the same file times
today's code and an older commit checked out in a `git worktree`; `benchmarks/side_by_side.py` runs it
under both, interleaved, and writes the ratio table. Synthetic Hopper-sized data (obs 11, act 3), paper
network sizes, batch 256, one torch thread unless `--threads`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time

import torch

OBS, ACT = 11, 3


def fake_batch(n: int, seed: int = 0):
    from offline_mbrl.data.dataset import Batch

    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    obs[:, 0] = 1.25  # a healthy hopper height, so rollouts from these states are not cut at once
    return Batch(
        obs,
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        obs + 0.1 * torch.randn(n, OBS, generator=g),
        torch.zeros(n),
    )


def sac_update_fn(critics: int, hidden: tuple[int, ...], edac: float, compile_update: bool | None):
    """One SAC update at paper sizes as a no-argument callable (the EDAC API changed in round 2)."""
    import offline_mbrl.learning.sac as sac_mod

    cfg = sac_mod.SACConfig(critics=critics, actor_hidden=hidden, critic_hidden=hidden, edac_init=edac > 0)
    kwargs = {}
    if compile_update is not None:
        kwargs["compile"] = compile_update
    sac = sac_mod.SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, **kwargs)
    batch = fake_batch(256)
    g = torch.Generator().manual_seed(1)
    if edac == 0:
        return lambda: sac.update(batch, generator=g)
    if hasattr(sac_mod, "EDACRegulariser"):
        reg = sac_mod.EDACRegulariser(edac)
        return lambda: sac.update(batch, critic_reg=reg, generator=g)
    return lambda: sac.update(batch, critic_reg=sac_mod.edac_diversity, reg_coef=edac, generator=g)


def rollout_fn(batch: int, horizon: int = 5):
    from offline_mbrl.learning.rollout import rollout
    from offline_mbrl.learning.sac import SAC, SACConfig
    from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble
    from offline_mbrl.models.termination import termination_fn

    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, DynamicsConfig())
    sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, SACConfig())
    start = fake_batch(batch).obs
    params = inspect.signature(termination_fn).parameters
    term = termination_fn("hopper", "Hopper-v5") if len(params) > 1 else termination_fn("hopper")
    g = torch.Generator().manual_seed(0)
    return lambda: rollout(model, lambda o: sac.act(o, generator=g), start, horizon, term, generator=g)


def dynamics_step_fn():
    from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble, training_loss

    cfg = DynamicsConfig()
    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    inputs = torch.randn(cfg.members, cfg.batch_size, OBS + ACT)
    targets = torch.randn(cfg.members, cfg.batch_size, OBS + 1)

    def step():
        loss = training_loss(model, inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def e2e_fn(algo: str, steps: int = 1000, rollout_batch: int = 50_000):
    """`steps` gradient steps of the model-based loop with one rollout round (h 5) at their start: what
    1000 steps of MOPO or RAVL at paper sizes cost, evaluation aside (synthetic Hopper-sized data)."""
    import offline_mbrl.learning.sac as sac_mod
    from offline_mbrl.learning.rollout import ModelBuffer, mix

    ravl = algo == "ravl"
    hidden = (256, 256, 256) if ravl else (256, 256)
    cfg = sac_mod.SACConfig(
        critics=10 if ravl else 2, actor_hidden=hidden, critic_hidden=hidden, edac_init=ravl
    )
    torch.manual_seed(0)
    sac = sac_mod.SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg)
    make_rollout = rollout_fn(rollout_batch)
    real = fake_batch(100_000)
    buffer = ModelBuffer(rollout_batch * 5, OBS, ACT, "cpu")
    g = torch.Generator().manual_seed(0)
    if ravl and hasattr(sac_mod, "EDACRegulariser"):
        kwargs = {"critic_reg": sac_mod.EDACRegulariser(1.0)}
    elif ravl:
        kwargs = {"critic_reg": sac_mod.edac_diversity, "reg_coef": 1.0}
    else:
        kwargs = {}

    def run():
        buffer.add(make_rollout().transitions()[0])
        for _ in range(steps):
            b = mix(real.index(torch.randint(len(real), (13,), generator=g)), buffer.sample(243, g))
            sac.update(b, generator=g, **kwargs)

    return run


def matmul_fn(n: int = 512):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: torch.mm(a, b)


MEASURES = {
    # name: (factory, work per call, unit)
    "mopo_update": (lambda c: sac_update_fn(2, (256, 256), 0.0, c), 1, "updates/s"),
    "ravl_update": (lambda c: sac_update_fn(10, (256, 256, 256), 1.0, c), 1, "updates/s"),
    "rollout_50k_h5": (lambda c: rollout_fn(50_000), 5 * 50_000, "transitions/s"),
    "dynamics_step": (lambda c: dynamics_step_fn(), 7 * 256, "samples/s"),
    "matmul_512": (lambda c: matmul_fn(512), 2 * 512**3 / 1e9, "GFLOP/s"),
    "mopo_e2e_1000": (lambda c: e2e_fn("mopo"), 1000, "steps/s"),
    "ravl_e2e_1000": (lambda c: e2e_fn("ravl"), 1000, "steps/s"),
}


def measure(name: str, repeats: int, rounds: int, compile_update: bool | None) -> dict:
    factory, work, unit = MEASURES[name]
    fn = factory(compile_update)
    for _ in range(1 if "e2e" in name else 3):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats)
    sec = statistics.median(times)
    return {"seconds": sec, "rate": work / sec, "unit": unit, "rounds": [work / t for t in times]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=sorted(MEASURES), help="measure only these")
    p.add_argument("--repeats", type=int, default=20, help="calls per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median round is reported")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", choices=("default", "on", "off"), default="default")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    compile_update = {"default": None, "on": True, "off": False}[args.compile]
    out = {}
    for name in args.only or list(MEASURES):
        reps = (
            1 if "e2e" in name else max(1, args.repeats // 10) if name.startswith("rollout") else args.repeats
        )
        out[name] = measure(name, reps, args.rounds, compile_update)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
