"""Where the suite keeps derived artefacts, and how it publishes files without leaving half-written ones.

Artefacts are keyed by the content that determines them (design principle 4). Everything is written
to a temporary sibling path first and published with an atomic `os.replace`, so a killed process never
leaves a partial file where a reader would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """The artefact store: `$OFFLINE_MBRL_CACHE`, else `~/.cache/offline-mbrl`."""
    root = os.environ.get("OFFLINE_MBRL_CACHE") or os.path.join(Path.home(), ".cache", "offline-mbrl")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
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
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if final.is_dir() and tmp.is_dir():
            replace_dir(tmp, final)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


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
    """A fresh hidden directory on the same filesystem as `path` (so a later rename is atomic)."""
    path.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=path))
