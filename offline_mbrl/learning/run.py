"""A training run: its config, output folder, metric log, evaluation cadence, checkpoints and resume.

An algorithm writes `for step in run.loop(state, policy): ...` and calls `run.log(metrics)` with tensors;
the run does the rest. Metrics are summed on the device and read back once per `log_every` steps (one
host sync), which is also where divergence is detected: a non-finite or exploding loss stops the run
with a one-line message, and the last checkpoint (always written right after a healthy flush) is kept.

An algorithm with several stages runs each as a named phase (`run.loop(state, phase="behaviour",
steps=N)`, `run.once("rollouts", build)`): rows carry the phase, checkpoints say which phase they belong
to, and each finished stage's end state is kept in `phase-<name>.pt` until the run finishes, so a resumed
run skips finished stages and continues inside the one it was in.

Files (one row per run, read by sweeps and reports): `config.json` (resolved config, dataset fingerprint,
the key of every cached artefact used, code version), `metrics.jsonl` (the training curve), `final.json`
(every episode return of the final evaluation, normalised score, steps, wall time, device),
`checkpoint.pt` and `phase-*.pt` while it is unfinished.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from offline_mbrl.config import TrainConfig, config_hash, to_dict
from offline_mbrl.core.cache import atomic_path, write_json_atomic
from offline_mbrl.core.errors import EnvironmentFault, UserError
from offline_mbrl.core.paths import code_version, stack_versions
from offline_mbrl.core.progress import stage
from offline_mbrl.core.run_files import load_checkpoint
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.evaluation import EvalResult, Policy, evaluate, evaluate_many

EXPLODING = 1e8  # |loss| or |Q| above this is divergence, not learning
MAIN = "train"  # the stage that trains the output policy for cfg.steps: its rows carry no `phase`
T = TypeVar("T")


class DivergedError(UserError):
    """Training produced non-finite or exploding values."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_seed(seed: int) -> int:
    """Environment seeds of a run's evaluations: fixed per run seed, so evaluations are comparable."""
    return 10_000 + seed * 100


def evaluate_together(runs: Sequence[Run], policies: Sequence[Callable[[], Policy]]) -> None:
    """The evaluations of K runs in lockstep as one: the first run to evaluate at a step evaluates every
    run's current policy (`policies[k]()`) in one vectorised environment (`evaluate_many`, each run's
    environments seeded as its lone evaluation seeds them); the others take their results."""
    ready: dict[int, tuple[int, EvalResult]] = {}

    def evaluator(k: int) -> Callable[[Policy, int], EvalResult]:
        def run_k(policy: Policy, episodes: int) -> EvalResult:
            if ready.get(k, (None,))[0] != episodes:
                seeds = [eval_seed(r.cfg.seed) for r in runs]
                found = evaluate_many([p() for p in policies], runs[0].dataset.spec, episodes, seeds)
                ready.update({i: (episodes, result) for i, result in enumerate(found)})
            return ready.pop(k)[1]

        return run_k

    for k, run in enumerate(runs):
        run.evaluator = evaluator(k)


def run_dir_for(cfg: TrainConfig, results_root: Path) -> Path:
    dataset = cfg.dataset.replace("/", "_")
    return results_root / cfg.algorithm / dataset / f"seed{cfg.seed}-{config_hash(cfg)[:10]}"


LAST_EVALUATIONS = 10  # evaluations averaged by `last10_score`, as the references' last_10_performance


