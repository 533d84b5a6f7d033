"""Centred kernel alignment (CKA) between hidden representations (the sentence vectors it compares
come from `evaluation.mean_pooled_states`).

CKA (Kornblith et al., ICML 2019) compares two representations X [n, d1] and Y [n, d2] of the
same n examples:

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   HSIC(K, L) = tr(K H L H) / (n - 1)^2

with K, L the Gram matrices of X and Y and H = I - 11^T / n the centring matrix. Nothing here
forms H: linear CKA uses the feature-space identity

    tr(K H L H) = ||Yc^T Xc||_F^2   (Xc, Yc: column-centred features),

or the equal Gram-space contraction <Xc Xc^T, Yc Yc^T>_F when n is small compared with d. For
Gram matrices (RBF, or linear with small n) no centred matrix is formed either: for symmetric
K, L, tr(K H L H) = <K, L>_F - 2 r_K.r_L / n + s_K s_L / n^2 (r: row sums, s: total), three dot
products per pair of layers; the debiased estimator and `cka_matrix` centre each kernel once,
with row and column means. The (n - 1)^2 factors cancel in the ratio. Everything is computed in
float64.

How the RBF path is fast (13 layers x 1000 sentences x 768 dimensions: see benchmarks/speed.py):
each layer is column-centred, its Gram product X X^T goes to BLAS syrk through numpy on the CPU
(half the multiply-adds of a general product), the distances are built in place, their median is
found by selection (a sampled bracket, then `np.partition` on a few percent of the values, never
a sort), and the kernel is shifted and scaled to exp(u) - 1 (the same CKA; entries around 0, so
that the dot products above lose no digits). The numpy work of all layers comes first (several
layers side by side, one thread per core: numpy's element-wise loops release the GIL but use one
core each), then the torch work layer by layer while two n x n matrices sit in the cache.

`debiased=True` replaces the biased HSIC by the unbiased estimator of Song et al. (JMLR 2012),
as in the debiased CKA of Nguyen, Raghu & Kornblith (ICLR 2021): the biased estimator is large
even for independent data when n is small relative to d, the debiased one is then near 0 (and may
be slightly negative). It needs n >= 4.

The RBF bandwidth follows the code released with Kornblith et al. (google-research,
`representation_similarity`): sigma^2 = sigma_frac^2 x median of the squared pairwise distances,
the median being taken over the full n x n distance matrix (zero diagonal included). The usual
"RBF 0.8" of the paper is `sigma_frac=0.8`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["cka", "cka_per_layer", "cka_matrix", "cka_reference", "cka_halves"]

_KERNELS = ("linear", "rbf")


# --------------------------------------------------------------------------------------------
# The definition, as written (for reading, and to test the fast path below against)
# --------------------------------------------------------------------------------------------


def cka_reference(X, Y, kernel: str = "linear", sigma_frac: float = 0.8) -> float:
    """CKA straight from its definition, in numpy: Gram matrices K and L, the centring matrix
    H = I - 11^T/n, HSIC(K, L) = tr(K H L H) / (n-1)^2, CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
    RBF: K_ij = exp(-d_ij / (2 sigma^2)), d the squared distances, sigma^2 = sigma_frac^2 x median(d).
    O(n^3) and n x n memory: `cka` gives the same number fast."""
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    x, y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    n = x.shape[0]

    def gram(z):
        if kernel == "linear":
            return z @ z.T
        d = np.maximum(np.sum(z**2, 1)[:, None] + np.sum(z**2, 1)[None, :] - 2 * z @ z.T, 0.0)
        np.fill_diagonal(d, 0.0)
        return np.exp(-d / (2 * sigma_frac**2 * np.median(d)))

    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(k, l):  # noqa: E741
        return np.trace(k @ h @ l @ h) / (n - 1) ** 2

    k, l = gram(x), gram(y)  # noqa: E741
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


# --------------------------------------------------------------------------------------------
# CKA, the fast path
# --------------------------------------------------------------------------------------------


def _as_states(x, device: torch.device | None = None) -> torch.Tensor:
    """A float64 tensor; a list/tuple of tensors (e.g. HF `hidden_states`) is stacked first."""
    if isinstance(x, (list, tuple)):
        x = torch.stack([torch.as_tensor(t) for t in x])
    t = torch.as_tensor(x)
    return t.to(device=t.device if device is None else device, dtype=torch.float64)


def _check(kernel: str, debiased: bool, n: int) -> None:
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if debiased and n < 4:
        raise ValueError(f"debiased CKA needs at least 4 examples, got n={n}")
    if n < 2:
        raise ValueError(f"CKA needs at least 2 examples, got n={n}")


def _centre_columns(x: torch.Tensor) -> torch.Tensor:
    """Subtract the mean over examples (dim -2) from [..., n, d] features."""
    return x - x.mean(dim=-2, keepdim=True)


def _prefer_gram(n: int, d1: int, d2: int) -> bool:
    """Whether the n x n Gram contraction is cheaper than the d1 x d2 feature-space one."""
    return n * (d1 + d2) < d1 * d2 + d1 * d1 + d2 * d2


def _debias_linear(xty, rows_dot, sums_prod, n: int):
    """Song et al.'s unbiased HSIC x n(n-3) for linear kernels of column-centred features.

    xty = ||Yc^T Xc||_F^2, rows_dot = sum_i ||xc_i||^2 ||yc_i||^2, sums_prod = ||Xc||_F^2 ||Yc||_F^2.
    (Same helper as the feature-space debiased CKA of Kornblith et al.'s released code.)
    """
    return xty - n / (n - 2.0) * rows_dot + sums_prod / ((n - 1.0) * (n - 2.0))


def _numpy_cpu(x: torch.Tensor) -> np.ndarray | None:
    """A float64 CPU tensor as a C-contiguous numpy array (sharing memory if it can); else None.

    On the CPU the n x n work goes through numpy: its matmul recognises a matrix times its own
    transpose and calls BLAS syrk (half the multiply-adds of a general product, an exactly
    symmetric result), and its selection (`np.partition`) is several times faster than torch's.
    """
    if x.device.type != "cpu" or x.dtype != torch.float64:
        return None
    return np.ascontiguousarray(x.detach().numpy())


def _centred_grams(x: torch.Tensor) -> torch.Tensor:
    """Xc Xc^T for features [L, n, d], each layer column-centred first: a new [L, n, n] tensor
    that the caller may overwrite. On the CPU one layer at a time through numpy (BLAS syrk)."""
    a = _numpy_cpu(x)
    if a is None:
        x = _centre_columns(x)
        return x @ x.mT
    out = np.empty((a.shape[0], a.shape[1], a.shape[1]))
    xc = np.empty(a.shape[1:])
    for i in range(a.shape[0]):
        np.subtract(a[i], a[i].mean(axis=0), out=xc)
        np.matmul(xc, xc.T, out=out[i])  # syrk: numpy sees a matrix times its own transpose
    return torch.from_numpy(out)


def _kth_pair(flat: np.ndarray, k1: int, k2: int) -> tuple[float, float]:
    """The k1-th and k2-th smallest values (0-based, k1 <= k2) of a 1-D array, exactly.

    Selection, not sorting: a strided sample of about 16k values brackets both ranks (5 binomial
    standard deviations either side), two comparisons and one masked copy keep the few percent
    of values inside the bracket, and `np.partition` finds both ranks among them. Should the
    bracket miss (a sample that does not represent the data: the answer stays exact, only slower),
    `np.partition` runs on everything.
    """
    m = flat.size
    if m > 1 << 16:
        sample = np.sort(flat[:: m // (1 << 14)])
        s = sample.size
        margin = int(5 * (s / 4) ** 0.5) + 2  # 5 sigma of a binomial count at p = 1/2
        i_lo, i_hi = k1 * s // m - margin, -(-k2 * s // m) + margin
        if i_lo >= 0 or i_hi < s:
            lo = sample[i_lo] if i_lo >= 0 else -np.inf
            hi = sample[i_hi] if i_hi < s else np.inf
            inside = flat >= lo
            below = m - int(np.count_nonzero(inside))
            np.logical_and(inside, flat <= hi, out=inside)
            keep = flat[inside]
            a, b = k1 - below, k2 - below
            if 0 <= a and b < keep.size:
                part = np.partition(keep, (a, b))
                return float(part[a]), float(part[b])
    part = np.partition(flat, (k1, k2))
    return float(part[k1]), float(part[k2])


def _np_rbf_exponent_(s: np.ndarray, k1: int, k2: int, sigma_frac: float) -> None:
    """`_rbf_exponents_` for one layer's float64 Gram matrix [n, n], in place, in numpy."""
    norms = s.diagonal().copy()
    s *= -2.0
    s += norms[:, None]
    s += norms[None, :]
    np.maximum(s, 0.0, out=s)
    np.fill_diagonal(s, 0.0)
    lo, hi = _kth_pair(s.reshape(-1), k1, k2)
    median = (lo + hi) / 2
    scale = 2 * sigma_frac**2 * median
    s -= median
    # A zero median (more than half the points identical) leaves the bandwidth undefined: NaN.
    s /= -scale if scale > 0 else np.nan


def _layer_threads(layers: int) -> int:
    """Threads for per-layer numpy work: numpy's element-wise loops and selection run on one core
    and release the GIL, so layers can run side by side, one per core torch may use."""
    return max(1, min(layers, torch.get_num_threads()))


def _rbf_exponents_(g: torch.Tensor, sigma_frac: float) -> torch.Tensor:
    """(median - d_ij) / (2 sigma^2), in place on Gram matrices [L, n, n] of column-centred
    features: d_ij = g_ii + g_jj - 2 g_ij the squared distances, sigma^2 = sigma_frac^2 x their
    median over the full n x n matrix (zero diagonal included), as in Kornblith et al.'s code.
    """
    n = g.shape[-1]
    m = n * n
    k1, k2 = (m - 1) // 2, m // 2  # = np.median: the mean of the two middle values (one if m is odd)
    if g.device.type == "cpu" and g.dtype == torch.float64 and g.is_contiguous():
        # numpy, in place (the arrays share g's memory), one layer per thread
        layers = list(g.numpy())
        threads = _layer_threads(len(layers))
        if threads == 1:
            for s in layers:
                _np_rbf_exponent_(s, k1, k2, sigma_frac)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda s: _np_rbf_exponent_(s, k1, k2, sigma_frac), layers))
        return g
    norms = g.diagonal(dim1=-2, dim2=-1).clone()
    sq = g.mul_(-2.0).add_(norms[..., :, None]).add_(norms[..., None, :]).clamp_min_(0.0)
    sq.diagonal(dim1=-2, dim2=-1).zero_()
    flat = sq.flatten(-2)
    lo = flat.kthvalue(k1 + 1, dim=-1).values
    hi = lo if k1 == k2 else flat.kthvalue(k2 + 1, dim=-1).values
    median = (lo + hi) / 2
    scale = 2 * sigma_frac**2 * median
    scale = torch.where(scale > 0, scale, torch.full_like(scale, float("nan")))
    return sq.sub_(median[:, None, None]).div_(-scale[:, None, None])


