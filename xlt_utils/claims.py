"""All five claims from one call: the verdicts that chapters 3 and 4 reach step by step, and the
tables that open chapter 0 and the book (what replicates; where each part of the paper is rebuilt).

`verdicts(P)` computes, for a profile:

- C1 and C2 for every task, from the reference runs and the Reinit of the lower and the upper pair,
  over the profile's seeds (the records of chapter 3's grid; in the toy profile they ship with the
  package, so nothing trains);
- C3 from the English–X CKA per layer of the pretrained model on parallel test sentences;
- C4 from the CKA between the pretrained and the fine-tuned model, layer by layer, for one task
  (that model is trained once and cached, the same one chapters 2 and 4 use);
- C5 for every task, from the English–X CKA and the reference scores averaged over seeds.

Chapter 3 computes C1 and C2 cell by cell; chapter 4 computes C3–C5 cell by cell and checks that
`similarity_verdicts` gives the same verdicts from its states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .ablation import REFERENCE, Ablation
from .analysis import (
    MAIN_METRIC,
    Verdict,
    ablation_deltas,
    per_seed_scores,
    similarity_transfer_correlation,
    verdict_c1_c2,
    verdict_c3,
    verdict_c4,
    verdict_c5,
)
from .profiles import Profile, get_profile
from .sweep import expand_grid, run_grid

__all__ = ["MissingRuns", "CLAIMS", "PAPER", "PAPER_MAP", "parallel_states", "cka_curves", "en_x_curves",
           "reference_scores", "reinit_verdicts", "similarity_verdicts", "verdicts",
           "replication_table", "paper_map"]

#: The claims, as the chapters state them.
CLAIMS = {
    "C1": "Re-initialising the lower layers hurts the target languages much more than the source language.",
    "C2": "Re-initialising the upper layers barely hurts either.",
    "C3": "English–X similarity (CKA) per layer rises through the lower layers, then falls.",
    "C4": "Fine-tuning changes the upper layers far more than the lower ones.",
    "C5": "Cross-lingual similarity correlates with transfer performance across languages.",
}

#: How the paper supports each claim with mBERT (its experiment, in words: the chapters name the
#: experiment rather than a table or figure number).
PAPER = {
    "C1": "RANDOM-INIT of the first layers, source vs targets, POS, NER and parsing",
    "C2": "RANDOM-INIT of the last layers, source vs targets, POS, NER and parsing",
    "C3": "English–X CKA of the pretrained model per layer",
    "C4": "CKA between the pretrained and the fine-tuned model per layer",
    "C5": "cross-lingual similarity against zero-shot scores across languages",
}

#: Where each part of the paper is rebuilt: (chapter, the start of a section heading of that
#: chapter, what it reproduces). "extension" marks what this repository adds to the paper's experiments.
PAPER_MAP = [
    ("0 Overview", "The toy multilingual BERT", "extension: a 12-layer BERT pretrained here on synthetic languages"),
    ("1 Data and tokenisation", "Tokenisation", "the languages' subword statistics under one shared vocabulary"),
    ("2 Fine-tuning and zero-shot", "One experiment, one config", "the paper's baseline: fine-tune on English, evaluate zero-shot"),
    ("2 Fine-tuning and zero-shot", "Experiment: pretrained vs random init", "extension: the no-pretraining encoder as a floor"),
    ("3 Reinit ablation", "Experiment: the paper's grid in one call",
     "C1, C2: RANDOM-INIT of pairs of consecutive layers, 3 tasks, over seeds and per target language"),
    ("3 Reinit ablation", "Experiment: the paper's grid in one call", "extension: freezing the lower or the upper half"),
    ("4 Representation similarity", "The idea: CKA", "extension: the debiased estimator (the small-sample trap)"),
    ("4 Representation similarity", "C3: English–X similarity per layer", "C3: English–X CKA per layer, pretrained model"),
    ("4 Representation similarity", "English–X similarity after fine-tuning", "English–X CKA per layer, fine-tuned vs pretrained"),
    ("4 Representation similarity", "C4: what fine-tuning changes", "C4: CKA(pretrained, fine-tuned) per layer"),
    ("4 Representation similarity", "C5: does similarity predict transfer?", "C5: similarity against transfer across languages"),
]


def parallel_states(model, tokenizer, profile: str | Profile, n: int | None = None) -> dict:
    """Mean-pooled states [L+1, n, H] of the first `n` parallel test sentences (default: the
    profile's `n_cka`) of every language of the profile; raises if the test sets are not parallel."""
    from .evaluation import mean_pooled_states
    from .experiments import load_split

    P = get_profile(profile) if isinstance(profile, str) else profile
    parallel = {lang: load_split(P, lang, "pos", "test", n or P.n_cka) for lang in P.languages}
    ids = [s.sent_id for s in parallel[P.source]]
    bad = [lang for lang in P.languages if [s.sent_id for s in parallel[lang]] != ids]
    if bad:
        raise ValueError(f"the test sets of {', '.join(bad)} are not parallel to {P.source}'s (sent_id differ)")
    return {lang: mean_pooled_states(model, tokenizer, [s.words for s in sents]) for lang, sents in parallel.items()}


def cka_curves(pairs: Mapping[str, tuple], kernel: str = "linear", debiased: bool = False) -> pd.DataFrame:
    """CKA per layer of each pair of state tensors ([L+1, n, d] each): one row per key of `pairs`,
    one column per layer."""
    from .similarity import cka_per_layer

    rows = {key: cka_per_layer(a, b, kernel=kernel, debiased=debiased) for key, (a, b) in pairs.items()}
    curves = pd.DataFrame(rows).T
    curves.columns.name = "layer"
    return curves


def en_x_curves(states: dict, source: str, targets: Sequence[str], kernel: str = "linear",
                debiased: bool = False) -> pd.DataFrame:
    """CKA(source, X) per layer for every target: one row per target, one column per layer."""
    return cka_curves({lang: (states[source], states[lang]) for lang in targets}, kernel, debiased)


def reference_scores(profile: str | Profile, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Zero-shot score of the reference runs (the task's main metric), averaged over the profile's
    seeds: one row per language, one column per task."""
    from .experiments import records_table

    P = get_profile(profile) if isinstance(profile, str) else profile
    tasks = list(tasks or MAIN_METRIC)
    table = records_table(run_grid(expand_grid(P, tasks=tasks, seeds=P.seeds), progress=False))
    table = table[table.metric == table.task.map(MAIN_METRIC)]
    return table.groupby(["language", "task"])["value"].mean().unstack("task")[tasks]


class MissingRuns(LookupError):
    """`verdicts(..., train=False)` needs runs that are not in the result store yet."""


def _reinit_grid(P: Profile, tasks: Sequence[str]):
    lower, upper = Ablation("reinit", P.lower_layers), Ablation("reinit", P.upper_layers)
    return lower, upper, expand_grid(P, tasks=tasks, seeds=P.seeds, ablations=[REFERENCE, lower, upper])


def reinit_verdicts(profile: str | Profile = "toy", tasks: Sequence[str] | None = None,
                    progress: bool = False) -> list[Verdict]:
    """C1 and C2 for every task (default: pos, ner, parse): the Reinit of the profile's lower and
    upper pair against the reference, over its seeds (chapter 3's grid; runs what is not cached)."""
    P = get_profile(profile) if isinstance(profile, str) else profile
    tasks = list(tasks or MAIN_METRIC)
    lower, upper, configs = _reinit_grid(P, tasks)
    deltas = ablation_deltas(per_seed_scores(run_grid(configs, progress=progress)))
    return [v for t in tasks for v in verdict_c1_c2(deltas[deltas.task == t], lower, upper, task=t)]


def similarity_verdicts(profile: str | Profile, states: Mapping, tuned_states: Mapping, task: str,
                        scores: pd.DataFrame, kernel: str = "linear") -> list[Verdict]:
    """C3 (English–X CKA of the pretrained model), C4 (CKA between the pretrained and the model
    fine-tuned on `task`, per language) and C5 for every column of `scores` (`reference_scores`),
    from the states of `parallel_states` for both models."""
    P = get_profile(profile) if isinstance(profile, str) else profile
    curves = en_x_curves(states, P.source, P.targets, kernel)
    change = cka_curves({lang: (states[lang], tuned_states[lang]) for lang in P.languages}, kernel)
    return ([verdict_c3(curves), verdict_c4(change, task=task)]
            + [verdict_c5(similarity_transfer_correlation(curves, scores[t]), task=t) for t in scores.columns])


def verdicts(profile: str | Profile = "toy", task: str = "pos", seed: int = 1, kernel: str = "linear",
             n: int | None = None, tasks: Sequence[str] | None = None, train: bool = True,
             progress: bool = False) -> list[Verdict]:
    """The verdicts of C1–C5 for a profile (see the module's docstring): `reinit_verdicts`, then
    `similarity_verdicts` on `n` parallel sentences (default: the profile's `n_cka`) through the
    pretrained model and the one fine-tuned on `task` with `seed`.

    `train=True` runs what is not cached yet; `train=False` raises `MissingRuns` instead, naming
    how many runs are missing and the chapters that make them (for mBERT they take hours).
    `progress`: progress bars for what runs."""
    from .experiments import experiment, load_finetuned
    from .pretrained import load_encoder
    from .store import ResultStore

    P = get_profile(profile) if isinstance(profile, str) else profile
    tasks = list(tasks or MAIN_METRIC)
    tuned_cfg = experiment(P, task=task, seed=seed)
    if not train:
        store, configs = ResultStore(), _reinit_grid(P, tasks)[2]
        missing = sum(store.get(c) is None for c in configs) + (not store.has_model(tuned_cfg))
        if missing:
            raise MissingRuns(f"{missing} of the {len(configs) + 1} runs behind the verdicts of the {P.name} profile are "
                              f"not in the result store ({store.root}) yet: run chapter 3 (the grid) and chapter 4 "
                              f"(the fine-tuned {task} model, seed {seed}) first, or call verdicts(..., train=True)")
    out = reinit_verdicts(P, tasks, progress)
    encoder, tokenizer = load_encoder(P)
    tuned, _ = load_finetuned(tuned_cfg, progress=progress)
    states, tuned_states = parallel_states(encoder, tokenizer, P, n), parallel_states(tuned, tokenizer, P, n)
    return out + similarity_verdicts(P, states, tuned_states, task, reference_scores(P, tasks), kernel)


def replication_table(verdicts: Sequence[Verdict], profile: str | Profile = "toy") -> pd.DataFrame:
    """What replicates: one row per claim, with the statement, the paper's evidence, and the
    verdicts of this run grouped by outcome (e.g. "holds (pos, ner, parse)"), with the profile and
    its seeds in the column's name."""
    P = get_profile(profile) if isinstance(profile, str) else profile
    column = f"{P.name} profile, seeds {', '.join(map(str, P.seeds))}"
    rows = []
    for claim, statement in CLAIMS.items():
        by_outcome: dict[str, list[str]] = {}
        for v in verdicts:
            if v.claim == claim:
                by_outcome.setdefault(v.outcome, []).append(v.task)
        found = "; ".join(f"{outcome} ({', '.join(t.strip('()') for t in tasks)})"
                          for outcome, tasks in by_outcome.items()) or "not tested"
        rows.append({"claim": claim, "statement": statement, "the paper's evidence (mBERT)": PAPER[claim],
                     column: found})
    return pd.DataFrame(rows).set_index("claim")


def paper_map() -> pd.DataFrame:
    """Where each part of the paper is rebuilt: chapter, section, and the paper's claim, table or
    figure (or "extension" for what this repository adds)."""
    return pd.DataFrame(PAPER_MAP, columns=["chapter", "section", "what it rebuilds"])
