"""The pretrained encoder of a profile, and what identifies it: the toy BERT of this repository, a
Hugging Face Hub id (optionally at a revision), or a local model directory.

This module is the one place that answers "which weights, how deep": `load_encoder` loads them,
`num_layers` gives the depth of a loaded model or of a profile's model (from its config, without
loading the weights), and `model_identity` says what goes into a result's cache key.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoModel, BertModel, PreTrainedTokenizerFast

from . import precision
from .files import sha256_file
from .models import MODEL_LOAD_KW, from_hub, load_tokenizer
from .pretraining import toy_model_dir
from .profiles import Profile

TOY = "toy"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def model_path(model: str) -> str:
    """Where `from_pretrained` finds a model: the toy checkpoint's folder, a local directory, or a hub id."""
    if model == TOY:
        return _toy_dir()
    p = Path(model).expanduser()
    return str(p) if p.is_dir() else model


@functools.cache
def _toy_dir() -> str:
    """The toy checkpoint's folder, looked up (its weights hashed against the recipe) once per process."""
    return str(toy_model_dir())


def _model_and_revision(obj, revision: str | None) -> tuple[str, str | None]:
    if isinstance(obj, Profile):
        return obj.model, obj.revision
    if hasattr(obj, "model") and hasattr(obj, "revision"):  # an ExperimentConfig
        return obj.model, obj.revision
    return str(obj), revision


def load_encoder(model: str | Profile, revision: str | None = None,
                 device=None) -> tuple[BertModel, PreTrainedTokenizerFast]:
    """The pretrained encoder and tokenizer of a profile (or of a model id / local directory), with
    the encoder on `device` (default: the GPU when there is one, else the CPU), so that hidden states
    for CKA, evaluation and training run there.

    The masked-LM head stored with the weights is dropped without a load report or progress bar.
    """
    encoder, tok = _load(model, revision)
    return encoder.to(precision.default_device() if device is None else device), tok


def _load(model: str | Profile, revision: str | None) -> tuple[BertModel, PreTrainedTokenizerFast]:
    from transformers.utils import logging as hf_logging

    name, revision = _model_and_revision(model, revision)
    path = model_path(name)
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        kw = {"revision": revision} if revision else {}
        if Path(path).is_dir():
            return (BertModel.from_pretrained(path, add_pooling_layer=False, **MODEL_LOAD_KW),
                    load_tokenizer(path))
        return (from_hub(AutoModel, path, add_pooling_layer=False, **MODEL_LOAD_KW, **kw),
                load_tokenizer(path, revision=revision))
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@functools.cache
def _config(path: str, revision: str | None):
    kw = {"revision": revision} if revision else {}
    return from_hub(AutoConfig, path, **kw) if not Path(path).is_dir() else AutoConfig.from_pretrained(path)


def num_layers(obj, revision: str | None = None) -> int:
    """The number of transformer layers L (layers 0..L exist) of a loaded model (an encoder, or a
    model wrapping one as `.encoder`), a config, or a profile / experiment config / model id / local
    directory (read from the model's config; the weights are not loaded)."""
    if isinstance(obj, nn.Module):
        config = getattr(obj, "config", None) or getattr(getattr(obj, "encoder", None), "config", None)
        if config is None:
            raise TypeError(f"{type(obj).__name__} has no config (nor an encoder with one): cannot tell its depth")
        return int(config.num_hidden_layers)
    if hasattr(obj, "num_hidden_layers"):  # a transformers config
        return int(obj.num_hidden_layers)
    name, revision = _model_and_revision(obj, revision)
    return int(_config(model_path(name), revision).num_hidden_layers)


def model_identity(model: str, revision: str | None = None) -> dict:
    """What identifies a model's weights in a cache key.

    The toy model: the sha256 of its checkpoint (recorded in its recipe.json). A local directory:
    the sha256 of its weight file (and, when it is a Hub cache snapshot, ``.../snapshots/<commit>``,
    that commit). A hub id: the id, the revision asked for, and the commit it resolves to when the
    model is in the local Hub cache (the snapshot folder names it; None before the first download).
    """
    if model == TOY:
        path = Path(model_path(TOY))
        sha = json.loads((path / "recipe.json").read_text())["sha256"]
        return {"model": TOY, "revision": None, "sha256": sha, "commit": None}
    p = Path(model).expanduser()
    if p.is_dir():
        weights = [p / f for f in _WEIGHT_FILES if (p / f).is_file()]
        if not weights:
            raise ValueError(f"the model directory {p} has none of the weight files {', '.join(_WEIGHT_FILES)}")
        return {"model": model, "revision": revision, "commit": snapshot_commit(p),
                "sha256": _sha256(str(weights[0]), weights[0].stat().st_mtime_ns)}
    return {"model": model, "revision": revision, "sha256": None, "commit": hub_commit(model, revision)}


_COMMIT = re.compile(r"[0-9a-f]{40}")


def snapshot_commit(path: str | Path) -> str | None:
    """The commit a Hub cache snapshot folder (``models--org--name/snapshots/<commit>``) holds, or
    None for any other folder."""
    p = Path(path).resolve()
    return p.name if p.parent.name == "snapshots" and _COMMIT.fullmatch(p.name) else None


def hub_commit(model: str, revision: str | None = None) -> str | None:
    """The commit that `model` at `revision` (default: the main branch) resolves to in the local Hub
    cache, read from the cache alone (no network), or None when the model is not cached yet."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return snapshot_commit(Path(found).parent) if isinstance(found, str) else None


@functools.cache
def _sha256(path: str, mtime_ns: int) -> str:
    return sha256_file(path)
