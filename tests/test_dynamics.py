"""The dynamics ensemble: loss structure, fitting, early stopping, persistence and the content-keyed cache."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from offline_mbrl.core.cache import artefact_path, clear_artefacts, list_artefacts, stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.data.dataset import Batch, EnvSpec, Fingerprint, OfflineDataset
from offline_mbrl.models import dynamics as D
from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble, Prediction

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matmuls are slower with several threads, and far slower on a shared machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_dataset(n: int = 400, seed: int = 0, dataset_id: str = "test/linear-v0", name: str = "linear"):
    """next_obs = obs + 0.1 act, reward = -|obs|^2: deterministic and smooth."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(n, 2, generator=g) * 2 - 1
    act = torch.rand(n, 2, generator=g) * 2 - 1
    data = Batch(obs=obs, act=act, rew=-obs.square().sum(-1), next_obs=obs + 0.1 * act, term=torch.zeros(n))
    spec = EnvSpec("Linear-v0", None, 2, 2, (-1.0, -1.0), (1.0, 1.0), None, None, None, "none")
    fingerprint = Fingerprint(dataset_id, 0, stable_hash([seed, n]))
    return OfflineDataset(
        name=name,
        dataset_id=dataset_id,
        spec=spec,
        fingerprint=fingerprint,
        data=data,
        timeout=torch.zeros(n, dtype=torch.bool),
        episode_starts=np.array([0]),
        episode_lengths=np.array([n]),
        episode_returns=np.array([0.0]),
    )


def tiny(**overrides) -> DynamicsConfig:
    base = dict(members=3, elites=2, hidden=(16, 16), weight_decay=(2.5e-5, 5e-5, 1e-4), batch_size=32)
    return DynamicsConfig(**{**base, "max_epochs": 3, **overrides})


def test_gradient_of_one_member_reaches_no_other_member():
    model = DynamicsEnsemble(3, 2, tiny(members=4))
    inputs, targets = torch.randn(4, 8, 5), torch.randn(4, 8, 4)  # (E, B, in), (E, B, obs_dim + 1)
    losses = D.member_losses(model, inputs, targets)  # (E,)
    assert losses.shape == (4,)
    params = list(model.net.parameters())
    for i in range(4):
        grads = torch.autograd.grad(losses[i], params, retain_graph=True)
        for g in grads:
            others = torch.cat([g[:i], g[i + 1 :]])
            assert torch.count_nonzero(others) == 0
            assert torch.count_nonzero(g[i]) > 0


@pytest.mark.parametrize("activation", ["silu", "relu", "tanh", "elu"])
def test_gradient_free_forward_in_chunks_equals_the_plain_forward(activation):
    """Rollouts run the ensemble and the actor chunk by chunk in place; every row must come out as the
    plain batched forward computes it, for shared (B, in) and per-member (E, B, in) inputs."""
    from offline_mbrl.core.nets import INFER_CHUNK, mlp

    torch.manual_seed(0)
    net = DynamicsEnsemble(
        3,
        2,
        DynamicsConfig(members=4, elites=2, hidden=(16, 16), weight_decay=(0.0,) * 3, activation=activation),
    ).net
    rows = 2 * INFER_CHUNK + 37  # two full chunks and a partial one
    for x in (torch.randn(rows, 5), torch.randn(4, rows, 5)):
        plain = net(x)  # gradients enabled: the plain path
        with torch.no_grad():
            chunked = net(x)
        assert chunked.shape == plain.shape == (4, rows, 8)  # mean and log-variance of 3 + 1
        assert torch.allclose(chunked, plain, atol=1e-6, rtol=1e-6)
    actor = mlp(5, (16, 16), 4)
    x = torch.randn(rows, 5)
    with torch.no_grad():
        assert torch.allclose(actor(x), torch.nn.Sequential.forward(actor, x), atol=1e-6, rtol=1e-6)
        assert not torch.equal(actor(x)[:INFER_CHUNK], actor(x)[INFER_CHUNK : 2 * INFER_CHUNK])


def test_prediction_shapes_and_units():
    model = DynamicsEnsemble(3, 2, tiny(members=4, elites=3))
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    pred = model.predict(obs, act)
    assert pred.mean.shape == pred.std.shape == (4, 5, 4)
    assert pred.elites.dtype == torch.long and pred.elites.shape == (3,)
    assert (pred.std > 0).all()
    delta, _ = model(torch.cat([obs, act], -1))
    torch.testing.assert_close(pred.mean[..., :3], obs + delta[..., :3])  # next_obs = obs + Δobs
    torch.testing.assert_close(pred.mean[..., 3], delta[..., 3])
    next_obs, rew, member = pred.sample(torch.Generator().manual_seed(0))
    assert next_obs.shape == (5, 3) and rew.shape == (5,) and member.shape == (5,)
    assert member.dtype == torch.long and torch.isin(member, pred.elites).all()


