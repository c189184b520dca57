"""Plans say what work costs before it starts: an estimate from the rates measured on this kind of device
(resources/rates.toml) for paper-sized networks, why there is none otherwise, and past a day a warning
that names the smaller budgets and a GPU (launch.plan_estimate; sweep, compare and reproduce print it)."""

from __future__ import annotations

from offline_mbrl.launch import build_config, measured_rates, paper_sized, plan_estimate


def test_the_design_cards_sweep_plans_days_on_a_cpu_and_says_what_fits_better():
    rates, source = measured_rates("cpu")
    assert rates["ravl"] == 9.4 and "2-core AMD EPYC" in source
    ravl = build_config("ravl", "hopper-medium", 0, None, "cpu", [], None)
    assert ravl.steps == 3_000_000 and paper_sized(ravl)
    lines = plan_estimate([ravl], runs_each=20)  # `sweep --algo ravl --dataset hopper-medium`: 20 trials
    assert lines[0].startswith("estimate: about 73.9 days of training (ravl 3.7 days per run")
    assert lines[1].startswith("warning: that is more than a day on this cpu: a smaller budget")
    assert "--device cuda" in lines[1]


def test_a_short_plan_has_no_warning_and_unmeasured_settings_say_so():
    mopo = build_config("mopo", "hopper-medium", 0, 2000, "cpu", [], None)
    assert plan_estimate([mopo, mopo]) == [
        "estimate: about 74 s of training (mopo 37 s per run, at the rates measured on a 2-core AMD EPYC "
        "(docs/speed.md, 2026-12-05); dynamics fits and evaluations come on top)"
    ]
    small = build_config("ravl", "hopper-medium", 0, 2000, "cpu", ["algo.sac.critics=5"], None)
    assert not paper_sized(small)
    (line,) = plan_estimate([small, mopo])
    assert line.startswith("estimate: no measured rate for ravl at these settings on cpu")
    bc = build_config("bc", "hopper-medium", 0, 2000, "cpu", [], None)
    assert "no measured rate for bc" in plan_estimate([bc])[0]
    assert plan_estimate([]) == []


def test_a_reduced_budget_plans_with_its_cells_measured_seconds_unless_its_steps_are_changed():
    from offline_mbrl.experiments.cells import BUDGETS, as_measured, cell_config

    per_cell, _ = measured_rates("cpu", "smoke")
    assert per_cell["morec-mobile"] == 55.6 and max(per_cell.values()) <= 60.0  # the budget's promise
    smoke = BUDGETS["smoke"]
    cells = [cell_config(a, "hopper-medium", 0, smoke, [], "cpu", None) for a in ("mopo", "ravl")]
    assert as_measured(smoke, cells) == "smoke"
    (line,) = plan_estimate(cells, runs_each=2, budget="smoke")
    assert line.startswith(
        "estimate: about 1.6 min in all (mopo 22 s per run, ravl 27 s per run; smoke: seconds per run, "
        "dynamics fit included, measured on a 2-core AMD EPYC (benchmarks/results/smoke_cells.md"
    )
    longer = [cell_config("mopo", "hopper-medium", 0, smoke, [], "cpu", 5000)]
    assert as_measured(smoke, longer) is None and as_measured(BUDGETS["paper"], cells) is None
    small = [cell_config(a, "hopper-medium", 0, BUDGETS["small"], [], "cpu", None) for a in ("mopo", "ravl")]
    assert as_measured(BUDGETS["small"], small) == "small"
    assert plan_estimate(small, budget="small")[0].startswith(
        "estimate: about 8.6 min in all (mopo 3.8 min per run, ravl 4.8 min per run; small:"
    )


def test_a_sweep_space_with_measured_runs_plans_with_them_at_the_steps_they_ran():
    from offline_mbrl.sweep.space import find_space, load_space

    space = load_space(find_space("ravl-quick", "ravl"))
    fixed = [f"{k}={v}" for k, v in space.fixed.items()]
    quick = build_config("ravl", "hopper-medium", 0, 2000, "cpu", fixed, None)
    (line,) = plan_estimate([quick], runs_each=6, budget="space-ravl-quick")
    assert line.startswith("estimate: about 4.0 min in all (ravl 40 s per run; space-ravl-quick: seconds")
    longer = build_config("ravl", "hopper-medium", 0, 4000, "cpu", fixed, None)
    assert plan_estimate([longer], budget="space-ravl-quick")[0].startswith("estimate: no measured rate")


def test_the_small_budget_gives_every_algorithm_its_own_length_with_ten_evaluations_and_a_capped_fit():
    from offline_mbrl.algorithms import algorithms, get_spec
    from offline_mbrl.experiments.cells import BUDGETS, cell_config

    lengths = {}
    for algo in algorithms():
        if algo == "mbrcsl":  # its output policy trains to patience on its own task: no SAC steps to set
            continue
        cfg = cell_config(algo, "hopper-medium", 0, BUDGETS["small"], [], "cpu", None)
        lengths[algo] = cfg.steps
        assert cfg.eval_every * 10 == cfg.steps == cfg.checkpoint_every * 10, algo
        assert (cfg.eval_episodes, cfg.final_eval_episodes) == (5, 10)
        if get_spec(algo).uses_dynamics:
            assert (cfg.dynamics.max_epochs, cfg.dynamics.steps_per_epoch) == (10, 400), algo
        if hasattr(cfg.algo, "sac"):  # every SAC learner at 2x128
            assert cfg.algo.sac.actor_hidden == cfg.algo.sac.critic_hidden == (128, 128), algo
    # the costlier the update, the fewer the steps that fit its few minutes
    assert (
        lengths["ravl"] < lengths["mopo"]
        and lengths["morec-mobile"] < lengths["morec-mopo"] <= lengths["mopo"]
    )
