"""Long sentences never abort a run: training truncates to the model's limit (and says how many labels
it dropped), evaluation scores every word through overlapping windows. With mBERT's real tokenizer and
the real UD English-EWT test file, whose longest sentence is one URL of 334 subwords."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from xlt_utils.data.records import Sentence, label_set
from xlt_utils.evaluation import predict, subword_windows, zero_shot_eval
from xlt_utils.training import (
    TrainConfig,
    TruncationWarning,
    fine_tune,
    make_examples,
    max_subwords,
)

URL_ID = "answers-20111108075238AAOhbL0_ans-0004"


@pytest.fixture(scope="module")
def ewt_test(shared_data):
    from xlt_utils import settings
    from xlt_utils.data.real import load_ud

    before = settings.current()
    settings.use(before.replace(data_dir=shared_data, offline="XLT_OFFLINE=1"))
    try:
        return load_ud("en", "test", treebank="UD_English-EWT")
    finally:
        settings.use(before)


@pytest.fixture(scope="module")
def long_sentences(ewt_test):
    """The URL sentence, one long sentence made of 40 consecutive EWT sentences (about 900 words,
    many more subwords than any BERT takes), and a few ordinary ones."""
    url = next(s for s in ewt_test if s.sent_id == URL_ID)
    parts = ewt_test[100:140]
    words, upos, heads, rels, offset = [], [], [], [], 0
    for s in parts:  # each part's root attaches to the first part's root: one tree
        words += s.words
        upos += s.upos
        heads += [h + offset if h else 0 for h in s.heads]
        rels += s.deprels
        offset += len(s)
    root = heads.index(0)
    heads = [h if (h or i == root) else root + 1 for i, h in enumerate(heads)]
    joined = Sentence("joined-100-139", "en", words, upos=upos, heads=heads, deprels=rels,
                      meta={"file": "ud/UD_English-EWT/en_ewt-ud-test.conllu (sentences 100-139 joined)"})
    return [url, joined, *ewt_test[:6]]


def _model(task: str, positions: int = 128):
    from xlt_utils.models import XltModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=119547, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=positions)
    return XltModel(BertModel(cfg, add_pooling_layer=False), task, len(label_set(task)))


def test_the_url_sentence_is_334_subwords_and_errors_name_file_and_sent_id(mbert_tokenizer, long_sentences):
    url = long_sentences[0]
    (ex,) = make_examples(mbert_tokenizer, [url], "pos", overflow="keep")
    assert len(ex["input_ids"]) == 334 and len(url) == 1
    with pytest.raises(ValueError, match=f"ud/UD_English-EWT/en_ewt-ud-test.conllu sent_id {URL_ID} \\(en\\) "
                                         "has 334 subwords .* max_length=256"):
        make_examples(mbert_tokenizer, [url], "pos", max_length=256)


def test_the_limit_is_the_models_own():
    assert max_subwords(_model("pos", 128)) == 128
    assert max_subwords(_model("pos", 512)) == 512


@pytest.mark.parametrize("task", ["pos", "parse"])
def test_training_truncates_to_the_model_and_reports_once(mbert_tokenizer, long_sentences, task):
    torch.set_num_threads(1)
    model = _model(task, positions=128)
    examples = make_examples(mbert_tokenizer, long_sentences, task, 128, overflow="truncate")
    assert all(len(e["input_ids"]) <= 128 for e in examples)
    assert [e.get("n_dropped", 0) for e in examples][:2] == [0, len(long_sentences[1]) - len(examples[1]["labels"])]
    assert examples[1]["n_dropped"] > 500 and examples[0]["labels"]  # the URL keeps its one word
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, max_length=256, seed=1)  # the model's 128 binds
    with pytest.warns(TruncationWarning) as caught:
        history = fine_tune(model, mbert_tokenizer, long_sentences, cfg, progress=False)
    assert len(caught) == 1  # once per run, not per epoch or batch
    msg = str(caught[0].message)
    assert f"1 of {len(long_sentences)} training sentences are longer than 128 subwords" in msg
    assert f"{examples[1]['n_dropped']} word labels dropped" in msg and "joined-100-139" in msg
    assert all(torch.isfinite(torch.tensor(history)))


@pytest.mark.parametrize(("task", "positions", "max_length"), [("pos", 128, 512), ("parse", 128, 512),
                                                                 ("pos", 512, 256)])
def test_evaluation_scores_every_word_of_long_sentences(mbert_tokenizer, long_sentences, task, positions, max_length):
    torch.set_num_threads(1)
    model = _model(task, positions)
    preds, pooled = predict(model, mbert_tokenizer, long_sentences, precision="fp32", pool=True, max_length=max_length)
    for s, p in zip(long_sentences, preds, strict=True):
        if task == "parse":
            heads, rels = p
            assert len(heads) == len(rels) == len(s), s.sent_id
            assert all(0 <= h <= len(s) for h in heads) and list(heads).count(0) == 1
        else:
            assert len(p) == len(s) and set(p) <= set(label_set("pos")), s.sent_id
    assert pooled.shape == (3, len(long_sentences), 32) and torch.isfinite(pooled).all()
    table = zero_shot_eval(model, mbert_tokenizer, {"en": long_sentences}, precision="fp32", max_length=max_length)
    assert set(table.n) == {sum(len(s) for s in long_sentences)}  # every word scored
    # the ordinary sentences get the same predictions whether or not long ones share the call
    assert predict(model, mbert_tokenizer, long_sentences[2:], precision="fp32", max_length=max_length) == preds[2:]


def test_each_word_is_read_from_its_most_central_window(mbert_tokenizer, long_sentences):
    """Window 0 of the long sentence is exactly its truncation to 128 subwords: the words that
    window 0 owns get the predictions of that truncated sentence, the others do not come from it."""
    from xlt_utils.evaluation import _predict_examples

    model = _model("pos", 128)
    long = long_sentences[1]
    (pred,) = predict(model, mbert_tokenizer, [long], precision="fp32")
    (ex,) = make_examples(mbert_tokenizer, [long], "pos", overflow="keep")
    (cut,) = make_examples(mbert_tokenizer, [long], "pos", 128, overflow="truncate")
    starts, owner = subword_windows(len(ex["input_ids"]) - 2, 126)
    assert cut["input_ids"][1:-1] == ex["input_ids"][1:127] and len(starts) > 5
    (window0,), _ = _predict_examples(model, mbert_tokenizer, [cut], 8, None, "fp32", False)
    owned = [w for w, p in enumerate(ex["first_subword"]) if owner[p - 1] == 0]
    assert owned == list(range(len(owned))) and 0 < len(owned) < len(window0)
    assert pred[:len(owned)] == window0[:len(owned)]


def test_subword_windows_cover_every_subword_from_a_central_window():
    assert subword_windows(10, 20) == ([0], [0] * 10)
    for n, size in ((334, 126), (1000, 510), (127, 126), (5, 1)):
        starts, owner = subword_windows(n, size)
        assert starts[0] == 0 and starts[-1] == n - size and len(owner) == n
        for t, k in enumerate(owner):
            a = starts[k]
            assert a <= t < a + size
            left, right = t - a, a + size - 1 - t
            if t >= size // 4 and n - 1 - t >= size // 4:  # room for context on both sides
                assert min(left, right) >= size // 4 - 1, (n, size, t)
    with pytest.raises(ValueError, match="positive"):
        subword_windows(3, 0)
