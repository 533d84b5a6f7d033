"""Evaluation metrics on plain Python lists: tag accuracy, entity span F1, UAS/LAS.

No torch needed. Every function takes one list per sentence and checks that gold and
prediction have the same number of sentences and, per sentence, the same number of tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as default_prfs
from seqeval.metrics.v1 import precision_recall_fscore_support
from seqeval.scheme import IOB2, Entities


def _check_shapes(name: str, gold: Sequence[Sequence], pred: Sequence[Sequence]) -> int:
    """Raise on mismatched sentence/token counts; return the number of tokens."""
    if len(gold) != len(pred):
        raise ValueError(f"{name}: {len(gold)} gold sentences but {len(pred)} predicted")
    total = 0
    for k, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(
                f"{name}: sentence {k} has {len(g)} gold tokens but {len(p)} predicted"
            )
        total += len(g)
    return total


def accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Token-level accuracy in [0, 1] (e.g. UPOS); raises ValueError when there are no tokens."""
    total = _check_shapes("accuracy", gold, pred)
    if total == 0:
        raise ValueError("accuracy: no tokens to score")
    correct = sum(
        g == p for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)
    )
    return correct / total


def _check_tags(side: str, seqs: Sequence[Sequence[str]]) -> None:
    for k, seq in enumerate(seqs):
        for i, t in enumerate(seq):
            if t != "O" and not (len(t) > 2 and t[:2] in ("B-", "I-")):
                raise ValueError(
                    f"span_f1: {side} sentence {k}, token {i}: tag {t!r} is not O, B-type or I-type"
                )


SPAN_F1_MODES = ("default", "strict")
"""seqeval's two ways of reading entities: "default" (conlleval-compatible; XTREME's PAN-X number,
the main one here) and "strict" (IOB2 as specified)."""


def span_f1(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    per_type: bool = False,
    zero_division: int = 0,
    mode: str = "default",
) -> dict:
    """Entity-level (exact span and type) micro precision, recall and F1 with seqeval.

    Returns ``{"precision", "recall", "f1", "support"}`` (support: number of gold entities);
    with ``per_type=True`` also ``"per_type": {type: {"precision", "recall", "f1", "support"}}``
    for every type that occurs in gold or prediction. Undefined ratios (no gold or no predicted
    entity) are `zero_division` (0 by default, which is seqeval's value, without its warning).

    `mode` says how malformed IOB2 (an ``I-X`` that follows ``O`` or another type, or starts the
    sentence) is read, in gold and prediction alike:

    - ``"default"`` (seqeval's default, conlleval-compatible; the mode of XTREME's PAN-X scores,
      and the main number here): such an ``I-X`` *starts* an entity. ``["O", "I-PER", "I-PER"]``
      holds one PER entity over tokens 1-2; ``["B-PER", "I-LOC"]`` holds PER then LOC.
    - ``"strict"`` (``mode="strict", scheme=IOB2``): an entity must start with ``B-X`` and continues
      only over ``I-X`` of the same type; a stray ``I-X`` begins no entity and is ignored (neither a
      hit nor a false positive). ``["O", "I-PER", "I-PER"]`` holds no entity at all, and
      ``["B-PER", "I-LOC"]`` holds just PER over the first token. On a model's malformed
      predictions strict mode can score several points higher than the default mode.

    A tag that is neither ``O`` nor ``B-type``/``I-type`` raises ValueError.
    """
    if mode not in SPAN_F1_MODES:
        raise ValueError(f"unknown span_f1 mode {mode!r}; valid modes: {', '.join(SPAN_F1_MODES)}")
    _check_shapes("span_f1", gold, pred)
    _check_tags("gold", gold)
    _check_tags("predicted", pred)
    gold = [list(s) for s in gold]  # seqeval insists on lists of lists
    pred = [list(s) for s in pred]
    if mode == "strict":
        ents_true = Entities(gold, IOB2)
        ents_pred = Entities(pred, IOB2)
        types = sorted(ents_true.unique_tags | ents_pred.unique_tags)
        common = dict(
            scheme=IOB2, zero_division=zero_division, entities_true=ents_true, entities_pred=ents_pred
        )
        prfs = precision_recall_fscore_support
    else:
        types = sorted({t for seq in (gold, pred) for t, _, _ in get_entities(seq)})
        common = dict(zero_division=zero_division)
        prfs = default_prfs
    p, r, f, support = prfs(gold, pred, average="micro", **common)
    out = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(support)}
    if per_type:
        if types:
            ps, rs, fs, ss = prfs(gold, pred, average=None, **common)
        else:
            ps = rs = fs = ss = []
        out["per_type"] = {
            t: {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
            for t, a, b, c, d in zip(types, ps, rs, fs, ss, strict=True)
        }
    return out


def _universal(rel: str) -> str:
    return rel.split(":", 1)[0]


def attachment_scores(
    gold_heads: Sequence[Sequence[int]],
    gold_rels: Sequence[Sequence[str]],
    pred_heads: Sequence[Sequence[int]],
    pred_rels: Sequence[Sequence[str]],
) -> dict[str, float]:
    """Unlabelled and labelled attachment scores, ``{"uas": ..., "las": ...}`` in [0, 1].

    As in the CoNLL 2018 shared task evaluation on gold tokenisation: every syntactic word is
    counted, punctuation included; relations are compared on their universal part only (any
    subtype after ':' is stripped on both sides, e.g. ``nmod:poss`` == ``nmod``); LAS needs the
    right head and the right relation. Inputs are one list per sentence (heads 1-based, 0 = root).
    """
    total = _check_shapes("attachment_scores (heads)", gold_heads, pred_heads)
    _check_shapes("attachment_scores (gold heads vs gold rels)", gold_heads, gold_rels)
    _check_shapes("attachment_scores (gold vs predicted rels)", gold_rels, pred_rels)
    if total == 0:
        raise ValueError("attachment_scores: no words to score")
    uas = las = 0
    for gh, gr, ph, pr in zip(gold_heads, gold_rels, pred_heads, pred_rels, strict=True):
        for a, b, c, d in zip(gh, gr, ph, pr, strict=True):
            if int(a) == int(c):
                uas += 1
                las += _universal(b) == _universal(d)
    return {"uas": uas / total, "las": las / total}
