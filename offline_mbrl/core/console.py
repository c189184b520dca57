"""The one rich console every command prints through.

Markup is off: printed values (method labels like `ravl[algo.eta=0.5]`, error reasons, file paths) often
hold square brackets, which rich would otherwise swallow as style tags. Piped output (logs, CI) is wide,
so tables do not fold into unreadable columns.
"""

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from rich.console import Console

from offline_mbrl.core.errors import UserError

console = Console(markup=False) if sys.stdout.isatty() else Console(markup=False, width=200)


def check_environment() -> None:
    """Settings every command relies on, checked once before a command runs."""
    import os
    from pathlib import Path

    minari = os.environ.get("MINARI_DATASETS_PATH")
    if not minari:
        return
    try:
        is_file = Path(minari).exists() and not Path(minari).is_dir()
    except PermissionError:
        raise UserError(
            f"MINARI_DATASETS_PATH={minari} cannot be read (permission denied): give this user access to "
            "it or point it at a folder of datasets it can read"
        ) from None
    if is_file:
        raise UserError(
            f"MINARI_DATASETS_PATH={minari} is a file, not a folder: point it at a folder of datasets "
            "(or unset it for Minari's default ~/.minari/datasets)"
        )


# MuJoCo warnings that say nothing to the suite's users, by their opening words. MuJoCo 4 deprecates the
# `settotalmass` compiler attribute that Gymnasium's own half_cheetah.xml uses: one warning (padded with
# blank lines) per environment made, dozens in a reproduce run. The suite never sets it itself; the
# physics is unchanged (the attribute still works).
KNOWN_MUJOCO_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


def mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler here: the known ones dropped, any other printed as MuJoCo prints it."""
    if not message.startswith(KNOWN_MUJOCO_WARNINGS):
        print(f"WARNING: {message}", file=sys.stderr)


class _OnMujocoImport(importlib.abc.MetaPathFinder):
    """Sets `mujoco_warning` as MuJoCo's handler the moment something imports mujoco, without importing
    it here: a command that never simulates does not pay for MuJoCo's import (which loads its renderers
    and runs GLFW's version probe in a subprocess)."""

    def find_spec(self, name, path, target=None):
        if name != "mujoco":
            return None
        sys.meta_path.remove(self)  # done once: the real finders give the spec
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            module.set_mju_user_warning(mujoco_warning)

        loader.exec_module = exec_module
        return spec


def quiet_known_mujoco_warnings() -> None:
    """Route MuJoCo's warnings through `mujoco_warning`, now if mujoco is imported, else when it is (every
    command, and each sweep worker, calls this first)."""
    if "mujoco" in sys.modules:
        sys.modules["mujoco"].set_mju_user_warning(mujoco_warning)
    elif not any(isinstance(f, _OnMujocoImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _OnMujocoImport())


_last_signal: list[int] = []  # the signal that raised the latest KeyboardInterrupt (SIGINT or SIGTERM)


def terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler, `kill`) takes Ctrl-C's path: state kept, one line (SIGINT comes here too)."""
    _last_signal[:] = [signum]
    raise KeyboardInterrupt


def _interrupt_again(unraisable: Any) -> None:
    """`sys.unraisablehook`: an interrupt that arrived while Python ran a callback whose exceptions it
    ignores (a weakref's, a `__del__`; seen once in `datasets make`) is not lost with a printed traceback:
    the same signal is sent again to the main thread, and its KeyboardInterrupt surfaces where the command
    is."""
    import signal
    import threading

    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # sent from another thread a moment later: raised here, inside the callback, it would be ignored again
        again = _last_signal[0] if _last_signal else signal.SIGINT
        main = threading.main_thread().ident
        assert main is not None
        threading.Timer(0.05, signal.pthread_kill, args=(main, again)).start()
        return
    sys.__unraisablehook__(unraisable)


def _command_line_exit(exc: Exception) -> None:
    """Exit for typer/click's own exceptions: `Exit` with its code; `Abort` (Ctrl-C while parsing) as an
    interrupt; a usage error (unknown command or option, a value of the wrong type) as one line, exit 2."""
    name = type(exc).__name__
    if name == "Exit" and hasattr(exc, "exit_code"):
        sys.exit(exc.exit_code)
    if name == "Abort":
        raise KeyboardInterrupt from None
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        if not exc.format_message().strip():  # a group called without a command: its help is shown
            sys.exit(exc.exit_code or 2)
        ctx = getattr(exc, "ctx", None)
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        print(f"error: {' '.join(exc.format_message().split())}{where}", file=sys.stderr)
        sys.exit(exc.exit_code if exc.exit_code else 2)


def interrupted_line(args: list[str]) -> str:
    """What an interrupted command kept and the exact command that continues from it."""
    import shlex

    again = ["offline-mbrl", *args]
    if args[:1] == ["train"] and "--resume" not in args and "--force" not in args:
        again.append("--resume")  # an unfinished run continues only when asked to
    return (
        "finished runs, checkpoints, cache entries, made datasets and a dynamics fit's last epoch are kept "
        f"(nothing half-written); continue with: {shlex.join(again)}"
    )


def run_app(app: Callable[..., object], **kwargs: object) -> None:
    """Run a command; a UserError, and a command-line usage error (an unknown option, a value of the wrong
    type), becomes `error: <one line>` on stderr and exit status 2. SIGTERM is handled like Ctrl-C, so a
    killed sweep trial is marked for a retry instead of staying "running"."""
    import signal

    previous = signal.signal(signal.SIGTERM, terminate_as_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored
        signal.signal(signal.SIGINT, terminate_as_interrupt)
    sys.unraisablehook = _interrupt_again
    try:
        try:
            check_environment()
            quiet_known_mujoco_warnings()
            code = app(standalone_mode=False, **kwargs)  # click's own errors come here, not as a box
            if code == 130:  # typer returns an interrupt (Ctrl-C, SIGTERM) in a command as 130, silently
                raise KeyboardInterrupt
            if isinstance(code, int) and code:
                sys.exit(code)
        except UserError:
            raise
        except Exception as exc:  # typer vendors click: its exceptions are matched by what they carry
            _command_line_exit(exc)
            raise
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted_line(sys.argv[1:])}", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
