"""The biaffine parser head and single-root maximum-spanning-tree decoding."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xlt_utils.parsing import (
    BiaffineParserHead,
    decode_batch,
    decode_mst,
    heads_tensor,
    parser_loss,
)

MASKED = (-np.inf, -1e9, float(np.finfo(np.float32).min))


def assert_tree(heads: list[int], n: int) -> None:
    """Heads of words 1..n: in range, no self-head, exactly one root child, no cycle."""
    assert len(heads) == n
    assert all(isinstance(h, int) for h in heads)
    assert all(0 <= h <= n for h in heads), heads
    assert all(h != i for i, h in enumerate(heads, start=1)), heads
    assert sum(h == 0 for h in heads) == 1, heads
    for i in range(1, n + 1):  # every word reaches the root within n steps
        v, steps = i, 0
        while v != 0:
            v, steps = heads[v - 1], steps + 1
            assert steps <= n, f"cycle through word {i}: {heads}"


def argmax_heads(scores: np.ndarray) -> list[int]:
    """Row-wise np.argmax (first index on ties) with self-loops excluded."""
    s = np.array(scores, dtype=np.float64)
    n = s.shape[0]
    s[np.arange(n), np.arange(1, n + 1)] = -np.inf
    return s.argmax(axis=1).tolist()


def is_tree(heads: list[int]) -> bool:
    try:
        assert_tree(heads, len(heads))
    except AssertionError:
        return False
    return True


def random_tree(rng: np.random.Generator, n: int) -> list[int]:
    order = rng.permutation(n) + 1
    heads = [0] * n
    for k, w in enumerate(order[1:], start=1):
        heads[w - 1] = int(order[rng.integers(0, k)])
    return heads  # order[0] is the root child


def is_projective(heads: list[int]) -> bool:
    arcs = [(min(h, d), max(h, d)) for d, h in enumerate(heads, start=1)]
    return not any(a < c < b < d for a, b in arcs for c, d in arcs)


@cache
def all_trees(n: int) -> np.ndarray:
    """Every single-root tree over n words, as an array [T, n] of heads."""
    return np.array([t for t in itertools.product(range(n + 1), repeat=n) if is_tree(list(t))])


def score_matrices(max_n: int):
    """[n, n+1] float matrices: continuous values, small integers (ties) and masked entries."""
    elements = st.one_of(
        st.floats(-10, 10, allow_nan=False),
        st.integers(-2, 2).map(float),
        st.sampled_from(MASKED),
    )
    return st.integers(1, max_n).flatmap(
        lambda n: hnp.arrays(np.float64, (n, n + 1), elements=elements)
    )


# ----------------------------------------------------------------------------- decode_mst


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(score_matrices(30))
def test_decode_always_returns_a_single_root_tree(scores):
    n = scores.shape[0]
    heads = decode_mst(scores)
    assert_tree(heads, n)
    greedy = argmax_heads(scores)
    if is_tree(greedy):
        assert heads == greedy


def tree_key(scores: np.ndarray, heads: np.ndarray) -> tuple[int, float]:
    """What the decoder maximises: fewest -inf edges first, then the total of the others."""
    vals = scores[np.arange(len(heads)), heads]
    inf = np.isneginf(vals)
    return -int(inf.sum()), float(vals[~inf].sum())


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(score_matrices(5))
def test_decode_is_optimal_against_brute_force(scores):
    n = scores.shape[0]
    heads = np.array(decode_mst(scores))
    assert tuple(heads) in {tuple(t) for t in all_trees(n)}
    best = max(tree_key(scores, t) for t in all_trees(n))
    got = tree_key(scores, heads)
    assert got[0] == best[0]
    tol = 1e-9 * (1 + np.abs(scores[np.isfinite(scores)]).max(initial=0)) * n
    assert got[1] >= best[1] - tol, (got, best)


def test_brute_force_counts_are_rooted_labelled_trees():
    # n^(n-1) rooted labelled trees (Cayley): the enumeration the optimality test relies on.
    assert [len(all_trees(n)) for n in range(1, 6)] == [1, 2, 9, 64, 625]


@pytest.mark.slow
def test_decode_matches_networkx_edmonds_with_each_root_child_tried():
    """Independent check at sizes beyond brute force: networkx's Edmonds, one run per root child."""
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(7)
    for n in [6, 9, 12, 16] * 4:
        scores = rng.normal(size=(n, n + 1))
        best = -np.inf
        for r in range(1, n + 1):
            g = nx.DiGraph()
            g.add_edge(0, r, weight=scores[r - 1, 0])
            for d in range(1, n + 1):
                for h in range(1, n + 1):
                    if h != d and d != r:
                        g.add_edge(h, d, weight=scores[d - 1, h])
            tree = nx.maximum_spanning_arborescence(g, attr="weight")
            best = max(best, sum(scores[d - 1, h] for h, d in tree.edges))
        heads = decode_mst(scores)
        assert_tree(heads, n)
        assert scores[np.arange(n), heads].sum() == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 7, 40, 150])
