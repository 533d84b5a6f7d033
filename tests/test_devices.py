"""The GPU does the work: the pretrained encoder goes to the GPU when there is one, and training,
evaluation and the hidden states for CKA send their inputs to the model's device. Tested without a
GPU: the choice with CUDA reported present, the placement on the `meta` device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import xlt_utils
from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel
from xlt_utils.precision import default_device
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


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
    seen = _devices_seen(model.encoder, lambda: predict(model, tok, load_toy("en", "test")[:4], precision="fp32"))
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
                                                           TrainConfig(epochs=1, batch_size=4, precision="fp32"),
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


# ------------------------------------------------------------------ model, head and batch on one device
# The library's default device (`precision.default_device`: the GPU when there is one) is `meta`
# here, as on a machine whose work device is not the CPU. Whatever builds a model must put the encoder
# AND the head there, and whatever feeds it must send its batches there: a CPU head under a GPU
# encoder, or a CPU batch into a GPU model, is the CUDA failure of issue 21 (chapter 2 stopped).


@pytest.fixture
def work_device_is_meta(monkeypatch):
    import xlt_utils.precision as precision

    monkeypatch.setattr(precision, "default_device", lambda: torch.device("meta"))


def _device_types(model) -> set[str]:
    return {t.device.type for t in (*model.parameters(), *model.buffers())}


def _stop_at_the_encoder(monkeypatch, built: list):
    """Spy on `experiments.build_model`: every model it builds gets the forward pre-hook of
    `_devices_seen` on its encoder (the device of the input_ids that reach it, then Stop)."""
    import xlt_utils.experiments as experiments

    real, seen = experiments.build_model, []

    def hook(mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(ids.device.type)
        raise Stop

    def spy(*args, **kwargs):
        model, tok = real(*args, **kwargs)
        model.encoder.register_forward_pre_hook(hook, with_kwargs=True)
        built.append(model)
        return model, tok

    monkeypatch.setattr(experiments, "build_model", spy)
    return seen


@pytest.mark.parametrize("task", ["pos", "parse"])
def test_build_model_puts_encoder_and_head_on_the_default_device(work_device_is_meta, task):
    from xlt_utils.experiments import build_model, experiment_config

    model, _ = build_model(experiment_config(get_profile("toy"), task=task))
    assert _device_types(model) == {"meta"}, "encoder and head must be on one device"


@pytest.mark.slow
def test_the_chapter_2_training_step_runs_where_the_model_is(work_device_is_meta, monkeypatch):
    """The hand-written training step of chapter 2 (the cell after "Under the hood"), executed as the
    chapter runs it: the batch it builds must reach the encoder on the model's device."""
    import nbformat


    nb = nbformat.read(NOTEBOOKS / "02_finetuning_zero_shot.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "def forward(model, batch)" in c.source]
    built: list = []
    seen = _stop_at_the_encoder(monkeypatch, built)
    ns = {"P": get_profile("toy"), "seed": 1, "targets": None, "xlt": xlt_utils}
    with pytest.raises(Stop):
        exec(compile(cell.source, "chapter-2-training-step", "exec"), ns)
    assert seen == ["meta"], f"the chapter's batch reached the encoder on {seen}"
    assert ns["model"] is built[0] and _device_types(ns["model"]) == {"meta"}
    assert {t.device.type for t in ns["batch"].values()} == {"meta"}


def test_run_experiment_trains_on_the_default_device(work_device_is_meta, monkeypatch, tmp_path):
    from xlt_utils.experiments import experiment_config, run_experiment

    built: list = []
    seen = _stop_at_the_encoder(monkeypatch, built)
    cfg = experiment_config(get_profile("toy", n_train=8, n_eval=4), task="pos", targets=["fr"], epochs=1, batch_size=4)
    with pytest.raises(Stop):
        run_experiment(cfg, progress=False, results=tmp_path / "results")
    assert seen == ["meta"] and _device_types(built[0]) == {"meta"}


def test_zero_shot_eval_sends_batches_to_the_models_device(meta_model):
    from xlt_utils.evaluation import zero_shot_eval

    model, tok = meta_model
    seen = _devices_seen(model.encoder, lambda: zero_shot_eval(model, tok, {"en": load_toy("en", "test")[:4]}, "pos",
                                                               precision="fp32"))
    assert seen == ["meta"]


@pytest.mark.slow
def test_load_finetuned_returns_the_model_on_the_default_device(monkeypatch, tmp_path):
    import xlt_utils.precision as precision
    from xlt_utils.experiments import experiment_config, load_finetuned, run_experiment

    cfg = experiment_config(get_profile("toy", n_train=8, n_eval=4), task="ner", targets=["fr"], epochs=1, batch_size=4)
    run_experiment(cfg, keep_model=True, progress=False, results=tmp_path / "results")  # trained on the CPU
    monkeypatch.setattr(precision, "default_device", lambda: torch.device("meta"))
    model, _ = load_finetuned(cfg, results=tmp_path / "results", progress=False)
    assert _device_types(model) == {"meta"}
