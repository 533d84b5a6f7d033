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
    assert {lang.ner_source for lang in REAL_LANGUAGES.values()} == {"wikiann"}  # one NER source
    assert {c for c, lang in REAL_LANGUAGES.items() if lang.has_uner} == {
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


#: The quick profile's files whose sha256 could not be computed yet (each entry's `sha256_missing` says
#: why: their bytes were not available to hash). Pinning one in manifest.json means removing it here.
QUICK_UNPINNED = {
    "ud/UD_English-EWT/en_ewt-ud-train.conllu",
    "ud/UD_Japanese-PUD/ja_pud-ud-test.conllu",
    "uner/UNER_English-EWT/en_ewt-ud-train.iob2",
}


class _Requested(Exception):
    """Raised by the recorders below instead of reading a file: the test wants only the names."""


def quick_profile_requests(monkeypatch) -> tuple[set[str], set[str]]:
    """The manifest names and the WikiANN (lang/split) parts that the quick profile's data loading asks
    for, with its default NER source and with UNER: `experiments.load_split` is run for every task on
    the source's train split and every language's test split (what `experiments.run` and the claims
    read), with the two entry points to remote data (`fetch_read`, `load_wikiann`) recording and stopping."""
    from xlt_utils import experiments
    from xlt_utils.data import real
    from xlt_utils.profiles import get_profile

    names, wikiann = set(), set()

    def fetch_read(name, read, **kw):
        names.add(name)
        raise _Requested

    def load_wikiann(lang, split, **kw):
        wikiann.add(f"{lang}/{split}")
        raise _Requested

    monkeypatch.setattr(real, "fetch_read", fetch_read)
    monkeypatch.setattr(real, "load_wikiann", load_wikiann)
    quick = get_profile("quick")
    for profile in (quick, quick.with_(ner_source="uner")):
        for task in profile.tasks:
            for lang, split in [(profile.source, profile.train_split)] + [(code, "test") for code in profile.languages]:
                try:
                    experiments.load_split(profile, lang, task, split)
                except _Requested:
                    pass
                except ValueError as e:  # UNER has test files for six languages only
                    assert profile.ner_source == "uner" and task == "ner" and "Universal NER has no" in str(e)
    return names, wikiann


def test_every_file_the_quick_profile_reads_is_pinned(monkeypatch):
    """Each manifest file the quick profile reads has its sha256 pinned (so it is part of the cache key
    through the manifest's hash), except the listed few whose bytes could not be hashed yet."""
    names, wikiann = quick_profile_requests(monkeypatch)
    quick = "en fr de ru tr ja ar zh fi".split()
    assert names == {ud_file_name("en", "train")} | {ud_file_name(c, "test") for c in quick} | {
        "uner/UNER_English-EWT/en_ewt-ud-train.iob2"} | {
        f"uner/UNER_{n}-PUD/{c}_pud-ud-test.iob2" for c, n in [("en", "English"), ("de", "German"),
                                                               ("ru", "Russian"), ("zh", "Chinese")]}
    assert wikiann == {"en/train"} | {f"{c}/test" for c in quick}  # from the Hub: not in the manifest
    manifest = load_manifest()
    unpinned = {name for name in names if manifest[name]["sha256"] is None}
    assert unpinned == QUICK_UNPINNED, "a quick file was pinned (drop it from QUICK_UNPINNED) or unpinned"
    for name in names - unpinned:
        assert len(manifest[name]["sha256"]) == 64 and manifest[name]["mirrors"], name
    for name in unpinned:
        assert manifest[name].get("sha256_missing"), name


@pytest.fixture
def local(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_DATA_DIR", str(shared_data))
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XLT_OFFLINE", "1")


@pytest.mark.slow
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
    de = load_ner("de", "test", source="uner")
    assert len(de) == 1000 and de[0].ner and de[0].upos is None
    assert de[0].meta["file"] == "uner/UNER_German-PUD/de_pud-ud-test.iob2"
    assert len(load_ner("en", "dev", source="uner")) == 2001
    en = load_ner("en", "test", source="uner")  # English PUD, parallel to the targets
    assert len(en) == 1000
    with pytest.raises(ValueError, match="no train split for 'de'.*source='wikiann'"):
        load_ner("de", "train", source="uner")
    with pytest.raises(ValueError, match="unknown NER source 'conll'; valid sources: wikiann, uner"):
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
    with pytest.raises(OfflineError):  # the registry routes every language's NER to WikiANN
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


def _write_parquet(path, rows, with_features: bool):
    """A WikiANN-shaped Parquet file: through `datasets` (ClassLabel names in the schema metadata,
    as the Hub's files) or through plain pyarrow (integer tags only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    if with_features:
        _wikiann_like(NAMES, rows).to_parquet(str(path))
    else:
        pq.write_table(pa.table({"tokens": [r[0] for r in rows], "ner_tags": [r[1] for r in rows],
                                 "langs": [["de"] * len(r[0]) for r in rows]}), path)


@pytest.mark.parametrize("with_features", [True, False])
def test_wikiann_parquet_from_the_local_data_dir(tmp_path, monkeypatch, with_features):
    """WikiANN's Parquet files are read by `datasets` from $XLT_DATA_DIR/wikiann/<lang>/<split>*.parquet."""
    rows = [(["Angela", "Merkel", "besuchte", "Berlin", "."], [1, 2, 0, 5, 0]),
            (["Die", "UNO", "tagt", "."], [0, 3, 0, 0])]
    _write_parquet(tmp_path / "wikiann" / "de" / "test-00000-of-00001.parquet", rows, with_features)
    _write_parquet(tmp_path / "wikiann" / "de" / "validation.parquet", rows[:1], with_features)
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    test = load_ner("de", "test")  # the default source: WikiANN, for German too
    assert [s.ner for s in test] == [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "B-ORG", "O", "O"]]
    assert test[0].words[0] == "Angela" and test[0].meta["source"] == "wikiann"
    assert test[1].meta["file"].endswith("wikiann/de/test*.parquet")
    assert len(load_ner("de", "dev")) == 1
    with pytest.raises(OfflineError, match="WikiANN 'de' \\(train\\)"):  # no local train file, offline
        load_ner("de", "train")


def test_wikiann_tag_ids_out_of_range_name_the_row(tmp_path, monkeypatch):
    _write_parquet(tmp_path / "wikiann" / "fr" / "test.parquet", [(["Paris"], [9])], with_features=False)
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"WikiANN fr/test row 0: tag ids \[9\] out of range; valid: 0-6"):
        load_ner("fr", "test")