class Run:
    def __init__(
        self,
        cfg: TrainConfig,
        dataset: OfflineDataset,
        out_dir: Path,
        artefacts: dict[str, str] | None = None,
        resume: bool = False,
        progress: bool = True,
        on_eval: Callable[[int, EvalResult], None] | None = None,
    ):
        self.cfg, self.dataset, self.dir = cfg, dataset, out_dir
        self.on_eval = on_eval  # e.g. a sweep's pruner: may raise to stop the run
        self.device = torch.device(cfg.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.progress_enabled = progress
        self.title: str | None = None  # the progress label, when not "ALGO DATASET seed S" (batched seeds)
        # `(policy, episodes) -> result` in place of a lone evaluation (K seeds: `evaluate_together`)
        self.evaluator: Callable[[Policy, int], EvalResult] | None = None
        self.artefacts = dict(artefacts or {})  # kind -> key of every cached artefact the run used
        self._ckpt: dict[str, Any] | None = None
        self._entered = False  # a fresh run's first stage clears old rows; later stages append
        self._lines_done = 0  # metrics.jsonl rows written by finished stages
        self._sums: dict[str, torch.Tensor] = {}
        self._host_sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._resume = resume
        self._started = time.time()
        self._elapsed_before = 0.0
        self.last_eval: EvalResult | None = None
        self.gradient_steps: int | None = None  # the output policy's loop length, once it has run
        self._stop = False  # an algorithm's own stopping rule ended the current loop (`stop_early`)
        if cfg.log_every <= 0 or cfg.checkpoint_every % cfg.log_every or cfg.eval_every % cfg.log_every:
            raise UserError("checkpoint_every and eval_every must be multiples of log_every (> 0)")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentFault(
                f"cannot create the run folder {out_dir} ({exc.strerror}): choose a writable --results"
            ) from None
        if not resume:  # a restart: nothing of an earlier attempt may be resumed or reused
            stale = ["checkpoint.pt", "final.json", "policy.pt", "phase-*.pt", "family_*.json"]
            for path in [p for pattern in stale for p in out_dir.glob(pattern)]:
                path.unlink()
        self._write_config()

    def _write_config(self) -> None:
        write_json_atomic(
            self.dir / "config.json",
            {
                "config": to_dict(self.cfg),
                "dataset_id": self.dataset.dataset_id,
                "dataset_fingerprint": dataclasses.asdict(self.dataset.fingerprint),
                "dynamics_key": self.artefacts.get("dynamics"),
                "artefacts": self.artefacts,
                "code_version": code_version(),
                "versions": stack_versions(),
            },
        )

    def use_artefact(self, kind: str, key: str) -> None:
        """Record in config.json that the run used the cached artefact `(kind, key)`."""
        if self.artefacts.get(kind) != key:
            self.artefacts[kind] = key
            self._write_config()

    # --- metrics -------------------------------------------------------------------------------------
    def log(self, metrics: dict[str, torch.Tensor | float]) -> None:
        """Accumulate metrics on the device (no host sync); each key is averaged over its own calls."""
        for k, v in metrics.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().float()
                self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
            else:  # host-side numbers (a learning rate) stay on the host
                self._host_sums[k] = self._host_sums.get(k, 0.0) + float(v)
            self._counts[k] = self._counts.get(k, 0) + 1

    def _flush(
        self, step: int, extra: dict[str, Any] | None = None, where: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        keys = list(self._sums)
        values = torch.stack([self._sums[k] for k in keys]).tolist() if keys else []  # the one host sync
        sums = {**dict(zip(keys, values, strict=True)), **self._host_sums}
        row = {k: v / self._counts[k] for k, v in sums.items()}
        bad = {k: v for k, v in row.items() if not math.isfinite(v) or abs(v) > EXPLODING}
        if bad:
            k, v = next(iter(bad.items()))
            ckpt = self.dir / "checkpoint.pt"
            kept = f"; last good checkpoint kept at {ckpt}" if ckpt.exists() else ""
            raise DivergedError(f"training diverged near step {step}: {k} = {v:.4g}{kept}")
        row = {"step": step, **(where or {}), **row, **(extra or {}), "wall_time": round(self.wall_time, 2)}
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self._sums, self._host_sums, self._counts = {}, {}, {}
        return row

    @property
    def wall_time(self) -> float:
        return self._elapsed_before + time.time() - self._started

    # --- checkpoints ---------------------------------------------------------------------------------
    def _payload(self, step: int, state: dict[str, Any], phase: str) -> dict[str, Any]:
        metrics = self.dir / "metrics.jsonl"
        return {
            "step": step,
            "phase": phase,
            "state": {k: v.state_dict() for k, v in state.items()},  # saved at once: no copy needed
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "metrics_lines": sum(1 for _ in open(metrics)) if metrics.exists() else 0,
            "wall_time": self.wall_time,
        }

    def _save(self, path: Path, payload: dict[str, Any]) -> None:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    def _load(self, path: Path) -> dict[str, Any]:
        return load_checkpoint(path, self.device)

    def _restore(self, payload: dict[str, Any], state: dict[str, Any], rows: bool = True) -> None:
        """Load a checkpoint's state and random generators; `rows`: drop the metric rows logged after it
        (off for a finished stage's end state, whose later rows belong to the stages after it)."""
        for k, v in state.items():
            v.load_state_dict(payload["state"][k])
        self.generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        np.random.set_state(payload["numpy_rng"])
        random.setstate(payload["python_rng"])
        self._elapsed_before = payload["wall_time"]
        self._started = time.time()
        if rows:
            self._keep_metrics(payload["metrics_lines"])

    def _keep_metrics(self, lines: int) -> None:
        """Drop rows logged after a checkpoint (they will be logged again); 0 lines: no file."""
        metrics = self.dir / "metrics.jsonl"
        if lines == 0:
            metrics.unlink(missing_ok=True)
        elif metrics.exists():
            kept = metrics.read_text().splitlines(keepends=True)[:lines]
            with atomic_path(metrics) as tmp:
                tmp.write_text("".join(kept))

    def _phase_file(self, phase: str) -> Path:
        return self.dir / f"phase-{phase}.pt"

    def _checkpoint(self) -> dict[str, Any] | None:
        """The resumable checkpoint, read once (None if the run was killed before its first one)."""
        if self._ckpt is None and (self.dir / "checkpoint.pt").exists():
            self._ckpt = self._load(self.dir / "checkpoint.pt")
        return self._ckpt

    def _finished(self, phase: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """On resume, a stage that finished before: its end state restored and its payload returned."""
        if not (self._resume and self._phase_file(phase).exists()):
            return None
        payload = self._load(self._phase_file(phase))
        self._restore(payload, state, rows=False)
        self._lines_done = payload["metrics_lines"]
        return payload

    def _enter(self, phase: str, state: dict[str, Any]) -> int | None:
        """Where `phase` starts: None if it finished before (its end state restored), else its step."""
        if not self._resume:
            if not self._entered:
                (self.dir / "metrics.jsonl").unlink(missing_ok=True)
            self._entered = True
            return 0
        if self._finished(phase, state) is not None:
            return None
        ckpt = self._checkpoint()
        if ckpt is not None and ckpt.get("phase", MAIN) == phase:
            self._restore(ckpt, state)
            return int(ckpt["step"])
        self._keep_metrics(self._lines_done)  # this phase had no checkpoint: it starts over
        return 0

    # --- the loop ------------------------------------------------------------------------------------
    def evaluate(self, policy: Policy, episodes: int) -> EvalResult:
        if self.evaluator is not None:
            return self.evaluator(policy, episodes)
        return evaluate(policy, self.dataset.spec, episodes, seed=eval_seed(self.cfg.seed))

    def loop(
        self,
        state: dict[str, Any],
        policy: Callable[[], Policy] | None = None,
        phase: str | None = None,
        steps: int | None = None,
    ) -> Iterator[int]:
        """Yield the step indices still to run; log, evaluate and checkpoint on the configured cadence.

        One loop trains the output policy for `cfg.steps`. An algorithm with several stages calls it once
        per stage with the stage's name and length (`phase="behaviour", steps=...`): the stage's rows
        carry `phase`, its checkpoints say where they belong, and at its end its state is kept
        (`phase-<name>.pt`), so a resumed run skips finished stages and continues in the one it was in.
        Periodic evaluations need `policy`.
        """
        cfg = self.cfg
        name = phase or MAIN
        total = cfg.steps if steps is None else steps
        if name == MAIN:
            self.gradient_steps = total
        start = self._enter(name, state)
        if start is None:
            return
        title = self.title or f"{cfg.algorithm} {cfg.dataset} seed {cfg.seed}"
        label = title + (f" [{phase}]" if phase else "")
        extra_cols = {"phase": phase} if phase else {}
        with stage(name, total, label, start, enabled=self.progress_enabled) as progress:
            for step in range(start, total):
                yield step
                done = step + 1
                stopping, self._stop = self._stop, False
                if done % cfg.log_every == 0 or done == total or stopping:
                    extra: dict[str, Any] | None = None
                    periodic = done % cfg.eval_every == 0 and done != total and not stopping
                    if policy is not None and periodic:
                        self.last_eval = self.evaluate(policy(), cfg.eval_episodes)
                        extra = {
                            "eval/score": self.last_eval.score,
                            "eval/return": float(self.last_eval.returns.mean()),
                        }
                    self._flush(done, extra, extra_cols)
                    if done % cfg.checkpoint_every == 0 and done != total:
                        self._save(self.dir / "checkpoint.pt", self._payload(done, state, name))
                    if extra is not None and self.on_eval is not None:  # after the save: it may stop the run
                        assert self.last_eval is not None
                        self.on_eval(done, self.last_eval)
                    progress.advance(done, f"score {self.last_eval.score:.1f}" if self.last_eval else "")
                if stopping:
                    total = done  # the stage ends here: its phase file and final.json say so
                    break
        if name == MAIN:
            self.gradient_steps = total
        if phase is not None:
            payload = self._payload(total, state, name)
            self._save(self._phase_file(name), payload)
            self._lines_done = payload["metrics_lines"]

    def stop_early(self) -> None:
        """End the current loop after this step (an algorithm's own stopping rule, e.g. MBRCSL's holdout
        early stopping): the step's metrics are flushed and the loop ends; final.json records the steps."""
        self._stop = True

    def once(self, phase: str, build: Callable[[], T]) -> T:
        """A stage without gradient steps (collect rollouts): `build()` runs once and its result is kept
        (`phase-<name>.pt`), so a resumed run reuses it. Metrics it logs become one row with `phase`."""
        done = self._finished(phase, {})
        if done is not None:
            return done["result"]
        self._enter(phase, {})
        result = build()
        if self._counts:
            self._flush(0, None, {"phase": phase})
        payload = {**self._payload(0, {}, phase), "result": result}
        self._save(self._phase_file(phase), payload)
        self._lines_done = payload["metrics_lines"]
        return result

    def finish(self, policy: Policy, policy_state: dict | None = None) -> dict:
        """Final evaluation; writes final.json (and the policy's weights, for later family evaluation)."""
        if policy_state is not None:
            with atomic_path(self.dir / "policy.pt") as tmp:
                torch.save(policy_state, tmp)
        result = self.evaluate(policy, self.cfg.final_eval_episodes)
        final = {
            "algorithm": self.cfg.algorithm,
            "dataset": self.cfg.dataset,
            "dataset_id": self.dataset.dataset_id,
            "dataset_fingerprint": self.dataset.fingerprint.key,
            "seed": self.cfg.seed,
            "dynamics_seed": self.cfg.dynamics_seed,
            "steps": self.cfg.steps,
            # what the output policy's loop ran: cfg.steps, or fewer where an algorithm's own stopping
            # rule sets the loop's length (MBRCSL: epochs of its kept rollouts)
            "gradient_steps": self.cfg.steps if self.gradient_steps is None else self.gradient_steps,
            "returns": result.returns.tolist(),
            "lengths": result.lengths.tolist(),
            "normalized_scores": None if result.normalized is None else result.normalized.tolist(),
            "normalized_score": None if result.normalized is None else float(result.normalized.mean()),
            "return_mean": float(result.returns.mean()),
            # the references' reported statistic (OfflineRL-Kit's and MOREC's `last_10_performance`): the
            # mean score of the last 10 evaluations, this final one included (with --set eval_every=1000,
            # the reference's cadence, the same statistic)
            **self._last_scores(result.score),
            "score_note": self.dataset.spec.ref_source,
            "wall_time": round(self.wall_time, 2),
            "device": _device_name(self.device),
        }
        write_json_atomic(self.dir / "final.json", final)
        (self.dir / "checkpoint.pt").unlink(missing_ok=True)
        for phase_file in self.dir.glob("phase-*.pt"):
            phase_file.unlink()
        return final

    def _last_scores(self, final_score: float, n: int = LAST_EVALUATIONS) -> dict[str, Any]:
        """`last10_score`: the mean of the last `n` evaluation scores, the final one counted last, and how
        many there were (fewer than `n` in a run with fewer periodic evaluations)."""
        scores: list[float] = []
        path = self.dir / "metrics.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a half-written last line of an interrupted run
                    continue
                if isinstance(row, dict) and isinstance(row.get("eval/score"), int | float):
                    scores.append(float(row["eval/score"]))
        scores = [*scores[-(n - 1) :], final_score] if n > 1 else [final_score]
        return {"last10_score": float(np.mean(scores)), "last10_evaluations": len(scores)}


class Checkpointable(Protocol):
    """What a run's checkpoint holds of a component (`run.loop(state)`): a module, an optimiser, a
    `Parts`, SAC's `LearnerState`, a hook with state."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Parts:
    """Named parts as one checkpointed component: modules and optimisers (their state dicts), random
    generators (their states) and any other `Checkpointable`."""

    def __init__(self, **parts: Checkpointable | torch.Generator):
        self.parts = parts

    def state_dict(self) -> dict[str, Any]:
        return {
            name: part.get_state() if isinstance(part, torch.Generator) else part.state_dict()
            for name, part in self.parts.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            if isinstance(part, torch.Generator):
                part.set_state(state[name])
            else:
                part.load_state_dict(state[name])


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
