"""Fine-tuning: length-grouped batches with dynamic padding, autocast in the precision the hardware
runs fast (`xlt_utils.precision`: bf16, or fp16 with a GradScaler, or fp32), a fused/foreach AdamW,
and a resume checkpoint (the last epoch's, written when it saves more than it costs: `checkpoint_due`)
so that an interrupted run resumes where it stopped."""

from __future__ import annotations

import math
import numbers
import random
import time
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
from .models import model_device
from .parsing import parser_loss
from .precision import autocast, grad_scaler, normalize, resolve_precision
from .store import (  # CHECKPOINT: the store deletes it
    CHECKPOINT,
    atomic_file,
    load_tensors,
    move_aside,
)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


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
        arc, rel = out
        scored = batch["word_mask"] & (batch["labels"] != -100)  # -100: a head cut off by truncation
        return parser_loss(arc.float(), rel.float(), batch["heads"], batch["labels"], scored)
    return torch.nn.functional.cross_entropy(out.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)


#: The range of every integer training option: (smallest, largest or None). Checked when a config is
#: made (`TrainConfig.check`), so that a bad value is an error naming it, not a failure deep in a run.
INT_OPTIONS = {
    "epochs": (1, None),  # 0 would store an untrained model's scores as a result
    "batch_size": (1, None),
    "seed": (0, 2**32 - 1),  # numpy's seeds
    "max_length": (3, None),  # [CLS], one subword, [SEP]
    "length_bucket": (1, None),
}
#: The range of every real-valued option: (smallest, largest or None, whether the smallest is allowed,
#: whether None is allowed and what it means).
FLOAT_OPTIONS = {
    "lr": (0.0, None, False, None),
    "head_lr": (0.0, None, False, "None: the same as lr"),
    "warmup": (0.0, 1.0, True, None),  # a fraction of the training steps; 2.0 would halve the peak learning rate
    "weight_decay": (0.0, None, True, None),
    "max_grad_norm": (0.0, None, True, "0 or None: no clipping"),
}


class TrainingOptionError(ValueError):
    """A training option out of its range, named with its value and the valid range."""


def _option_error(name: str, value, valid: str) -> TrainingOptionError:
    return TrainingOptionError(f"training option {name}={value!r} is not valid; valid: {valid}")


def check_int_option(name: str, value, low: int, high: int | None) -> int:
    """`value` as an int if it is an integer (not a bool, not a float such as 1.0, which would hash to
    another cache key than 1) in [low, high]; else a `TrainingOptionError` naming the option."""
    valid = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _option_error(name, value, valid)
    number = int(value)
    if number < low or (high is not None and number > high):
        raise _option_error(name, value, valid)
    return number


def check_float_option(name: str, value, low: float, high: float | None, low_ok: bool, none: str | None) -> float | None:
    """`value` as a float (an int such as 1 becomes 1.0: one cache key for one value) if it is a finite
    number in its range; None where the option allows it; else a `TrainingOptionError`."""
    lo = f">= {low:g}" if low_ok else f"> {low:g}"
    valid = (f"a number {lo}" if high is None else f"a number from {low:g} to {high:g}") + (f", or {none}" if none else "")
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _option_error(name, value, valid)
    number = float(value)
    if number < low or (number == low and not low_ok) or (high is not None and number > high):
        raise _option_error(name, value, valid)  # the value as given
    return number


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters, immutable. Every option is checked when the config is made: a
    value out of range is a `TrainingOptionError` that names the option, its value and the valid
    range. `dataclasses.replace(cfg, epochs=1)` makes a changed copy (checked too)."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float | None = None
    warmup: float = 0.1  # a fraction of the training steps, 0 to 1
    weight_decay: float = 0.01
    seed: int = 1
    precision: str = "auto"  # "auto" (xlt_utils.precision decides), "bf16", "fp16" or "fp32"
    max_grad_norm: float = 1.0
    max_length: int = 256
    length_bucket: int = 4  # batches per length-sorted bucket (1: random batches); see length_grouped_batches

    def __post_init__(self):
        """Check every option and write numbers in one type: integers as int, reals as float, so
        that equal values give equal cache keys; the precision as one of its names (True/False, as
        configs older than this field's name said, become "bf16"/"fp32")."""
        for name, (low, high) in INT_OPTIONS.items():
            object.__setattr__(self, name, check_int_option(name, getattr(self, name), low, high))
        for name, spec in FLOAT_OPTIONS.items():
            object.__setattr__(self, name, check_float_option(name, getattr(self, name), *spec))
        try:
            object.__setattr__(self, "precision", normalize(self.precision))
        except ValueError:
            raise _option_error("precision", self.precision, "auto, bf16, fp16 or fp32") from None

    def to_dict(self) -> dict:
        return asdict(self)


