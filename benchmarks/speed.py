"""The speed table of one device: SAC learners at K = 1, 5, 10 seeds, eager and compiled; rollouts;
dynamics training; end-to-end MOPO and RAVL; each rate also as a share of the device's fp32 matmul bound.

    python benchmarks/speed.py --device cpu --out benchmarks/results/speed_cpu
    python benchmarks/speed.py --device cuda --out "$OUT/speed"          # benchmarks/gpu_check.sh

Writes `speed.json` (every figure, with the device, torch version, threads and load) and `speed.md` (the
table). Learner sizes: MOPO-sized (2 critics, 2x256 actor and critics) and RAVL-sized (10 critics, 3x256,
EDAC η 1), batch 256 per seed, Hopper's obs 11 / act 3, synthetic data. K seeds are one batched learner
(`SAC(seeds=K)`); the aggregate rate counts every seed's updates. FLOPs per update are counted pass by
pass (every matrix product the update dispatches, forward, backward and EDAC's double backward), so
`% bound` = updates/s x FLOPs / the device's measured fp32 matmul rate. End to end: 1000 gradient steps
with one rollout round (h 5, 50,000 starts) before them: the paper's cadence, evaluation aside.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline_mbrl.core.precision import configure_matmul  # noqa: E402
from offline_mbrl.data.dataset import Batch  # noqa: E402
from offline_mbrl.learning.rollout import ModelBuffer, mix, model_rows, rollout  # noqa: E402
from offline_mbrl.learning.sac import SAC, EDACRegulariser, SACConfig  # noqa: E402
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble, training_loss  # noqa: E402
from offline_mbrl.models.termination import termination_fn  # noqa: E402

OBS, ACT, BATCH = 11, 3, 256
LEARNERS = {
    "mopo": (SACConfig(critics=2, actor_hidden=(256, 256), critic_hidden=(256, 256)), 0.0),
    "ravl": (SACConfig(critics=10, actor_hidden=(256,) * 3, critic_hidden=(256,) * 3, edac_init=True), 1.0),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, seconds: float, min_calls: int = 3) -> float:
    """Seconds per call: calls repeated for about `seconds` after two warm-up calls; median of 3 rounds."""
    fn()
    fn()
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    one = max(time.perf_counter() - start, 1e-6)
    calls = max(min_calls, int(seconds / 3 / one))
    rounds = []
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


class MatmulFlops(TorchDispatchMode):
    """Counts the FLOPs of every matrix product dispatched (2·m·n·k each), backward passes included."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm"):
            a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
            self.flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        elif name in ("bmm", "baddbmm"):
            a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
            self.flops += 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        return out


