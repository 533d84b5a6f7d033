"""Zero-shot evaluation: predictions for many languages in one pass, scored into a tidy table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from .data.records import Sentence, label_set
from .metrics import accuracy, attachment_scores, span_f1
from .training import autocast, collate, make_examples

METRICS = {"pos": ("accuracy",), "ner": ("f1", "precision", "recall"), "parse": ("uas", "las")}


@torch.inference_mode()
def predict(model, tokenizer, sentences: Sequence[Sentence], batch_size: int = 128, bf16="auto",
            pool: bool = False, max_length: int = 512):
    """Predicted labels per sentence (heads and relations for parsing), in input order.

    Batches are sorted by length. With `pool=True`, the per-layer mean of each sentence's subword
    states ([CLS], [SEP] and padding excluded) comes from the same forward pass, as [L+1, n, H].
    """
    labels = label_set(model.task)
    examples = make_examples(tokenizer, sentences, model.task, max_length)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    preds: list = [None] * len(examples)
    pooled = None
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], tokenizer.pad_token_id).items()}
        batch.pop("heads", None)
        with autocast(bf16, device.type):
            words, hidden = model.word_states(batch["input_ids"], batch["attention_mask"], batch["first_subword"],
                                              output_hidden_states=pool)
            if model.task == "parse":  # decode from fp32 scores: bf16 would create ties between heads
                with torch.autocast(device.type, enabled=False):
                    heads, rels = model.head.predict(words.float(), batch["word_mask"])
                out = [(h, [labels[r] for r in rs]) for h, rs in zip(heads, rels, strict=True)]
            else:
                ids = model.head(words).argmax(-1).cpu()
                out = [[labels[t] for t in ids[b, :len(examples[i]["first_subword"])].tolist()]
                       for b, i in enumerate(idx)]
        for b, i in enumerate(idx):
            preds[i] = out[b]
        if pool:
            keep = batch["attention_mask"].clone().float()
            keep[:, 0] = 0  # [CLS]
            keep[torch.arange(len(idx)), batch["attention_mask"].sum(1) - 1] = 0  # [SEP]
            means = torch.stack([torch.einsum("bth,bt->bh", h.float(), keep) / keep.sum(1, keepdim=True)
                                 for h in hidden]).cpu()
            if pooled is None:
                pooled = torch.empty(means.shape[0], len(examples), means.shape[2])
            pooled[:, idx] = means
    model.train(was_training)
    return (preds, pooled) if pool else preds


def score(task: str, sentences: Sequence[Sentence], preds: Sequence) -> dict[str, float]:
    """The task's metrics (accuracy; span F1/P/R; UAS/LAS), as percentages."""
    if task == "pos":
        return {"accuracy": 100 * accuracy([s.upos for s in sentences], preds)}
    if task == "ner":
        r = span_f1([s.ner for s in sentences], preds)
        return {"f1": 100 * r["f1"], "precision": 100 * r["precision"], "recall": 100 * r["recall"]}
    if task == "parse":
        r = attachment_scores([s.heads for s in sentences], [s.deprels for s in sentences],
                              [p[0] for p in preds], [p[1] for p in preds])
        return {"uas": 100 * r["uas"], "las": 100 * r["las"]}
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(METRICS)}")


def zero_shot_eval(model, tokenizer, data: Mapping[str, Sequence[Sentence]], task: str | None = None,
                   batch_size: int = 128, bf16="auto") -> pd.DataFrame:
    """Evaluate one fine-tuned model on every language: a tidy (language, task, metric, value, n) table."""
    task = task or model.task
    if task != model.task:
        raise ValueError(f"the model was fine-tuned for {model.task!r}, not {task!r}")
    rows = []
    for lang, sents in data.items():
        preds = predict(model, tokenizer, sents, batch_size=batch_size, bf16=bf16)
        n = sum(len(s) for s in sents)
        for metric, value in score(task, sents, preds).items():
            rows.append({"language": lang, "task": task, "metric": metric, "value": value, "n": n})
    return pd.DataFrame(rows, columns=["language", "task", "metric", "value", "n"])
