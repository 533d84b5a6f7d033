"""Synthetic languages: one meaning, many realisations, every sentence with UPOS, trees and NER.

A *meaning* (a predicate, its arguments, modifiers and named entities) is sampled once and
realised in each toy language by that language's lexicon and typology: word order, adjective and
adposition order, articles, script, shared anchors (digits, names, punctuation) and suffixes.
Parallel test sets come for free; pretraining corpora are monolingual and not parallel.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import corrupt_name, folder_lock, sha256_file, write_atomic
from .conllu_io import format_conllu, read_conllu, write_conllu
from .download import cache_dir
from .iob2 import format_iob2, read_iob2, write_iob2
from .records import Sentence

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class ToyLanguage:
    """Typological settings of one synthetic language."""

    code: str
    name: str
    order: str  # "SVO", "SOV" or "VSO"
    adj_after_noun: bool
    postpositions: bool
    articles: bool
    script: str  # "latin", "cyrillic", "kana" or "arabic"
    cognates: float  # share of the lexicon borrowed (lightly changed) from the source language
    anchors: float  # share of names written exactly as in the source (the rest transliterated)
    suffixes: dict  # morphology: {"pl": ..., "past": ..., "acc": ...}; absent key = not marked
    punct: str = "."
    syllables: tuple[str, str] = ("ptkbdgmnslr", "aeiou")

    def describe(self) -> dict:
        """One row for the overview table of the languages."""
        return {
            "code": self.code, "name": self.name, "order": self.order,
            "adjective": "N-Adj" if self.adj_after_noun else "Adj-N",
            "adposition": "postp." if self.postpositions else "prep.",
            "articles": self.articles, "script": self.script, "cognates": self.cognates,
            "anchors": self.anchors, "suffixes": ",".join(self.suffixes) or "-",
        }


TOY_LANGUAGES: dict[str, ToyLanguage] = {lang.code: lang for lang in [
    ToyLanguage("en", "toy English (source)", "SVO", False, False, True, "latin", 1.0, 1.0,
                {"pl": "s", "past": "ed"}, ".", ("ptkbdfgmnslrw", "aeiou")),
    ToyLanguage("fr", "toy French", "SVO", True, False, True, "latin", 0.5, 1.0,
                {"pl": "s", "past": "ait"}, ".", ("ptkbdfgmnslrv", "aeiouy")),
    ToyLanguage("de", "toy German", "SOV", False, False, True, "latin", 0.2, 1.0,
                {"pl": "en", "past": "te", "acc": "n"}, ".", ("ptkbdfgmnslrz", "aeiou")),
    ToyLanguage("ru", "toy Russian", "SVO", False, False, False, "cyrillic", 0.2, 0.3,
                {"pl": "y", "past": "la", "acc": "u"}, ".", ("ptkbdgmnslrvz", "aeiouy")),
    ToyLanguage("tr", "toy Turkish", "SOV", False, True, False, "latin", 0.0, 1.0,
                {"pl": "ler", "past": "di", "acc": "i"}, ".", ("ptkbdgmnslrcy", "aeiou")),
    ToyLanguage("ja", "toy Japanese", "SOV", False, True, False, "kana", 0.0, 0.0,
                {"past": "ta"}, "。", ("ptkbdgmnsrh", "aeiou")),
    ToyLanguage("ar", "toy Arabic", "VSO", True, False, True, "arabic", 0.0, 0.2,
                {"pl": "at", "past": "a"}, ".", ("tkbdfmnslrqh", "aiu")),
]}

def typological_distance(code: str, source: str = "en") -> int:
    """How many of four typological features a toy language does not share with the source: the
    order of subject, verb and object, the side of adjectives, the side of adpositions, and the
    script. The features by which mBERT's zero-shot transfer is known to be graded (Pires et al.,
    2019; K et al., 2020): 0 for the source itself, 4 at most."""
    a, b = TOY_LANGUAGES[code], TOY_LANGUAGES[source]
    return sum([a.order != b.order, a.adj_after_noun != b.adj_after_noun, a.postpositions != b.postpositions,
                a.script != b.script])


_SCRIPTS = {
    "cyrillic": dict(zip("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопщрстувшхыз", strict=True)),
    "kana": dict(zip("abcdefghijklmnopqrstuvwxyz", "アベチデエフゲハイジカルマナオパクラサタウヴワクヤゼ", strict=True)),
    "arabic": dict(zip("abcdefghijklmnopqrstuvwxyz", "ابتدعفغهيجكلمنوپقرسطؤڤوخىز", strict=True)),
}

# Sizes of the concept inventory (shared by all languages: the "meanings").
N_ANIMATE, N_THING, N_PLACE = 40, 60, 25
N_TRANS, N_INTRANS, N_ADJ, N_ADV, N_ADP = 35, 25, 45, 12, 8
N_FIRST, N_LAST, N_CITY, N_ORG = 40, 40, 40, 25
NUMBER_WORDS = 9  # "two" .. "ten"


def _rng(*parts) -> random.Random:
    return random.Random(hashlib.sha256(repr(parts).encode()).hexdigest())


def _word(rng: random.Random, syl: tuple[str, str], n_min=1, n_max=3) -> str:
    cons, vows = syl
    return "".join(rng.choice(cons) + rng.choice(vows) + (rng.choice(cons) if rng.random() < 0.3 else "")
                   for _ in range(rng.randint(n_min, n_max)))


def _mutate(rng: random.Random, form: str, syl: tuple[str, str]) -> str:
    """A cognate: the source form with one vowel changed or a vowel appended."""
    vowels = [i for i, c in enumerate(form) if c in "aeiouy"]
    if vowels and rng.random() < 0.6:
        i = rng.choice(vowels)
        return form[:i] + rng.choice(syl[1]) + form[i + 1:]
    return form + rng.choice(syl[1])


class Lexicon:
    """Surface forms of every concept in one language, including deliberate homographs."""

    def __init__(self, lang: ToyLanguage, seed: int, source: Lexicon | None = None):
        self.lang = lang
        rng = _rng("lexicon", lang.code, seed)
        used: set[str] = set()

        def fresh(key: tuple, n_min=1, n_max=3) -> str:
            if source is not None and rng.random() < lang.cognates:
                form = _mutate(rng, source.latin[key], lang.syllables)
            else:
                form = _word(rng, lang.syllables, n_min, n_max)
            while form in used:
                form = _word(rng, lang.syllables, n_min, n_max)
            used.add(form)
            return form

        self.latin: dict[tuple, str] = {}
        for kind, n, lo, hi in [("animate", N_ANIMATE, 2, 3), ("thing", N_THING, 2, 3), ("place", N_PLACE, 2, 3),
                                ("trans", N_TRANS, 1, 3), ("intrans", N_INTRANS, 1, 3), ("adj", N_ADJ, 1, 3),
                                ("adv", N_ADV, 2, 3), ("adp", N_ADP, 1, 1), ("numw", NUMBER_WORDS, 1, 2),
                                ("pron", 6, 1, 1), ("det", 3, 1, 1), ("cc", 1, 1, 1)]:
            for i in range(n):
                self.latin[(kind, i)] = fresh((kind, i), lo, hi)
        # Homographs: some verbs and adjectives share their form with a noun, so a tagger needs context.
        nouns = [("thing", i) for i in range(N_THING)] + [("animate", i) for i in range(N_ANIMATE)]
        hrng = _rng("homographs", lang.code, seed)
        for kind, n, share in [("trans", N_TRANS, 0.5), ("intrans", N_INTRANS, 0.5), ("adj", N_ADJ, 0.35)]:
            for i, noun in zip(hrng.sample(range(n), int(n * share)), hrng.sample(nouns, int(n * share)), strict=True):
                self.latin[(kind, i)] = self.latin[noun]
        # Function-word homographs, like English "that" (DET/PRON) or "up" (ADP/ADV).
        self.latin[("pron", 0)], self.latin[("pron", 1)] = self.latin[("det", 0)], self.latin[("det", 2)]
        for i in range(4):
            self.latin[("adv", i)] = self.latin[("adp", i)]
        # Names are shared anchors: the same string in every language, unless transliterated.
        nrng = _rng("names", seed)  # language independent
        for kind, n in [("first", N_FIRST), ("last", N_LAST), ("city", N_CITY), ("org", N_ORG)]:
            for i in range(n):
                self.latin[(kind, i)] = _word(nrng, ("bdfgklmnprstvz", "aeiou"), 2, 3).capitalize()
        arng = _rng("anchors", lang.code, seed)
        self.transliterate_name = {k: arng.random() >= lang.anchors
                                   for k in self.latin if k[0] in ("first", "last", "city", "org")}

    def form(self, key: tuple, suffix: str = "") -> str:
        """The written form of a concept, with an optional suffix, in the language's script."""
        word = self.latin[key] + suffix
        if self.lang.script == "latin" or (key in self.transliterate_name and not self.transliterate_name[key]):
            return word
        table = _SCRIPTS[self.lang.script]
        return "".join(table.get(c.lower(), c) for c in word)


