"""A seeded mutation fuzzer over both readers (issue 15), seeded from real files in ../shared/data.

Every mutated file is read twice (errors="raise" and errors="skip") and judged by an independent
strict checker written here from the documented rules (xlt_utils.data.conllu_io / iob2
docstrings). Each case must end in one of two outcomes:

* parsed: the checker finds the file valid and the reader returns exactly the checker's sentences;
* documented error: the checker finds a violation and the reader raises `DataFormatError` with
  this file's path and a line the checker flags in the first invalid sentence.

Anything else (another exception, silent acceptance, a wrong line, a wrong parse, a skip-mode
result that differs from the checker's valid sentences) counts as "other", and the test requires
0 of it. The counts are printed (and kept in FUZZ_COUNTS) so that they can be quoted. Bounded by
a case count and a CPU-time budget, about a minute in all.
"""

from __future__ import annotations

import random
import re
import time
import unicodedata
import warnings
from pathlib import Path

import pytest

from xlt_utils.data.conllu_io import read_conllu
from xlt_utils.data.iob2 import read_iob2
from xlt_utils.data.records import DataFormatError

CASES = 3000  # per reader
BUDGET_S = 28.0  # per reader, CPU seconds
FUZZ_COUNTS: dict[str, dict[str, int]] = {}

# ---------------------------------------------------------------------------------- the strict checker

UPOS = set("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())
UDEPS = set("""acl advcl advmod amod appos aux case cc ccomp clf compound conj cop csubj dep det discourse
dislocated expl fixed flat goeswith iobj list mark nmod nsubj nummod obj obl orphan parataxis punct
reparandum root vocative xcomp""".split())
TAGS = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}
CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
DEPREL = re.compile(r"([a-z]+)(?::([a-z]+))?")
NAT = re.compile(r"[1-9][0-9]*")
# FEATS, DEPS and empty nodes (UD level 2), written from the module docstring of conllu_io
FEAT = re.compile(r"([A-Z0-9][A-Za-z0-9]*(?:\[[a-z0-9]+\])?)=([A-Z0-9][A-Za-z0-9]*(?:,[A-Z0-9][A-Za-z0-9]*)*)")
EHEAD = re.compile(r"(0|[1-9][0-9]*)(?:\.([1-9][0-9]*))?")
EMPTY = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")


def feats_ok(v: str) -> bool:
    if v == "_":
        return True
    items = v.split("|")
    ms = [FEAT.fullmatch(x) for x in items]
    if not all(ms) or len({m[1] for m in ms}) != len(ms):
        return False
    for m in ms:
        vals = [x.lower() for x in m[2].split(",")]
        if any(a >= b for a, b in zip(vals, vals[1:], strict=False)):  # sorted, none repeated
            return False
    low = [x.lower() for x in items]
    return low == sorted(low)


def _part_class(part: str) -> str:
    """A: lowercase ASCII (fits any extension slot); U: other lowercase or caseless letters and marks,
    in words joined by single underscores (fits the middle slot only); X: neither."""
    if re.fullmatch(r"[a-z]+", part):
        return "A"
    words = part.split("_")
    if all(w and all(unicodedata.category(c)[:2] in ("Ll", "Lm", "Lo") or unicodedata.category(c)[0] == "M"
                     for c in w) for w in words):
        return "U"
    return "X"


def edeprel_ok(rel: str) -> bool:
    base, *rest = rel.split(":")
    return (base in UDEPS or base == "ref") and bool(re.fullmatch(r"A?[AU]?A?", "".join(map(_part_class, rest))))


def _key(node: str):
    a, _, b = node.partition(".")
    return int(a), int(b or 0)


def deps_check(v: str, own: str):
    """(ok, [heads]) for a DEPS value."""
    if v == "_":
        return True, []
    pairs = []
    for part in v.split("|"):
        head, sep, rel = part.partition(":")
        if not sep or not EHEAD.fullmatch(head) or not edeprel_ok(rel) or (head == "0") != (rel == "root") \
                or head == own:
            return False, []
        pairs.append((_key(head), rel, head))
    if any(a[:2] >= b[:2] for a, b in zip(pairs, pairs[1:], strict=False)):  # sorted by head then relation, none repeated
        return False, []
    return True, [p[2] for p in pairs]


