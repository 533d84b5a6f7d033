"""Colab readiness: the install cell installs the notebook's own release, fails clearly when pip
cannot, stops *Run all* when the runtime must restart, and the result store can live on Google
Drive (a grid resumes after a disconnect) through settings, not the environment."""

from __future__ import annotations

import os
import sys
import types

import pytest

import xlt_utils
from xlt_utils import nbtools, settings
from xlt_utils.colab import (
    RestartNeeded,
    check_runtime,
    restart_needed,
    stale_modules,
    use_google_drive,
)


def _fake_colab(monkeypatch, mount=None):
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount or (lambda path: None))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_drive_is_a_no_op_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert use_google_drive() is None


def test_drive_on_colab_returns_settings_and_leaves_the_environment_alone(monkeypatch, tmp_path):
    mounted = []

    def mount(path):  # Colab's drive.mount makes <path>/MyDrive appear
        mounted.append(path)
        (tmp_path / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    _fake_colab(monkeypatch, mount)
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "elsewhere"))
    before = dict(os.environ)
    drive = use_google_drive(mount=str(tmp_path / "drive"))
    assert mounted == [str(tmp_path / "drive")]
    assert dict(os.environ) == before, "the Drive helper must not rewrite the environment"
    folder = tmp_path / "drive" / "MyDrive" / "xlt-cache"
    assert drive.cache_dir == folder and drive.results_root == folder / "results"
    assert settings.current().cache_dir == tmp_path / "elsewhere"  # nothing moved until it is used

    from xlt_utils.chapter import setup_chapter
    from xlt_utils.data.download import cache_dir
    from xlt_utils.store import ResultStore

    assert setup_chapter(0, settings=drive) == drive  # the chapter's setup cell puts them in force
    assert cache_dir() == folder and ResultStore().root == folder / "results"


def test_restart_needed_when_transformers_was_upgraded_after_import(monkeypatch):
    import transformers

    assert not restart_needed()
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(__version__="4.55.0"))
    assert restart_needed()
    with pytest.raises(RestartNeeded, match=r"transformers 4\.55\.0 is imported.*Restart session"):
        check_runtime(xlt_utils.__version__)
    monkeypatch.setitem(sys.modules, "transformers", transformers)
    check_runtime(xlt_utils.__version__)  # nothing stale: no error


def test_another_release_of_the_package_needs_a_restart():
    assert stale_modules(xlt_utils.__version__) == []
    with pytest.raises(RestartNeeded, match=r"xlt_utils 0\.2\.0 is imported, this notebook needs 9\.9\.9"):
        check_runtime("9.9.9")


def test_the_install_cell_installs_the_release_of_the_notebooks_version():
    assert nbtools.install_spec("0.2.0") == f"xlt-utils @ git+{xlt_utils.REPOSITORY_URL}@v0.2.0"
    assert nbtools.install_spec("0.3.0.dev0").endswith(f"@{xlt_utils.BRANCH}")  # no tag for a dev version
    src = nbtools.install_cell_source()
    assert f'XLT = "{nbtools.install_spec(xlt_utils.__version__)}"' in src
    assert f'check_runtime("{xlt_utils.__version__}")' in src
    assert max(len(line) for line in src.splitlines()) <= 77  # fits the book's code column


def test_install_cell_does_everything_under_the_colab_guard(monkeypatch):
    src = nbtools.install_cell_source()
    lines = src.splitlines()
    guard = lines.index(nbtools.COLAB_GUARD)
    body = lines[guard + 1:lines.index(nbtools.SETUP_IMPORT)]
    assert all(not line or line.startswith("    ") for line in body)  # nothing runs outside Colab
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    scope: dict = {}
    exec(compile(src, "install-cell", "exec"), scope)  # outside Colab: installs nothing
    assert scope["drive"] is None and scope["xlt"] is xlt_utils


@pytest.mark.slow
def test_an_unreachable_repository_is_a_clear_error(monkeypatch):
    """On Colab, a URL pip cannot reach stops the cell with what to check and pip's own message."""
    _fake_colab(monkeypatch)
    src = nbtools.install_cell_source().replace(xlt_utils.REPOSITORY_URL, "http://127.0.0.1:9/nowhere/xlt")
    with pytest.raises(RuntimeError, match=r"(?s)pip could not install xlt-utils @ git\+http://127\.0\.0\.1:9/"
                                           r"nowhere/xlt@v.*is the runtime online.*127\.0\.0\.1"):
        exec(compile(src, "install-cell", "exec"), {})