def sample_meaning(rng: random.Random) -> dict:
    """A language-independent meaning: predicate, arguments, modifiers and named entities."""

    def np_(role: str) -> dict:
        r = rng.random()
        if role != "pp" and r < 0.15:
            return {"kind": "pron", "id": rng.randrange(6)}
        if r < 0.35:
            kind = {"subj": "per", "obj": rng.choice(["per", "org"]), "pp": rng.choice(["city", "city", "org"])}[role]
            return {"kind": "name", "type": kind, "first": rng.randrange(N_FIRST), "last": rng.randrange(N_LAST),
                    "has_last": rng.random() < 0.6, "city": rng.randrange(N_CITY), "org": rng.randrange(N_ORG),
                    "org2": rng.random() < 0.4}
        noun = ("animate", rng.randrange(N_ANIMATE)) if role == "subj" else (
            ("place", rng.randrange(N_PLACE)) if role == "pp" else ("thing", rng.randrange(N_THING)))
        if role == "obj" and rng.random() < 0.3:
            noun = ("animate", rng.randrange(N_ANIMATE))
        num = None
        if rng.random() < 0.2:
            num = ("digits", str(rng.randint(2, 999))) if rng.random() < 0.5 else ("numw", rng.randrange(NUMBER_WORDS))
        return {"kind": "noun", "noun": noun, "plural": num is not None or rng.random() < 0.25,
                "det": None if num else rng.choice([None, 0, 1, 2]),
                "adjs": rng.sample(range(N_ADJ), rng.choice([0, 0, 0, 1, 1, 2])), "num": num}

    transitive = rng.random() < 0.6
    m = {"verb": ("trans", rng.randrange(N_TRANS)) if transitive else ("intrans", rng.randrange(N_INTRANS)),
         "past": rng.random() < 0.4, "subj": np_("subj"), "obj": np_("obj") if transitive else None,
         "pp": (rng.randrange(N_ADP), np_("pp")) if rng.random() < 0.45 else None,
         "adv": rng.randrange(N_ADV) if rng.random() < 0.25 else None,
         "subj2": np_("obj") if rng.random() < 0.1 else None}
    return m


