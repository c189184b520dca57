"""Correctness on one device, before its speed is believed: the checks the CPU test suite makes, run on
`--device` (CUDA on a lent GPU box; `--device cpu` here). Writes `correctness.json` and exits non-zero
when a check fails.

1. A seed of a batched learner (K = 3) learns what its lone learner learns (MOPO- and RAVL-shaped).
2. The compiled update learns what the eager one learns (lone and K = 3).
3. The chunked gradient-free forward of the dynamics ensemble and the actor equals the plain forward.
4. One seed's data leaves another seed's parameters bit-identical (on CUDA kernels too).
5. A bf16 learner stays near its fp32 twin (MOPO- and RAVL-shaped; bf16 rounding, not divergence).
6. K seeds' stacked ensembles predict what each seed's own ensemble predicts (the seed rollouts).

GPU kernels are not bit-reproducible across batch shapes, so 1 and 2 compare within a tolerance that is
stated in the output: the parameter difference's norm against the parameter's norm after 20 updates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline_mbrl.core.nets import INFER_CHUNK  # noqa: E402
from offline_mbrl.data.dataset import Batch  # noqa: E402
from offline_mbrl.learning.sac import SAC, EDACRegulariser, SACConfig  # noqa: E402
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble  # noqa: E402

OBS, ACT, B, STEPS = 11, 3, 64, 20
CONFIGS = {
    "mopo": (SACConfig(actor_hidden=(64, 64), critic_hidden=(64, 64)), None),
    "ravl": (SACConfig(critics=5, actor_hidden=(64,) * 3, critic_hidden=(64,) * 3, edac_init=True), 1.0),
}


def batches(step: int, k: int, device: torch.device) -> list[Batch]:
    out = []
    for s in range(k):
        g = torch.Generator(device=device).manual_seed(1000 * step + s)
        obs = torch.randn(B, OBS, device=device, generator=g)
        act = torch.rand(B, ACT, device=device, generator=g) * 2 - 1
        rew = torch.randn(B, device=device, generator=g)
        nxt = obs + 0.1 * torch.randn(B, OBS, device=device, generator=g)
        out.append(Batch(obs, act, rew, nxt, (torch.rand(B, device=device, generator=g) < 0.1).float()))
    return out


def stack(parts: list[Batch]) -> Batch:
    return Batch(
        *(torch.stack([getattr(b, f) for b in parts]) for f in ("obs", "act", "rew", "next_obs", "term"))
    )


def lone(cfg: SACConfig, seed: int, device: torch.device, compiled: bool = False, precision="fp32") -> SAC:
    torch.manual_seed(seed)
    return SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, device, None, compiled, precision)


def worst(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest `‖a − b‖ / ‖b‖` over the entries (0: identical)."""
    return max(float((a[k] - b[k]).norm() / (b[k].norm() + 1e-12)) for k in b)


def batched_vs_lone(name: str, device: torch.device, k: int = 3) -> float:
    cfg, eta = CONFIGS[name]
    reg = EDACRegulariser(eta) if eta else None
    lones = [lone(cfg, s, device) for s in range(k)]
    batched = SAC.batch_of([lone(cfg, s, device) for s in range(k)], device)
    g1 = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
    g2 = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
    for step in range(STEPS):
        parts = batches(step, k, device)
        for sac, b, g in zip(lones, parts, g1, strict=True):
            sac.update(b, critic_reg=reg, generator=g)
        batched.update(stack(parts), critic_reg=reg, generator=g2)
    return max(
        worst(batched.seed_checkpoint(s)["modules"], lones[s].checkpoint()["modules"]) for s in range(k)
    )


def compiled_vs_eager(name: str, device: torch.device, k: int | None) -> float:
    cfg, eta = CONFIGS[name]
    reg = EDACRegulariser(eta) if eta else None
    learners = []
    for compiled in (False, True):
        if k is None:
            learners.append(lone(cfg, 0, device, compiled))
        else:
            learners.append(SAC.batch_of([lone(cfg, s, device) for s in range(k)], device, compile=compiled))
    gens = [[torch.Generator(device=device).manual_seed(s) for s in range(k or 1)] for _ in learners]
    for step in range(STEPS):
        parts = batches(step, k or 1, device)
        for sac, g in zip(learners, gens, strict=True):
            sac.update(
                parts[0] if k is None else stack(parts), critic_reg=reg, generator=g[0] if k is None else g
            )
    return worst(learners[1].state_dict(), learners[0].state_dict())


