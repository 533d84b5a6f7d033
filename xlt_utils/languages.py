"""The real-language registry: English (source) and the 18 PUD target languages.

Universal Dependencies release
------------------------------
All UD files are pinned to the release tag ``r2.17`` (UD v2.17, released 2025-11-15), the
latest release when this registry was written. Every UD treebank repository carries the tag
``r<version>``, so a file is addressed as
``https://raw.githubusercontent.com/UniversalDependencies/<treebank>/r2.17/<file>``
(see ``xlt_utils/data/manifest.json``). Reasons for 2.17 rather than an older release:
the third-party copies used as test fixtures (``shared/data/ud``) are master-branch files whose
README changelogs already contain v2.17 entries, and ``UD_Thai-TUD`` (the only Thai treebank
with a training split) is first released in v2.17.

Treebank choices (train/dev)
----------------------------
Where a language has several UD treebanks with train and dev splits, the well-known one whose
licence allows any use (CC BY / CC BY-SA) is chosen. Four languages have no such treebank;
their NC-licensed standard treebank is used and `ud_license` says so:

===== ======================== ================== =============================================
code  train/dev treebank       licence            note
===== ======================== ================== =============================================
en    UD_English-EWT           CC BY-SA 4.0
fr    UD_French-GSD            CC BY-SA 4.0
de    UD_German-GSD            CC BY-SA 4.0       HDT is larger but its train file is split
ru    UD_Russian-GSD           CC BY-SA 4.0       SynTagRus's train file is split in three
tr    UD_Turkish-BOUN          CC BY-SA 4.0       IMST (the older default) is CC BY-NC-SA
id    UD_Indonesian-GSD        CC BY-SA 4.0
ar    UD_Arabic-PADT           CC BY-NC-SA 3.0    only Arabic treebank with text and a train split
pt    UD_Portuguese-Bosque     CC BY-SA 4.0
es    UD_Spanish-AnCora        CC BY 4.0
fi    UD_Finnish-TDT           CC BY-SA 4.0
it    UD_Italian-ISDT          CC BY-NC-SA 3.0    every Italian train treebank (VIT, ParTUT, ...) is NC
sv    UD_Swedish-Talbanken     CC BY-SA 4.0
cs    UD_Czech-CAC             CC BY-SA 4.0       PDT (the default) is CC BY-NC-SA
pl    UD_Polish-LFG            CC BY-SA 4.0       PDB (larger) is CC BY-NC-SA
hi    UD_Hindi-HDTB            CC BY-NC-SA 4.0    only Hindi treebank with a train split
zh    UD_Chinese-GSD           CC BY-SA 4.0       traditional characters, like Chinese-PUD
ko    UD_Korean-GSD            CC BY-SA 4.0
ja    UD_Japanese-GSD          CC BY-SA 4.0
th    UD_Thai-TUD              CC BY-SA 4.0       new in v2.17
===== ======================== ================== =============================================

The test split of every language is its PUD treebank (CC BY-SA 3.0 or 4.0): 1000 sentences,
translations of the same source sentences, aligned by ``sent_id`` (see `xlt_utils.data.pud`).

NER
---
One NER source per profile, so that annotation scheme and domain are not confounded with language:
``ner_source == "wikiann"`` (``unimelb-nlp/wikiann`` on the Hugging Face Hub, Rahimi et al. 2019
splits) for every language, as in the paper and XTREME (PAN-X). Universal NER is an option
(``source="uner"`` in `xlt_utils.data.real.load_ner`, ``ner_source="uner"`` in a profile) for the
six languages that have a UNER PUD file (``has_uner``: en, de, pt, ru, sv, zh); it has train/dev/test
for English (EWT) but only a test split (PUD) for the others.
"""

from __future__ import annotations

from dataclasses import dataclass

NER_SOURCES = ("wikiann", "uner")
"""The NER sources: WikiANN (every language; the default) and Universal NER (an option)."""

UD_RELEASE = "r2.17"
"""The UniversalDependencies git tag that every UD file of the manifest is pinned to."""

UD_RELEASE_DATE = "2025-11-15"


@dataclass(frozen=True)
class Language:
    """One real language of the experiments, with where its data comes from."""

    code: str  # ISO 639-1
    name: str
    family: str  # top-level language family
    genus: str  # sub-family used when grouping results
    script: str
    ud_treebank: str | None  # UD repository for train/dev, e.g. "UD_French-GSD"
    ud_prefix: str | None  # file prefix inside it, e.g. "fr_gsd"
    ud_license: str | None
    pud_treebank: str  # e.g. "UD_French-PUD"
    ner_source: str  # the default NER source: "wikiann" for every language
    has_uner: bool = False  # a Universal NER PUD file exists (the "uner" option)
    is_source: bool = False

    @property
    def pud_prefix(self) -> str:
        return f"{self.code}_pud"

    def ud_file(self, split: str) -> str:
        """Manifest name of this language's UD file for `split` (train, dev or test=PUD)."""
        if split == "test":
            return ud_name(self.pud_treebank, self.pud_prefix, "test")
        if split not in ("train", "dev"):
            raise ValueError(f"unknown split {split!r}; valid splits: train, dev, test")
        if self.ud_treebank is None:
            raise ValueError(f"{self.name} ({self.code}) has no UD treebank with a {split} split")
        return ud_name(self.ud_treebank, self.ud_prefix, split)


