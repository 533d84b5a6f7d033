"""CKA speed (section 3 of benchmarks/speed.py), 13 layers x 1000 x 768 float64:
`xlt_utils.similarity.cka_per_layer` vs the numpy implementation of Kornblith et al.'s released code
(Gram matrices centred with means), vs the same with an explicit centring matrix H (O(n^3)), and vs
the time of its Gram products alone (Xc Xc^T and Yc Yc^T of every layer); one warm-up call each, the
same timed repeats, interleaved (median). Needs no data.

    python benchmarks/speed_cka.py [--smoke] [--out ...]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from speed_common import log


def _np_gram(x: np.ndarray, kernel: str, sigma_frac: float) -> np.ndarray:
    """Linear or RBF Gram matrix; RBF bandwidth: sigma_frac^2 x median squared distance (all pairs)."""
    g = x @ x.T
    if kernel == "linear":
        return g
    sq_norms = np.diag(g)
    sq = sq_norms[:, None] + sq_norms[None, :] - 2.0 * g
    return np.exp(-sq / (2.0 * sigma_frac**2 * np.median(sq)))


def _np_centre(k: np.ndarray) -> np.ndarray:
    """H K H with the explicit centring matrix H = I - 11^T / n (O(n^3))."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ k @ h


def _np_centre_means(k: np.ndarray) -> np.ndarray:
    """H K H computed with row and column means (O(n^2)), as `center_gram` in Kornblith et al.'s code."""
    means = k.mean(axis=0)
    means -= means.mean() / 2
    return k - means[:, None] - means[None, :]


def np_cka_kornblith(x, y, kernel: str, sigma_frac: float = 0.8) -> float:
    """CKA as in the code released with Kornblith et al. (2019): each Gram matrix formed once and
    centred with means, then <Kc, Lc>_F / (||Kc||_F ||Lc||_F). The reference the target is against."""
    k = _np_centre_means(_np_gram(x, kernel, sigma_frac))
    m = _np_centre_means(_np_gram(y, kernel, sigma_frac))
    return np.sum(k * m) / np.sqrt(np.sum(k * k) * np.sum(m * m))


def np_cka_explicit_h(x, y, kernel: str, sigma_frac: float = 0.8) -> float:
    """The same with H K H formed through the explicit centring matrix (O(n^3)): the second row."""
    k = _np_centre(_np_gram(x, kernel, sigma_frac))
    m = _np_centre(_np_gram(y, kernel, sigma_frac))
    return np.sum(k * m) / np.sqrt(np.sum(k * k) * np.sum(m * m))


def cka_inputs(layers: int, n: int, dim: int, seed: int = 0):
    """Random [L, n, d] float64 states; layer l of b is a noisier copy of layer l of a."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((layers, n, dim))
    mix = np.linspace(0.9, 0.3, layers)[:, None, None]
    b = mix * a + np.sqrt(1 - mix**2) * rng.standard_normal((layers, n, dim))
    return a, b


def _timed_sides(sides: dict, repeats: int) -> dict:
    """{name: (median seconds, every repeat's seconds, last result)} for each callable in `sides`:
    every side gets one warm-up call, then `repeats` timed calls, the sides taking turns (round
    robin) so that all of them see the same machine load."""
    results = {name: fn() for name, fn in sides.items()}  # the warm-up calls
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), times[name], results[name]) for name in sides}


def gram_products(ta: torch.Tensor, tb: torch.Tensor):
    """The Gram products of a CKA per layer alone: Xc Xc^T and Yc Yc^T of every layer (columns
    centred), formed exactly as `cka_per_layer` forms them (float64 on the CPU: numpy, BLAS syrk,
    one layer at a time). Linear CKA's kernels are these; RBF's are computed from them."""
    from xlt_utils.similarity import _centred_grams

    return _centred_grams(ta), _centred_grams(tb)


def bench_cka(cfg: dict) -> dict:
    """Ours vs the numpy references and vs its own Gram products alone, every side with the same
    warm-up call and the same repeats, interleaved."""
    from xlt_utils.similarity import cka_per_layer

    c = cfg["cka"]
    a, b = cka_inputs(c["layers"], c["n"], c["dim"])
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out = {"layers": c["layers"], "n": c["n"], "dim": c["dim"], "dtype": "float64", "repeats": c["repeats"],
           "warmup_calls": 1}
    for kernel in ("rbf", "linear"):
        log(f"CKA {kernel}")
        t = _timed_sides({
            "ours": lambda kernel=kernel: cka_per_layer(ta, tb, kernel=kernel),
            "gram": lambda: gram_products(ta, tb),
            "kornblith": lambda kernel=kernel: np.array([np_cka_kornblith(a[i], b[i], kernel)
                                                         for i in range(c["layers"])]),
            "explicit_h": lambda kernel=kernel: np.array([np_cka_explicit_h(a[i], b[i], kernel)
                                                          for i in range(c["layers"])]),
        }, c["repeats"])
        (ours_s, ours_t, ours), (gram_s, gram_t, _) = t["ours"], t["gram"]
        (kor_s, kor_t, kor), (h_s, h_t, with_h) = t["kornblith"], t["explicit_h"]
        out[kernel] = {
            "ours_s": ours_s, "ours_repeats": ours_t, "numpy_kornblith_s": kor_s, "numpy_kornblith_repeats": kor_t,
            "numpy_explicit_h_s": h_s, "numpy_explicit_h_repeats": h_t,
            "gram_products_s": gram_s, "gram_products_repeats": gram_t, "gram_products": 2 * c["layers"],
            "ours_vs_gram": ours_s / gram_s,
            "ratio": kor_s / ours_s, "ratio_vs_explicit_h": h_s / ours_s,
            "max_abs_diff": float(max(np.abs(ours - kor).max(), np.abs(ours - with_h).max())),
            "values_ours": ours.tolist(), "values_numpy": kor.tolist(),
        }
    return out


def table_rows(ck: dict) -> list[str]:
    """The CKA rows of speed.py's table."""
    lines = []
    for kernel in ("rbf", "linear"):
        k = ck[kernel]
        lines += [
            f"{f'CKA {kernel}, seconds (numpy: means)':34s} {k['ours_s']:12.3f} {k['numpy_kornblith_s']:12.3f} "
            f"{k['ratio']:7.1f}x",
            f"{'  vs numpy, explicit H':34s} {'':12s} {k['numpy_explicit_h_s']:12.3f} {k['ratio_vs_explicit_h']:7.1f}x",
            f"{'  vs its Gram products alone':34s} {'':12s} {k['gram_products_s']:12.3f} "
            f"{k['gram_products_s'] / k['ours_s']:7.2f}x",
        ]
    return lines


def main(argv: list[str] | None = None) -> dict:
    from speed_common import part_args, write_json

    args = part_args(__doc__, "cka", argv, data=False)
    ck = bench_cka(args.cfg)
    print("\n".join(table_rows(ck)))
    res = {"cka": ck}
    write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