def bf16_vs_fp32(name: str, device: torch.device) -> float:
    cfg, eta = CONFIGS[name]
    reg = EDACRegulariser(eta) if eta else None
    learners = [lone(cfg, 0, device, precision=p) for p in ("fp32", "bf16")]
    gens = [torch.Generator(device=device).manual_seed(0) for _ in learners]
    for step in range(STEPS):
        b = batches(step, 1, device)[0]
        for sac, g in zip(learners, gens, strict=True):
            sac.update(b, critic_reg=reg, generator=g)
    return worst(learners[1].state_dict(), learners[0].state_dict())


def stacked_predictions(device: torch.device) -> float:
    from offline_mbrl.models.seed_dynamics import SeedDynamics

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(DynamicsEnsemble(OBS, ACT, DynamicsConfig(seed=seed)).to(device))
    stacked = SeedDynamics.of(models)
    assert stacked is not None
    obs, act = (
        torch.randn(3, 2 * INFER_CHUNK + 5, OBS, device=device),
        torch.randn(3, 2 * INFER_CHUNK + 5, ACT, device=device),
    )
    with torch.no_grad():
        return max(
            float((p.mean - m.predict(obs[k], act[k]).mean).abs().max())
            for k, (p, m) in enumerate(zip(stacked.predict(obs, act), models, strict=True))
        )


def chunked_forward(device: torch.device) -> float:
    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, DynamicsConfig()).to(device)
    x = torch.randn(3 * INFER_CHUNK + 5, OBS + ACT, device=device)
    plain = model.net(x)  # with gradients: the plain path
    with torch.no_grad():
        chunked = model.net(x)
    return float((chunked - plain.detach()).abs().max())


def independent(device: torch.device) -> bool:
    cfg, eta = CONFIGS["ravl"]
    ends = []
    for other in (False, True):
        batched = SAC.batch_of([lone(cfg, s, device) for s in range(3)], device)
        gens = [torch.Generator(device=device).manual_seed(s) for s in range(3)]
        for step in range(5):
            parts = batches(step + (100 if other else 0), 3, device)
            parts[0], parts[2] = (
                batches(step, 3, device)[0],
                batches(step, 3, device)[2],
            )  # only seed 1 changes
            batched.update(stack(parts), critic_reg=EDACRegulariser(1.0), generator=gens)
        ends.append([batched.seed_checkpoint(s)["modules"] for s in range(3)])
    return all(torch.equal(ends[0][s][n], ends[1][s][n]) for s in (0, 2) for n in ends[0][s])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device (use --device cpu)", file=sys.stderr)
        sys.exit(2)
    tol = 1e-2
    started = time.time()
    checks: dict[str, dict] = {}
    for name in CONFIGS:
        checks[f"batched_vs_lone_{name}"] = {"value": batched_vs_lone(name, device), "max": tol}
        for k in (None, 3):
            key = f"compiled_vs_eager_{name}_K{k or 1}"
            checks[key] = {"value": compiled_vs_eager(name, device, k), "max": tol}
    checks["chunked_forward_max_abs_diff"] = {"value": chunked_forward(device), "max": 1e-4}
    checks["other_seeds_bit_identical"] = {"value": float(independent(device)), "min": 1.0}
    for name in CONFIGS:  # bf16 moves each weight tensor by a few percent of its norm in 20 updates
        checks[f"bf16_vs_fp32_{name}"] = {"value": bf16_vs_fp32(name, device), "max": 0.1}
    checks["stacked_seed_dynamics_max_abs_diff"] = {"value": stacked_predictions(device), "max": 1e-3}
    failed = [
        k
        for k, c in checks.items()
        if c["value"] > c.get("max", float("inf")) or c["value"] < c.get("min", -1)
    ]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "seconds": time.time() - started,
        "checks": checks,
        "failed": failed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "correctness.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, c in checks.items():
        print(f"{'FAIL' if key in failed else 'ok  '} {key}: {c['value']:.3g}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