def atomic_save(obj, path: Path) -> None:
    """torch.save through a temporary file and a rename (`store.atomic_file`: a random name created
    without following a planted symlink): a killed writer leaves no partial file."""
    with atomic_file(Path(path), "wb") as f:
        torch.save(obj, f)


# ----------------------------------------------------------------------------------------- checkpoints
#
# What a resume needs: the state after the last finished epoch (weights, AdamW's moments, the
# schedule, the loss history, the random generators), in ONE file, `checkpoint.pt`, written through a
# temporary file and a rename over the previous one; the result store deletes it once the run's
# record is written. For mBERT that file is 2.13 GB (711 MB of fp32 weights and twice that of AdamW
# moments), so writing it after every epoch cost more than it saved on short runs. Hence
# `checkpoint_due`: a small checkpoint (the toy BERT's: 33 MB) is written after every epoch; a large
# one only when at least `LARGE_CHECKPOINT_AFTER_S` seconds of training would otherwise be lost, and
# never after the last epoch (the run is over; evaluation and the record follow at once).

#: Checkpoints up to this size are written after every epoch (well under a second on any disk).
SMALL_CHECKPOINT_BYTES = 256 * 2**20
#: A larger checkpoint is written once this many seconds of training are unsaved: about 30x the time
#: mBERT's 2.13 GB take to write on a local disk (10 s at ~200 MB/s), so it costs at most a few percent
#: of the run; shorter runs (the quick profile on a GPU: seconds per epoch) write none and rerun instead.
LARGE_CHECKPOINT_AFTER_S = 300.0
_CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "history", "rng")


def checkpoint_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """The size of a resume checkpoint's tensors: the model's state and the optimizer's."""
    tensors = [*model.state_dict().values(),
               *(v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor))]
    return sum(t.numel() * t.element_size() for t in tensors)


def checkpoint_due(nbytes: int, unsaved_s: float, last: bool) -> bool:
    """Whether to write the resume checkpoint after an epoch: always when it is small
    (`SMALL_CHECKPOINT_BYTES`); a large one when the training since the last checkpoint took at least
    `LARGE_CHECKPOINT_AFTER_S` seconds and more epochs follow."""
    if nbytes <= SMALL_CHECKPOINT_BYTES:
        return True
    return not last and unsaved_s >= LARGE_CHECKPOINT_AFTER_S


def state_dict_problem(state, model: torch.nn.Module) -> str | None:
    """Why `state` is not a state dict of `model` (another task's head, another architecture, not a
    dict of tensors), or None when `model.load_state_dict(state)` will take all of it."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a state dict"
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        return (f"its weights are not this model's ({len(missing)} missing, e.g. {missing[:2]}; "
                f"{len(extra)} unexpected, e.g. {extra[:2]})")
    for name, t in own.items():
        if not isinstance(state[name], torch.Tensor):
            return f"{name} is a {type(state[name]).__name__}, not a tensor"
        if tuple(state[name].shape) != tuple(t.shape):
            return f"{name} has shape {tuple(state[name].shape)}, this model's {tuple(t.shape)} (another task's head?)"
    return None


def _checkpoint_problem(state, model, opt: torch.optim.Optimizer, epochs: int) -> str | None:
    """Why a loaded checkpoint cannot resume this run, or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint's dict"
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        return f"it has no {', '.join(missing)}"
    epoch, history = state["epoch"], state["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
        return f"epoch {epoch!r} is not a finished epoch of this run (1 to {epochs})"
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(h, float) for h in history):
        return f"its loss history {history!r} is not one number per finished epoch"
    if not isinstance(state["rng"], torch.Tensor) or state["rng"].dtype != torch.uint8:
        return "its random generator state is not a byte tensor"
    if (problem := state_dict_problem(state["model"], model)) is not None:
        return problem
    saved = state["optimizer"]
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) or \
            not isinstance(saved.get("state"), dict):
        return "its optimizer state is not an optimizer's state dict"
    if [len(g.get("params", ())) for g in saved["param_groups"]] != [len(g["params"]) for g in opt.param_groups]:
        return "its optimizer holds other parameter groups than this run's (another ablation or task?)"
    params = [p for g in opt.param_groups for p in g["params"]]
    ids = [i for g in saved["param_groups"] for i in g["params"]]
    for i, p in zip(ids, params, strict=True):
        for name, v in saved["state"].get(i, {}).items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and tuple(v.shape) != tuple(p.shape):
                return f"its optimizer's {name} has shape {tuple(v.shape)} for a parameter of shape {tuple(p.shape)}"
    if not isinstance(state["scheduler"], dict) or not isinstance(state.get("scaler", {}), dict):
        return "its scheduler or loss-scaler state is not a state dict"
    return None


