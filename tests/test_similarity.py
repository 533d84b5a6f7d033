"""CKA against a direct reference implementation, its invariances, and mean-pooled BERT states."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt_utils.evaluation import mean_pooled_states
from xlt_utils.plotting import plot_cka_heatmap
from xlt_utils.similarity import cka, cka_matrix, cka_per_layer, cka_reference

KERNELS = ["linear", "rbf"]

# ---------------------------------------------------------------------------------------------
# Reference: the textbook formulas, with an explicit centring matrix H.
# ---------------------------------------------------------------------------------------------


def ref_gram(x: np.ndarray, kernel: str, sigma_frac: float = 0.8) -> np.ndarray:
    if kernel == "linear":
        return x @ x.T
    # As in Kornblith et al.'s released code (gram_rbf): median over the full distance matrix.
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * sigma_frac**2 * np.median(sq)))


def ref_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def ref_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012), eq. 5."""
    n = k.shape[0]
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))  # noqa: E741
    one = np.ones(n)
    return (
        np.trace(k @ l)
        + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ k @ l @ one)
    ) / (n * (n - 3))


def ref_cka(x, y, kernel: str, debiased: bool = False, sigma_frac: float = 0.8) -> float:
    hsic = ref_hsic_unbiased if debiased else ref_hsic
    k, l = ref_gram(x, kernel, sigma_frac), ref_gram(y, kernel, sigma_frac)  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def related_pair(n: int, d1: int, d2: int, seed: int = 0):
    """Y partly a linear function of X, so that CKA is well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d1))
    y = np.tanh(x @ rng.standard_normal((d1, d2)) / np.sqrt(d1)) + 0.5 * rng.standard_normal(
        (n, d2)
    )
    return x, y


def random_orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ---------------------------------------------------------------------------------------------
# CKA
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one(kernel, debiased):
    x, _ = related_pair(40, 16, 8)
    assert cka(x, x, kernel, debiased) == pytest.approx(1.0, abs=1e-12)
    assert cka(torch.tensor(x, dtype=torch.float32), x, kernel, debiased) == pytest.approx(
        1.0, abs=1e-6
    )


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_transform_scaling_and_translation(kernel, debiased):
    x, y = related_pair(50, 12, 20, seed=1)
    base = cka(x, y, kernel, debiased)
    assert 0.05 < abs(base) < 0.95  # a non-trivial value, so that invariance means something
    q = random_orthogonal(12, seed=2)
    assert cka(x @ q, y, kernel, debiased) == pytest.approx(base, abs=1e-10)
    assert cka(7.5 * x, 0.01 * y, kernel, debiased) == pytest.approx(base, abs=1e-10)
    assert cka(x + 3.0, y - 100.0, kernel, debiased) == pytest.approx(base, abs=1e-9)
    assert cka(
        3.0 * (x @ q) + 1.0, y @ random_orthogonal(20, seed=3), kernel, debiased
    ) == pytest.approx(base, abs=1e-9)


def test_not_invariant_to_anisotropic_scaling():
    x, y = related_pair(50, 12, 20, seed=1)
    stretched = x * np.linspace(0.1, 10, 12)
    assert abs(cka(stretched, y) - cka(x, y)) > 1e-3


# (n, d1, d2): linear CKA takes the feature-space path when n (d1 + d2) >= d1 d2 + d1^2 + d2^2,
# otherwise the equal n x n contraction; both are compared with the reference.
SHAPES = [(30, 10, 7), (12, 40, 60), (25, 20, 20)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference_with_explicit_centring_matrix(kernel, shape):
    x, y = related_pair(*shape, seed=4)
    assert cka(x, y, kernel) == pytest.approx(ref_cka(x, y, kernel), abs=1e-8)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_debiased_matches_song_unbiased_hsic(kernel, shape):
    x, y = related_pair(*shape, seed=5)
    assert cka(x, y, kernel, debiased=True) == pytest.approx(
        ref_cka(x, y, kernel, debiased=True), abs=1e-8
    )


@pytest.mark.parametrize("sigma_frac", [0.2, 0.8, 2.0])
def test_rbf_bandwidth(sigma_frac):
    x, y = related_pair(30, 10, 10, seed=6)
    assert cka(x, y, "rbf", sigma_frac=sigma_frac) == pytest.approx(
        ref_cka(x, y, "rbf", sigma_frac=sigma_frac), abs=1e-8
    )


def test_rbf_with_a_wide_bandwidth_tends_to_linear():
    x, y = related_pair(40, 10, 10, seed=7)
    assert abs(cka(x, y, "rbf", sigma_frac=0.8) - cka(x, y, "linear")) > 1e-3
    assert cka(x, y, "rbf", sigma_frac=200.0) == pytest.approx(cka(x, y, "linear"), abs=1e-4)


def test_kth_pair_is_an_exact_selection():
    from xlt_utils.similarity import _kth_pair

    rng = np.random.default_rng(11)
    adversarial = rng.random(1 << 17) + 1.0
    adversarial[:: (1 << 17) // (1 << 14)] = 0.0  # the strided sample sees only zeros: the bracket misses
    cases = {
        "normal": rng.standard_normal(200_001),
        "sorted": np.sort(rng.random(100_000)),
        "reversed": np.sort(rng.random(100_000))[::-1].copy(),
        "ties": rng.integers(0, 5, 150_000).astype(float),
        "small": rng.random(101),
        "adversarial": adversarial,
    }
    for name, flat in cases.items():
        m = flat.size
        ref = np.sort(flat)
        for k1, k2 in (((m - 1) // 2, m // 2), (0, 0), (m - 1, m - 1), (0, m - 1), (m // 3, m // 3 + 7)):
            assert _kth_pair(flat, k1, k2) == (ref[k1], ref[k2]), (name, k1, k2)


@pytest.mark.parametrize("duplicates", [1, 3])
def test_rbf_matches_reference_when_the_median_is_selected_from_a_sample(duplicates):
    """n = 300: 90,000 distances, so that the median comes from the sampled bracket; repeated
    points give many tied (zero) distances."""
    rng = np.random.default_rng(12)
    base = rng.standard_normal((300 // duplicates, 20))
    x = np.repeat(base, duplicates, axis=0)
    y = np.tanh(x @ rng.standard_normal((20, 20))) + 0.3 * rng.standard_normal((300, 20))
    want = ref_cka(x, y, "rbf")
    assert cka(x, y, "rbf") == pytest.approx(want, abs=1e-12)
    got = cka_per_layer(np.stack([x, x]), np.stack([y, 2.0 * x + 1.0]), kernel="rbf")
    np.testing.assert_allclose(got, [want, 1.0], rtol=0, atol=1e-12)


def test_nearly_constant_rbf_kernel_keeps_its_digits():
    """A very wide bandwidth makes every kernel entry close to 1 and the centred kernel tiny:
    compared with the textbook formula in extended precision (np.longdouble)."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((60, 10))
    y = 0.5 * x + rng.standard_normal((60, 10))
    for sigma_frac in (0.8, 30.0, 300.0):
        want = ref_cka(x.astype(np.longdouble), y.astype(np.longdouble), "rbf", sigma_frac=sigma_frac)
        assert cka(x, y, "rbf", sigma_frac=sigma_frac) == pytest.approx(float(want), abs=1e-11)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", [False, True])
