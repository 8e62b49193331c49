"""A self-contained HTML report of a selection run: one file, inline CSS and SVG, no script,
no network access needed to open it."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from featuremill.selection.select import SelectionResult

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:12px}th,td{padding:3px 7px;border-bottom:1px solid #eee;text-align:right}
th{background:#f5f5f5;position:sticky;top:0}td.l,th.l{text-align:left}
tr.keep td.d{color:#1a7f37;font-weight:600}tr.drop td.d{color:#b42318;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:24px}.card{border:1px solid #e5e5e5;border-radius:6px;padding:10px}
.muted{color:#777;font-size:12px}svg text{font-size:11px;font-family:inherit}
"""


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits}e}"
        return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}f}"
    return str(x)


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float | None, str]],
    *,
    errors: dict[str, float] | None = None,
    width: int = 520,
) -> str:
    """Horizontal bars, one per (label, value, css colour); negative values extend left of zero."""
    items = [(n, v, c) for n, v, c in items if v is not None and math.isfinite(v)]
    if not items:
        return ""
    bar_h, left, right = 16, 150, 60
    height = 28 + bar_h * len(items)
    lo = min(0.0, min(v for _, v, _ in items))
    hi = max(0.0, max(v + (errors or {}).get(n, 0.0) for n, v, _ in items))
    span = (hi - lo) or 1.0
    plot = width - left - right

    def xpos(v: float) -> float:
        return left + (v - lo) / span * plot

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">',
        f'<text x="0" y="14" font-weight="600">{_esc(title)}</text>',
    ]
    zero = xpos(0.0)
    for i, (name, value, colour) in enumerate(items):
        y = 22 + i * bar_h
        x0, x1 = sorted((zero, xpos(value)))
        parts.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{_esc(name[:22])}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 0.5):.1f}" height="{bar_h - 4}" '
            f'fill="{colour}"><title>{_esc(name)}: {_fmt(value, 4)}</title></rect>'
        )
        err = (errors or {}).get(name)
        if err:
            parts.append(
                f'<line x1="{xpos(value - err):.1f}" x2="{xpos(value + err):.1f}" y1="{y + 8}" '
                f'y2="{y + 8}" stroke="#333"/>'
            )
        parts.append(f'<text x="{max(x1, zero) + 4:.1f}" y="{y + 11}" class="muted">{_esc(_fmt(value))}</text>')
    parts.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="20" y2="{height}" stroke="#999"/>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], *, cell: int = 18) -> str:
    """Correlation heatmap: blue negative, red positive, white zero."""
    if not names:
        return ""
    n = len(names)
    left, top = 150, 150
    size_w, size_h = left + n * cell + 10, top + n * cell + 10
    parts = [f'<svg width="{size_w}" height="{size_h}" role="img" aria-label="correlation heatmap">']
    for i, name in enumerate(names):
        parts.append(
            f'<text x="{left - 4}" y="{top + i * cell + cell * 0.7:.1f}" text-anchor="end">{_esc(name[:22])}</text>'
        )
        x = left + i * cell + cell * 0.7
        parts.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-60)">{_esc(name[:22])}</text>')
    for i in range(n):
        for j in range(n):
            v = matrix[i][j]
            if v is None or not math.isfinite(v):
                colour = "#ddd"
            else:
                t = max(-1.0, min(1.0, v))
                if t >= 0:
                    colour = f"rgb(255,{int(255 * (1 - t))},{int(255 * (1 - t))})"
                else:
                    colour = f"rgb({int(255 * (1 + t))},{int(255 * (1 + t))},255)"
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{colour}"><title>{_esc(names[i])} / {_esc(names[j])}: {_fmt(v, 3)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: SelectionResult, *, title: str, context: dict[str, str] | None = None) -> str:
    """The whole report as one HTML string."""
    features = sorted(result.features, key=lambda f: f.rank or 0)
    kept = [f for f in features if f.decision == "keep"]
    colour = {f.name: ("#2f7ed8" if f.decision == "keep" else "#c9c9c9") for f in features}
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    facts = {
        "label": result.label,
        "task": result.task,
        "rows": f"{result.rows:,}",
        "labelled rows": f"{result.labelled_rows:,}",
        "classes": ", ".join(result.classes) or "–",
        "features kept": f"{len(kept)} of {len(features)}",
        "baseline held-out loss": (
            f"{_fmt(result.baseline_loss, 4)} ({result.loss_name})" if result.loss_name else "–"
        ),
    }
    facts.update(context or {})
    out.append(
        "<table>"
        + "".join(f"<tr><th class='l'>{_esc(k)}</th><td class='l'>{_esc(v)}</td></tr>" for k, v in facts.items())
        + "</table>"
    )
    out.append(
        "<h2>Ranked features</h2><p class='muted'>Rank: kept features first, by mean rank over mutual "
        "information, chi-square and F-test significance, forest importance and permutation importance. "
        "p-values are Benjamini-Hochberg adjusted.</p>"
    )
    headers = [
        "rank",
        "feature",
        "kind",
        "decision",
        "reason",
        "MI (nats)",
        "chi2 p adj",
        "F p adj",
        "corr(label)",
        "RF imp.",
        "perm. imp.",
        "freq ratio",
        "% unique",
        "CV",
        "non-null",
    ]
    out.append(
        "<table><tr>"
        + "".join(
            f"<th class='{'l' if h in ('feature', 'kind', 'decision', 'reason') else ''}'>{_esc(h)}</th>"
            for h in headers
        )
        + "</tr>"
    )
    for f in features:
        cells = [
            f.rank,
            f.name,
            f.kind,
            f.decision,
            f.reason,
            _fmt(f.mutual_information, 4),
            _fmt(f.chi2_p_adj) + ("" if f.chi2_valid else " (small counts)"),
            _fmt(f.f_p_adj),
            _fmt(f.label_correlation),
            _fmt(f.rf_importance),
            _fmt(f.permutation_importance),
            _fmt(f.freq_ratio),
            _fmt(f.unique_percent),
            _fmt(f.cv),
            f"{f.non_null:,}",
        ]
        out.append(
            f"<tr class='{_esc(f.decision)}'>"
            + "".join(
                f"<td class='{'l' if i in (1, 2, 4) else ('d' if i == 3 else '')}'>{_esc(c)}</td>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    out.append("</table>")
    out.append("<h2>Scores by method</h2><div class='grid'>")
    for title_, attr in (
        ("Mutual information (nats)", "mutual_information"),
        ("Random forest impurity importance", "rf_importance"),
    ):
        items = sorted(
            ((f.name, getattr(f, attr), colour[f.name]) for f in features),
            key=lambda t: -(t[1] if t[1] is not None else -1e300),
        )
        out.append(f"<div class='card'>{bar_chart(title_, items)}</div>")
    perm = sorted(
        ((f.name, f.permutation_importance, colour[f.name]) for f in features),
        key=lambda t: -(t[1] if t[1] is not None else -1e300),
    )
    out.append(
        "<div class='card'>"
        + bar_chart(
            f"Permutation importance (increase in {result.loss_name or 'loss'})",
            perm,
            errors={f.name: f.permutation_se or 0.0 for f in features},
        )
        + "</div>"
    )
    for title_, attr in (("-log10 chi-square p (adjusted)", "chi2_p_adj"), ("-log10 F-test p (adjusted)", "f_p_adj")):
        items = sorted(
            (
                (
                    f.name,
                    (-math.log10(max(getattr(f, attr), 1e-300)) if getattr(f, attr) is not None else None),
                    colour[f.name],
                )
                for f in features
            ),
            key=lambda t: -(t[1] if t[1] is not None else -1e300),
        )
        out.append(f"<div class='card'>{bar_chart(title_, items)}</div>")
    out.append("</div>")
    if result.correlation_names:
        out.append(
            f"<h2>Correlation ({_esc(result.settings.get('correlation_method', ''))}) between numeric features</h2>"
        )
        if result.redundant:
            out.append(
                "<p>Pairs above the threshold: "
                + "; ".join(f"{_esc(p['a'])} / {_esc(p['b'])} ({p['correlation']:+.3f})" for p in result.redundant)
                + "</p>"
            )
        out.append(heatmap(result.correlation_names, result.correlation))
    if result.pca_explained_variance:
        running, items = 0.0, []
        for i, v in enumerate(result.pca_explained_variance, start=1):
            running += v
            items.append((f"PC{i} (cum. {running:.2f})", v, "#8e6bbf"))
        out.append("<h2>PCA (standardised numeric features)</h2>")
        out.append(
            f"<p>{result.pca_components_for_variance} component(s) explain "
            f"{_esc(result.settings.get('pca_variance'))} of the variance.</p>"
        )
        out.append(bar_chart("Explained variance ratio", items))
    out.append(
        "<h2>Settings</h2><table>"
        + "".join(
            f"<tr><th class='l'>{_esc(k)}</th><td class='l'>{_esc(v)}</td></tr>"
            for k, v in sorted(result.settings.items())
        )
        + "</table></body></html>"
    )
    return "".join(out)