def _rbf_exponents(xs: Sequence[torch.Tensor], sigma_frac: float) -> list[torch.Tensor]:
    """`_rbf_exponents_` of the centred Grams of every representation in `xs`.

    All the Gram products (BLAS) come first, then all the element-wise numpy work: BLAS threads
    spin for a while after a call, and torch's threads, which come next, would wait for them.
    """
    return [_rbf_exponents_(g, sigma_frac) for g in [_centred_grams(x) for x in xs]]


def _exp_minus_one_(u: torch.Tensor) -> torch.Tensor:
    """exp(u) - 1 in place: the RBF kernel shifted and scaled (see `_grams`)."""
    return u.exp_().sub_(1.0)


def _grams(xs: Sequence[torch.Tensor], kernel: str, sigma_frac: float) -> list[torch.Tensor]:
    """Uncentred Gram matrices [L, n, n] of each of the representations `xs` ([L, n, d] each).

    Linear: X X^T of the column-centred features. RBF: exp(-d_ij / (2 sigma^2)), shifted and
    scaled to K / c - 1 with c the kernel's value at the median distance (computed as exp(u) - 1,
    u = (median - d_ij) / (2 sigma^2)): centring (H K H, and U-centring) ignores a constant and
    CKA a positive factor, so the CKA is the same, but the entries are spread around 0 instead of
    around c and the centred products lose fewer digits to cancellation. The numpy part of every
    representation runs before the torch part of any (alternating numpy's BLAS threads with
    torch's OpenMP threads makes each wait for the other).
    """
    if kernel == "linear":
        return [_centred_grams(x) for x in xs]
    return [_exp_minus_one_(u) for u in _rbf_exponents(xs, sigma_frac)]


