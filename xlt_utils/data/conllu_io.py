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
* empty nodes: numbered ``N.1``, ``N.2``, ... in order right after word N (``0.1`` before the first
  word); HEAD and DEPREL ``_`` (an empty node has no place in the basic tree), UPOS a universal tag
  or ``_``, and a DEPS value (it exists only in the enhanced graph, so it needs a head there);
* FEATS (words and empty nodes): ``_`` or ``Feature=Value`` pairs separated by ``|``, each name
  ``[A-Z0-9][A-Za-z0-9]*`` (an optional layer such as ``[psor]``), each value ``[A-Z0-9][A-Za-z0-9]*``,
  several values of one feature separated by commas, sorted and not repeated; the pairs sorted by
  name (case-insensitively) and no feature twice;
* DEPS (words and empty nodes): ``_`` or ``HEAD:DEPREL`` pairs separated by ``|``; HEAD ``0``, a word
  ID or an empty node ID of the sentence (never the line's own ID); DEPREL a universal relation (or
  ``ref``) with up to three extensions as the UD validator allows (``obl:arg``, ``obl:za:gen``,
  ``nmod:poss``); ``root`` exactly when HEAD is 0; the pairs sorted by HEAD, then by DEPREL, none
  repeated;
* the tree: exactly one root, no word its own head, no cycle (every word reaches the root).

The enhanced graph's connectivity (UD level 2's last enhanced check) is not checked: DEPS is read
only as far as its syntax and references go, since no task here uses it.