def _split(data: bytes):
    """[(lineno, text or None)] blocks, split at empty lines; None marks a line that is not UTF-8."""
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    blocks, cur = [], []
    for i, b in enumerate(raw, 1):
        b = b[:-1] if b.endswith(b"\r") else b
        try:
            t = b.decode("utf-8")
        except UnicodeDecodeError:
            t = None
        if t == "":
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append((i, t))
    if cur:
        blocks.append(cur)
    return blocks


def _comment(t):
    k, sep, v = t[1:].partition("=")
    return k.strip(), (v.strip() if sep else None)


def _common_line_errors(ln, t, words_seen, keys, meta):
    """Errors shared by both formats for a comment or blank-ish line; True if the line was handled."""
    if t is None or CTRL.search(t) or t.strip() == "":
        return {ln}, True
    if t.startswith("#"):
        errs = set()
        if words_seen:
            errs.add(ln)
        k, v = _comment(t)
        if k in ("sent_id", "text"):
            if k in keys:
                errs.add(ln)
            keys.add(k)
            if k == "sent_id" and not v:
                errs.add(ln)
        if k and v:
            meta[k] = v
        return errs, True
    return set(), False


def check_conllu_block(block):
    """(error lines, sentence dict or None) for one block, by the documented rules."""
    errs, keys, meta = set(), set(), {}
    words, lines_of, ranges, in_words = [], [], [], False
    empties, enhanced, run = set(), [], 0  # valid empty node IDs, (line, DEPS heads), empty nodes in a row
    for ln, t in block:
        e, handled = _common_line_errors(ln, t, in_words, keys, meta)
        errs |= e
        if handled:
            continue
        in_words = True
        n_before = len(words)
        cols = t.split("\t")
        if len(cols) != 10 or any(c == "" or c != c.strip() for c in cols):
            errs.add(ln)
            continue
        i, form, _, upos, _, feats, head, rel, deps, _ = cols
        run = run + 1 if EMPTY.fullmatch(i) else 0
        if re.fullmatch(r"[1-9][0-9]*-[1-9][0-9]*", i):
            a, b = map(int, i.split("-"))
            if a >= b or a != n_before + 1 or (ranges and ranges[-1][2] >= a):
                errs.add(ln)
            ranges.append((ln, a, b))
            continue
        ok, heads = deps_check(deps, i)
        if m := EMPTY.fullmatch(i):
            if int(m[1]) != n_before or int(m[2]) != run or head != "_" or rel != "_" \
                    or (upos != "_" and upos not in UPOS) or not feats_ok(feats) or not ok or deps == "_":
                errs.add(ln)
            else:
                empties.add(i)
                enhanced.append((ln, heads))
            continue
        if not NAT.fullmatch(i) or int(i) != n_before + 1 or upos not in UPOS \
                or not re.fullmatch(r"0|[1-9][0-9]*", head):
            errs.add(ln)
            continue
        m = DEPREL.fullmatch(rel)
        if not m or m[1] not in UDEPS or (head == "0") != (m[1] == "root") or not feats_ok(feats) or not ok:
            errs.add(ln)
            continue
        words.append((form, upos, int(head), m[1]))
        lines_of.append(ln)
        enhanced.append((ln, heads))
    if errs:
        return errs, None
    if not words:
        return {block[0][0]}, None
    n = len(words)
    errs |= {ln for ln, a, b in ranges if b > n}
    if errs:
        return errs, None
    known = {"0", *empties, *map(str, range(1, n + 1))}
    errs |= {ln for ln, heads in enhanced if not set(heads) <= known}
    if errs:
        return errs, None
    heads = [w[2] for w in words]
    bad = {lines_of[k] for k, h in enumerate(heads) if h > n or h == k + 1}
    if bad:
        return bad, None
    roots = [k for k, h in enumerate(heads) if h == 0]
    if len(roots) != 1:
        return ({lines_of[0]} if not roots else {lines_of[k] for k in roots}), None
    for k in range(n):  # walk up n steps: a word that never reaches 0 is on or under a cycle
        node, steps = k + 1, 0
        while node != 0 and steps <= n:
            node, steps = heads[node - 1], steps + 1
        if node != 0:
            errs.add(lines_of[k])
    if errs:
        return errs, None
    return set(), {"sent_id": meta.get("sent_id"), "text": meta.get("text"), "words": [w[0] for w in words],
                   "upos": [w[1] for w in words], "heads": heads, "deprels": [w[3] for w in words]}


