"""`--precision`: bf16 inner products with fp32 input and output layers, fp32 master weights and optimiser
state, the refusal where bf16 is not fast, the config key in run folders and cache keys (fp32 keeps the
keys made before it existed), and a batched bf16 seed that reproduces its lone run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from offline_mbrl.config import TrainConfig, config_hash, to_dict
from offline_mbrl.core import precision
from offline_mbrl.core.cache import stable_hash
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.nets import INFER_CHUNK, EnsembleMLP, mlp
from offline_mbrl.data.dataset import Batch
from offline_mbrl.launch import build_config, execute, execute_seeds
from offline_mbrl.learning.run import run_dir_for
from offline_mbrl.learning.sac import SAC, SACConfig
from offline_mbrl.models.dynamics import FORMAT_VERSION, DynamicsConfig, DynamicsEnsemble, dynamics_key

from .test_algorithms import PER_ALGO, TINY
from .test_batched_seeds import close


@pytest.fixture(autouse=True)
def bf16_anywhere(monkeypatch):
    """The numbers of bf16 are the same on every CPU, only slower without AMX or AVX512-BF16."""
    monkeypatch.setenv(precision.ANYWHERE_ENV, "1")


def by_hand(net: EnsembleMLP, x: torch.Tensor) -> torch.Tensor:
    """The bf16 forward written out: input layer fp32, inner layers on bf16 copies, output layer fp32."""
    layers = list(net.layers)
    h = net.activation(torch.baddbmm(layers[0].bias, x, layers[0].weight)).bfloat16()
    for layer in layers[1:-1]:
        h = net.activation(torch.baddbmm(layer.bias.bfloat16(), h, layer.weight.bfloat16()))
    return torch.baddbmm(layers[-1].bias, h.float(), layers[-1].weight)


def test_bf16_runs_the_inner_products_in_bf16_and_the_first_and_last_layers_in_fp32():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 5, (64, 64, 64), 4, nn.SiLU)
    x = torch.randn(3, 40, 5)
    fp32 = net(x)
    precision.apply_precision(net, "bf16")
    bf16 = net(x)
    assert bf16.dtype == torch.float32 and all(p.dtype == torch.float32 for p in net.parameters())
    assert torch.equal(bf16, by_hand(net, x))
    assert not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().max() < 0.05 * fp32.abs().max()  # bf16 rounding, not another function
    with torch.no_grad():  # the chunked gradient-free forward: the same numbers
        rows = torch.randn(3, INFER_CHUNK * 2 + 7, 5)
        assert torch.equal(net(rows), by_hand(net, rows))


def test_the_sequential_mlp_in_bf16_chunked_or_not_gives_the_same_numbers():
    torch.manual_seed(0)
    net = precision.apply_precision(mlp(6, (32, 32), 3), "bf16")
    x = torch.randn(INFER_CHUNK + 300, 6)
    with torch.no_grad():
        whole = net(x)
        assert torch.equal(net(x[:10]), whole[:10])  # a batch under the chunk size takes the other path
    out = net(x[:10])
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters())


def batch(n: int = 64) -> Batch:
    g = torch.Generator().manual_seed(1)
    obs, nxt = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    act = torch.rand(n, 1, generator=g) * 2 - 1
    return Batch(obs, act, -obs.square().sum(-1), nxt, torch.zeros(n))


def test_a_bf16_learner_keeps_fp32_weights_and_optimiser_state_and_tracks_the_fp32_learner():
    cfg = SACConfig(critics=2, actor_hidden=(64, 64), critic_hidden=(64, 64))
    learners = {}
    for p in ("fp32", "bf16"):
        torch.manual_seed(0)
        learners[p] = SAC(3, 1, [-2.0], [2.0], cfg, precision=p)  # type: ignore[arg-type]
    losses: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for p, sac in learners.items():
        g = torch.Generator().manual_seed(0)
        for _ in range(150):
            losses[p].append(float(sac.update(batch(), generator=g)["critic_loss"]))
    bf16 = learners["bf16"]
    assert bf16.critics.net.compute_dtype == torch.bfloat16 == bf16.target_critics.net.compute_dtype
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    for state in bf16.critic_optim.state.values():
        assert all(v.dtype == torch.float32 for v in state.values())
    assert all(torch.isfinite(torch.tensor(v)) for v in losses["bf16"])
    # both learn: the TD loss falls by the same order of magnitude
    first, last = sum(losses["fp32"][:10]), sum(losses["fp32"][-10:])
    first_b, last_b = sum(losses["bf16"][:10]), sum(losses["bf16"][-10:])
    assert last < 0.5 * first and last_b < 0.5 * first_b
    assert abs(last_b - last) < 0.25 * last


def test_unknown_precision_and_bf16_without_fast_hardware_are_one_line(monkeypatch):
    with pytest.raises(UserError, match="precision must be one of fp32, bf16, fp32-strict"):
        precision.check_precision("fp16", "cpu")
    monkeypatch.delenv(precision.ANYWHERE_ENV)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: {"amx_bf16": False, "avx512_bf16": False})
    with pytest.raises(UserError, match="neither AMX nor AVX512-BF16") as err:
        precision.check_precision("bf16", "cpu")
    assert "\n" not in str(err.value) and "--precision fp32" in str(err.value)
    precision.check_precision("fp32", "cpu")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: {"amx_bf16": False, "avx512_bf16": True})
    precision.check_precision("bf16", "cpu")


def test_train_refuses_bf16_without_fast_hardware_before_writing(
    monkeypatch, tiny_pendulum, tmp_path, capsys
):
    from .test_cli import assert_one_line_error, run_cli

    monkeypatch.delenv(precision.ANYWHERE_ENV)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: {"amx_bf16": False, "avx512_bf16": False})
    args = ["train", "--algo", "mopo", "--dataset", tiny_pendulum, "--steps", "20", "--precision", "bf16"]
    code, _, err = run_cli(capsys, *args, "--results", str(tmp_path / "r"))
    assert_one_line_error(code, err, "AMX", "--precision fp32")
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(capsys, "dynamics", "fit", "--dataset", tiny_pendulum, "--precision", "bf16")
    assert_one_line_error(code, err, "AVX512-BF16")
    code, _, err = run_cli(
        capsys, "dynamics", "fit", "--dataset", tiny_pendulum, "--set", "dynamics.precision=bf16"
    )
    assert_one_line_error(code, err, "AVX512-BF16")
    code, _, err = run_cli(capsys, *args[:-1], "fp16", "--results", str(tmp_path / "r"))
    assert_one_line_error(code, err, "fp16")
    monkeypatch.setenv(precision.ANYWHERE_ENV, "1")
    bc = ["train", "--algo", "bc", "--dataset", tiny_pendulum, "--steps", "20", "--precision", "bf16"]
    code, _, err = run_cli(capsys, *bc, "--results", str(tmp_path / "r"))
    assert_one_line_error(code, err, "bc runs in fp32 or fp32-strict only")
    assert not (tmp_path / "r").exists()


def test_fp32_keeps_the_run_folders_and_dynamics_keys_made_before_the_key_existed():
    cfg = build_config("mopo", "pendulum-medium-replay")
    raw = to_dict(cfg)
    del raw["precision"], raw["dynamics"]["precision"]
    assert config_hash(cfg) == stable_hash(raw)
    bf16 = dataclasses.replace(cfg, precision="bf16")
    assert config_hash(bf16) != config_hash(cfg)
    dyn = DynamicsConfig()
    fields = dataclasses.asdict(dyn)
    del fields["kind"], fields["oracle_mix"], fields["precision"]
    before = stable_hash({"dataset": "fp", "dynamics": fields, "format": FORMAT_VERSION})
    assert dynamics_key("fp", dyn) == before
    assert dynamics_key("fp", dataclasses.replace(dyn, precision="bf16")) != before
    assert isinstance(cfg, TrainConfig)


def test_dynamics_ensemble_takes_its_precision_from_its_config():
    model = DynamicsEnsemble(3, 1, DynamicsConfig(hidden=(16, 16), weight_decay=(0, 0, 0), precision="bf16"))
    assert model.net.compute_dtype == torch.bfloat16
    mean, logvar = model(torch.randn(5, 4))
    assert mean.dtype == logvar.dtype == torch.float32


def test_a_bf16_run_records_its_precision_and_a_batched_bf16_seed_reproduces_its_lone_run(
    tiny_pendulum, tmp_path
):
    sets = [*TINY, *PER_ALGO["ravl"], "precision=bf16"]
    cfgs = [build_config("ravl", tiny_pendulum, seed=s, steps=60, overrides=sets) for s in (0, 1)]
    execute_seeds(cfgs, tmp_path / "batched", progress=False)
    lone = execute(cfgs[1], tmp_path / "lone", progress=False)
    saved = json.loads((run_dir_for(cfgs[1], tmp_path / "lone") / "config.json").read_text())
    assert saved["config"]["precision"] == "bf16" and saved["config"]["dynamics"]["precision"] == "fp32"
    a = torch.load(run_dir_for(cfgs[1], tmp_path / "batched") / "policy.pt")["actor"]
    b = torch.load(run_dir_for(cfgs[1], tmp_path / "lone") / "policy.pt")["actor"]
    assert all(close(a[k], b[k]) for k in a)
    assert lone["normalized_score"] is not None or lone["return_mean"] is not None
    # the run's rollouts use its fp32-fitted ensemble at the run's precision
    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.launch import load_dynamics

    model, _ = load_dynamics(load_dataset(tiny_pendulum), cfgs[0].dynamics, "cpu", False, "bf16")
    assert isinstance(model, DynamicsEnsemble) and model.cfg.precision == "fp32"
    assert model.net.compute_dtype == torch.bfloat16
