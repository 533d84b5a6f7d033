"""Data: one record type, CoNLL-U and IOB2 readers, and the synthetic languages.

Every reader error is a `DataFormatError` (``path``, ``line``, ``message``); readers take
``errors="skip"`` to leave invalid sentences out instead (see `ReadResult`)."""

from .conllu_io import ConlluFormatError, read_conllu, write_conllu
from .iob2 import Iob2FormatError, read_iob2, repair_iob2, write_iob2
from .records import (
    NER_TAGS,
    UPOS_TAGS,
    DataFormatError,
    ReadResult,
    Sentence,
    SkippedSentencesWarning,
)

__all__ = [
    "ConlluFormatError", "DataFormatError", "Iob2FormatError", "NER_TAGS", "ReadResult", "Sentence",
    "SkippedSentencesWarning", "UPOS_TAGS", "read_conllu", "read_iob2", "repair_iob2", "write_conllu",
    "write_iob2",
]
