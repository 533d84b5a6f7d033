"""Fine-tuning: length-grouped batches with dynamic padding, autocast in the precision the hardware
runs fast (`xlt_utils.precision`: bf16, or fp16 with a GradScaler, or fp32), a fused/foreach AdamW,
and per-epoch checkpoints so that an interrupted run resumes where it stopped."""

from __future__ import annotations

import os
import pickle
import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .data.records import Sentence, label_set
from .precision import autocast as precision_autocast
from .precision import grad_scaler, hardware_precision, resolve_precision
from .tokenization import encode_words


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


def length_grouped_batches(lengths: Sequence[int], batch_size: int, gen: torch.Generator,
                           bucket_factor: int) -> list[list[int]]:
    """Shuffle, sort by length inside buckets of `bucket_factor` batches, then shuffle the batches.

    `bucket_factor=1` gives random batches (sorting inside one batch changes nothing). Larger buckets
    waste less padding but make every batch hold sentences of one length. In the toy profile (POS,
    seeds 1-5), buckets of 50 batches cost the source about 0.4 accuracy points against random
    batches, more than the spread over seeds; buckets of 4 keep it within that spread of the plain
    recipe (benchmarks/fast_path_check.py and benchmarks/README.md). The recipes say which:
    `TrainConfig.length_bucket`, `PretrainRecipe.length_bucket`."""
    if bucket_factor < 1:
        raise ValueError(f"bucket_factor must be >= 1, got {bucket_factor}")
    order = torch.randperm(len(lengths), generator=gen).tolist()
    batches = []
    span = batch_size * bucket_factor
    for start in range(0, len(order), span):
        bucket = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [bucket[k:k + batch_size] for k in range(0, len(bucket), batch_size)]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[p] for p in perm]


class TruncationWarning(UserWarning):
    """Training sentences were longer than the model takes: their last words lost their labels."""


def sentence_name(s: Sentence) -> str:
    """How errors and warnings name a sentence: its file (when the reader recorded one), sent_id, language."""
    where = s.meta.get("file") if s.meta else None
    return f"{where} sent_id {s.sent_id} ({s.lang})" if where else f"sent_id {s.sent_id} ({s.lang})"


def max_subwords(model) -> int:
    """The longest input `model` takes, [CLS] and [SEP] included: its number of position embeddings
    (512 for mBERT, 128 for the toy BERT)."""
    encoder = getattr(model, "encoder", model)
    return int(encoder.config.max_position_embeddings)


def make_examples(tokenizer, sentences: Sequence[Sentence], task: str, max_length: int = 512,
                  overflow: str = "raise") -> list[dict]:
    """Encode sentences and attach label ids for `task` (one label per word, on its first subword).

    `overflow` says what happens to a sentence of more than `max_length` subwords (see
    `encode_words`): "raise" (naming its file and sent_id), "truncate" (the words cut off lose
    their labels; `n_dropped` counts them; for parsing, a kept word whose head was cut off is left
    out of the loss) or "keep" (evaluation windows long sentences itself).
    """
    labels = {lab: i for i, lab in enumerate(label_set(task))}
    encs = encode_words(tokenizer, [s.words for s in sentences], max_length=max_length, overflow=overflow,
                        names=[sentence_name(s) for s in sentences])
    out = []
    for s, e in zip(sentences, encs, strict=True):
        kept = len(e.first_subword)
        ex = {"input_ids": e.input_ids, "first_subword": e.first_subword}
        if kept < len(s.words):
            ex["n_dropped"] = len(s.words) - kept
        if task == "parse":
            if s.heads is None:
                raise ValueError(f"{sentence_name(s)} has no dependency annotation")
            unknown = sorted(set(s.deprels) - set(labels))
            if unknown:
                raise ValueError(f"{sentence_name(s)}: unknown relations {unknown} (universal "
                                 f"relations without subtypes); valid: {list(labels)}")
            heads = s.heads[:kept]
            ex["heads"] = [h if h <= kept else 0 for h in heads]  # a head that was cut off: not trained on
            ex["labels"] = [labels[r] if h <= kept else -100 for r, h in zip(s.deprels[:kept], heads, strict=True)]
        else:
            tags = s.labels(task)
            if tags is None:
                raise ValueError(f"{sentence_name(s)} has no {task} annotation")
            unknown = sorted(set(tags) - set(labels))
            if unknown:
                raise ValueError(f"{sentence_name(s)}: unknown {task} labels {unknown}; valid: {list(labels)}")
            ex["labels"] = [labels[t] for t in tags[:kept]]
        out.append(ex)
    return out


def collate(examples: Sequence[dict], pad_id: int) -> dict:
    """Pad a batch to its own longest sentence (dynamic padding), never to a fixed length."""
    B = len(examples)
    T = max(len(e["input_ids"]) for e in examples)
    W = max(len(e["first_subword"]) for e in examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    first = torch.zeros((B, W), dtype=torch.long)
    wmask = torch.zeros((B, W), dtype=torch.bool)
    labels = torch.full((B, W), -100, dtype=torch.long)
    heads = torch.zeros((B, W), dtype=torch.long) if "heads" in examples[0] else None
    for b, e in enumerate(examples):
        n, w = len(e["input_ids"]), len(e["first_subword"])
        ids[b, :n] = torch.tensor(e["input_ids"])
        first[b, :w] = torch.tensor(e["first_subword"])
        wmask[b, :w] = True
        if "labels" in e:
            labels[b, :w] = torch.tensor(e["labels"])
        if heads is not None:
            heads[b, :w] = torch.tensor(e["heads"])
    batch = {"input_ids": ids, "attention_mask": (ids != pad_id).long(), "first_subword": first,
             "word_mask": wmask, "labels": labels}
    if heads is not None:
        batch["heads"] = heads
    return batch


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
    device = next(model.parameters()).device.type
    precision = resolve_precision(cfg.bf16, device, model)
    scaler = grad_scaler(precision, device)  # enabled for fp16 only
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
            with precision_autocast(precision, device):
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