def ud_name(treebank: str, prefix: str, split: str) -> str:
    """The manifest's logical name of a UD file, e.g. ``ud/UD_French-GSD/fr_gsd-ud-train.conllu``."""
    return f"ud/{treebank}/{prefix}-ud-{split}.conllu"


def _lang(code, name, family, genus, script, tb, license_, uner=False, source=False):
    prefix = None if tb is None else f"{code}_{tb.split('-', 1)[1].lower()}"
    return Language(
        code=code,
        name=name,
        family=family,
        genus=genus,
        script=script,
        ud_treebank=tb,
        ud_prefix=prefix,
        ud_license=license_,
        pud_treebank=f"UD_{name}-PUD",
        ner_source="wikiann",
        has_uner=uner,
        is_source=source,
    )


# fmt: off
_ALL = [
    _lang("en", "English", "Indo-European", "Germanic", "Latin", "UD_English-EWT", "CC BY-SA 4.0", True, True),
    _lang("fr", "French", "Indo-European", "Romance", "Latin", "UD_French-GSD", "CC BY-SA 4.0"),
    _lang("de", "German", "Indo-European", "Germanic", "Latin", "UD_German-GSD", "CC BY-SA 4.0", True),
    _lang("ru", "Russian", "Indo-European", "Slavic", "Cyrillic", "UD_Russian-GSD", "CC BY-SA 4.0", True),
    _lang("tr", "Turkish", "Turkic", "Turkic", "Latin", "UD_Turkish-BOUN", "CC BY-SA 4.0"),
    _lang("id", "Indonesian", "Austronesian", "Malayo-Polynesian", "Latin", "UD_Indonesian-GSD", "CC BY-SA 4.0"),
    _lang("ar", "Arabic", "Afro-Asiatic", "Semitic", "Arabic", "UD_Arabic-PADT", "CC BY-NC-SA 3.0"),
    _lang("pt", "Portuguese", "Indo-European", "Romance", "Latin", "UD_Portuguese-Bosque", "CC BY-SA 4.0", True),
    _lang("es", "Spanish", "Indo-European", "Romance", "Latin", "UD_Spanish-AnCora", "CC BY 4.0"),
    _lang("fi", "Finnish", "Uralic", "Finnic", "Latin", "UD_Finnish-TDT", "CC BY-SA 4.0"),
    _lang("it", "Italian", "Indo-European", "Romance", "Latin", "UD_Italian-ISDT", "CC BY-NC-SA 3.0"),
    _lang("sv", "Swedish", "Indo-European", "Germanic", "Latin", "UD_Swedish-Talbanken", "CC BY-SA 4.0", True),
    _lang("cs", "Czech", "Indo-European", "Slavic", "Latin", "UD_Czech-CAC", "CC BY-SA 4.0"),
    _lang("pl", "Polish", "Indo-European", "Slavic", "Latin", "UD_Polish-LFG", "CC BY-SA 4.0"),
    _lang("hi", "Hindi", "Indo-European", "Indo-Aryan", "Devanagari", "UD_Hindi-HDTB", "CC BY-NC-SA 4.0"),
    _lang("zh", "Chinese", "Sino-Tibetan", "Sinitic", "Han (traditional)", "UD_Chinese-GSD", "CC BY-SA 4.0", True),
    _lang("ko", "Korean", "Koreanic", "Korean", "Hangul", "UD_Korean-GSD", "CC BY-SA 4.0"),
    _lang("ja", "Japanese", "Japonic", "Japanese", "Kanji and kana", "UD_Japanese-GSD", "CC BY-SA 4.0"),
    _lang("th", "Thai", "Kra-Dai", "Tai", "Thai", "UD_Thai-TUD", "CC BY-SA 4.0"),
]
# fmt: on

REAL_LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _ALL}
"""English first, then the 18 targets in the order of the paper's tables."""

SOURCE_LANGUAGE = "en"
TARGET_LANGUAGES: tuple[str, ...] = tuple(c for c in REAL_LANGUAGES if c != SOURCE_LANGUAGE)

PUD_TREEBANKS: dict[str, str] = {
    **{code: lang.pud_treebank for code, lang in REAL_LANGUAGES.items()},
    "is": "UD_Icelandic-PUD",
    "gl": "UD_Galician-PUD",
}
"""All 21 UD PUD treebanks (the 19 languages above plus Icelandic and Galician)."""


def pud_file(code: str) -> str:
    """Manifest name of the PUD test file of `code` (any of the 21 PUD languages)."""
    if code not in PUD_TREEBANKS:
        raise ValueError(
            f"no PUD treebank for {code!r}; valid codes: {', '.join(sorted(PUD_TREEBANKS))}"
        )
    return ud_name(PUD_TREEBANKS[code], f"{code}_pud", "test")


def get_language(code: str) -> Language:
    """The registry entry for `code`; a ValueError lists the valid codes for an unknown one."""
    try:
        return REAL_LANGUAGES[code]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown language code {code!r}; valid codes: {', '.join(REAL_LANGUAGES)}"
        ) from None
