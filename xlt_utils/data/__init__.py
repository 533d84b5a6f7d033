"""Data: one record type, CoNLL-U and IOB2 readers, and the synthetic languages."""

from .conllu_io import ConlluFormatError, read_conllu, write_conllu
from .iob2 import Iob2FormatError, read_iob2, write_iob2
from .records import NER_TAGS, UPOS_TAGS, Sentence

__all__ = [
    "ConlluFormatError", "Iob2FormatError", "NER_TAGS", "Sentence", "UPOS_TAGS",
    "read_conllu", "read_iob2", "write_conllu", "write_iob2",
]
