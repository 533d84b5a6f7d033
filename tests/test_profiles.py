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


@pytest.mark.parametrize("value,offline", [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False)])
def test_one_offline_predicate_for_downloads_and_models(monkeypatch, value, offline):
    from xlt_utils.data.download import offline_reason
    from xlt_utils.models import from_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("XLT_OFFLINE", value)
    assert (offline_reason() is not None) == offline
    seen = {}

    class Loader:
        @classmethod
        def from_pretrained(cls, name, **kw):
            seen.update(kw)
            raise OSError("not in the cache")

    with pytest.raises(RuntimeError, match="profile='toy'"):
        from_hub(Loader, "some/model")
    assert seen == ({"local_files_only": True} if offline else {})


def test_profile_overrides_and_data_sources():
    p = get_profile("quick", model="some/other-model", revision="abc")
    assert (p.model, p.revision, p.data) == ("some/other-model", "abc", "real")
    assert get_profile("toy").data == "synthetic"
    with pytest.raises(ValueError, match="unknown data source 'wiki'; valid: synthetic, real"):
        get_profile("toy", data="wiki")


def test_papermill_overrides_json_lists_become_tuples_and_unknown_fields_are_errors():
    p = get_profile("quick", **{"targets": ["de", "ru"], "seeds": [1], "n_train": 64, "revision": None})
    assert (p.targets, p.seeds, p.n_train, p.revision) == (("de", "ru"), (1,), 64, None)
    assert p == get_profile("quick", targets=("de", "ru"), seeds=(1,), n_train=64)
    assert get_profile("toy", **{}) == get_profile("toy")  # the chapters' default: nothing changes
    with pytest.raises(ValueError, match=r"unknown profile field\(s\) 'n_trian'; valid: name, model"):
        get_profile("toy", n_trian=64)


def test_train_split_is_train_by_default_and_dev_as_a_local_data_override():
    assert all(p.train_split == "train" for p in PROFILES.values())
    assert get_profile("quick", train_split="dev").train_split == "dev"
    with pytest.raises(ValueError, match="train_split must be one of train, dev .*got 'test'"):
        get_profile("quick", train_split="test")
