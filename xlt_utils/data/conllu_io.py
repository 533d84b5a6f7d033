"""CoNLL-U reading (through the `conllu` library) and writing, with errors that name file and line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import conllu

from .records import Sentence

_WORD_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^[1-9][0-9]*-[1-9][0-9]*$")
_EMPTY_ID = re.compile(r"^[0-9]+\.[1-9][0-9]*$")


class ConlluFormatError(ValueError):
    """A CoNLL-U file is malformed; the message names the file, the line and the problem."""


def _check_line(path: str, lineno: int, line: str) -> None:
    cols = line.split("\t")
    where = f"{path}, line {lineno}"
    if len(cols) != 10:
        raise ConlluFormatError(f"{where}: expected 10 tab-separated columns, found {len(cols)}: {line[:60]!r}")
    tid, head = cols[0], cols[6]
    if _RANGE_ID.match(tid) or _EMPTY_ID.match(tid):
        return
    if not _WORD_ID.match(tid):
        raise ConlluFormatError(f"{where}: invalid ID {tid!r} (expected N, N-M or N.M)")
    if not head.isdigit():
        raise ConlluFormatError(f"{where}: word {tid} has a non-integer HEAD {head!r}")
    if not cols[7] or cols[7] == "_":
        raise ConlluFormatError(f"{where}: word {tid} has no DEPREL")


def _blocks(path: str, lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, lines) per sentence block, checking each word line."""
    block: list[str] = []
    start = 1
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            if block:
                yield start, block
            block = []
            continue
        if not block:
            start = lineno
        if not line.startswith("#"):
            _check_line(path, lineno, line)
        block.append(line)
    if block:
        yield start, block


def _to_sentence(tl: conllu.TokenList, lang: str, path: str, start: int, index: int) -> Sentence:
    words = [t for t in tl if isinstance(t["id"], int)]  # drops MWT ranges and empty nodes
    n = len(words)
    for k, t in enumerate(words, start=1):
        if t["id"] != k:
            raise ConlluFormatError(f"{path}, sentence at line {start}: word IDs are not 1..{n} in order")
        if not 0 <= t["head"] <= n:
            raise ConlluFormatError(
                f"{path}, sentence at line {start}: word {k} has HEAD {t['head']} outside 0..{n}")
    sent_id = tl.metadata.get("sent_id", f"{Path(path).stem}-{index}")
    return Sentence(
        sent_id=sent_id,
        lang=lang,
        words=[t["form"] for t in words],
        upos=[t["upos"] for t in words],
        heads=[t["head"] for t in words],
        deprels=[t["deprel"].split(":")[0] for t in words],
        text=tl.metadata.get("text"),
        meta={"misc": [t["misc"] for t in words]},
    )


def read_conllu(path: str | Path, lang: str) -> list[Sentence]:
    """Read a CoNLL-U file into syntactic-word sentences (multiword tokens expanded, empty nodes skipped)."""
    path = str(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for i, (start, block) in enumerate(_blocks(path, f)):
            try:
                (tl,) = conllu.parse("\n".join(block) + "\n\n")
            except Exception as e:  # conllu's own parse errors carry no line number
                raise ConlluFormatError(f"{path}, sentence at line {start}: {e}") from e
            out.append(_to_sentence(tl, lang, path, start, i))
    return out


def write_conllu(sentences: Iterable[Sentence], path: str | Path) -> None:
    """Write sentences (words, UPOS, heads, relations) as CoNLL-U."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(f"# sent_id = {s.sent_id}\n# text = {s.text or ' '.join(s.words)}\n")
            for k, w in enumerate(s.words):
                f.write(f"{k + 1}\t{w}\t_\t{s.upos[k]}\t_\t_\t{s.heads[k]}\t{s.deprels[k]}\t_\t_\n")
            f.write("\n")
