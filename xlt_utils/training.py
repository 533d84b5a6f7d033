"""Fine-tuning: length-grouped batches with dynamic padding, bf16 autocast, a fused/foreach AdamW,
and per-epoch checkpoints so that an interrupted run resumes where it stopped."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .batching import collate, length_grouped_batches, make_examples
from .data.records import Sentence


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def bf16_supported(device: str = "cpu") -> bool:
    """True where bf16 matmuls are fast: a GPU with bf16, or a CPU with AVX-512 BF16 or AMX."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(enabled: bool | str = "auto", device: str = "cpu"):
    """bf16 autocast where the hardware supports it (or as asked); a no-op context otherwise."""
    use = bf16_supported(device) if enabled == "auto" else bool(enabled)
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


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
        return parser_loss(arc.float(), rel.float(), batch["heads"], batch["labels"], batch["word_mask"])
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
    bf16: bool | str = "auto"
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

    Each epoch's batches come from `length_grouped_batches` with buckets of `cfg.length_bucket`
    batches (`length_bucket=1`: random batches).

    With `run_dir`, a checkpoint is written after every epoch and a restarted call resumes from it.
    """
    from tqdm.auto import tqdm

    set_seed(cfg.seed)
    examples = make_examples(tokenizer, list(train), model.task, cfg.max_length)
    head_params = {id(p) for p in model.head.parameters()}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in head_params], "lr": cfg.lr},
              {"params": [p for p in model.head.parameters() if p.requires_grad], "lr": cfg.head_lr or cfg.lr}]
    groups = [g for g in groups if g["params"]]
    opt = make_optimizer(groups, cfg.lr, cfg.weight_decay)
    steps_per_epoch = -(-len(examples) // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    history: list[float] = []
    start_epoch = 0
    ckpt = Path(run_dir) / "checkpoint.pt" if run_dir else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["rng"])
    device = next(model.parameters()).device.type
    lengths = [len(e["input_ids"]) for e in examples]
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        batches = length_grouped_batches(lengths, cfg.batch_size, gen, cfg.length_bucket)
        total_loss = 0.0
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False):
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], tokenizer.pad_token_id).items()}
            with autocast(cfg.bf16, device):
                loss = task_loss(model, batch)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.max_grad_norm)
            opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
            total_loss += loss.item()
        history.append(total_loss / len(batches))
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "epoch": epoch + 1, "history": history, "rng": torch.get_rng_state()}, ckpt)
    model.eval()
    return history
