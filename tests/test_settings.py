"""The settings: read from the environment in one place, once, into one value that programs change
as a value (never by rewriting the environment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xlt_utils import settings
from xlt_utils.settings import Settings, SettingsError


def test_every_variable_reaches_its_field():
    s = Settings.from_env({"XLT_CACHE_DIR": "/c", "XLT_RESULTS_DIR": "/r", "XLT_DATA_DIR": "/d",
                           "XLT_PRECISION": "FP16", "XLT_PROGRESS": "0", "XLT_SHIPPED_RESULTS": "0",
                           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "yes"})
    assert (s.cache_dir, s.results_root, s.data_dir) == (Path("/c"), Path("/r"), Path("/d"))
    assert s.precision == "fp16" and not s.progress and not s.shipped_results
    assert s.offline == "HF_HUB_OFFLINE=1" and s.datasets_offline == "HF_DATASETS_OFFLINE=yes"


def test_the_defaults_of_an_empty_environment():
    s = Settings.from_env({})
    assert s.cache_dir == Path("~/.cache/xlt").expanduser() and s.results_root == s.cache_dir / "results"
    assert s.data_dir is None and s.precision is None and s.progress and s.shipped_results
    assert s.offline is None and s.datasets_offline is None
    assert Settings.from_env({"XLT_PRECISION": "auto"}).precision is None


def test_bad_values_and_unknown_names_are_errors_that_list_the_valid_ones():
    with pytest.raises(SettingsError, match="XLT_PRECISION='half'.*valid values: auto, bf16, fp16, fp32"):
        Settings.from_env({"XLT_PRECISION": "half"})
    with pytest.raises(SettingsError, match="unknown setting.*'cache'.*valid: cache_dir, results_dir"):
        Settings().replace(cache="/x")


def test_settings_are_read_once_and_changed_as_a_value(monkeypatch, tmp_path):
    first = settings.current()
    assert settings.current() is first  # read once, then kept
    os.environ["XLT_RESULTS_DIR"] = str(tmp_path / "later")  # a change behind the package's back...
    try:
        assert settings.current().results_root == first.results_root  # ...is not seen until reload()
        assert settings.reload().results_root == tmp_path / "later"
    finally:
        del os.environ["XLT_RESULTS_DIR"]
        settings.reload()
    mine = settings.use(settings.current().replace(results_dir=tmp_path / "mine"))
    assert settings.current() is mine and "XLT_RESULTS_DIR" not in os.environ
    from xlt_utils.store import ResultStore

    assert ResultStore().root == tmp_path / "mine"
    with pytest.raises(TypeError, match="takes a Settings value"):
        settings.use({"results_dir": "x"})


def test_the_settings_in_force_reach_a_grids_workers(monkeypatch, tmp_path):
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_TOKEN", "secret")
    env = settings.worker_environment()
    assert env["XLT_DATA_DIR"] == str(tmp_path / "data") and "HF_TOKEN" not in env
    settings.use(settings.current().replace(results_dir=tmp_path / "chosen", shipped_results=False))
    env = settings.worker_environment()
    assert env["XLT_RESULTS_DIR"] == str(tmp_path / "chosen") and env["XLT_SHIPPED_RESULTS"] == "0"
    assert Settings.from_env(env).results_root == tmp_path / "chosen"  # what the worker reads back
