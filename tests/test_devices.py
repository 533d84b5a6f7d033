"""The GPU does the work: the pretrained encoder goes to the GPU when there is one, and training,
evaluation and the hidden states for CKA send their inputs to the model's device. Tested without a
GPU: the choice with CUDA reported present, the placement on the `meta` device."""

from __future__ import annotations

import pytest
import torch

from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel
from xlt_utils.precision import default_device
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile


class Stop(Exception):
    """Raised by the spy once it has seen the inputs (a meta model cannot produce real outputs)."""


def _devices_seen(module, call) -> list[str]:
    """The device types of the input_ids that reach `module`'s forward while `call()` runs; a spy
    (forward pre-hook) records them and raises Stop, which `call()` must let through."""
    seen = []

    def hook(mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(ids.device.type)
        raise Stop

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(Stop):
            call()
    finally:
        handle.remove()
    return seen


def test_default_device_is_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")


def test_load_encoder_places_the_encoder(monkeypatch):
    enc, _ = load_encoder(get_profile("toy"), device="meta")
    assert {p.device.type for p in enc.parameters()} == {"meta"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    enc, _ = load_encoder(get_profile("toy"))
    assert {p.device.type for p in enc.parameters()} == {"cpu"}
    moved = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    load_encoder(get_profile("toy"))
    assert moved == [(torch.device("cuda"),)]


@pytest.fixture
def meta_model():
    enc, tok = load_encoder(get_profile("toy"), device="meta")
    return XltModel(enc, "pos", len(label_set("pos"))).to("meta"), tok


def test_evaluation_sends_batches_to_the_models_device(meta_model):
    from xlt_utils.evaluation import predict

    model, tok = meta_model
    seen = _devices_seen(model.encoder, lambda: predict(model, tok, load_toy("en", "test")[:4], bf16="fp32"))
    assert seen == ["meta"]


def test_cka_states_are_computed_on_the_models_device(meta_model):
    from xlt_utils.evaluation import mean_pooled_states

    model, tok = meta_model
    seen = _devices_seen(model.encoder,
                         lambda: mean_pooled_states(model.encoder, tok, [s.words for s in load_toy("en", "test")[:4]]))
    assert seen == ["meta"]


def test_training_sends_batches_to_the_models_device(meta_model):
    from xlt_utils.training import TrainConfig, fine_tune

    model, tok = meta_model
    seen = _devices_seen(model.encoder, lambda: fine_tune(model, tok, load_toy("en", "train")[:8],
                                                           TrainConfig(epochs=1, batch_size=4, bf16="fp32"),
                                                           progress=False))
    assert seen == ["meta"]


def test_reinit_draws_the_same_numbers_on_any_device():
    from xlt_utils.ablation import reinit_layers

    enc, _ = load_encoder(get_profile("toy"), device="cpu")
    meta, _ = load_encoder(get_profile("toy"), device="meta")
    reinit_layers(meta, [1], seed=0)  # a generator on the CPU, parameters elsewhere: no device error
    before = enc.encoder.layer[0].attention.self.query.weight.clone()
    reinit_layers(enc, [1], seed=0)
    w = enc.encoder.layer[0].attention.self.query.weight
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(w, before) and torch.equal(w, torch.empty(w.shape).normal_(0, 0.02, generator=g))
