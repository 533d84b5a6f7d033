"""PUD alignment by sent_id on the 21 real PUD test sets (Icelandic is ordered differently)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xlt_utils.data.conllu_io import read_conllu
from xlt_utils.data.pud import align_by_sent_id, load_pud
from xlt_utils.data.records import Sentence
from xlt_utils.languages import PUD_TREEBANKS, REAL_LANGUAGES, pud_file


@pytest.fixture(scope="module")
def pud(pud_sentences):
    """All 21 PUD sets, loaded through fetch() from XLT_DATA_DIR=shared/data, offline (conftest)."""
    return pud_sentences


def test_registry_covers_21_pud_languages():
    assert len(PUD_TREEBANKS) == 21 and set(REAL_LANGUAGES) < set(PUD_TREEBANKS)
    assert pud_file("is") == "ud/UD_Icelandic-PUD/is_pud-ud-test.conllu"
    with pytest.raises(ValueError, match="valid codes: ar, cs, de"):
        pud_file("xx")


@pytest.mark.slow
def test_all_21_align_on_the_same_1000_sent_ids(pud):
    assert list(pud) == list(PUD_TREEBANKS)
    ids = [s.sent_id for s in pud["en"]]
    assert len(ids) == len(set(ids)) == 1000
    assert ids[0] == "n01001011" and ids[-1] == "w05010027"
    for lang, sents in pud.items():
        assert [s.sent_id for s in sents] == ids, lang
        assert all(s.lang == lang and len(s) > 0 for s in sents), lang


def _numbers(s: Sentence) -> tuple[str, ...]:
    return tuple(sorted(re.findall(r"\d+", s.text or "")))


def test_icelandic_is_aligned_by_sent_id_not_position(shared_data, pud):
    raw_is = read_conllu(shared_data / "ud/UD_Icelandic-PUD/is_pud-ud-test.conllu", "is")
    raw_en = pud["en"]  # English file order == aligned order
    moved = sum(a.sent_id != b.sent_id for a, b in zip(raw_en, raw_is, strict=True))
    assert moved == 500  # so positional pairing would be wrong for half the sentences

    def agreement(en, other):
        """Share of pairs with digits whose sorted numbers agree, and the sentence-length correlation."""
        pairs = [(_numbers(a), _numbers(b)) for a, b in zip(en, other, strict=True) if _numbers(a)]
        same = sum(x == y for x, y in pairs) / len(pairs)
        corr = np.corrcoef([len(a) for a in en], [len(b) for b in other])[0, 1]
        return same, corr

    same, corr = agreement(raw_en, pud["is"])
    assert same > 0.8 and corr > 0.8  # translations: same numbers, similar lengths
    same_pos, corr_pos = agreement(raw_en, raw_is)
    assert same_pos < 0.6 and corr_pos < corr - 0.2  # what positional pairing would give


def test_german_english_pairs_share_numbers(pud):
    pairs = [
        (_numbers(a), _numbers(b)) for a, b in zip(pud["en"], pud["de"], strict=True) if _numbers(a)
    ]
    assert len(pairs) > 100
    assert sum(x == y for x, y in pairs) / len(pairs) > 0.8


def _sent(sid, lang):
    return Sentence(sent_id=sid, lang=lang, words=[sid])


def test_align_reorders_to_the_first_corpus():
    got = align_by_sent_id(
        {"en": [_sent(i, "en") for i in "abc"], "is": [_sent(i, "is") for i in "cab"]}
    )
    assert [s.sent_id for s in got["is"]] == ["a", "b", "c"]
    assert [s.lang for s in got["is"]] == ["is"] * 3


def test_align_strict_reports_mismatched_sets():
    corpora = {"en": [_sent(i, "en") for i in "abc"], "de": [_sent(i, "de") for i in "abd"]}
    with pytest.raises(ValueError, match="de: 1 of en's sent_ids missing, 1 extra"):
        align_by_sent_id(corpora)
    loose = align_by_sent_id(corpora, strict=False)
    assert [s.sent_id for s in loose["de"]] == ["a", "b"]


def test_align_rejects_duplicate_sent_ids():
    with pytest.raises(ValueError, match="duplicate sent_id 'a'"):
        align_by_sent_id({"en": [_sent("a", "en"), _sent("a", "en")]})


def test_load_pud_rejects_unknown_languages():
    with pytest.raises(ValueError, match="no PUD treebank for 'xx'"):
        load_pud(["en", "xx"])