class _Builder:
    """Accumulates words with UPOS, heads, relations and NER tags."""

    def __init__(self):
        self.words: list[str] = []
        self.upos: list[str] = []
        self.head_ref: list = []  # head as an index into words, or None for root
        self.deprels: list[str] = []
        self.ner: list[str] = []

    def add(self, word, upos, head, deprel, ner="O") -> int:
        self.words.append(word), self.upos.append(upos), self.head_ref.append(head)
        self.deprels.append(deprel), self.ner.append(ner)
        return len(self.words) - 1


def _realise_np(lex: Lexicon, np: dict, role_case: str | None) -> list[tuple]:
    """An NP as a list of (word, upos, rel, ner, is_head) in surface order; heads resolved later."""
    L = lex.lang
    if np["kind"] == "pron":
        return [(lex.form(("pron", np["id"])), "PRON", None, "O", True)]
    if np["kind"] == "name":
        t = np["type"]
        if t == "per":
            toks = [lex.form(("first", np["first"]))] + ([lex.form(("last", np["last"]))] if np["has_last"] else [])
            ent = "PER"
        elif t == "city":
            toks, ent = [lex.form(("city", np["city"]))], "LOC"
        else:
            toks = [lex.form(("org", np["org"]))] + ([lex.form(("last", np["last"]))] if np["org2"] else [])
            ent = "ORG"
        return [(w, "PROPN", None if i == 0 else "flat", ("B-" if i == 0 else "I-") + ent, i == 0)
                for i, w in enumerate(toks)]
    suffix = ""
    if np["plural"] and "pl" in L.suffixes:
        suffix += L.suffixes["pl"]
    if role_case == "acc" and "acc" in L.suffixes:
        suffix += L.suffixes["acc"]
    noun = (lex.form(np["noun"], suffix), "NOUN", None, "O", True)
    adjs = [(lex.form(("adj", a)), "ADJ", "amod", "O", False) for a in np["adjs"]]
    pre = []
    if np["det"] is not None and L.articles:
        pre.append((lex.form(("det", np["det"])), "DET", "det", "O", False))
    if np["num"] is not None:
        kind, val = np["num"]
        pre.append((val if kind == "digits" else lex.form(("numw", val)), "NUM", "nummod", "O", False))
    return pre + ([noun] + adjs if L.adj_after_noun else adjs + [noun])


