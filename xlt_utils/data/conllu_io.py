"""CoNLL-U reading and writing, validated like the UD validator's level 2 (format and tree).

`read_conllu` accepts a file only if every sentence is valid; otherwise it raises a
`ConlluFormatError` (a `DataFormatError`, a ``ValueError``) whose ``path``, ``line`` and
``message`` say where and what. With ``errors="skip"`` it leaves invalid sentences out instead,
lists one error per skipped sentence in the result's ``skipped`` attribute, and warns
(`SkippedSentencesWarning`) with their number and the first one.

What is checked:

* the file: UTF-8 (an initial byte-order mark is accepted, CRLF line ends too), no control
  characters other than TAB; sentences end at an empty line (a whitespace-only line is an error,
  never a sentence break, so that it cannot detach a sentence's comments from its words);
* comments: only before the sentence's first word line (a comment inside a sentence is an error);
  at most one ``# sent_id`` (non-empty, unique in the file) and one ``# text`` per sentence; a
  block of comments with no word line is an error (it would be a sentence of 0 words);
* every word line: 10 TAB-separated columns, none empty (``_`` is the empty value) and none with
  leading or trailing whitespace (a line that ends with a TAB has 11 columns); IDs ``N``,
  ``N-M`` (a multiword token, N < M, right before word N and ending inside the sentence) or
  ``N.M`` (an empty node, right after word N); words numbered 1..n in order; UPOS one of the 17
  universal tags; HEAD an integer 0..n; DEPREL a universal relation with an optional lowercase
  subtype (``nmod:poss``); HEAD 0 exactly when DEPREL is ``root``;
* the tree: exactly one root, no word its own head, no cycle (every word reaches the root).

The `conllu` library parses the comments (``# key = value``), IDs and MISC values; the columns
are split on TAB here, because `conllu` also splits on two spaces and strips lines, which would
silently change a FORM or hide a trailing TAB.

`write_conllu` refuses what it could not read back: empty fields, fields with TABs, newlines or
control characters, invalid tags or trees (it validates the text before writing the file).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

from conllu.models import Metadata, Token, TokenList
from conllu.parser import parse_dict_value, parse_id_value, parse_pair_value

from .records import (
    UPOS_TAGS,
    DataFormatError,
    LineError,
    ReadResult,
    Sentence,
    SkippedSentencesWarning,
    blocks,
    check_errors_mode,
    check_field,
    comment_line,
    is_valid_deprel,
    write_read_back,
)

COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")
_HEAD = re.compile(r"0|[1-9][0-9]*")
_UPOS = frozenset(UPOS_TAGS)


class ConlluFormatError(DataFormatError):
    """A CoNLL-U file breaks the format; ``path``, ``line`` and ``message`` say where and what."""


def _check_block(block: list, path: str) -> tuple[TokenList, list[int]]:
    """Validate one block; return its TokenList (words only) and each word's line number."""
    for lineno, _, err in block:
        if err is not None:
            raise LineError(lineno, err.message)
    metadata = Metadata()
    seen_keys: dict[str, int] = {}
    words: list[Token] = []
    word_lines: list[int] = []
    ranges: list[tuple[int, int, int]] = []  # (line, first, last)
    in_words = False
    for lineno, text, _ in block:
        if comment_line(lineno, text, in_words, seen_keys, metadata, lambda t: parse_pair_value(t[1:]), "word"):
            continue
        in_words = True
        cols = text.split("\t")
        if len(cols) != 10:
            tail = " (the line ends with a TAB)" if text.endswith("\t") else ""
            raise LineError(lineno, f"expected 10 tab-separated columns, found {len(cols)}{tail}: {text[:60]!r}")
        for name, value in zip(COLUMNS, cols, strict=True):
            if value == "":
                raise LineError(lineno, f"column {name} is empty (an empty field is written _)")
            if value != value.strip():
                raise LineError(lineno, f"column {name} {value!r} has leading or trailing whitespace")
        tid, form, upos, head, deprel = cols[0], cols[1], cols[3], cols[6], cols[7]
        n = len(words)
        if m := _RANGE_ID.fullmatch(tid):
            a, b = int(m[1]), int(m[2])
            if a >= b:
                raise LineError(lineno, f"multiword token {tid}: the range must span at least two words (N < M)")
            if a != n + 1:
                raise LineError(lineno, f"multiword token {tid} must come right before word {a} (after word {n})")
            if ranges and ranges[-1][2] >= a:
                raise LineError(lineno, f"multiword token {tid} overlaps {ranges[-1][1]}-{ranges[-1][2]}")
            ranges.append((lineno, a, b))
            continue
        if m := _EMPTY_ID.fullmatch(tid):
            if int(m[1]) != n:
                raise LineError(lineno, f"empty node {tid} must come right after word {m[1]} (it follows word {n})")
            continue
        if not _WORD_ID.fullmatch(tid):
            raise LineError(lineno, f"invalid ID {tid!r} (expected N, N-M or N.M)")
        if int(tid) != n + 1:
            raise LineError(lineno, f"word ID {tid} out of order: expected {n + 1} (words are numbered 1..n)")
        if upos not in _UPOS:
            raise LineError(lineno, f"word {tid} has unknown UPOS {upos!r}; valid: {', '.join(UPOS_TAGS)}")
        if not _HEAD.fullmatch(head):
            raise LineError(lineno, f"word {tid} has a non-integer HEAD {head!r}")
        if deprel == "_":
            raise LineError(lineno, f"word {tid} has no DEPREL")
        if not is_valid_deprel(deprel):
            raise LineError(lineno, f"word {tid} has unknown DEPREL {deprel!r} (a universal relation, optionally "
                               "with a lowercase subtype such as nmod:poss)")
        if (head == "0") != (deprel.split(":")[0] == "root"):
            raise LineError(lineno, f"word {tid} has HEAD {head} and DEPREL {deprel!r}: DEPREL is root exactly "
                               "when HEAD is 0")
        words.append(Token(id=parse_id_value(tid), form=form, upos=upos, head=int(head), deprel=deprel,
                           misc=parse_dict_value(cols[9])))
        word_lines.append(lineno)
    if not words:
        raise LineError(block[0][0], "comment lines with no word line after them (a sentence needs words; "
                                "is an empty line separating the comments from their sentence?)")
    n = len(words)
    for lineno, a, b in ranges:
        if b > n:
            raise LineError(lineno, f"multiword token {a}-{b} goes beyond the sentence's last word {n}")
    heads = [t["head"] for t in words]
    for k, h in enumerate(heads, start=1):
        if h > n:
            raise LineError(word_lines[k - 1], f"word {k} has HEAD {h} outside 0..{n}")
        if h == k:
            raise LineError(word_lines[k - 1], f"word {k} is its own head")
    roots = [k for k, h in enumerate(heads, start=1) if h == 0]
    if not roots:
        raise LineError(word_lines[0], "no root: no word has HEAD 0")
    if len(roots) > 1:
        raise LineError(word_lines[roots[1] - 1], f"second root: words {roots[0]} and {roots[1]} both have HEAD 0")
    reaches_root = {0}
    for k in range(1, n + 1):
        path, node = [], k
        while node not in reaches_root and node not in path:
            path.append(node)
            node = heads[node - 1]
        if node not in reaches_root:  # came back to a word on the path: a cycle
            cycle = path[path.index(node):]
            first = min(cycle)
            chain = " -> ".join(map(str, cycle + [cycle[0]]))
            raise LineError(word_lines[first - 1], f"the heads of words {chain} form a cycle (no path to the root)")
        reaches_root.update(path)
    return TokenList(words, metadata), word_lines


