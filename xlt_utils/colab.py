"""Colab: the checks of a chapter's install cell, and the result store on Google Drive.

Every chapter's first code cell (written by ``python -m xlt_utils.nbtools badges``) installs, on
Colab only, the release of this package that the notebook belongs to (``v<version>``), then calls
`check_runtime` with that version, which stops *Run all* with the instruction to restart when the
runtime still holds other versions than those just installed. `use_google_drive` returns settings
that keep the cache and the result store on Google Drive, for `setup_chapter(settings=...)`.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

from . import __version__
from .settings import Settings, current

#: The packages whose upgrade needs a restart when an older version is already imported.
RESTART_PACKAGES = ("transformers", "tokenizers", "datasets")
DISTRIBUTION = "xlt-utils"


class RestartNeeded(RuntimeError):
    """The runtime must restart before the chapter can run (raised, so that *Run all* stops)."""


def in_colab() -> bool:
    """Whether this kernel runs on Colab."""
    return "google.colab" in sys.modules


def stale_modules(expected_version: str | None = None) -> list[str]:
    """The imported packages whose version is not the installed one ("transformers 4.55.0, installed
    5.25.0"); with `expected_version`, also this package when the imported or installed version is
    another (a chapter of one release run in a runtime that holds another)."""
    stale = []
    for name in RESTART_PACKAGES:
        mod = sys.modules.get(name)
        loaded = getattr(mod, "__version__", None) if mod is not None else None
        if loaded is not None and loaded != md.version(name):
            stale.append(f"{name} {loaded} is imported, {md.version(name)} installed")
    if expected_version is not None:
        try:
            installed = md.version(DISTRIBUTION)
        except md.PackageNotFoundError:
            installed = None
        for what, version in (("imported", __version__), ("installed", installed)):
            if version != expected_version:
                stale.append(f"xlt_utils {version} is {what}, this notebook needs {expected_version}")
    return stale


def restart_needed() -> bool:
    """True when a package was upgraded after it had been imported (on Colab, after the install cell
    upgraded transformers in a session that had already imported it): the old version stays loaded
    until the runtime restarts."""
    return bool(stale_modules())


def check_runtime(expected_version: str) -> None:
    """Raise `RestartNeeded` (which stops *Run all*) when the runtime holds other versions than the
    install cell just installed: transformers & co. imported before their upgrade, or another
    release of this package."""
    stale = stale_modules(expected_version)
    if stale:
        raise RestartNeeded("; ".join(stale) + ". Runtime > Restart session, then Run all again "
                            "(the install cell will find everything installed).")


def use_google_drive(folder: str = "xlt-cache", mount: str = "/content/drive") -> Settings | None:
    """On Colab: mount Google Drive and return the settings in force with the cache (downloads,
    result records, fine-tuned models, the checkpoints of interrupted runs) in
    ``MyDrive/<folder>``, so that a grid resumes after a disconnect. Pass them to
    ``setup_chapter(settings=...)``, which puts them in force. Outside Colab: None."""
    if not in_colab():
        return None
    from google.colab import drive  # only exists on Colab

    drive.mount(mount)
    path = Path(mount) / "MyDrive" / folder
    path.mkdir(parents=True, exist_ok=True)
    return current().replace(cache_dir=path, results_dir=None)