def matmul_rate(device: torch.device, seconds: float) -> dict:
    """The device's fp32 matrix-product rate (TF32 off): the best of a few square sizes, GFLOP/s."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        sizes = (2048, 4096, 8192)
    else:
        sizes = (256, 512, 1024)
    best = {}
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        best[n] = 2 * n**3 / timed(lambda a=a, b=b: torch.mm(a, b), device, seconds / len(sizes)) / 1e9
    return {"fp32_matmul_gflops": max(best.values()), "fp32_matmul_gflops_by_size": best}


def fake_batch(n: int, device: torch.device, seed: int = 0) -> Batch:
    g = torch.Generator(device=device).manual_seed(seed)
    obs = torch.randn(n, OBS, device=device, generator=g)
    obs[:, 0] = 1.25  # a healthy hopper height: rollouts from these states are not cut at once
    return Batch(
        obs,
        torch.rand(n, ACT, device=device, generator=g) * 2 - 1,
        torch.randn(n, device=device, generator=g),
        obs + 0.1 * torch.randn(n, OBS, device=device, generator=g),
        torch.zeros(n, device=device),
    )


def learner(
    name: str, k: int, device: torch.device, compiled: bool, precision: str = "fp32"
) -> tuple[Callable[[], object], SAC]:
    """One update of a K-seed learner (K = 1: a lone learner) as a no-argument callable."""
    cfg, eta = LEARNERS[name]
    if k == 1:
        sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, device, None, compiled, precision)  # type: ignore[arg-type]
        batch = fake_batch(BATCH, device)
        gens: torch.Generator | list[torch.Generator] = torch.Generator(device=device).manual_seed(0)
    else:
        lone = [SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, cfg, device, precision=precision) for _ in range(k)]  # type: ignore[arg-type]
        sac = SAC.batch_of(lone, device, compile=compiled)
        parts = [fake_batch(BATCH, device, seed) for seed in range(k)]
        batch = Batch(
            *(torch.stack([getattr(b, f) for b in parts]) for f in ("obs", "act", "rew", "next_obs", "term"))
        )
        gens = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
    reg = EDACRegulariser(eta) if eta else None
    return (lambda: sac.update(batch, critic_reg=reg, generator=gens)), sac


def measures(precisions: list[str], modes: list[bool]) -> list[tuple[str, bool]]:
    """(precision, compiled) pairs: every precision eager, the first one also compiled."""
    return [(p, c) for p in precisions for c in modes if not c or p == precisions[0]]


def bench_learners(device, ks, compiled_ks, modes, seconds, flops, bound, precisions) -> list[dict]:
    rows = []
    for name in LEARNERS:
        for precision, compiled in measures(precisions, modes):
            for k in [k for k in ks if not compiled or k in compiled_ks]:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                configure_matmul(precision, device)
                start = time.perf_counter()
                fn, _ = learner(name, k, device, compiled, precision)
                fn()  # the first call compiles
                sync(device)
                first = time.perf_counter() - start
                sec = timed(fn, device, seconds)
                rate = k / sec
                row = {
                    "learner": name,
                    "precision": precision,
                    "seeds": k,
                    "compiled": compiled,
                    "updates_per_s": rate,
                    "per_seed_updates_per_s": 1 / sec,
                    "first_call_s": first,
                    "gflop_per_update": flops[name] / 1e9,
                    "pct_of_matmul_bound": 100 * rate * flops[name] / 1e9 / bound,
                }
                if device.type == "cuda":
                    row["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def count_flops(device: torch.device) -> dict[str, int]:
    out = {}
    for name in LEARNERS:
        fn, _ = learner(name, 1, device, False)
        fn()
        with MatmulFlops() as counter:
            fn()
        out[name] = counter.flops
    return out


def bench_rollout(device: torch.device, seconds: float, precision: str = "fp32") -> dict:
    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, DynamicsConfig(precision=precision)).to(device)  # type: ignore[arg-type]
    sac = SAC(OBS, ACT, [-1.0] * ACT, [1.0] * ACT, SACConfig(), device=device, precision=precision)  # type: ignore[arg-type]
    start = fake_batch(50_000, device).obs
    term = termination_fn("hopper", "Hopper-v5")
    g = torch.Generator(device=device).manual_seed(0)
    sampler = sac.actor.sampler(g)
    sec = timed(lambda: rollout(model, sampler, start, 5, term, generator=g), device, seconds, 1)
    return {"rollout_transitions_per_s": 5 * 50_000 / sec}


def bench_dynamics(device: torch.device, seconds: float, precision: str = "fp32") -> dict:
    cfg = DynamicsConfig(precision=precision)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    inputs = torch.randn(cfg.members, cfg.batch_size, OBS + ACT, device=device)
    targets = torch.randn(cfg.members, cfg.batch_size, OBS + 1, device=device)

    def step():
        loss = training_loss(model, inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"dynamics_train_samples_per_s": cfg.members * cfg.batch_size / timed(step, device, seconds)}


def bench_end_to_end(
    device: torch.device, name: str, compiled: bool, steps: int, precision: str = "fp32"
) -> dict:
    """`steps` gradient steps after one rollout round of 50,000 h-5 rollouts (the paper's cadence)."""
    fn, sac = learner(name, 1, device, compiled, precision)
    fn()  # compile outside the timing
    torch.manual_seed(0)
    model = DynamicsEnsemble(OBS, ACT, DynamicsConfig(precision=precision)).to(device)  # type: ignore[arg-type]
    real = fake_batch(100_000, device)
    buffer = ModelBuffer(50_000 * 5 * 5, OBS, ACT, device)
    term = termination_fn("hopper", "Hopper-v5")
    g = torch.Generator(device=device).manual_seed(0)
    from_model = model_rows(13, 243, device)
    reg = EDACRegulariser(1.0) if name == "ravl" else None
    sync(device)
    start = time.perf_counter()
    idx = torch.randint(len(real), (50_000,), device=device, generator=g)
    buffer.add(rollout(model, sac.actor.sampler(g), real.obs[idx], 5, term, generator=g).transitions()[0])
    sync(device)
    t_roll = time.perf_counter() - start
    for _ in range(steps):
        real_rows = real.index(torch.randint(len(real), (13,), device=device, generator=g))
        sac.update(mix(real_rows, buffer.sample(243, g), from_model), critic_reg=reg, generator=g)
    sync(device)
    total = time.perf_counter() - start
    return {
        "algo": name,
        "precision": precision,
        "compiled": compiled,
        "steps_per_s": steps / total,
        "rollout_share": t_roll / total,
        "projected_3M_steps_h": 3e6 / (steps / total) / 3600,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def markdown(res: dict) -> str:
    flops = res["flops"]
    memory = bool(res["learners"]) and "peak_memory_mib" in res["learners"][0]
    head = ["learner", "precision", "seeds K", "compiled", "updates/s (all seeds)", "per seed", "x one seed"]
    head += ["% of matmul bound", "first call s"] + (["peak MiB"] if memory else [])
    lines = [
        f"# Speed on {res['device']}",
        "",
        f"torch {res['torch']}, {res['threads']} torch thread(s), load average {res['load_before']:.2f} "
        f"before and {res['load_after']:.2f} after, {res['seconds']:.0f} s. fp32 matmul bound: "
        f"{res['fp32_matmul_gflops']:.0f} GFLOP/s. FLOPs per update: MOPO-sized "
        f"{flops['mopo'] / 1e9:.3f} GFLOP, RAVL-sized {flops['ravl'] / 1e9:.3f} GFLOP.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]

    def tag(r: dict) -> tuple:
        return r["learner"], r["compiled"], r.get("precision", "fp32")

    one = {tag(r): r["updates_per_s"] for r in res["learners"] if r["seeds"] == 1}
    for r in res["learners"]:
        base = one.get(tag(r))
        cells = [
            r["learner"],
            r.get("precision", "fp32"),
            str(r["seeds"]),
            "yes" if r["compiled"] else "no",
            f"{r['updates_per_s']:,.1f}",
            f"{r['per_seed_updates_per_s']:,.1f}",
            f"{r['updates_per_s'] / base:.2f}x" if base else "",
            f"{r['pct_of_matmul_bound']:.0f}%",
            f"{r['first_call_s']:.1f}",
        ] + ([f"{r['peak_memory_mib']:.0f}"] if memory else [])
        lines.append("| " + " | ".join(cells) + " |")
    rows = []
    for precision in res.get("precisions", ["fp32"]):
        roll = res.get(f"rollout_{precision}", res["rollout_transitions_per_s"])
        dyn = res.get(f"dynamics_{precision}", res["dynamics_train_samples_per_s"])
        rows += [
            (f"rollout transitions/s (50,000 starts, h 5, 7 x 4x200 ensemble), {precision}", f"{roll:,.0f}"),
            (f"dynamics training samples/s (7 x 256 per step), {precision}", f"{dyn:,.0f}"),
        ]
    for e in res["end_to_end"]:
        kind = "compiled" if e["compiled"] else "eager"
        rows.append(
            (
                f"{e['algo']} end to end ({e.get('precision', 'fp32')}, {kind}): steps/s, rollout share, "
                "3M steps",
                f"{e['steps_per_s']:,.1f}, {100 * e['rollout_share']:.0f}%, "
                f"{e['projected_3M_steps_h']:.1f} h",
            )
        )
    rows.append(("peak process memory (max RSS)", f"{res['max_rss_mib']:,.0f} MiB"))
    lines += ["", "| measure | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"


def positive_ints(text: str) -> list[int]:
    """`1,5,10` -> [1, 5, 10]; argparse turns the ValueError into one usage line (exit 2)."""
    values = [int(v) for v in text.split(",")]
    if min(values) < 1:
        raise ValueError(text)
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True, help="folder for speed.json and speed.md")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--seeds", type=positive_ints, default=[1, 5, 10], help="K values, comma-separated")
    p.add_argument("--compile", choices=("both", "on", "off"), default="both")
    p.add_argument(
        "--compiled-seeds", type=positive_ints, default=[1, 5, 10], help="the K values also timed compiled"
    )
    p.add_argument("--seconds", type=float, default=6.0, help="timing budget per measure")
    p.add_argument("--e2e-steps", type=int, default=1000)
    p.add_argument(
        "--precisions",
        default=None,
        help="comma-separated, the first also compiled (default: cuda fp32,fp32-strict,bf16; cpu fp32)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device (use --device cpu)", file=sys.stderr)
        sys.exit(2)
    ks = args.seeds
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    started, load_before = time.time(), os.getloadavg()[0]
    res: dict = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    res.update(matmul_rate(device, args.seconds))
    print(f"fp32 matmul: {res['fp32_matmul_gflops']:.0f} GFLOP/s", flush=True)
    res["flops"] = count_flops(device)
    compiled_ks = args.compiled_seeds
    bound = res["fp32_matmul_gflops"]
    default = "fp32,fp32-strict,bf16" if device.type == "cuda" else "fp32"
    precisions = (args.precisions or default).split(",")
    res["precisions"] = precisions
    res["learners"] = bench_learners(
        device, ks, compiled_ks, modes, args.seconds, res["flops"], bound, precisions
    )
    for precision in precisions:
        configure_matmul(precision, device)
        res[f"rollout_{precision}"] = bench_rollout(device, args.seconds, precision)[
            "rollout_transitions_per_s"
        ]
        res[f"dynamics_{precision}"] = bench_dynamics(device, args.seconds, precision)[
            "dynamics_train_samples_per_s"
        ]
    res["rollout_transitions_per_s"] = res[f"rollout_{precisions[0]}"]
    res["dynamics_train_samples_per_s"] = res[f"dynamics_{precisions[0]}"]
    res["end_to_end"] = []
    for name in LEARNERS:
        for precision, c in measures(precisions, modes):
            configure_matmul(precision, device)
            res["end_to_end"].append(bench_end_to_end(device, name, c, args.e2e_steps, precision))
    res["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results(args.out / "speed", res, load_before, started, markdown)


def write_results(stem: Path, res: dict, load_before: float, started: float, table: Callable[[dict], str]):
    """Add the load and the time taken to `res`; write STEM.json and STEM.md (`table(res)`); print it."""
    res.update(load_before=load_before, load_after=os.getloadavg()[0], seconds=time.time() - started)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(res))
    print(table(res))


if __name__ == "__main__":
    main()
