"""The claims: verdict logic on hand-made statistics, each claim's tests on hand-made tables where the
verdict is known, the edge-of-reach task's exact dynamics and value, MBPO's true-edge-value control, and
`offline-mbrl claims` end to end at a tiny budget."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from offline_mbrl.data.make import point2d
from offline_mbrl.experiments.claims import edge_of_reach, families, mbrcsl, morec, penalties
from offline_mbrl.experiments.claims.verdict import Test as ClaimTest
from offline_mbrl.experiments.claims.verdict import combine, judge, mean_ci, poi_ci
from offline_mbrl.report.stats import Interval

from .test_cli import assert_one_line_error, run_cli

# ---- verdicts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "direction", "expected"),
    [
        (11, 30, "above", "holds"),
        (2, 9, "above", "does not hold"),
        (2, 10, "above", "does not hold"),  # at the threshold is not above it
        (8, 12, "above", "inconclusive"),
        (1, 9, "below", "holds"),
        (10, 30, "below", "does not hold"),
        (8, 12, "below", "inconclusive"),
        (10, 12, "at_least", "holds"),  # touching the threshold is "at least"
        (3, 9.9, "at_least", "does not hold"),
        (9, 12, "at_least", "inconclusive"),
    ],
)
def test_judge_against_threshold(low, high, direction, expected):
    assert judge(Interval((low + high) / 2, low, high), 10.0, direction) == expected


def test_judge_without_an_interval_or_with_nan_is_inconclusive():
    assert judge(Interval(50.0), 10.0, "above") == "inconclusive"  # one seed: no interval
    assert judge(Interval(math.nan, math.nan, math.nan), 10.0, "above") == "inconclusive"


def test_combine_parts():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["holds", "inconclusive", "does not hold"]) == "does not hold"
    assert combine([]) == "inconclusive"


def test_probability_of_improvement_intervals():
    better, worse = np.array([10.0, 11.0, 12.0]), np.array([1.0, 2.0, 3.0])
    p = poi_ci(better, worse, reps=200)
    assert p.point == 1.0 and p.low == 1.0 and p.high == 1.0  # separated: every resample agrees
    assert judge(p, 0.5, "above") == "holds"
    q = poi_ci(worse, better, reps=200)
    assert q.point == 0.0 and judge(q, 0.5, "above") == "does not hold"
    tie = poi_ci(better, better.copy(), reps=200)
    assert tie.point == 0.5 and judge(tie, 0.5, "at_least") != "does not hold"
    mixed = poi_ci(np.array([1.0, 5.0, 9.0]), np.array([2.0, 6.0, 8.0]), reps=500)
    assert (
        mixed.low <= 0.5 <= mixed.high
        and mixed.low < mixed.high
        and judge(mixed, 0.5, "above") == "inconclusive"
    )


def test_mean_interval_and_refusals():
    iv = mean_ci([20.0, 25.0, 30.0], reps=500)
    assert iv.point == pytest.approx(25.0) and 20.0 <= iv.low <= iv.high <= 30.0
    assert judge(iv, 10.0, "above") == "holds"
    assert math.isnan(mean_ci([1.0, math.nan, 2.0]).point)  # a NaN statistic: inconclusive, never judged
    assert mean_ci([3.0]).low is None


def test_test_line_names_statistic_interval_and_threshold():
    t = ClaimTest("MBPO's Q diverges", "Q ratio", Interval(2.5, 2.2, 2.8), 10.0, "above")
    line = t.line()
    assert t.verdict == "does not hold"
    assert "does not hold" in line and "2.5 [2.2, 2.8]" in line and "> 10" in line


# ---- the edge-of-reach claim's tests on hand-made tables ---------------------------------------------


def _edge_table(mbpo_ratio: float, mbpo_score: float) -> pd.DataFrame:
    rows = []
    per_arm = {
        "bc": (40.0, math.nan),
        "mbpo": (mbpo_score, mbpo_ratio),
        "ravl": (60.0, 1.0),
        "full": (70.0, 0.9),
        "true-edge": (65.0, 0.8),
    }
    for arm, (score, ratio) in per_arm.items():
        for seed in range(3):
            rows.append(
                {
                    "arm": arm,
                    "method": arm,
                    "seed": seed,
                    "score": score + seed,
                    "q_ratio": ratio * (1 + 0.01 * seed),
                }
            )
    return pd.DataFrame(rows)


def test_edge_of_reach_holds_when_mbpo_diverges_and_everything_else_is_fine():
    tests = edge_of_reach._tests(_edge_table(mbpo_ratio=40.0, mbpo_score=1.0), reps=300)
    assert [t.verdict for t in tests] == ["holds"] * 8
    assert combine([t.verdict for t in tests]) == "holds"


def test_edge_of_reach_does_not_hold_when_mbpo_q_stays_under_tenfold():
    tests = edge_of_reach._tests(_edge_table(mbpo_ratio=2.3, mbpo_score=1.0), reps=300)
    by_name = {t.name: t.verdict for t in tests}
    assert by_name["MBPO's Q diverges"] == "does not hold"
    assert by_name["MBPO scores below BC"] == "holds"
    assert combine(list(by_name.values())) == "does not hold"


# ---- the penalty study's statistic on hand-made transitions -------------------------------------------


def test_spearman_interval_known_cases():
    rng = np.random.default_rng(0)
    x = rng.random(300)
    groups = np.repeat([0, 1, 2], 100)
    same = penalties.spearman_ci(x, 2 * x + 1, groups, reps=200)
    assert same.point == pytest.approx(1.0) and same.low == pytest.approx(1.0)
    assert judge(same, 0.0, "above") == "holds"
    anti = penalties.spearman_ci(x, -x, groups, reps=200)
    assert judge(anti, 0.0, "above") == "does not hold"
    noise = penalties.spearman_ci(x, rng.random(300), groups, reps=300)
    assert noise.low < 0.0 < noise.high and judge(noise, 0.0, "above") == "inconclusive"


def test_correlation_table_ranks_penalties_per_step():
    from offline_mbrl.learning.penalties import PENALTIES

    rng = np.random.default_rng(1)
    frames = {}
    for seed in range(2):
        n = 200
        err = rng.random(2 * n)
        df = pd.DataFrame({"h": np.repeat([0, 4], n), "true_error": err})
        for i, name in enumerate(PENALTIES):  # the first penalty tracks the error best, the last worst
            df[name] = err + i * 0.3 * rng.random(2 * n)
        frames[("toy", seed)] = df
    table = penalties.correlation_table(frames, reps=100)
    assert set(table["step"]) == {1, 5} and len(table) == 2 * len(PENALTIES)
    first = table[(table["step"] == 1)].set_index("penalty")
    names = list(PENALTIES)
    assert first.loc[names[0], "rank"] == 1 and first.loc[names[-1], "rank"] == len(names)
    assert (table["low"] > 0).all()  # every penalty here tracks the error: each test holds
    assert all(t.verdict == "holds" for t in penalties._tests(table))


# ---- MOREC, families and MBRCSL: their tests on hand-made tables -------------------------------------


def _scores_table(scores: dict[str, list[float]], **extra: list[float]) -> pd.DataFrame:
    rows = [
        {"arm": arm, "method": arm, "seed": s, "score": v, **{k: vals[s] for k, vals in extra.items()}}
        for arm, values in scores.items()
        for s, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_morec_tests_known_verdicts():
    table = _scores_table({"mopo": [50, 52, 54], "mopo-long": [10, 12, 11], "morec-mopo": [60, 61, 59]})
    auc = pd.DataFrame(
        {"arm": "r_D", "method": "r", "seed": [0, 1, 2], "score": np.nan, "auc": [0.95, 0.97, 0.96]}
    )
    tests = morec._tests(pd.concat([auc, table.assign(auc=np.nan)], ignore_index=True), reps=300)
    assert [t.verdict for t in tests] == ["holds", "holds", "holds"]
    low_auc = auc.assign(auc=[0.66, 0.70, 0.68])
    tests = morec._tests(pd.concat([low_auc, table.assign(auc=np.nan)], ignore_index=True), reps=300)
    assert tests[0].verdict == "does not hold" and combine([t.verdict for t in tests]) == "does not hold"


def test_families_tests_known_verdicts():
    rows = []
    for arm, nominal, member in (("a", 90.0, 20.0), ("b", 60.0, 40.0), ("c", 30.0, 28.0 + 30.0)):
        for seed in range(3):
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "nominal": nominal + seed,
                    **{f"member_{i}": member - i for i in range(8)},
                }
            )
    table = pd.DataFrame(rows)
    table.loc[table["arm"] == "c", "nominal"] = 70.0  # nominal order a > c > b; over the family c > b > a
    loss, rank = families.tests_of(table, reps=300)
    assert rank.interval.point < 1.0 and rank.verdict == "holds"
    same = table.copy()
    for i in range(8):
        same[f"member_{i}"] = same["nominal"] - 5.0  # every member 5 below the nominal: same ranking
    loss, rank = families.tests_of(same, reps=300)
    assert loss.verdict == "holds" and loss.interval.point == pytest.approx(5.0)
    assert rank.interval.point == pytest.approx(1.0) and rank.verdict == "does not hold"


def test_mbrcsl_tests_known_verdicts():
    table = _scores_table(
        {"mbrcsl": [60, 62, 61], "percent-bc": [30, 35, 33], "mopo": [20, 25, 22], "combo": [45, 44, 13]},
        **{"return": [80.0, 82.0, 81.0]},
    )
    table["data_best_return"] = 47.8
    tests, rival = mbrcsl.tests_of(table, reps=300)
    assert rival == "COMBO" and [t.verdict for t in tests] == ["holds", "holds", "holds"]
    table.loc[table["arm"] == "mbrcsl", "return"] = [40.0, 45.0, 42.0]  # below the data's best episode
    tests, _ = mbrcsl.tests_of(table, reps=300)
    assert tests[0].verdict == "does not hold"


# ---- the edge-of-reach task -----------------------------------------------------------------------------


def test_point2d_dynamics_walls_and_lava():
    obs = np.array([[0.95, 0.0], [0.45, 0.2], [-0.5, -0.99]])
    act = np.array([[1.0, 0.0], [1.0, 0.0], [5.0, -1.0]])  # the last action is clipped to 1
    nxt, rew = point2d.step(obs, act)
    np.testing.assert_allclose(nxt, [[1.0, 0.0], [0.55, 0.2], [-0.4, -1.0]])
    np.testing.assert_allclose(rew, [-1.0, -1.0, -0.4])  # x > 0.5 is lava


def test_point2d_optimal_value_matches_the_optimal_policys_discounted_return():
    gamma = 0.99
    for x0 in (-0.93, 0.0, 0.47, 0.8):
        obs, total, disc = np.array([[x0, 0.3]]), 0.0, 1.0
        for _ in range(3000):
            act = np.array([[np.clip((point2d.LAVA_X - obs[0, 0]) / point2d.STEP, -1, 1), 0.0]])
            obs, rew = point2d.step(obs, act)
            total += disc * float(rew[0])
            disc *= gamma
        assert point2d.optimal_value(np.array([[x0, 0.3]]), gamma)[0] == pytest.approx(total, abs=1e-6)
    assert point2d.max_return(gamma) == pytest.approx(50.0)


def test_point2d_environment_and_dataset(isolated_roots):
    env = gym.make("offline_mbrl/Point2D-v0")
    obs, _ = env.reset(seed=3)
    assert -1.0 <= obs[0] <= -0.8 and -0.5 <= obs[1] <= 0.5
    steps = 0
    while True:
        obs, rew, term, trunc, _ = env.step(np.array([1.0, 0.0], np.float32))
        steps += 1
        assert not term
        if trunc:
            break
    assert steps == 50 and rew == -1.0  # full speed right ends in the lava
    summary = point2d.make_point2d_partial(episodes=20, seed=0)
    from offline_mbrl.data.dataset import load_dataset

    ds = load_dataset("point2d-partial")
    x = ds.data.obs[:, 0].numpy()
    assert summary.transitions == 1000 and len(ds) == 1000
    assert x.max() < 0.0  # the data covers only the left part: neither it nor 5 steps from it reach the lava
    assert float(ds.data.term.sum()) == 0.0


# ---- MBPO's true-edge-value control ------------------------------------------------------------------


def test_true_edge_values_hook_replaces_only_the_last_steps_target():
    from offline_mbrl.algorithms.mbpo import TrueEdgeValues
    from offline_mbrl.learning.rollout import Step

    hook = TrueEdgeValues(point2d.optimal_value, 0.99, horizon=5)
    nxt = torch.tensor([[0.2, 0.0], [0.6, 0.1]])
    step = Step(
        h=4,
        obs=torch.zeros(2, 2),
        act=torch.zeros(2, 2),
        pred=None,  # type: ignore[arg-type]  # the hook reads next_obs, rew and term only
        next_obs=nxt,
        rew=torch.tensor([0.2, -1.0]),
        term=torch.zeros(2, dtype=torch.bool),
        member=torch.zeros(2, dtype=torch.long),
    )
    out = hook(step)
    expected = torch.tensor([0.2, -1.0]) + 0.99 * torch.as_tensor(
        point2d.optimal_value(nxt.double().numpy(), 0.99), dtype=torch.float32
    )
    torch.testing.assert_close(out.rew, expected)
    assert out.term.all()
    earlier = hook(dataclasses.replace(step, h=3))
    assert earlier is not None and torch.equal(earlier.rew, step.rew) and not earlier.term.any()


def test_true_edge_values_needs_the_true_dynamics_of_a_task_with_a_value(
    isolated_roots, tiny_pendulum, capsys, monkeypatch
):
    monkeypatch.chdir(isolated_roots)
    base = ["train", "--algo", "mbpo", "--dataset", tiny_pendulum, "--set", "steps=20"]
    code, _, err = run_cli(capsys, *base, "--set", "algo.edge_values=true")
    assert_one_line_error(code, err, "needs the true dynamics")
    code, _, err = run_cli(capsys, *base, "--set", "algo.edge_values=true", "--set", "dynamics.kind=oracle")
    assert_one_line_error(code, err, "needs the true value function of Pendulum-v1")
    assert not list(isolated_roots.rglob("config.json"))  # refused before any run folder
    code, _, err = run_cli(capsys, *base, "--set", "algo.edge_values=maybe")
    assert_one_line_error(code, err, "'maybe' is not one of bootstrap, true")


# ---- the command ---------------------------------------------------------------------------------------


def test_claims_command_refuses_bad_input_in_one_line(isolated_roots, monkeypatch, capsys):
    monkeypatch.chdir(isolated_roots)
    for args, words in (
        (["claims", "nope"], "unknown claim 'nope'"),
        (["claims", "--budget", "gpu"], "unknown budget 'gpu'"),
        (["claims", "--seeds", "0"], "--seeds"),
        (["claims", "--reps", "3"], "--reps"),
        (["claims", "--seeds", "nan"], "--seeds"),
        (
            ["claims", "--device", "cuda"]
            if not torch.cuda.is_available()
            else ["claims", "--device", "tpu"],
            "--device",
        ),
    ):
        code, _, err = run_cli(capsys, *args)
        assert_one_line_error(code, err, words)
    mine = isolated_roots / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "claims", "penalties", "--out", str(mine))
    assert_one_line_error(code, err, "no .offline-mbrl-claims marker")
    assert (mine / "notes.txt").read_text() == "keep me" and not (isolated_roots / "results").exists()
    assert not (isolated_roots / "reports").exists() and not (isolated_roots / "minari").exists()
    code, out, _ = run_cli(capsys, "claims", "--list")
    assert code == 0 and "edge-of-reach" in out and "penalties" in out and "Sims et al." in out


TINY_EDGE = (
    (
        "steps=40",
        "eval_every=20",
        "checkpoint_every=20",
        "log_every=10",
        "eval_episodes=1",
        "final_eval_episodes=2",
    ),
    {
        "sac": (
            "algo.rollout_batch=20",
            "algo.rollout_every=20",
            "algo.sac.actor_hidden=16,16",
            "algo.sac.critic_hidden=16,16",
        ),
        "ravl": ("algo.sac.critics=2",),
    },
)


def test_claims_end_to_end_at_a_tiny_budget(isolated_roots, monkeypatch, capsys):
    """Both claims at a tiny budget through the real pipeline (datasets made, runs trained, the ensemble
    fitted, the simulator replayed): verdict lines, claims.csv, per-claim tables and figures; a second
    invocation reuses every run."""
    monkeypatch.chdir(isolated_roots)
    monkeypatch.setitem(edge_of_reach._BUDGETS, "cpu", TINY_EDGE)
    monkeypatch.setitem(
        penalties._BUDGETS,
        "cpu",
        {
            "datasets": ("pendulum-medium-replay",),
            "overrides": ("dynamics.max_epochs=1", "dynamics.steps_per_epoch=5"),
            "starts": 60,
            "bc_steps": 50,
        },
    )
    code, out, err = run_cli(capsys, "claims", "edge-of-reach", "penalties", "--seeds", "2", "--reps", "50")
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith(("edge-of-reach:", "penalties:"))]
    assert len(lines) == 2
    for line in lines:
        assert any(v in line for v in ("holds", "does not hold", "inconclusive")) and "[" in line
    folder = isolated_roots / "reports" / "claims-cpu"
    verdicts = pd.read_csv(folder / "claims.csv")
    assert set(verdicts["claim"]) == {"edge-of-reach", "penalties"}
    assert len(verdicts[verdicts["claim"] == "edge-of-reach"]) == 8
    assert set(verdicts["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    edge = pd.read_csv(folder / "edge-of-reach.csv")
    assert sorted(edge["arm"].unique()) == sorted(a.key for a in edge_of_reach.ARMS)
    assert len(edge) == 2 * len(edge_of_reach.ARMS) and edge["q_ratio"].notna().sum() == 2 * 4
    pen = pd.read_csv(folder / "penalties.csv")
    assert set(pen["step"]) == {1, 5} and pen["rank"].min() == 1
    for figure in ("figures/edge-of-reach.png", "figures/penalties.png"):
        assert (folder / figure).stat().st_size > 10_000
    text = (folder / "report.md").read_text()
    assert "## edge-of-reach:" in text and "## penalties:" in text and "Sims et al." in text
    code, out, err = run_cli(capsys, "claims", "edge-of-reach", "penalties", "--seeds", "2", "--reps", "50")
    assert code == 0 and "0 to run" in out, err
    assert json.loads(json.dumps(verdicts.to_dict("records")))  # plain values: pandas loads it back


def test_morec_families_and_mbrcsl_claims_at_a_tiny_budget(isolated_roots, monkeypatch, capsys):
    """MOREC (diagnose with the dynamics reward, three arms), families (the MOREC cells reused plus BC,
    every policy on each member of a family) and MBRCSL (on a small pointmaze-stitch) through the real
    pipeline: verdict lines, per-test rows, tables and figures."""
    from offline_mbrl.algorithms import get_spec
    from offline_mbrl.data.make.collect import make_dataset

    monkeypatch.chdir(isolated_roots)
    tiny_sac = ("algo.sac.actor_hidden=16,16", "algo.sac.critic_hidden=16,16", "algo.rollout_every=20")
    common = TINY_EDGE[0]
    dynamics = ("dynamics.max_epochs=1", "dynamics.steps_per_epoch=5")
    monkeypatch.setitem(
        morec._BUDGETS,
        "cpu",
        {
            "dataset": "pendulum-medium-replay",
            "common": common,
            "dynamics": dynamics,
            "arms": {
                "mopo": ("mopo", (*tiny_sac, "algo.rollout_batch=20", "algo.horizon=2")),
                "mopo-long": ("mopo", (*tiny_sac, "algo.rollout_batch=20", "algo.horizon=6")),
                "morec-mopo": (
                    "morec-mopo",
                    (
                        *tiny_sac,
                        *get_spec("morec-mopo").test_settings,
                        "algo.rollout_batch=20",
                        "algo.horizon=6",
                    ),
                ),
            },
            "reward": {  # morec-mopo's test settings' reward, so the fit is shared
                "updates": 40,
                "snapshot_every": 2,
                "stored_every": 2,
                "max_snapshots": 10,
                "hidden": (16,),
                "head_hidden": (16,),
                "state_embed": 8,
                "delta_embed": 4,
                "holdout": 50,
                "batch_size": 32,
                "refresh_every": 20,
                "replay_steps": 2,
            },
            "stride": 4,
            "starts": 40,
            "bc_steps": 30,
        },
    )
    monkeypatch.setitem(families.FAMILIES, "cpu", "pendulum-physics")
    make_dataset("pointmaze-stitch", size=2_000)
    monkeypatch.setitem(
        mbrcsl._BUDGETS,
        "cpu",
        {
            "common": (*common, *dynamics, "dynamics_seed=0"),
            "arms": {
                "mbrcsl": (*get_spec("mbrcsl").test_settings, "algo.behaviour.kind=gaussian"),
                "percent-bc": (),
                "mopo": (*tiny_sac, "algo.rollout_batch=20"),
                "combo": (*tiny_sac, *get_spec("combo").test_settings, "algo.rollout_batch=20"),
            },
            "small": False,
        },
    )
    code, out, err = run_cli(capsys, "claims", "morec", "families", "mbrcsl", "--seeds", "2", "--reps", "50")
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.startswith(("morec:", "families:", "mbrcsl:"))]
    assert len(lines) == 3, out
    folder = isolated_roots / "reports" / "claims-cpu"
    verdicts = pd.read_csv(folder / "claims.csv")
    assert verdicts.groupby("claim").size().to_dict() == {"families": 2, "mbrcsl": 3, "morec": 3}
    fam = pd.read_csv(folder / "families.csv")
    assert len(fam) == 4 * 2 and [f"member_{i}" for i in range(8)] == [
        c for c in fam.columns if c.startswith("member_")
    ]
    aucs = pd.read_csv(folder / "morec.csv").dropna(subset=["auc"])["auc"]
    assert len(aucs) == 2 and ((aucs >= 0) & (aucs <= 1)).all()
    mb = pd.read_csv(folder / "mbrcsl.csv")
    assert (
        set(mb["arm"]) == {"mbrcsl", "percent-bc", "mopo", "combo"} and mb["data_best_return"].nunique() == 1
    )
    for name in ("morec", "families", "mbrcsl"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 10_000