def realise(meaning: dict, lex: Lexicon, sent_id: str) -> Sentence:
    """Realise a meaning in one language, with its UPOS, dependency tree and NER tags."""
    L = lex.lang
    b = _Builder()
    verb_suffix = L.suffixes.get("past", "") if meaning["past"] else ""
    chunks: dict[str, list] = {}

    def np_chunk(np, case, rel):
        return {"items": _realise_np(lex, np, case), "rel": rel}

    chunks["S"] = np_chunk(meaning["subj"], None, "nsubj")
    if meaning["subj2"] is not None:
        chunks["S2"] = np_chunk(meaning["subj2"], None, "conj")
    chunks["V"] = {"items": [(lex.form(meaning["verb"], verb_suffix), "VERB", None, "O", True)], "rel": "root"}
    if meaning["obj"] is not None:
        chunks["O"] = np_chunk(meaning["obj"], "acc", "obj")
    if meaning["pp"] is not None:
        adp, np = meaning["pp"]
        items = _realise_np(lex, np, None)
        adp_item = (lex.form(("adp", adp)), "ADP", "case", "O", False)
        items = items + [adp_item] if L.postpositions else [adp_item] + items
        chunks["P"] = {"items": items, "rel": "obl"}
    if meaning["adv"] is not None:
        chunks["A"] = {"items": [(lex.form(("adv", meaning["adv"])), "ADV", "advmod", "O", True)], "rel": "advmod"}

    subj = ["S"] + (["S2"] if "S2" in chunks else [])
    rest = [k for k in ("O", "P") if k in chunks]
    if L.order == "SVO":
        order = subj + ["V"] + rest + (["A"] if "A" in chunks else [])
    elif L.order == "SOV":
        order = subj + (["A"] if "A" in chunks else []) + rest[::-1] + ["V"]
    else:  # VSO
        order = ["V"] + subj + rest + (["A"] if "A" in chunks else [])

    heads_of: dict[str, int] = {}
    pending = []  # (word index, chunk key, is_head, rel)
    for key in order:
        if key == "S2":  # the coordinator precedes the second conjunct
            cc = b.add(lex.form(("cc", 0)), "CCONJ", None, "cc")
            pending.append((cc, "S2", False, "cc"))
        for word, upos, rel, ner, is_head in chunks[key]["items"]:
            i = b.add(word, upos, None, rel or chunks[key]["rel"], ner)
            pending.append((i, key, is_head, rel))
            if is_head:
                heads_of[key] = i
    for i, key, is_head, _rel in pending:
        if is_head:
            b.head_ref[i] = {"V": None, "S2": heads_of["S"]}.get(key, heads_of["V"])
        else:
            b.head_ref[i] = heads_of[key]
    p = b.add(L.punct, "PUNCT", heads_of["V"], "punct")
    del p
    heads = [0 if h is None else h + 1 for h in b.head_ref]
    return Sentence(sent_id=sent_id, lang=L.code, words=b.words, upos=b.upos, heads=heads,
                    deprels=b.deprels, ner=b.ner)


