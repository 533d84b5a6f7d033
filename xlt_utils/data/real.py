"""Real data: UD treebanks (POS, parsing) and NER (Universal NER or WikiANN) as `Sentence` records.

UD and UNER files go through `xlt_utils.data.download.fetch` (checksums, cache, XLT_DATA_DIR,
offline mode). WikiANN, the NER source of every language in the real profiles (as in the paper and
XTREME; UNER is an option), comes from the Hugging Face Hub (``unimelb-nlp/wikiann``, Parquet) via
`datasets.load_dataset`; with ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``/``XLT_OFFLINE`` set it
only reads the local datasets cache and fails within seconds when the data is not there. A local
copy of the Parquet files is read first when there is one:
``$XLT_DATA_DIR/wikiann/<lang>/<split>*.parquet`` (split = train, validation or test, as on the Hub).

The test split of every language is its PUD treebank (parallel across languages); UNER's test
split is its PUD file too. The registry in `xlt_utils.languages` documents every choice.

Language codes, treebanks, splits and NER sources are checked before any path is built from them:
a code is lowercase ASCII letters with optional ``-`` parts (``de``, ``zh-yue``, as WikiANN names
its 176 languages), so that ``../../outside`` or an absolute path never reaches a file name.
"""

from __future__ import annotations

import contextlib
import re

from .. import settings
from ..languages import NER_SOURCES, PUD_TREEBANKS, REAL_LANGUAGES, get_language, pud_file, ud_name
from .conllu_io import read_conllu
from .download import FetchError, OfflineError, fetch_read, hub_offline, offline_reason
from .iob2 import read_iob2, repair_iob2, validate_tags
from .records import Sentence

SPLITS = ("train", "dev", "test")
WIKIANN_DATASET = "unimelb-nlp/wikiann"
_WIKIANN_SPLIT = {"train": "train", "dev": "validation", "test": "test"}

UNER_FILES: dict[str, dict[str, str]] = {
    "en": {
        "train": "uner/UNER_English-EWT/en_ewt-ud-train.iob2",
        "dev": "uner/UNER_English-EWT/en_ewt-ud-dev.iob2",
        "test": "uner/UNER_English-PUD/en_pud-ud-test.iob2",
    },
    **{
        code: {"test": f"uner/UNER_{REAL_LANGUAGES[code].name}-PUD/{code}_pud-ud-test.iob2"}
        for code in ("de", "pt", "ru", "sv", "zh")
    },
}
"""Universal NER files per language and split (only English has train/dev)."""

_TOY_HINT = "The `toy` profile needs no downloads and works offline."


_LANG_CODE = re.compile(r"[a-z]{2,8}(?:-[a-z]{1,8})*")
_TREEBANK = re.compile(r"UD_[A-Za-z_]+-[A-Za-z0-9]+")


def _check_split(split: str) -> None:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def check_lang_code(lang) -> str:
    """`lang` if it is a language code (lowercase ASCII letters, optional ``-`` parts: ``de``,
    ``zh-yue``), else a ValueError: no path separator, dot or other character can reach a file name."""
    if not isinstance(lang, str) or not _LANG_CODE.fullmatch(lang):
        raise ValueError(f"invalid language code {lang!r}: a code is lowercase letters with optional '-' parts "
                         f"(e.g. 'de', 'zh-yue'); the registry's codes: {', '.join(REAL_LANGUAGES)}")
    return lang


def ud_file_name(lang: str, split: str, treebank: str | None = None) -> str:
    """The manifest name of the UD file that `load_ud` reads."""
    _check_split(split)
    check_lang_code(lang)
    if treebank is not None:
        if not isinstance(treebank, str) or not _TREEBANK.fullmatch(treebank):
            raise ValueError(f"invalid treebank {treebank!r}: a UD repository name such as 'UD_English-EWT'")
        return ud_name(treebank, f"{lang}_{treebank.split('-', 1)[-1].lower()}", split)
    if lang not in REAL_LANGUAGES and lang in PUD_TREEBANKS:  # Icelandic and Galician: PUD only
        if split == "test":
            return pud_file(lang)
        raise ValueError(
            f"{lang!r} is a PUD language with only a test split here ({PUD_TREEBANKS[lang]}); no {split} "
            f"split is registered for it. Pass treebank='UD_...' for another treebank, or use a language "
            f"with train/dev splits: {', '.join(REAL_LANGUAGES)}"
        )
    return get_language(lang).ud_file(split)


def load_ud(lang: str, split: str, *, treebank: str | None = None, errors: str = "raise") -> list[Sentence]:
    """UD sentences of `lang`: train/dev from its registry treebank, test from its PUD treebank.

    `treebank` (e.g. ``"UD_English-EWT"``) reads that treebank's split instead, if the manifest
    lists it. `errors`: ``"raise"`` or ``"skip"``, as in `read_conllu`.
    """
    name = ud_file_name(lang, split, treebank)
    return _named(fetch_read(name, lambda path: read_conllu(path, lang, errors=errors)), name)


def _named(sentences: list[Sentence], name: str) -> list[Sentence]:
    """Record each sentence's file (its manifest name), so that errors name the file and sent_id."""
    for s in sentences:
        s.meta["file"] = name
    return sentences


