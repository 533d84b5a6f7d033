"""CoNLL-U and IOB2 readers on every real file in shared/data, and on malformed inputs."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from xlt_utils.data.conllu_io import ConlluFormatError, read_conllu
from xlt_utils.data.iob2 import Iob2FormatError, read_iob2
from xlt_utils.data.records import NER_TAGS, UPOS_TAGS

_INT_ID = re.compile(r"^[0-9]+\t")
_RANGE_ID = re.compile(r"^[0-9]+-[0-9]+\t")
_EMPTY_ID = re.compile(r"^[0-9]+\.[0-9]+\t")


def _direct_count(path: Path) -> tuple[list[list[str]], int, int]:
    """Word forms per sentence straight from the lines (ID column an integer), MWT and empty-node counts."""
    sents, cur, mwt, empty = [], [], 0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if cur:
                sents.append(cur)
            cur = []
        elif _INT_ID.match(line):
            cur.append(line.split("\t")[1])
        elif _RANGE_ID.match(line):
            mwt += 1
        elif _EMPTY_ID.match(line):
            empty += 1
    if cur:
        sents.append(cur)
    return sents, mwt, empty


# (sentences, words, MWT lines, empty nodes) from shared/data/README.md, counted independently
README_COUNTS = {
    "UD_English-EWT/en_ewt-ud-dev.conllu": (2001, 25147, 359, 4),
    "UD_Czech-PUD/cs_pud-ud-test.conllu": (1000, 18609, 45, 13),
    "UD_French-PUD/fr_pud-ud-test.conllu": (1000, 24726, 595, 0),
    "UD_Galician-PUD/gl_pud-ud-test.conllu": (1000, 23510, 1672, 0),
    "UD_Swedish-PUD/sv_pud-ud-test.conllu": (1000, 19076, 0, 9),
    "UD_English-Atis/en_atis-ud-train.conllu": (4274, 48655, 0, 0),
}


@pytest.mark.slow
def test_every_ud_file_parses_with_direct_word_counts(shared_data):
    files = sorted((shared_data / "ud").glob("*/*.conllu"))
    assert len(files) == 29  # 21 PUD + EWT dev/test + 3 GSD dev + Atis train/dev/test
    seen = {}
    for path in files:
        lang = path.name.split("_")[0]
        sents = read_conllu(path, lang)
        direct, mwt, empty = _direct_count(path)
        text = path.read_text(encoding="utf-8")
        assert len(sents) == text.count("\n# sent_id") + text.startswith("# sent_id"), path
        # every word line, and only word lines: MWT ranges expanded, empty nodes skipped
        assert [s.words for s in sents] == direct, path
        for s in sents:
            n = len(s)
            assert n > 0 and len(s.upos) == len(s.heads) == len(s.deprels) == n, (path, s.sent_id)
            assert all(0 <= h <= n for h in s.heads), (path, s.sent_id)
            assert s.heads.count(0) == 1, (path, s.sent_id)  # exactly one root
            assert set(s.upos) <= set(UPOS_TAGS), (path, s.sent_id)
            assert all(":" not in r for r in s.deprels), (path, s.sent_id)
            assert s.lang == lang and s.sent_id
        assert len({s.sent_id for s in sents}) == len(sents), path
        seen[f"{path.parent.name}/{path.name}"] = (len(sents), sum(map(len, sents)), mwt, empty)
    for name, counts in README_COUNTS.items():
        assert seen[name] == counts, name
    assert sum(c[2] for c in seen.values()) > 0 and sum(c[3] for c in seen.values()) > 0


def test_multiword_tokens_expand_and_empty_nodes_are_skipped(tmp_path):
    path = tmp_path / "mwt.conllu"
    path.write_text(
        "# sent_id = s1\n# text = Je vais au marché\n"
        "1\tJe\til\tPRON\t_\t_\t2\tnsubj\t_\t_\n"
        "2\tvais\taller\tVERB\t_\t_\t0\troot\t_\t_\n"
        "3-4\tau\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "3\tà\tà\tADP\t_\t_\t5\tcase\t_\t_\n"
        "4\tle\tle\tDET\t_\t_\t5\tdet\t_\t_\n"
        "4.1\tELLIPSIS\t_\tVERB\t_\t_\t_\t_\t2:conj\t_\n"
        "5\tmarché\tmarché\tNOUN\t_\t_\t2\tobl:mod\t_\t_\n\n",
        encoding="utf-8",
    )
    (s,) = read_conllu(path, "fr")
    assert s.words == ["Je", "vais", "à", "le", "marché"]
    assert s.heads == [2, 0, 5, 5, 2]
    assert s.deprels == ["nsubj", "root", "case", "det", "obl"]
    assert s.sent_id == "s1" and s.text == "Je vais au marché"


_GOOD = [
    "# sent_id = a",
    "1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_",
    "2\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_",
    "3\tsat\tsit\tVERB\t_\t_\t0\troot\t_\t_",
    "",
    "# sent_id = b",
    "1\tDogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_",
    "2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_",
    "",
]


def _with_bad_line(tmp_path, lineno: int, bad: str):
    """A copy of the good file with line `lineno` replaced by `bad`."""
    lines = list(_GOOD)
    lines[lineno - 1] = bad
    path = tmp_path / "bad.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "lineno, bad, message",
    [
        (7, "1\tDogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_", "expected 10 tab-separated columns, found 9"),
        (7, "1 Dogs dog NOUN _ _ 2 nsubj _ _", "expected 10 tab-separated columns, found 1"),
        (3, "x\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_", "invalid ID 'x'"),
        (3, "2a\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_", "invalid ID '2a'"),
        (8, "2\tbark\tbark\tVERB\t_\t_\troot\t0\t_\t_", "non-integer HEAD 'root'"),
        (8, "2\tbark\tbark\tVERB\t_\t_\t-1\troot\t_\t_", "non-integer HEAD '-1'"),
        (3, "2\tcat\tcat\tNOUN\t_\t_\t3\t_\t_\t_", "has no DEPREL"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, lineno, bad, message):
    path = _with_bad_line(tmp_path, lineno, bad)
    with pytest.raises(ConlluFormatError) as e:
        read_conllu(path, "en")
    assert f"{path}, line {lineno}:" in str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "lineno, bad, message",
    [
        (3, "2\tcat\tcat\tNOUN\t_\t_\t7\tnsubj\t_\t_", "word 2 has HEAD 7 outside 0..3"),
        (8, "2\tbark\tbark\tVERB\t_\t_\t3\troot\t_\t_", "DEPREL is root exactly when HEAD is 0"),
        (8, "2\tbark\tbark\tVERB\t_\t_\t3\tdep\t_\t_", "word 2 has HEAD 3 outside 0..2"),
        (3, "3\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_", "word ID 3 out of order: expected 2"),
    ],
)
def test_sentence_level_errors_name_file_and_the_word_line(tmp_path, lineno, bad, message):
    path = _with_bad_line(tmp_path, lineno, bad)
    with pytest.raises(ConlluFormatError) as e:
        read_conllu(path, "en")
    assert f"{path}, line {lineno}:" in str(e.value)
    assert (e.value.path, e.value.line) == (str(path), lineno)
    assert message in str(e.value)


def test_good_sample_reads(tmp_path):
    path = tmp_path / "good.conllu"
    path.write_text("\n".join(_GOOD) + "\n", encoding="utf-8")
    a, b = read_conllu(path, "en")
    assert (a.sent_id, a.words, a.heads) == ("a", ["The", "cat", "sat"], [2, 3, 0])
    assert (b.sent_id, b.words, b.heads) == ("b", ["Dogs", "bark"], [2, 0])


# ---------------------------------------------------------------------------------------- IOB2


@pytest.mark.slow
def test_every_uner_file_matches_its_upstream_stats(shared_data):
    files = sorted((shared_data / "uner").glob("*/*.iob2"))
    assert len(files) == 8
    for path in files:
        lang = path.name.split("_")[0]
        sents = read_iob2(path, lang)
        stats = json.loads(path.with_suffix(".stats").read_text(encoding="utf-8"))
        assert len(sents) == stats["num_sentences"], path
        assert sum(map(len, sents)) == stats["num_tokens"], path
        entities = Counter(t[2:] for s in sents for t in s.ner if t.startswith("B-"))
        assert dict(entities) == stats["label_distribution"], path
        for s in sents:
            assert len(s.ner) == len(s.words) > 0 and set(s.ner) <= set(NER_TAGS)
            for prev, tag in zip(
                ["O", *s.ner[:-1]], s.ner, strict=True
            ):  # IOB2: I-X only after B-X or I-X
                assert not tag.startswith("I-") or prev[2:] == tag[2:], (path, s.sent_id)
        assert len({s.sent_id for s in sents}) == len(sents), path


def test_iob2_tokens_may_contain_spaces(shared_data):
    sents = read_iob2(shared_data / "uner/UNER_Swedish-PUD/sv_pud-ud-test.iob2", "sv")
    assert sum(" " in w for s in sents for w in s.words) == 10  # shared/data/README.md


@pytest.mark.parametrize(
    "bad, message",
    [
        ("2\tBerlin\tB-MISC\t-\tx", "unknown tag 'B-MISC'"),
        ("2\tBerlin\tB-GPE\t-\tx", "unknown tag 'B-GPE'"),
        ("3\tBerlin\tB-LOC\t-\tx", "token index '3', expected 2"),
        ("2\tBerlin", "expected at least 3 TAB-separated columns, found 2"),
    ],
)
def test_malformed_iob2_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "bad.iob2"
    path.write_text(
        f"# sent_id = a\n# text = in Berlin\n1\tin\tO\t-\t-\n{bad}\n\n", encoding="utf-8"
    )
    with pytest.raises(Iob2FormatError) as e:
        read_iob2(path, "de")
    assert f"{path}, line 4:" in str(e.value) and message in str(e.value)