def _centre_gram_(k: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Centre Gram matrices [..., n, n] in place. Biased: H K H, done with row/column means.
    Debiased: U-centring.

    U-centring (Szekely & Rizzo 2014, as in Kornblith et al.'s code) makes <U(K), U(L)>_F equal
    to n(n-3) times Song et al.'s unbiased HSIC estimator.
    """
    if not debiased:
        rows, cols = k.mean(dim=-1, keepdim=True), k.mean(dim=-2, keepdim=True)
        mean = k.mean(dim=(-2, -1), keepdim=True)
        return k.sub_(rows).sub_(cols).add_(mean)
    n = k.shape[-1]
    k.diagonal(dim1=-2, dim2=-1).zero_()
    means = k.sum(dim=-2) / (n - 2)
    means = means - means.sum(dim=-1, keepdim=True) / (2 * (n - 1))
    k.sub_(means[..., :, None]).sub_(means[..., None, :])
    k.diagonal(dim1=-2, dim2=-1).zero_()
    return k


def _centred_products(k: torch.Tensor, l: torch.Tensor, finish=None) -> tuple[torch.Tensor, ...]:  # noqa: E741
    """<HKH, HLH>_F, <HKH, HKH>_F and <HLH, HLH>_F per layer, from uncentred Grams [L, n, n],
    symmetric up to rounding (`finish`, if given, completes each layer's matrix in place first).

    No centred matrix is formed: for symmetric K, L (H is idempotent)
    <HKH, HLH> = <K, HLH> = <K, L> - 2 r_K.r_L / n + s_K s_L / n^2, with r the row sums and s the
    total. Three dot products and two row sums replace the two centrings (several passes over an
    n x n matrix each). One layer at a time, so that both matrices stay in the cache.
    """
    n = k.shape[-1]
    out = k.new_empty(3, k.shape[0])
    for i in range(k.shape[0]):
        a, b = k[i], l[i]
        if finish is not None:
            finish(a), finish(b)
        ra, rb = a.sum(-1), b.sum(-1)
        sa, sb = ra.sum(), rb.sum()
        a, b = a.reshape(-1), b.reshape(-1)
        out[0, i] = torch.dot(a, b) - 2 * torch.dot(ra, rb) / n + sa * sb / (n * n)
        out[1, i] = torch.dot(a, a) - 2 * torch.dot(ra, ra) / n + sa * sa / (n * n)
        out[2, i] = torch.dot(b, b) - 2 * torch.dot(rb, rb) / n + sb * sb / (n * n)
    return out[0], out[1], out[2]


def _cka_batched(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str,
    debiased: bool,
    sigma_frac: float,
    pairwise: bool,
) -> torch.Tensor:
    """CKA of x [A, n, d1] with y [B, n, d2]: [A] (A == B) if not pairwise, else [A, B]."""
    n = x.shape[-2]
    _check(kernel, debiased, n)
    if y.shape[-2] != n:
        raise ValueError(f"both representations need the same examples: n={n} vs {y.shape[-2]}")

    def dot(a, b):  # sum over the last axis, matched (paired) or all pairs (pairwise)
        return a @ b.T if pairwise else (a * b).sum(-1)

    def outer(a, b):
        return a[:, None] * b[None, :] if pairwise else a * b

    if kernel == "linear" and not _prefer_gram(n, x.shape[-1], y.shape[-1]):
        x, y = _centre_columns(x), _centre_columns(y)
        if pairwise:
            xty = torch.stack([(y.mT @ xa).square().sum((-2, -1)) for xa in x])
        else:
            xty = (y.mT @ x).square().sum((-2, -1))
        xtx = (x.mT @ x).square().sum((-2, -1))
        yty = (y.mT @ y).square().sum((-2, -1))
        if debiased:
            rx, ry = x.square().sum(-1), y.square().sum(-1)
            sx, sy = rx.sum(-1), ry.sum(-1)
            xty = _debias_linear(xty, dot(rx, ry), outer(sx, sy), n)
            xtx = _debias_linear(xtx, rx.square().sum(-1), sx * sx, n)
            yty = _debias_linear(yty, ry.square().sum(-1), sy * sy, n)
    elif not pairwise and not debiased:  # the three biased HSIC terms, no centred matrix formed
        if kernel == "linear":
            xty, xtx, yty = _centred_products(*_grams((x, y), kernel, sigma_frac))
        else:  # the numpy part of both first, then exp(u) - 1 layer by layer in torch
            xty, xtx, yty = _centred_products(*_rbf_exponents((x, y), sigma_frac), finish=_exp_minus_one_)
    else:
        kx, ky = (_centre_gram_(k, debiased).flatten(-2) for k in _grams((x, y), kernel, sigma_frac))
        xty = dot(kx, ky)
        xtx, yty = (torch.stack([torch.dot(k, k) for k in kk]) for kk in (kx, ky))
    return xty / torch.sqrt(outer(xtx.clamp_min(0.0), yty.clamp_min(0.0)))


def cka(X, Y, kernel: str = "linear", debiased: bool = False, sigma_frac: float = 0.8) -> float:
    """CKA between X [n, d1] and Y [n, d2] (torch tensors or arrays; rows = the same examples).

    kernel: "linear" or "rbf" (Gaussian, bandwidth sigma_frac x median distance).
    debiased: use the unbiased HSIC estimator (needs n >= 4). Returns NaN for a constant input.
    """
    x = _as_states(X)
    y = _as_states(Y, device=x.device)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"cka expects two [n, d] matrices, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return float(_cka_batched(x[None], y[None], kernel, debiased, sigma_frac, pairwise=False)[0])


def _layer_pair(states_a, states_b, same_layers: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as [L, n, d] tensors on `states_a`'s device (with equal L if asked)."""
    a = _as_states(states_a)
    b = _as_states(states_b, device=a.device)
    if a.ndim != 3 or b.ndim != 3 or (same_layers and a.shape[0] != b.shape[0]):
        same = " with the same L" if same_layers else ""
        raise ValueError(f"expected two [L, n, d] tensors{same}, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def cka_per_layer(
    states_a,
    states_b,
    kernel: str = "linear",
    debiased: bool = False,
    sigma_frac: float = 0.8,
) -> np.ndarray:
    """CKA of layer l of `states_a` with layer l of `states_b`, for every l: float64 array [L].

    states_*: [L, n, d] tensors (or a list/tuple of [n, d] tensors, e.g. HF `hidden_states`),
    row i of both being the same example (e.g. a sentence and its translation). All layers are
    done at once with batched matmuls in float64 on the device of `states_a`.
    """
    a, b = _layer_pair(states_a, states_b, same_layers=True)
    out = _cka_batched(a, b, kernel, debiased, sigma_frac, pairwise=False)
    return out.cpu().numpy()


def cka_matrix(
    states_a,
    states_b,
    kernel: str = "linear",
    debiased: bool = False,
    sigma_frac: float = 0.8,
) -> np.ndarray:
    """CKA of every layer of `states_a` [La, n, d1] with every layer of `states_b` [Lb, n, d2].

    Returns a float64 array [La, Lb] (entry [i, j]: layer i of a vs layer j of b), for a heatmap.
    """
    a, b = _layer_pair(states_a, states_b, same_layers=False)
    out = _cka_batched(a, b, kernel, debiased, sigma_frac, pairwise=True)
    return out.cpu().numpy()


def cka_halves(states_a, states_b, halves: np.ndarray) -> np.ndarray:
    """Debiased linear CKA of every layer on each sub-sample `halves[b]` of the examples (rows of
    indices, [B, m]), all at once: float64 [B, L], row b equal to
    `cka_per_layer(states_a[:, halves[b]], states_b[:, halves[b]], debiased=True)`.

    For the intervals of `analysis` (random halves of the sentences). The Gram matrices of the whole
    sample are formed once; every sum over a sub-sample is a product with its 0/1 indicator w (the
    unbiased HSIC's tr(K~L~) restricted to it is w'(K∘L)w minus the diagonal, its row sums wK, ...),
    so no sub-matrix is copied. The unbiased HSIC does not depend on the features' means, so the
    columns are centred once, over the whole sample."""
    a, b = _layer_pair(states_a, states_b, same_layers=True)
    a, b = _centre_columns(a).cpu(), _centre_columns(b).cpu()
    k, l = a @ a.transpose(-1, -2), b @ b.transpose(-1, -2)  # noqa: E741
    idx = torch.as_tensor(np.asarray(halves))
    w = torch.zeros(len(idx), k.shape[-1], dtype=k.dtype).scatter_(1, idx, 1.0)
    m = idx.shape[1]
    _check("linear", True, m)

    def parts(g):  # diagonal [L, n]; row sums within each sub-sample without the diagonal, [L, B, n]
        d = g.diagonal(dim1=-2, dim2=-1)
        return d, torch.matmul(w, g) - d[:, None, :]

    def hsic(g1, g2, p1, p2):  # Song et al.'s unbiased HSIC x m(m - 3), per layer and sub-sample
        (d1, r1), (d2, r2) = p1, p2
        trace = (torch.matmul(w, g1 * g2) * w).sum(-1) - (d1 * d2) @ w.T
        t1, t2 = (r1 * w).sum(-1), (r2 * w).sum(-1)
        return trace + t1 * t2 / ((m - 1) * (m - 2)) - (r1 * r2 * w).sum(-1) * 2 / (m - 2)

    pk, pl = parts(k), parts(l)
    return (hsic(k, l, pk, pl) / torch.sqrt(hsic(k, k, pk, pk) * hsic(l, l, pl, pl))).T.numpy()