def test_torch_path_matches_the_numpy_path(monkeypatch, kernel, debiased):
    """Off the CPU (a GPU) everything runs in torch; forced here on the CPU."""
    from xlt_utils import similarity

    a, b = layer_states(n=40, d=64)
    a, b = a.double(), b[..., :48].double()
    want = (cka_per_layer(a, b, kernel, debiased), cka_matrix(a, b, kernel, debiased))
    monkeypatch.setattr(similarity, "_numpy_cpu", lambda x: None)
    got = (cka_per_layer(a, b, kernel, debiased), cka_matrix(a, b, kernel, debiased))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_debiasing_removes_the_small_sample_bias(kernel):
    """Independent data, n = 25 sentences of d = 768 features: biased CKA is close to 1."""
    rng = np.random.default_rng(8)
    biased, debiased = [], []
    for _ in range(5):
        x, y = rng.standard_normal((25, 768)), rng.standard_normal((25, 768))
        biased.append(cka(x, y, kernel))
        debiased.append(cka(x, y, kernel, debiased=True))
    assert min(biased) > 0.9
    assert max(abs(v) for v in debiased) < 0.1
    assert abs(np.mean(debiased)) < 0.05


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 20),
    d1=st.integers(1, 12),
    d2=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    kernel=st.sampled_from(KERNELS),
)
def test_biased_cka_is_symmetric_and_in_unit_interval(n, d1, d2, seed, kernel):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, d1)), rng.standard_normal((n, d2))
    v = cka(x, y, kernel)
    assert -1e-12 <= v <= 1 + 1e-12
    assert cka(y, x, kernel) == pytest.approx(v, abs=1e-12)


def test_input_validation():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="at least 4"):
        cka(x, x, debiased=True)
    with pytest.raises(ValueError, match="kernel"):
        cka(np.ones((5, 2)), np.ones((5, 2)), kernel="cosine")
    with pytest.raises(ValueError, match="same examples"):
        cka(np.ones((5, 2)), np.ones((6, 2)))
    assert np.isnan(cka(np.ones((5, 2)), np.random.default_rng(0).standard_normal((5, 3))))


