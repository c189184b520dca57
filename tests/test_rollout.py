"""The batched rollout (alive masks, hooks, returns), the FIFO model buffer and real/model mixing."""

from __future__ import annotations

from dataclasses import replace

import torch

from offline_mbrl.data.dataset import Batch
from offline_mbrl.learning.rollout import ModelBuffer, Step, compose, mix, rollout, with_extras
from offline_mbrl.models.dynamics import Prediction


class LineWorld:
    """A hand-built 'ensemble' with known outputs: next = obs + act, reward = obs[0], tiny noise."""

    def predict(self, obs, act):
        nxt = obs + act
        mean = torch.cat([nxt, obs[:, :1]], dim=1).expand(3, -1, -1)  # (E=3, B, obs_dim + 1)
        return Prediction(mean=mean, std=torch.full_like(mean, 1e-12), elites=torch.tensor([0, 2]))


def step_right(obs):
    return torch.ones_like(obs)


def beyond(limit):
    return lambda obs, act, next_obs: next_obs[:, 0] >= limit


def test_alive_mask_freezes_terminated_rows_and_counts_returns():
    start = torch.tensor([[0.0], [2.0], [10.0]])
    ro = rollout(LineWorld(), step_right, start, horizon=4, terminated=beyond(4.0))
    assert ro.obs.shape == (4, 3, 1) and ro.rew.shape == (4, 3) and ro.alive.shape == (4, 3)
    # row 0 walks 0→1→2→3→4 and terminates on its 4th step; row 1 terminates on its 2nd (3→4); row 2 at once
    assert ro.alive[:, 0].tolist() == [True, True, True, True]
    assert ro.alive[:, 1].tolist() == [True, True, False, False]
    assert ro.alive[:, 2].tolist() == [True, False, False, False]
    assert ro.term[:, 0].tolist() == [False, False, False, True]
    assert ro.lengths().tolist() == [4, 2, 1]
    assert torch.allclose(ro.returns(), torch.tensor([0.0 + 1 + 2 + 3, 2.0 + 3, 10.0]))
    assert ro.obs[2:, 2].flatten().tolist() == [10.0, 10.0]  # frozen after termination
    batch, extras = ro.transitions()
    assert len(batch) == 7 and extras == {}
    assert batch.term.sum().item() == 3


def test_hook_changes_reward_and_stopping_and_records_extras():
    def hook(step):
        stop = step.next_obs[:, 0] >= 2.0
        return with_extras(replace(step, rew=step.rew - 0.5, term=step.term | stop), raw_reward=step.rew)

    ro = rollout(
        LineWorld(), step_right, torch.zeros(2, 1), horizon=5, terminated=beyond(100.0), step_hook=hook
    )
    assert ro.lengths().tolist() == [2, 2]
    assert ro.extras["raw_reward"].shape == (5, 2)
    assert torch.allclose(ro.rew[:2, 0], ro.extras["raw_reward"][:2, 0] - 0.5)


def test_rollout_samples_only_elites_and_is_seeded():
    class Spread(LineWorld):
        def predict(self, obs, act):
            mean = torch.stack([obs + k for k in (0.0, 100.0, 200.0)])  # member k adds 100 k
            mean = torch.cat([mean, torch.zeros_like(mean[..., :1])], dim=-1)
            return Prediction(mean=mean, std=torch.full_like(mean, 1e-12), elites=torch.tensor([0, 2]))

    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = rollout(Spread(), torch.zeros_like, torch.zeros(500, 1), 1, beyond(1e9), generator=g1)
    b = rollout(Spread(), torch.zeros_like, torch.zeros(500, 1), 1, beyond(1e9), generator=g2)
    assert torch.equal(a.next_obs, b.next_obs)
    values = set(a.next_obs.round().flatten().tolist())
    assert values == {0.0, 200.0}  # member 1 is not an elite and never sampled


def batch_of(values):
    v = torch.tensor(values, dtype=torch.float32)
    return Batch(v[:, None], v[:, None], v, v[:, None], torch.zeros_like(v))


def test_fifo_buffer_drops_the_oldest():
    buf = ModelBuffer(5, 1, 1, "cpu")
    buf.add(batch_of([1, 2, 3]))
    buf.add(batch_of([4, 5, 6, 7]))
    assert len(buf) == 5
    assert sorted(buf.rew.tolist()) == [3, 4, 5, 6, 7]  # 1 and 2, the oldest, were overwritten
    buf.add(batch_of(list(range(10, 22))))  # more than the capacity: only the newest 5 survive
    assert sorted(buf.rew.tolist()) == [17, 18, 19, 20, 21]
    sample = buf.sample(100, torch.Generator().manual_seed(0))
    assert set(sample.rew.tolist()) <= {17.0, 18.0, 19.0, 20.0, 21.0}