def check_iob2_block(block):
    errs, keys, meta, words, tags = set(), set(), {}, [], []
    for ln, t in block:
        e, handled = _common_line_errors(ln, t, bool(words) or ln in errs, keys, meta)
        errs |= e
        if handled:
            continue
        cols = t.split("\t")
        if len(cols) < 3 or any(c == "" or c != c.strip() for c in cols) or cols[0] != str(len(words) + 1) \
                or cols[2] not in TAGS:
            errs.add(ln)
            words.append(None)
            continue
        words.append(cols[1])
        tags.append(cols[2])
    if errs:
        return errs, None
    if not words:
        return {block[0][0]}, None
    fixed, prev = [], "O"
    for t in tags:
        if t[:2] == "I-" and prev[2:] != t[2:]:
            t = "B-" + t[2:]
        fixed.append(t)
        prev = t
    return set(), {"sent_id": meta.get("sent_id"), "text": meta.get("text"), "words": words, "ner": fixed}


def check_file(data: bytes, stem: str, fmt: str):
    """(valid sentences in order, [(block's error lines)] of invalid blocks in order, first invalid's lines)."""
    check = check_conllu_block if fmt == "conllu" else check_iob2_block
    valid, invalid, ids = [], [], set()
    for index, block in enumerate(_split(data)):
        errs, sent = check(block)
        if sent is not None and sent["sent_id"] is not None and sent["sent_id"] in ids:
            errs, sent = {ln for ln, t in block if t and t.startswith("#") and _comment(t)[0] == "sent_id"}, None
        if sent is None:
            invalid.append(errs)
            continue
        if sent["sent_id"] is None:
            sent["sent_id"] = f"{stem}-{index}"
        else:
            ids.add(sent["sent_id"])
        valid.append(sent)
    return valid, invalid


# ------------------------------------------------------------------------------------------ mutations

POOL = ["", "_", "0", "1", "2", "-1", "07", "999", "root", "nsubj", "nmod:poss", "nmod:Poss", "punct:", "NOUN",
        "NOUNX", "X", "B-PER", "I-PER", "I-LOC", "B-MISC", "O", "x y", " a", "a ", "1-2", "2-1", "3.1", "0.1",
        "\u00b2", "\ufeff1", "#", "# c", "\u2028", "SpaceAfter=No"]
CHARS = ["\t", " ", "\x0b", "\x00", "\r", "\x85", "\ufeff", "\u2028", "#", "=", "-", ".", "é", "1", "_"]


def _lines(text):
    return text.split("\n")


FEATS_POOL = ["_", "Number=Sing", "number=Sing", "Number=sing", "Number=Sing,Plur", "Number=Plur,Sing",
              "Number=Sing,Sing", "Case=Nom|Number=Sing", "Number=Sing|Case=Nom", "Case=Nom|Case=Acc",
              "Number[psor]=Sing", "Number[Psor]=Sing", "Number=", "=Sing", "Number=Sing|", "Typo=Yes", "X=1,2"]
DEPS_HEADS = ["0", "1", "2", "3", "1.1", "2.1", "0.1", "99", "01", "1-2", "1.0"]
DEPS_RELS = ["root", "nsubj", "obj", "obl:arg", "obl:za:gen", "nmod:poss", "ref", "conj:and", "subj", "Nsubj",
             "obl:в_течение:gen", "nmod:of:x:y", "obl::gen", "acl:relcl", "nmod:poss_"]


