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
from xlt_utils.precision import choose_precision, resolve_precision
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, bf16_supported, fine_tune

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
    assert bf16_supported("cpu") == native


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
    monkeypatch.setenv(precision.ENV_VAR, "half")
    with pytest.raises(ValueError, match="XLT_PRECISION='half'.*auto, bf16, fp16, fp32"):
        precision.hardware_precision("cpu")
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
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, head_lr=3e-3, bf16="fp16", seed=1)
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