def test_sample_picks_uniform_elites_and_draws_their_gaussian():
    mean = torch.arange(4.0).reshape(4, 1, 1).expand(4, 6000, 3)  # member i predicts i everywhere
    zero = Prediction(mean=mean, std=torch.zeros_like(mean), elites=torch.tensor([3, 1]))
    next_obs, rew, member = zero.sample(torch.Generator().manual_seed(0))
    assert torch.equal(next_obs[:, 0], member.float()) and torch.equal(rew, member.float())
    share = (member == 3).float().mean()
    assert set(member.unique().tolist()) == {1, 3} and abs(share - 0.5) < 0.03
    noisy = Prediction(mean=mean, std=torch.full_like(mean, 2.0), elites=torch.tensor([0]))
    draws, _, _ = noisy.sample(torch.Generator().manual_seed(1))
    assert abs(draws.std() - 2.0) < 0.05 and abs(draws.mean()) < 0.05
    again, _, _ = noisy.sample(torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)


def test_log_variance_is_softly_bounded():
    model = DynamicsEnsemble(3, 2, tiny())
    with torch.no_grad():
        model.max_logvar.copy_(torch.tensor([0.5, 1.0, -1.0, 2.0]))
        out_bias = model.net.layers[-1].bias  # (E, 1, 2 * out): [mean, logvar]
        inputs = torch.randn(7, 5)
        for raw, expect in ((1e4, model.max_logvar), (-1e4, model.min_logvar)):
            out_bias[..., 4:] = raw
            _, logvar = model(inputs)
            torch.testing.assert_close(logvar, expect.expand_as(logvar), atol=2e-4, rtol=0)
        # The lower clamp can lift a value already pressed against the upper bound by this much.
        slack = torch.nn.functional.softplus(model.min_logvar - model.max_logvar)
        for raw in torch.linspace(-50, 50, 21):
            out_bias[..., 4:] = raw
            _, logvar = model(inputs)
            assert (logvar >= model.min_logvar).all() and (logvar <= model.max_logvar + slack + 1e-6).all()
        # Well inside both bounds the clamp is close to the identity.
        out_bias[..., 4:] = -5.0
        model.net.layers[-1].weight[..., 4:] = 0.0
        _, logvar = model(inputs)
        torch.testing.assert_close(logvar, torch.full_like(logvar, -5.0), atol=0.05, rtol=0)


def test_fit_learns_a_simple_system_and_orders_elites():
    ds = make_dataset()
    cfg = tiny(members=4, elites=2, hidden=(32, 32), lr=3e-3, max_epochs=60)
    model, report = D.fit_dynamics(ds, cfg, progress=False)
    assert (report["n_train"], report["n_holdout"]) == (320, 80)
    assert report["elite_mse"] < 0.05 * report["baseline_mse"]
    mse = report["holdout_mse"]
    assert report["elites"] == sorted(range(4), key=mse.__getitem__)[:2]
    assert model.elites.tolist() == report["elites"]
    assert report["elite_mse"] == pytest.approx(np.mean([mse[i] for i in report["elites"]]))
    assert len(report["holdout_nll"]) == 4 and report["wall_time"] > 0
    fresh = make_dataset(200, seed=9).data
    with torch.no_grad():
        pred = model.predict(fresh.obs, fresh.act)
    elite_mean = pred.mean[pred.elites].mean(0)  # (B, obs_dim + 1)
    assert (elite_mean[:, :2] - fresh.next_obs).abs().max() < 0.05
    assert (elite_mean[:, 2] - fresh.rew).square().mean() < 0.05 * fresh.rew.var()


def test_holdout_size_is_capped():
    _, report = D.fit_dynamics(make_dataset(), tiny(max_holdout=50, max_epochs=1), progress=False)
    assert (report["n_train"], report["n_holdout"]) == (350, 50)
    with pytest.raises(UserError, match="too few"):
        D.fit_dynamics(make_dataset(4), tiny(), progress=False)


