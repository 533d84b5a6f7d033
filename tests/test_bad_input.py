"""Bad input (issue 15): every invalid CoNLL-U / IOB2 case is one documented error naming file and
line; errors="skip" counts what it leaves out; IOB2 repair is one policy; writers refuse what they
could not read back."""

from __future__ import annotations

import warnings

import pytest

from xlt_utils.data import DataFormatError, ReadResult, SkippedSentencesWarning
from xlt_utils.data.conllu_io import ConlluFormatError, read_conllu, write_conllu
from xlt_utils.data.iob2 import (
    Iob2FormatError,
    RepairedTagsWarning,
    read_iob2,
    repair_iob2,
    write_iob2,
)
from xlt_utils.data.records import Sentence


def W(i, form, upos, head, rel, misc="_", feats="_", deps="_"):
    return f"{i}\t{form}\t{form.lower()}\t{upos}\t_\t{feats}\t{head}\t{rel}\t{deps}\t{misc}"


def E(i, deps, upos="_", head="_", rel="_", feats="_"):
    """An empty node line."""
    return f"{i}\tgap\t_\t{upos}\t_\t{feats}\t{head}\t{rel}\t{deps}\t_"


GOOD_A = ["# sent_id = a", "# text = The cat sat",
          W(1, "The", "DET", 2, "det"), W(2, "cat", "NOUN", 3, "nsubj"), W(3, "sat", "VERB", 0, "root")]
GOOD_B = ["# sent_id = b", W(1, "Dogs", "NOUN", 2, "nsubj"), W(2, "bark", "VERB", 0, "root")]


