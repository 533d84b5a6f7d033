"""Shared fixtures: the real third-party data in ../shared/data, offline hub settings, and a
`monkeypatch` whose environment changes reach the package's settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xlt_utils import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class SettingsMonkeyPatch(pytest.MonkeyPatch):
    """pytest's MonkeyPatch, but the package reads its settings again after every change of the
    environment and after the undo (`xlt_utils.settings` reads the environment once, and keeps it)."""

    def setenv(self, name, value, prepend=None):
        super().setenv(name, value, prepend)
        settings.reload()

    def delenv(self, name, raising=True):
        super().delenv(name, raising)
        settings.reload()

    def undo(self):
        super().undo()
        settings.reload()


@pytest.fixture
def monkeypatch():
    """The `monkeypatch` fixture, as a `SettingsMonkeyPatch`."""
    mp = SettingsMonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(autouse=True)
def _settings_from_environment():
    """Every test starts and ends with the settings the environment describes."""
    settings.reload()
    yield
    settings.reload()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips when absent, fails when XLT_REQUIRE_SHARED_DATA=1."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("XLT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"XLT_REQUIRE_SHARED_DATA=1 but {SHARED_DATA.name} is missing beside the repository")
        pytest.skip("../shared/data is absent (a fresh clone): real-data tests skipped")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mbert_tokenizer(shared_data):
    """mBERT's real tokenizer, loaded from tokenizer.json (never with vocab_file=: that path rebuilds it and splits differently)."""
    from xlt_utils.models import load_tokenizer

    return load_tokenizer(shared_data / "mbert-tokenizer")


@pytest.fixture(scope="session")
def pud_sentences(shared_data, tmp_path_factory):
    """The 21 real PUD test sets aligned by sent_id ({lang: sentences}), read once per session
    through fetch() from XLT_DATA_DIR=shared/data in offline mode (test_pud, test_tokenization_real)."""
    from xlt_utils.data.pud import load_pud
    from xlt_utils.languages import PUD_TREEBANKS

    mp = SettingsMonkeyPatch()
    try:
        mp.setenv("XLT_DATA_DIR", str(shared_data))
        mp.setenv("XLT_CACHE_DIR", str(tmp_path_factory.mktemp("xlt-cache")))
        mp.setenv("XLT_OFFLINE", "1")
        return load_pud(PUD_TREEBANKS)
    finally:
        mp.undo()