def expected_stopping(history: list[list[float]], cfg: DynamicsConfig) -> tuple[list[int], int]:
    """Replay the early-stopping rule on the per-epoch holdout MSEs: (best epoch per member, stop epoch)."""
    best = [float("inf")] * len(history[0])
    best_epoch = [0] * len(best)
    since = 0
    for epoch, row in enumerate(history, start=1):
        improved = [
            (b - m) / b > cfg.improvement if b < float("inf") else True
            for b, m in zip(best, row, strict=True)
        ]
        for i, imp in enumerate(improved):
            if imp:
                best[i], best_epoch[i] = row[i], epoch
        since = 0 if any(improved) else since + 1
        if since >= cfg.patience and epoch >= cfg.min_epochs:
            return best_epoch, epoch
    return best_epoch, len(history)


def test_early_stopping_restores_each_members_best_snapshot():
    ds = make_dataset()
    cfg = tiny(improvement=0.2, patience=2, max_epochs=60, lr=3e-3)
    model, report = D.fit_dynamics(ds, cfg, progress=False)
    history = report["history"]
    best_epoch, stop = expected_stopping(history, cfg)
    assert report["stopped"] == "patience" and report["epochs"] == stop == len(history) < 60
    assert report["best_epoch"] == best_epoch
    best = [history[e - 1][i] for i, e in enumerate(best_epoch)]
    torch.testing.assert_close(torch.tensor(report["holdout_mse"]), torch.tensor(best), rtol=1e-5, atol=0)
    assert report["holdout_mse"] != history[-1]  # the restore changed something

    # The same numbers from the restored model on the holdout split recomputed independently.
    inputs = torch.cat([ds.data.obs, ds.data.act], -1)
    targets = torch.cat([ds.data.next_obs - ds.data.obs, ds.data.rew[:, None]], -1)
    _, hold = D.holdout_split(len(ds), cfg, torch.Generator().manual_seed(cfg.seed))
    mse, _ = D.holdout_scores(model, inputs[hold], targets[hold])
    torch.testing.assert_close(mse, torch.tensor(best), rtol=1e-5, atol=0)


def test_min_and_max_epochs():
    ds = make_dataset()
    _, report = D.fit_dynamics(ds, tiny(improvement=0.99, patience=1, min_epochs=6, max_epochs=50), False)
    assert (report["epochs"], report["stopped"]) == (6, "patience")
    _, report = D.fit_dynamics(ds, tiny(max_epochs=2, patience=50), False)
    assert (report["epochs"], report["stopped"]) == (2, "max_epochs")
    _, report = D.fit_dynamics(ds, tiny(max_epochs=1, steps_per_epoch=25), False)
    assert report["epochs"] == 1  # 25 batches of 32 chain three shuffles of 320 rows


def test_save_load_round_trip_is_exact(tmp_path):
    ds = make_dataset()
    model, _ = D.fit_dynamics(ds, tiny(), progress=False)
    D.save(model, tmp_path / "model.pt")
    loaded = D.load(tmp_path / "model.pt")
    assert loaded.cfg == model.cfg and torch.equal(loaded.elites, model.elites)
    with torch.no_grad():
        a, b = model.predict(ds.data.obs, ds.data.act), loaded.predict(ds.data.obs, ds.data.act)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot read dynamics model"):
        D.load(tmp_path / "bad.pt")


def test_fit_is_deterministic_per_seed_and_leaves_global_rng_alone():
    ds = make_dataset()
    state = torch.get_rng_state()
    first, r1 = D.fit_dynamics(ds, tiny(), progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    second, r2 = D.fit_dynamics(ds, tiny(), progress=False)
    other, _ = D.fit_dynamics(ds, tiny(seed=1), progress=False)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert r1["history"] == r2["history"]
    assert not torch.equal(first.net.layers[0].weight, other.net.layers[0].weight)


def test_config_validation_and_json_lists():
    with pytest.raises(UserError, match="weight_decay needs one value per layer"):
        DynamicsConfig(hidden=(8, 8))
    with pytest.raises(UserError, match="elites"):
        DynamicsConfig(members=3, elites=4)
    for mix in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match=r"oracle_mix must be in \[0, 1\]"):
            DynamicsConfig(kind="oracle", oracle_mix=mix)
    with pytest.raises(UserError, match="oracle_mix applies to kind=oracle only"):
        DynamicsConfig(oracle_mix=0.5)
    with pytest.raises(UserError, match="kind must be ensemble or oracle"):
        DynamicsConfig(kind="simulator")  # type: ignore[arg-type]
    as_lists = DynamicsConfig(
        **{**dataclasses.asdict(tiny()), "hidden": [16, 16], "weight_decay": [2.5e-5, 5e-5, 1e-4]}
    )
    assert as_lists == tiny() and D.dynamics_key("d@h", as_lists) == D.dynamics_key("d@h", tiny())