def _file(tmp_path, lines, name="x.conllu"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") if isinstance(lines, list) else lines)
    return path


def _error(path, reader=read_conllu, cls=ConlluFormatError):
    with pytest.raises(cls) as e:
        reader(path, "en")
    err = e.value
    assert isinstance(err, DataFormatError) and isinstance(err, ValueError)
    assert err.path == str(path) and str(err).startswith(f"{path}, line {err.line}: ")
    return err


def _sentence(words_lines):
    return ["# sent_id = s", *words_lines, ""]


# (name, lines of one sentence after GOOD_A + blank, the 1-based line expected, a part of the message)
_AFTER = len(GOOD_A) + 2  # GOOD_A, its blank line, then the bad sentence's first line
CONLLU_CASES = [
    ("head cycle", [W(1, "a", "NOUN", 2, "nsubj"), W(2, "b", "NOUN", 1, "obj"), W(3, "c", "VERB", 0, "root")],
     1, "form a cycle"),
    ("self-loop", [W(1, "a", "NOUN", 1, "nsubj"), W(2, "c", "VERB", 0, "root")], 1, "is its own head"),
    ("no root", [W(1, "a", "NOUN", 2, "nsubj"), W(2, "b", "VERB", 1, "dep")], 1, "no root"),
    ("two roots", [W(1, "a", "VERB", 0, "root"), W(2, "b", "VERB", 0, "root")], 2, "second root"),
    ("unknown UPOS", [W(1, "a", "NOUNX", 0, "root")], 1, "unknown UPOS 'NOUNX'"),
    ("blank UPOS", [W(1, "a", "_", 0, "root")], 1, "unknown UPOS '_'"),
    ("unknown DEPREL", [W(1, "a", "NOUN", 2, "subj"), W(2, "b", "VERB", 0, "root")], 1, "unknown DEPREL 'subj'"),
    ("bad subtype", [W(1, "a", "NOUN", 2, "nmod:Poss"), W(2, "b", "VERB", 0, "root")], 1, "unknown DEPREL"),
    ("blank DEPREL", [W(1, "a", "NOUN", 2, "_"), W(2, "b", "VERB", 0, "root")], 1, "has no DEPREL"),
    ("empty FORM", ["1\t\ta\tNOUN\t_\t_\t0\troot\t_\t_"], 1, "column FORM is empty"),
    ("HEAD out of range", [W(1, "a", "NOUN", 5, "nsubj"), W(2, "b", "VERB", 0, "root")], 1, "HEAD 5 outside 0..2"),
    ("root DEPREL on a dependent", [W(1, "a", "NOUN", 2, "root"), W(2, "b", "VERB", 0, "root")], 1,
     "DEPREL is root exactly when HEAD is 0"),
    ("comment inside the sentence", [W(1, "a", "NOUN", 2, "nsubj"), "# sent_id = other",
                                     W(2, "b", "VERB", 0, "root")], 2, "comment line inside a sentence"),
    ("whitespace-only line detaching the metadata", ["  ", W(1, "a", "VERB", 0, "root")], 1,
     "whitespace-only line"),
    ("multiword range beyond the sentence", [W(1, "a", "NOUN", 2, "nsubj"), "2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_",
                                             W(2, "b", "VERB", 0, "root")], 2, "goes beyond the sentence's last word 2"),
    ("word line ending in a TAB", [W(1, "a", "VERB", 0, "root") + "\t"], 1, "found 11 (the line ends with a TAB)"),
    ("9 columns and a trailing TAB", ["1\ta\ta\tVERB\t_\t_\t0\troot\t_\t"], 1, "column MISC is empty"),
    ("second sent_id", ["# sent_id = again", W(1, "a", "VERB", 0, "root")], 1, "second # sent_id"),
    ("empty sent_id", [W(1, "a", "VERB", 0, "root")], -1, "empty sent_id"),
    # issue 25 item 10: empty nodes (order and content), FEATS and DEPS syntax (UD level 2)
    ("empty node numbered from 2", [W(1, "a", "VERB", 0, "root"), E("1.2", "2:conj")], 2, "expected 1.1"),
    ("empty nodes out of order", [W(1, "a", "VERB", 0, "root"), E("1.1", "1:conj"), E("1.3", "1:conj")], 3,
     "expected 1.2"),
    ("empty node with a HEAD", [W(1, "a", "VERB", 0, "root"), E("1.1", "1:conj", head="1", rel="conj")], 2,
     "both must be _"),
    ("empty node with a bad UPOS", [W(1, "a", "VERB", 0, "root"), E("1.1", "1:conj", upos="VERBX")], 2,
     "empty node 1.1 has unknown UPOS 'VERBX'"),
    ("empty node without DEPS", [W(1, "a", "VERB", 0, "root"), E("1.1", "_")], 2, "has no DEPS"),
    ("empty node DEPS to itself", [W(1, "a", "VERB", 0, "root"), E("1.1", "1.1:conj")], 2, "1.1 is its own head"),
    ("empty node DEPS to nowhere", [W(1, "a", "VERB", 0, "root"), E("1.1", "7:conj")], 2,
     "DEPS head 7 (7:conj), which is not in the sentence"),
    ("DEPS to a missing empty node", [W(1, "a", "NOUN", 2, "nsubj", deps="1.1:nsubj"), W(2, "b", "VERB", 0, "root")],
     1, "DEPS head 1.1 (1.1:nsubj), which is not in the sentence"),
    ("unsorted FEATS", [W(1, "a", "NOUN", 0, "root", feats="Number=Sing|Case=Nom")], 1, "not sorted by name"),
    ("repeated feature", [W(1, "a", "NOUN", 0, "root", feats="Case=Acc|Case=Nom")], 1, "feature Case appears twice"),
    ("unsorted feature values", [W(1, "a", "NOUN", 0, "root", feats="Number=Sing,Plur")], 1,
     "the values of 'Number=Sing,Plur' are not sorted"),
    ("feature without a value", [W(1, "a", "NOUN", 0, "root", feats="Number")], 1, "'Number' is not Feature=Value"),
    ("lowercase feature", [W(1, "a", "NOUN", 0, "root", feats="number=Sing")], 1, "is not Feature=Value"),
    ("DEPS not pairs", [W(1, "a", "NOUN", 0, "root", deps="0")], 1, "is not a list of HEAD:DEPREL pairs"),
    ("DEPS unsorted", [W(1, "a", "NOUN", 2, "nsubj", deps="2:nsubj|0:root"), W(2, "b", "VERB", 0, "root")], 1,
     "not sorted by head"),
    ("DEPS repeated", [W(1, "a", "NOUN", 2, "nsubj", deps="2:nsubj|2:nsubj"), W(2, "b", "VERB", 0, "root")], 1,
     "repeats a pair"),
    ("DEPS root not at 0", [W(1, "a", "NOUN", 2, "nsubj", deps="2:root"), W(2, "b", "VERB", 0, "root")], 1,
     "root exactly when the head is 0"),
    ("DEPS unknown relation", [W(1, "a", "NOUN", 2, "nsubj", deps="2:subj"), W(2, "b", "VERB", 0, "root")], 1,
     "unknown enhanced relation 'subj'"),
    ("DEPS uppercase extension", [W(1, "a", "NOUN", 2, "nsubj", deps="2:obl:Za"), W(2, "b", "VERB", 0, "root")], 1,
     "unknown enhanced relation 'obl:Za'"),
    ("DEPS head not an ID", [W(1, "a", "NOUN", 2, "nsubj", deps="01:nsubj"), W(2, "b", "VERB", 0, "root")], 1,
     "DEPS '01:nsubj'"),
]


@pytest.mark.parametrize("name, body, offset, message", CONLLU_CASES, ids=[c[0] for c in CONLLU_CASES])
def test_invalid_conllu_is_one_error_with_file_and_line(tmp_path, name, body, offset, message):
    head = ["# sent_id = s"] if offset != -1 else ["# sent_id = "]
    lines = GOOD_A + [""] + head + body + [""] + GOOD_B + [""]
    path = _file(tmp_path, lines)
    err = _error(path)
    # offset k >= 1: the k-th line of the body; -1: the bad sentence's own sent_id comment
    expected = _AFTER + max(offset, 0)
    assert err.line == expected, (name, str(err))
    assert message in err.message, (name, str(err))
    # errors="skip": the two good sentences, and the bad one counted with the same error
    with pytest.warns(SkippedSentencesWarning, match="skipped 1 invalid sentence"):
        res = read_conllu(path, "en", errors="skip")
    assert isinstance(res, ReadResult) and [s.sent_id for s in res] == ["a", "b"]
    assert [(e.line, e.message) for e in res.skipped] == [(err.line, err.message)]


def test_a_comment_only_block_is_no_sentence(tmp_path):
    path = _file(tmp_path, GOOD_A + ["", "# sent_id = lost", "# text = nothing", ""] + GOOD_B + [""])
    err = _error(path)
    assert err.line == 7 and "comment lines with no word line" in err.message


def test_invalid_utf8_names_file_and_line(tmp_path):
    text = ("\n".join(GOOD_A) + "\n\n" + "\n".join(GOOD_B) + "\n\n").encode("utf-8")
    bad = text.replace(b"Dogs", b"D\xffgs")
    path = _file(tmp_path, bad)
    err = _error(path)
    assert err.line == 8 and "invalid UTF-8" in err.message
    iob = tmp_path / "x.iob2"
    iob.write_bytes(b"# sent_id = a\n1\tin\tO\t-\t-\n2\tBerl\xc3in\tB-LOC\t-\t-\n\n")
    err = _error(iob, read_iob2, Iob2FormatError)
    assert err.line == 3 and "invalid UTF-8" in err.message


def test_a_bom_and_crlf_are_accepted(tmp_path):
    plain = read_conllu(_file(tmp_path, GOOD_A + [""] + GOOD_B + [""], "plain.conllu"), "en")
    text = ("\r\n".join(GOOD_A + [""] + GOOD_B + [""]) + "\r\n").encode("utf-8")
    bom = read_conllu(_file(tmp_path, b"\xef\xbb\xbf" + text, "bom.conllu"), "en")
    assert [(s.sent_id, s.words, s.heads, s.upos, s.deprels, s.text) for s in bom] == \
        [(s.sent_id, s.words, s.heads, s.upos, s.deprels, s.text) for s in plain]
    iob = tmp_path / "bom.iob2"
    iob.write_bytes(b"\xef\xbb\xbf# sent_id = a\r\n1\tin\tO\t-\t-\r\n2\tBerlin\tB-LOC\t-\t-\r\n\r\n")
    (s,) = read_iob2(iob, "de")
    assert (s.sent_id, s.words, s.ner) == ("a", ["in", "Berlin"], ["O", "B-LOC"])


def test_duplicate_sent_ids_are_refused(tmp_path):
    path = _file(tmp_path, GOOD_A + [""] + GOOD_A + [""])
    err = _error(path)
    assert err.line == 7 and "duplicate sent_id 'a'" in err.message


def test_enhanced_annotation_that_ud_allows_is_read(tmp_path):
    """Empty nodes in order with DEPS, sorted FEATS with several values and a layer, DEPS with the
    validator's extensions (a Unicode preposition, a case), ref, and an empty node as a head."""
    lines = ["# sent_id = s",
             W(1, "a", "NOUN", 2, "nsubj", feats="Case=Nom|Number=Plur,Sing|Number[psor]=Sing",
               deps="1.1:ref|2:nsubj|2:obl:в_течение:gen"),
             E("1.1", "2:nsubj:xsubj", upos="PRON"), E("1.2", "0:root|1:conj"),
             W(2, "b", "VERB", 0, "root", deps="0:root"), ""]
    (s,) = read_conllu(_file(tmp_path, lines), "ru")
    assert s.words == ["a", "b"] and s.heads == [2, 0] and s.deprels == ["nsubj", "root"]


def test_a_40000_word_sentence_reads_in_linear_time(tmp_path):
    """The cycle check walks each word up once (it was quadratic: 11.8 s for this sentence). A chain
    (word k's head is k + 1) is the worst case for it. Timed against a sentence 8 times shorter:
    linear time gives a ratio near 8, the quadratic walk gave about 60; the bounds leave a wide margin
    for a busy machine."""
    import time

    def chain(n, name):
        lines = ["# sent_id = long"] + [W(k, f"w{k}", "NOUN", k + 1, "dep") for k in range(1, n)] \
            + [W(n, f"w{n}", "VERB", 0, "root"), ""]
        return _file(tmp_path, lines, name)

    small, big = chain(5_000, "small.conllu"), chain(40_000, "big.conllu")
    assert big.stat().st_size > 1_200_000

    def best(path, runs):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            (s,) = read_conllu(path, "xx")
            times.append(time.perf_counter() - t)
        return min(times), s

    t_small, _ = best(small, 3)
    t_big, s = best(big, 1)
    assert len(s) == 40_000 and s.heads[:3] == [2, 3, 4] and s.heads[-1] == 0
    assert t_big < 20 * t_small + 0.5, (t_small, t_big)  # linear: about 8x
    assert t_big < 3.0, t_big  # about 0.5 s on 2 busy cores; the quadratic check took 7-12 s


def test_subtypes_are_accepted_and_stripped(tmp_path):
    (s,) = read_conllu(_file(tmp_path, ["# sent_id = s", W(1, "a", "NOUN", 2, "nmod:poss"),
                                        W(2, "b", "VERB", 0, "root"), ""]), "en")
    assert s.deprels == ["nmod", "root"]


# ---------------------------------------------------------------------------------------------- IOB2

IOB_GOOD = "# sent_id = a\n# text = in Berlin\n1\tin\tO\t-\t-\n2\tBerlin\tB-LOC\t-\tx\n\n"


@pytest.mark.parametrize("body, line, message", [
    ("# sent_id = b\n1\tx\tO\t-\t-\t\n\n", 7, "column 6 is empty (the line ends with a TAB)"),
    ("# sent_id = b\n1\t\tO\t-\t-\n\n", 7, "column 2 is empty"),
    ("# sent_id = b\n# text = nothing\n\n", 6, "comment lines with no token line"),
    ("# sent_id = b\n1\tx\tO\t-\t-\n# sent_id = c\n2\ty\tO\t-\t-\n\n", 8, "comment line inside a sentence"),
    ("# sent_id = b\n \n1\tx\tO\t-\t-\n\n", 7, "whitespace-only line"),
    ("# sent_id = a\n1\tx\tO\t-\t-\n\n", 6, "duplicate sent_id 'a'"),
    ("# sent_id = b\n1\tx\tB-MISC\t-\t-\n\n", 7, "unknown tag 'B-MISC'"),
])
def test_invalid_iob2_is_one_error_with_file_and_line(tmp_path, body, line, message):
    path = tmp_path / "x.iob2"
    path.write_text(IOB_GOOD + body, encoding="utf-8")
    err = _error(path, read_iob2, Iob2FormatError)
    assert (err.line, message in err.message) == (line, True), str(err)
    with pytest.warns(SkippedSentencesWarning):
        res = read_iob2(path, "de", errors="skip")
    assert [s.sent_id for s in res] == ["a"] and [e.line for e in res.skipped] == [line]


def test_one_iob2_policy_a_stray_i_begins_an_entity(tmp_path):
    assert repair_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC"]) == (
        ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-LOC"], 3)
    path = tmp_path / "stray.iob2"
    path.write_text("# sent_id = a\n1\tin\tO\t-\t-\n2\tBerlin\tI-LOC\t-\t-\n3\tcity\tI-LOC\t-\t-\n\n", encoding="utf-8")
    with pytest.warns(RepairedTagsWarning, match="1 stray I- tag"):
        res = read_iob2(path, "de")
    assert res[0].ner == ["O", "B-LOC", "I-LOC"] and res.repaired == 1
    # predictions are scored under the same policy: a stray I- prediction finds the gold entity
    from xlt_utils.evaluation import score

    assert score("ner", res, [["O", "I-LOC", "I-LOC"]])["f1"] == 100.0
    assert score("ner", res, [["O", "B-LOC", "I-LOC"]])["f1"] == 100.0


def test_wikiann_rows_get_the_same_repair():
    from xlt_utils.data.real import wikiann_to_sentences

    class _Feature:
        names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]

    class _Rows(list):
        features = {"ner_tags": type("F", (), {"feature": _Feature})}

    (s,) = wikiann_to_sentences(_Rows([{"tokens": ["Anna", "Berg"], "ner_tags": [2, 2]}]), "de", "test")
    assert s.ner == ["B-PER", "I-PER"]


