"""The real-data path end to end: mBERT's tokenizer, real UD files, a small random BERT.

The numbers mean nothing (random weights, a few hundred sentences); the test proves that the
quick/full code path runs from files to the zero-shot table.
"""

from __future__ import annotations

import time

import pytest
from transformers import BertConfig, BertModel

from xlt_utils.data.real import load_ner, load_ud
from xlt_utils.data.records import label_set
from xlt_utils.evaluation import zero_shot_eval
from xlt_utils.models import XltModel
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, fine_tune


@pytest.fixture
def local(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("XLT_DATA_DIR", str(shared_data))
    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XLT_OFFLINE", "1")


def _small_bert(tokenizer) -> BertModel:
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=512)
    return BertModel(cfg, add_pooling_layer=False)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["pos", "parse", "ner"])
def test_quick_shaped_run_produces_the_zero_shot_table(local, mbert_tokenizer, task):
    targets = ["de", "ru", "zh"]
    if task == "ner":
        train = load_ner("en", "dev", source="uner")[:200]
        data = {lang: load_ner(lang, "test", source="uner")[:100] for lang in ["en", *targets]}
    else:
        train = load_ud("en", "dev")[:200]
        data = {lang: load_ud(lang, "test")[:100] for lang in ["en", *targets, "ja", "ar"]}
    model = XltModel(_small_bert(mbert_tokenizer), task, len(label_set(task)))
    losses = fine_tune(model, mbert_tokenizer, train, TrainConfig(epochs=1, batch_size=16, lr=1e-3), progress=False)
    assert len(losses) == 1 and losses[0] > 0
    table = zero_shot_eval(model, mbert_tokenizer, data, task)
    metrics = {"pos": {"accuracy"}, "parse": {"uas", "las"}, "ner": {"f1", "precision", "recall", "f1_strict"}}[task]
    assert list(table.columns) == ["language", "task", "metric", "value", "n"]
    assert set(table.language) == set(data) and set(table.metric) == metrics
    assert table.value.between(0, 100).all()
    words = {lang: sum(len(s) for s in sents) for lang, sents in data.items()}
    assert table.groupby("language")["n"].first().to_dict() == words


@pytest.mark.timeout(60)
def test_asking_for_mbert_offline_fails_fast_and_names_the_toy_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="profile='toy'") as e:
        load_encoder(get_profile("quick"))
    assert "bert-base-multilingual-cased" in str(e.value)
    assert time.monotonic() - start < 30
