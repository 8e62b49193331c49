"""Driver-side statistics over small aggregates: mutual information from contingency counts,
Benjamini-Hochberg adjustment, near-zero variance, the redundancy filter and the final ranking.

Everything here works on counts and scores already computed by Spark (a few thousand numbers),
never on rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from featuremill.core.report_html import fmt_number
from featuremill.core.stats import benjamini_hochberg  # noqa: F401  (re-exported for selection)

#: Permutation importance counts as evidence only this many standard errors above zero.
PERMUTATION_Z = 3.0


def mutual_information(counts: Mapping[tuple, int]) -> float:
    """Plug-in mutual information (nats) of a contingency table ``{(x, y): count}``.

    The estimate scikit-learn's ``mutual_info_score`` computes: sum of p(x,y) ln(p(x,y) / p(x)p(y)).
    """
    total = float(sum(counts.values()))
    if total <= 0:
        return 0.0
    px: dict = {}
    py: dict = {}
    for (x, y), n in counts.items():
        px[x] = px.get(x, 0) + n
        py[y] = py.get(y, 0) + n
    mi = 0.0
    for (x, y), n in counts.items():
        if n > 0:
            mi += (n / total) * math.log(n * total / (px[x] * py[y]))
    return max(mi, 0.0)


def chi2_is_valid(counts: Mapping[tuple, int]) -> bool:
    """Cochran's rule for the chi-square approximation on a contingency table ``{(x, y): count}``:
    every expected count at least 1 and at most 20% of them below 5."""
    total = float(sum(counts.values()))
    if total <= 0:
        return False
    px: dict = {}
    py: dict = {}
    for (x, y), n in counts.items():
        px[x] = px.get(x, 0) + n
        py[y] = py.get(y, 0) + n
    expected = [px[x] * py[y] / total for x in px for y in py]
    small = sum(1 for e in expected if e < 5)
    return min(expected) >= 1 and small <= 0.2 * len(expected)


def near_zero_variance(
    top_counts: Sequence[int], distinct: int, non_null: int, *, freq_ratio_cut: float, unique_percent_cut: float
) -> tuple[float | None, float, bool]:
    """caret's ``nearZeroVar`` rule: ``(frequency ratio, % unique, flagged)``.

    Frequency ratio = count of the most common value / count of the second most common;
    % unique = distinct values / non-null rows * 100. Flagged when the ratio exceeds the cut
    *and* % unique is below its cut, or when there is at most one distinct value. Both numbers
    are scale-free, unlike MLlib's ``VarianceThresholdSelector``.
    """
    if non_null == 0 or distinct <= 1:
        return None, (100.0 * distinct / non_null if non_null else 0.0), True
    ratio = top_counts[0] / top_counts[1] if len(top_counts) > 1 and top_counts[1] > 0 else float("inf")
    unique = 100.0 * distinct / non_null
    return ratio, unique, bool(ratio > freq_ratio_cut and unique < unique_percent_cut)


@dataclass
class Pair:
    a: str
    b: str
    rho: float


def redundant_pairs(names: Sequence[str], matrix: Sequence[Sequence[float]], threshold: float) -> list[Pair]:
    """Pairs with |rho| above ``threshold``, strongest first."""
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            rho = matrix[i][j]
            if rho is not None and not math.isnan(rho) and abs(rho) > threshold:
                pairs.append(Pair(names[i], names[j], float(rho)))
    pairs.sort(key=lambda p: (-abs(p.rho), p.a, p.b))
    return pairs


def average_ranks(scores: Mapping[str, Mapping[str, float | None]], methods: Iterable[str]) -> dict[str, float]:
    """Mean rank (1 = best) of each feature over the methods that scored it (higher score = better)."""
    sums: dict[str, float] = dict.fromkeys(scores, 0.0)
    counts: dict[str, int] = dict.fromkeys(scores, 0)
    for method in methods:
        scored = [
            (s[method], name) for name, s in scores.items() if s.get(method) is not None and not math.isnan(s[method])
        ]
        scored.sort(key=lambda t: (-t[0], t[1]))
        position = 0
        while position < len(scored):
            # ties share the average of their positions
            end = position
            while end + 1 < len(scored) and scored[end + 1][0] == scored[position][0]:
                end += 1
            rank = (position + end) / 2 + 1
            for k in range(position, end + 1):
                sums[scored[k][1]] += rank
                counts[scored[k][1]] += 1
            position = end + 1
    return {name: (sums[name] / counts[name] if counts[name] else float(len(scores) + 1)) for name in scores}


@dataclass
class FeatureScore:
    """Everything measured about one feature, and the decision."""

    name: str
    kind: str  # numeric | categorical | unsupported
    spark_type: str
    non_null: int = 0
    distinct: int = 0
    distinct_exact: bool = True
    freq_ratio: float | None = None
    unique_percent: float | None = None
    cv: float | None = None
    mean: float | None = None
    std: float | None = None
    mutual_information: float | None = None
    chi2: float | None = None
    chi2_p: float | None = None
    chi2_p_adj: float | None = None
    chi2_valid: bool = True
    f_stat: float | None = None
    f_p: float | None = None
    f_p_adj: float | None = None
    label_correlation: float | None = None
    rf_importance: float | None = None
    permutation_importance: float | None = None
    permutation_se: float | None = None
    rank: int | None = None
    mean_rank: float | None = None
    decision: str = "keep"
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def decide(
    features: list[FeatureScore],
    *,
    pairs: Sequence[Pair],
    alpha: float,
    min_importance: float,
    baseline_loss: float | None,
    max_features: int | None,
) -> None:
    """Fill ``decision``/``reason``/``rank`` in place, in this order of rules:

    1. no values or one value: dropped (empty / constant);
    2. near-zero variance (see :func:`near_zero_variance`): dropped;
    3. relevance: kept only with some evidence: a BH-adjusted chi-square (when its table passes
       :func:`chi2_is_valid`) or F-test p-value below ``alpha``, or a permutation importance of
       at least ``min_importance`` x the baseline loss and :data:`PERMUTATION_Z` standard errors
       (of the paired per-row loss differences);
    4. redundancy, among the relevant: features are visited from the most to the least
       label-relevant (mutual information, ties by |correlation with the label|); one whose
       |correlation| with an already kept feature exceeds the threshold is dropped, naming it;
    5. ``max_features``: only the best ``max_features`` by mean rank stay.
    """
    by_name = {f.name: f for f in features}
    for f in features:
        if f.decision == "drop":
            continue
        if f.non_null == 0:
            f.decision, f.reason = "drop", "empty: no non-null values"
        elif f.distinct <= 1:
            f.decision, f.reason = "drop", "constant: a single distinct value"
        elif f.notes and "near_zero_variance" in f.notes:
            f.decision = "drop"
            f.reason = (
                f"near-zero variance: frequency ratio {fmt_number(f.freq_ratio)} and "
                f"{fmt_number(f.unique_percent)}% unique values"
            )

    def relevance(f: FeatureScore) -> tuple:
        return (f.mutual_information or 0.0, abs(f.label_correlation or 0.0), f.name)

    threshold = None if baseline_loss is None else min_importance * abs(baseline_loss)
    for f in features:
        if f.decision != "keep":
            continue
        evidence = []
        if f.chi2_p_adj is not None and f.chi2_p_adj < alpha and f.chi2_valid:
            evidence.append("chi2")
        if f.f_p_adj is not None and f.f_p_adj < alpha:
            evidence.append("F")
        if (
            threshold is not None
            and f.permutation_importance is not None
            and f.permutation_importance > 0
            and f.permutation_importance >= threshold
            and f.permutation_importance >= PERMUTATION_Z * (f.permutation_se or 0.0)
        ):
            evidence.append("permutation")
        if not evidence:
            f.decision = "drop"
            chi = "" if f.chi2_valid else " (expected counts too small to use)"
            f.reason = (
                f"no evidence of relevance: chi-square adjusted p {fmt_number(f.chi2_p_adj)}{chi}, F-test adjusted p "
                f"{fmt_number(f.f_p_adj)} (alpha {alpha}), permutation importance "
                f"{fmt_number(f.permutation_importance)} (standard error {fmt_number(f.permutation_se)}, "
                f"threshold {fmt_number(threshold)})"
            )
        else:
            f.reason = "relevant by " + ", ".join(evidence)

    # Most relevant first: a feature is dropped when it correlates above the threshold with a
    # feature already kept, so every "redundant with X" names a feature that stays.
    correlated: dict[str, list[tuple[str, float]]] = {}
    for p in pairs:
        correlated.setdefault(p.a, []).append((p.b, p.rho))
        correlated.setdefault(p.b, []).append((p.a, p.rho))
    kept_so_far: set[str] = set()
    for f in sorted(
        (f for f in features if f.decision == "keep" and f.name in correlated), key=relevance, reverse=True
    ):
        partners = [(other, rho) for other, rho in correlated[f.name] if other in kept_so_far]
        if not partners:
            kept_so_far.add(f.name)
            continue
        better_name, rho = max(partners, key=lambda t: abs(t[1]))
        better = by_name[better_name]
        f.decision = "drop"
        f.reason = (
            f"redundant with {better.name} (correlation {rho:+.3f}); {better.name} is more "
            f"label-relevant (mutual information {fmt_number(better.mutual_information)} vs "
            f"{fmt_number(f.mutual_information)})"
        )

    kept = sorted((f for f in features if f.decision == "keep"), key=lambda f: (f.mean_rank, f.name))
    if max_features is not None:
        for f in kept[max_features:]:
            f.decision = "drop"
            f.reason = f"outside the best {max_features} by mean rank ({fmt_number(f.mean_rank)})"
    ordered = sorted(
        features, key=lambda f: (f.decision != "keep", f.mean_rank if f.mean_rank is not None else float("inf"), f.name)
    )
    for i, f in enumerate(ordered, start=1):
        f.rank = i
