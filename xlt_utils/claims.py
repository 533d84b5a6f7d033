"""All five claims from one call: the verdicts that chapters 3 and 4 reach step by step, and the
tables that open chapter 0 and the book (what replicates; the evidence behind each verdict; where
each part of the paper is rebuilt). `python -m xlt_utils.claims` prints the evidence table.

`verdicts(P)` measures, for a profile (the rules: `xlt_utils.analysis`):

- C1 and C2 for every task, from the reference runs and the Reinit of the lower and the upper pair,
  paired over the profile's seeds (the records of chapter 3's grid; in the toy profile they ship
  with the package, so nothing trains);
- C3 from the English–X debiased CKA per layer of the pretrained model on parallel test sentences,
  minus the same CKA on same-length non-translations (the control);
- C4 from the change that fine-tuning makes in each layer given the same input, for one task and
  every seed of the profile (those models are trained once and cached; chapter 4 uses them too);
- C5 for every task, from C3's similarity and the reference scores averaged over seeds.

Chapter 3 computes C1 and C2 cell by cell; chapter 4 computes C3–C5 cell by cell and checks that
`similarity_verdicts` gives the same verdicts from its states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import pandas as pd
import torch

from .ablation import REFERENCE, Ablation
from .analysis import (
    MAIN_METRIC,
    Verdict,
    ablation_deltas,
    change_evidence,
    claims_table,
    per_seed_scores,
    similarity_evidence,
    verdict_c1_c2,
    verdict_c3,
    verdict_c4,
    verdict_c5,
)
from .evaluation import mean_pooled_states
from .experiments import experiment_config, load_finetuned, load_split, records_table
from .pretrained import load_encoder
from .profiles import Profile
from .similarity import cka_per_layer
from .store import ResultStore
from .sweep import expand_grid, run_grid

__all__ = ["MissingRuns", "CLAIMS", "PAPER", "PAPER_MAP", "parallel_sentences", "parallel_states",
           "sentence_lengths", "local_states", "cka_curves", "en_x_curves", "reference_scores",
           "reinit_verdicts", "similarity_verdicts", "verdicts", "evidence_table", "replication_table",
           "paper_map"]

#: The claims, as the chapters state them.
CLAIMS = {
    "C1": "Re-initialising the lower layers hurts the target languages much more than the source language.",
    "C2": "Re-initialising the upper layers barely hurts either.",
    "C3": "English–X similarity (CKA) per layer rises through the lower layers, then falls: it peaks in the middle.",
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


def _profile(profile) -> Profile:
    """The profile value itself: it is resolved once, where a chapter or a program starts."""
    if not isinstance(profile, Profile):
        raise TypeError(f"pass a Profile (get_profile({profile!r})), not a {type(profile).__name__}: "
                        "the profile is resolved once, where the chapter or the program starts")
    return profile


def parallel_sentences(profile: Profile, n: int | None = None) -> dict:
    """The first `n` parallel test sentences (default: the profile's `n_cka`) of every language of the
    profile; raises if the test sets are not parallel."""
    P = _profile(profile)
    parallel = {lang: load_split(P, lang, "pos", "test", n or P.n_cka) for lang in P.languages}
    ids = [s.sent_id for s in parallel[P.source]]
    bad = [lang for lang in P.languages if [s.sent_id for s in parallel[lang]] != ids]
    if bad:
        raise ValueError(f"the test sets of {', '.join(bad)} are not parallel to {P.source}'s (sent_id differ)")
    return parallel


def sentence_lengths(parallel: Mapping) -> dict:
    """The length in words of every sentence of `parallel_sentences` (C3's control pairs sentences
    of the same length)."""
    return {lang: [len(s.words) for s in sents] for lang, sents in parallel.items()}


def parallel_states(model, tokenizer, profile: str | Profile | Mapping, n: int | None = None) -> dict:
    """Mean-pooled states [L+1, n, H] per language of `parallel_sentences(profile, n)`, or of the
    sentences given (a mapping language -> sentences, as `parallel_sentences` returns)."""
    parallel = profile if isinstance(profile, Mapping) else parallel_sentences(profile, n)
    return {lang: mean_pooled_states(model, tokenizer, [s.words for s in sents]) for lang, sents in parallel.items()}


class _LocalStack(torch.nn.Module):
    """An encoder whose layer l is the fine-tuned model's layer l applied to the pretrained model's
    layer l − 1 (its embeddings: the fine-tuned embeddings of the same subwords). It runs the
    pretrained encoder and, at each of its layers, calls the fine-tuned layer with the very
    arguments the pretrained layer receives (hidden states, attention mask, ...)."""

    def __init__(self, pretrained, tuned):
        super().__init__()
        self.pretrained, self.tuned = pretrained, tuned
        self.config = pretrained.config  # what `mean_pooled_states` reads (its length limit)

    def forward(self, input_ids, attention_mask, output_hidden_states=True):
        outputs, handles = {}, []

        def run_tuned(layer, index):
            def hook(module, args, kwargs):
                out = layer(*args, **kwargs)
                outputs[index] = out[0] if isinstance(out, tuple) else out
            return hook

        pairs = zip(self.pretrained.encoder.layer, self.tuned.encoder.layer, strict=True)
        for i, (mine, theirs) in enumerate(pairs, start=1):
            handles.append(mine.register_forward_pre_hook(run_tuned(theirs, i), with_kwargs=True))
        try:
            self.pretrained(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            for h in handles:
                h.remove()
        hidden = (self.tuned.embeddings(input_ids=input_ids),) + tuple(outputs[i] for i in sorted(outputs))
        return SimpleNamespace(hidden_states=hidden)


def local_states(pretrained, tuned, tokenizer, sentences) -> torch.Tensor:
    """C4's measure of where fine-tuning changed the model: for every layer l, the mean-pooled output
    of the fine-tuned layer l given the pretrained model's layer l − 1 as input, [L+1, n, H] (the
    same pooling as `mean_pooled_states`). Compared with the pretrained model's own states, layer by
    layer, it shows the change made in that layer, not the change accumulated below it."""
    stack = _LocalStack(getattr(pretrained, "base_model", pretrained), getattr(tuned, "base_model", tuned))
    return mean_pooled_states(stack, tokenizer, sentences)


def cka_curves(pairs: Mapping[str, tuple], kernel: str = "linear", debiased: bool = False) -> pd.DataFrame:
    """CKA per layer of each pair of state tensors ([L+1, n, d] each): one row per key of `pairs`,
    one column per layer."""
    rows = {key: cka_per_layer(a, b, kernel=kernel, debiased=debiased) for key, (a, b) in pairs.items()}
    curves = pd.DataFrame(rows).T
    curves.columns.name = "layer"
    return curves


def en_x_curves(states: dict, source: str, targets: Sequence[str], kernel: str = "linear",
                debiased: bool = False) -> pd.DataFrame:
    """CKA(source, X) per layer for every target: one row per target, one column per layer."""
    return cka_curves({lang: (states[source], states[lang]) for lang in targets}, kernel, debiased)


def reference_scores(profile: Profile, tasks: Sequence[str] | None = None, results=None) -> pd.DataFrame:
    """Zero-shot score of the reference runs (the task's main metric), averaged over the profile's
    seeds: one row per language, one column per task. `results`: the result store or its root
    (default: the settings')."""
    P = _profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    table = records_table(run_grid(expand_grid(P, tasks=tasks, seeds=P.seeds), progress=False, results=results))
    table = table[table.metric == table.task.map(MAIN_METRIC)]
    return table.groupby(["language", "task"])["value"].mean().unstack("task")[tasks]


class MissingRuns(LookupError):
    """`verdicts(..., train=False)` needs runs that are not in the result store yet."""


def _reinit_grid(P: Profile, tasks: Sequence[str]):
    lower, upper = Ablation("reinit", P.lower_layers), Ablation("reinit", P.upper_layers)
    return lower, upper, expand_grid(P, tasks=tasks, seeds=P.seeds, ablations=[REFERENCE, lower, upper])


def reinit_verdicts(profile: Profile, tasks: Sequence[str] | None = None,
                    progress: bool = False, results=None) -> list[Verdict]:
    """C1 and C2 for every task (default: pos, ner, parse): the Reinit of the profile's lower and
    upper pair against the reference, over its seeds (chapter 3's grid; runs what is not cached, in
    the result store `results`, default the settings')."""
    P = _profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    lower, upper, configs = _reinit_grid(P, tasks)
    deltas = ablation_deltas(per_seed_scores(run_grid(configs, progress=progress, results=results)))
    return [v for t in tasks for v in verdict_c1_c2(deltas[deltas.task == t], lower, upper, task=t)]


def similarity_verdicts(profile: Profile, states: Mapping, lengths: Mapping, local: Mapping,
                        tuned_states: Mapping | None, task: str, scores: pd.DataFrame) -> list[Verdict]:
    """C3 (the pretrained model's English–X similarity against its same-length control), C4 (the
    local change fine-tuning on `task` made, for every seed in `local`) and C5 for every column of
    `scores` (`reference_scores`). `states`: `parallel_states` of the pretrained model; `lengths`:
    `sentence_lengths`; `local[seed]`: `local_states` per language; `tuned_states[seed]`: the
    fine-tuned model's own states (for the paper's whole-stack measure, shown beside C4)."""
    P = _profile(profile)
    sim = similarity_evidence(states, P.source, P.targets, lengths)
    change = change_evidence(states, local, tuned_states)
    per_target = sim.excess.mean(axis=1)
    return ([verdict_c3(sim), verdict_c4(change, task=task)]
            + [verdict_c5(per_target, scores[t], task=t) for t in scores.columns])


def _tuned_configs(P: Profile, task: str):
    return {seed: experiment_config(P, task=task, seed=seed) for seed in P.seeds}


def verdicts(profile: Profile, task: str = "pos", n: int | None = None,
             tasks: Sequence[str] | None = None, train: bool = True, progress: bool = False,
             results=None) -> list[Verdict]:
    """The verdicts of C1–C5 for a profile (see the module's docstring): `reinit_verdicts`, then
    `similarity_verdicts` on `n` parallel sentences (default: the profile's `n_cka`) through the
    pretrained model and the models fine-tuned on `task` with each of the profile's seeds.

    `train=True` runs what is not cached yet; `train=False` raises `MissingRuns` instead, naming
    how many runs are missing and the chapters that make them (for mBERT they take hours).
    `progress`: progress bars for what runs. `results`: the result store or its root (default:
    the settings')."""
    store = results if isinstance(results, ResultStore) else ResultStore(results)
    P = _profile(profile)
    tasks = list(tasks or MAIN_METRIC)
    tuned_cfgs = _tuned_configs(P, task)
    if not train:
        configs = _reinit_grid(P, tasks)[2]
        missing = sum(store.get(c) is None for c in configs) + sum(not store.has_model(c) for c in tuned_cfgs.values())
        if missing:
            raise MissingRuns(f"{missing} of the {len(configs) + len(tuned_cfgs)} runs behind the verdicts of the "
                              f"{P.name} profile are not in the result store ({store.root}) yet: run chapter 3 (the "
                              f"grid) and chapter 4 (the fine-tuned {task} models, seeds "
                              f"{', '.join(map(str, P.seeds))}) first, or call verdicts(..., train=True)")
    out = reinit_verdicts(P, tasks, progress, store)
    encoder, tokenizer = load_encoder(P)
    parallel = parallel_sentences(P, n)  # read once, for every model below
    states = parallel_states(encoder, tokenizer, parallel)
    local, tuned_states = {}, {}
    for seed, cfg in tuned_cfgs.items():
        tuned, _ = load_finetuned(cfg, results=store, progress=progress)
        local[seed] = {lang: local_states(encoder, tuned, tokenizer, [s.words for s in sents])
                       for lang, sents in parallel.items()}
        tuned_states[seed] = parallel_states(tuned, tokenizer, parallel)
    return out + similarity_verdicts(P, states, sentence_lengths(parallel), local, tuned_states, task,
                                     reference_scores(P, tasks, store))


def evidence_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """Every claim x task with its verdict, effect, estimate [95% CI] and control, indexed by claim
    and task (chapter 0, the book's landing page, chapter 4's summary)."""
    return claims_table(verdicts).set_index(["claim", "task"])


def replication_table(verdicts: Sequence[Verdict], profile: Profile) -> pd.DataFrame:
    """What replicates: one row per claim, with the statement, the paper's evidence, and the
    verdicts of this run grouped by outcome (e.g. "holds (pos, ner, parse)"), with the profile and
    its seeds in the column's name."""
    P = _profile(profile)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Print every claim x task with its verdict, effect, interval and control."""
    import argparse

    from .profiles import get_profile

    parser = argparse.ArgumentParser(prog="python -m xlt_utils.claims", description=main.__doc__)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--task", default="pos", help="the task of the fine-tuned models behind C4")
    parser.add_argument("--no-train", action="store_true", help="fail instead of training missing runs")
    args = parser.parse_args(argv)
    P = get_profile(args.profile)  # the entry: the profile is resolved here, once
    table = evidence_table(verdicts(P, task=args.task, train=not args.no_train, progress=False))
    with pd.option_context("display.max_colwidth", None, "display.width", 250):
        print(f"{P.name} profile, seeds {', '.join(map(str, P.seeds))}")
        for (claim, task), row in table.iterrows():
            print(f"\n{claim} {task}: {row['verdict']}\n  {row['effect']}: {row['estimate [95% CI]']}"
                  f"\n  control: {row['control']}")


if __name__ == "__main__":
    main()