def load_ner(lang: str, split: str, *, source: str | None = None, errors: str = "raise") -> list[Sentence]:
    """NER sentences of `lang` with validated IOB2 tags (PER/ORG/LOC).

    `source` defaults to the registry's ``ner_source``, "wikiann" (``unimelb-nlp/wikiann``) for
    every language; "uner" (Universal NER files) is the option for en, de, pt, ru, sv and zh.
    `errors` (``"raise"`` or ``"skip"``) applies to UNER files, as in `read_iob2`.
    """
    _check_split(split)
    check_lang_code(lang)
    source = get_language(lang).ner_source if source is None else source
    if not isinstance(source, str) or source not in NER_SOURCES:
        raise ValueError(f"unknown NER source {source!r}; valid sources: {', '.join(NER_SOURCES)}")
    if source == "uner":
        files = UNER_FILES.get(lang, {})
        if split not in files:
            have = ", ".join(files) or "none"
            raise ValueError(
                f"Universal NER has no {split} split for {lang!r} (available: {have}); "
                f"use source='wikiann'"
            )
        return _named(fetch_read(files[split], lambda path: read_iob2(path, lang, errors=errors)), files[split])
    if source == "wikiann":
        return load_wikiann(lang, split)
    raise ValueError(f"unknown NER source {source!r}; valid sources: uner, wikiann")


def load_task(lang: str, task: str, split: str, ner_source: str | None = None) -> list[Sentence]:
    """Sentences of `lang` for a task: UD for "pos" and "parse", `ner_source` (default WikiANN) for "ner"."""
    if task in ("pos", "parse"):
        return load_ud(lang, split)
    if task == "ner":
        return load_ner(lang, split, source=ner_source)
    raise ValueError(f"unknown task {task!r}; valid tasks: pos, ner, parse")


def _hf_offline_reason() -> str | None:
    reason = offline_reason()
    if reason:
        return reason
    return settings.current().datasets_offline




def load_wikiann(lang: str, split: str, *, cache_dir: str | None = None) -> list[Sentence]:
    """WikiANN (Rahimi et al. 2019 splits) for `lang`, tag ids mapped to names by the dataset features.

    `cache_dir` is passed to `datasets.load_dataset` (default: the Hugging Face datasets cache).
    """
    _check_split(split)
    check_lang_code(lang)
    import datasets

    hf_split = _WIKIANN_SPLIT[split]
    local = local_wikiann_files(lang, hf_split)
    if local:
        ds = datasets.load_dataset("parquet", data_files={hf_split: [str(p) for p in local]}, split=hf_split,
                                   cache_dir=cache_dir)
        return _named(wikiann_to_sentences(ds, lang, split), f"{local[0].parent}/{hf_split}*.parquet")
    reason = _hf_offline_reason()
    try:
        with hub_offline() if reason else contextlib.nullcontext():  # `datasets` is imported above
            ds = datasets.load_dataset(WIKIANN_DATASET, lang, split=hf_split, cache_dir=cache_dir)
    except Exception as e:
        how = (
            f"run `datasets.load_dataset({WIKIANN_DATASET!r}, {lang!r})` once with network access "
            "(it fills the Hugging Face datasets cache), then offline mode can read it"
        )
        if reason:
            raise OfflineError(
                f"WikiANN {lang!r} ({hf_split}) is not in the local datasets cache and offline mode "
                f"is on ({reason}). To use it, {how}. {_TOY_HINT}"
            ) from e
        raise FetchError(
            f"could not load WikiANN {lang!r} ({hf_split}) from the Hugging Face Hub: "
            f"{type(e).__name__}: {e}. {_TOY_HINT}"
        ) from e
    return wikiann_to_sentences(ds, lang, split)


#: WikiANN's tag ids, as its ClassLabel feature names them (used for Parquet files without that feature).
WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def local_wikiann_files(lang: str, hf_split: str) -> list:
    """Local WikiANN Parquet files, ``$XLT_DATA_DIR/wikiann/<lang>/<hf_split>*.parquet`` (sorted), if any."""

    check_lang_code(lang)
    if hf_split not in _WIKIANN_SPLIT.values():
        raise ValueError(f"unknown WikiANN split {hf_split!r}; valid: {', '.join(_WIKIANN_SPLIT.values())}")
    root = settings.current().data_dir
    if root is None:
        return []
    return sorted((root / "wikiann" / lang).glob(f"{hf_split}*.parquet"))


def wikiann_to_sentences(ds, lang: str, split: str) -> list[Sentence]:
    """Convert WikiANN rows (``tokens``, integer ``ner_tags``) to `Sentence` records.

    Tag ids are named by the dataset's ClassLabel feature, or by `WIKIANN_TAGS` where the rows
    carry plain integers (a Parquet file written without the Hugging Face features).
    """
    feature = getattr(ds.features["ner_tags"], "feature", None)
    names = feature.names if hasattr(feature, "names") else list(WIKIANN_TAGS)
    out = []
    for i, row in enumerate(ds):
        bad = [t for t in row["ner_tags"] if not 0 <= t < len(names)]
        if bad:
            raise ValueError(f"WikiANN {lang}/{split} row {i}: tag ids {bad} out of range; valid: 0-{len(names) - 1} "
                             f"({', '.join(names)})")
        tags = [names[t] for t in row["ner_tags"]]
        validate_tags(tags, where=f"WikiANN {lang}/{split} row {i}: ")
        tags, _ = repair_iob2(tags)  # the one IOB2 policy: a stray I-X is read as B-X
        out.append(
            Sentence(
                sent_id=f"wikiann-{lang}-{split}-{i}",
                lang=lang,
                words=list(row["tokens"]),
                ner=tags,
                meta={"source": "wikiann"},
            )
        )
    return out