def test_decode_returns_the_argmax_tree_even_with_ties(n):
    rng = np.random.default_rng(n)
    gold = random_tree(rng, n)
    scores = np.zeros((n, n + 1))
    for i, h in enumerate(gold):
        scores[i, h] = 1.0
        later = [j for j in range(h + 1, n + 1) if j != i + 1]
        if later:  # a tie with a later column: np.argmax keeps the first, the gold head
            scores[i, later[0]] = 1.0
    assert argmax_heads(scores) == gold
    assert decode_mst(scores) == gold


@pytest.mark.parametrize("n", [2, 5, 30, 150])
def test_decode_single_root_constraint_recovers_the_gold_tree(n):
    # Every word prefers the root (1.5) over its gold head (1.0): the unconstrained MST attaches
    # all words to the root; the only best single-root tree is the gold one.
    rng = np.random.default_rng(100 + n)
    gold = random_tree(rng, n)
    scores = np.zeros((n, n + 1))
    scores[np.arange(n), gold] = 1.0
    scores[:, 0] = 1.5
    assert decode_mst(scores) == gold


def test_decode_handles_non_projective_trees():
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(200):
        gold = random_tree(rng, 12)
        if is_projective(gold):
            continue
        found += 1
        scores = rng.normal(0, 0.3, (12, 13))
        scores[np.arange(12), gold] += 3.0
        scores[:, 0] += 2.0  # root pull: forces the Chu-Liu/Edmonds path
        assert decode_mst(scores) == gold
    assert found > 50


@pytest.mark.slow
def test_decode_real_pud_trees(shared_data):
    """Gold PUD trees (many non-projective) come back from scores that pull every word to root."""
    from xlt_utils.data import read_conllu

    path = shared_data / "ud" / "UD_German-PUD" / "de_pud-ud-test.conllu"
    sents = read_conllu(path, "de")[:300]
    assert sum(not is_projective(s.heads) for s in sents) > 0
    for s in sents:
        n = len(s)
        scores = np.full((n, n + 1), -1.0)
        scores[np.arange(n), s.heads] = 1.0
        scores[:, 0] = 1.5
        assert decode_mst(scores) == s.heads, s.sent_id


def test_decode_edge_cases():
    assert decode_mst(np.zeros((0, 1))) == []
    assert decode_mst(np.array([[-np.inf, 5.0]])) == [0]  # the only tree, even if masked
    assert_tree(decode_mst(np.full((6, 7), -np.inf)), 6)
    assert_tree(decode_mst(np.full((6, 7), np.nan)), 6)
    # Self-loop scores are ignored however high they are.
    s = np.zeros((3, 4))
    s[np.arange(3), np.arange(1, 4)] = 100.0
    assert_tree(decode_mst(s), 3)
    with pytest.raises(ValueError, match=r"\+inf"):
        decode_mst(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match=r"\[n, n\+1\]"):
        decode_mst(np.zeros((3, 3)))


# ----------------------------------------------------------------------------- the head


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tensors are tiny: one thread avoids OpenMP spin-waiting on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_batch(seed: int = 0, lengths=(6, 3, 5), hidden: int = 16, n_rels: int = 5):
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    b, w = len(lengths), max(lengths)
    words = torch.randn(b, w, hidden, generator=g)
    mask = torch.zeros(b, w, dtype=torch.bool)
    heads = torch.full((b, w), -100, dtype=torch.long)  # junk at padding on purpose
    rels = torch.full((b, w), -100, dtype=torch.long)
    for k, n in enumerate(lengths):
        mask[k, :n] = True
        heads[k, :n] = torch.tensor(random_tree(rng, n))
        rels[k, :n] = torch.randint(0, n_rels, (n,), generator=g)
    return words, mask, heads, rels


