"""Biaffine dependency parsing head (Dozat & Manning, 2017) and maximum-spanning-tree decoding.

The head sits on top of one vector per *syntactic word* (the first subword's hidden state,
gathered by the caller). It prepends a learned ROOT vector, so that head index 0 is the root and
head index j >= 1 is word j (1-based, as in CoNLL-U and `Sentence.heads`).

Shapes used throughout (B = batch, W = words in the longest sentence, R = relations):

* ``arc_scores[b, i, j]``, ``[B, W, W+1]``: score of head j (0 = ROOT) for dependent word i+1;
* ``rel_logits[b, i, r]``, ``[B, W, R]``: relation scores of word i+1 at one given head;
* full relation scores ``[B, W, W+1, R]``: relation scores for every (dependent, head) pair.

Decoding (`decode_mst`) is Chu-Liu/Edmonds with the single-root constraint enforced exactly,
so predicted trees may be non-projective (UD and PUD contain non-projective trees).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _neg(dtype: torch.dtype) -> float:
    """The most negative finite value of `dtype`: a mask value that survives fp16/bf16."""
    return torch.finfo(dtype).min


class _MLP(nn.Module):
    """Linear -> LeakyReLU(0.1) -> dropout, the per-role projection of the biaffine parser."""

    def __init__(self, n_in: int, n_out: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = nn.LeakyReLU(0.1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.linear(x)))


class BiaffineParserHead(nn.Module):
    """Deep biaffine attention parser head (Dozat & Manning, ICLR 2017).

    Four MLPs project each word (and the ROOT vector) into an arc-dependent, arc-head,
    relation-dependent and relation-head space (500 and 200 dimensions, dropout 0.33: the
    authors' setup). Arcs are scored by a biaffine form with a head bias,
    ``s[i, j] = dep_i^T U head_j + head_j^T u``; relations by a bilinear form over both
    vectors extended with a constant 1, ``s[i, j, r] = [dep_i; 1]^T U_r [head_j; 1]``, which
    contains the bilinear term, both linear terms and a per-relation bias.

    The biaffine weights start small and random, not at zero as in Dozat's code, so that the
    encoder below receives a gradient from the very first step.

    `forward(words, mask)` returns ``(arc_scores [B, W, W+1], rel_scores [B, W, W+1, R])``;
    `forward(words, mask, heads=heads)` returns ``(arc_scores, rel_logits [B, W, R])`` at the
    given heads only (what training needs: pass the gold heads; memory is then linear in W).
    `rel_logits_for(heads)` computes relation logits at other heads from the relation states
    of the most recent `forward` call (e.g. at MST-decoded heads), and `predict` does the
    whole evaluation path (arc scores, MST decoding, relations at the decoded heads).

    In `arc_scores`, padded heads and self-loops are set to the dtype's most negative finite
    value; rows of padded dependents are left as they are and must be ignored by the caller
    (`parser_loss` and `decode_batch` do).
    """

    def __init__(
        self,
        hidden_size: int,
        n_rels: int,
        arc_dim: int = 500,
        rel_dim: int = 200,
        dropout: float = 0.33,
    ):
        super().__init__()
        self.hidden_size, self.n_rels = hidden_size, n_rels
        self.arc_dim, self.rel_dim = arc_dim, rel_dim
        self.root = nn.Parameter(torch.randn(hidden_size))  # ~ the scale of LayerNorm outputs
        self.arc_dep = _MLP(hidden_size, arc_dim, dropout)
        self.arc_head = _MLP(hidden_size, arc_dim, dropout)
        self.rel_dep = _MLP(hidden_size, rel_dim, dropout)
        self.rel_head = _MLP(hidden_size, rel_dim, dropout)
        self.arc_weight = nn.Parameter(torch.randn(arc_dim, arc_dim) / arc_dim)
        self.arc_head_bias = nn.Parameter(torch.zeros(arc_dim))
        self.rel_weight = nn.Parameter(torch.randn(n_rels, rel_dim + 1, rel_dim + 1) / rel_dim)
        self._last_rel: tuple[torch.Tensor, torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, n_rels={self.n_rels}, arc_dim={self.arc_dim}, rel_dim={self.rel_dim}"

    def _with_root(self, words: torch.Tensor) -> torch.Tensor:
        root = self.root.to(words.dtype).expand(words.shape[0], 1, -1)
        return torch.cat([root, words], dim=1)  # [B, W+1, H]

    def arc_scores(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Arc scores ``[B, W, W+1]``, padded heads and self-loops masked."""
        x = self._with_root(words)
        dep = self.arc_dep(x[:, 1:])  # [B, W, A]
        head = self.arc_head(x)  # [B, W+1, A]
        scores = torch.einsum("bia,ac,bjc->bij", dep, self.arc_weight.to(dep.dtype), head)
        scores = scores + (head @ self.arc_head_bias.to(head.dtype)).unsqueeze(1)
        return self._mask_arcs(scores, mask)

    @staticmethod
    def _mask_arcs(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, w, _ = scores.shape
        root_ok = torch.ones(b, 1, dtype=torch.bool, device=mask.device)
        head_ok = torch.cat([root_ok, mask.bool()], dim=1)  # [B, W+1]
        idx = torch.arange(w, device=scores.device)
        self_loop = torch.zeros(w, w + 1, dtype=torch.bool, device=scores.device)
        self_loop[idx, idx + 1] = True
        forbidden = ~head_ok.unsqueeze(1) | self_loop.unsqueeze(0)
        return scores.masked_fill(forbidden, _neg(scores.dtype))

    def _rel_states(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._with_root(words)
        dep = self.rel_dep(x[:, 1:])  # [B, W, D]
        head = self.rel_head(x)  # [B, W+1, D]
        dep = torch.cat([dep, dep.new_ones(*dep.shape[:-1], 1)], dim=-1)
        head = torch.cat([head, head.new_ones(*head.shape[:-1], 1)], dim=-1)
        return dep, head

    def _rel_full(self, dep: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        w = self.rel_weight.to(dep.dtype)
        return torch.einsum("bid,rde,bje->bijr", dep, w, head)  # [B, W, W+1, R]

    def _rel_at(self, dep: torch.Tensor, head: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        heads = heads.long().clamp(0, head.shape[1] - 1)  # padded positions may hold -100 etc.
        chosen = head.gather(1, heads.unsqueeze(-1).expand(-1, -1, head.shape[-1]))  # [B, W, D]
        w = self.rel_weight.to(dep.dtype)
        return torch.einsum("bid,rde,bie->bir", dep, w, chosen)  # [B, W, R]

    def forward(
        self, words: torch.Tensor, mask: torch.Tensor, heads: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(arc_scores [B, W, W+1], rel)``: rel is ``[B, W, W+1, R]``, or ``[B, W, R]`` at `heads`.

        words: ``FloatTensor[B, W, H]``, one vector per syntactic word; mask: ``BoolTensor[B, W]``
        (real words first, padding after); heads: optional ``LongTensor[B, W]`` in 0..W.
        """
        if words.dim() != 3 or mask.shape != words.shape[:2]:
            raise ValueError(
                f"expected words [B, W, H] and mask [B, W]; got {tuple(words.shape)} and {tuple(mask.shape)}"
            )
        arc = self.arc_scores(words, mask)
        dep, head = self._rel_states(words)
        self._last_rel = (dep, head)
        if heads is None:
            return arc, self._rel_full(dep, head)
        return arc, self._rel_at(dep, head, heads)

    def rel_logits_for(self, heads: torch.Tensor) -> torch.Tensor:
        """Relation logits ``[B, W, R]`` at `heads` (``[B, W]``, 0..W), from the last `forward`."""
        if self._last_rel is None:
            raise RuntimeError("rel_logits_for needs a preceding forward() call on the same batch")
        dep, head = self._last_rel
        if heads.shape != dep.shape[:2]:
            raise ValueError(
                f"heads has shape {tuple(heads.shape)}; the last forward batch is {tuple(dep.shape[:2])}"
            )
        return self._rel_at(dep, head, heads.to(dep.device))

    @torch.no_grad()
    def predict(
        self, words: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[list[int]], list[list[int]]]:
        """MST-decoded heads (0 = root) and relation ids (argmax at those heads), unpadded.

        Dropout follows the module's mode: call ``.eval()`` first for deterministic output.
        """
        heads = decode_batch(self.arc_scores(words, mask), mask)
        dep, head = self._rel_states(words)
        padded = heads_tensor(heads, mask.shape[1]).to(words.device)
        rels = self._rel_at(dep, head, padded).argmax(-1).cpu()
        return heads, [rels[b, : len(h)].tolist() for b, h in enumerate(heads)]


def parser_loss(
    arc_scores: torch.Tensor,
    rel_logits: torch.Tensor,
    gold_heads: torch.Tensor,
    gold_rels: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Head cross-entropy plus relation cross-entropy at the gold head, each averaged over real words.

    rel_logits may be ``[B, W, R]`` (already at the gold heads, as from
    ``head(words, mask, heads=gold_heads)``) or the full ``[B, W, W+1, R]``; it is then read at
    the gold heads. Values of gold_heads/gold_rels at padded positions are ignored.
    """
    mask = mask.bool()
    arc_loss = F.cross_entropy(arc_scores[mask].float(), gold_heads[mask].long())
    if rel_logits.dim() == 4:
        idx = gold_heads.long().clamp(0, rel_logits.shape[2] - 1)
        idx = idx[:, :, None, None].expand(-1, -1, 1, rel_logits.shape[-1])
        rel_logits = rel_logits.gather(2, idx).squeeze(2)
    rel_loss = F.cross_entropy(rel_logits[mask].float(), gold_rels[mask].long())
    return arc_loss + rel_loss


# --------------------------------------------------------------------------------------------
# Decoding: Chu-Liu/Edmonds with exactly one child of the root.
#
# Single-root constraint and forbidden edges, exactly: every edge weight is a pair
# (penalty, score), compared lexicographically and added componentwise. The integer penalty is
# -(n+1) for an edge from the root and -1 for a forbidden edge (NaN or -inf score, whose score
# part is then 0). Every spanning arborescence has at least one root edge and at most n forbidden
# edges, so the maximum one under these weights has exactly one root child, then the fewest
# forbidden edges, then the highest total score. It is the usual trick of subtracting a constant
# larger than any score difference from every root edge, made exact: no constant is chosen, so no
# precision is lost whatever the scale of the scores. Chu-Liu/Edmonds is correct for weights in any
# totally ordered abelian group, and these pairs are one. One run suffices, unlike trying every
# root child in turn (Dozat et al. 2017, Stanza), which adds a factor of n; Zmigrod, Vieira &
# Cotterell (EMNLP 2020, "Please Mind the Root") adapt Gabow & Tarjan's O(n^2) algorithm instead.
# --------------------------------------------------------------------------------------------


def _lex_argmax(pen: np.ndarray, sc: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise argmax of (pen, sc) pairs over valid entries; first index wins ties."""
    p = np.where(valid, pen, np.iinfo(np.int64).min)
    top = p == p.max(axis=1, keepdims=True)
    return np.where(valid & top, sc, -np.inf).argmax(axis=1)


def _find_cycle(heads: np.ndarray) -> list[int] | None:
    """One cycle of the head graph (node 0 is the root and has no head), or None."""
    m = len(heads)
    state = np.zeros(m, dtype=np.int64)  # 0 unseen, k > 0: seen on walk k
    state[0] = -1
    for start in range(1, m):
        if state[start]:
            continue
        v = start
        while state[v] == 0:
            state[v] = start
            v = heads[v]
        if state[v] == start:  # came back onto this walk: a cycle through v
            cycle = [v]
            u = heads[v]
            while u != v:
                cycle.append(u)
                u = heads[u]
            return cycle
    return None


def _chu_liu_edmonds(pen: np.ndarray, sc: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Maximum spanning arborescence rooted at node 0; ``[d, h]`` is the edge h -> d."""
    heads = _lex_argmax(pen, sc, valid)
    heads[0] = 0
    cycle = _find_cycle(heads)
    if cycle is None:
        return heads
    m = len(heads)
    in_cycle = np.zeros(m, dtype=bool)
    in_cycle[cycle] = True
    cyc = np.flatnonzero(in_cycle)
    out = np.flatnonzero(~in_cycle)  # out[0] == 0: the root is never on a cycle
    k = len(out)  # index of the contracted node in the smaller graph
    P = np.zeros((k + 1, k + 1), dtype=np.int64)
    S = np.zeros((k + 1, k + 1), dtype=np.float64)
    V = np.zeros((k + 1, k + 1), dtype=bool)
    oo = np.ix_(out, out)
    P[:k, :k], S[:k, :k], V[:k, :k] = pen[oo], sc[oo], valid[oo]
    # Cycle -> outside word d: the best cycle node as head of d.
    oc = np.ix_(out, cyc)
    p_oc, s_oc, v_oc = pen[oc], sc[oc], valid[oc]
    best_head = _lex_argmax(p_oc, s_oc, v_oc)
    r = np.arange(k)
    P[:k, k], S[:k, k], V[:k, k] = p_oc[r, best_head], s_oc[r, best_head], v_oc.any(axis=1)
    # Outside head h -> cycle: enter at c, breaking c's cycle edge: w(h->c) - w(heads[c]->c).
    co = np.ix_(cyc, out)
    p_co = (pen[co] - pen[cyc, heads[cyc]][:, None]).T  # [k, |cyc|]
    s_co = (sc[co] - sc[cyc, heads[cyc]][:, None]).T
    v_co = valid[co].T
    best_entry = _lex_argmax(p_co, s_co, v_co)
    P[k, :k], S[k, :k], V[k, :k] = p_co[r, best_entry], s_co[r, best_entry], v_co.any(axis=1)
    V[0, :] = False
    sub = _chu_liu_edmonds(P, S, V)
    result = heads.copy()  # cycle words keep their cycle heads, except the entry word
    for i in range(1, k):
        h = sub[i]
        result[out[i]] = out[h] if h < k else cyc[best_head[i]]
    h = sub[k]
    result[cyc[best_entry[h]]] = out[h]
    return result


def _is_single_root_tree(heads: np.ndarray) -> bool:
    """heads[0] is a placeholder; words are 1..n."""
    return int((heads[1:] == 0).sum()) == 1 and _find_cycle(heads) is None


def decode_mst(scores: np.ndarray) -> list[int]:
    """Best dependency tree with exactly one word attached to the root.

    scores: ``[n, n+1]``; row i is word i+1, column j its head j (0 = root). Returns the heads
    of words 1..n (values in 0..n): a tree (no cycles, no self-heads) with exactly one root
    child, of maximal total score among all such trees (non-projective allowed).

    Algorithm: Chu-Liu/Edmonds with the single-root constraint enforced exactly (root edges
    penalised lexicographically, see the comment above `_lex_argmax`), O(n^3) in the worst case
    and O(n^2) when the row-wise argmax (``np.argmax``, first index on ties) is already a
    single-root tree, which it then returns unchanged.

    Self-loop scores are ignored. NaN and -inf mark forbidden edges: a tree uses one only when
    no tree avoids it (fewest forbidden edges first, exactly). Large negative finite mask values
    (-1e9, the float32 minimum) are simply very low scores. +inf raises ValueError.
    """
    s = np.array(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != s.shape[0] + 1:
        raise ValueError(f"scores must have shape [n, n+1]; got {s.shape}")
    n = s.shape[0]
    if n == 0:
        return []
    valid = np.ones((n + 1, n + 1), dtype=bool)
    valid[0] = False
    np.fill_diagonal(valid, False)
    full = np.zeros((n + 1, n + 1), dtype=np.float64)
    full[1:] = s
    full[~valid] = 0.0
    if np.isposinf(full).any():
        raise ValueError("scores contain +inf; use finite scores (NaN or -inf forbid an edge)")
    forbidden = ~np.isfinite(full)
    full[forbidden] = 0.0
    pen = -forbidden.astype(np.int64)
    heads = _lex_argmax(pen, full, valid)  # == np.argmax of the scores, NaN counting as -inf
    heads[0] = 0
    if _is_single_root_tree(heads):
        return heads[1:].tolist()
    pen[:, 0] -= n + 1
    heads = _chu_liu_edmonds(pen, full, valid)
    return heads[1:].tolist()


def decode_batch(
    arc_scores: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray
) -> list[list[int]]:
    """`decode_mst` per sentence of a padded batch; returns unpadded head lists.

    arc_scores ``[B, W, W+1]``; mask ``[B, W]`` with each sentence's words first.
    """
    if isinstance(arc_scores, torch.Tensor):
        arc_scores = arc_scores.detach().float().cpu().numpy()
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask, dtype=bool)
    out = []
    for b in range(arc_scores.shape[0]):
        n = int(mask[b].sum())
        if not mask[b, :n].all():
            raise ValueError(f"mask row {b} is not left-aligned (real words must come first)")
        out.append(decode_mst(arc_scores[b, :n, : n + 1]))
    return out


def heads_tensor(heads: Sequence[Sequence[int]], width: int, pad: int = 0) -> torch.Tensor:
    """Pad per-sentence head lists into a ``LongTensor[B, width]``."""
    out = torch.full((len(heads), width), pad, dtype=torch.long)
    for b, h in enumerate(heads):
        out[b, : len(h)] = torch.as_tensor(list(h), dtype=torch.long)
    return out