The `conllu` library parses the comments (``# key = value``), FEATS pairs, DEPS lists and MISC
values (IDs are checked by pattern and read with ``int``); the columns are split on TAB here, because `conllu` also splits on two spaces and
strips lines, which would silently change a FORM or hide a trailing TAB. The checks above are made
on what it parses (it is lenient: a malformed DEPS comes back as the unparsed string).

Every check is linear in the sentence's length (a 40,000-word sentence reads in well under a second).

`write_conllu` refuses what it could not read back: empty fields, fields with TABs, newlines or
control characters, invalid tags or trees (it validates the text before writing the file).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path

from conllu.models import Metadata, Token, TokenList
from conllu.parser import parse_dict_value, parse_pair_value, parse_paired_list_value

from .records import (
    DEPRELS,
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
_EHEAD = re.compile(r"(0|[1-9][0-9]*)(?:\.([1-9][0-9]*))?")
_UPOS = frozenset(UPOS_TAGS)
_EDGE_SPACE = re.compile(r"(?:^|\t)[^\S\t]|[^\S\t](?:\t|$)")  # whitespace (not the TAB) at a field's edge
_FEAT_NAME = re.compile(r"[A-Z0-9][A-Za-z0-9]*(?:\[[a-z0-9]+\])?")
_FEAT_VALUE = re.compile(r"[A-Z0-9][A-Za-z0-9]*")
_ASCII_LOWER = re.compile(r"[a-z]+")
_ENHANCED_BASES = frozenset(DEPRELS) | {"ref"}
_LETTER_CATEGORIES = frozenset({"Ll", "Lm", "Lo", "Mn", "Mc", "Me"})


class ConlluFormatError(DataFormatError):
    """A CoNLL-U file breaks the format; ``path``, ``line`` and ``message`` say where and what."""


def _feats_problem(feats: str) -> str | None:
    """What is wrong with a FEATS value (UD level 2: syntax, order, no repetition), or None."""
    if feats == "_":
        return None
    items = feats.split("|")
    names: set[str] = set()
    for item in items:
        name, value = parse_pair_value(item)
        if value is None or item != f"{name}={value}" or not _FEAT_NAME.fullmatch(name):
            return f"{item!r} is not Feature=Value (a name [A-Z0-9][A-Za-z0-9]*, then '=' and its value)"
        values = value.split(",")
        if not all(_FEAT_VALUE.fullmatch(v) for v in values):
            return f"{item!r} has a value that is not [A-Z0-9][A-Za-z0-9]* (several values are separated by commas)"
        if len(set(values)) != len(values):
            return f"{item!r} repeats a value"
        if [v.lower() for v in values] != sorted(v.lower() for v in values):
            return f"the values of {item!r} are not sorted"
        if name in names:
            return f"feature {name} appears twice"
        names.add(name)
    if [i.lower() for i in items] != sorted(i.lower() for i in items):
        return "the features are not sorted by name (case-insensitively)"
    return None


def _letters(part: str) -> bool:
    """Lowercase or caseless letters and combining marks, in words joined by single underscores."""
    return all(w and all(unicodedata.category(c) in _LETTER_CATEGORIES for c in w) for w in part.split("_"))


def _enhanced_deprel_ok(rel: str) -> bool:
    """The UD validator's enhanced relation: ``base(:subtype)?(:preposition)?(:case)?``, base a universal
    relation (or ``ref``), subtype and case lowercase ASCII, the preposition any lowercase or caseless
    letters (``obl:za:gen``, ``nmod:poss``, ``obl:arg``)."""
    base, *rest = rel.split(":")
    if base not in _ENHANCED_BASES or len(rest) > 3:
        return False
    slots = (_ASCII_LOWER.fullmatch, _letters, _ASCII_LOWER.fullmatch)  # the parts present fill them in order
    return any(all(slots[k](part) for part, k in zip(rest, chosen, strict=True))
               for chosen in itertools.combinations(range(3), len(rest)))


def _id_key(node: str) -> tuple[int, int]:
    """A word or empty node ID as a sortable pair: ``3`` -> (3, 0), ``3.1`` -> (3, 1)."""
    word, _, empty = node.partition(".")
    return int(word), int(empty or 0)


def _deps(value: str, own: str) -> tuple[list[tuple[str, str]], str | None]:
    """([(head, relation)], None) for a DEPS value, or ([], what is wrong) (UD level 2: syntax, relations,
    root exactly at head 0, sorted by head then relation, nothing repeated, no self-loop)."""
    if value == "_":
        return [], None
    parsed = parse_paired_list_value(value)
    if not isinstance(parsed, list):
        return [], f"DEPS {value!r} is not a list of HEAD:DEPREL pairs separated by |"
    pairs = []
    for part, (rel, _) in zip(value.split("|"), parsed, strict=True):
        head = part.split(":", 1)[0]
        if not _EHEAD.fullmatch(head):
            return [], f"DEPS {value!r}: {head!r} is not 0, a word ID or an empty node ID"
        if not _enhanced_deprel_ok(rel):
            return [], f"DEPS {value!r}: unknown enhanced relation {rel!r}"
        if (head == "0") != (rel == "root"):
            return [], f"DEPS {value!r}: {head}:{rel}: the relation is root exactly when the head is 0"
        if head == own:
            return [], f"DEPS {value!r}: {own} is its own head"
        pairs.append((head, rel))
    keys = [(_id_key(h), r) for h, r in pairs]
    if keys != sorted(keys):
        return [], f"DEPS {value!r} is not sorted by head, then by relation"
    if len(set(keys)) != len(keys):
        return [], f"DEPS {value!r} repeats a pair"
    return pairs, None


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
    empty_ids: set[str] = set()
    deps_of: list[tuple[int, str, list[tuple[str, str]]]] = []  # (line, ID, DEPS pairs) to resolve at the end
    next_empty = 1  # the index the next empty node after the current word must have
    in_words = False
    for lineno, text, _ in block:
        if comment_line(lineno, text, in_words, seen_keys, metadata, lambda t: parse_pair_value(t[1:]), "word"):
            continue
        in_words = True
        cols = text.split("\t")
        if len(cols) != 10:
            tail = " (the line ends with a TAB)" if text.endswith("\t") else ""
            raise LineError(lineno, f"expected 10 tab-separated columns, found {len(cols)}{tail}: {text[:60]!r}")
        if "" in cols or _EDGE_SPACE.search(text):  # one scan of the line; the loop only names the column
            for name, value in zip(COLUMNS, cols, strict=True):
                if value == "":
                    raise LineError(lineno, f"column {name} is empty (an empty field is written _)")
                if value != value.strip():
                    raise LineError(lineno, f"column {name} {value!r} has leading or trailing whitespace")
        tid, form, upos, head, deprel = cols[0], cols[1], cols[3], cols[6], cols[7]
        n = len(words)
        empty = _EMPTY_ID.fullmatch(tid)
        if not empty:
            next_empty = 1
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
        if m := empty:
            if int(m[1]) != n:
                raise LineError(lineno, f"empty node {tid} must come right after word {m[1]} (it follows word {n})")
            if int(m[2]) != next_empty:
                raise LineError(lineno, f"empty node {tid} out of order: expected {n}.{next_empty} (the empty nodes "
                                        f"after word {n} are numbered {n}.1, {n}.2, ...)")
            next_empty += 1
            if head != "_" or deprel != "_":
                raise LineError(lineno, f"empty node {tid} has HEAD {head!r} and DEPREL {deprel!r}: both must be _ "
                                        "(an empty node is attached in DEPS only)")
            if upos != "_" and upos not in _UPOS:
                raise LineError(lineno, f"empty node {tid} has unknown UPOS {upos!r}; valid: _ or {', '.join(UPOS_TAGS)}")
            _check_feats_and_deps(lineno, tid, cols, deps_of)
            if cols[8] == "_":
                raise LineError(lineno, f"empty node {tid} has no DEPS: it exists only in the enhanced graph, "
                                        "so it needs a HEAD:DEPREL there")
            empty_ids.add(tid)
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
        _check_feats_and_deps(lineno, tid, cols, deps_of)
        words.append(Token(id=int(tid), form=form, upos=upos, head=int(head), deprel=deprel,
                           misc=parse_dict_value(cols[9])))
        word_lines.append(lineno)
    if not words:
        raise LineError(block[0][0], "comment lines with no word line after them (a sentence needs words; "
                                "is an empty line separating the comments from their sentence?)")
    n = len(words)
    for lineno, a, b in ranges:
        if b > n:
            raise LineError(lineno, f"multiword token {a}-{b} goes beyond the sentence's last word {n}")
    for lineno, tid, pairs in deps_of:
        for h, rel in pairs:
            if h != "0" and h not in empty_ids and not ("." not in h and int(h) <= n):
                raise LineError(lineno, f"{_node(tid)} has DEPS head {h} ({h}:{rel}), which is not in the sentence")
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
    # Walk up from every word until the root or a word already known to reach it; each word joins
    # `reaches_root` once, so the whole check is linear (a list for the path, a set to test it).
    reaches_root = {0}
    for k in range(1, n + 1):
        path, on_path, node = [], set(), k
        while node not in reaches_root and node not in on_path:
            path.append(node)
            on_path.add(node)
            node = heads[node - 1]
        if node not in reaches_root:  # came back to a word on the path: a cycle
            cycle = path[path.index(node):]
            first = min(cycle)
            chain = " -> ".join(map(str, cycle + [cycle[0]]))
            raise LineError(word_lines[first - 1], f"the heads of words {chain} form a cycle (no path to the root)")
        reaches_root.update(path)
    return TokenList(words, metadata), word_lines


def _node(tid: str) -> str:
    return f"empty node {tid}" if "." in tid else f"word {tid}"


def _check_feats_and_deps(lineno: int, tid: str, cols: list[str], deps_of: list) -> None:
    """FEATS and DEPS of a word or empty node line; DEPS heads are kept to be resolved at the end."""
    problem = _feats_problem(cols[5])
    if problem:
        raise LineError(lineno, f"{_node(tid)} has invalid FEATS {cols[5]!r}: {problem}")
    pairs, problem = _deps(cols[8], tid)
    if problem:
        raise LineError(lineno, f"{_node(tid)} has invalid {problem}")
    if pairs:
        deps_of.append((lineno, tid, pairs))


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
