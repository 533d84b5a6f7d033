"""C5 with a constant column (scores or similarities the same in every language): a clear verdict,
no crash, no warning (chapter 4 once stopped with pandas' "Encountered all NA values")."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from xlt_utils.verdicts import (
    UNDETERMINED,
    claims_table,
    similarity_transfer_correlation,
    verdict_c5,
)

LANGS = ["fr", "de", "ru", "tr", "ja", "ar"]


def _curves(constant_layers=()):
    rng = np.random.default_rng(0)
    curves = pd.DataFrame(rng.uniform(0.2, 0.9, (len(LANGS), 4)), index=LANGS, columns=range(4))
    for layer in constant_layers:
        curves[layer] = 0.5
    return curves


def test_constant_scores_give_an_undetermined_verdict_without_warnings():
    scores = pd.Series(0.0, index=LANGS)  # e.g. a stand-in model that finds no entity anywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = similarity_transfer_correlation(_curves(), scores)
        verdict = verdict_c5(_curves().mean(axis=1), scores, task="ner")
    assert corr["spearman"].isna().all() and corr["p"].isna().all()
    assert verdict.outcome == UNDETERMINED and not verdict.holds
    assert str(verdict).startswith("C5 undetermined (constant scores or similarities across the 6 languages)")
    row = claims_table([verdict]).iloc[0]
    assert (row.claim, row.verdict) == ("C5", "undetermined (constant scores or similarities across the 6 languages)")


def test_a_constant_similarity_layer_has_no_correlation_and_the_others_keep_theirs():
    scores = pd.Series(np.arange(len(LANGS), dtype=float), index=LANGS)
    curves = _curves(constant_layers=[0])
    curves[2] = scores * 0.1  # a perfect rank correlation at layer 2
    corr = similarity_transfer_correlation(curves, scores)
    assert np.isnan(corr.loc[0, "spearman"]) and corr.loc[2, "spearman"] == 1.0
    assert corr.loc[2, "p"] == 1 / 720  # the exact one-sided p of a perfect order of 6
