"""mBERT's real tokenizer on all 21 PUD languages: one label position per word, sane statistics."""

from __future__ import annotations

from itertools import pairwise

import pytest

from xlt_utils.languages import PUD_TREEBANKS
from xlt_utils.tokenization import encode_words, subword_types, tokenization_stats

MBERT_POSITIONS = 512
LATIN = ["en", "fr", "de", "tr", "id", "pt", "es", "fi", "it", "sv", "cs", "pl", "is", "gl"]
NON_LATIN = [
    "ru",
    "ar",
    "hi",
    "zh",
    "ko",
    "ja",
]  # Thai is left out: its few types are mostly Latin/digits


@pytest.fixture(scope="module")
def words(pud_sentences):
    """lang -> list of word lists, for the 21 aligned PUD test sets."""
    return {lang: [s.words for s in sents] for lang, sents in pud_sentences.items()}


@pytest.fixture(scope="module")
def stats(mbert_tokenizer, words):
    ref = subword_types(mbert_tokenizer, words["en"])
    return {lang: tokenization_stats(mbert_tokenizer, w, ref) for lang, w in words.items()}


def test_real_vocabulary_is_loaded(mbert_tokenizer):
    assert (
        len(mbert_tokenizer) == 119547
    )  # not the 5-token vocabulary of vocab_file= under transformers 5
    assert mbert_tokenizer.convert_tokens_to_ids(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ) == [
        0,
        100,
        101,
        102,
        103,
    ]
    assert mbert_tokenizer.tokenize("Hello world") == ["Hello", "world"]


@pytest.mark.parametrize("lang", list(PUD_TREEBANKS))
def test_every_word_gets_exactly_one_label_position(mbert_tokenizer, words, lang):
    sents = words[lang]
    encs = encode_words(mbert_tokenizer, sents, max_length=MBERT_POSITIONS)
    assert len(encs) == len(sents) == 1000
    cls, sep = mbert_tokenizer.cls_token_id, mbert_tokenizer.sep_token_id
    for ws, e in zip(sents, encs, strict=True):
        n = len(e.input_ids)
        assert len(e.first_subword) == len(ws)
        assert e.input_ids[0] == cls and e.input_ids[-1] == sep and n <= MBERT_POSITIONS
        assert all(a < b for a, b in pairwise(e.first_subword))
        assert e.first_subword[0] == 1 and e.first_subword[-1] <= n - 2
        assert [e.word_of_token[p] for p in e.first_subword] == list(range(len(ws)))
        assert e.word_of_token[0] is None and e.word_of_token[-1] is None


@pytest.mark.slow
def test_statistics_are_sane(stats):
    for lang, st in stats.items():
        assert st["n_words"] > 15000, lang
        assert 1.0 <= st["fertility"] < 3.5, (lang, st)
        assert st["unk_share"] < 0.02, (lang, st)
        assert 0.0 < st["overlap_with_ref"] <= 1.0, (lang, st)
    en = stats["en"]
    assert en["fertility"] < 1.3 and en["overlap_with_ref"] == 1.0
    # English is the best-covered language: every other language needs more subwords per word
    assert all(st["fertility"] > en["fertility"] for lang, st in stats.items() if lang != "en")
    # Thai (no spaces inside UD words, few Thai pieces in the vocabulary) is split the most
    assert stats["th"]["fertility"] == max(st["fertility"] for st in stats.values())
    assert stats["th"]["fertility"] > 2 * en["fertility"]
    # CJK and Thai use far fewer subword types than English for a similar number of words
    for lang in ("zh", "ja", "th"):
        assert stats[lang]["n_types"] < 0.5 * en["n_types"], lang


def test_latin_script_languages_share_more_subwords_with_english(stats):
    latin = min(stats[lang]["overlap_with_ref"] for lang in LATIN if lang != "en")
    other = max(stats[lang]["overlap_with_ref"] for lang in NON_LATIN)
    assert latin > other
    assert stats["ru"]["overlap_with_ref"] < 0.15 and stats["ar"]["overlap_with_ref"] < 0.15
