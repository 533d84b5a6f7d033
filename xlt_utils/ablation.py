"""Layer ablations of the paper as values: re-initialise (Reinit) or freeze a set of layers, or all
of them (random init), and the grammar that writes them on a command line.

Layers are numbered as in `hidden_states`: 0 is the embedding layer, 1..L the transformer layers.
An `Ablation` is a value (kind, layers) that travels unchanged through configs, records, analyses,
widgets and notebooks; `Ablation.label` is the one rendering of it for people ("reinit 1,2"), and
nothing parses a label back. The command-line grammar (`parse_ablation`) reads ``reference``,
``random_init``, ``reinit:1,2``, ``freeze:0-3`` and the families ``reinit-consecutive`` (the
paper's pairs of consecutive layers), ``reinit-pairs`` (every pair) and ``freeze-halves``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

#: The kinds of ablation: the reference (nothing changed), re-initialised layers, frozen layers,
#: and the randomly initialised encoder (every layer re-initialised).
KINDS = ("reference", "reinit", "freeze", "random_init")
_WITH_LAYERS = ("reinit", "freeze")
ABLATION_FORMS = ("reference", "random_init", "reinit:<layers>", "freeze:<layers>", "reinit-consecutive", "reinit-pairs",
                  "freeze-halves")


def _layer_tuple(layers, kind: str) -> tuple[int, ...]:
    if isinstance(layers, (str, bytes)):
        raise ValueError(f"the layers of a {kind!r} ablation are a sequence of layer numbers, e.g. (1, 2), "
                         f"not the string {layers!r} (written as a string, use parse_ablation('{kind}:1,2'))")
    if not isinstance(layers, Iterable):
        raise ValueError(f"the layers of a {kind!r} ablation are a sequence of layer numbers, e.g. (1, 2), "
                         f"not {layers!r}")
    out = set()
    for v in layers:
        if isinstance(v, bool):
            raise ValueError(f"layer numbers are integers 0..L, not {v!r}")
        try:
            i = operator.index(v)
        except TypeError:
            raise ValueError(f"layer numbers are integers 0..L, not {v!r}") from None
        if i < 0:
            raise ValueError(f"layer {i} does not exist: layers are 0 (embeddings) to L")
        out.add(i)
    return tuple(sorted(out))


@dataclass(frozen=True, order=True)
class Ablation:
    """One ablation: its kind (one of `KINDS`) and, for reinit and freeze, the layers (0..L).

    Made once and carried unchanged; `check(n_layers)` validates the layers against a model's depth.
    """

    kind: str = "reference"
    layers: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown ablation kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        layers = _layer_tuple(self.layers, self.kind)
        if self.kind in _WITH_LAYERS and not layers:
            raise ValueError(f"a {self.kind!r} ablation needs layers, e.g. Ablation({self.kind!r}, (1, 2)); "
                             f"valid kinds: {', '.join(KINDS)}")
        if self.kind not in _WITH_LAYERS and layers:
            raise ValueError(f"a {self.kind!r} ablation takes no layers, got {layers}")
        object.__setattr__(self, "layers", layers)

    def check(self, n_layers: int) -> Ablation:
        """This ablation, if every layer exists in an encoder of `n_layers` transformer layers."""
        bad = [i for i in self.layers if i > n_layers]
        if bad:
            raise ValueError(f"ablation {self.label!r}: layer(s) {bad} do not exist; valid layers: "
                             f"0 (embeddings) to {n_layers}")
        return self

    @property
    def label(self) -> str:
        """The one human rendering: "reference", "reinit 1,2", "freeze 0-3", "random-init"."""
        if self.kind in _WITH_LAYERS:
            return f"{self.kind} {format_layers(self.layers)}"
        return self.kind.replace("_", "-")

    def __str__(self) -> str:
        return self.label

    def to_dict(self) -> dict:
        return {"kind": self.kind, "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, d: dict) -> Ablation:
        return cls(d["kind"], tuple(d["layers"]))


REFERENCE = Ablation("reference")
RANDOM_INIT = Ablation("random_init")


def lower_upper(n_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The layer sets of claims C1 and C2: the first two and the last two transformer layers."""
    if n_layers < 2:
        raise ValueError(f"the lower and upper layer pairs need at least 2 transformer layers, got {n_layers}")
    return (1, 2), (n_layers - 1, n_layers)


# ----------------------------------------------------------------------------------------- grammar

def format_layers(layers: Iterable[int]) -> str:
    """``(1, 2)`` -> ``"1,2"``; runs of three or more become ranges: ``(0, 1, 2, 3, 5)`` -> ``"0-3,5"``."""
    layers = sorted(set(layers))
    parts = []
    for _, run in itertools.groupby(enumerate(layers), key=lambda t: t[1] - t[0]):
        run = [v for _, v in run]
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(v) for v in run]
    return ",".join(parts)


def reinit_consecutive(n_layers: int) -> list[Ablation]:
    """The paper's Reinit grid (Muller et al., 2021, Table 2): consecutive pairs of transformer layers,
    (1,2), (3,4), ... ((L-1,L) for an even depth; an odd depth ends with its last layer alone)."""
    return [Ablation("reinit", tuple(range(i, min(i + 2, n_layers + 1)))) for i in range(1, n_layers + 1, 2)]


def reinit_pairs(n_layers: int) -> list[Ablation]:
    """Every pair of transformer layers re-initialised: (1,2), (1,3), ... (L(L-1)/2 ablations)."""
    return [Ablation("reinit", pair) for pair in itertools.combinations(range(1, n_layers + 1), 2)]


