"""Reading a run folder's files: damage is one line naming the file, what is wrong and the repair.

A run folder holds `config.json` (an object with the resolved `config`), `metrics.jsonl` (one JSON object
per line), `final.json` (an object with the final evaluation) and `policy.pt` (the policy's weights).
The suite writes each atomically, so damage comes from outside: a disk that filled, a copy cut short, an
edit. Every command that reads a run (train's reuse, compare, report, evaluate, diagnose) reads it
through these functions; the message names the command that repairs the run (`repair_command`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from offline_mbrl.core.errors import UserError

FINAL_KEYS = ("algorithm", "dataset", "seed", "steps", "returns", "return_mean")


def repair_command(run_dir: Path) -> str:
    """The command that trains the run again in place (from its config.json, when that is readable)."""
    try:
        raw = json.loads((run_dir / "config.json").read_text())["config"]
        args = ["offline-mbrl", "train", "--config", str(run_dir / "config.json"), "--algo", raw["algorithm"]]
        args += [
            "--dataset",
            raw["dataset"],
            "--seed",
            str(raw["seed"]),
            "--device",
            raw.get("device", "cpu"),
        ]
        args += ["--results", str(run_dir.parents[2]), "--force"]
        return "train it again with: " + shlex.join(args)
    except Exception:  # noqa: BLE001 - config.json is damaged too: the run's own command is the repair
        return f"move {run_dir} aside and run the command that made it again"


def _damaged(path: Path, why: str) -> UserError:
    return UserError(
        f"run folder {path.parent}: {path.name} is damaged ({why}); {repair_command(path.parent)}"
    )


def read_object(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object file of a run folder (config.json, final.json, family_*.json), with these keys."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(
            f"run folder {path.parent} has no {path.name}; {repair_command(path.parent)}"
        ) from None
    except OSError as exc:
        raise _damaged(path, f"cannot be read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"not valid JSON: {' '.join(str(exc).split())[:80]}") from None
    if not isinstance(raw, dict):
        raise _damaged(path, f"a JSON {type(raw).__name__}, not an object")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _damaged(path, f"no {', '.join(missing)}")
    return raw


def read_final(run_dir: Path) -> dict[str, Any]:
    return read_object(run_dir / "final.json", FINAL_KEYS)


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json's resolved config (the `config` object)."""
    raw = read_object(run_dir / "config.json", ("config",))
    config = raw["config"]
    if not isinstance(config, dict) or not all(k in config for k in ("algorithm", "dataset", "seed")):
        raise _damaged(run_dir / "config.json", "its config entry is not a run's config")
    return config


def read_metrics(run_dir: Path, finished: bool = True) -> list[dict[str, Any]]:
    """metrics.jsonl's rows (none if absent). A finished run's file must parse whole; an unfinished
    run's last line may be cut short by a kill (resuming drops it), and is left out here."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"cannot be read: {exc}") from None
    lines = text.splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError("not a metrics row")
        except ValueError:
            if not finished and n == len(lines) and not text.endswith("\n"):
                break  # a cut-short last line of an unfinished run
            raise _damaged(path, f"line {n} of {len(lines)} is not a metrics row") from None
        rows.append(row)
    return rows


def check_finished_run(run_dir: Path) -> None:
    """A finished run's files all readable (final.json, config.json, policy.pt): checked before a command
    that uses the run does any work of its own (a dynamics fit, an evaluation)."""
    read_final(run_dir)
    read_config(run_dir)
    load_weights(run_dir / "policy.pt")


def load_checkpoint(path: Path, device: Any = "cpu") -> dict[str, Any]:
    """A resumable checkpoint (checkpoint.pt, phase-*.pt): a damaged one is one line saying to start over."""
    import torch

    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file raises one of several types
        raise UserError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}): nothing can be resumed from it; "
            "start the run over with --force (instead of --resume), which replaces it"
        ) from None


def load_weights(path: Path, device: Any = "cpu") -> Any:
    """A torch file of a run folder (policy.pt), weights only."""
    import torch

    if not path.is_file():
        raise UserError(f"run folder {path.parent} has no {path.name}; {repair_command(path.parent)}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises one of several types for a damaged file
        raise _damaged(path, f"torch cannot load it: {type(exc).__name__}") from None
