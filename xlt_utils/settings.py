"""The package's settings: read from the environment here, and nowhere else, into one value.

==========================  ==================  ===================================================
variable                    field               meaning (default)
==========================  ==================  ===================================================
``XLT_CACHE_DIR``           ``cache_dir``       downloads, the toy corpus, fine-tuned models
                                                (``~/.cache/xlt``)
``XLT_RESULTS_DIR``         ``results_dir``     the result store (``<cache_dir>/results``)
``XLT_DATA_DIR``            ``data_dir``        local copies of the data files, used before any
                                                download (none)
``XLT_PRECISION``           ``precision``       what the precision policy answers, as if the
                                                machine were of that kind: bf16, fp16, fp32 (auto)
``XLT_PROGRESS``            ``progress``        progress bars; ``0`` turns them off (on)
``XLT_SHIPPED_RESULTS``     ``shipped_results`` ``0``: ignore the records shipped with the package,
                                                so that every config really trains (use them)
``XLT_OFFLINE``,            ``offline``         no download is tried; the value names the variable
``HF_HUB_OFFLINE``                              that said so (online)
``HF_DATASETS_OFFLINE``     ``datasets_offline`` the datasets library stays offline (online)
==========================  ==================  ===================================================

`current()` reads them once, the first time it is asked, and keeps the value. A program or a
chapter that wants other settings makes them as a value and installs it: ::

    import xlt_utils as xlt
    xlt.settings.use(xlt.settings.current().replace(results_dir="my-results"))

(the Colab helper `colab.use_google_drive` returns such a value; `setup_chapter(settings=...)`
installs it and says so). The functions that read or write results also take the store or its root
as an argument, which wins over the settings. `reload()` reads the environment again (the tests,
after they change it).

The worker environment of a Ray grid is also decided here (`worker_environment`,
`credentials_withheld`): the settings travel to the workers, credentials never do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The precisions a run can use (`precision.resolve_precision`), and what XLT_PRECISION may say.
PRECISIONS = ("bf16", "fp16", "fp32")
DEFAULT_CACHE_DIR = "~/.cache/xlt"
#: The variables that turn downloads off, in the order they are reported.
OFFLINE_VARS = ("XLT_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """An environment variable of the package holds a value it cannot use."""


def _path(value: str | os.PathLike | None) -> Path | None:
    return Path(value).expanduser() if value not in (None, "") else None


def _precision(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in PRECISIONS:
        raise SettingsError(f"XLT_PRECISION={value!r} is not a precision; valid values: auto, "
                            f"{', '.join(PRECISIONS)}")
    return value


def _offline(environ: Mapping[str, str], names) -> str | None:
    for var in names:
        value = environ.get(var, "")
        if value.strip().lower() in _TRUE:
            return f"{var}={value}"
    return None


@dataclass(frozen=True)
class Settings:
    """Where the package keeps its files and how it behaves; see the module's table."""

    cache_dir: Path = Path(DEFAULT_CACHE_DIR).expanduser()
    results_dir: Path | None = None  # None: <cache_dir>/results
    data_dir: Path | None = None
    precision: str | None = None  # None: the hardware decides ("auto")
    progress: bool = True
    shipped_results: bool = True
    offline: str | None = None  # "XLT_OFFLINE=1" (the variable that said so), or None: online
    datasets_offline: str | None = None  # "HF_DATASETS_OFFLINE=1", or None

    def __post_init__(self):
        object.__setattr__(self, "cache_dir", _path(self.cache_dir) or Path(DEFAULT_CACHE_DIR).expanduser())
        object.__setattr__(self, "results_dir", _path(self.results_dir))
        object.__setattr__(self, "data_dir", _path(self.data_dir))
        object.__setattr__(self, "precision", _precision(self.precision))

    @property
    def results_root(self) -> Path:
        """The result store's folder: `results_dir`, else ``results/`` in the cache."""
        return self.results_dir or self.cache_dir / "results"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings an environment (default: this process's) describes."""
        env = os.environ if environ is None else environ
        return cls(cache_dir=env.get("XLT_CACHE_DIR") or DEFAULT_CACHE_DIR,
                   results_dir=env.get("XLT_RESULTS_DIR"), data_dir=env.get("XLT_DATA_DIR"),
                   precision=env.get("XLT_PRECISION"), progress=env.get("XLT_PROGRESS", "1") != "0",
                   shipped_results=env.get("XLT_SHIPPED_RESULTS", "1") != "0",
                   offline=_offline(env, OFFLINE_VARS),
                   datasets_offline=_offline(env, ("HF_DATASETS_OFFLINE",)))

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (unknown names raise, listing the valid ones)."""
        valid = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in changes if k not in valid]
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The XLT_* variables that describe these settings (what a Ray worker is started with)."""
        env = {"XLT_CACHE_DIR": str(self.cache_dir), "XLT_RESULTS_DIR": str(self.results_root),
               "XLT_PROGRESS": "1" if self.progress else "0",
               "XLT_SHIPPED_RESULTS": "1" if self.shipped_results else "0"}
        if self.data_dir is not None:
            env["XLT_DATA_DIR"] = str(self.data_dir)
        if self.precision is not None:
            env["XLT_PRECISION"] = self.precision
        if self.offline is not None:
            env["XLT_OFFLINE"] = "1"
        return env


_current: Settings | None = None


def current() -> Settings:
    """The settings in force: read from the environment the first time, then kept."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def use(settings: Settings) -> Settings:
    """Put `settings` in force for this process (returns them)."""
    global _current
    if not isinstance(settings, Settings):
        raise TypeError(f"use() takes a Settings value, got {type(settings).__name__}")
    _current = settings
    return settings


def reload() -> Settings:
    """Read the environment again (after a test or a program changed it) and put that in force."""
    return use(Settings.from_env())


# --------------------------------------------------------------------------- the workers of a grid

#: The Hugging Face variables a grid's workers need to compute what the driver would: where the
#: caches are, whether to stay offline, which endpoint, timeouts. None of them is a credential.
WORKER_HF_VARS = frozenset({
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_CACHE",
    "TRANSFORMERS_VERBOSITY", "TOKENIZERS_PARALLELISM",
})
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "AUTH")


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name looks like a credential's."""
    return any(w in name.upper() for w in _SECRET_WORDS)


def credential_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables whose names look like credentials (HF_TOKEN, HUGGING_FACE_HUB_TOKEN,
    WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ...), but for the `WORKER_HF_VARS` (TOKENIZERS_PARALLELISM
    is a setting) and Ray's own RAY_* settings (a Ray cluster's token is Ray's to hold)."""
    environ = os.environ if environ is None else environ
    return [k for k in environ if k not in WORKER_HF_VARS and not k.startswith("RAY_") and looks_secret(k)]


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a grid's worker needs to compute what the driver would: the `WORKER_HF_VARS` and every
    XLT_* variable whose name does not look like a credential. Of this process's environment (no
    `environ` given), the settings in force win where a program changed them with `use()`: a
    chapter's choice reaches the workers too."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in env.items()
           if k in WORKER_HF_VARS or (k.startswith("XLT_") and not looks_secret(k))}
    if environ is None and _current is not None and _current != Settings.from_env():
        out.update(_current.to_env())
    return out


def ray_address_set() -> bool:
    """Whether RAY_ADDRESS names a cluster to connect to."""
    return bool(os.environ.get("RAY_ADDRESS"))


@contextlib.contextmanager
def credentials_withheld():
    """This process's environment without its credentials (`credential_names`) for the block, then
    restored. A local Ray instance's processes (GCS, raylet) are started with a copy of the driver's
    environment, and every worker inherits the raylet's: whatever `ray.init` sees, every task sees, on
    top of its runtime_env. The environment is process-wide, so a thread of the driver that reads a
    token while a local instance starts would not find it."""
    withheld = {k: os.environ.pop(k) for k in credential_names()}
    try:
        yield
    finally:
        os.environ.update(withheld)


def quiet_tokenizer_threads() -> None:
    """Keep the tokenizers library from warning (and deadlocking) when a process forks after it used
    its thread pool: TOKENIZERS_PARALLELISM=false, unless set already."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
