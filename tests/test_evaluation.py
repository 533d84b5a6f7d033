"""Prediction and zero-shot evaluation: order, one pass for all languages (labels and hidden states),
token-budget batches, tidy tables."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.evaluation import (
    METRICS,
    mean_pooled_states,
    predict,
    predict_languages,
    score,
    token_budget_batches,
    zero_shot_eval,
)
from xlt_utils.experiments import build_model, experiment_config, load_split
from xlt_utils.models import XltModel
from xlt_utils.pretrained import load_encoder, num_layers
from xlt_utils.profiles import get_profile


@pytest.fixture(scope="module")
def tok():
    return load_encoder(get_profile("toy"))[1]


def _model(task):
    torch.manual_seed(0)
    encoder, _ = load_encoder(get_profile("toy"))
    return XltModel(encoder, task, len(label_set(task))).eval()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["pos", "ner", "parse"])
def test_predictions_do_not_depend_on_batching_or_order(tok, task):
    model = _model(task)
    sents = load_toy("fr", "test", task)[:40]
    a = predict(model, tok, sents, batch_size=7, precision="fp32")
    b = predict(model, tok, sents[::-1], batch_size=40, precision="fp32")[::-1]
    assert a == b
    for s, p in zip(sents, a, strict=True):
        if task == "parse":
            heads, rels = p
            assert len(heads) == len(s) and heads.count(0) == 1 and set(rels) <= set(label_set("parse"))
        else:
            assert len(p) == len(s) and set(p) <= set(label_set(task))


@pytest.mark.slow
def test_hidden_states_come_from_the_same_pass(tok):
    model = _model("pos")
    sents = load_toy("ja", "test")[:30]
    preds, pooled = predict(model, tok, sents, batch_size=8, precision="fp32", pool=True)
    reference = mean_pooled_states(model, tok, [s.words for s in sents])
    assert pooled.shape == reference.shape == (num_layers(model) + 1, 30, model.encoder.config.hidden_size)
    assert torch.allclose(pooled, reference, atol=1e-5)
    assert preds == predict(model, tok, sents, precision="fp32")


@pytest.mark.slow
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


# ---------------------------------------------------------------------------------------------
# One pass for all languages (zero_shot_eval / predict_languages) vs one `predict` per language
# ---------------------------------------------------------------------------------------------


def _per_language_table(model, tok, data, task):
    """The old zero_shot_eval: one `predict` call (its own length-sorted batches) per language."""
    rows = []
    for lang, sents in data.items():
        preds = predict(model, tok, sents, precision="fp32")
        for metric, value in score(task, sents, preds).items():
            rows.append({"language": lang, "task": task, "metric": metric, "value": value,
                         "n": sum(len(s) for s in sents)})
    return pd.DataFrame(rows, columns=["language", "task", "metric", "value", "n"])


@pytest.fixture(scope="module")
def toy_pos():
    """The toy profile's POS model as an experiment builds it (fp32), and a few test sets."""
    cfg = experiment_config(get_profile("toy"), task="pos", seed=1)
    model, tokenizer = build_model(cfg)
    data = {lang: load_split(get_profile("toy"), lang, "pos", "test", 40) for lang in ("en", "fr", "ja", "ar")}
    return model.eval(), tokenizer, data


@pytest.mark.slow
@pytest.mark.parametrize("task", ["pos", "ner", "parse"])
def test_one_pass_equals_per_language_evaluation(task):
    model, tok = build_model(experiment_config(get_profile("toy"), task=task, seed=2))
    model.eval()
    data = {lang: load_split(get_profile("toy"), lang, task, "test", 25) for lang in ("en", "de", "tr", "ja")}
    one_pass = predict_languages(model, tok, data, precision="fp32")
    assert list(one_pass) == list(data)
    for lang, sents in data.items():
        assert one_pass[lang] == predict(model, tok, sents, precision="fp32"), lang
    table = zero_shot_eval(model, tok, data, precision="fp32")
    pd.testing.assert_frame_equal(table, _per_language_table(model, tok, data, task))
    assert table.metric.tolist()[: len(METRICS[task])] == list(METRICS[task])


@pytest.mark.slow
def test_languages_with_different_sentence_sets_are_split_back(toy_pos):
    model, tok, full = toy_pos
    en, fr, ja = full["en"], full["fr"], full["ja"]
    data = {  # different sizes, one sentence alone, an empty-ish overlap, the same sentences twice
        "fr": fr[:17], "en": en[:5], "ja": ja[:1], "en-again": en[3:9], "fr-reversed": fr[:17][::-1],
    }
    preds = predict_languages(model, tok, data, precision="fp32", batch_size=4, max_tokens=120)
    assert {lang: len(p) for lang, p in preds.items()} == {lang: len(s) for lang, s in data.items()}
    for lang, sents in data.items():
        assert preds[lang] == predict(model, tok, sents, precision="fp32"), lang
        assert [len(p) for p in preds[lang]] == [len(s) for s in sents]
    assert preds["en-again"][:2] == preds["en"][3:5]  # the same sentence gets the same labels
    assert preds["fr-reversed"] == preds["fr"][::-1]
    table = zero_shot_eval(model, tok, data, precision="fp32", batch_size=4, max_tokens=120)
    assert table.language.tolist() == list(data)
    assert table.n.tolist() == [sum(len(s) for s in sents) for sents in data.values()]
    pd.testing.assert_frame_equal(table, _per_language_table(model, tok, data, "pos"))