# -------------------------------------------------------------------------------------------- writers


def _s(**kw):
    base = dict(sent_id="s1", lang="en", words=["The", "cat"], upos=["DET", "NOUN"], heads=[2, 0],
                deprels=["det", "root"], ner=["O", "B-PER"])
    base.update(kw)
    return Sentence(**base)


@pytest.mark.parametrize("kw, message", [
    (dict(words=["The", "c\tat"]), "word 2: FORM 'c\\tat' holds a TAB"),
    (dict(words=["The", "c\nat"]), "word 2: FORM 'c\\nat' holds a TAB, a newline"),
    (dict(words=["The", ""]), "word 2: FORM is empty"),
    (dict(text="two\nlines"), "text 'two\\nlines' holds"),
    (dict(sent_id="a\tb"), "sent_id 'a\\tb' holds"),
    (dict(upos=["DET", "NOUNX"]), "unknown UPOS 'NOUNX'"),
    (dict(heads=[2, 1]), "DEPREL is root exactly when HEAD is 0"),
    (dict(heads=[1, 0]), "its own head"),
])
def test_write_conllu_refuses_what_it_cannot_read_back(tmp_path, kw, message):
    path = tmp_path / "out.conllu"
    bad = _s(**kw) if "sent_id" in kw else _s(sent_id="s2", **kw)
    with pytest.raises(DataFormatError) as e:
        write_conllu([_s(), bad], path)
    assert message in str(e.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # no temporary file left


def test_write_conllu_never_writes_through_a_planted_symlink(tmp_path):
    """The temporary name was predictable (`out.conllu.part`): a symlink planted there had its target
    overwritten. It is now created exclusively under a random name."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "out.conllu.part").symlink_to(target)
    write_conllu([_s()], tmp_path / "out.conllu")
    assert target.read_text() == "keep me" and (tmp_path / "out.conllu").read_text().startswith("# sent_id")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.txt", "out.conllu", "out.conllu.part"]


def test_writers_round_trip(tmp_path):
    sents = [_s(), _s(sent_id="s2", words=["a b", "_"], text="a b _")]
    write_conllu(sents, tmp_path / "x.conllu")
    back = read_conllu(tmp_path / "x.conllu", "en")
    assert [(s.sent_id, s.words, s.upos, s.heads, s.deprels, s.text) for s in back] == \
        [(s.sent_id, s.words, s.upos, s.heads, s.deprels, s.text or " ".join(s.words)) for s in sents]
    write_iob2(sents, tmp_path / "x.iob2")
    assert [(s.sent_id, s.words, s.ner) for s in read_iob2(tmp_path / "x.iob2", "en")] == \
        [(s.sent_id, s.words, s.ner) for s in sents]


@pytest.mark.parametrize("kw, message", [
    (dict(words=["The", "c\tat"]), "holds a TAB"),
    (dict(ner=["O", "I-PER"]), "stray I- tag"),
    (dict(ner=["O", "B-MISC"]), "unknown tag 'B-MISC'"),
])
def test_write_iob2_refuses_what_it_cannot_read_back(tmp_path, kw, message):
    path = tmp_path / "out.iob2"
    with pytest.raises(DataFormatError, match=message):
        write_iob2([_s(**kw)], path)
    assert not path.exists()


def test_errors_must_be_raise_or_skip(tmp_path):
    path = _file(tmp_path, GOOD_A + [""])
    with pytest.raises(ValueError, match="errors must be one of 'raise', 'skip'"):
        read_conllu(path, "en", errors="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_conllu(path, "en", errors="skip").skipped == []


def test_icelandic_is_a_pud_language_with_only_a_test_split():
    from xlt_utils.data.real import ud_file_name

    assert ud_file_name("is", "test") == "ud/UD_Icelandic-PUD/is_pud-ud-test.conllu"
    with pytest.raises(ValueError, match="'is' is a PUD language with only a test split"):
        ud_file_name("is", "train")


def test_load_ud_passes_errors_skip_to_the_reader(tmp_path, monkeypatch):
    """A learner's messy copy under XLT_DATA_DIR: errors='skip' reads what is valid and says what it left out."""
    from xlt_utils.data.real import load_ud, ud_file_name

    name = ud_file_name("is", "test")
    local = tmp_path / name
    local.parent.mkdir(parents=True)
    local.write_text("\n".join(GOOD_A + [""] + ["# sent_id = bad", W(1, "a", "NOUN", 1, "dep"), ""] + GOOD_B) + "\n\n",
                     encoding="utf-8")
    monkeypatch.setattr("xlt_utils.data.download.load_manifest",
                        lambda: {name: {"url": "https://example.invalid/x.conllu", "sha256": None}})
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XLT_OFFLINE", "1")
    with pytest.raises(ConlluFormatError, match="line 8: word 1 is its own head"):
        load_ud("is", "test")
    with pytest.warns(SkippedSentencesWarning):
        res = load_ud("is", "test", errors="skip")
    assert [s.sent_id for s in res] == ["a", "b"] and res.skipped[0].sent_id == "bad"
