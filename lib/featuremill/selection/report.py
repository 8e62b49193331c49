"""A self-contained HTML report of a selection run: one file, inline CSS and SVG, no script,
no network access needed to open it."""

from __future__ import annotations

import math

from featuremill.core.report_html import bar_chart, esc, fmt_number, heatmap
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


def render_html(result: SelectionResult, *, title: str, context: dict[str, str] | None = None) -> str:
    """The whole report as one HTML string."""
    features = sorted(result.features, key=lambda f: f.rank or 0)
    kept = [f for f in features if f.decision == "keep"]
    colour = {f.name: ("#2f7ed8" if f.decision == "keep" else "#c9c9c9") for f in features}
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    facts = {
        "label": result.label,
        "task": result.task,
        "rows": f"{result.rows:,}",
        "labelled rows": f"{result.labelled_rows:,}",
        "classes": ", ".join(result.classes) or "–",
        "features kept": f"{len(kept)} of {len(features)}",
        "baseline held-out loss": (
            f"{fmt_number(result.baseline_loss, 4, missing='–')} ({result.loss_name})" if result.loss_name else "–"
        ),
    }
    facts.update(context or {})
    out.append(
        "<table>"
        + "".join(f"<tr><th class='l'>{esc(k)}</th><td class='l'>{esc(v)}</td></tr>" for k, v in facts.items())
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
            f"<th class='{'l' if h in ('feature', 'kind', 'decision', 'reason') else ''}'>{esc(h)}</th>"
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
            fmt_number(f.mutual_information, 4, missing="–"),
            fmt_number(f.chi2_p_adj, missing="–") + ("" if f.chi2_valid else " (small counts)"),
            fmt_number(f.f_p_adj, missing="–"),
            fmt_number(f.label_correlation, missing="–"),
            fmt_number(f.rf_importance, missing="–"),
            fmt_number(f.permutation_importance, missing="–"),
            fmt_number(f.freq_ratio, missing="–"),
            fmt_number(f.unique_percent, missing="–"),
            fmt_number(f.cv, missing="–"),
            f"{f.non_null:,}",
        ]
        out.append(
            f"<tr class='{esc(f.decision)}'>"
            + "".join(
                f"<td class='{'l' if i in (1, 2, 4) else ('d' if i == 3 else '')}'>{esc(c)}</td>"
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
        out.append(f"<div class='card'>{bar_chart(items, title=title_)}</div>")
    perm = sorted(
        ((f.name, f.permutation_importance, colour[f.name]) for f in features),
        key=lambda t: -(t[1] if t[1] is not None else -1e300),
    )
    out.append(
        "<div class='card'>"
        + bar_chart(
            perm,
            title=f"Permutation importance (increase in {result.loss_name or 'loss'})",
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
        out.append(f"<div class='card'>{bar_chart(items, title=title_)}</div>")
    out.append("</div>")
    if result.correlation_names:
        out.append(
            f"<h2>Correlation ({esc(result.settings.get('correlation_method', ''))}) between numeric features</h2>"
        )
        if result.redundant:
            out.append(
                "<p>Pairs above the threshold: "
                + "; ".join(f"{esc(p['a'])} / {esc(p['b'])} ({p['correlation']:+.3f})" for p in result.redundant)
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
            f"{esc(result.settings.get('pca_variance'))} of the variance.</p>"
        )
        out.append(bar_chart(items, title="Explained variance ratio"))
    out.append(
        "<h2>Settings</h2><table>"
        + "".join(
            f"<tr><th class='l'>{esc(k)}</th><td class='l'>{esc(v)}</td></tr>"
            for k, v in sorted(result.settings.items())
        )
        + "</table></body></html>"
    )
    return "".join(out)