@pytest.mark.slow
def test_one_pass_does_not_depend_on_batching(toy_pos):
    model, tok, data = toy_pos
    ref = predict_languages(model, tok, data, precision="fp32")
    for batch_size, max_tokens in ((1, None), (7, 10**6), (128, 64), (64, 1)):
        assert predict_languages(model, tok, data, precision="fp32", batch_size=batch_size, max_tokens=max_tokens) == ref


@pytest.mark.slow
def test_states_for_cka_come_from_the_same_one_pass(toy_pos):
    model, tok, data = toy_pos
    table, states = zero_shot_eval(model, tok, data, precision="fp32", pool=True)
    pd.testing.assert_frame_equal(table, zero_shot_eval(model, tok, data, precision="fp32"))
    assert list(states) == list(data)
    for lang, sents in data.items():
        reference = mean_pooled_states(model, tok, [s.words for s in sents])
        assert states[lang].shape == reference.shape == (num_layers(model) + 1, len(sents), 128)
        assert not states[lang].is_inference()
        assert torch.allclose(states[lang], reference, atol=1e-5)


def test_token_budget_batches():
    lengths = [5, 40, 12, 40, 7, 300, 12, 1, 33]
    batches = token_budget_batches(lengths, batch_size=3, max_tokens=90)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [i for b in batches for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
    assert flat.index(1) < flat.index(3) and flat.index(2) < flat.index(6)  # ties keep input order
    assert batches[0] == [5]  # longer than the budget alone: a batch of one
    for b in batches:
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 90)
    assert token_budget_batches(lengths, batch_size=4, max_tokens=None) == [flat[:4], flat[4:8], flat[8:]]
    assert token_budget_batches([], 8) == []
    with pytest.raises(ValueError):
        token_budget_batches(lengths, batch_size=0)


# ------------------------------------------------------------------ issue 25 item 8: long sentences for CKA


def _long_words(n, seed=0):
    words = [s.words for s in load_toy("en", "test", "pos")[:60]]
    flat = [w for ws in words for w in ws]
    return (flat * (n // len(flat) + 1))[seed:seed + n]


@pytest.mark.slow
def test_mean_pooled_states_windows_sentences_longer_than_the_model(tok):
    """The toy BERT takes 128 subwords: sentences of 200 and 1,000 words used to raise an error
    advising overflow options that mean_pooled_states does not take. They are read through
    overlapping windows, and the short ones get exactly the states they get on their own."""
    torch.set_num_threads(1)
    model = _model("pos")
    short = [s.words for s in load_toy("en", "test", "pos")[:3]]
    sents = [short[0], _long_words(200), short[1], _long_words(1000, seed=7), short[2]]
    states = mean_pooled_states(model, tok, sents)
    assert states.shape == (num_layers(model) + 1, 5, model.encoder.config.hidden_size)
    assert torch.isfinite(states).all()
    alone = mean_pooled_states(model, tok, short)
    assert torch.equal(states[:, [0, 2, 4]], alone)
    # the same pooling as evaluation's one pass (predict(pool=True)), which windows long sentences too
    from xlt_utils.data.records import Sentence

    records = [Sentence(f"s{i}", "en", list(w), upos=["X"] * len(w)) for i, w in enumerate(sents)]
    _, pooled = predict(model, tok, records, precision="fp32", pool=True)
    assert torch.allclose(pooled, states, atol=1e-5)


def test_windowed_mean_is_the_mean_over_each_subwords_central_window(tok):
    """Written out: every window run on its own, each subword's state taken from its window."""
    from xlt_utils.evaluation import subword_windows
    from xlt_utils.tokenization import encode_words

    encoder = _model("pos").encoder
    words = _long_words(150)
    (enc,) = encode_words(tok, [words], overflow="keep")
    ids, limit = enc.input_ids, 40
    body = ids[1:-1]
    starts, owner = subword_windows(len(body), limit - 2)
    with torch.inference_mode():
        outs = [encoder(input_ids=torch.tensor([[ids[0], *body[a:a + limit - 2], ids[-1]]]),
                        output_hidden_states=True).hidden_states for a in starts]
    want = torch.stack([torch.stack([outs[owner[t]][layer][0, t - starts[owner[t]] + 1] for t in range(len(body))])
                        .mean(0) for layer in range(len(outs[0]))])
    got = mean_pooled_states(encoder, tok, [words], max_length=limit)
    assert len(starts) > 3 and got.shape == (want.shape[0], 1, want.shape[1])
    assert torch.allclose(got[:, 0], want, atol=1e-5)
    with pytest.raises(ValueError, match="max_length=2 leaves no room"):
        mean_pooled_states(encoder, tok, [words], max_length=2)
