"""What a study holds, for people: `sweep show` (settings, best trial, every trial, parameter importances)
and `sweep export` (results/sweeps/STUDY/trials.csv and .parquet, one column per searched key, and the
best trial as a config file that `train --config` accepts). Nothing here writes to the study.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from offline_mbrl.config import to_dict
from offline_mbrl.core.cache import atomic_path, write_json_atomic
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import build_config
from offline_mbrl.sweep.storage import open_storage


def load_study(name: str, url: str | None = None) -> optuna.Study:
    """An existing sweep study (for show, report and export); nothing is created. A grid's study (compare,
    reproduce) is refused with the command that reports it."""
    storage, _, where = open_storage(name, url, create=False)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise UserError(f"no study '{name}' in {where} (studies there: {names})") from None
    if "grid" in study.user_attrs:
        given = f" --storage {url}" if url else ""
        raise UserError(
            f"study '{name}' in {where} is a grid of `{study.user_attrs['title']}`, not a sweep: report it "
            f"with `offline-mbrl report --study {name}{given}`"
        )
    return study


def describe(study: optuna.Study) -> dict:
    """What `sweep show` prints: the study's settings, best trial, every trial, parameter importances."""
    trials = study.get_trials(deepcopy=False)
    retried_as = {t.system_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.system_attrs}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: cast(float, t.value)) if complete else None  # complete: has a value
    importances: dict[str, float | str]  # the importances, or why there are none
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = dict(optuna.importance.get_param_importances(study))  # PED-ANOVA: no sklearn
    except (ValueError, RuntimeError) as exc:
        importances = {"(not available)": str(exc)}
    importances = importances or {"(not available)": "needs completed trials"}
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value if t.state == TrialState.COMPLETE else None,
            **t.params,
            "reason": reason(t, retried_as),
            "duration_s": t.duration.total_seconds() if t.duration else None,
            "worker": t.user_attrs.get("worker", ""),
            "overrides": " ".join(t.user_attrs.get("overrides", [])),
            "scores": json.dumps(t.user_attrs.get("scores", [])),
            "runs": json.dumps(t.user_attrs.get("runs", [])),
        }
        for t in trials
    ]
    return {
        "name": study.study_name,
        "attrs": study.user_attrs,
        "best": best,
        "rows": rows,
        "importances": importances,
    }


def best_config(study: optuna.Study, best: FrozenTrial) -> dict:
    """The best trial as a file `train --config` takes (seeds stay the command's, not the sweep's)."""
    attrs = study.user_attrs
    overrides = best.user_attrs["overrides"]
    cfg = build_config(attrs["algorithm"], attrs["datasets"][0], steps=attrs["steps"], overrides=overrides)
    raw = to_dict(cfg)
    if not any(o.startswith("dynamics_seed=") for o in overrides):
        raw["dynamics_seed"] = None  # resolved to the run's own seed, as in any `train`
    sweep = {"study": study.study_name, "trial": best.number, "value": best.value, "params": best.params}
    return {"config": raw, "sweep": {**sweep, "overrides": overrides, "study_settings": attrs}}


def export(study: optuna.Study, results: Path = Path("results")) -> dict[str, Path]:
    """Write results/sweeps/STUDY/trials.{csv,parquet} and, once a trial completed, best_config.json."""
    import pandas as pd

    info = describe(study)
    out = Path(results) / "sweeps" / study.study_name
    frame = pd.DataFrame(info["rows"])
    for col in frame.select_dtypes(include="object").columns:  # parquet needs one type per column
        if frame[col].dropna().map(type).nunique() > 1:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v))
    paths = {"csv": out / "trials.csv", "parquet": out / "trials.parquet"}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths["csv"]) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(paths["parquet"]) as tmp:
        frame.to_parquet(tmp, index=False)
    if info["best"] is not None:
        paths["best_config"] = out / "best_config.json"
        write_json_atomic(paths["best_config"], best_config(study, info["best"]))
    return paths


def reason(t: FrozenTrial, retried_as: dict[int, int] | None = None) -> str:
    if t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs:
        text = "worker lost (no heartbeat)"
    else:
        text = t.user_attrs.get("fail_reason") or t.user_attrs.get("prune_reason") or ""
    if retried_as and t.number in retried_as:
        text += f"; retried as trial {retried_as[t.number]}"
    return text
