"""Synthetic languages: typology, annotations, readers, parallelism, and ambiguity."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from xlt_utils.data import read_conllu, read_iob2
from xlt_utils.data.synthetic import TOY_LANGUAGES, ToyCorpusSpec, generate, write_toy_corpus

SPEC = ToyCorpusSpec(seed=3, n_pretrain=300, n_train=200, n_dev=50, n_test=120)


@pytest.fixture(scope="module")
def corpus():
    return generate(SPEC)


def test_at_least_five_languages_that_differ_typologically():
    langs = list(TOY_LANGUAGES.values())
    assert len(langs) >= 5
    assert {lang.order for lang in langs} >= {"SVO", "SOV", "VSO"}
    assert {lang.adj_after_noun for lang in langs} == {True, False}
    assert {lang.postpositions for lang in langs} == {True, False}
    assert len({lang.script for lang in langs}) >= 3
    assert len({lang.anchors for lang in langs}) >= 3
    assert any(not lang.suffixes.get("acc") for lang in langs) and any(lang.suffixes.get("acc") for lang in langs)


def test_every_sentence_is_a_tree_with_all_annotations(corpus):
    for split in ("pretrain", "train", "test"):
        for lang, sents in corpus[split].items():
            for s in sents:
                n = len(s)
                assert len(s.upos) == len(s.heads) == len(s.deprels) == len(s.ner) == n
                assert s.heads.count(0) == 1 and s.deprels[s.heads.index(0)] == "root"
                for i in range(1, n + 1):  # following heads from any word reaches the root without a cycle
                    seen, j = set(), i
                    while j != 0:
                        assert j not in seen, f"cycle in {lang} {s.sent_id}"
                        seen.add(j)
                        j = s.heads[j - 1]
                for k, tag in enumerate(s.ner):  # well-formed IOB2
                    if tag.startswith("I-"):
                        assert s.ner[k - 1][2:] == tag[2:] and k > 0


def test_scripts_differ_and_digits_are_shared_anchors(corpus):
    def chars(lang):
        return {c for s in corpus["pretrain"][lang] for w in s.words for c in w if c.isalpha()}

    assert not chars("ja") & set("abcdefghijklmnopqrstuvwxyz")
    assert len(chars("ru") & chars("ja")) == 0
    digits = {lang: any(w.isdigit() for s in corpus["pretrain"][lang] for w in s.words) for lang in TOY_LANGUAGES}
    assert all(digits.values())


def test_test_sets_are_parallel_and_pretraining_is_not(corpus):
    ids = [s.sent_id for s in corpus["test"]["en"]]
    for lang in TOY_LANGUAGES:
        test = corpus["test"][lang]
        assert [s.sent_id for s in test] == ids
        # the same meaning: the same number of named entities of each type
        for a, b in zip(corpus["test"]["en"], test, strict=True):
            assert Counter(t for t in a.ner if t.startswith("B-")) == Counter(t for t in b.ner if t.startswith("B-"))
    en = {" ".join(s.words) for s in corpus["pretrain"]["en"]}
    en_test = {" ".join(s.words) for s in corpus["test"]["en"]}
    assert len(en & en_test) < 0.2 * len(en_test)  # pretraining is a different meaning stream
    assert [s.sent_id for s in corpus["pretrain"]["en"]] != [s.sent_id for s in corpus["pretrain"]["fr"]]


def test_word_order_follows_the_typology(corpus):
    def verb_position(lang):
        pos = [s.upos.index("VERB") / (len(s) - 1) for s in corpus["test"][lang]]
        return sum(pos) / len(pos)

    assert verb_position("ar") < verb_position("en") < verb_position("de")  # VSO < SVO < SOV


def test_tagging_needs_context(corpus):
    for lang in TOY_LANGUAGES:
        tags = defaultdict(Counter)
        for s in corpus["pretrain"][lang]:
            for w, t in zip(s.words, s.upos, strict=True):
                tags[w][t] += 1
        n = sum(sum(c.values()) for c in tags.values())
        majority = sum(max(c.values()) for c in tags.values()) / n
        ambiguous = sum(sum(c.values()) for c in tags.values() if len(c) > 1) / n
        assert ambiguous > 0.1, lang
        assert majority < 0.97, f"{lang}: a word list alone tags {majority:.1%}"


def test_generation_is_reproducible():
    a, b = generate(SPEC), generate(SPEC)
    assert [s.words for s in a["test"]["tr"]] == [s.words for s in b["test"]["tr"]]
    other = generate(ToyCorpusSpec(seed=4, n_pretrain=10, n_train=10, n_dev=10, n_test=120))
    assert [s.words for s in other["test"]["tr"]] != [s.words for s in a["test"]["tr"]]


@pytest.mark.slow
def test_written_files_read_back_through_the_real_readers(tmp_path, corpus):
    root = write_toy_corpus(SPEC, tmp_path / "toy")
    for lang in ("en", "ja"):
        ud = read_conllu(root / f"{lang}-test.conllu", lang)
        ner = read_iob2(root / f"{lang}-test.iob2", lang)
        gold = corpus["test"][lang]
        assert [s.words for s in ud] == [s.words for s in gold] == [s.words for s in ner]
        assert [s.upos for s in ud] == [s.upos for s in gold]
        assert [s.heads for s in ud] == [s.heads for s in gold]
        assert [s.ner for s in ner] == [s.ner for s in gold]
    assert (root / "en-pretrain.txt").read_text(encoding="utf-8").count("\n") == SPEC.n_pretrain


# ------------------------------------------------------------------ issue 25 item 9: the cache is verified

SMALL = ToyCorpusSpec(seed=7, n_pretrain=12, n_train=10, n_dev=6, n_test=40)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "toy-data" / SMALL.key()


def _cut_at_a_sentence_boundary(path):
    """Cut half-way, at the end of a sentence (an empty line; a line in a pretraining file)."""
    text = path.read_bytes()
    end = b"\n" if path.suffix == ".txt" else b"\n\n"
    cut = text.index(end, len(text) // 2) + len(end)
    path.write_bytes(text[:cut])  # still a valid file, with fewer sentences


def test_a_cached_file_cut_at_a_sentence_boundary_is_caught_and_rewritten(cache):
    """It read as a valid, shorter file: 299 sentences instead of 600 with the default corpus."""
    import re
    import warnings as _w

    from xlt_utils.data.synthetic import load_toy

    full = load_toy("en", "test", spec=SMALL)
    assert len(full) == SMALL.n_test
    _cut_at_a_sentence_boundary(cache / "en-test.conllu")
    assert len(read_conllu(cache / "en-test.conllu", "en")) < SMALL.n_test  # the cut file is valid on its own
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        again = load_toy("en", "test", spec=SMALL)
    assert [s.words for s in again] == [s.words for s in full]  # not the shorter file
    assert [w.category.__name__ for w in caught] == ["CorruptToyCorpusWarning"]
    assert re.search(r"en-test\.conllu has sha256 .* moved aside", str(caught[0].message))
    (aside,) = cache.parent.glob(f"{SMALL.key()}.corrupt-*")
    assert (aside / "DONE").is_file()  # the whole bad copy, kept aside
    with _w.catch_warnings():
        _w.simplefilter("error")
        assert len(load_toy("en", "test", "ner", spec=SMALL)) == SMALL.n_test


def test_a_corpus_cached_without_hashes_is_checked_once_against_a_fresh_generation(cache):
    from xlt_utils.data.synthetic import CorruptToyCorpusWarning, load_toy, pretraining_files

    load_toy("fr", "dev", spec=SMALL)
    (cache / "SHA256SUMS.json").unlink()  # as an older version left it
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(load_toy("fr", "dev", spec=SMALL)) == SMALL.n_dev  # checked, kept, its hashes recorded
    assert (cache / "SHA256SUMS.json").is_file()
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in cache.iterdir() if p.name in stamps)
    (cache / "SHA256SUMS.json").unlink()
    _cut_at_a_sentence_boundary(cache / "de-pretrain.txt")
    with pytest.warns(CorruptToyCorpusWarning, match="differ from a fresh generation, e.g. de-pretrain.txt"):
        files = pretraining_files(SMALL)
    assert files["de"].read_text(encoding="utf-8").count("\n") == SMALL.n_pretrain


def test_a_symlink_planted_at_the_old_temporary_folder_is_not_written_through(cache, tmp_path):
    import os

    from xlt_utils.data.synthetic import write_toy_corpus

    victim = tmp_path / "victim"
    victim.mkdir()
    cache.parent.mkdir(parents=True)
    (cache.parent / f"{SMALL.key()}.tmp{os.getpid()}").symlink_to(victim, target_is_directory=True)
    root = write_toy_corpus(SMALL)
    assert root == cache and (root / "DONE").is_file() and not root.is_symlink()
    assert list(victim.iterdir()) == []
