"""Files written whole or not at all, locked folders, hashes: the file primitives every cache of
the package (downloads, the toy corpus, the result store) is built on. Nothing here imports from the
rest of the package."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def corrupt_name(path: Path) -> Path:
    """Where a file or folder that must not be used is moved aside: ``<name>.corrupt-<time>-<pid>``,
    beside it (the one naming rule of the download cache, the result store and the toy corpus)."""
    return path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")


@contextlib.contextmanager
def folder_lock(folder: Path):
    """An exclusive lock on a cache folder (``.lock`` in it, opened without following a symlink),
    for threads and processes alike; released when the block ends or the holder dies. No lock on
    systems without fcntl."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not on Windows: no lock
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_temp(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file in `folder`, opened for writing: (fd, path). Its name is ``prefix``, 16 random hex
    digits, ``suffix``; it is created with O_EXCL (and O_NOFOLLOW), so it is never a file or a
    symlink planted beforehand; its mode is 0666 minus the umask (0644 under the usual 022), as
    `open` gives, not the 0600 of `tempfile.mkstemp`."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = Path(folder) / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {folder}")


def write_atomic(path: Path, text: str) -> None:
    """Write text so that `path` is either absent, old, or complete: never partial."""
    fd, tmp = create_temp(path.parent, f".{path.name}.", ".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
