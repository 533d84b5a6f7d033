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
