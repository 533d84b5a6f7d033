"""Reinit, freeze and random init really do what they say, on models loaded with from_pretrained."""

from __future__ import annotations

import pytest
import torch
from transformers import BertModel

from xlt_utils.ablation import (
    Ablation,
    apply_ablation,
    freeze_layers,
    lower_upper,
    random_init,
    reinit_layers,
)
from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import MODEL_LOAD_KW, XltModel, load_tokenizer, tiny_bert_config
from xlt_utils.pretrained import num_layers
from xlt_utils.pretraining import toy_model_dir
from xlt_utils.training import TrainConfig, fine_tune


@pytest.fixture()
def encoder() -> BertModel:
    return BertModel.from_pretrained(toy_model_dir(), add_pooling_layer=False, **MODEL_LOAD_KW)


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
    other = BertModel.from_pretrained(toy_model_dir(), add_pooling_layer=False, **MODEL_LOAD_KW)
    reinit_layers(encoder, [2], seed=5), reinit_layers(other, [2], seed=5)
    assert torch.equal(encoder.encoder.layer[1].output.dense.weight, other.encoder.layer[1].output.dense.weight)


def test_unknown_layer_is_an_error(encoder):
    L = num_layers(encoder)
    with pytest.raises(ValueError, match=rf"valid layers: 0 \(embeddings\) to {L}"):
        reinit_layers(encoder, [L + 1])


# ----------------------------------------------------------------------------------------- the value

def test_an_ablation_is_a_validated_value_with_one_label():
    assert Ablation("reinit", [2, 1, 2]) == Ablation("reinit", (1, 2))
    assert Ablation("reinit", (1, 2)).label == str(Ablation("reinit", (1, 2))) == "reinit 1,2"
    assert Ablation("freeze", range(4)).label == "freeze 0-3"
    assert Ablation("random_init").label == "random-init" and Ablation().label == "reference"
    assert Ablation.from_dict(Ablation("freeze", (0, 5)).to_dict()) == Ablation("freeze", (0, 5))
    with pytest.raises(ValueError, match="unknown ablation kind 'reinit-pairs'; valid kinds: reference, reinit, "
                                         "freeze, random_init"):
        Ablation("reinit-pairs")
    with pytest.raises(ValueError, match="needs layers"):
        Ablation("freeze", ())
    with pytest.raises(ValueError, match="takes no layers"):
        Ablation("reference", (1,))
    with pytest.raises(ValueError, match="not the string '12'"):
        Ablation("reinit", "12")  # never read as layers 1 and 2
    with pytest.raises(ValueError, match="layer -1 does not exist"):
        Ablation("reinit", (-1,))
    with pytest.raises(ValueError, match="integers"):
        Ablation("reinit", (1.5,))
    with pytest.raises(ValueError, match=r"layer\(s\) \[7\] do not exist; valid layers: 0 \(embeddings\) to 6"):
        Ablation("reinit", (1, 7)).check(6)


def _tiny_encoder(depth: int) -> BertModel:
    torch.manual_seed(0)
    return BertModel(tiny_bert_config(vocab_size=50, num_hidden_layers=depth, hidden_size=16, num_attention_heads=2,
                                      intermediate_size=32), add_pooling_layer=False)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_depth_and_layer_sets_follow_the_model(depth):
    enc = _tiny_encoder(depth)
    model = XltModel(enc, "pos", len(label_set("pos")))
    assert num_layers(enc) == num_layers(model) == num_layers(enc.config) == depth
    lower, upper = lower_upper(depth)
    assert lower == (1, 2) and upper == (depth - 1, depth)
    before = _snapshot(model)
    names = apply_ablation(model, Ablation("reinit", upper), seed=0)
    assert names and all(n.startswith((f"encoder.encoder.layer.{depth - 2}.", f"encoder.encoder.layer.{depth - 1}."))
                         for n in names)
    assert sum(not torch.equal(p, before[n]) for n, p in model.named_parameters()) > 0
    assert len(random_init(_tiny_encoder(depth))) == len(list(_tiny_encoder(depth).parameters()))
    with pytest.raises(ValueError, match=f"valid layers: 0 \\(embeddings\\) to {depth}"):
        apply_ablation(model, Ablation("freeze", (depth + 1,)))
    with pytest.raises(TypeError, match="expected an Ablation value"):
        apply_ablation(model, "reinit 1,2")


def test_one_layer_has_no_lower_and_upper_pairs():
    with pytest.raises(ValueError, match="at least 2 transformer layers"):
        lower_upper(1)


@pytest.mark.slow
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
