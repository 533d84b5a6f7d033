"""IOB2 NER files in the Universal NER layout (index, token, tag, -, annotator), read and written.

`read_iob2` checks the file like `read_conllu` checks CoNLL-U (see `xlt_utils.data.conllu_io`):
UTF-8 with an optional byte-order mark, CRLF accepted, no control characters but TAB; comments only
before a sentence's first token line, at most one non-empty ``# sent_id`` (unique in the file) and
one ``# text``; no comment-only block and no whitespace-only line; token lines of at least 3
TAB-separated columns, none empty or with leading/trailing whitespace, indices 1..n in order, tags
from ``O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC``. A violation raises `Iob2FormatError` (a
`DataFormatError`: ``path``, ``line``, ``message``); ``errors="skip"`` leaves the sentence out and
records the error in the result's ``skipped`` list instead.

**The one IOB2 repair policy** (`repair_iob2`): a stray ``I-X`` -- one that starts a sentence,
follows ``O``, or follows a tag of another type -- begins an entity, i.e. it is read as ``B-X``.
This is conlleval's reading and seqeval's default (non-strict) mode. The readers apply it to every
gold file (UNER here, WikiANN in `xlt_utils.data.real`), so training and gold labels are repaired
the same way, and the result's ``repaired`` attribute counts the tags changed. Predictions must be
repaired the same way before scoring (`xlt_utils.evaluation.score` does).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from .records import (
    NER_TAGS,
    DataFormatError,
    LineError,
    ReadResult,
    Sentence,
    SkippedSentencesWarning,
    blocks,
    check_errors_mode,
    check_field,
    comment_line,
    write_read_back,
)

_TAGS = frozenset(NER_TAGS)


class Iob2FormatError(DataFormatError):
    """An IOB2 file (or tag sequence) is malformed; ``path``, ``line`` and ``message`` say where and what."""


class RepairedTagsWarning(UserWarning):
    """A reader read stray ``I-X`` tags as ``B-X`` (the IOB2 repair policy, `repair_iob2`)."""


def validate_tags(tags: list[str], where: str = "") -> None:
    """Raise `Iob2FormatError` if a tag is outside the PER/ORG/LOC IOB2 tag set."""
    for k, t in enumerate(tags):
        if t not in _TAGS:
            raise Iob2FormatError(f"{where}token {k + 1}: unknown tag {t!r}; valid tags: {', '.join(NER_TAGS)}")


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """The IOB2 repair policy: every stray ``I-X`` (after ``O``, at the start, or after another
    type) becomes ``B-X``. Returns (repaired tags, number of tags changed).

    >>> repair_iob2(["O", "I-PER", "I-PER", "I-LOC"])
    (['O', 'B-PER', 'I-PER', 'B-LOC'], 2)
    """
    out: list[str] = []
    changed = 0
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            t = "B-" + t[2:]
            changed += 1
        out.append(t)
        prev = t
    return out, changed


def _meta(text: str) -> tuple[str, str]:
    key, _, value = text[1:].partition("=")
    return key.strip(), value.strip()


def _check_block(block: list) -> tuple[dict, list[str], list[str]]:
    for lineno, _, err in block:
        if err is not None:
            raise LineError(lineno, err.message)
    meta: dict[str, str] = {}
    seen: dict[str, int] = {}
    words: list[str] = []
    tags: list[str] = []
    for lineno, text, _ in block:
        if comment_line(lineno, text, bool(words), seen, meta, _meta, "token"):
            continue
        cols = text.split("\t")
        if len(cols) < 3:
            raise LineError(lineno, f"expected at least 3 TAB-separated columns, found {len(cols)}")
        for k, value in enumerate(cols, start=1):
            if value == "":
                tail = " (the line ends with a TAB)" if k == len(cols) else ""
                raise LineError(lineno, f"column {k} is empty{tail}")
            if value != value.strip():
                raise LineError(lineno, f"column {k} {value!r} has leading or trailing whitespace")
        if cols[0] != str(len(words) + 1):
            raise LineError(lineno, f"token index {cols[0]!r}, expected {len(words) + 1}")
        if cols[2] not in _TAGS:
            raise LineError(lineno, f"unknown tag {cols[2]!r}; valid tags: {', '.join(NER_TAGS)}")
        words.append(cols[1])
        tags.append(cols[2])
    if not words:
        raise LineError(block[0][0], "comment lines with no token line after them (a sentence needs tokens; "
                                "is an empty line separating the comments from their sentence?)")
    return meta, words, tags


def read_iob2(path: str | Path, lang: str, errors: str = "raise") -> ReadResult:
    """Read a UNER-style IOB2 file (TAB-separated: index, token, tag, ...) into sentences.

    Validated as the module docstring says; ``errors="raise"`` (default) raises the first
    `Iob2FormatError`, ``errors="skip"`` leaves invalid sentences out (result's ``skipped``, and a
    `SkippedSentencesWarning`). Stray ``I-X`` tags are read as ``B-X`` (`repair_iob2`; counted in
    the result's ``repaired``, with a `RepairedTagsWarning`). A missing ``# sent_id`` becomes
    ``<file stem>-<block index>``.
    """
    check_errors_mode(errors)
    path = str(path)
    out: list[Sentence] = []
    skipped: list[Iob2FormatError] = []
    seen_ids: dict[str, int] = {}
    repaired = 0
    for index, block in enumerate(blocks(path, Iob2FormatError)):
        sid_line = next((n for n, t, _ in block if t.startswith("#") and _meta(t)[0] == "sent_id"), None)
        sid = _meta(block[sid_line - block[0][0]][1])[1] if sid_line is not None else None
        try:
            meta, words, tags = _check_block(block)
            if sid is not None and sid in seen_ids:
                raise LineError(sid_line, f"duplicate sent_id {sid!r} (first used on line {seen_ids[sid]})")
        except LineError as bad:
            err = Iob2FormatError(bad.message, path, bad.line, sid)
            if errors == "raise":
                raise err from None
            skipped.append(err)
            continue
        if sid is not None:
            seen_ids[sid] = sid_line
        tags, changed = repair_iob2(tags)
        repaired += changed
        out.append(Sentence(sent_id=sid if sid is not None else f"{Path(path).stem}-{index}", lang=lang,
                            words=words, ner=tags, text=meta.get("text")))
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} invalid sentence(s) (errors='skip'); the first: "
                      f"{skipped[0]}", SkippedSentencesWarning, stacklevel=2)
    if repaired:
        warnings.warn(f"{path}: read {repaired} stray I- tag(s) as B- (the IOB2 repair policy, repair_iob2)",
                      RepairedTagsWarning, stacklevel=2)
    return ReadResult(out, skipped, repaired)


def format_iob2(sentences: Iterable[Sentence]) -> str:
    """The IOB2 text of `sentences`; a `DataFormatError` names a field the format cannot hold."""
    parts = []
    for s in sentences:
        check_field(s.sent_id, "sent_id", s.sent_id, 0)
        if s.ner is None or len(s.ner) != len(s.words):
            raise DataFormatError(f"cannot write sentence {s.sent_id!r} as IOB2: its NER layer is missing or "
                                  "does not have one tag per word")
        validate_tags(list(s.ner), where=f"cannot write sentence {s.sent_id!r}: ")
        if repair_iob2(s.ner)[1]:
            raise DataFormatError(f"cannot write sentence {s.sent_id!r}: it has a stray I- tag, which would read "
                                  f"back as B- (repair it first with repair_iob2): {list(s.ner)}")
        for k, w in enumerate(s.words, start=1):
            check_field(w, "token", s.sent_id, k)
        text = s.text if s.text is not None else " ".join(s.words)
        check_field(text, "text", s.sent_id, 0)
        lines = [f"# sent_id = {s.sent_id}", f"# text = {text}"]
        for k, (w, t) in enumerate(zip(s.words, s.ner, strict=True), start=1):
            lines.append(f"{k}\t{w}\t{t}\t-\t-")
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)


def write_iob2(sentences: Iterable[Sentence], path: str | Path) -> None:
    """Write sentences with NER tags in the UNER IOB2 layout, refusing anything that would not read
    back as written (validated through ``<path>.part`` before it replaces `path`)."""
    write_read_back(format_iob2(sentences), path, lambda f: read_iob2(f, "xx"))