def _deps_value(rng: random.Random) -> str:
    pairs = [f"{rng.choice(DEPS_HEADS)}:{rng.choice(DEPS_RELS)}" for _ in range(rng.choice([1, 1, 2, 3]))]
    if rng.random() < 0.6:  # mostly sorted, so that the other rules get their turn
        pairs.sort(key=lambda p: (tuple(int(x) for x in p.split(":")[0].replace("-", ".").split(".")), p))
    return "|".join(pairs)


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(34)
    text = data.decode("utf-8", "surrogateescape")  # earlier mutations may have broken the UTF-8
    lines = _lines(text)
    k = rng.randrange(len(lines))
    name = ""
    if kind == 0:
        name = "delete line"; del lines[k]  # noqa: E702
    elif kind == 1:
        name = "duplicate line"; lines.insert(k, lines[k])  # noqa: E702
    elif kind == 2 and k + 1 < len(lines):
        name = "swap lines"; lines[k], lines[k + 1] = lines[k + 1], lines[k]  # noqa: E702
    elif kind == 3:
        name = "blank line"; lines.insert(k, "")  # noqa: E702
    elif kind == 4:
        name = "whitespace line"; lines.insert(k, rng.choice([" ", "\t", "  \t"]))  # noqa: E702
    elif kind == 5:
        name = "comment"; lines.insert(k, rng.choice(["# x = y", "# sent_id = zz", "# text = t", "#", "# sent_id ="]))  # noqa: E702,E501
    elif kind in (6, 7, 8, 9, 10):
        cols = lines[k].split("\t")
        col = {6: rng.randrange(max(1, len(cols))), 7: 6, 8: 7, 9: 3, 10: 0}[kind]
        if kind in (7, 8, 9) and len(cols) == 5:  # IOB2: the tag column
            col = 2
        if col < len(cols):
            cols[col] = rng.choice(POOL + [str(rng.randrange(0, 40))])
        name = f"column {col}"
        lines[k] = "\t".join(cols)
    elif kind == 11 and "\t" in lines[k]:
        name = "drop a TAB"; i = [m.start() for m in re.finditer("\t", lines[k])]; j = rng.choice(i)  # noqa: E702
        lines[k] = lines[k][:j] + lines[k][j + 1:]
    elif kind == 12:
        name = "trailing TAB"; lines[k] += "\t"  # noqa: E702
    elif kind == 13:
        name = "char insert"; j = rng.randrange(len(lines[k]) + 1)  # noqa: E702
        lines[k] = lines[k][:j] + rng.choice(CHARS) + lines[k][j:]
    elif kind == 14 and lines[k]:
        name = "char delete"; j = rng.randrange(len(lines[k]))  # noqa: E702
        lines[k] = lines[k][:j] + lines[k][j + 1:]
    elif kind == 15:
        name = "head shuffle"
        ws = [i for i, ln in enumerate(lines) if re.match(r"[0-9]+\t", ln) and ln.count("\t") == 9]
        if ws:
            i = rng.choice(ws); cols = lines[i].split("\t"); cols[6] = str(rng.randrange(0, 12))  # noqa: E702
            lines[i] = "\t".join(cols)
    elif kind == 16:
        name = "multiword range"; a = rng.randrange(1, 12)  # noqa: E702
        lines.insert(k, f"{a}-{a + rng.randrange(0, 3)}\tab\t_\t_\t_\t_\t_\t_\t_\t_")
    elif kind == 17:
        name = "duplicate sentence"
        blocks = text.split("\n\n")
        b = rng.randrange(len(blocks))
        blocks.insert(b, blocks[b])
        return "\n\n".join(blocks).encode("utf-8", "surrogateescape"), name
    elif kind == 18:
        name = "merge sentences"
        idx = [i for i, ln in enumerate(lines[:-2]) if ln == ""]
        if idx:
            del lines[rng.choice(idx)]
    elif kind == 19:
        name = "BOM"
        return b"\xef\xbb\xbf" + data, name
    elif kind == 20:
        name = "CRLF"
        return data.replace(b"\n", b"\r\n"), name
    elif kind == 21:
        name = "truncate"
        return data[: rng.randrange(len(data))], name
    elif kind == 22:
        name = "invalid UTF-8"; j = rng.randrange(len(data))  # noqa: E702
        return data[:j] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]) + data[j:], name
    elif kind == 23:
        name = "subtype"
        ws = [i for i, ln in enumerate(lines) if ln.count("\t") == 9 and re.match(r"[0-9]+\t", ln)]
        if ws:
            i = rng.choice(ws); cols = lines[i].split("\t")  # noqa: E702
            if cols[7] not in ("_",):
                cols[7] = cols[7].split(":")[0] + ":" + rng.choice(["poss", "pass", "X", "", "tmod"])
            lines[i] = "\t".join(cols)
    elif kind == 24:
        name = "stray I-"
        ws = [i for i, ln in enumerate(lines) if ln.count("\t") == 4]
        if ws:
            i = rng.choice(ws); cols = lines[i].split("\t"); cols[2] = rng.choice(["I-PER", "I-LOC", "I-ORG"])  # noqa: E702,E501
            lines[i] = "\t".join(cols)
    elif kind in (26, 27, 28):  # tree edits that keep every line well-formed
        ws = [i for i, ln in enumerate(lines) if ln.count("\t") == 9 and re.match(r"[0-9]+\t", ln)]
        if len(ws) >= 2:
            i, j = rng.sample(ws, 2)
            a, b = lines[i].split("\t"), lines[j].split("\t")
            if kind == 26:
                name = "second root"; a[6], a[7] = "0", "root"  # noqa: E702
            elif kind == 27:
                name = "swap heads"; a[6], b[6], a[7], b[7] = b[6], a[6], b[7], a[7]  # noqa: E702
            else:
                name = "self-loop or re-attach"; a[6] = rng.choice([a[0], b[0]])  # noqa: E702
            lines[i], lines[j] = "\t".join(a), "\t".join(b)
    elif kind in (30, 31):  # FEATS (30) or DEPS (31) of a word or empty node line
        ws = [i for i, ln in enumerate(lines) if ln.count("\t") == 9 and re.match(r"[0-9]+(\.[0-9]+)?\t", ln)]
        if ws:
            i = rng.choice(ws); cols = lines[i].split("\t")  # noqa: E702
            if kind == 30:
                name = "FEATS"
                feats = cols[5].split("|")
                if len(feats) > 1 and rng.random() < 0.5:
                    a, b = rng.sample(range(len(feats)), 2); feats[a], feats[b] = feats[b], feats[a]  # noqa: E702
                    cols[5] = "|".join(feats)
                else:
                    cols[5] = rng.choice(FEATS_POOL)
            else:
                name = "DEPS"
                cols[8] = rng.choice(["_", cols[0] + ":dep", _deps_value(rng)])
            lines[i] = "\t".join(cols)
    elif kind in (32, 33):  # an empty node inserted after a word (32), or an existing one changed (33)
        ws = [i for i, ln in enumerate(lines) if ln.count("\t") == 9 and re.match(r"[0-9]+\t", ln)]
        es = [i for i, ln in enumerate(lines) if ln.count("\t") == 9 and re.match(r"[0-9]+\.[0-9]+\t", ln)]
        if kind == 32 and ws:
            name = "empty node"
            i = rng.choice(ws); word = lines[i].split("\t")[0]  # noqa: E702
            node = f"{word}.{rng.choice([1, 1, 1, 2])}"
            if rng.random() < 0.5:  # well-formed (unless the node is out of place)
                cols = [node, "x", "_", rng.choice(["_", "VERB"]), "_", "_", "_", "_", f"{word}:conj", "_"]
            else:
                cols = [node, "_", "_", rng.choice(["_", "VERB", "VERBX"]), "_", rng.choice(["_", "Tense=Past"]),
                        rng.choice(["_", "_", "_", "1"]), rng.choice(["_", "_", "_", "dep"]),
                        rng.choice([_deps_value(rng), "1:conj", "_"]), "_"]
            lines.insert(i + 1 + rng.choice([0, 0, 0, 1]), "\t".join(cols))
        elif kind == 33 and es:
            name = "empty node content"
            i = rng.choice(es); cols = lines[i].split("\t")  # noqa: E702
            col = rng.choice([0, 3, 6, 7, 8])
            cols[col] = rng.choice({0: ["0.1", "1.2", "2.1", "1.0"], 3: ["_", "NOUN", "nOUN"], 6: ["_", "0", "1"],
                                    7: ["_", "root", "dep"], 8: ["_", cols[0] + ":dep", "0:root"]}[col])
            lines[i] = "\t".join(cols)
    else:
        name = "swap sentences"
        blocks = text.split("\n\n")
        if len(blocks) > 2:
            a, b = rng.sample(range(len(blocks) - 1), 2)
            blocks[a], blocks[b] = blocks[b], blocks[a]
        return "\n\n".join(blocks).encode("utf-8", "surrogateescape"), name
    return "\n".join(lines).encode("utf-8", "surrogateescape"), name