def test_real_profiles_take_every_language_s_ner_from_one_source(tmp_path, monkeypatch):
    from xlt_utils.experiments import load_split
    from xlt_utils.profiles import get_profile

    assert get_profile("quick").ner_source == get_profile("full").ner_source == "wikiann"
    for lang in ("de", "fr"):  # de has a UNER file too: still WikiANN
        _write_parquet(tmp_path / "wikiann" / lang / "test.parquet", [(["Berlin"], [5])], with_features=True)
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    for lang in ("de", "fr"):
        (s,) = load_split(get_profile("quick"), lang, "ner", "test")
        assert s.meta["source"] == "wikiann" and s.ner == ["B-LOC"]


# ------------------------------------------------------------------ issue 25 item 5: paths stay in the data folder

BAD_CODES = ["../../outside", "../outside", "/tmp", "de/../fr", "..", ".", "de.", "DE", "de ", "", "de\x00",
             "de\\..\\fr", None, 5, ["de"]]


def test_a_language_code_cannot_lead_out_of_the_data_folder(tmp_path, monkeypatch):
    """load_ner("../../outside", "test", source="wikiann") read a Parquet file outside XLT_DATA_DIR."""
    data = tmp_path / "data"
    (data / "wikiann").mkdir(parents=True)
    _write_parquet(tmp_path / "outside" / "test.parquet", [(["Berlin"], [5])], with_features=True)
    assert (data / "wikiann" / "../../outside" / "test.parquet").resolve().is_file()  # the plant is reachable
    monkeypatch.setenv("XLT_DATA_DIR", str(data))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"invalid language code '\.\./\.\./outside'"):
        load_ner("../../outside", "test", source="wikiann")
    with pytest.raises(ValueError, match="invalid language code"):
        load_wikiann("../../outside", "test")


@pytest.mark.parametrize("code", BAD_CODES, ids=[repr(c) for c in BAD_CODES])
def test_language_codes_are_validated_by_every_loader(tmp_path, monkeypatch, code):
    from xlt_utils.data.real import local_wikiann_files

    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    for call in (lambda: load_ner(code, "test", source="wikiann"), lambda: load_ner(code, "test", source="uner"),
                 lambda: load_ner(code, "test"), lambda: load_wikiann(code, "test"),
                 lambda: local_wikiann_files(code, "test"), lambda: load_ud(code, "test"),
                 lambda: load_ud(code, "test", treebank="UD_English-EWT"), lambda: ud_file_name(code, "dev")):
        with pytest.raises(ValueError, match="invalid language code|unknown language code"):
            call()


@pytest.mark.parametrize("source", ["wikiann/../x", "", "WIKIANN", "conll", ["wikiann"], 1])
def test_ner_sources_are_validated(source):
    with pytest.raises(ValueError, match="unknown NER source"):
        load_ner("de", "test", source=source)


@pytest.mark.parametrize("treebank", ["../UD_English-EWT", "UD_English-EWT/../../x", "/abs", "UD_English-EWT/", 7])
def test_treebanks_and_splits_are_validated(treebank):
    from xlt_utils.data.real import local_wikiann_files

    with pytest.raises(ValueError, match="invalid treebank"):
        load_ud("en", "test", treebank=treebank)
    with pytest.raises(ValueError, match="unknown split"):
        load_ud("en", "../test")
    with pytest.raises(ValueError, match="unknown WikiANN split"):
        local_wikiann_files("de", "../test")


def test_wikiann_language_codes_beyond_the_registry_are_still_accepted(tmp_path, monkeypatch):
    """WikiANN has 176 languages, some with '-' in their names: those codes pass the check."""
    _write_parquet(tmp_path / "wikiann" / "zh-yue" / "test.parquet", [(["香港"], [5])], with_features=True)
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    (s,) = load_ner("zh-yue", "test", source="wikiann")
    assert s.ner == ["B-LOC"] and s.lang == "zh-yue"