def test_buffer_state_round_trip():
    buf = ModelBuffer(4, 1, 1, "cpu")
    buf.add(batch_of([1, 2, 3]))
    other = ModelBuffer(4, 1, 1, "cpu")
    other.load_state_dict(buf.state_dict())
    other.add(batch_of([9, 8]))
    buf.add(batch_of([9, 8]))
    assert torch.equal(other.rew, buf.rew) and other.ptr == buf.ptr and len(other) == len(buf) == 4


def test_mix_concatenates_real_then_model():
    m = mix(batch_of([1, 2]), batch_of([3, 4, 5]))
    assert m.rew.tolist() == [1, 2, 3, 4, 5] and m.obs.shape == (5, 1)


def test_step_carries_the_generator_and_hooks_compose_into_one():
    gen = torch.Generator().manual_seed(0)
    seen = []

    def cut_at_two(step):  # a filter: marks the transition terminal
        seen.append(step.generator)
        return with_extras(replace(step, term=step.term | (step.next_obs[:, 0] >= 2.0)), cut=step.rew * 0 + 1)

    def penalty(step):  # a penalty: lowers the reward
        return with_extras(replace(step, rew=step.rew - 0.5), raw_reward=step.rew)

    both = compose(cut_at_two, None, penalty)
    ro = rollout(LineWorld(), step_right, torch.zeros(2, 1), 5, beyond(100.0), both, gen)
    assert seen and all(g is gen for g in seen)  # every step hands the run's generator to the hooks
    assert ro.lengths().tolist() == [2, 2]  # the filter's cut
    assert torch.allclose(ro.rew[:2], ro.extras["raw_reward"][:2] - 0.5)  # the penalty after it
    assert set(ro.extras) == {"cut", "raw_reward"}
    # composing is applying in order: the same Step out as calling them one after the other
    step = Step(0, torch.zeros(2, 1), torch.ones(2, 1), None, torch.full((2, 1), 3.0), torch.ones(2),
                torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.long), gen)  # fmt: skip
    a, b = both(step), penalty(cut_at_two(step))
    assert torch.equal(a.rew, b.rew) and torch.equal(a.term, b.term) and a.extras.keys() == b.extras.keys()
    assert compose(None, None) is None and compose(penalty) is penalty


def test_prediction_draws_n_samples_per_member_and_candidates_per_elite():
    mean = torch.tensor([0.0, 10.0, 20.0]).reshape(3, 1, 1).expand(3, 2, 4).clone()  # (E=3, B=2, D=4)
    mean[:, 1] += 100.0  # the second transition's means differ
    std = torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1).expand(3, 2, 4).clone()
    pred = Prediction(mean=mean, std=std, elites=torch.tensor([2, 0]))
    draws = pred.samples(20_000, torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 3, 2, 4)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.1, rtol=0)
    torch.testing.assert_close(draws.std(0), std, atol=0.05, rtol=0)
    cand = pred.candidates(5, torch.Generator().manual_seed(1))
    assert cand.next_obs.shape == (10, 2, 3) and cand.rew.shape == (10, 2)
    assert cand.member.tolist() == [2] * 5 + [0] * 5  # elites x samples, best elite first
    big = pred.candidates(20_000, torch.Generator().manual_seed(2))
    first, second = big.next_obs[:20_000], big.next_obs[20_000:]  # elite 2, then elite 0
    assert abs(float(first[:, 0].mean()) - 20.0) < 0.1 and abs(float(first[:, 0].std()) - 3.0) < 0.1
    assert abs(float(second[:, 1].mean()) - 100.0) < 0.05 and abs(float(second.std(0).mean()) - 1.0) < 0.05
    # the same generator seed, the same candidates
    again = pred.candidates(5, torch.Generator().manual_seed(1))
    assert torch.equal(again.next_obs, cand.next_obs) and torch.equal(again.rew, cand.rew)