def _resume_state(ckpt: Path, model, opt, cfg: TrainConfig) -> dict | None:
    """The checkpoint's state if it can resume this run. A planted pickle is refused (an error naming
    the file); a file that loads but is not a checkpoint of this run (``torch.save([1, 2, 3])``,
    another task's head, another number of epochs) or does not load is moved aside with a
    `CorruptResultWarning` naming it and saying why, and the run starts from its first epoch."""
    try:
        state = load_tensors(ckpt, "this checkpoint to resume from")
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        move_aside(ckpt, f"not a readable checkpoint ({type(e).__name__}: {e})")
        return None
    problem = _checkpoint_problem(state, model, opt, cfg.epochs)
    if problem is not None:
        move_aside(ckpt, f"not a resume checkpoint of this run: {problem}")
        return None
    return state


def fine_tune(model, tokenizer, train: Iterable[Sentence], cfg: TrainConfig, run_dir: Path | None = None,
              progress: bool = True) -> list[float]:
    """Fine-tune `model` on `train` in place; returns the mean loss per epoch.

    Sentences longer than the model takes (`max_subwords`, or `cfg.max_length` if smaller) are
    truncated; the labels of the words cut off are dropped, and a `TruncationWarning` says how many.

    Each epoch's batches come from `length_grouped_batches` with buckets of `cfg.length_bucket`
    batches (`length_bucket=1`: random batches).

    With `run_dir`, a restarted call resumes from the checkpoint there (`run_dir/checkpoint.pt`, the
    state after the last epoch saved): a small model's is written after every epoch, a large one's
    (mBERT: 2.13 GB) only when `checkpoint_due` says it saves more time than it costs. A checkpoint
    that is not this run's is moved aside with a warning naming it, and training starts from epoch 1.
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
    ckpt = Path(run_dir) / CHECKPOINT if run_dir else None
    device = model_device(model)  # batches go where the model is (the full device: cuda:1 too)
    precision = resolve_precision(cfg.precision, device, model)
    scaler = grad_scaler(precision, device.type)  # enabled for fp16 only
    state = _resume_state(ckpt, model, opt, cfg) if ckpt is not None and ckpt.is_file() else None
    if state is not None:
        try:
            model.load_state_dict(state["model"]), opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if "scaler" in state:
                scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:  # checked above: not expected
            raise RuntimeError(f"{ckpt}: resuming from this checkpoint failed half-way ({type(e).__name__}: {e}); "
                               "the model is partly loaded: build it again, and delete the checkpoint") from e
        start_epoch, history = state["epoch"], list(state["history"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:  # dropout on the GPU draws from the GPU's generator
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    lengths = [len(e["input_ids"]) for e in examples]
    unsaved = 0.0  # seconds of training since the last checkpoint (what an interruption would cost)
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        batches = length_grouped_batches(lengths, cfg.batch_size, gen, cfg.length_bucket)
        total_loss = 0.0
        for idx in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False):
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], tokenizer.pad_token_id).items()}
            with autocast(precision, device.type):
                loss = task_loss(model, batch)
            scaler.scale(loss).backward()
            if cfg.max_grad_norm:
                scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.max_grad_norm)
            scaler.step(opt), scaler.update()  # the step is skipped when fp16 gradients overflowed
            sched.step(), opt.zero_grad(set_to_none=True)
            total_loss += loss.item()
        history.append(total_loss / len(batches))
        unsaved += time.perf_counter() - started
        if ckpt is not None and checkpoint_due(checkpoint_bytes(model, opt), unsaved, last=epoch + 1 == cfg.epochs):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch + 1, "history": history, "rng": torch.get_rng_state(),
                     "scaler": scaler.state_dict()}
            if device.type == "cuda":
                state["cuda_rng"] = torch.cuda.get_rng_state(device)
            atomic_save(state, ckpt)  # over the previous one: one checkpoint per run, the last epoch's
            unsaved = 0.0
    model.eval()
    return history
