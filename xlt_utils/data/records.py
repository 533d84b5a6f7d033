"""The one record type that every reader (UD, UNER, WikiANN, synthetic) produces."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..files import create_temp

UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)
NER_TYPES = ("PER", "ORG", "LOC")
NER_TAGS = ("O",) + tuple(f"{p}-{t}" for t in NER_TYPES for p in ("B", "I"))


@dataclass
class Sentence:
    """One sentence of syntactic words with whichever annotation layers its source has."""

    sent_id: str
    lang: str
    words: list[str]
    upos: list[str] | None = None
    heads: list[int] | None = None  # 1-based; 0 is the root
    deprels: list[str] | None = None  # universal relation, subtype stripped
    ner: list[str] | None = None  # IOB2 tags
    text: str | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    def labels(self, task: str) -> list:
        """The label sequence that `task` ("pos", "ner" or "parse") trains on."""
        if task == "pos":
            return self.upos
        if task == "ner":
            return self.ner
        if task == "parse":
            return list(zip(self.heads, self.deprels, strict=True))
        raise ValueError(f"unknown task {task!r}; valid tasks: pos, ner, parse")

DEPRELS = (
    "acl", "advcl", "advmod", "amod", "appos", "aux", "case", "cc", "ccomp", "clf", "compound",
    "conj", "cop", "csubj", "dep", "det", "discourse", "dislocated", "expl", "fixed", "flat",
    "goeswith", "iobj", "list", "mark", "nmod", "nsubj", "nummod", "obj", "obl", "orphan",
    "parataxis", "punct", "reparandum", "root", "vocative", "xcomp",
)


def label_set(task: str) -> tuple[str, ...]:
    """The fixed label inventory of a task (UPOS tags, IOB2 tags, or universal relations)."""
    sets = {"pos": UPOS_TAGS, "ner": NER_TAGS, "parse": DEPRELS}
    if task not in sets:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(sets)}")
    return sets[task]


# ------------------------------------------------------------------------------- reading errors

_UNIVERSAL_DEPRELS = frozenset(DEPRELS)


def is_valid_deprel(rel: str) -> bool:
    """A universal relation, optionally with one lowercase subtype: ``nsubj``, ``nmod:poss``."""
    base, sep, sub = rel.partition(":")
    return base in _UNIVERSAL_DEPRELS and (not sep or (sub.isascii() and sub.isalpha() and sub.islower()))


class DataFormatError(ValueError):
    """An input file breaks its format: the one error type of every reader and writer.

    ``path`` (the file, or another source such as ``"WikiANN de/test"``), ``line`` (1-based, or
    None when the problem has no single line), ``message`` (what is wrong) and ``sent_id`` (the
    sentence's, when known). ``str(error)`` reads ``"<path>, line <line>: <message>"``.
    `xlt_utils.data.conllu_io.ConlluFormatError` and `xlt_utils.data.iob2.Iob2FormatError` are
    its subclasses, so ``except DataFormatError`` catches both readers' errors.
    """

    def __init__(self, message: str, path=None, line: int | None = None, sent_id: str | None = None):
        self.message, self.path, self.line, self.sent_id = message, None if path is None else str(path), line, sent_id
        where = ", ".join(x for x in (self.path, None if line is None else f"line {line}") if x)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):
        return (type(self), (self.message, self.path, self.line, self.sent_id))


class SkippedSentencesWarning(UserWarning):
    """``errors="skip"`` left invalid sentences out; the warning says how many and where the first was."""


class ReadResult(list):
    """What a reader returns: a list of `Sentence`s, with what reading had to do on the side.

    ``skipped``: one `DataFormatError` per sentence left out under ``errors="skip"`` (empty under
    ``errors="raise"``, which raises the first instead). ``repaired``: how many stray ``I-X`` NER
    tags were read as ``B-X`` (IOB2 readers; see `xlt_utils.data.iob2.repair_iob2`).
    """

    def __init__(self, sentences=(), skipped=None, repaired: int = 0):
        super().__init__(sentences)
        self.skipped: list[DataFormatError] = list(skipped or [])
        self.repaired = repaired


ERRORS = ("raise", "skip")
BOM = b"\xef\xbb\xbf"


def check_errors_mode(errors: str) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {', '.join(map(repr, ERRORS))}, got {errors!r}")


def _control_char(text: str) -> str | None:
    for ch in text:
        if ch != "\t" and (ord(ch) < 32 or 127 <= ord(ch) < 160):
            return ch
    return None


def read_lines(path, error_cls=DataFormatError):
    """(line number, text, error or None) for every line of a UTF-8 file.

    A UTF-8 byte-order mark at the very start is dropped, a CR before the LF is dropped (CRLF
    files read like LF ones), and only LF ends a line. A line that is not valid UTF-8, or holds a
    control character other than TAB, comes with an error naming the line (its text is then the
    decoded text with replacement characters)."""
    data = Path(path).read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM):]
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    for lineno, raw in enumerate(parts, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield lineno, raw.decode("utf-8", "replace"), error_cls(
                f"invalid UTF-8: byte {e.start + 1} of the line is {raw[e.start:e.start + 1]!r} ({e.reason}); "
                "the file must be UTF-8", path, lineno)
            continue
        bad = _control_char(text)
        if bad is not None:
            yield lineno, text, error_cls(
                f"control character U+{ord(bad):04X} in the line (only TAB may separate fields)", path, lineno)
            continue
        yield lineno, text, None


def blocks(path, error_cls=DataFormatError):
    """Sentence blocks: lists of (line number, text, error or None), split at empty lines.

    Only an empty line ends a block: a whitespace-only line stays inside it (the readers reject it),
    so that it can never silently detach a sentence's comments from its words."""
    block: list = []
    for item in read_lines(path, error_cls):
        if item[1] == "" and item[2] is None:
            if block:
                yield block
            block = []
        else:
            block.append(item)
    if block:
        yield block


def check_field(value: str, what: str, sent_id: str, k: int) -> None:
    """Writers: refuse a field that would not read back as itself."""
    where = f"sentence {sent_id!r}, word {k}" if k else f"sentence {sent_id!r}"
    if not isinstance(value, str):
        raise DataFormatError(f"cannot write {where}: {what} is {type(value).__name__} {value!r}, not a string")
    if value == "":
        raise DataFormatError(f"cannot write {where}: {what} is empty")
    if value != value.strip():
        raise DataFormatError(f"cannot write {where}: {what} {value!r} has leading or trailing whitespace")
    if "\t" in value or "\n" in value or _control_char(value) is not None:
        raise DataFormatError(f"cannot write {where}: {what} {value!r} holds a TAB, a newline or another "
                              "control character, which the file format cannot hold")


def write_read_back(text: str, path: str | Path, read) -> None:
    """Write `text` to `path` only if it reads back: it goes to a new temporary file beside `path`
    (``.<name>.<random>.part``, created exclusively, never through a planted symlink), `read` (a
    reader that raises `DataFormatError`) must accept it, and only then does it replace `path`; an
    invalid sentence raises `DataFormatError` naming it, and nothing is written."""
    path = Path(path)
    fd, tmp = create_temp(path.parent, f".{path.name}.", ".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            read(tmp)
        except DataFormatError as e:
            raise DataFormatError(f"cannot write sentence {e.sent_id or '?'!r}: it would not read back: "
                                  f"{e.message}", path) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class LineError(Exception):
    """A problem at one line of a block; the readers turn it into a `DataFormatError` with the file."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def comment_line(lineno: int, text: str, inside: bool, seen: dict, metadata: dict, parse, unit: str) -> bool:
    """The lines both readers treat alike: a whitespace-only line is an error; a comment line is
    stored in `metadata` (``# key = value``; `parse` splits it) after the checks that keep metadata
    with its own sentence (no comment after the first `unit` line, one sent_id and one text per
    sentence, no empty sent_id). Returns True for a comment line, False for a `unit` line."""
    if not text.strip():
        raise LineError(lineno, "whitespace-only line: a sentence ends at an empty line, without spaces or TABs")
    if not text.startswith("#"):
        return False
    if inside:
        raise LineError(lineno, f"comment line inside a sentence: comments go before its first {unit} line")
    key, value = parse(text)
    if key in ("sent_id", "text"):
        if key in seen:
            raise LineError(lineno, f"second # {key} in one sentence (the first is on line {seen[key]})")
        seen[key] = lineno
        if key == "sent_id" and not value:
            raise LineError(lineno, "empty sent_id")
    if key and value:
        metadata[key] = value
    return True

