"""Fine-tuning: length-grouped batches with dynamic padding, autocast in the precision the hardware
runs fast (`xlt_utils.precision`: bf16, or fp16 with a GradScaler, or fp32), a fused/foreach AdamW,
and per-epoch checkpoints so that an interrupted run resumes where it stopped."""

from __future__ import annotations

import os
import pickle
import random
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .batching import (
    TruncationWarning,
    collate,
    length_grouped_batches,
    make_examples,
    max_subwords,
    sentence_name,
)
from .data.records import Sentence
from .precision import autocast as precision_autocast
from .precision import grad_scaler, hardware_precision, resolve_precision


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def bf16_supported(device: str = "cpu") -> bool:
    """True where bf16 matmuls are native: CUDA capability >= 8.0, or a CPU with AVX-512 BF16 or AMX
    (the policy of `xlt_utils.precision`; XLT_PRECISION can force it)."""
    return hardware_precision(device) == "bf16"


def autocast(enabled: bool | str = "auto", device: str = "cpu", model=None):
    """Autocast in the precision `enabled` resolves to ("auto", "bf16", "fp16", "fp32"; True/False =
    bf16/fp32) on `device`, for `model` (small models: fp32 under "auto"); a no-op context for fp32."""
    return precision_autocast(resolve_precision(enabled, device, model), device)


def decay_groups(groups) -> list[dict]:
    """Split parameter groups by BERT's weight-decay rule: no decay on biases and LayerNorm weights.

    BERT's recipe names them ("bias", "LayerNorm.weight"); in a BERT they are exactly the 1-D
    parameters, so the rule here is by shape and also covers the task heads. Each group keeps its
    other settings (its learning rate); the no-decay half gets `weight_decay=0.0`. Frozen parameters
    are dropped, and so are groups left empty.
    """
    groups = list(groups)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    out = []
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        rest = {k: v for k, v in g.items() if k != "params"}
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        out += [{**rest, "params": decay}] if decay else []
        out += [{**rest, "params": no_decay, "weight_decay": 0.0}] if no_decay else []
    return out


def make_optimizer(params, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """AdamW with BERT's weight-decay rule (`decay_groups`), the fused kernel where available, else
    the foreach one. `params` is an iterable of parameters or of parameter groups."""
    groups = decay_groups(params)
    try:
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, foreach=True)


def task_loss(model, batch: dict) -> torch.Tensor:
    """The training loss of a batch for the model's task."""
    out = model(batch)
    if model.task == "parse":
        from .parsing import parser_loss

        arc, rel = out
        scored = batch["word_mask"] & (batch["labels"] != -100)  # -100: a head cut off by truncation
        return parser_loss(arc.float(), rel.float(), batch["heads"], batch["labels"], scored)
    return torch.nn.functional.cross_entropy(out.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)


@dataclass
class TrainConfig:
    """Fine-tuning hyper-parameters."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float | None = None
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 1
    bf16: bool | str = "auto"  # precision: "auto" (xlt_utils.precision), "bf16", "fp16", "fp32"; True/False = bf16/fp32
    max_grad_norm: float = 1.0
    max_length: int = 256
    length_bucket: int = 4  # batches per length-sorted bucket (1: random batches); see length_grouped_batches

    def to_dict(self) -> dict:
        return asdict(self)


def atomic_save(obj, path: Path) -> None:
    """torch.save through a temporary file and a rename: a killed writer leaves no partial file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fine_tune(model, tokenizer, train: Iterable[Sentence], cfg: TrainConfig, run_dir: Path | None = None,
              progress: bool = True) -> list[float]:
    """Fine-tune `model` on `train` in place; returns the mean loss per epoch.

    Sentences longer than the model takes (`max_subwords`, or `cfg.max_length` if smaller) are
    truncated; the labels of the words cut off are dropped, and a `TruncationWarning` says how many.

    Each epoch's batches come from `length_grouped_batches` with buckets of `cfg.length_bucket`
    batches (`length_bucket=1`: random batches).

    With `run_dir`, a checkpoint is written after every epoch and a restarted call resumes from it.
    """
    from tqdm.auto import tqdm

    set_seed(cfg.seed)
    train = list(train)
    if not train:
        raise ValueError("fine_tune: the training set is empty (0 sentences); check the split and n_train "
                         "that produced it")
    limit = min(cfg.max_length, max_subwords(model))
    examples = make_examples(tokenizer, train, model.task, limit, overflow="truncate")
    cut = [(s, e["n_dropped"]) for s, e in zip(train, examples, strict=True) if "n_dropped" in e]
    if cut:  # reported once per run
        warnings.warn(
            f"{len(cut)} of {len(train)} training sentences are longer than {limit} subwords and were truncated: "
            f"{sum(n for _, n in cut)} word labels dropped (e.g. {sentence_name(cut[0][0])}, {cut[0][1]} words)",
            TruncationWarning, stacklevel=2)
    head_params = {id(p) for p in model.head.parameters()}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in head_params], "lr": cfg.lr},
              {"params": [p for p in model.head.parameters() if p.requires_grad], "lr": cfg.head_lr or cfg.lr}]
    groups = [g for g in groups if g["params"]]
    opt = make_optimizer(groups, cfg.lr, cfg.weight_decay)
    steps_per_epoch = -(-len(examples) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    history: list[float] = []
    start_epoch = 0
    ckpt = Path(run_dir) / "checkpoint.pt" if run_dir else None
    state = None
    if ckpt is not None and ckpt.is_file():
        try:  # weights_only: tensors and plain types only, so a planted pickle cannot run code
            state = torch.load(ckpt, weights_only=True)
        except pickle.UnpicklingError as e:
            raise pickle.UnpicklingError(
                f"{ckpt}: refused to resume from this checkpoint: it holds more than tensors and plain "
                f"types (torch.load(weights_only=True) rejected it): {e}") from e
        model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["rng"])
    device = next(model.parameters()).device  # batches go where the model is (the full device: cuda:1 too)
    precision = resolve_precision(cfg.bf16, device, model)
    scaler = grad_scaler(precision, device.type)  # enabled for fp16 only
    if state is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    lengths = [len(e["input_ids"]) for e in examples]
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        batches = length_grouped_batches(lengths, cfg.batch_size, gen, cfg.length_bucket)
        total_loss = 0.0
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False):
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], tokenizer.pad_token_id).items()}
            with precision_autocast(precision, device.type):
                loss = task_loss(model, batch)
            scaler.scale(loss).backward()
            if cfg.max_grad_norm:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.max_grad_norm)
            scaler.step(opt), scaler.update()  # the step is skipped when fp16 gradients overflowed
            sched.step(), opt.zero_grad(set_to_none=True)
            total_loss += loss.item()
        history.append(total_loss / len(batches))
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "epoch": epoch + 1, "history": history, "rng": torch.get_rng_state(),
                         "scaler": scaler.state_dict()}, ckpt)
    model.eval()
    return history
