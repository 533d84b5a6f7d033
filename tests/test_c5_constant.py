"""C5 with a constant column (scores or similarities the same in every language): a clear verdict,
no crash (chapter 4 once stopped with pandas' "Encountered all NA values")."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from xlt_utils.analysis import best_layer, claims_table, similarity_transfer_correlation, verdict_c5

LANGS = ["fr", "de", "ru", "tr", "ja", "ar"]


def _curves(constant_layers=()):
    rng = np.random.default_rng(0)
    curves = pd.DataFrame(rng.uniform(0.2, 0.9, (len(LANGS), 4)), index=LANGS, columns=range(4))
    for layer in constant_layers:
        curves[layer] = 0.5
    return curves


def test_constant_scores_give_an_undefined_verdict_without_warnings():
    scores = pd.Series(0.0, index=LANGS)  # e.g. a stand-in model that finds no entity anywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = similarity_transfer_correlation(_curves(), scores)
    assert corr["spearman"].isna().all() and best_layer(corr) is None
    verdict = verdict_c5(corr, task="ner")
    line = str(verdict)
    assert not verdict.holds and verdict.outcome == "is undefined"
    assert line.startswith("C5 is undefined: constant scores") and "6 languages" in line
    row = claims_table([verdict]).iloc[0]
    assert (row.claim, row.verdict) == ("C5", "is undefined")


def test_a_constant_similarity_layer_is_skipped_and_counted():
    scores = pd.Series(np.arange(len(LANGS), dtype=float), index=LANGS)
    curves = _curves(constant_layers=[0])
    curves[2] = scores * 0.1  # a perfect rank correlation at layer 2
    corr = similarity_transfer_correlation(curves, scores)
    assert np.isnan(corr.loc[0, "spearman"]) and best_layer(corr) == 2
    line = str(verdict_c5(corr))
    assert "strongest correlation is at layer 2, Spearman +1.00" in line and "(1 undefined" in line
