"""Layer ablations of the paper: re-initialise (Reinit) or freeze any set of layers, or all (random init).

Layers are numbered as in `hidden_states`: 0 is the embedding layer, 1..L the transformer layers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _encoder(model) -> nn.Module:
    return getattr(model, "encoder", model) if hasattr(getattr(model, "encoder", None), "embeddings") else model


def layer_modules(model, layers: Iterable[int]) -> list[nn.Module]:
    """The modules of the given layers (0 = embeddings, 1..L = transformer layers)."""
    enc = _encoder(model)
    n = enc.config.num_hidden_layers
    out = []
    for i in sorted(set(layers)):
        if not 0 <= i <= n:
            raise ValueError(f"layer {i} does not exist; valid layers: 0 (embeddings) to {n}")
        out.append(enc.embeddings if i == 0 else enc.encoder.layer[i - 1])
    return out


@torch.no_grad()
def bert_init_(module: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> None:
    """BERT's initialisation, applied explicitly: N(0, std) weights, zero biases, LayerNorm 1/0.

    Explicit on purpose: under transformers 5, `model.apply(model._init_weights)` skips parameters
    loaded by `from_pretrained` (they carry `_is_hf_initialized`), so it would re-initialise nothing.
    """
    def normal_(w: torch.Tensor) -> None:  # drawn on the CPU (the generator's device): the same numbers on any device
        w.copy_(torch.empty(w.shape, dtype=w.dtype).normal_(0.0, std, generator=generator))

    for m in module.modules():
        if isinstance(m, nn.Linear):
            normal_(m.weight)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Embedding):
            normal_(m.weight)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


def reinit_layers(model, layers: Iterable[int], seed: int = 0) -> list[str]:
    """Re-initialise the given layers with BERT's init; returns the names of the parameters reset."""
    gen = torch.Generator().manual_seed(seed)
    mods = layer_modules(model, layers)
    for m in mods:
        bert_init_(m, _encoder(model).config.initializer_range, gen)
    ids = {id(p) for m in mods for p in m.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def freeze_layers(model, layers: Iterable[int]) -> list[str]:
    """Stop gradient updates of the given layers; returns the names of the frozen parameters."""
    ids = set()
    for m in layer_modules(model, layers):
        for p in m.parameters():
            p.requires_grad_(False)
            ids.add(id(p))
    return [n for n, p in model.named_parameters() if id(p) in ids]


def random_init(model, seed: int = 0) -> list[str]:
    """The random-init baseline: every encoder layer, embeddings included, re-initialised."""
    n = _encoder(model).config.num_hidden_layers
    return reinit_layers(model, range(n + 1), seed)


def apply_ablation(model, ablation: str, layers: Iterable[int] = (), seed: int = 0) -> list[str]:
    """Apply one of the paper's ablations by name: reference, reinit, freeze or random_init."""
    layers = tuple(layers)
    if ablation == "reference":
        return []
    if ablation == "reinit":
        return reinit_layers(model, layers, seed)
    if ablation == "freeze":
        return freeze_layers(model, layers)
    if ablation == "random_init":
        return random_init(model, seed)
    raise ValueError(f"unknown ablation {ablation!r}; valid: reference, reinit, freeze, random_init")
