"""Drift statistics on small vectors (bin counts, quantile grids) that Spark has already aggregated.

Nothing here touches data: every function takes a handful of numbers per feature (ten-odd bin
counts, a grid of a thousand quantiles) and runs on the driver in microseconds. Formulas:

* **PSI** = sum_i (c_i - r_i) * ln(c_i / r_i) over bin shares, a share of 0 replaced by ``epsilon``
  (default 1e-4, the usual convention) so an empty bin gives a large, finite value.
* **Jensen-Shannon distance** = sqrt(JS divergence), base-2 logarithms, so it lies in [0, 1];
  needs no smoothing.
* **KS statistic** D = sup_x |F_ref(x) - F_cur(x)|, estimated from two quantile grids: each CDF is
  read off its grid as the share of grid points <= x, evaluated at every grid value of both sides.
  With K grid points the estimate is within about 1/K of D (plus the quantile sketch's rank error).
* **Wasserstein-1** = integral_0^1 |Q_ref(u) - Q_cur(u)| du, the midpoint rule over the grid; the
  normalised form divides by the reference standard deviation.
* **Chi-square** on the 2 x k contingency table (reference counts, current counts), which accounts
  for noise in both samples; Cramer's V = sqrt(chi2 / n) is its effect size. The same test of
  independence on any r x c table (a feature's bins against the label's classes, for selection).
* **p-values**: asymptotic Kolmogorov distribution for KS, chi-square survival function via the
  regularised incomplete gamma function; **Benjamini-Hochberg** adjusts a family of p-values.

``tests/unit/test_quality_stats.py`` checks each against scipy.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DEFAULT_EPSILON = 1e-4


def shares(counts: Sequence[float]) -> list[float]:
    """Counts -> shares summing to 1 (all zeros when the total is 0)."""
    total = float(sum(counts))
    return [float(c) / total if total > 0 else 0.0 for c in counts]


def psi(
    reference_counts: Sequence[float], current_counts: Sequence[float], *, epsilon: float = DEFAULT_EPSILON
) -> float:
    """Population stability index of two histograms over the same bins."""
    _same_length(reference_counts, current_counts)
    total = 0.0
    for r, c in zip(shares(reference_counts), shares(current_counts)):
        r, c = max(r, epsilon), max(c, epsilon)
        total += (c - r) * math.log(c / r)
    return total


def js_distance(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two histograms over the same bins."""
    _same_length(reference_counts, current_counts)
    p, q = shares(reference_counts), shares(current_counts)
    divergence = 0.0
    for pi, qi in zip(p, q):
        m = (pi + qi) / 2
        if pi > 0:
            divergence += 0.5 * pi * math.log2(pi / m)
        if qi > 0:
            divergence += 0.5 * qi * math.log2(qi / m)
    return math.sqrt(max(divergence, 0.0))


def ks_from_quantiles(reference_grid: Sequence[float], current_grid: Sequence[float]) -> float:
    """Two-sample KS statistic estimated from two equally spaced quantile grids."""
    ref = sorted(float(x) for x in reference_grid)
    cur = sorted(float(x) for x in current_grid)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    best = 0.0
    for x in set(ref) | set(cur):
        # Right limits F(x) and left limits F(x-) both, so jumps at ties are seen from both sides.
        f_ref, f_cur = bisect.bisect_right(ref, x) / len(ref), bisect.bisect_right(cur, x) / len(cur)
        g_ref, g_cur = bisect.bisect_left(ref, x) / len(ref), bisect.bisect_left(cur, x) / len(cur)
        best = max(best, abs(f_ref - f_cur), abs(g_ref - g_cur))
    return best


def wasserstein_from_quantiles(reference_grid: Sequence[float], current_grid: Sequence[float]) -> float:
    """Wasserstein-1 distance from two quantile grids at the same probabilities (midpoint rule)."""
    _same_length(reference_grid, current_grid)
    if len(reference_grid) == 0:
        return float("nan")
    return sum(abs(float(a) - float(b)) for a, b in zip(reference_grid, current_grid)) / len(reference_grid)