def read_conllu(path: str | Path, lang: str, errors: str = "raise") -> ReadResult:
    """Read a CoNLL-U file into syntactic-word sentences (multiword tokens expanded, empty nodes skipped).

    Every sentence is validated (see the module docstring). ``errors="raise"`` (the default)
    raises a `ConlluFormatError` naming the file, the line and the problem at the first invalid
    sentence; ``errors="skip"`` leaves invalid sentences out, records one error per skipped
    sentence in the result's ``skipped`` list and warns once with their number. A missing
    ``# sent_id`` becomes ``<file stem>-<block index>``. DEPREL subtypes are stripped
    (``nmod:poss`` -> ``nmod``); each word's MISC is kept in ``meta["misc"]``.
    """
    check_errors_mode(errors)
    path = str(path)
    out: list[Sentence] = []
    skipped: list[ConlluFormatError] = []
    seen_ids: dict[str, int] = {}
    for index, block in enumerate(blocks(path, ConlluFormatError)):
        try:
            tl, word_lines = _check_block(block, path)
            sent_id = tl.metadata.get("sent_id")
            if sent_id is not None and sent_id in seen_ids:
                line = next(n for n, text, _ in block if text.startswith("#") and parse_pair_value(text[1:])[0]
                            == "sent_id")
                raise LineError(line, f"duplicate sent_id {sent_id!r} (first used on line {seen_ids[sent_id]})")
        except LineError as bad:
            sid = next((parse_pair_value(t[1:])[1] for _, t, _ in block if t.startswith("#")
                        and parse_pair_value(t[1:])[0] == "sent_id"), None)
            err = ConlluFormatError(bad.message, path, bad.line, sid)
            if errors == "raise":
                raise err from None
            skipped.append(err)
            continue
        if sent_id is not None:
            seen_ids[sent_id] = next(n for n, text, _ in block if text.startswith("#")
                                     and parse_pair_value(text[1:])[0] == "sent_id")
        words = list(tl)
        out.append(Sentence(
            sent_id=sent_id if sent_id is not None else f"{Path(path).stem}-{index}",
            lang=lang,
            words=[t["form"] for t in words],
            upos=[t["upos"] for t in words],
            heads=[t["head"] for t in words],
            deprels=[t["deprel"].split(":")[0] for t in words],
            text=tl.metadata.get("text"),
            meta={"misc": [t["misc"] for t in words]},
        ))
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} invalid sentence(s) (errors='skip'); the first: "
                      f"{skipped[0]}", SkippedSentencesWarning, stacklevel=2)
    return ReadResult(out, skipped)


