"""The artefact store: every derived artefact, keyed by content; and atomic publishing of files.

Artefacts are keyed by the content that determines them (design principle 4): the dataset fingerprint,
the artefact's own config with its seed, a format version; never downstream (algorithm) settings, so a
50-trial sweep fits each of them once. One store serves every kind (`KINDS`): an entry is the folder
`cache_root()/<kind>/<key>/` holding the builder's files and `manifest.json` (kind, key, what it was made
from, a one-line summary, and each file's size, so a truncated or missing file shows as damaged).
`get_or_build` builds a missing entry under an exclusive per-key lock (a second process waits, then
loads) and publishes it with one atomic rename; `list_artefacts` and `clear_artefacts` serve
`offline-mbrl cache ls` and `cache clear`.

Everything is written to a temporary sibling path first and published with an atomic `os.replace`, so a
killed process never leaves a partial file where a reader would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from offline_mbrl.core.errors import EnvironmentFault, UserError

T = TypeVar("T")

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

# Kinds of artefact and what each holds. A new kind is one line here.
KINDS: dict[str, str] = {
    "dynamics": "a fitted dynamics ensemble (model.pt, report.json)",
    "dynamics_reward": "MOREC's learned dynamics reward",
    "behaviour_policy": "a behaviour policy cloned from a dataset (MBRCSL)",
    "rollouts": "filtered model rollouts (MBRCSL)",
}
MANIFEST = "manifest.json"


def cache_root() -> Path:
    """The artefact store: `$OFFLINE_MBRL_CACHE`, else `~/.cache/offline-mbrl`."""
    root = os.environ.get("OFFLINE_MBRL_CACHE") or os.path.join(Path.home(), ".cache", "offline-mbrl")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFault(
            f"the artefact cache {path} is not a usable folder ({exc.strerror}); "
            "set OFFLINE_MBRL_CACHE to a writable folder"
        ) from None
    return path


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-serialisable object, independent of dict ordering."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:length]


def hash_files(paths: list[Path]) -> str:
    """Content hash of files (names relative order as given, then bytes), streamed in 4 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success move it onto `final` atomically.

    Works for a file or a directory written at the yielded path. On an exception nothing is published
    and the temporary is removed.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_fault(final, exc) from None
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if final.is_dir() and tmp.is_dir():
            replace_dir(tmp, final)
        else:
            os.replace(tmp, final)
    except (OSError, RuntimeError) as exc:
        if not _is_write_failure(exc):
            raise
        raise write_fault(final, exc) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def _is_write_failure(exc: BaseException) -> bool:
    """A failure of the disk (full, read-only, no permission), not of the code that writes: an OSError of
    those kinds, or torch's zip writer failing under it (it raises RuntimeError, not OSError)."""
    if isinstance(exc, OSError):
        return exc.errno in _WRITE_ERRNOS
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text)


def write_fault(final: Path, exc: BaseException) -> EnvironmentFault:
    """One line for a write that failed (a full disk, no permission): the file, the reason, the free space."""
    try:
        free = (
            f"{shutil.disk_usage(final.parent if final.parent.exists() else '/').free / 2**20:.1f} MiB free"
        )
    except OSError:
        free = "free space unknown"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed"
    return EnvironmentFault(
        f"cannot write {final} ({reason}; {free} there): nothing was written in its place; free space, "
        "fix the folder's permissions or choose another folder"
    )


