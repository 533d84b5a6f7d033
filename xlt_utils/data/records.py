"""The one record type that every reader (UD, UNER, WikiANN, synthetic) produces."""

from __future__ import annotations

from dataclasses import dataclass, field

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
