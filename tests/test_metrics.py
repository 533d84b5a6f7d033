"""Tag accuracy, strict-IOB2 span F1 (against seqeval itself) and CoNLL 2018 UAS/LAS."""

from __future__ import annotations

import copy
import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from xlt_utils.data import NER_TAGS, read_conllu
from xlt_utils.metrics import accuracy, attachment_scores, span_f1

# ----------------------------------------------------------------------------- accuracy


def test_accuracy_known_answers():
    gold = [["NOUN", "VERB", "PUNCT"], ["DET", "NOUN"]]
    assert accuracy(gold, gold) == 1.0
    assert accuracy(gold, [["NOUN", "NOUN", "PUNCT"], ["DET", "ADJ"]]) == 3 / 5
    assert accuracy([["A"] * 4], [["B"] * 4]) == 0.0


def test_accuracy_rejects_mismatches():
    with pytest.raises(ValueError, match="sentence 1 has 2 gold tokens but 1"):
        accuracy([["A"], ["A", "B"]], [["A"], ["A"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        accuracy([["A"], ["B"]], [["A"]])
    with pytest.raises(ValueError, match="no tokens"):
        accuracy([[]], [[]])


# ----------------------------------------------------------------------------- span F1


def test_span_f1_known_answer():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    r = span_f1(gold, pred, per_type=True)
    assert (r["precision"], r["recall"], r["f1"], r["support"]) == (
        2 / 3,
        2 / 3,
        pytest.approx(2 / 3),
        3,
    )
    assert r["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert r["per_type"]["LOC"]["recall"] == 0.0 and r["per_type"]["LOC"]["support"] == 1
    assert r["per_type"]["ORG"]["precision"] == 0.5 and r["per_type"]["ORG"]["recall"] == 1.0
    # exact span needed: a truncated span is a miss and a false positive
    assert span_f1([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0


def test_span_f1_malformed_iob2_is_ignored_in_strict_mode():
    """Strict IOB2: an I-X without a preceding B-X / I-X starts no entity and is ignored."""
    # A lone I- run is no entity at all, in gold or in prediction.
    r = span_f1([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]], mode="strict")
    assert r == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # seqeval's default (conlleval) mode reads it as a PER entity and gives 1.0:
    assert f1_score([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]]) == 1.0
    # I- of another type ends the entity: B-PER I-LOC is PER over the first token only.
    r = span_f1([["B-PER", "O"]], [["B-PER", "I-LOC"]], per_type=True, mode="strict")
    assert r["f1"] == 1.0 and set(r["per_type"]) == {"PER"}
    # Gold made only of malformed tags has no entities: every score is 0 (zero_division=0).
    assert span_f1([["I-LOC", "I-LOC"]], [["I-LOC", "I-LOC"]], per_type=True, mode="strict") == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "per_type": {},
    }  # fmt: skip
    assert span_f1([["I-LOC"]], [["I-LOC"]], zero_division=1, mode="strict")["f1"] == 1.0


def test_span_f1_default_mode_reads_stray_i_tags_as_entities():
    """The default mode (XTREME's number): a stray I-X starts an entity, in gold and prediction."""
    r = span_f1([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]])
    assert r == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # B-PER I-LOC: PER then LOC; the LOC is a false positive here
    r = span_f1([["B-PER", "O"]], [["B-PER", "I-LOC"]], per_type=True)
    assert (r["precision"], r["recall"]) == (0.5, 1.0) and set(r["per_type"]) == {"PER", "LOC"}
    assert span_f1([["I-LOC", "I-LOC"]], [["I-LOC", "I-LOC"]])["support"] == 1
    with pytest.raises(ValueError, match="unknown span_f1 mode 'conll'; valid modes: default, strict"):
        span_f1([["O"]], [["O"]], mode="conll")


def test_the_two_modes_differ_on_malformed_predictions_as_documented():
    """A model that often starts entities with I- (a common failure): strict mode ignores those
    predictions, so it scores a false positive less and a miss more than the default mode."""
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"]] * 3
    pred = [["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "O", "O"],   # stray I-PER (a hit by default), stray I-ORG
            ["B-PER", "I-PER", "O", "I-LOC", "O", "B-ORG", "I-ORG"],  # stray I-LOC: a hit by default
            ["O", "O", "O", "B-LOC", "I-PER", "B-ORG", "I-ORG"]]  # B-LOC I-PER: LOC + PER by default
    d, s = span_f1(gold, pred), span_f1(gold, pred, mode="strict")
    assert d["support"] == s["support"] == 9
    # default: 9 predicted (PER, LOC, ORG | PER, LOC, ORG | LOC, PER, ORG), 7 right (two stray-I hits)
    assert (d["precision"], d["recall"]) == (pytest.approx(7 / 9), pytest.approx(7 / 9))
    # strict: the stray-I entities vanish (hits and false positives alike): LOC | PER, ORG | LOC, ORG
    assert (s["precision"], s["recall"]) == (1.0, pytest.approx(5 / 9))
    # so strict mode is higher when the stray I- tags are mostly wrong, lower when mostly right
    wrong = [["O", "B-PER", "I-PER", "O", "I-ORG", "I-ORG"]]
    gold2 = [["O", "B-PER", "I-PER", "O", "O", "O"]]
    assert span_f1(gold2, wrong, mode="strict")["f1"] == 1.0 > span_f1(gold2, wrong)["f1"] == pytest.approx(2 / 3)


def test_span_f1_rejects_bad_input():
    with pytest.raises(ValueError, match="tag 'PER'"):
        span_f1([["O", "PER"]], [["O", "O"]])
    with pytest.raises(ValueError, match="tag 'b-PER'"):
        span_f1([["O"]], [["b-PER"]])
    with pytest.raises(ValueError, match="sentence 0 has 2 gold tokens"):
        span_f1([["O", "O"]], [["O"]])
    # tuples are fine (seqeval itself insists on lists)
    assert span_f1((("B-PER",),), (("B-PER",),))["f1"] == 1.0


tag_seqs = st.lists(
    st.lists(st.sampled_from(NER_TAGS), min_size=1, max_size=12), min_size=1, max_size=8
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_span_f1_agrees_with_seqeval(data):
    """Random tag sequences (malformed IOB2 included) give seqeval's numbers in both modes."""
    gold = data.draw(tag_seqs)
    lengths = [len(s) for s in gold]
    pred = [data.draw(st.lists(st.sampled_from(NER_TAGS), min_size=n, max_size=n)) for n in lengths]
    if data.draw(st.booleans()):  # often reuse gold spans so that hits happen
        pred = [
            [g if data.draw(st.booleans()) else p for g, p in zip(gs, ps, strict=True)]
            for gs, ps in zip(gold, pred, strict=True)
        ]
    kw = dict(mode="strict", scheme=IOB2, zero_division=0)
    r = span_f1(gold, pred, per_type=True, mode="strict")
    default = span_f1(gold, pred, per_type=True)
    assert default["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0))
    assert default["precision"] == pytest.approx(precision_score(gold, pred, zero_division=0))
    assert default["recall"] == pytest.approx(recall_score(gold, pred, zero_division=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dreport = classification_report(gold, pred, output_dict=True, zero_division=0)
    assert set(default["per_type"]) == {k for k in dreport if not k.endswith(" avg")}
    for t, got in default["per_type"].items():
        assert got["f1"] == pytest.approx(dreport[t]["f1-score"]) and got["support"] == dreport[t]["support"]
    assert r["precision"] == pytest.approx(precision_score(gold, pred, **kw))
    assert r["recall"] == pytest.approx(recall_score(gold, pred, **kw))
    assert r["f1"] == pytest.approx(f1_score(gold, pred, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's mean of an empty macro average
        report = classification_report(gold, pred, output_dict=True, **kw)
    types = {k for k in report if not k.endswith(" avg")}
    assert set(r["per_type"]) == types
    for t in types:
        want = report[t]
        got = r["per_type"][t]
        assert got["precision"] == pytest.approx(want["precision"])
        assert got["recall"] == pytest.approx(want["recall"])
        assert got["f1"] == pytest.approx(want["f1-score"])
        assert got["support"] == want["support"]
    assert r["support"] == report["micro avg"]["support"]


# ----------------------------------------------------------------------------- UAS / LAS


def twenty_words():
    heads = [2, 0, 2, 5, 3, 5, 8, 6, 2, 11, 9, 11, 14, 12, 2, 17, 15, 17, 2, 2]
    rels = ["nsubj", "root", "obj", "det", "nmod", "amod", "case", "nmod", "conj", "det",
            "obj", "punct", "case", "obl", "conj", "det", "obj", "amod", "advmod", "punct"]  # fmt: skip
    return heads, rels


def test_attachment_scores_exact_perturbations():
    gh, gr = twenty_words()
    assert attachment_scores([gh], [gr], [gh], [gr]) == {"uas": 1.0, "las": 1.0}
    ph = list(gh)
    for i in (0, 6, 13):  # three wrong heads out of 20
        ph[i] = ph[i] % 20 + 1
    assert attachment_scores([gh], [gr], [ph], [gr]) == {"uas": 17 / 20, "las": 17 / 20}
    pr = list(gr)
    for i in (3, 10):  # two wrong relations on words with the right head: LAS only
        pr[i] = "dep"
    assert attachment_scores([gh], [gr], [gh], [pr]) == {"uas": 1.0, "las": 18 / 20}
    pr[0] = "dep"  # a wrong relation on a word whose head is also wrong costs nothing more
    assert attachment_scores([gh], [gr], [ph], [pr]) == {"uas": 17 / 20, "las": 15 / 20}


def test_attachment_scores_ignore_subtypes_and_count_punctuation():
    gh, gr = twenty_words()
    sub = [r + ":poss" if r == "nmod" else r for r in gr]
    sub[0] = "nsubj:pass"
    assert attachment_scores([gh], [gr], [gh], [sub]) == {"uas": 1.0, "las": 1.0}
    assert attachment_scores([gh], [sub], [gh], [gr]) == {"uas": 1.0, "las": 1.0}
    ph = list(gh)
    ph[11] = 1  # word 12 is punctuation: it counts like any other word
    assert attachment_scores([gh], [gr], [ph], [gr])["uas"] == 19 / 20
    # Micro-average over words, not over sentences.
    two = attachment_scores([gh, [0]], [gr, ["root"]], [ph, [0]], [gr, ["root"]])
    assert two == {"uas": 20 / 21, "las": 20 / 21}


def test_attachment_scores_rejects_mismatches():
    with pytest.raises(ValueError, match="sentence 0 has 2 gold tokens but 1"):
        attachment_scores([[0, 1]], [["root", "obj"]], [[0]], [["root"]])
    with pytest.raises(ValueError):
        attachment_scores([[0, 1]], [["root"]], [[0, 1]], [["root", "obj"]])
    with pytest.raises(ValueError, match="no words"):
        attachment_scores([], [], [], [])


# ----------------------------------------------------------------------------- real PUD files


@pytest.fixture(scope="module")
def pud(shared_data):
    files = sorted((shared_data / "ud").glob("UD_*-PUD/*_pud-ud-test.conllu"))
    return {f.name.split("_")[0]: read_conllu(f, f.name.split("_")[0]) for f in files}


@pytest.mark.slow
def test_pud_gold_against_itself(pud):
    assert len(pud) == 21
    for lang, sents in pud.items():
        heads = [s.heads for s in sents]
        rels = [s.deprels for s in sents]
        assert attachment_scores(heads, rels, copy.deepcopy(heads), copy.deepcopy(rels)) == {
            "uas": 1.0, "las": 1.0,
        }, lang  # fmt: skip
        upos = [s.upos for s in sents]
        assert accuracy(upos, copy.deepcopy(upos)) == 1.0


@pytest.mark.parametrize("lang", ["en", "ja", "ar"])
def test_pud_perturbed_copy_gives_exact_numbers(pud, lang):
    sents = pud[lang]
    rng = random.Random(lang)
    pred_heads = [list(s.heads) for s in sents]
    pred_rels = [list(s.deprels) for s in sents]
    total = sum(len(s) for s in sents)
    n_head = n_rel_only = 0
    for k, s in enumerate(sents):
        n = len(s)
        for i in range(n):
            u = rng.random()
            if u < 0.10:  # wrong head (relation possibly also wrong: counted once)
                pred_heads[k][i] = (s.heads[i] + 1) % (n + 1)
                if rng.random() < 0.5:
                    pred_rels[k][i] = "dep" if s.deprels[i] != "dep" else "punct"
                n_head += 1
            elif u < 0.15:  # right head, wrong relation
                pred_rels[k][i] = "dep" if s.deprels[i] != "dep" else "punct"
                n_rel_only += 1
            elif u < 0.30:  # right head, right relation with a subtype added: still correct
                pred_rels[k][i] = s.deprels[i] + ":x"
    assert n_head > 100 and n_rel_only > 50
    got = attachment_scores(
        [s.heads for s in sents], [s.deprels for s in sents], pred_heads, pred_rels
    )
    assert got == {"uas": (total - n_head) / total, "las": (total - n_head - n_rel_only) / total}