def replace_dir(new: Path, final: Path) -> None:
    """Put directory `new` at `final`, replacing what is there with two renames (never a partial mix)."""
    trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        os.replace(final, trash)
    os.replace(new, final)
    shutil.rmtree(trash, ignore_errors=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def temp_dir_beside(path: Path) -> Path:
    """A fresh hidden directory on the same filesystem as `path` (so a later rename is atomic); a folder
    that cannot be written (read-only, full, no permission) is one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=path))
    except OSError as exc:
        if _is_write_failure(exc):
            raise write_fault(path / ".staging", exc) from None
        raise


# ---- the artefact store -----------------------------------------------------------------------------


def _kind_dir(kind: str, create: bool = True) -> Path:
    if kind not in KINDS:
        raise UserError(f"unknown artefact kind '{kind}'; kinds: {', '.join(KINDS)}")
    path = cache_root() / kind
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def artefact_path(kind: str, key: str) -> Path:
    """Where the entry `(kind, key)` lives once published (it may not exist)."""
    return _kind_dir(kind) / key


def get_or_build(
    kind: str, key: str, build: Callable[[Path], dict[str, Any]], verbose: bool = True
) -> tuple[Path, bool]:
    """The published entry folder of `(kind, key)`, and whether this call built it.

    On a miss, `build(folder)` writes the artefact's files into a fresh private folder and returns the
    manifest's description (`dataset_id`, `dataset_name`, `summary`, anything JSON); the folder is
    then published atomically. Concurrent callers of one key build it once: the others wait on the lock.
    """
    entry = artefact_path(kind, key)
    if entry.exists():
        return entry, False
    waiting = f"waiting for another process building {kind} {key} ..." if verbose else None
    with _writing(entry), key_lock(entry.parent / f".{key}.lock", waiting):
        if entry.exists():  # another process published it while we waited
            return entry, False
        with atomic_path(entry) as tmp:
            tmp.mkdir()
            info = build(tmp)
            files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
            manifest = {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **info,
                "kind": kind,
                "key": key,
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return entry, True


@contextlib.contextmanager
def _writing(entry: Path) -> Iterator[None]:
    """A read-only or full cache is one line; atomic_path has already removed the partial entry."""
    try:
        yield
    except OSError as exc:
        raise EnvironmentFault(
            f"cannot write {entry.parent.name} artefact {entry.name} in {entry.parent.parent} "
            f"({exc.strerror or exc}); nothing was published: free space or set OFFLINE_MBRL_CACHE"
        ) from None


@contextlib.contextmanager
def key_lock(lock_file: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive `fcntl` lock on `lock_file`, released by the kernel if the holder dies (POSIX;
    elsewhere the store's atomic publish alone still leaves one valid entry, at the cost of a duplicate
    build). `waiting` is printed if another process holds it. The sweep's claim and run locks use it too.

    The lock file stays: deleting it would let a third process lock a new inode while the first builds.
    """
    if fcntl is None:  # pragma: no cover - non-POSIX
        yield
        return
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(entry: Path) -> tuple[dict[str, Any], bool] | None:
    """An entry's manifest and whether the entry is damaged (manifest unreadable, or a file missing or
    of another size than when it was published); None for a folder the store did not publish."""
    if not (entry / MANIFEST).exists():
        if not (entry / "report.json").is_file():
            return None
        # a dynamics entry published before the store wrote manifests: its report describes it
        try:
            report = json.loads((entry / "report.json").read_text())
            summary = f"{report['epochs']} epochs, elite MSE {report['elite_mse']:.5f}"
        except (OSError, ValueError, KeyError, TypeError):
            return {}, True
        return {**report, "summary": summary}, not (entry / "model.pt").is_file()
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        damaged = any(
            not (entry / name).is_file() or (entry / name).stat().st_size != size
            for name, size in files.items()
        )
        return manifest, damaged
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, True


def entry_damaged(entry: Path) -> bool:
    """Whether a published entry's manifest is unreadable or one of its files is missing or resized."""
    read = _read_manifest(entry)
    return read is None or read[1]


def load_or_build(
    kind: str,
    key: str,
    build: Callable[[Path], dict[str, Any]],
    load: Callable[[Path], T],
    again: str,
    verbose: bool = True,
) -> T:
    """`get_or_build`, then `load(entry)`. An entry found damaged (a file missing or resized, or `load`
    failing on it) is removed and built once more, with one line on stderr ("...; removing it and
    `again`"); damaged again, it is a one-line UserError. Every cached kind loads through here."""
    for attempt in range(2):
        entry, _ = get_or_build(kind, key, build, verbose=verbose)
        try:
            if entry_damaged(entry):
                raise UserError(f"{kind} cache entry {entry} is damaged (a file is missing or truncated)")
            return load(entry)
        except Exception as exc:  # a truncated or foreign file raises one of several types
            if isinstance(exc, EnvironmentFault):
                raise
            problem = (
                str(exc)
                if isinstance(exc, UserError)
                else (f"{kind} cache entry {entry} is damaged ({type(exc).__name__}: {exc})")
            )
            if attempt:
                raise UserError(problem) from None
            print(f"{problem}; removing it and {again}", file=sys.stderr)
            discard_entry(kind, key)
    raise AssertionError("unreachable")


def discard_entry(kind: str, key: str) -> None:
    """Remove one entry the store published (a damaged one, before it is built again)."""
    entry = artefact_path(kind, key)
    if _read_manifest(entry) is None:  # not the store's: never removed
        return
    trash = entry.parent / f".{entry.name}.removed-{uuid.uuid4().hex[:8]}"
    try:
        entry.rename(trash)  # readers see the whole entry or none of it
    except OSError as exc:
        raise UserError(f"cannot remove {entry} ({exc.strerror})") from None
    shutil.rmtree(trash, ignore_errors=True)


def list_artefacts(kind: str | None = None) -> list[dict[str, Any]]:
    """One row per entry, every kind (or one): kind, key, dataset_id, dataset_name, summary, size_mb,
    created, damaged, and the manifest itself."""
    rows = []
    for k in KINDS if kind is None else [kind]:
        folder = _kind_dir(k, create=False)
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not entry.is_dir() or entry.name.startswith("."):  # locks and in-flight publishes
                continue
            read = _read_manifest(entry)
            if read is None:  # not published by the store: never listed, never removed
                continue
            manifest, damaged = read
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            rows.append(
                {
                    "kind": k,
                    "key": entry.name,
                    "dataset_id": manifest.get("dataset_id"),
                    "dataset_name": manifest.get("dataset_name"),
                    "summary": manifest.get("summary", ""),
                    "size_mb": size / 2**20,
                    "created": manifest.get("created"),
                    "damaged": damaged,
                    "manifest": manifest,
                }
            )
    return rows


def clear_artefacts(kind: str | None = None, dataset: str | None = None) -> int:
    """Remove every entry (of one kind, or of one dataset: id or short name; damaged entries always
    go); return how many. Only entry folders the store published (with a manifest, or a round-1
    dynamics report) are touched."""
    removed = 0
    for row in list_artefacts(kind):
        if dataset is None or row["damaged"] or dataset in (row["dataset_id"], row["dataset_name"]):
            entry = artefact_path(row["kind"], row["key"])
            trash = entry.parent / f".{entry.name}.removed-{uuid.uuid4().hex[:8]}"
            try:
                entry.rename(trash)  # readers see the whole entry or none of it
            except OSError as exc:
                raise UserError(
                    f"cannot remove {entry} ({exc.strerror}); {removed} removed before it"
                ) from None
            shutil.rmtree(trash, ignore_errors=True)
            removed += 1
    return removed