def test_mix_keeps_which_rows_came_from_the_model():
    real = Batch(torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3), torch.zeros(3, 2), torch.zeros(3))
    model = Batch(torch.ones(5, 2), torch.ones(5, 1), torch.ones(5), torch.ones(5, 2), torch.zeros(5))
    mixed = mix(real, model)
    assert mixed.from_model is not None
    assert mixed.from_model.tolist() == [False] * 3 + [True] * 5
    assert torch.equal(mixed.from_model, mixed.rew.bool())  # the mask marks exactly the model rows
    picked = mixed.index(torch.tensor([0, 4, 7]))
    assert picked.from_model.tolist() == [False, True, True]
    assert real.from_model is None and real.index(torch.tensor([1])).from_model is None


def test_a_composed_hook_keeps_the_state_of_its_stateful_parts():
    class Counter:  # a stateful filter (MOREC's keeps statistics; a checkpoint must hold them)
        def __init__(self):
            self.calls = 0

        def __call__(self, step):
            self.calls += 1
            return step

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    counter = Counter()
    both = compose(counter, lambda step: step)
    rollout(LineWorld(), step_right, torch.zeros(2, 1), 3, beyond(100.0), both)
    assert both.state_dict() == {"0": {"calls": 3}}
    fresh = Counter()
    compose(fresh, lambda step: step).load_state_dict(both.state_dict())
    assert fresh.calls == 3


def ensembles(seeds, hidden=(16, 16)):
    from offline_mbrl.models.dynamics import DynamicsConfig, DynamicsEnsemble

    out = []
    for s in seeds:
        torch.manual_seed(s)
        cfg = DynamicsConfig(
            hidden=hidden, weight_decay=(0.0,) * (len(hidden) + 1), members=4, elites=2, seed=s
        )
        model = DynamicsEnsemble(3, 1, cfg)
        with torch.no_grad():  # each seed its own normaliser, bounds and elites, as fitted models have
            model.input_mean.normal_()
            model.input_std.uniform_(0.5, 2.0)
            model.max_logvar.uniform_(0.0, 1.0)
            model.elites.copy_(torch.randperm(4)[:2])
        out.append(model)
    return out


def test_stacked_seed_dynamics_predict_what_each_seeds_ensemble_predicts():
    from offline_mbrl.models.seed_dynamics import SeedDynamics

    models = ensembles((0, 1, 2))
    stacked = SeedDynamics.of(models)
    assert stacked is not None and stacked.net.members == 12
    obs, act = torch.randn(3, 700, 3), torch.randn(3, 700, 1)  # more rows than one chunk of the forward
    for k, pred in enumerate(stacked.predict(obs, act)):
        with torch.no_grad():
            lone = models[k].predict(obs[k], act[k])
        assert torch.allclose(pred.mean, lone.mean, atol=1e-5) and torch.allclose(
            pred.std, lone.std, atol=1e-5
        )
        assert torch.equal(pred.elites, lone.elites)
    assert SeedDynamics.of(models[:1]) is None  # one seed: the lone rollout
    assert SeedDynamics.of([models[0], ensembles((3,), hidden=(8, 8))[0]]) is None  # other architectures


def test_seed_rollouts_are_each_seeds_own_rollout_with_its_generator_and_hook():
    from offline_mbrl.learning.rollout import rollout_seeds
    from offline_mbrl.models.seed_dynamics import SeedDynamics

    models = ensembles((0, 1))
    stacked = SeedDynamics.of(models)
    assert stacked is not None

    def hook_for(k):  # a per-seed hook that also draws from the seed's generator
        def hook(step):
            noise = torch.rand(step.rew.shape, generator=step.generator)
            return with_extras(replace(step, rew=step.rew - k), noise=noise)

        return hook

    def policy(obs):  # (K, B, 3) or (B, 3) -> an action from the state alone
        return torch.tanh(obs[..., :1])

    start = torch.randn(2, 50, 3)
    gens = [torch.Generator().manual_seed(10 + k) for k in range(2)]
    together = rollout_seeds(stacked, policy, start, 4, beyond(100.0), [hook_for(0), hook_for(1)], gens)
    for k in range(2):
        alone = rollout(
            models[k], policy, start[k], 4, beyond(100.0), hook_for(k), torch.Generator().manual_seed(10 + k)
        )
        assert torch.allclose(together[k].next_obs, alone.next_obs, atol=1e-4)
        assert torch.allclose(together[k].rew, alone.rew, atol=1e-4)
        assert torch.equal(together[k].extras["noise"], alone.extras["noise"])  # the same draws, in order
    assert not torch.allclose(together[0].next_obs, together[1].next_obs)
