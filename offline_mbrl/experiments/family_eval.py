"""Evaluate a trained policy on every member of an MDP family; store the returns beside the run.

`evaluate_family(run_dir, family)` reloads the run's policy (`launch.load_run`), evaluates it on each of the
family's K fixed members with the run's final-evaluation settings (deterministic actions; the same
environment seeds, `eval_seed(seed)`, on every member, so members differ only by their physics), and writes
`family_<name>.json` atomically beside `final.json`:

    family, env_id, family_seed, members, member_params   the family as evaluated (its K parameter dicts)
    episodes, eval_seed, weights (1/K each)
    returns, lengths, normalized_scores                   per member, per episode ((K, episodes) lists)
    member_returns, member_scores                         per-member means (scores None without references)
    family_weighted_return, family_weighted_score         sum_k w_k * member mean (Jayawardana et al., 2022)
    nominal_return, nominal_score, score_note             the run's own final evaluation, for comparison

An existing file for the same members and episode count is reused; a family file whose members have
changed since (an edited .toml) is evaluated again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import numpy as np

from offline_mbrl.core.cache import write_json_atomic
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.progress import stage
from offline_mbrl.core.ranges import check_option
from offline_mbrl.core.run_files import read_final, read_object
from offline_mbrl.data.make.families import load_family
from offline_mbrl.launch import load_run
from offline_mbrl.learning.evaluation import evaluate
from offline_mbrl.learning.run import eval_seed


def family_file(run_dir: Path, family: str) -> Path:
    return Path(run_dir) / f"family_{family}.json"


def evaluate_family(
    run_dir: Path,
    family: str,
    episodes: int | None = None,
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Per-member returns of the run's policy on every member of `family` (a name or a .toml path)."""
    run_dir = Path(run_dir)
    fam = load_family(family)
    members = fam.member_params()
    out = family_file(run_dir, fam.name)
    final_path = run_dir / "final.json"
    if not final_path.is_file():
        raise UserError(f"{run_dir} is not a finished run (no final.json)")
    final = read_final(run_dir)
    if out.exists() and not force:
        previous = read_object(out, ("member_params", "episodes"))
        if previous.get("member_params") == members and (
            episodes is None or previous["episodes"] == episodes
        ):
            return previous
    policy, cfg, dataset = load_run(run_dir, device)
    spec = dataset.spec
    if fam.env_id != spec.gym_id:
        raise UserError(
            f"family '{fam.name}' is for {fam.env_id}, but {run_dir} was trained on {cfg.dataset} "
            f"({spec.gym_id}); choose a family of {spec.gym_id}"
        )
    episodes = episodes or cfg.final_eval_episodes
    check_option("--episodes", episodes, 1, 10_000)
    seed = eval_seed(cfg.seed)
    start = time.time()
    results = []
    with stage("family members", len(members), f"{fam.name} on {run_dir.name}", enabled=progress) as ev:
        for i, params in enumerate(members):
            results.append(evaluate(policy, spec, episodes, seed=seed, member_params=params))
            ev.advance(i + 1)
    weights = np.full(len(members), 1.0 / len(members))
    member_returns = np.array([r.returns.mean() for r in results])
    has_scores = results[0].normalized is not None
    # every member is evaluated on the same spec: all have normalised scores when the first has
    normalized = [cast(np.ndarray, r.normalized) for r in results] if has_scores else None
    member_scores = np.array([s.mean() for s in normalized]) if normalized is not None else None
    record = {
        "family": fam.name,
        "env_id": fam.env_id,
        "family_seed": fam.seed,
        "members": len(members),
        "member_params": members,
        "episodes": episodes,
        "eval_seed": seed,
        "weights": weights.tolist(),
        "returns": [r.returns.tolist() for r in results],
        "lengths": [r.lengths.tolist() for r in results],
        "normalized_scores": [s.tolist() for s in normalized] if normalized is not None else None,
        "member_returns": member_returns.tolist(),
        "member_scores": None if member_scores is None else member_scores.tolist(),
        "family_weighted_return": float(weights @ member_returns),
        "family_weighted_score": None if member_scores is None else float(weights @ member_scores),
        "nominal_return": final["return_mean"],
        "nominal_score": final["normalized_score"],
        "score_note": spec.ref_source,
        "algorithm": cfg.algorithm,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "wall_time": round(time.time() - start, 2),
    }
    write_json_atomic(out, record)
    return record