def quantile_grid(size: int) -> list[float]:
    """Midpoint probabilities (k - 0.5) / size, k = 1..size."""
    return [(k - 0.5) / size for k in range(1, size + 1)]


def chi2_contingency(reference_counts: Sequence[float], current_counts: Sequence[float]) -> tuple[float, int]:
    """Pearson chi-square statistic and degrees of freedom of the 2 x k table (empty columns dropped)."""
    _same_length(reference_counts, current_counts)
    cols = [(float(r), float(c)) for r, c in zip(reference_counts, current_counts) if r + c > 0]
    n_ref = sum(r for r, _ in cols)
    n_cur = sum(c for _, c in cols)
    if len(cols) < 2 or n_ref == 0 or n_cur == 0:
        return 0.0, max(len(cols) - 1, 0)
    cells = {(side, i): count for i, pair in enumerate(cols) for side, count in enumerate(pair)}
    return chi2_independence(cells)


def chi2_independence(
    cells: Mapping[tuple[Any, Any], float], columns: Iterable[Any] | None = None
) -> tuple[float, int]:
    """Pearson chi-square statistic and degrees of freedom of the test of independence of an r x c table.

    ``cells`` maps (row value, column value) to a count; absent cells count 0. The rows are the
    row values present; the columns are ``columns`` when given (say every label class of the
    data, each of which a row may lack), else the column values present. A table with one row or
    one column has 0 degrees of freedom and statistic 0 (a constant is independent of anything).
    """
    rows = sorted({r for r, _ in cells}, key=repr)
    cols = sorted(set(columns) if columns is not None else {c for _, c in cells}, key=repr)
    dof = (len(rows) - 1) * (len(cols) - 1)
    if dof <= 0:
        return 0.0, max(dof, 0)
    row_total = {r: 0.0 for r in rows}
    col_total = {c: 0.0 for c in cols}
    for (r, c), count in cells.items():
        row_total[r] += float(count)
        col_total[c] += float(count)
    n = sum(row_total.values())
    stat = 0.0
    for r in rows:
        for c in cols:
            expected = row_total[r] * col_total[c] / n
            if expected > 0:
                stat += (float(cells.get((r, c), 0)) - expected) ** 2 / expected
    return stat, dof


def cramers_v(chi2: float, n: float) -> float:
    """Cramer's V of a 2 x k table: sqrt(chi2 / n)."""
    return math.sqrt(chi2 / n) if n > 0 else float("nan")


def chi2_sf(stat: float, dof: int) -> float:
    """P(X >= stat) for a chi-square variable with ``dof`` degrees of freedom."""
    if dof <= 0:
        return float("nan")
    if stat <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, stat / 2.0)


def ks_pvalue(d: float, n: float, m: float) -> float:
    """Asymptotic two-sample KS p-value: Kolmogorov survival function at sqrt(nm/(n+m)) * D."""
    if n <= 0 or m <= 0 or math.isnan(d):
        return float("nan")
    return kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def kolmogorov_sf(x: float) -> float:
    """Survival function of the Kolmogorov distribution (limit of sqrt(n) * D_n)."""
    if x <= 0:
        return 1.0
    if x < 1.0:
        # The alternating series converges slowly for small x; use the Jacobi-theta form instead.
        s = sum(math.exp(-((2 * j - 1) ** 2) * math.pi**2 / (8 * x * x)) for j in range(1, 50))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2 * math.pi) / x * s))
    total = 0.0
    for j in range(1, 200):
        term = 2 * (-1) ** (j - 1) * math.exp(-2 * j * j * x * x)
        total += term
        if abs(term) < 1e-18:
            break
    return max(0.0, min(1.0, total))


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone); ``None``/NaN entries are skipped."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(indexed)
    out: list[float | None] = [None] * len(pvalues)
    running = 1.0
    for rank, (p, i) in reversed(list(enumerate(sorted(indexed), start=1))):
        running = min(running, p * m / rank)
        out[i] = min(running, 1.0)
    return out


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above)."""
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
