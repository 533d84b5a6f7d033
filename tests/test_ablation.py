"""Reinit, freeze and random init really do what they say, on models loaded with from_pretrained."""

from __future__ import annotations

import pytest
import torch
from transformers import BertModel

from xlt_utils.ablation import freeze_layers, random_init, reinit_layers
from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel, load_tokenizer
from xlt_utils.pretraining import toy_model_dir
from xlt_utils.training import TrainConfig, fine_tune


@pytest.fixture()
def encoder() -> BertModel:
    return BertModel.from_pretrained(toy_model_dir(), add_pooling_layer=False)


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_the_transformers_trap_that_reinit_layers_avoids(encoder):
    """`apply(_init_weights)` leaves from_pretrained weights untouched under transformers 5."""
    before = _snapshot(encoder)
    encoder.encoder.layer[0].apply(encoder._init_weights)
    assert all(torch.equal(p, before[n]) for n, p in encoder.named_parameters())


@pytest.mark.parametrize("layers", [[1], [1, 2], [2, 4, 6], [0]])
def test_reinit_changes_exactly_the_chosen_layers(encoder, layers):
    before = _snapshot(encoder)
    names = reinit_layers(encoder, layers, seed=0)
    prefixes = tuple("embeddings." if i == 0 else f"encoder.layer.{i - 1}." for i in layers)
    assert names and all(n.startswith(prefixes) for n in names)
    for n, p in encoder.named_parameters():
        chosen = n.startswith(prefixes)
        if chosen and not n.endswith(("LayerNorm.weight", "LayerNorm.bias")):
            assert not torch.equal(p, before[n]), f"{n} was not re-initialised"
        if not chosen:
            assert torch.equal(p, before[n]), f"{n} changed but its layer was not chosen"


def test_reinit_follows_bert_initialisation(encoder):
    reinit_layers(encoder, [3], seed=0)
    layer = encoder.encoder.layer[2]
    weights = torch.cat([m.weight.flatten() for m in layer.modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() - 0.02) < 0.001 and abs(weights.mean().item()) < 0.001
    for m in layer.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.count_nonzero(m.bias) == 0


def test_random_init_resets_every_encoder_parameter(encoder):
    before = _snapshot(encoder)
    random_init(encoder, seed=0)
    for n, p in encoder.named_parameters():
        if n.endswith("LayerNorm.weight"):
            assert torch.all(p == 1)
        elif n.endswith(("bias",)):
            assert torch.count_nonzero(p) == 0
        else:
            assert not torch.equal(p, before[n]), f"{n} survived random init"
            assert abs(p.std().item() - 0.02) < 0.002, n


def test_reinit_is_reproducible_from_its_seed(encoder):
    other = BertModel.from_pretrained(toy_model_dir(), add_pooling_layer=False)
    reinit_layers(encoder, [2], seed=5), reinit_layers(other, [2], seed=5)
    assert torch.equal(encoder.encoder.layer[1].output.dense.weight, other.encoder.layer[1].output.dense.weight)


def test_unknown_layer_is_an_error(encoder):
    with pytest.raises(ValueError, match=r"valid layers: 0 \(embeddings\) to 6"):
        reinit_layers(encoder, [7])


def test_frozen_layers_stay_bit_identical_after_training(encoder):
    tok = load_tokenizer(toy_model_dir())
    model = XltModel(encoder, "pos", len(label_set("pos")))
    frozen = freeze_layers(model, [0, 1, 2])
    before = _snapshot(model)
    fine_tune(model, tok, load_toy("en", "train")[:64], TrainConfig(epochs=1, batch_size=16, lr=1e-3), progress=False)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, before[n]), f"frozen {n} changed"
    trained = [n for n in before if n not in frozen and not torch.equal(dict(model.named_parameters())[n], before[n])]
    assert any(n.startswith("encoder.encoder.layer.5.") for n in trained) and any(n.startswith("head.") for n in trained)
