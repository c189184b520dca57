"""One thread set-up for every command that computes: each has `--threads` and calls `configure_threads`
with it before its work (the sweep sets its workers' threads itself, per worker). Every command is either
in COMPUTES or in READS, so a new command has to take a side."""

from __future__ import annotations

import ast
import inspect
import textwrap

import typer

from offline_mbrl.cli.main import app

COMPUTES = {
    "train", "dynamics fit", "datasets make", "datasets train-behaviour", "diagnose", "evaluate", "compare",
    "reproduce", "experiment edge-of-reach", "sweep", "claims",
}  # fmt: skip
READS = {
    "datasets list", "datasets info", "datasets families", "datasets import-d4rl", "config", "cache ls",
    "cache clear", "report", "sweep show", "sweep report", "sweep export", "sweep repair",
}  # fmt: skip
OWN_THREADS = {"sweep"}  # run_sweep gives each worker process its share of the cores


def _commands() -> dict:
    """Every leaf command by its full name (typer vendors click: groups are told by their `commands`)."""
    found: dict = {}

    def walk(group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                if any(p.name != "help" for p in cmd.params):  # a group that runs itself: `sweep --algo`
                    found[f"{prefix}{name}"] = cmd
                walk(cmd, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = cmd

    walk(typer.main.get_command(app), "")
    return found


def test_every_command_is_classified():
    assert set(_commands()) == COMPUTES | READS and not COMPUTES & READS


def test_every_command_that_computes_takes_threads_and_sets_them_first():
    for name, cmd in _commands().items():
        if name not in COMPUTES:
            continue
        assert "threads" in {p.name for p in cmd.params}, f"{name} has no --threads"
        if name in OWN_THREADS:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cmd.callback))).body[0].body
        calls = [n.value for n in body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
        assert any(
            getattr(c.func, "id", "") == "configure_threads" and [a.id for a in c.args] == ["threads"]
            for c in calls
        ), f"{name} does not call configure_threads(threads) in its body"
