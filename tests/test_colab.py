"""Colab readiness: the cache can live on Google Drive (a grid resumes after a disconnect), and the
install cell says when the runtime must restart. Both are no-ops outside Colab."""

from __future__ import annotations

import sys
import types

from xlt_utils import nbtools
from xlt_utils.setup import cache_on_google_drive, restart_needed


def test_drive_cache_is_a_no_op_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("XLT_CACHE_DIR", raising=False)
    assert cache_on_google_drive() is None
    import os

    assert "XLT_CACHE_DIR" not in os.environ


def test_drive_cache_on_colab_mounts_drive_and_moves_the_cache(monkeypatch, tmp_path):
    mounted = []

    def mount(path):  # Colab's drive.mount makes <path>/MyDrive appear
        mounted.append(path)
        (tmp_path / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    sys.modules["google"].colab = colab
    monkeypatch.setenv("XLT_CACHE_DIR", "/somewhere/else")
    path = cache_on_google_drive(mount=str(tmp_path / "drive"))
    assert mounted == [str(tmp_path / "drive")]
    assert path == str(tmp_path / "drive" / "MyDrive" / "xlt-cache")
    from xlt_utils.data.download import cache_dir
    from xlt_utils.store import ResultStore

    assert str(cache_dir()) == path and str(ResultStore().root).startswith(path)


def test_restart_needed_when_transformers_was_upgraded_after_import(monkeypatch):
    import transformers

    assert not restart_needed()
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(__version__="4.55.0"))
    assert restart_needed()
    monkeypatch.setitem(sys.modules, "transformers", transformers)


def test_install_cell_does_everything_under_the_colab_guard():
    src = nbtools.install_cell_source()
    lines = src.splitlines()
    guard = lines.index(nbtools.COLAB_GUARD)
    body = lines[guard + 1:lines.index(nbtools.SETUP_IMPORT)]
    assert all(not line or line.startswith("    ") for line in body)  # nothing runs outside Colab
    assert "Restart session" in src and "cache_on_google_drive()" in src and "cache_on_drive = False" in src
    # outside Colab the cell (without its %pip line, which IPython would run) is a no-op
    code = "\n".join(line for line in lines if "%pip" not in line)
    exec(compile(code, "install-cell", "exec"), {})
