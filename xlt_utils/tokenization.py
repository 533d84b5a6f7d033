"""Subword encoding of word sequences, first-subword label alignment, and tokenisation statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Encoding:
    """One sentence as subword ids, with the position of each word's first subword."""

    input_ids: list[int]
    first_subword: list[int]  # len == number of words; index into input_ids
    word_of_token: list[int | None]  # per subword: its word index, None for special tokens

    def __len__(self) -> int:
        return len(self.input_ids)


OVERFLOW = ("raise", "truncate", "keep")


def encode_words(tokenizer, sentences: Sequence[Sequence[str]], max_length: int | None = None, *,
                 overflow: str = "raise", names: Sequence[str] | None = None) -> list[Encoding]:
    """Encode pre-split sentences; every word gets exactly one label position (its first subword).

    A word that the tokenizer maps to no subword at all (for example a lone control character)
    is encoded as [UNK], so that no word is ever dropped.

    A sentence of more than `max_length` subwords ([CLS] and [SEP] included; default the
    tokenizer's `model_max_length`) is handled as `overflow` says: "raise" (a ValueError that names
    the sentence by `names[b]`, e.g. "UD_English-EWT/en_ewt-ud-test.conllu sent_id ..."),
    "truncate" (keep the subwords that fit, then [SEP]; words whose first subword was cut lose
    their label position, so `first_subword` is shorter than the sentence), or "keep" (no limit:
    for callers that window long sentences themselves, as evaluation does).
    """
    if overflow not in OVERFLOW:
        raise ValueError(f"unknown overflow {overflow!r}; valid: {', '.join(OVERFLOW)}")
    max_length = max_length or tokenizer.model_max_length
    if max_length < 3:
        raise ValueError(f"max_length={max_length} leaves no room for a word between [CLS] and [SEP]")
    batch = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    cls, sep, unk = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id
    out = []
    for b, words in enumerate(sentences):
        ids = batch["input_ids"][b]
        wids = batch.word_ids(b)
        pieces: list[list[int]] = [[] for _ in words]
        for tid, w in zip(ids, wids, strict=True):
            pieces[w].append(tid)
        input_ids, first, word_of = [cls], [], [None]
        for w, p in enumerate(pieces):
            p = p or [unk]
            first.append(len(input_ids))
            input_ids.extend(p)
            word_of.extend([w] * len(p))
        input_ids.append(sep)
        word_of.append(None)
        if len(input_ids) > max_length and overflow != "keep":
            if overflow == "raise":
                name = names[b] if names is not None else f"sentence {b}"
                raise ValueError(
                    f"{name} has {len(input_ids)} subwords ({len(words)} words), more than max_length="
                    f"{max_length}; use overflow='truncate' (training) or 'keep' (windowed evaluation)")
            input_ids = input_ids[:max_length - 1] + [sep]
            word_of = word_of[:max_length - 1] + [None]
            first = [i for i in first if i < max_length - 1]
        out.append(Encoding(input_ids, first, word_of))
    return out


def tokenization_stats(tokenizer, sentences: Sequence[Sequence[str]], reference_vocab: set[int] | None = None) -> dict:
    """Subword fertility, share of [UNK] subwords, and share of subword types also used by a reference."""
    encs = encode_words(tokenizer, sentences, overflow="keep")
    counts: Counter[int] = Counter()
    n_words = 0
    for e in encs:
        counts.update(e.input_ids[1:-1])
        n_words += len(e.first_subword)
    n_sub = sum(counts.values())
    stats = {
        "fertility": n_sub / max(n_words, 1),
        "unk_share": counts[tokenizer.unk_token_id] / max(n_sub, 1),
        "n_words": n_words,
        "n_types": len(counts),
    }
    if reference_vocab is not None:
        stats["overlap_with_ref"] = len(set(counts) & reference_vocab) / max(len(counts), 1)
    return stats


def subword_types(tokenizer, sentences: Sequence[Sequence[str]]) -> set[int]:
    """The set of subword ids used to encode `sentences` (for vocabulary-overlap statistics)."""
    encs = encode_words(tokenizer, sentences, overflow="keep")
    return {i for e in encs for i in e.input_ids[1:-1]}


def fertility_per_word(enc: Encoding) -> np.ndarray:
    """Number of subwords of each word of one encoded sentence."""
    bounds = enc.first_subword + [len(enc.input_ids) - 1]
    return np.diff(np.asarray(bounds))
