"""Prediction and zero-shot evaluation: order, one pass for labels and hidden states, tidy tables."""

from __future__ import annotations

import pytest
import torch

from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.evaluation import predict, score, zero_shot_eval
from xlt_utils.models import XltModel, load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.similarity import mean_pooled_states


@pytest.fixture(scope="module")
def tok():
    return load_encoder(get_profile("toy"))[1]


def _model(task):
    torch.manual_seed(0)
    encoder, _ = load_encoder(get_profile("toy"))
    return XltModel(encoder, task, len(label_set(task))).eval()


@pytest.mark.parametrize("task", ["pos", "ner", "parse"])
def test_predictions_do_not_depend_on_batching_or_order(tok, task):
    model = _model(task)
    sents = load_toy("fr", "test", task)[:40]
    a = predict(model, tok, sents, batch_size=7, bf16=False)
    b = predict(model, tok, sents[::-1], batch_size=40, bf16=False)[::-1]
    assert a == b
    for s, p in zip(sents, a, strict=True):
        if task == "parse":
            heads, rels = p
            assert len(heads) == len(s) and heads.count(0) == 1 and set(rels) <= set(label_set("parse"))
        else:
            assert len(p) == len(s) and set(p) <= set(label_set(task))


def test_hidden_states_come_from_the_same_pass(tok):
    model = _model("pos")
    sents = load_toy("ja", "test")[:30]
    preds, pooled = predict(model, tok, sents, batch_size=8, bf16=False, pool=True)
    reference = mean_pooled_states(model, tok, [s.words for s in sents])
    assert pooled.shape == reference.shape == (model.num_layers + 1, 30, model.encoder.config.hidden_size)
    assert torch.allclose(pooled, reference, atol=1e-5)
    assert preds == predict(model, tok, sents, bf16=False)


def test_gold_predictions_score_100_and_the_table_is_tidy(tok):
    sents = load_toy("de", "test", "parse")[:20]
    gold = [(s.heads, s.deprels) for s in sents]
    assert score("parse", sents, gold) == {"uas": 100.0, "las": 100.0}
    assert score("pos", sents, [s.upos for s in sents]) == {"accuracy": 100.0}
    table = zero_shot_eval(_model("pos"), tok, {"en": load_toy("en", "test")[:10], "ar": load_toy("ar", "test")[:10]})
    assert list(table.columns) == ["language", "task", "metric", "value", "n"]
    assert table.language.tolist() == ["en", "ar"] and (table.task == "pos").all()
    with pytest.raises(ValueError, match="fine-tuned for 'pos', not 'ner'"):
        zero_shot_eval(_model("pos"), tok, {"en": load_toy("en", "test")[:10]}, task="ner")
