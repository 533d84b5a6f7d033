"""Profiles: one module, three profiles, clear errors."""

from __future__ import annotations

import pytest

from xlt_utils.profiles import PROFILES, TASKS, get_profile


def test_three_profiles_exist_and_toy_is_offline():
    assert set(PROFILES) == {"toy", "quick", "full"}
    assert not PROFILES["toy"].needs_network and PROFILES["quick"].needs_network
    assert PROFILES["full"].targets == ("fr", "de", "ru", "tr", "id", "ar", "pt", "es", "fi", "it", "sv", "cs",
                                        "pl", "hi", "zh", "ko", "ja", "th")
    assert get_profile().name == "toy"


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid profiles: toy, quick, full"):
        get_profile("tiny")


def test_unknown_language_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown language.*'xx'.*valid languages: en, fr"):
        get_profile("toy", targets=("fr", "xx"))
    with pytest.raises(ValueError, match="valid languages"):
        get_profile("quick", targets=("klingon",))


def test_overrides_apply_and_tasks_are_checked():
    p = get_profile("toy", seeds=(7,), n_train=10)
    assert p.seeds == (7,) and p.n_train == 10 and p.languages[0] == "en"
    with pytest.raises(ValueError, match="valid tasks: " + ", ".join(TASKS)):
        get_profile("toy", tasks=("pos", "srl"))
