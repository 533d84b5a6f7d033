"""Batching: sentences encoded into examples (subword ids, first-subword positions, label ids),
padded into batches to their own longest sentence, and grouped by length for training.

Training (`training.fine_tune`) and evaluation (`evaluation`) both batch through this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data.records import Sentence, label_set
from .tokenization import encode_words


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


def make_examples(tokenizer, sentences: Sequence[Sentence], task: str, max_length: int = 512) -> list[dict]:
    """Encode sentences and attach label ids for `task` (one label per word, on its first subword)."""
    labels = {lab: i for i, lab in enumerate(label_set(task))}
    encs = encode_words(tokenizer, [s.words for s in sentences], max_length=max_length)
    out = []
    for s, e in zip(sentences, encs, strict=True):
        ex = {"input_ids": e.input_ids, "first_subword": e.first_subword}
        if task == "parse":
            if s.heads is None:
                raise ValueError(f"sentence {s.sent_id} has no dependency annotation")
            ex["heads"] = list(s.heads)
            ex["labels"] = [labels[r] for r in s.deprels]
        else:
            tags = s.labels(task)
            if tags is None:
                raise ValueError(f"sentence {s.sent_id} ({s.lang}) has no {task} annotation")
            unknown = sorted(set(tags) - set(labels))
            if unknown:
                raise ValueError(f"sentence {s.sent_id}: unknown {task} labels {unknown}; valid: {list(labels)}")
            ex["labels"] = [labels[t] for t in tags]
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
