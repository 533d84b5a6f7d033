"""Zero-shot evaluation: predictions for many languages in one pass, scored into a tidy table.

`zero_shot_eval` encodes the sentences of every language once, sorts all of them by length
together, runs them in batches capped by sentences and by padded tokens under
`torch.inference_mode`, and only then splits the predictions back per language and scores each
language once per metric. The mean-pooled hidden states for CKA come from the same forward pass
when asked for (`pool=True`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from .batching import collate, make_examples, max_subwords
from .data.iob2 import repair_iob2
from .data.records import Sentence, label_set
from .metrics import accuracy, attachment_scores, span_f1
from .models import model_device
from .precision import autocast, resolve_precision
from .tokenization import encode_words

#: NER's "f1" (with precision and recall) is seqeval's default mode, XTREME's PAN-X number and the main one;
#: "f1_strict" is strict IOB2 (stray I- tags ignored), see `xlt_utils.metrics.span_f1`.
METRICS = {"pos": ("accuracy",), "ner": ("f1", "precision", "recall", "f1_strict"), "parse": ("uas", "las")}

#: Padded tokens per evaluation batch (sentences x the batch's longest sentence), by device type.
#: On a CPU a batch's activations should stay in the cache: mBERT-sized, fp32, 2 cores, the PUD
#: sentences ran at 18 sentences/s with 2048, 15 with 4096, 13 with 8192 (benchmarks/README.md).
#: A GPU wants large batches: there the `batch_size` cap (128 sentences) usually binds first.
MAX_TOKENS = {"cpu": 2048, "cuda": 16384}


def token_budget_batches(lengths: Sequence[int], batch_size: int = 128,
                         max_tokens: int | None = 2048) -> list[list[int]]:
    """Indices sorted by length (longest first, ties in input order), cut into batches of at most
    `batch_size` sentences and at most `max_tokens` padded tokens (sentences x the longest one).

    A sentence longer than `max_tokens` on its own still gets a batch (of one). Sorting all
    sentences together keeps the padding to a few percent of the tokens.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        b = batches[-1] if batches else None
        # the batch's first sentence is its longest: adding one more costs that length again
        if b and len(b) < batch_size and (max_tokens is None or (len(b) + 1) * lengths[b[0]] <= max_tokens):
            b.append(i)
        else:
            batches.append([i])
    return batches


def _max_tokens(max_tokens: int | None, device: torch.device) -> int:
    return max_tokens if max_tokens is not None else MAX_TOKENS.get(device.type, MAX_TOKENS["cuda"])