def test_head_shapes_and_masking():
    torch.manual_seed(0)
    words, mask, heads, _ = make_batch()
    head = BiaffineParserHead(16, 5).eval()
    arc, rel_full = head(words, mask)
    assert arc.shape == (3, 6, 7) and rel_full.shape == (3, 6, 7, 5)
    arc2, rel_at = head(words, mask, heads=heads)
    assert rel_at.shape == (3, 6, 5)
    torch.testing.assert_close(arc, arc2)
    neg = torch.finfo(arc.dtype).min
    for b, n in enumerate(mask.sum(1).tolist()):
        assert (arc[b, :, n + 1 :] == neg).all()  # padded heads
        assert (arc[b, torch.arange(6), torch.arange(1, 7)] == neg).all()  # self-loops
        assert (arc[b, :n, : n + 1] > neg).sum() == n * n  # everything else is a real score
    # rel logits at given heads == the full tensor read at those heads
    safe = heads.clamp(min=0)
    torch.testing.assert_close(
        rel_at, rel_full.gather(2, safe[:, :, None, None].expand(-1, -1, 1, 5)).squeeze(2)
    )
    torch.testing.assert_close(head.rel_logits_for(safe), rel_at)


def test_head_is_padding_invariant():
    torch.manual_seed(0)
    words, mask, _, _ = make_batch()
    head = BiaffineParserHead(16, 5).eval()
    arc, rel = head(words, mask)
    n = int(mask[1].sum())
    arc1, rel1 = head(words[1:2, :n], mask[1:2, :n])
    torch.testing.assert_close(arc[1:2, :n, : n + 1], arc1)
    torch.testing.assert_close(rel[1:2, :n, : n + 1], rel1)


def test_decode_batch_and_predict_never_choose_padding():
    torch.manual_seed(0)
    words, mask, _, _ = make_batch(lengths=(9, 1, 4, 7))
    head = BiaffineParserHead(16, 5).eval()
    arc, _ = head(words, mask)
    arc = arc + 50.0 * torch.rand(arc.shape)  # large random scores, padding still masked
    arc = head._mask_arcs(arc, mask)
    lengths = mask.sum(1).tolist()
    for heads, n in zip(decode_batch(arc, mask), lengths, strict=True):
        assert_tree(heads, n)
    heads, rels = head.predict(words, mask)
    assert [len(h) for h in heads] == lengths == [len(r) for r in rels]
    for h, r, n in zip(heads, rels, lengths, strict=True):
        assert_tree(h, n)
        assert all(0 <= x < 5 for x in r)
    with pytest.raises(ValueError, match="left-aligned"):
        decode_batch(arc, torch.tensor([[False, True] + [False] * 7] * 4))


def test_loss_ignores_padding_and_both_rel_forms_agree():
    torch.manual_seed(0)
    words, mask, heads, rels = make_batch()
    head = BiaffineParserHead(16, 5).eval()
    arc, rel_full = head(words, mask)
    _, rel_at = head(words, mask, heads=heads)
    a = parser_loss(arc, rel_at, heads, rels, mask)
    b = parser_loss(arc, rel_full, heads, rels, mask)
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a)
    other = heads.clone()
    other[~mask] = 3  # different junk at padding: same loss
    torch.testing.assert_close(parser_loss(arc, rel_full, other, rels, mask), b)


def test_gradient_flows_to_words_and_every_parameter():
    torch.manual_seed(0)
    words, mask, heads, rels = make_batch()
    words.requires_grad_(True)
    head = BiaffineParserHead(16, 5)
    arc, rel = head(words, mask, heads=heads)
    parser_loss(arc, rel, heads, rels, mask).backward()
    assert words.grad[mask].abs().sum(-1).gt(0).all()  # every real word gets gradient
    assert (words.grad[~mask] == 0).all()  # padding gets none
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_training_the_head_alone_fits_a_tiny_problem():
    torch.manual_seed(0)
    words, mask, heads, rels = make_batch(seed=1, lengths=(8, 5, 7, 3), hidden=32, n_rels=37)
    head = BiaffineParserHead(32, 37, arc_dim=100, rel_dim=50)  # 37 UD relations; small dims: fast
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        arc, rel = head(words, mask, heads=heads)
        loss = parser_loss(arc, rel, heads, rels, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]
    pred_heads, pred_rels = head.eval().predict(words, mask)
    gold = [heads[b, :n].tolist() for b, n in enumerate(mask.sum(1).tolist())]
    assert pred_heads == gold
    assert pred_rels == [rels[b, :n].tolist() for b, n in enumerate(mask.sum(1).tolist())]


def test_heads_tensor_pads():
    t = heads_tensor([[2, 0], [0]], 3, pad=-1)
    assert t.tolist() == [[2, 0, -1], [0, -1, -1]]
