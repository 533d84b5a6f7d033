"""The result store: one folder per experiment config (named by its key) holding its record, its
per-epoch checkpoint while it trains, and optionally its fine-tuned model; plus the records that
ship with the package. `experiments.run_experiment` and `sweep` both go through it.

The root is a parameter (`ResultStore(root)`); `XLT_RESULTS_DIR` (else the cache's ``results/``) is
only its default. Reading is defensive: a record that is not valid JSON, or that belongs to another
config than the folder's, and a truncated or corrupt checkpoint or model file, are moved aside
(``<name>.corrupt-<time>``) with a warning naming the file, and the config simply trains again.
Writers leave no partial files: every write goes to a temporary name and is renamed, and leftover
temporaries (``*.tmp*``, ``*.part``) of a killed writer are removed under the config's lock. A
temporary name is unpredictable and created exclusively, without following a symlink
(`atomic_file`), and the lock file is opened without following one either: a symlink planted in a
config folder can never redirect a write.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

from . import settings
from .files import corrupt_name, create_temp, folder_lock

RECORD = "record.json"
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"

#: Result records that ship with the package (one JSON file per grid, {key: record}): the toy paper
#: grid, so that a reader (and CI) gets chapter 3's runs without training them.
SHIPPED_RESULTS = Path(__file__).parent / "assets" / "results"


class CorruptResultWarning(UserWarning):
    """A cached file could not be used; it was moved aside and the config runs again."""


def default_results_dir() -> Path:
    """`settings.current().results_root`: ``$XLT_RESULTS_DIR``, else ``results/`` in the cache
    (``$XLT_CACHE_DIR`` or ``~/.cache/xlt``)."""
    return settings.current().results_root


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", **open_kw):
    """A file object for writing `path` whole or not at all: it writes a temporary file beside
    `path` (``.<name>.<16 random hex digits>.tmp``, created with O_EXCL and O_NOFOLLOW, so never a
    planted file or symlink, with mode 0666 minus the umask: 0644 under the common umask 022, never
    the 0600 of `mkstemp`), which is flushed, synced and renamed over `path` when the block ends,
    and removed if it raises. ``with atomic_file(p, "wb") as f: torch.save(obj, f)`` saves a
    checkpoint this way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path.parent, f".{path.name}.", ".tmp")
    try:
        with os.fdopen(fd, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) through `atomic_file`: `path` is either absent, old, or complete."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def torch_file_is_intact(path: Path) -> bool:
    """Whether a `torch.save` file (a zip archive) is complete and its members pass their CRC checks."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def load_tensors(path: Path, what: str):
    """`torch.load(path, weights_only=True)` onto the CPU: tensors and plain types only, so that a
    planted pickle cannot run code; one that holds more is refused with an error naming `path` and
    `what` it was meant to be (e.g. "this checkpoint"). Other read errors propagate."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{path}: refused to load {what}: it holds more than tensors and plain types "
                                     f"(torch.load(weights_only=True) rejected it): {e}") from e


def move_aside(path: Path, why: str) -> Path:
    """Rename a file that cannot be used to ``<name>.corrupt-<time>``, with a warning naming it."""
    target = corrupt_name(path)
    os.replace(path, target)
    warnings.warn(f"{path}: {why}; moved aside to {target.name}, and the config runs again",
                  CorruptResultWarning, stacklevel=3)
    return target


# ----------------------------------------------------------------------------------------- shipped

def shipped_results_enabled() -> bool:
    """Shipped records are used unless XLT_SHIPPED_RESULTS=0 (then every config really trains)."""
    return settings.current().shipped_results


