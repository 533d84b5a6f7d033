"""xlt_utils: the package behind the xlt notebooks (First Align, then Predict)."""

__version__ = "0.2.0"

#: The public repository: the "Open in Colab" badges, the Colab install cell and the book's launch
#: buttons are all built from this one value (and pyproject.toml's [project.urls], which a test
#: keeps equal to it). A fork changes it here and runs `python -m xlt_utils.nbtools badges`.
REPOSITORY = "xlt-tutorial/xlt"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
BRANCH = "main"  # where the badges open the chapters, and what a development version installs


def release_ref(version: str | None = None) -> str:
    """The git ref a chapter's Colab install cell installs: the release tag ``v<version>`` for a
    release, the branch for a development version (``0.3.0.dev0``, ``0.2.0+local``)."""
    version = __version__ if version is None else version
    return BRANCH if any(mark in version for mark in ("dev", "+", "a", "b", "rc")) else f"v{version}"


# ------------------------------------------------------------------------------------------ the surface
#
# `import xlt_utils as xlt` gives a chapter every name it uses, d2l-style: `xlt.get_profile`,
# `xlt.run_experiment`, `xlt.cka`, ... Each name lives in the module named for its concept (the
# table below says which); the package imports that module the first time the name is used, so
# `import xlt_utils` itself stays light (the Colab install cell, `nbtools`, `settings`).
_SURFACE = {
    "chapter": ("setup_chapter", "describe_device"),
    "profiles": ("PROFILES", "Profile", "get_profile"),
    "settings": ("Settings",),
    "ablation": ("Ablation", "REFERENCE", "RANDOM_INIT", "format_layers", "freeze_halves",
                 "freeze_layers", "reinit_layers", "lower_upper"),
    "experiments": ("experiment_config", "run_experiment", "build_model", "load_finetuned", "load_split",
                    "records_table"),
    "models": ("model_device",),
    "sweep": ("expand_grid", "run_grid"),
    "budget": ("print_estimate",),
    "batching": ("collate", "make_examples"),
    "tokenization": ("encode_words", "subword_types", "tokenization_stats"),
    "training": ("TrainConfig", "make_optimizer", "task_loss", "fine_tune"),
    "evaluation": ("zero_shot_eval", "mean_pooled_states"),
    "pretrained": ("load_encoder", "model_path", "num_layers"),
    "pretraining": ("PretrainRecipe", "masked_word_accuracy"),
    "similarity": ("cka", "cka_per_layer"),
    "analysis": ("MAIN_METRIC", "ablation_deltas", "mean_std_table", "per_seed_scores"),
    "verdicts": ("c5_power", "change_evidence", "similarity_evidence", "similarity_transfer_correlation",
                 "verdict_c1_c2", "verdict_c3", "verdict_c4", "verdict_c5", "MissingRuns", "cka_curves",
                 "en_x_curves", "evidence_table", "local_states", "paper_map", "parallel_sentences",
                 "reference_scores", "reinit_verdicts", "replication_table", "sentence_lengths",
                 "similarity_verdicts", "verdicts"),
    "plotting": ("COLUMN_WIDTH_IN", "column_subplots", "plot_cka_heatmap", "plot_deltas"),
    "widgets": ("cka_explorer", "reinit_explorer"),
    "nbtools": ("glue",),
    "data.synthetic": ("TOY_LANGUAGES", "typological_distance"),
}
_HOME = {name: module for module, names in _SURFACE.items() for name in names}
_MODULES = ("ablation", "analysis", "batching", "budget", "chapter", "colab", "evaluation",
            "experiments", "languages", "metrics", "models", "nbtools", "parsing", "plotting", "precision",
            "pretrained", "pretraining", "profiles", "settings", "similarity", "standin", "store", "sweep",
            "tokenization", "training", "verdicts", "widgets", "files", "data")
__all__ = sorted(_HOME)


def __getattr__(name: str):
    import importlib

    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_MODULES})