def layer_states(n_layers=4, n=20, d=24, seed=9):
    """Two [L, n, d] stacks whose layers drift apart with depth (like two languages)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n_layers, n, d, generator=g)
    noise = torch.randn(n_layers, n, d, generator=g)
    b = a + torch.linspace(0.1, 3.0, n_layers)[:, None, None] * noise
    return a, b


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("d", [8, 64])  # feature-space and Gram-space linear paths
def test_cka_per_layer_equals_a_loop(kernel, debiased, d):
    a, b = layer_states(d=d)
    b = b[..., : d // 2]  # different widths are allowed
    got = cka_per_layer(a, b, kernel=kernel, debiased=debiased)
    want = [cka(a[i], b[i], kernel, debiased) for i in range(a.shape[0])]
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # a tuple of layers (HF hidden_states) is accepted too
    np.testing.assert_allclose(
        cka_per_layer(tuple(a), tuple(b), kernel=kernel, debiased=debiased), got, atol=1e-12
    )


def test_rbf_per_layer_is_the_same_with_one_thread_or_one_per_layer():
    a, b = layer_states(d=16)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # three layers' numpy work side by side
        parallel = cka_per_layer(a, b, kernel="rbf")
        torch.set_num_threads(1)
        serial = cka_per_layer(a, b, kernel="rbf")
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(parallel, serial)
    want = [cka(a[i], b[i], "rbf") for i in range(a.shape[0])]
    np.testing.assert_allclose(parallel, want, rtol=0, atol=1e-10)


def test_cka_per_layer_decreases_with_drift():
    a, b = layer_states()
    assert np.all(np.diff(cka_per_layer(a, b)) < 0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("d", [8, 64])
def test_cka_matrix(kernel, debiased, d):
    a, b = layer_states(d=d)
    b = b[:3]
    m = cka_matrix(a, b, kernel=kernel, debiased=debiased)
    assert m.shape == (4, 3)
    want = [[cka(a[i], b[j], kernel, debiased) for j in range(3)] for i in range(4)]
    np.testing.assert_allclose(m, want, rtol=0, atol=1e-10)
    same = cka_matrix(a, a, kernel=kernel, debiased=debiased)
    np.testing.assert_allclose(np.diag(same), 1.0, atol=1e-12)
    np.testing.assert_allclose(same, same.T, atol=1e-12)
    np.testing.assert_allclose(
        np.diag(m), cka_per_layer(a[:3], b, kernel=kernel, debiased=debiased), atol=1e-12
    )


def test_cka_per_layer_shape_checks():
    a, b = layer_states()
    with pytest.raises(ValueError):
        cka_per_layer(a, b[:2])
    with pytest.raises(ValueError):
        cka_per_layer(a[0], b[0])


# ---------------------------------------------------------------------------------------------
# mean_pooled_states, with a tiny random BERT and an in-memory WordPiece tokenizer
# ---------------------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "big", "run", "##s",
         "##ning", "un", "##like", "##ly", "."]  # fmt: skip

SENTENCES = [
    ["the", "cat", "sat"],
    ["a", "big", "dog", "runs", "on", "the", "mat", "."],
    ["unlikely"],
    ["cats", "running", "on", "a", "mat"],
    ["the", "dog"],
    ["zebra", "sat", "."],
    ["dog"],
]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.5,  # large, so that a forgotten eval() would show
        attention_probs_dropout_prob=0.5,
        num_labels=3,
    )
    return BertForTokenClassification(config)


def manual_mean(bert, tokenizer, words):
    """The sentence run alone (no padding); mean over positions 1 .. len-2 of every layer."""
    from xlt_utils.tokenization import encode_words

    (enc,) = encode_words(tokenizer, [words])
    ids = torch.tensor([enc.input_ids])
    assert ids[0, 0] == tokenizer.cls_token_id and ids[0, -1] == tokenizer.sep_token_id
    with torch.no_grad():
        hs = bert(input_ids=ids, output_hidden_states=True).hidden_states
    with_special = torch.stack([h[0].mean(0) for h in hs])
    return torch.stack([h[0, 1:-1].mean(0) for h in hs]), with_special


def test_tiny_tokenizer_splits_words(tiny_tokenizer):
    from xlt_utils.tokenization import encode_words

    enc = encode_words(tiny_tokenizer, [["unlikely", "runs", "zebra"]])[0]
    assert (
        enc.input_ids[0] == tiny_tokenizer.cls_token_id
        and enc.input_ids[-1] == tiny_tokenizer.sep_token_id
    )
    assert len(enc) == 2 + 3 + 2 + 1  # un ##like ##ly, run ##s, [UNK]


def test_mean_pooled_states_excludes_special_tokens_and_padding(tiny_bert, tiny_tokenizer):
    tiny_bert.eval()
    pooled = mean_pooled_states(tiny_bert, tiny_tokenizer, SENTENCES, batch_size=4)
    n_layers = tiny_bert.config.num_hidden_layers + 1
    assert pooled.shape == (n_layers, len(SENTENCES), 32)
    assert pooled.dtype == torch.float32 and not pooled.is_inference()
    for i, words in enumerate(SENTENCES):
        want, with_special = manual_mean(tiny_bert.bert, tiny_tokenizer, words)
        torch.testing.assert_close(pooled[:, i], want, rtol=0, atol=1e-5)
        assert (pooled[:, i] - with_special).abs().max() > 1e-2  # the test can tell the difference


def test_mean_pooled_states_independent_of_batching_and_order(tiny_bert, tiny_tokenizer):
    ref = mean_pooled_states(tiny_bert, tiny_tokenizer, SENTENCES, batch_size=1)
    for bs in (2, 3, 64):
        torch.testing.assert_close(
            mean_pooled_states(tiny_bert, tiny_tokenizer, SENTENCES, batch_size=bs),
            ref,
            rtol=0,
            atol=1e-5,
        )
    perm = [4, 0, 6, 2, 1, 5, 3]
    shuffled = mean_pooled_states(
        tiny_bert, tiny_tokenizer, [SENTENCES[p] for p in perm], batch_size=3
    )
    torch.testing.assert_close(shuffled, ref[:, perm], rtol=0, atol=1e-5)


def test_mean_pooled_states_wrapper_and_train_mode(tiny_bert, tiny_tokenizer):
    tiny_bert.eval()
    ref = mean_pooled_states(tiny_bert.bert, tiny_tokenizer, SENTENCES)  # the bare encoder
    tiny_bert.train()
    try:
        got = mean_pooled_states(tiny_bert, tiny_tokenizer, SENTENCES)  # the wrapper, in train mode
        assert tiny_bert.training and tiny_bert.bert.training  # mode restored
    finally:
        tiny_bert.eval()
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)  # no dropout was applied


def test_mean_pooled_states_rejects_empty_sentences(tiny_bert, tiny_tokenizer):
    with pytest.raises(ValueError, match="no words"):
        mean_pooled_states(tiny_bert, tiny_tokenizer, [["the"], []])


def test_pooled_states_feed_cka(tiny_bert, tiny_tokenizer):
    pooled = mean_pooled_states(tiny_bert, tiny_tokenizer, SENTENCES)
    np.testing.assert_allclose(cka_per_layer(pooled, pooled), 1.0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Heatmap
# ---------------------------------------------------------------------------------------------


def test_plot_cka_heatmap_dataframe_and_array():
    pd = pytest.importorskip("pandas")
    from matplotlib.figure import Figure

    values = np.array([[1.0, 0.8, 0.55], [0.9, np.nan, 0.3]])
    df = pd.DataFrame(values, index=["fr", "ar"], columns=[0, 6, 12])
    fig = plot_cka_heatmap(df, title="en vs X")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fr", "ar"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "6", "12"]
    assert sorted(t.get_text() for t in ax.texts) == [
        "0.30",
        "0.55",
        "0.80",
        "0.90",
        "1.00",
    ]  # NaN blank
    assert ax.get_title() == "en vs X"

    def png(f):
        buf = io.BytesIO()
        f.savefig(buf, format="png", dpi=40)
        return buf.getvalue()

    assert png(fig) == png(plot_cka_heatmap(df, title="en vs X"))  # deterministic
    fig2 = plot_cka_heatmap(values, row_labels=["fr", "ar"], annotate=False)
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["0", "1", "2"]
    assert not fig2.axes[0].texts
    with pytest.raises(ValueError):
        plot_cka_heatmap(values, row_labels=["fr"])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n,d1,d2", [(12, 5, 9), (40, 64, 16), (30, 3, 3)])
def test_the_fast_path_equals_the_definition_in_the_package(kernel, n, d1, d2):
    g = np.random.default_rng(n + d1)
    x = g.standard_normal((n, d1))
    y = x[:, : min(d1, d2)] @ g.standard_normal((min(d1, d2), d2)) + 0.5 * g.standard_normal((n, d2))
    ref = cka_reference(x, y, kernel=kernel)
    assert 0 < ref < 1 and cka(x, y, kernel=kernel) == pytest.approx(ref, abs=1e-10)
    assert cka_per_layer(x[None], y[None], kernel=kernel)[0] == pytest.approx(ref, abs=1e-10)
    with pytest.raises(ValueError, match="kernel must be one of"):
        cka_reference(x, y, kernel="cosine")
