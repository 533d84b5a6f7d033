"""The precision policy (one decision function, tested on a table of hardware) and the fp16 +
GradScaler training path, which runs here on the CPU (torch has fp16 autocast on CPUs)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertModel

from xlt_utils import precision
from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel, tiny_bert_config
from xlt_utils.precision import choose_precision, hardware_precision, resolve_precision
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, fine_tune

AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma"}
AVX512_NO_BF16 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}  # Intel Xeon (Skylake/Cascade Lake)

# (device, CUDA capability, CPU flags, expected)
TABLE = [
    ("cuda", (9, 0), None, "bf16"),  # H100
    ("cuda", (8, 9), None, "bf16"),  # L4
    ("cuda", (8, 6), None, "bf16"),  # A10, RTX 30xx
    ("cuda", (8, 0), None, "bf16"),  # A100
    ("cuda", (7, 5), None, "fp16"),  # T4 (Colab): is_bf16_supported() says True, but emulated
    ("cuda", (7, 0), None, "fp16"),  # V100
    ("cuda", (6, 0), None, "fp32"),  # P100
    ("cuda", (3, 7), None, "fp32"),  # K80
    ("cpu", None, AVX512_NO_BF16 | {"avx512_bf16"}, "bf16"),  # AMD EPYC (Zen 4) / Cooper Lake
    ("cpu", None, AVX512_NO_BF16 | {"amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids
    ("cpu", None, AVX512_NO_BF16, "fp32"),  # AVX-512 without BF16: bf16 emulated
    ("cpu", None, AVX2, "fp32"),
    ("cpu", None, set(), "fp32"),
    ("mps", None, None, "fp32"),
    ("meta", None, None, "fp32"),
]


@pytest.mark.parametrize(("device", "capability", "flags", "expected"), TABLE)
def test_policy_table(device, capability, flags, expected):
    assert choose_precision(device, cuda_capability=capability, cpu_flags=flags) == expected


def test_cuda_without_a_capability_is_an_error_that_says_what_to_pass():
    with pytest.raises(ValueError, match="cuda_capability"):
        choose_precision("cuda")


def test_this_machine_follows_its_own_flags(monkeypatch):
    monkeypatch.delenv(precision.ENV_VAR, raising=False)
    native = bool({"avx512_bf16", "amx_bf16"} & precision.machine_cpu_flags())
    assert precision.hardware_precision("cpu") == ("bf16" if native else "fp32")
    assert (hardware_precision("cpu") == "bf16") == native


@pytest.mark.parametrize("value", ["bf16", "fp16", "fp32"])
def test_the_environment_switch_forces_the_policy_but_not_small_models(monkeypatch, value):
    monkeypatch.setenv(precision.ENV_VAR, value)
    assert precision.hardware_precision("cpu") == value
    assert precision.hardware_precision("cuda") == value
    tiny = XltModel(BertModel(tiny_bert_config(100)), "pos", 17)  # the toy architecture
    assert resolve_precision("auto", "cpu", tiny) == "fp32"  # toy stays fp32 on every machine
    assert resolve_precision("bf16", "cpu", tiny) == "bf16"  # unless asked explicitly
    big = XltModel(BertModel(tiny_bert_config(100, hidden_size=768, intermediate_size=3072,
                                              num_attention_heads=12, num_hidden_layers=2)), "pos", 17)
    assert precision.count_core_params(big) > precision.SMALL_MODEL_PARAMS
    assert resolve_precision("auto", "cpu", big) == value


def test_bad_values_name_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="XLT_PRECISION='half'.*auto, bf16, fp16, fp32"):
        precision.hardware_precision("cpu", env={precision.ENV_VAR: "half"})
    with pytest.raises(ValueError, match="XLT_PRECISION='half'.*auto, bf16, fp16, fp32"):
        monkeypatch.setenv(precision.ENV_VAR, "half")  # the settings are read again: the error is at once
    with pytest.raises(ValueError, match="valid values: auto, bf16, fp16, fp32"):
        resolve_precision("float16", "cpu")
    assert resolve_precision(True, "cpu") == "bf16" and resolve_precision(False, "cpu") == "fp32"


def test_autocast_and_scaler_match_the_precision():
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        with precision.autocast(name, "cpu"):
            assert (x @ w).dtype == dtype
    assert precision.grad_scaler("fp16", "cpu").is_enabled()
    assert not precision.grad_scaler("bf16", "cpu").is_enabled()
    assert not precision.grad_scaler("fp32", "cpu").is_enabled()
    assert precision.describe("fp16") == "fp16 autocast + GradScaler"
    with pytest.raises(ValueError, match="resolve_precision"):
        precision.autocast("auto", "cpu")


@pytest.mark.slow
def test_fp16_with_grad_scaler_trains_on_the_cpu(monkeypatch):
    """The T4/V100 path, forced on the CPU: fp16 autocast, loss scaled, unscaled before clipping."""
    import xlt_utils.training as training

    scalers, dtypes, unscaled = [], [], []
    real_scaler = training.grad_scaler

    def spy_scaler(prec, device):
        s = real_scaler(prec, device)
        real_unscale = s.unscale_
        s.unscale_ = lambda opt: (unscaled.append(True), real_unscale(opt))[1]
        scalers.append(s)
        return s

    monkeypatch.setattr(training, "grad_scaler", spy_scaler)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    encoder, tok = load_encoder(get_profile("toy"))
    model = XltModel(encoder, "pos", len(label_set("pos")))
    model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, head_lr=3e-3, precision="fp16", seed=1)
    history = fine_tune(model, tok, load_toy("en", "train")[:96], cfg, progress=False)
    (scaler,) = scalers
    assert scaler.is_enabled() and scaler.get_scale() > 1  # the loss really was scaled
    assert len(unscaled) == 3 * 6  # once per step, before clipping
    assert set(dtypes) == {torch.float16}
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert history[-1] < history[0] - 0.2, history


def test_auto_keeps_the_toy_model_in_fp32(monkeypatch):
    import xlt_utils.training as training

    monkeypatch.setenv(precision.ENV_VAR, "bf16")  # as on a machine with native bf16
    scalers, dtypes = [], []
    real_scaler = training.grad_scaler
    monkeypatch.setattr(training, "grad_scaler", lambda p, d: scalers.append(p) or real_scaler(p, d))
    torch.set_num_threads(1)
    encoder, tok = load_encoder(get_profile("toy"))
    model = XltModel(encoder, "pos", len(label_set("pos")))
    model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    fine_tune(model, tok, load_toy("en", "train")[:16], TrainConfig(epochs=1, batch_size=16), progress=False)
    assert scalers == ["fp32"] and set(dtypes) == {torch.float32}


# ------------------------------------------------------------------- the precision is in the cache key
# The precision a config runs in is resolved when the config is made and enters its key when it is
# not fp32 (fp32, the default, is left out so that the keys of earlier fp32 configs stay valid: the
# shipped toy grid). A record trained in bf16 is never returned for an fp32 run.


@pytest.fixture(scope="module")
def large_model_dir(tmp_path_factory):
    """A local model directory over the toy tokenizer, with more core parameters than
    SMALL_MODEL_PARAMS (2 layers, 768 wide: about 14 M), so that "auto" follows the hardware policy."""
    import shutil
    from pathlib import Path

    from xlt_utils.pretrained import model_path

    out = tmp_path_factory.mktemp("large") / "model"
    toy = Path(model_path("toy"))
    _, tok = load_encoder(get_profile("toy"), device="cpu")
    torch.manual_seed(0)
    BertModel(tiny_bert_config(len(tok), hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                               num_hidden_layers=2), add_pooling_layer=False).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(toy / name, out / name)
    return out


def _large_config(model_dir, **options):
    from xlt_utils.experiments import experiment_config

    P = get_profile("toy", model=str(model_dir), n_train=16, n_eval=8)
    return experiment_config(P, task="pos", targets=["fr"], epochs=1, batch_size=16, **options)


@pytest.mark.slow
def test_a_bf16_record_is_not_reused_by_an_fp32_run(large_model_dir, tmp_path, monkeypatch):
    import xlt_utils.training as training
    from xlt_utils.experiments import ExperimentConfig, run_experiment
    from xlt_utils.store import ResultStore

    used = []  # the precision every training step really ran in
    real = training.autocast
    monkeypatch.setattr(training, "autocast", lambda p, d: used.append(p) or real(p, d))
    store = ResultStore(tmp_path / "results")

    monkeypatch.setenv(precision.ENV_VAR, "bf16")  # as on a machine with native bf16
    in_bf16 = _large_config(large_model_dir)
    assert in_bf16.precision == "bf16" and in_bf16.to_dict()["precision"] == "bf16"
    record = run_experiment(in_bf16, results=store, progress=False)
    assert used == ["bf16"] and record["runtime"]["precision"] == "bf16"

    monkeypatch.setenv(precision.ENV_VAR, "fp32")  # the same config asked for on an fp32 machine
    in_fp32 = _large_config(large_model_dir)
    assert in_fp32.precision == "fp32" and in_fp32.to_dict()["precision"] == "fp32"
    assert in_fp32.key() != in_bf16.key()
    assert store.get(in_fp32) is None, "the bf16 record must not stand in for an fp32 run"
    used.clear()
    again = run_experiment(in_fp32, results=store, progress=False)
    assert used == ["fp32"] and again["runtime"]["precision"] == "fp32" and again["key"] != record["key"]
    # the bf16 config read back (a Ray worker, a record) keeps its precision, whatever this machine says
    assert ExperimentConfig.from_dict(record["config"]).key() == in_bf16.key()
    assert store.get(in_bf16) == record


def test_the_precision_is_resolved_when_the_config_is_made(large_model_dir, monkeypatch):
    from xlt_utils.experiments import ExperimentConfig, experiment_config

    toy_keys = set()
    for forced in ("bf16", "fp16", "fp32"):
        monkeypatch.setenv(precision.ENV_VAR, forced)
        assert _large_config(large_model_dir).precision == forced
        toy = experiment_config(get_profile("toy"))  # "auto" keeps the toy model in fp32 on every machine: the shipped keys
        assert toy.precision == "fp32" and toy.to_dict()["precision"] == "fp32"
        toy_keys.add(toy.key())
    assert len(toy_keys) == 1
    monkeypatch.setenv(precision.ENV_VAR, "bf16")
    assert experiment_config(get_profile("toy"), precision="fp16").precision == "fp16"  # asked for explicitly: as given
    cfg = _large_config(large_model_dir)
    with pytest.raises(ValueError, match="precision='fp32' contradicts the training option precision='bf16'"):
        ExperimentConfig.from_dict({**cfg.to_dict(), "precision": "fp32", "train": {**cfg.train.to_dict(),
                                                                                     "bf16": "bf16"}})
    with pytest.raises(ValueError, match="precision must be one of bf16, fp16, fp32"):
        ExperimentConfig.from_dict({**cfg.to_dict(), "precision": "half"})