@functools.cache
def _shipped(folder: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for key, record in data["records"].items():
            if record.get("key") != key:
                raise ValueError(f"{path.name}: the record filed under {key} is {record.get('key')}")
            records[key] = record
    return records


def shipped_record(cfg, folder: Path | None = None) -> dict | None:
    """The shipped record of a config, or None (none shipped, or XLT_SHIPPED_RESULTS=0).

    A record is returned only if its stored config equals `cfg` (hence hashes to its key): a record
    can never stand in for another configuration.
    """
    if not shipped_results_enabled():
        return None
    record = _shipped(Path(folder or SHIPPED_RESULTS)).get(cfg.key())
    if record is None or record["config"] != cfg.to_dict():
        return None
    return record


def ship_records(records: list[dict], path: Path, description: str) -> Path:
    """Write records as a shipped-results file ({"description", "records": {key: record}}), atomically."""
    data = {"description": description, "records": {r["key"]: r for r in records}}
    write_text_atomic(Path(path), json.dumps(data, indent=None, separators=(",", ":"), sort_keys=True) + "\n")
    _shipped.cache_clear()
    return Path(path)


# ----------------------------------------------------------------------------------------- the store

class ResultStore:
    """Records (and checkpoints, models) of experiment configs under `root`, one folder per key."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_results_dir()

    @classmethod
    def of(cls, results: str | Path | ResultStore | None) -> ResultStore:
        """The store `results` names: a store as it is, a root folder, or None (the settings')."""
        return results if isinstance(results, ResultStore) else cls(results)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def folder(self, cfg) -> Path:
        return self.root / cfg.key()

    def record_path(self, cfg) -> Path:
        return self.folder(cfg) / RECORD

    def model_path(self, cfg) -> Path:
        return self.folder(cfg) / MODEL

    def local_record(self, cfg) -> dict | None:
        """The record in the config's folder, if it is intact and is this config's; else None
        (a corrupt record, or another config's, is moved aside with a warning)."""
        path = self.record_path(cfg)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            move_aside(path, f"not a readable JSON record ({type(e).__name__}: {e})")
            return None
        if not isinstance(record, dict) or not {"key", "config", "metrics"} <= set(record):
            move_aside(path, "not a result record (no key, config and metrics)")
            return None
        if record["key"] != cfg.key() or record["config"] != cfg.to_dict():
            move_aside(path, f"the record of another config (key {record['key']}, expected {cfg.key()})")
            return None
        return record

    def has_model(self, cfg) -> bool:
        """Whether the config's fine-tuned model is stored and intact (a corrupt one is moved aside)."""
        path = self.model_path(cfg)
        if not path.is_file():
            return False
        if torch_file_is_intact(path):
            return True
        move_aside(path, "a truncated or corrupt model file")
        return False

    def get(self, cfg, keep_model: bool = False) -> dict | None:
        """The config's record: from this store, else shipped with the package (not when the model
        is wanted too, since no model ships), else None."""
        record = self.local_record(cfg)
        if record is not None and (not keep_model or self.has_model(cfg)):
            return record
        if keep_model:
            return None
        return shipped_record(cfg)

    def is_cached(self, cfg) -> bool:
        return self.get(cfg) is not None

    @contextlib.contextmanager
    def locked(self, cfg) -> Iterator[Path]:
        """The config's folder, under an exclusive lock (two processes never train one config at
        once; the OS releases the lock when its holder dies, even on SIGKILL), after removing
        what a killed writer left: temporaries, and a checkpoint that is not intact."""
        folder = self.folder(cfg)
        with lock(folder):
            for stale in [*folder.glob("*.tmp*"), *folder.glob(".*.tmp*"), *folder.glob("*.part"),
                          *folder.glob(".*.part")]:
                stale.unlink(missing_ok=True)
            ckpt = folder / CHECKPOINT
            if ckpt.is_file() and not torch_file_is_intact(ckpt):
                move_aside(ckpt, "a truncated or corrupt checkpoint")
            yield folder

    def put(self, cfg, record: dict) -> dict:
        """Store a finished config's record; its resume checkpoint is no longer needed."""
        write_text_atomic(self.record_path(cfg), json.dumps(record, indent=1))
        (self.folder(cfg) / CHECKPOINT).unlink(missing_ok=True)
        return record


@contextlib.contextmanager
def lock(folder: Path):
    """An exclusive lock on a folder (``.lock`` in it, never opened through a symlink: a planted one
    is an error); no lock on systems without fcntl. The download cache's lock (`folder_lock`)."""
    with folder_lock(Path(folder)):
        yield