def test_cache_key_depends_on_dataset_content_and_dynamics_config_only():
    cfg = tiny()
    key = D.dynamics_key("test/linear-v0@abc", cfg)
    assert key == D.dynamics_key("test/linear-v0@abc", tiny())
    # The learned model's fields only: `kind` and `oracle_mix` (added in round 2) and `precision` at fp32
    # (round 3) leave every key as it was.
    learned_fields = {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("kind", "oracle_mix", "precision")
    }
    assert key == stable_hash(
        {"dataset": "test/linear-v0@abc", "dynamics": learned_fields, "format": D.FORMAT_VERSION}
    )
    oracle = dataclasses.replace(cfg, kind="oracle", oracle_mix=0.5)
    assert oracle.learned() == cfg and oracle.needs_fit
    assert not dataclasses.replace(cfg, kind="oracle").needs_fit
    with pytest.raises(ValueError, match="learned"):
        D.dynamics_key("test/linear-v0@abc", oracle)
    assert key != D.dynamics_key("test/linear-v0@abd", cfg)
    changed = [
        dict(seed=1),
        dict(members=4),
        dict(elites=1),
        dict(lr=3e-3),
        dict(max_epochs=4),
        dict(patience=6),
        dict(hidden=(16, 17)),
        dict(activation="relu"),
        dict(logvar_loss_coef=0.02),
    ]
    keys = {D.dynamics_key("test/linear-v0@abc", dataclasses.replace(cfg, **c)) for c in changed}
    assert len(keys) == len(changed) and key not in keys

    # Another name, another device argument, progress off: the same content and config share one entry.
    ds = make_dataset()
    _, _, k1 = D.load_or_fit(ds, cfg, progress=False)
    renamed = dataclasses.replace(ds, name="another-name")
    _, _, k2 = D.load_or_fit(renamed, cfg, device="cpu", progress=True)
    assert k1 == k2 == D.dynamics_key(ds.fingerprint.key, cfg)
    assert len(list_artefacts()) == 1


def test_load_or_fit_fits_once_then_loads(monkeypatch):
    ds = make_dataset()
    model, report, key = D.load_or_fit(ds, tiny(), progress=False)
    entry = artefact_path("dynamics", key)
    assert (entry / "model.pt").is_file() and (entry / "report.json").is_file()
    assert report["dataset_id"] == "test/linear-v0" and report["fingerprint"] == ds.fingerprint.key
    assert report["key"] == key and report["created"]

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted a cached ensemble")

    monkeypatch.setattr(D, "fit_dynamics", no_fit)
    again, report2, key2 = D.load_or_fit(ds, tiny(), progress=False)
    assert key2 == key and report2 == report
    with torch.no_grad():
        assert torch.equal(
            model.predict(ds.data.obs, ds.data.act).mean, again.predict(ds.data.obs, ds.data.act).mean
        )
    with pytest.raises(AssertionError, match="refitted"):
        D.load_or_fit(ds, tiny(seed=5), progress=False)


