"""The language registry and the real-data loaders (UD, UNER, WikiANN) on shared/data, offline."""

from __future__ import annotations

import time

import datasets
import pytest

from xlt_utils.data.download import OfflineError, load_manifest
from xlt_utils.data.iob2 import Iob2FormatError
from xlt_utils.data.real import load_ner, load_ud, load_wikiann, ud_file_name, wikiann_to_sentences
from xlt_utils.languages import (
    REAL_LANGUAGES,
    TARGET_LANGUAGES,
    UD_RELEASE,
    get_language,
)

PUD_TARGETS = "fr de ru tr id ar pt es fi it sv cs pl hi zh ko ja th".split()


def test_registry():
    assert list(REAL_LANGUAGES)[0] == "en" and REAL_LANGUAGES["en"].is_source
    assert sorted(TARGET_LANGUAGES) == sorted(PUD_TARGETS)
    assert {c for c, lang in REAL_LANGUAGES.items() if lang.ner_source == "uner"} == {
        "en",
        "de",
        "pt",
        "ru",
        "sv",
        "zh",
    }
    assert REAL_LANGUAGES["en"].ud_treebank == "UD_English-EWT"
    fr = get_language("fr")
    assert (fr.name, fr.family, fr.script) == ("French", "Indo-European", "Latin")
    assert fr.ud_file("train") == "ud/UD_French-GSD/fr_gsd-ud-train.conllu"
    assert fr.ud_file("test") == "ud/UD_French-PUD/fr_pud-ud-test.conllu"
    with pytest.raises(ValueError, match="valid splits"):
        fr.ud_file("validation")


def test_unknown_language_lists_valid_codes():
    with pytest.raises(ValueError, match=r"unknown language code 'xx'; valid codes: en, fr, de"):
        get_language("xx")


def test_every_registry_file_is_in_the_manifest_at_the_pinned_release():
    manifest = load_manifest()
    for lang in REAL_LANGUAGES.values():
        for split in ("train", "dev", "test"):
            name = lang.ud_file(split)
            assert name in manifest, name
            assert (
                f"/UniversalDependencies/{name.split('/')[1]}/{UD_RELEASE}/"
                in manifest[name]["url"]
            )
            assert manifest[name]["url"].endswith("/" + name.rsplit("/", 1)[1])
    assert ud_file_name("is", "test") == "ud/UD_Icelandic-PUD/is_pud-ud-test.conllu"
    assert ud_file_name("en", "test", treebank="UD_English-EWT") in manifest


@pytest.fixture
def local(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_DATA_DIR", str(shared_data))
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XLT_OFFLINE", "1")


def test_load_ud_through_fetch(local):
    dev = load_ud("en", "dev")
    assert len(dev) == 2001 and dev[0].lang == "en" and dev[0].upos
    test = load_ud("ja", "test")
    assert len(test) == 1000 and test[0].sent_id == "n01001011"
    assert len(load_ud("en", "test", treebank="UD_English-EWT")) == 2077


def test_load_ud_offline_without_the_file_names_url_and_toy(local):
    with pytest.raises(OfflineError) as e:
        load_ud("fr", "train")
    msg = str(e.value)
    assert f"UD_French-GSD/{UD_RELEASE}/fr_gsd-ud-train.conllu" in msg and "`toy` profile" in msg


def test_load_ner_uner(local):
    de = load_ner("de", "test")
    assert len(de) == 1000 and de[0].ner and de[0].upos is None
    assert len(load_ner("en", "dev")) == 2001
    en = load_ner("en", "test")  # English PUD, parallel to the targets
    assert len(en) == 1000
    with pytest.raises(ValueError, match="no train split for 'de'.*source='wikiann'"):
        load_ner("de", "train")
    with pytest.raises(ValueError, match="unknown NER source"):
        load_ner("de", "test", source="conll")


def test_wikiann_offline_fails_fast_and_names_toy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("XLT_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(OfflineError) as e:
        load_wikiann("fr", "test", cache_dir=str(tmp_path / "hf"))
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert (
        "HF_DATASETS_OFFLINE=1" in msg and "unimelb-nlp/wikiann" in msg and "`toy` profile" in msg
    )
    with pytest.raises(OfflineError):  # the registry routes French NER to WikiANN
        monkeypatch.setenv("XLT_OFFLINE", "1")
        load_ner("fr", "test")


NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]  # WikiANN's feature order


def _wikiann_like(names, rows):
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    return datasets.Dataset.from_dict(
        {"tokens": [r[0] for r in rows], "ner_tags": [r[1] for r in rows]}, features=features
    )


def test_wikiann_ids_are_mapped_through_the_features():
    ds = _wikiann_like(NAMES, [(["Angela", "Merkel", "in", "Berlin"], [1, 2, 0, 5])])
    (s,) = wikiann_to_sentences(ds, "de", "test")
    assert s.words == ["Angela", "Merkel", "in", "Berlin"]
    assert s.ner == ["B-PER", "I-PER", "O", "B-LOC"]
    assert s.sent_id == "wikiann-de-test-0" and s.lang == "de"
    # a different label order in the features gives the same names
    shuffled = ["B-LOC", "I-LOC", "O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    ds2 = _wikiann_like(shuffled, [(["Angela", "Merkel", "in", "Berlin"], [3, 4, 2, 0])])
    assert wikiann_to_sentences(ds2, "de", "test")[0].ner == s.ner


def test_wikiann_unknown_tag_is_rejected():
    ds = _wikiann_like([*NAMES, "B-MISC"], [(["a", "b"], [0, 0]), (["Sony", "x"], [7, 0])])
    with pytest.raises(
        Iob2FormatError, match="WikiANN de/train row 1: token 1: unknown tag 'B-MISC'"
    ):
        wikiann_to_sentences(ds, "de", "train")
