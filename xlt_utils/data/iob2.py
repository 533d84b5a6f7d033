"""IOB2 NER files in the Universal NER layout (index, token, tag, -, annotator), read and written."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .records import NER_TAGS, Sentence


class Iob2FormatError(ValueError):
    """An IOB2 file is malformed; the message names the file, the line and the problem."""


def validate_tags(tags: list[str], where: str = "") -> None:
    """Raise if a tag is outside the PER/ORG/LOC IOB2 tag set."""
    for k, t in enumerate(tags):
        if t not in NER_TAGS:
            raise Iob2FormatError(f"{where}token {k + 1}: unknown tag {t!r}; valid tags: {', '.join(NER_TAGS)}")


def read_iob2(path: str | Path, lang: str) -> list[Sentence]:
    """Read a UNER-style IOB2 file (TAB-separated: index, token, tag, ...) into sentences."""
    path = str(path)
    out: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    meta: dict[str, str] = {}

    def flush(lineno: int) -> None:
        if words:
            sid = meta.get("sent_id", f"{Path(path).stem}-{len(out)}")
            out.append(Sentence(sent_id=sid, lang=lang, words=list(words), ner=list(tags), text=meta.get("text")))
        words.clear(), tags.clear(), meta.clear()

    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush(lineno)
            elif line.startswith("#"):
                key, _, value = line[1:].partition("=")
                meta[key.strip()] = value.strip()
            else:
                cols = line.split("\t")
                if len(cols) < 3:
                    raise Iob2FormatError(f"{path}, line {lineno}: expected at least 3 TAB-separated columns, found {len(cols)}")
                if cols[0] != str(len(words) + 1):
                    raise Iob2FormatError(f"{path}, line {lineno}: token index {cols[0]!r}, expected {len(words) + 1}")
                validate_tags([cols[2]], where=f"{path}, line {lineno}: ")
                words.append(cols[1])
                tags.append(cols[2])
        flush(lineno if words else 0)
    return out


def write_iob2(sentences: Iterable[Sentence], path: str | Path) -> None:
    """Write sentences with NER tags in the UNER IOB2 layout."""
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(f"# sent_id = {s.sent_id}\n# text = {s.text or ' '.join(s.words)}\n")
            for k, (w, t) in enumerate(zip(s.words, s.ner, strict=True)):
                f.write(f"{k + 1}\t{w}\t{t}\t-\t-\n")
            f.write("\n")