def freeze_halves(n_layers: int) -> list[Ablation]:
    """Freeze the lower half (embeddings and layers 1..L/2) or the upper half (L/2+1..L)."""
    half = n_layers // 2
    return [Ablation("freeze", range(0, half + 1)), Ablation("freeze", range(half + 1, n_layers + 1))]


FAMILIES = {"reinit-consecutive": reinit_consecutive, "reinit-pairs": reinit_pairs, "freeze-halves": freeze_halves}


def describe_forms(n_layers: int | None) -> str:
    span = f"0..{n_layers}" if n_layers is not None else "0..L"
    return (f"valid ablations: {', '.join(ABLATION_FORMS)} (<layers>: numbers or ranges in {span}, "
            "comma-separated, e.g. 'reinit:1,2' or 'freeze:0-3')")


def _parse_layers(text: str, spec: str, n_layers: int | None) -> tuple[int, ...]:
    layers: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            a, b = int(lo), int(hi) if hi else int(lo)
            if b < a:
                raise ValueError(part)
            layers.update(range(a, b + 1))
    except ValueError:
        raise ValueError(f"cannot read the layers of ablation {spec!r}; {describe_forms(n_layers)}") from None
    bad = sorted(i for i in layers if i < 0 or (n_layers is not None and i > n_layers))
    if bad:
        raise ValueError(f"ablation {spec!r}: layer(s) {bad} do not exist; {describe_forms(n_layers)}")
    return tuple(sorted(layers))


def parse_ablation(spec: str, n_layers: int | None = None) -> Ablation:
    """``"reinit:1,2"`` -> ``Ablation("reinit", (1, 2))``; raises a ValueError listing the valid forms.

    ``random-init`` is read as ``random_init``. With `n_layers`, layers outside 0..n_layers are errors.
    Labels (``"reinit 1,2"``) are not this grammar: they are for people, and are never read back.
    """
    text = spec.strip()
    name, sep, rest = text.partition(":")
    name = name.strip().lower().replace("random-init", "random_init")
    if name in ("reference", "random_init") and not sep:
        return Ablation(name)
    if name in _WITH_LAYERS and rest.strip():
        return Ablation(name, _parse_layers(rest, spec, n_layers))
    if name in _WITH_LAYERS:
        raise ValueError(f"ablation {spec!r} needs layers, e.g. '{name}:1,2'; {describe_forms(n_layers)}")
    raise ValueError(f"unknown ablation {spec!r}; {describe_forms(n_layers)}")


def expand_ablations(specs: Iterable[str | Ablation] | str | Ablation, n_layers: int) -> list[Ablation]:
    """Ablations (strings of the grammar, families expanded, or values), in order, without duplicates,
    each checked against `n_layers`."""
    if isinstance(specs, (str, Ablation)):
        specs = [specs]
    out: dict[Ablation, None] = {}
    for spec in specs:
        if isinstance(spec, Ablation):
            out[spec.check(n_layers)] = None
            continue
        family = FAMILIES.get(spec.strip().lower().replace("_", "-"))
        if family is not None:
            out.update(dict.fromkeys(family(n_layers)))
        else:
            out[parse_ablation(spec, n_layers)] = None
    return list(out)


# ----------------------------------------------------------------------------------------- applying

def _encoder(model) -> nn.Module:
    return getattr(model, "encoder", model) if hasattr(getattr(model, "encoder", None), "embeddings") else model


def _depth(encoder) -> int:
    """The number of transformer layers L of a loaded encoder (from its config)."""
    return int(encoder.config.num_hidden_layers)


def layer_modules(model, layers: Iterable[int]) -> list[nn.Module]:
    """The modules of the given layers (0 = embeddings, 1..L = transformer layers)."""
    enc = _encoder(model)
    n = _depth(enc)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise ValueError(f"layers are a sequence of layer numbers 0 (embeddings) to {n}, e.g. (1, 2), not {layers!r}")
    numbers = []
    for v in layers:  # True is not layer 1, nor 1.0 layer 1: an error, as in an Ablation value
        if isinstance(v, bool):
            raise ValueError(f"layer numbers are integers 0 (embeddings) to {n}, not {v!r}")
        try:
            numbers.append(operator.index(v))
        except TypeError:
            raise ValueError(f"layer numbers are integers 0 (embeddings) to {n}, not {v!r}") from None
    out = []
    for i in sorted(set(numbers)):
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
    return reinit_layers(model, range(_depth(_encoder(model)) + 1), seed)


def apply_ablation(model, ablation: Ablation, seed: int = 0) -> list[str]:
    """Apply an ablation to a model; returns the names of the parameters it touched."""
    if not isinstance(ablation, Ablation):
        raise TypeError(f"expected an Ablation value, got {ablation!r} (e.g. Ablation('reinit', (1, 2)))")
    if ablation.kind == "reinit":
        return reinit_layers(model, ablation.layers, seed)
    if ablation.kind == "freeze":
        return freeze_layers(model, ablation.layers)
    if ablation.kind == "random_init":
        return random_init(model, seed)
    return []


__all__ = ["Ablation", "KINDS", "REFERENCE", "RANDOM_INIT", "lower_upper", "format_layers", "parse_ablation",
           "expand_ablations", "describe_forms", "reinit_consecutive", "reinit_pairs", "freeze_halves", "apply_ablation", "reinit_layers",
           "freeze_layers", "random_init", "bert_init_", "layer_modules"]