def format_conllu(sentences: Iterable[Sentence]) -> str:
    """The CoNLL-U text of `sentences`; a `DataFormatError` names a field the format cannot hold."""
    parts = []
    for s in sentences:
        check_field(s.sent_id, "sent_id", s.sent_id, 0)
        for layer in ("upos", "heads", "deprels"):
            if getattr(s, layer) is None or len(getattr(s, layer)) != len(s.words):
                raise DataFormatError(f"cannot write sentence {s.sent_id!r} as CoNLL-U: its {layer} layer is "
                                      f"missing or does not have one value per word")
        for k, w in enumerate(s.words, start=1):
            check_field(w, "FORM", s.sent_id, k)
            check_field(s.upos[k - 1], "UPOS", s.sent_id, k)
            check_field(s.deprels[k - 1], "DEPREL", s.sent_id, k)
        text = s.text if s.text is not None else " ".join(s.words)
        check_field(text, "text", s.sent_id, 0)
        lines = [f"# sent_id = {s.sent_id}", f"# text = {text}"]
        for k, w in enumerate(s.words, start=1):
            lines.append(f"{k}\t{w}\t_\t{s.upos[k - 1]}\t_\t_\t{s.heads[k - 1]}\t{s.deprels[k - 1]}\t_\t_")
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)


def write_conllu(sentences: Iterable[Sentence], path: str | Path) -> None:
    """Write sentences (words, UPOS, heads, relations) as CoNLL-U, refusing anything that would
    not read back as written: the text goes to ``<path>.part``, is validated like `read_conllu`,
    and only then replaces `path` (an invalid sentence raises `DataFormatError` and writes nothing)."""
    write_read_back(format_conllu(sentences), path, lambda f: read_conllu(f, "xx"))
