"""Parallel UD (PUD): the same 1000 sentences in 21 languages, aligned by ``sent_id``.

The alignment is by ``sent_id``, never by position: ``UD_Icelandic-PUD`` lists the same 1000
sentences in sorted ``sent_id`` order (n01..., n02..., w01...), while the other files interleave
them (n01..., w01..., n02...), so 500 positions differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ..languages import PUD_TREEBANKS, pud_file
from .conllu_io import read_conllu
from .download import fetch
from .records import Sentence


def align_by_sent_id(
    corpora: Mapping[str, list[Sentence]], *, strict: bool = True
) -> dict[str, list[Sentence]]:
    """Reorder every corpus so that index k holds the same ``sent_id`` in all of them.

    The order is that of the first corpus. With `strict`, every corpus must have exactly the
    same set of sent_ids (a ValueError says which differ); otherwise their intersection is kept.
    Duplicate sent_ids within one corpus are always an error.
    """
    if not corpora:
        return {}
    by_id: dict[str, dict[str, Sentence]] = {}
    for lang, sents in corpora.items():
        index: dict[str, Sentence] = {}
        for s in sents:
            if s.sent_id in index:
                raise ValueError(f"{lang}: duplicate sent_id {s.sent_id!r}")
            index[s.sent_id] = s
        by_id[lang] = index
    first = next(iter(corpora))
    order = [s.sent_id for s in corpora[first]]
    common = set(order).intersection(*(set(ix) for ix in by_id.values()))
    if strict:
        problems = []
        for lang, ix in by_id.items():
            missing = len(set(order) - set(ix))
            extra = len(set(ix) - set(order))
            if missing or extra:
                problems.append(f"{lang}: {missing} of {first}'s sent_ids missing, {extra} extra")
        if problems:
            raise ValueError("PUD corpora do not share the same sent_ids: " + "; ".join(problems))
    keep = [sid for sid in order if sid in common]
    return {lang: [ix[sid] for sid in keep] for lang, ix in by_id.items()}


def load_pud(
    langs: Iterable[str],
    *,
    paths: Mapping[str, str | Path] | None = None,
    strict: bool = True,
) -> dict[str, list[Sentence]]:
    """Load the PUD test sets of `langs` and align them by ``sent_id`` (see `align_by_sent_id`).

    Files come from `paths` (lang -> CoNLL-U path) when given, else through `fetch` (so
    ``XLT_DATA_DIR``, the cache and offline mode apply). Returns ``{lang: sentences}``, all lists
    of the same length, index k being the same source sentence in every language.
    """
    langs = list(dict.fromkeys(langs))
    unknown = [c for c in langs if c not in PUD_TREEBANKS]
    if unknown:
        raise ValueError(
            f"no PUD treebank for {', '.join(map(repr, unknown))}; "
            f"valid codes: {', '.join(sorted(PUD_TREEBANKS))}"
        )
    corpora = {}
    for lang in langs:
        path = paths[lang] if paths and lang in paths else fetch(pud_file(lang))
        corpora[lang] = read_conllu(path, lang)
    return align_by_sent_id(corpora, strict=strict)
