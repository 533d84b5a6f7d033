"""The three profiles (toy, quick, full): model, languages, sizes and seeds in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .data.synthetic import TOY_LANGUAGES
from .languages import REAL_LANGUAGES

TASKS = ("pos", "ner", "parse")
DATA_SOURCES = ("synthetic", "real")
#: The source splits fine-tuning may read (`Profile.train_split`); the test split is what is evaluated.
TRAIN_SPLITS = ("train", "dev")


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs besides its `parameters` cell: plain values (what the model is,
    how deep, is read where the model is: `pretrained.num_layers(profile)`).

    Any field can be overridden: ``get_profile("quick", model="/path/to/dir", n_train=64)``, or in a
    chapter through its `profile_overrides` papermill parameter (a dict of these fields; lists are
    read as tuples). Every override reaches training, evaluation and CKA, and the cache key.

    `train_split` is the source-language split that fine-tuning reads: ``"train"`` (the default), or
    ``"dev"`` as a documented local-data override where the train file is not at hand (for example
    ``../shared/data`` holds UD_English-EWT and UNER English-EWT dev and test, but not train). The
    test split is always the one evaluated. A config made with ``"dev"`` has its own cache key.
    """

    name: str
    model: str  # "toy" (this repository's tiny multilingual BERT), a hub id, or a local model directory
    source: str
    targets: tuple[str, ...]
    tasks: tuple[str, ...] = TASKS
    n_train: int | None = None  # source training sentences (None: all)
    n_eval: int | None = None  # evaluation sentences per language (None: all)
    n_cka: int = 500  # parallel sentences for CKA
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float | None = None  # learning rate of the task head (None: same as lr)
    warmup: float = 0.1
    seeds: tuple[int, ...] = (1, 2, 3)
    max_length: int = 256
    needs_network: bool = False
    ner_source: str = "wikiann"  # real profiles: one NER source for every language ("wikiann", or "uner")
    runtime: dict = field(default_factory=dict)  # rough runtimes per device, for the notebooks
    revision: str | None = None  # the model's hub revision (a tag, branch or commit), if pinned
    data: str = "synthetic"  # "synthetic" (the toy languages) or "real" (UD, NER and PUD files)
    train_split: str = "train"  # the source split fine-tuning reads: "train", or "dev" (see the docstring)

    @property
    def languages(self) -> tuple[str, ...]:
        """Source first, then the targets."""
        return (self.source,) + self.targets

    def with_(self, **changes) -> Profile:
        """A copy with some fields changed (the notebooks' `parameters` cell overrides); None leaves
        a field as it is, a list given for a tuple field (JSON, papermill) becomes a tuple."""
        valid = [f.name for f in fields(self)]
        unknown = [k for k in changes if k not in valid]
        if unknown:
            raise ValueError(f"unknown profile field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        changes = {k: tuple(v) if isinstance(v, list) and isinstance(getattr(self, k), tuple) else v
                   for k, v in changes.items() if v is not None}
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "toy": Profile(
        name="toy", model="toy", source="en", targets=("fr", "de", "ru", "tr", "ja", "ar"),
        n_train=2000, n_eval=300, n_cka=300, epochs=2, batch_size=32, lr=3e-4, head_lr=1e-3,
        seeds=(1, 2, 3), max_length=128,
        runtime={"cpu": "seconds per fine-tuning", "gpu": "seconds"},
    ),
    "quick": Profile(
        name="quick", model="bert-base-multilingual-cased", source="en",
        targets=("fr", "de", "ru", "tr", "ja", "ar", "zh", "fi"),
        n_train=2000, n_eval=500, n_cka=500, epochs=2, batch_size=32, lr=5e-5, head_lr=1e-3,
        seeds=(1,), max_length=256, needs_network=True, data="real",
        runtime={"cpu": "hours to 2 days per chapter", "gpu": "minutes (T4)"},  # xlt_utils.budget, README
    ),
    "full": Profile(
        name="full", model="bert-base-multilingual-cased", source="en",
        targets=("fr", "de", "ru", "tr", "id", "ar", "pt", "es", "fi", "it", "sv", "cs", "pl", "hi",
                 "zh", "ko", "ja", "th"),
        n_train=None, n_eval=None, n_cka=1000, epochs=3, batch_size=32, lr=5e-5, head_lr=1e-3,
        seeds=(1, 2, 3, 4, 5), max_length=256, needs_network=True, data="real",
        runtime={"cpu": "days to months (not advised)", "gpu": "minutes to a day per chapter (T4)"},
    ),
}


def get_profile(name: str | Profile = "toy", **overrides) -> Profile:
    """Look a profile up by name (raises listing the valid names) and apply overrides."""
    if isinstance(name, Profile):
        profile = name.with_(**overrides)
    elif name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    else:
        profile = PROFILES[name].with_(**overrides)
    if profile.data not in DATA_SOURCES:
        raise ValueError(f"unknown data source {profile.data!r}; valid: {', '.join(DATA_SOURCES)}")
    check_train_split(profile.train_split)
    check_languages(profile, profile.languages)
    for t in profile.tasks:
        check_task(t)
    return profile


def require_profile(profile) -> Profile:
    """`profile` itself if it is a Profile; a name or anything else is a TypeError that says where to
    resolve it: once, where a chapter or a program starts (``get_profile(name)``)."""
    if not isinstance(profile, Profile):
        raise TypeError(f"pass a Profile (get_profile({profile!r})), not a {type(profile).__name__}: the "
                        "profile is resolved once, where the chapter or the program starts")
    return profile


def valid_languages(profile: Profile) -> tuple[str, ...]:
    """The language codes a profile can use: the synthetic ones for toy, the registry's otherwise."""
    return tuple(TOY_LANGUAGES) if profile.data == "synthetic" else tuple(REAL_LANGUAGES)


def check_languages(profile: Profile, languages) -> list[str]:
    """Raise a ValueError that lists the valid codes if any language is unknown to the profile."""
    valid = valid_languages(profile)
    bad = [lang for lang in languages if lang not in valid]
    if bad:
        raise ValueError(
            f"unknown language(s) {', '.join(map(repr, bad))} for profile {profile.name!r}; "
            f"valid languages: {', '.join(valid)}")
    return list(languages)


def check_train_split(split: str) -> str:
    """Raise a ValueError listing the valid training splits if `split` is not one of them."""
    if split not in TRAIN_SPLITS:
        raise ValueError(f"train_split must be one of {', '.join(TRAIN_SPLITS)} (the test split is the one "
                         f"evaluated), got {split!r}")
    return split


def check_task(task: str) -> str:
    """Raise a ValueError listing the valid tasks if `task` is unknown."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task