def _seeds(shared_data: Path, fmt: str) -> list[bytes]:
    files = {"conllu": ["ud/UD_English-EWT/en_ewt-ud-dev.conllu", "ud/UD_Czech-PUD/cs_pud-ud-test.conllu",
                        "ud/UD_French-PUD/fr_pud-ud-test.conllu", "ud/UD_Swedish-PUD/sv_pud-ud-test.conllu"],
             "iob2": ["uner/UNER_English-EWT/en_ewt-ud-dev.iob2", "uner/UNER_Swedish-PUD/sv_pud-ud-test.iob2",
                      "uner/UNER_Chinese-PUD/zh_pud-ud-test.iob2"]}[fmt]
    out = []
    for name in files:
        blocks = (shared_data / name).read_text(encoding="utf-8").split("\n\n")
        # small slices with the interesting bits (multiword tokens, empty nodes, entities) in them
        for start in range(0, 400, 40):
            chunk = blocks[start:start + 4]
            if any(re.search(r"^\d+-\d+\t|^\d+\.\d+\t|\tB-", b, re.M) for b in chunk) or start == 0:
                out.append(("\n\n".join(chunk) + "\n\n").encode())
    return out


def _same(sent, want) -> bool:
    got = {"sent_id": sent.sent_id, "text": sent.text, "words": sent.words}
    if want.get("ner") is not None:
        got["ner"] = sent.ner
    else:
        got.update(upos=sent.upos, heads=sent.heads, deprels=sent.deprels)
    return got == want


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["conllu", "iob2"])
def test_fuzz_reader(shared_data, tmp_path, fmt, capsys):
    reader = read_conllu if fmt == "conllu" else read_iob2
    seeds = _seeds(shared_data, fmt)
    assert seeds
    for seed in seeds:  # the seeds themselves are valid and parse as the checker says
        valid, invalid = check_file(seed, "s", fmt)
        assert not invalid and valid
    rng = random.Random(15)
    counts = {"cases": 0, "parsed": 0, "documented_error": 0, "other": 0}
    others: list[str] = []
    start = time.process_time()
    for case in range(CASES):
        if time.process_time() - start > BUDGET_S:
            break
        data, names = rng.choice(seeds), []
        for _ in range(rng.choice([1, 1, 2, 3])):
            data, name = mutate(data, rng) if data else (data, "empty")
            names.append(name)
        path = tmp_path / f"case{case}.{fmt}"
        path.write_bytes(data)
        valid, invalid = check_file(data, path.stem, fmt)
        counts["cases"] += 1
        problem = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = reader(path, "xx")
            if invalid:
                problem = f"accepted, but the checker flags lines {sorted(invalid[0])}"
            elif len(got) != len(valid) or not all(_same(s, w) for s, w in zip(got, valid, strict=False)):
                problem = "parsed differently from the checker"
            else:
                counts["parsed"] += 1
        except DataFormatError as e:
            if not invalid:
                problem = f"refused a file the checker accepts: {e}"
            elif e.path != str(path) or e.line not in invalid[0] or not str(e).startswith(f"{path}, line {e.line}: "):
                problem = f"error at line {e.line}, the checker flags {sorted(invalid[0])}: {e}"
            else:
                counts["documented_error"] += 1
        except Exception as e:  # noqa: BLE001 - exactly what the fuzzer looks for
            problem = f"undocumented {type(e).__name__}: {e}"
        if problem is None:  # skip mode keeps exactly the checker's valid sentences
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res = reader(path, "xx", errors="skip")
                    if len(res) != len(valid) or not all(_same(s, w) for s, w in zip(res, valid, strict=False)) \
                            or len(res.skipped) != len(invalid) \
                            or any(e.line not in lines for e, lines in zip(res.skipped, invalid, strict=True)):
                        problem = "errors='skip' kept other sentences than the checker's valid ones"
                except Exception as e:  # noqa: BLE001
                    problem = f"errors='skip' raised {type(e).__name__}: {e}"
            if problem is not None:  # undo the count given above
                counts["parsed" if not invalid else "documented_error"] -= 1
        if problem is not None:
            counts["other"] += 1
            others.append(f"case {case} ({' + '.join(names)}): {problem}")
        path.unlink()
    FUZZ_COUNTS[fmt] = counts
    with capsys.disabled():
        print(f"\nfuzz {fmt}: {counts} in {time.process_time() - start:.1f} s CPU")
    assert counts["cases"] >= 300 and counts["parsed"] > 0 and counts["documented_error"] > 0
    assert counts["other"] == 0, "\n".join(others[:15])