def subword_windows(n: int, size: int) -> tuple[list[int], list[int]]:
    """Windows over a sentence of `n` subwords ([CLS] and [SEP] not counted) for a model that takes
    `size` of them at once: (window starts, and for every subword the window it is read from).

    Windows overlap by half; each subword is read from the window where it is most central, so it
    sees at least a quarter window of context on each side wherever the sentence allows.
    """
    if size < 1:
        raise ValueError(f"window size must be positive, got {size}")
    if n <= size:
        return [0], [0] * n
    stride = max(1, size // 2)
    starts = list(range(0, n - size, stride)) + [n - size]
    owner = [min((k for k, a in enumerate(starts) if a <= t < a + size), key=lambda k: abs(t + 0.5 - starts[k] - size / 2))
             for t in range(n)]
    return starts, owner


def _encode_windows(encoder, ids: list[int], limit: int, pad_id: int, device, hidden: bool):
    """Run `encoder` on overlapping windows of one sentence's subwords `ids` ([CLS] ... [SEP]) that
    is longer than `limit`: each window is [CLS], at most ``limit - 2`` subwords, [SEP]. Returns
    (encoder output, window starts, the window each subword is read from: `subword_windows`)."""
    cls, sep, body = ids[0], ids[-1], ids[1:-1]
    size = limit - 2
    starts, owner = subword_windows(len(body), size)
    windows = torch.full((len(starts), size + 2), pad_id, dtype=torch.long)
    mask = torch.zeros_like(windows)
    for k, a in enumerate(starts):
        seg = [cls, *body[a:a + size], sep]
        windows[k, :len(seg)], mask[k, :len(seg)] = torch.tensor(seg), 1
    out = encoder(input_ids=windows.to(device), attention_mask=mask.to(device), output_hidden_states=hidden)
    return out, starts, owner


def _pool_windows(hidden_states, starts: list[int], owner: list[int], device) -> torch.Tensor:
    """The mean of a windowed sentence's real subword states at every layer, [L+1, 1, H] float32 on
    the CPU: each subword's state from the window it is read from ([CLS] and [SEP] left out, as
    `pool_real_subwords` does for a sentence that fits)."""
    t = torch.arange(len(owner))
    tw = torch.tensor(owner)
    tpos = t - torch.tensor(starts)[tw] + 1
    return torch.stack([h[tw.to(device), tpos.to(device)].float().mean(0, keepdim=True)
                        for h in hidden_states]).cpu()


def _predict_long(model, example: dict, limit: int, pad_id: int, labels, pool: bool, device):
    """One sentence longer than the model takes, scored word by word through overlapping windows:
    every word's state comes from the window where its first subword is most central, and the head
    (tagger or parser) runs on the whole sentence's word states. Returns (prediction, pooled
    states [L+1, 1, H] or None)."""
    first = example["first_subword"]
    out, starts, owner = _encode_windows(model.encoder, example["input_ids"], limit, pad_id, device, pool)
    win = torch.tensor([owner[p - 1] for p in first])
    pos = torch.tensor([p - starts[owner[p - 1]] for p in first])  # [CLS] shifts by one
    words = out.last_hidden_state[win.to(device), pos.to(device)].unsqueeze(0)  # [1, W, H]
    if model.task == "parse":
        with torch.autocast(device.type, enabled=False):
            heads, rels = model.head.predict(words.float(), torch.ones(words.shape[:2], dtype=torch.bool, device=device))
        pred = (heads[0], [labels[r] for r in rels[0]])
    else:
        pred = [labels[t] for t in model.head(words).argmax(-1)[0].cpu().tolist()]
    pooled = _pool_windows(out.hidden_states, starts, owner, device) if pool else None
    return pred, pooled


@contextlib.contextmanager
def _evaluating(module: torch.nn.Module):
    """`module` in eval mode (no dropout) under `torch.inference_mode`; its mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        module.train(was_training)


def _forward_batches(examples: Sequence[dict], pad_id: int, device: torch.device, batch_size: int,
                     max_tokens: int | None):
    """The one batching of every forward pass here: examples sorted by length (all languages
    together), cut by `token_budget_batches`, collated and sent to `device`; yields (indices, batch)
    (the callers keep the indices, for `_in_input_order`)."""
    for idx in token_budget_batches([len(e["input_ids"]) for e in examples], batch_size,
                                    _max_tokens(max_tokens, device)):
        yield idx, {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_id).items()}


def _in_input_order(pieces: list[torch.Tensor], order: list[list[int]]) -> torch.Tensor:
    """Per-batch pooled states [L+1, b, H] concatenated back into input order, [L+1, n, H]. Called
    outside inference mode, so that the result is an ordinary tensor (usable with autograd code)."""
    flat = torch.tensor([i for idx in order for i in idx], dtype=torch.long)
    inverse = torch.empty_like(flat)
    inverse[flat] = torch.arange(len(flat))
    return torch.cat(pieces, dim=1)[:, inverse]


def pool_real_subwords(hidden_states, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sentence's real subword states at every layer, [L+1, B, H] in float32.

    `hidden_states`: the L+1 tensors [B, T, H] of a forward pass with `output_hidden_states`;
    `attention_mask` [B, T]: 1 on [CLS] w1 ... wn [SEP], 0 on padding. [CLS] (the first position)
    and [SEP] (the last real one) are left out of the mean: the one pooling rule of this project,
    used by `mean_pooled_states` and by `predict(pool=True)`.
    """
    keep = attention_mask.float()
    keep[:, 0] = 0  # [CLS]
    keep[torch.arange(keep.shape[0], device=keep.device), attention_mask.sum(1) - 1] = 0  # [SEP]
    counts = keep.sum(1, keepdim=True)
    return torch.stack([torch.einsum("bth,bt->bh", h.float(), keep) / counts for h in hidden_states])


def _predict_examples(model, tokenizer, examples: Sequence[dict], batch_size: int, max_tokens: int | None,
                      precision, pool: bool, max_length: int | None = None):
    """Predictions (and pooled states [L+1, n, H] if asked) for encoded examples, in input order.

    Sentences longer than the model takes (its position embeddings, or `max_length` if smaller)
    are scored through overlapping windows (`_predict_long`): every word gets a prediction.
    """
    labels = label_set(model.task)
    device = model_device(model)
    limit = min(max_length or 10**9, max_subwords(model))
    fits = [i for i, e in enumerate(examples) if len(e["input_ids"]) <= limit]
    long = [i for i, e in enumerate(examples) if len(e["input_ids"]) > limit]
    precision = resolve_precision(precision, device, model)  # "auto": fp32 for small models, else the hardware's
    preds: list = [None] * len(examples)
    pieces: list[torch.Tensor] = []
    order: list[list[int]] = []
    with _evaluating(model):
        for sub, batch in _forward_batches([examples[i] for i in fits], tokenizer.pad_token_id, device, batch_size,
                                           max_tokens):
            idx = [fits[j] for j in sub]
            order.append(idx)
            batch.pop("heads", None)
            with autocast(precision, device.type):
                words, hidden = model.word_states(batch["input_ids"], batch["attention_mask"],
                                                  batch["first_subword"], output_hidden_states=pool)
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
                pieces.append(pool_real_subwords(hidden, batch["attention_mask"]).cpu())
        for i in long:  # one at a time, through overlapping windows
            with autocast(precision, device.type):
                preds[i], piece = _predict_long(model, examples[i], limit, tokenizer.pad_token_id, labels, pool, device)
            order.append([i])
            if pool:
                pieces.append(piece)
    if not pool or not pieces:
        return preds, None
    return preds, _in_input_order(pieces, order)


def mean_pooled_states(model, tokenizer, sentences: Sequence[Sequence[str]], batch_size: int = 64,
                       device: torch.device | str | None = None, max_tokens: int | None = None,
                       precision="fp32", max_length: int | None = None) -> torch.Tensor:
    """Per-layer sentence vectors: the mean of each sentence's subword states, [L+1, n, H].

    model: a HF BERT-like encoder, or a model wrapping one (its `base_model` is used, so that a
    fine-tuned model is run without its head). Layer 0 is the embedding output.
    sentences: pre-split words, encoded with `encode_words` ([CLS] ... [SEP]).

    The same forward path as evaluation (`_forward_batches`: length-sorted batches of at most
    `batch_size` sentences and `max_tokens` padded tokens, `torch.inference_mode`, the encoder in
    eval mode) and the same pooling rule (`pool_real_subwords`: [CLS], [SEP] and padding
    excluded). fp32 unless another `precision` is asked for. `device`: where the inputs are sent (default: the
    device of the model's parameters). Returns a float32 CPU tensor, rows in the order of `sentences`.

    A sentence longer than the model takes (its position embeddings, or `max_length` if smaller) is
    read through overlapping windows, as evaluation reads it (`_encode_windows`): every subword's
    state comes from the window where it is most central, and the mean is over all of them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    encoder = getattr(model, "base_model", model)
    encodings = encode_words(tokenizer, sentences, overflow="keep")  # long sentences are windowed below
    if not encodings:
        raise ValueError("no sentences to encode")
    empty = [i for i, e in enumerate(encodings) if len(e) <= 2]
    if empty:
        raise ValueError(f"sentences with no words cannot be mean-pooled: indices {empty[:10]}")
    limit = min(max_length or 10**9, max_subwords(encoder))
    if limit < 3:
        raise ValueError(f"max_length={max_length} leaves no room for a subword between [CLS] and [SEP]")
    device = torch.device(device) if device is not None else model_device(encoder)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    examples = [{"input_ids": e.input_ids, "first_subword": e.first_subword} for e in encodings]
    fits = [i for i, e in enumerate(examples) if len(e["input_ids"]) <= limit]
    long = [i for i, e in enumerate(examples) if len(e["input_ids"]) > limit]
    pieces: list[torch.Tensor] = []
    order: list[list[int]] = []
    with _evaluating(encoder):
        precision = resolve_precision(precision, device, encoder)
        for sub, batch in _forward_batches([examples[i] for i in fits], pad_id, device, batch_size, max_tokens):
            order.append([fits[j] for j in sub])
            with autocast(precision, device.type):
                out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              output_hidden_states=True)
            pieces.append(pool_real_subwords(out.hidden_states, batch["attention_mask"]).cpu())
        for i in long:  # one at a time, through overlapping windows
            with autocast(precision, device.type):
                out, starts, owner = _encode_windows(encoder, examples[i]["input_ids"], limit, pad_id, device, True)
                pieces.append(_pool_windows(out.hidden_states, starts, owner, device))
            order.append([i])
    return _in_input_order(pieces, order)


def predict(model, tokenizer, sentences: Sequence[Sentence], batch_size: int = 128, precision="auto",
            pool: bool = False, max_length: int = 512, max_tokens: int | None = None):
    """Predicted labels per sentence (heads and relations for parsing), in input order.

    Batches are sorted by length and capped at `batch_size` sentences and `max_tokens` padded
    tokens (default by device: `MAX_TOKENS`); they run under `torch.inference_mode`. With
    `pool=True`, the per-layer mean of each sentence's subword states ([CLS], [SEP] and padding
    excluded) comes from the same forward pass, as [L+1, n, H]: returns (predictions, states).
    """
    examples = make_examples(tokenizer, sentences, model.task, overflow="keep")
    preds, pooled = _predict_examples(model, tokenizer, examples, batch_size, max_tokens, precision, pool, max_length)
    return (preds, pooled) if pool else preds


def score(task: str, sentences: Sequence[Sentence], preds: Sequence) -> dict[str, float]:
    """The task's metrics (accuracy; span F1/P/R in seqeval's default mode, plus strict-IOB2 F1; UAS/LAS),
    as percentages."""
    if task == "pos":
        return {"accuracy": 100 * accuracy([s.upos for s in sentences], preds)}
    if task == "ner":  # predictions get the readers' IOB2 repair policy (stray I-X -> B-X), as gold did
        gold, preds = [s.ner for s in sentences], [repair_iob2(p)[0] for p in preds]
        r, strict = span_f1(gold, preds), span_f1(gold, preds, mode="strict")
        return {"f1": 100 * r["f1"], "precision": 100 * r["precision"], "recall": 100 * r["recall"],
                "f1_strict": 100 * strict["f1"]}
    if task == "parse":
        r = attachment_scores([s.heads for s in sentences], [s.deprels for s in sentences],
                              [p[0] for p in preds], [p[1] for p in preds])
        return {"uas": 100 * r["uas"], "las": 100 * r["las"]}
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(METRICS)}")


def predict_languages(model, tokenizer, data: Mapping[str, Sequence[Sentence]], batch_size: int = 128,
                      precision="auto", pool: bool = False, max_length: int = 512, max_tokens: int | None = None):
    """Predictions for every language in one pass: {language: predictions in input order}.

    Every sentence is encoded once; all of them, whatever their language, are sorted by length
    together and batched (at most `batch_size` sentences and `max_tokens` padded tokens per
    batch), so that a language's short and long sentences share batches with the other languages'
    and padding stays small. The predictions are then split back per language. With `pool=True`,
    also returns {language: mean-pooled states [L+1, n, H]} from the same forward pass.
    """
    data = {lang: list(sents) for lang, sents in data.items()}
    examples = make_examples(tokenizer, [s for sents in data.values() for s in sents], model.task, overflow="keep")
    preds, pooled = _predict_examples(model, tokenizer, examples, batch_size, max_tokens, precision, pool, max_length)
    out, states, start = {}, {}, 0
    for lang, sents in data.items():
        end = start + len(sents)
        out[lang] = preds[start:end]
        if pool:
            states[lang] = pooled[:, start:end].contiguous() if pooled is not None else torch.empty(0)
        start = end
    return (out, states) if pool else out


def zero_shot_eval(model, tokenizer, data: Mapping[str, Sequence[Sentence]], task: str | None = None,
                   batch_size: int = 128, precision="auto", max_tokens: int | None = None, pool: bool = False,
                   max_length: int = 512):
    """Evaluate one fine-tuned model on every language: a tidy (language, task, metric, value, n) table.

    One pass for all languages (`predict_languages`): every sentence is encoded once, all of them
    are sorted by length together and batched under `torch.inference_mode`, the predictions are
    split back per language, and each language is scored once (every metric from one call).
    With `pool=True`, the mean-pooled hidden states for CKA come from the same forward pass:
    returns (table, {language: [L+1, n, H] float32 tensor}).
    """
    task = task or model.task
    if task != model.task:
        raise ValueError(f"the model was fine-tuned for {model.task!r}, not {task!r}")
    data = {lang: list(sents) for lang, sents in data.items()}
    if not data:
        raise ValueError("zero_shot_eval: no languages to evaluate (data is empty)")
    empty = [lang for lang, sents in data.items() if not any(len(s) for s in sents)]
    if empty:
        raise ValueError(f"zero_shot_eval: no {task} sentences (or no words) for language(s) {', '.join(map(str, empty))}")
    res = predict_languages(model, tokenizer, data, batch_size=batch_size, precision=precision, pool=pool,
                            max_length=max_length, max_tokens=max_tokens)
    preds, states = res if pool else (res, None)
    rows = []
    for lang, sents in data.items():
        n = sum(len(s) for s in sents)
        for metric, value in score(task, sents, preds[lang]).items():
            rows.append({"language": lang, "task": task, "metric": metric, "value": value, "n": n})
    table = pd.DataFrame(rows, columns=["language", "task", "metric", "value", "n"])
    return (table, states) if pool else table
