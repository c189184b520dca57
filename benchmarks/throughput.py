"""Throughput of the suite's hot loops at paper network sizes, on whatever device you point it at.

    python benchmarks/throughput.py --device cpu     # -> benchmarks/results/throughput_cpu.{json,md}
    python benchmarks/throughput.py --device cuda    # -> benchmarks/results/throughput_cuda.{json,md}

Measures: dynamics training (samples/s through the 7-member 4x200 ensemble, batch 256 per member),
model rollouts (transitions/s, 7 members, SAC policy, horizon 5), SAC updates/s with 2 and 10 critics
(256x256 and RAVL's 3x256), and end-to-end MOPO and RAVL gradient steps/s including rollouts and
evaluation, with the share of wall time spent in rollouts and in evaluation. Synthetic Hopper-sized
data (obs 11, act 3); the end-to-end runs use the real Hopper-v5 for evaluation.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from offline_mbrl.data import Batch
from offline_mbrl.dynamics import DynamicsConfig, DynamicsEnsemble, training_loss
from offline_mbrl.rollout import ModelBuffer, mix, rollout
from offline_mbrl.sac import SAC, EDACRegulariser, SACConfig
from offline_mbrl.termination import termination_fn

OBS, ACT = 11, 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int, warmup: int = 3) -> float:
    """Seconds per call, after warm-up, with the device synchronised around the measured calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def fake_batch(n: int, device) -> Batch:
    g = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(n, OBS, device=device, generator=g)
    return Batch(
        obs,
        torch.rand(n, ACT, device=device, generator=g) * 2 - 1,
        torch.randn(n, device=device, generator=g),
        obs + 0.1 * torch.randn(n, OBS, device=device, generator=g),
        torch.zeros(n, device=device),
    )


def bench_dynamics(device, repeats) -> dict:
    cfg = DynamicsConfig()
    model = DynamicsEnsemble(OBS, ACT, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    inputs = torch.randn(cfg.members, cfg.batch_size, OBS + ACT, device=device)
    targets = torch.randn(cfg.members, cfg.batch_size, OBS + 1, device=device)

    def step():
        loss = training_loss(model, inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = timed(step, device, repeats)
    return {"dynamics_train_samples_per_s": cfg.members * cfg.batch_size / sec, "dynamics_step_ms": 1e3 * sec}


def _model(device) -> DynamicsEnsemble:
    model = DynamicsEnsemble(OBS, ACT, DynamicsConfig()).to(device)
    model.elites = torch.arange(5, device=device)
    return model


def bench_rollout(device, batch: int, repeats: int) -> dict:
    model = _model(device)
    sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, SACConfig(), device=device)
    start = torch.randn(batch, OBS, device=device)
    start[:, 0] = 1.25  # a healthy hopper height, so rollouts are not cut at once
    term = termination_fn("hopper", "Hopper-v5")
    g = torch.Generator(device=device).manual_seed(0)
    sec = timed(
        lambda: rollout(model, lambda o: sac.act(o, generator=g), start, 5, term, generator=g),
        device,
        repeats,
        1,
    )
    return {f"rollout_transitions_per_s_batch{batch}": 5 * batch / sec}


def bench_sac(device, critics: int, hidden: tuple[int, ...], repeats: int, eta: float) -> dict:
    cfg = SACConfig(critics=critics, actor_hidden=hidden, critic_hidden=hidden)
    sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, device=device)
    batch = fake_batch(256, device)
    reg = EDACRegulariser(eta) if eta > 0 else None
    sec = timed(lambda: sac.update(batch, critic_reg=reg), device, repeats)
    label = f"sac_updates_per_s_N{critics}" + ("_edac" if eta > 0 else "")
    return {label: 1.0 / sec}


def bench_end_to_end(device, algo: str, steps: int, rollout_batch: int) -> dict:
    """The model-based loop of `algorithms/mbpo.py` timed piece by piece on synthetic data."""
    from offline_mbrl.data import EnvSpec
    from offline_mbrl.evaluation import evaluate
    from offline_mbrl.policies import ActorPolicy

    ravl = algo == "ravl"
    cfg = (
        SACConfig(critics=10, actor_hidden=(256,) * 3, critic_hidden=(256,) * 3, edac_init=True)
        if ravl
        else SACConfig(actor_lr=1e-4)
    )
    sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, device=device)
    model = _model(device)
    real = fake_batch(100_000, device)
    real.obs[:, 0] = 1.25
    buffer = ModelBuffer(rollout_batch * 5 * 5, OBS, ACT, device)
    term = termination_fn("hopper", "Hopper-v5")
    g = torch.Generator(device=device).manual_seed(0)
    spec = EnvSpec("Hopper-v5", "hopper", OBS, ACT, (-1.0,) * 3, (1.0,) * 3, 1000, -20.272305, 3234.3, "D4RL")
    t_roll = t_eval = 0.0
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        if step % 1000 == 0:
            sync(device)
            t0 = time.perf_counter()
            idx = torch.randint(len(real), (rollout_batch,), device=device, generator=g)
            ro = rollout(model, lambda o: sac.act(o, generator=g), real.obs[idx], 5, term, generator=g)
            buffer.add(ro.transitions()[0])
            sync(device)
            t_roll += time.perf_counter() - t0
        b = mix(
            real.index(torch.randint(len(real), (13,), device=device, generator=g)), buffer.sample(243, g)
        )
        sac.update(b, critic_reg=EDACRegulariser(1.0) if ravl else None, generator=g)
    sync(device)
    t0 = time.perf_counter()
    evaluate(ActorPolicy(lambda o: sac.act(o, deterministic=True), device), spec, 10, seed=0)
    t_eval = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {
        f"{algo}_end_to_end_steps_per_s": steps / total,
        f"{algo}_share_rollout": t_roll / total,
        f"{algo}_share_eval": t_eval / total,
        f"{algo}_note": f"{steps} steps, {rollout_batch} x h5 rollouts per 1000 steps, one 10-episode eval",
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and steps (a smoke run)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = 5 if args.quick else 30
    e2e_steps = 1000 if args.quick else 3000
    rollout_batch = 50_000 if device.type == "cuda" else 5_000
    results: dict = {"device": device_name(device), "torch": torch.__version__}
    results.update(bench_dynamics(device, reps))
    for batch in (5_000, 50_000):
        results.update(bench_rollout(device, batch, max(2, reps // 10)))
    results.update(bench_sac(device, 2, (256, 256), reps, 0.0))
    results.update(bench_sac(device, 10, (256, 256, 256), reps, 0.0))
    results.update(bench_sac(device, 10, (256, 256, 256), reps, 1.0))
    results.update(bench_end_to_end(device, "mopo", e2e_steps, rollout_batch))
    results.update(bench_end_to_end(device, "ravl", e2e_steps, rollout_batch))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    tag = "cuda" if device.type == "cuda" else "cpu"
    (out / f"throughput_{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Throughput on {results['device']} (torch {results['torch']})",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    for k, v in results.items():
        if k in ("device", "torch"):
            continue
        lines.append(f"| {k} | {v:,.3g} |" if isinstance(v, float) else f"| {k} | {v} |")
    (out / f"throughput_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