# ------------------------------------------------------------------ issue 25: fetch() under mutated bodies and cut transfers

FETCH_CASES = 160


@pytest.mark.slow
def test_fuzz_fetch_never_caches_what_does_not_read(shared_data, tmp_path, monkeypatch, capsys):
    """Mutated CoNLL-U bodies (the mutations above, junk after a valid prefix, cuts at any byte and at
    sentence boundaries) served by a loopback server with an honest Content-Length, a short one, a
    cut chunked encoding, or no length at all, fetched without a pinned hash. Every case must end
    either in a FetchError with nothing cached, or in a cached file that is exactly the body served
    whole and that the reader accepts whole: a cached file that does not read counts as "other"."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from xlt_utils.data.download import FetchError, fetch

    served: dict[str, tuple[bytes, str]] = {}

    class Server(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body, how = served[self.path]
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            if how == "chunked-cut":
                self.send_header("Transfer-Encoding", "chunked")
            elif how != "no-length":
                self.send_header("Content-Length", str(len(body) + (7 if how == "short" else 0)))
            self.send_header("Connection", "close")
            self.end_headers()
            if how == "chunked-cut":  # one chunk, then the connection closes without the last chunk
                self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            else:
                self.wfile.write(body)
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    for var in ("XLT_OFFLINE", "HF_HUB_OFFLINE", "XLT_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XLT_CACHE_DIR", str(cache))
    seeds = _seeds(shared_data, "conllu")
    rng = random.Random(25)
    counts = {"cases": 0, "cached": 0, "refused": 0, "other": 0}
    others = []
    try:
        for case in range(FETCH_CASES):
            data = rng.choice(seeds)
            kind = rng.randrange(5)
            if kind == 0:
                data, name = mutate(data, rng)
            elif kind == 1:
                name, data = "junk after a valid prefix", data + rng.choice([b"junk\n\n", b"<html>\n\n", b"1\tx\n\n"])
            elif kind == 2:
                name, data = "cut anywhere", data[:rng.randrange(1, len(data))]
            elif kind == 3:
                ends = [m.end() for m in re.finditer(rb"\n\n", data)][:-1]
                name, data = "cut at a sentence boundary", data[:rng.choice(ends)] if ends else data
            else:
                name = "whole"
            how = rng.choice(["length", "length", "short", "chunked-cut", "no-length"])
            path = f"/case{case}.conllu"
            served[path] = (data, how)
            counts["cases"] += 1
            problem = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    got = fetch(f"http://127.0.0.1:{httpd.server_address[1]}{path}", sha256=None, timeout=2,
                                retries=0, deadline=20)
            except FetchError:
                counts["refused"] += 1
                left = [p for p in got_files(cache) if p.name.startswith(f"case{case}.")]
                if left:
                    problem = f"refused, but left {left}"
            except Exception as e:  # noqa: BLE001
                problem = f"undocumented {type(e).__name__}: {e}"
            else:
                counts["cached"] += 1
                if how in ("short", "chunked-cut"):
                    problem = f"cached a transfer that ended early ({how})"
                elif got.read_bytes() != data:
                    problem = "cached other bytes than the body served"
                else:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            read_conllu(got, "xx")
                    except DataFormatError as e:
                        problem = f"cached a body the reader refuses: {e}"
            if problem is not None:
                counts["other"] += 1
                others.append(f"case {case} ({name}, {how}): {problem}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    FUZZ_COUNTS["fetch"] = counts
    with capsys.disabled():
        print(f"\nfuzz fetch: {counts}")
    assert counts["cached"] > 0 and counts["refused"] > 0
    assert counts["other"] == 0, "\n".join(others[:15])


def got_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"] if root.exists() else []