@dataclass(frozen=True)
class ToyCorpusSpec:
    """Sizes and seed of a generated toy corpus (its hash names the cache folder)."""

    seed: int = 0
    n_pretrain: int = 12000  # monolingual sentences per language
    n_train: int = 3000
    n_dev: int = 400
    n_test: int = 600  # parallel
    languages: tuple[str, ...] = tuple(TOY_LANGUAGES)

    def key(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self),
                           "langs": [asdict(TOY_LANGUAGES[c]) for c in self.languages]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def lexicons(seed: int = 0, languages=tuple(TOY_LANGUAGES)) -> dict[str, Lexicon]:
    """The lexicon of every toy language (cognates are derived from the source, English)."""
    src = Lexicon(TOY_LANGUAGES["en"], seed)
    return {c: src if c == "en" else Lexicon(TOY_LANGUAGES[c], seed, source=src) for c in languages}


def generate(spec: ToyCorpusSpec) -> dict:
    """Generate every split in memory: {"pretrain"|"train"|"dev"|"test": {lang: [Sentence]}}."""
    lex = lexicons(spec.seed, spec.languages)
    out: dict[str, dict[str, list[Sentence]]] = {"pretrain": {}, "train": {}, "dev": {}, "test": {}}
    for lang in spec.languages:  # monolingual, non-parallel: a different meaning stream per language
        rng = _rng("pretrain", lang, spec.seed)
        out["pretrain"][lang] = [realise(sample_meaning(rng), lex[lang], f"{lang}-pre-{i}")
                                 for i in range(spec.n_pretrain)]
        for split, n in (("train", spec.n_train), ("dev", spec.n_dev)):
            rng = _rng(split, lang, spec.seed)
            out[split][lang] = [realise(sample_meaning(rng), lex[lang], f"{lang}-{split}-{i:05d}") for i in range(n)]
    rng = _rng("test", spec.seed)  # parallel: one meaning stream, realised in every language
    meanings = [sample_meaning(rng) for _ in range(spec.n_test)]
    for lang in spec.languages:
        out["test"][lang] = [realise(m, lex[lang], f"test-{i:05d}") for i, m in enumerate(meanings)]
    return out


SUMS = "SHA256SUMS.json"
"""The file in a written corpus that records the sha256 of every other file, taken when it was written."""


class CorruptToyCorpusWarning(UserWarning):
    """A cached toy corpus did not match the sha256 recorded when it was written: it was moved aside
    and written again (generation is deterministic, so the new copy is the same corpus)."""


def _pretrain_text(sentences: list[Sentence]) -> str:
    return "\n".join(" ".join(s.words) for s in sentences) + "\n"


def _corpus_texts(spec: ToyCorpusSpec) -> dict[str, bytes]:
    """Every file of the corpus as the writer writes it, in memory: {file name: bytes}."""
    data = generate(spec)
    out = {}
    for lang in spec.languages:
        out[f"{lang}-pretrain.txt"] = _pretrain_text(data["pretrain"][lang]).encode("utf-8")
        for split in ("train", "dev", "test"):
            out[f"{lang}-{split}.conllu"] = format_conllu(data[split][lang]).encode("utf-8")
            out[f"{lang}-{split}.iob2"] = format_iob2(data[split][lang]).encode("utf-8")
    return out


def write_toy_corpus(spec: ToyCorpusSpec = ToyCorpusSpec(), root: Path | None = None) -> Path:
    """Write the toy corpus as CoNLL-U + IOB2 (+ plain-text pretraining corpora); reuse it if present.

    The corpus is written into a new folder with an unpredictable name (never a planted one or a
    symlink), the sha256 of every file is recorded in ``SHA256SUMS.json``, and only then is the
    folder renamed to its key. Every read (`load_toy`, `pretraining_files`) checks the file it uses
    against that record; a corpus written by an older version, without the record, is checked once
    against a fresh generation (about 10 s) and its record added. A corpus that does not match (a
    file cut at a sentence boundary reads as a valid, shorter file) is moved aside
    (``<key>.corrupt-<time>-<pid>``) with a `CorruptToyCorpusWarning` and written again."""
    root = Path(root or cache_dir() / "toy-data" / spec.key())
    if (root / "DONE").is_file() and (root / SUMS).is_file():
        return root
    with folder_lock(root.parent):  # one writer (or repairer) at a time; readers never wait
        if (root / "DONE").is_file() and not (root / SUMS).is_file():
            texts = _corpus_texts(spec)  # written by an older version, which recorded no sha256
            sums = {name: hashlib.sha256(body).hexdigest() for name, body in texts.items()}
            bad = [name for name in sums if _sha256_or_none(root / name) != sums[name]]
            if not bad:
                write_atomic(root / SUMS, json.dumps(sums, indent=1, sort_keys=True) + "\n")
                return root
            _move_corpus_aside(root, f"{len(bad)} file(s) differ from a fresh generation, e.g. {bad[0]}")
        if (root / "DONE").is_file():
            return root
        if root.exists():  # a folder without DONE: not written by this function; never trusted
            _move_corpus_aside(root, "it has no DONE file")
        _write_corpus(spec, root)
    return root


