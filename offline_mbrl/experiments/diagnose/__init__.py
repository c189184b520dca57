"""Model-error diagnostics after Lu et al. (ICLR 2022, "Revisiting Design Choices in Offline Model-Based
RL"): how closely does each uncertainty penalty track the learned model's true one-step error?

`diagnose(dataset, ...)` loads the cached learned ensemble of dynamics seed S (fitting it on a miss, with
the `dynamics.KEY=V` overrides `dynamics fit` takes), takes a policy (a finished run's, or a behaviour-
cloned one fitted on the spot), rolls it out in the ensemble from N dataset states drawn uniformly over
the transitions (horizon H, the dataset's termination function, one random elite sampled per step as in
every algorithm's rollouts) and, for every valid model transition (s, a, ŝ', r̂):

    true_error    ‖ŝ' − s'‖₂, ŝ' the sampled next state the rollout used, s' the true simulator's
                  (`offline_mbrl.models.oracle.simulator`) from the same (s, a)
    mean_error    ‖mean of the elites' means − s'‖₂ (the error without the sampling noise)
    reward_error  |r̂ − r|
    one column per penalty of `learning.penalties.PENALTIES` (members "elites"), evaluated by a step
    hook on the same `Prediction` and sampled transition the rollout used, exactly as MOPO's penalty hook

then the Spearman (and Pearson) correlation of each penalty with `true_error`. The oracle's own check
replays N random dataset transitions through the simulator: `oracle check: ...`, one line.

Output folder (default `reports/diagnose/<dataset>-seed<S>/`), written in a staging folder and renamed
into place (the report layer's `publish_report`), so it is never half-written; a folder is only ever
replaced if it carries the marker file `.offline-mbrl-diagnose` (written by this package):

    transitions.csv, transitions.parquet   one row per model transition (the parquet's schema metadata
                                           holds meta.json under "offline_mbrl.diagnose")
    correlations.csv                       per penalty: Spearman ρ and p, Pearson r and p, n
    correlations_by_h.csv                  per penalty and rollout step h: Spearman ρ, p, n
    figures/<penalty>.png, overview.png    penalty vs true error, log-log where the values are positive
    summary.md, meta.json

Actions are deterministic: a run's policy acts as in its evaluation (the mean action), the BC policy is
a deterministic MLP (`algorithms.bc.BCPolicy`, fitted by `algorithms.bc.fit`). Limits: a state with a
velocity clipped at ±10 in the observation (hopper, walker2d, inverted-double-pendulum) is simulated at
the clipped value, so the oracle's next state from it is not the recorded one (the oracle check counts
those); a state the simulator rejects (non-finite or beyond MuJoCo's bound, from a diverging model) gets
a NaN true error and is left out of the correlations (`meta.json`: `simulator_rejected`).

The package, one module an idea: `policy` (the policy rolled out), `rollouts` (the model transitions with
their true errors and penalties), `oracle` (the oracle check), `stats` (correlations, r_D's statistics),
`figures`, `output` (the published folder, `summary.md`, the CLI's printout) and `pipeline` (`diagnose`).
"""

from offline_mbrl.experiments.diagnose.oracle import oracle_check
from offline_mbrl.experiments.diagnose.output import (
    MARKER,
    DiagnoseResult,
    check_out,
    default_out,
    print_result,
)
from offline_mbrl.experiments.diagnose.pipeline import diagnose
from offline_mbrl.experiments.diagnose.rollouts import PENALTY_MEMBERS, model_transitions, penalty_hook
from offline_mbrl.experiments.diagnose.stats import correlations, correlations_by_h

__all__ = [
    "MARKER",
    "PENALTY_MEMBERS",
    "DiagnoseResult",
    "check_out",
    "correlations",
    "correlations_by_h",
    "default_out",
    "diagnose",
    "model_transitions",
    "oracle_check",
    "penalty_hook",
    "print_result",
]