def test_an_interrupted_fit_continues_from_its_last_epoch_and_ends_as_an_uninterrupted_one(
    tmp_path, monkeypatch
):
    ds, cfg = make_dataset(), tiny(max_epochs=5, min_epochs=5)
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(tmp_path / "straight"))
    straight, report_a, key = D.load_or_fit(ds, cfg, progress=False)

    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(tmp_path / "killed"))
    scores, calls = D.holdout_scores, []

    def killed_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return scores(*args, **kwargs)

    monkeypatch.setattr(D, "holdout_scores", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        D.load_or_fit(ds, cfg, progress=False)
    partial = tmp_path / "killed" / "dynamics" / f".{key}.partial.pt"
    assert partial.is_file() and torch.load(partial, weights_only=False)["epoch"] == 2  # epochs 1-2 kept
    assert not artefact_path("dynamics", key).exists()  # nothing published

    calls.clear()
    monkeypatch.setattr(D, "holdout_scores", lambda *a, **k: (calls.append(1), scores(*a, **k))[1])
    resumed, report_b, _ = D.load_or_fit(ds, cfg, progress=False)
    assert len(calls) == 3 + 1  # epochs 3, 4, 5 and the final score: epochs 1-2 were not run again
    assert not partial.exists()  # removed once the entry is published
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert report_a["history"] == report_b["history"] and report_b["epochs"] == 5


WORKER = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, {root!r})
    torch.set_num_threads(1)
    from tests.test_dynamics import make_dataset, tiny
    from offline_mbrl.models import dynamics as D

    fit = D.fit_dynamics
    def slow_fit(*args, **kwargs):
        print("FITTED", flush=True)
        time.sleep(1.5)  # hold the lock long enough for the other process to arrive
        return fit(*args, **kwargs)
    D.fit_dynamics = slow_fit
    ds = make_dataset()
    model, report, key = D.load_or_fit(ds, tiny(), progress=False)
    print("KEY", key, model.predict(ds.data.obs, ds.data.act).mean.sum().item(), flush=True)
    """
)


def test_concurrent_fits_of_one_key_leave_one_valid_entry(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    env = {**os.environ, "OFFLINE_MBRL_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in "ab"
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum(out.count("FITTED") for out in outputs) == 1, outputs
    results = {line for out in outputs for line in out.splitlines() if line.startswith("KEY")}
    assert len(results) == 1, results  # the same key and the same predictions in both
    entries = [p for p in (tmp_path / "cache" / "dynamics").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    D.load(entries[0] / "model.pt")


def test_a_damaged_entry_is_removed_and_fitted_again_as_every_cached_kind(capsys):
    ds = make_dataset()
    model, _, key = D.load_or_fit(ds, tiny(), progress=False)
    entry = artefact_path("dynamics", key)
    (entry / "model.pt").write_bytes(b"\x00truncated")
    again, _, same_key = D.load_or_fit(ds, tiny(), progress=False)
    assert same_key == key and "removing it and fitting it again" in capsys.readouterr().err
    obs, act = ds.data.obs[:5], ds.data.act[:5]
    assert torch.equal(again.predict(obs, act).mean, model.predict(obs, act).mean)  # the same fit
    (entry / "report.json").unlink()
    D.load_or_fit(ds, tiny(), progress=False)
    assert "damaged" in capsys.readouterr().err
    assert [row["damaged"] for row in list_artefacts()] == [False]


def test_list_and_clear_cache():
    a, b = (
        make_dataset(dataset_id="test/a-v0", name="a"),
        make_dataset(seed=1, dataset_id="test/b-v0", name="b"),
    )
    _, report_a, key_a = D.load_or_fit(a, tiny(), progress=False)
    D.load_or_fit(b, tiny(), progress=False)
    rows = {row["key"]: row for row in list_artefacts()}
    assert len(rows) == 2
    row = rows[key_a]
    assert row["dataset_id"] == "test/a-v0" and row["kind"] == "dynamics" and not row["damaged"]
    assert row["summary"] == f"{report_a['epochs']} epochs, elite MSE {report_a['elite_mse']:.5f}"
    assert (
        row["size_mb"] > 0 and row["created"] and set(row["manifest"]["files"]) == {"model.pt", "report.json"}
    )
    assert clear_artefacts(dataset="test/a-v0") == 1
    assert [r["dataset_id"] for r in list_artefacts()] == ["test/b-v0"]
    assert clear_artefacts("behaviour_policy") == 0  # another kind: nothing of it here
    assert clear_artefacts(dataset="b") == 1  # by short name too
    assert list_artefacts() == [] and clear_artefacts() == 0


def test_the_fit_plan_measures_an_epoch_here_says_the_rule_and_then_the_cache_and_draws_nothing_global():
    from offline_mbrl.models.fit_plan import fit_plan

    ds = make_dataset()
    n = len(ds.data.obs)
    state = torch.get_rng_state()
    fit_line, estimate = fit_plan(ds, tiny())
    assert torch.equal(torch.get_rng_state(), state)  # a seeded fit after the plan is the fit without it
    hold = min(int(0.2 * n), 1000)
    steps = -(-(n - hold) // 32)
    assert f"fit 3 members (16x16) on {n - hold:,} rows, {steps:,} steps an epoch, 3 epochs at most" in (
        fit_line
    )
    assert estimate.startswith("estimate: dynamics about ") and "at the cap" in estimate
    uncapped = fit_plan(ds, tiny(max_epochs=None, patience=4))
    assert "until 4 epochs in a row without a 1% gain (no cap)" in uncapped[0]
    assert "at the fewest epochs the rule allows" in uncapped[1]
    _, _, key = D.load_or_fit(ds, tiny(), progress=False)
    assert fit_plan(ds, tiny()) == [f"dynamics: cached ensemble {key} (no fit)"]