def _write_corpus(spec: ToyCorpusSpec, root: Path) -> None:
    tmp = root.with_name(f".{root.name}.tmp-{secrets.token_hex(8)}")
    tmp.mkdir()  # fails on anything already there, a planted symlink included
    try:
        data = generate(spec)
        for lang in spec.languages:
            (tmp / f"{lang}-pretrain.txt").write_text(_pretrain_text(data["pretrain"][lang]), encoding="utf-8")
            for split in ("train", "dev", "test"):
                write_conllu(data[split][lang], tmp / f"{lang}-{split}.conllu")
                write_iob2(data[split][lang], tmp / f"{lang}-{split}.iob2")
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
        sums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.name != "spec.json"}
        (tmp / SUMS).write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
        (tmp / "DONE").write_text(spec.key())
        try:
            os.replace(tmp, root)
        except OSError:  # a writer that takes no lock (an older version) finished first
            if not (root / "DONE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _move_corpus_aside(root: Path, why: str) -> None:
    aside = corrupt_name(root)
    try:
        os.replace(root, aside)
    except FileNotFoundError:  # another process moved it first
        return
    warnings.warn(f"toy corpus {root}: {why}; moved aside to {aside.name} and written again",
                  CorruptToyCorpusWarning, stacklevel=4)


def _verified(spec: ToyCorpusSpec, name: str) -> Path:
    """``<corpus>/<name>``, checked against the sha256 recorded when the corpus was written; a corpus
    that does not match is moved aside and written again (once: a second mismatch is an error)."""
    for attempt in range(2):
        root = write_toy_corpus(spec)
        try:
            want = json.loads((root / SUMS).read_text(encoding="utf-8")).get(name)
        except (OSError, ValueError):
            want = None
        got = _sha256_or_none(root / name)
        if want is not None and got == want:
            return root / name
        if attempt:
            break
        with folder_lock(root.parent):
            if _sha256_or_none(root / name) == got:  # still the copy checked above: not repaired meanwhile
                what = "is missing" if got is None else f"has sha256 {got}, {want} was recorded when it was written"
                _move_corpus_aside(root, f"{name} {what}")
    raise RuntimeError(f"toy corpus {root}: {name} does not match its recorded sha256 even after writing it again")


def load_toy(lang: str, split: str, task: str = "pos", spec: ToyCorpusSpec = ToyCorpusSpec()) -> list[Sentence]:
    """Read one toy split back through the same readers as real data (CoNLL-U, or IOB2 for NER),
    from a file checked against the sha256 recorded when the corpus was written."""
    if lang not in TOY_LANGUAGES:
        raise ValueError(f"unknown toy language {lang!r}; valid languages: {', '.join(TOY_LANGUAGES)}")
    if split not in ("train", "dev", "test"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, dev, test")
    if task == "ner":
        return read_iob2(_verified(spec, f"{lang}-{split}.iob2"), lang)
    return read_conllu(_verified(spec, f"{lang}-{split}.conllu"), lang)


def pretraining_files(spec: ToyCorpusSpec = ToyCorpusSpec()) -> dict[str, Path]:
    """The monolingual plain-text pretraining corpus of each toy language (each file checked)."""
    return {lang: _verified(spec, f"{lang}-pretrain.txt") for lang in spec.languages}
