"""No model this package loads is kernelized with Hub kernels (transformers >= 5.25 does it by default
in `from_pretrained`: see `xlt_utils.models.MODEL_LOAD_KW`): training and evaluation run the same
PyTorch code on every device, offline, and a model can be placed on the `meta` device."""

from __future__ import annotations

import torch

from xlt_utils.models import MODEL_LOAD_KW
from xlt_utils.pretrained import load_encoder
from xlt_utils.pretraining import load_mlm
from xlt_utils.profiles import get_profile


def _kernelized(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "use_kernels", False)) or getattr(model, "kernels_mode", None) is not None


def test_every_model_load_turns_hub_kernels_off():
    assert MODEL_LOAD_KW == {"use_kernels": False}
    encoder, _ = load_encoder(get_profile("toy"), device="cpu")
    mlm, _ = load_mlm()
    for model in (encoder, mlm):
        for mode in (True, False, True):
            model.train(mode)
            assert not _kernelized(model)


def test_a_loaded_encoder_moves_to_meta_and_switches_modes():
    encoder, _ = load_encoder(get_profile("toy"), device="meta")
    encoder.train()
    encoder.eval()
    assert {p.device.type for p in encoder.parameters()} == {"meta"} and not _kernelized(encoder)
