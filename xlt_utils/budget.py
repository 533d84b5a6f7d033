"""Honest budgets: a chapter's runtime for the device at hand, from a measured per-step cost.

`measure_step_seconds` times a few real training steps (forward, backward, optimizer step) of a
model with the profile's architecture (random weights: the cost of a step does not depend on them) at
the profile's batch shape, on this machine's device, in the precision the policy chooses
(`xlt_utils.precision`). `chapter_steps` counts the training steps (and evaluation batches, at a
third of a training step each: a forward pass without backward) that a chapter runs in a profile.
`estimate` multiplies the two and adds the resume checkpoints that `training.checkpoint_due` writes
(their size computed, their write speed assumed: `CHECKPOINT_BYTES_PER_S`); `print_estimate` prints
one line that says what is measured and what is estimated, and does nothing in the toy profile
(whose chapters take seconds to minutes and whose stored outputs must not depend on the machine).

Counts assume the chapter runs alone with an empty result cache; chapter 4 reuses chapter 2's and
chapter 3's fine-tunings when they are cached, so it then costs little more than its CKA passes.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import torch

from . import precision as _precision
from .ablation import expand_ablations
from .models import XltModel, tiny_bert_config
from .precision import autocast, grad_scaler, hardware_precision, resolve_precision
from .pretrained import num_layers
from .training import checkpoint_due, make_optimizer, task_loss

#: Sentences in the full training sets (UD English-EWT train; WikiANN English train).
FULL_TRAIN_SENTENCES = {"pos": 12544, "parse": 12544, "ner": 20000}
FULL_EVAL_SENTENCES = 1000  # a PUD test set (NER: WikiANN test sets are larger; PUD-sized is assumed)
#: Padded subwords per sentence in a batch: English-EWT with mBERT's tokenizer averages about 25
#: subwords, and length-grouped buckets of 4 batches leave about 60% of the processed tokens real.
PADDED_LENGTH = 48
EVAL_STEP_SHARE = 1 / 3  # a forward pass costs about a third of forward + backward + update
#: Chapter 3's default grid (the `ablations` parameter of its notebook; a test keeps them equal).
CHAPTER3_ABLATIONS = ("reference", "reinit-consecutive", "freeze-halves", "random_init")
#: An assumption, not a measurement: the speed at which a resume checkpoint is written (a local SSD;
#: mBERT's 2.13 GB took 8.4 s on this project's CPU machine). Google Drive is slower.
CHECKPOINT_BYTES_PER_S = 250e6


@dataclass(frozen=True)
class Estimate:
    chapter: int
    fine_tunings: int
    train_steps: int
    eval_batches: int
    step_seconds: float
    device: str
    precision: str
    checkpoints: int = 0  # resume checkpoints written (`training.checkpoint_due`)
    checkpoint_bytes: int = 0  # the size of one

    @property
    def checkpoint_seconds(self) -> float:
        return self.checkpoints * self.checkpoint_bytes / CHECKPOINT_BYTES_PER_S

    @property
    def seconds(self) -> float:
        return (self.train_steps + EVAL_STEP_SHARE * self.eval_batches) * self.step_seconds + self.checkpoint_seconds

    def line(self) -> str:
        ckpt = (f" + {self.checkpoints} resume checkpoints of {self.checkpoint_bytes / 1e9:.2f} GB "
                f"(estimated at {CHECKPOINT_BYTES_PER_S / 1e6:.0f} MB/s)" if self.checkpoints else "")
        return (f"Estimated runtime of chapter {self.chapter} here ({self.device}, {self.precision}): "
                f"{format_duration(self.seconds)} = ({self.fine_tunings} fine-tunings: {self.train_steps} training "
                f"steps + {self.eval_batches} evaluation batches at a third of a step) x {self.step_seconds:.2f} s "
                f"per step (measured here: median after warm-up){ckpt}. An estimate: with an empty result cache, "
                "not counting model loading")


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _config_of(model: str):
    from transformers import AutoConfig, BertConfig

    if model == "toy":
        return tiny_bert_config(vocab_size=8000)
    if model in ("bert-base-multilingual-cased", "bert-base-multilingual-uncased"):
        return BertConfig(vocab_size=119547 if model.endswith("-cased") else 105879)  # BERT-base, no download
    return AutoConfig.from_pretrained(model)  # a local directory or the hub cache


def measure_step_seconds(config, batch_size: int = 32, length: int = PADDED_LENGTH, device=None,
                         precision: str = "auto", steps: int = 5, warmup: int = 2) -> float:
    """Median seconds of `steps` timed training steps (after `warmup` untimed ones) of a POS tagger
    on an encoder built from `config` (random weights), at `batch_size` x `length` subwords."""
    from transformers import BertModel

    device = torch.device(device) if device is not None else _precision.default_device()
    g = torch.Generator().manual_seed(0)
    model = XltModel(BertModel(config, add_pooling_layer=False), "pos", 17).to(device)
    precision = resolve_precision(precision, device, model)
    opt, scaler = make_optimizer(model.parameters(), 5e-5), grad_scaler(precision, device)
    words = max(1, length // 2)
    batch = {"input_ids": torch.randint(min(1000, config.vocab_size - 1), config.vocab_size, (batch_size, length), generator=g),
             "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
             "first_subword": torch.arange(1, words + 1).repeat(batch_size, 1),
             "word_mask": torch.ones(batch_size, words, dtype=torch.bool),
             "labels": torch.randint(0, 17, (batch_size, words), generator=g)}
    batch = {k: v.to(device) for k, v in batch.items()}
    times = []
    model.train()
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with autocast(precision, device):
            loss = task_loss(model, batch)
        scaler.scale(loss).backward()
        scaler.step(opt), scaler.update(), opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


@functools.cache
def _measured(model: str, batch_size: int, device: str, precision: str) -> float:
    return measure_step_seconds(_config_of(model), batch_size, device=device, precision=precision)


def _num_layers(profile) -> int:
    """The profile's depth, from the config `_config_of` builds without a download (mBERT's is BERT-base)."""
    return num_layers(_config_of(profile.model))


def chapter_steps(profile, chapter: int) -> tuple[int, int, int]:
    """(fine-tunings, training steps, evaluation batches) that `chapter` runs in `profile`.

    Chapter 2: reference and random-init per task (first seed). Chapter 3: its default grid
    (`CHAPTER3_ABLATIONS`: the reference, the consecutive Reinit pairs, the two Freeze halves and
    random init) per task and seed of the profile. Chapter 4: the C5 references and the C1/C2 grid
    (reference, lowest and highest pair) per task and seed (the fine-tuned models behind C4 are the
    references of its `task`), plus CKA forward passes over the parallel sentences. Chapters 0 and 1
    train nothing (chapter 0 reads chapters 3 and 4's runs in quick and full).
    """
    tasks, seeds = len(profile.tasks), len(profile.seeds)
    L = _num_layers(profile)
    if chapter in (0, 1):
        return 0, 0, 0
    if chapter == 2:
        runs = tasks * 2
    elif chapter == 3:
        runs = tasks * seeds * len(expand_ablations(CHAPTER3_ABLATIONS, L))
    elif chapter == 4:
        runs = tasks * seeds * 3
    else:
        raise ValueError(f"unknown chapter {chapter}; valid chapters: 0, 1, 2, 3, 4")
    per_task_steps = [math.ceil((profile.n_train or FULL_TRAIN_SENTENCES[t]) / profile.batch_size) * profile.epochs
                      for t in profile.tasks]
    steps = round(runs * sum(per_task_steps) / len(per_task_steps))
    n_eval = profile.n_eval or FULL_EVAL_SENTENCES
    eval_batches = runs * math.ceil(n_eval * len(profile.languages) / profile.batch_size)
    if chapter == 4:  # CKA passes: the pretrained model, then per seed the fine-tuned model and its local
        # states (two layers a layer: about two passes)
        passes = 1 + 3 * seeds
        eval_batches += passes * math.ceil(profile.n_cka * len(profile.languages) / profile.batch_size)
    return runs, steps, eval_batches


def checkpoint_size(config) -> int:
    """The size of a resume checkpoint: fp32 weights and AdamW's two moments, 12 bytes a parameter
    (the head is negligible); the model is built on the `meta` device, so nothing is allocated."""
    from transformers import BertModel

    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    return 12 * sum(p.numel() for p in model.parameters())


def checkpoint_writes(nbytes: int, epoch_seconds: float, epochs: int) -> int:
    """How many checkpoints one fine-tuning writes, by `training.checkpoint_due`'s rule."""
    writes, unsaved = 0, 0.0
    for epoch in range(1, epochs + 1):
        unsaved += epoch_seconds
        if checkpoint_due(nbytes, unsaved, last=epoch == epochs):
            writes, unsaved = writes + 1, 0.0
    return writes


def estimate(profile, chapter: int, step_seconds: float | None = None, device=None,
             precision: str = "auto") -> Estimate:
    """The runtime estimate of a chapter in `profile` on `device` (default: this machine's GPU or CPU),
    from a measured step (or `step_seconds`, e.g. a number measured elsewhere)."""
    device = str(torch.device(device) if device is not None else _precision.default_device())
    prec = hardware_precision(device) if precision == "auto" else precision
    if step_seconds is None:
        step_seconds = _measured(profile.model, profile.batch_size, device, prec)
    runs, steps, batches = chapter_steps(profile, chapter)
    nbytes = checkpoint_size(_config_of(profile.model))
    per_run = steps / runs if runs else 0
    writes = runs * checkpoint_writes(nbytes, per_run / profile.epochs * step_seconds, profile.epochs) if runs else 0
    return Estimate(chapter, runs, steps, batches, step_seconds, device, prec, writes, nbytes)


def print_estimate(profile, chapter: int) -> Estimate | None:
    """Print the chapter's estimated runtime for this machine (quick and full profiles; nothing for toy)."""
    if profile.model == "toy":
        return None
    est = estimate(profile, chapter)
    print(est.line())
    return est
