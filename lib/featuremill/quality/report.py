"""Self-contained HTML and JSON reports of profiles and drift results.

The HTML is one file with inline CSS and inline SVG charts: no script, no CDN, no external font,
so it opens offline and can be attached to a ticket. Reports are rendered from the stored
profile / drift dictionaries (the same numbers as the Delta tables), never from raw data.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from featuremill.core.report_html import bar_chart, cdf_chart, column_chart, fmt_number, json_safe

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#59636e;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid #d1d9e0;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td.l,th.l{text-align:left}
.card{border:1px solid #d1d9e0;border-radius:6px;padding:12px 14px;margin:12px 0;display:flex;gap:20px;flex-wrap:wrap}
.card .stats{min-width:300px}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.ok{background:#1a7f37}.warn{background:#bf8700}.alert{background:#cf222e}.skipped{background:#8c959f}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.small{font-size:12px;color:#59636e}
"""
_REF_COLOR = "#8c959f"
_CUR_COLOR = "#0969da"


def write_report(out_dir: str | Path, stem: str, data: dict, page: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json.dumps(json_safe(data), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
    html_path.write_text(page)
    return json_path, html_path


def safe_stem(*parts: str) -> str:
    text = "_".join(p for p in parts if p)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


def profile_html(profile: dict) -> str:
    """The HTML page of a profile (``TableProfile.to_dict()``)."""
    e = html.escape
    rows = profile["rows"]
    parts = [
        _head(f"Profile of {profile['table']}"),
        f"<h1>Profile of {e(profile['table'])}</h1>",
        f"<div class='meta'>pipeline {e(profile['pipeline'])} &middot; selection {e(profile['selection'])} "
        f"&middot; Delta version {profile['table_version']} &middot; {rows:,} rows &middot; "
        f"created {e(profile['created_at'])} &middot; profile id {e(profile['profile_id'])}</div>",
        "<h2>Columns</h2><table><tr><th class=l>column</th><th class=l>type</th><th>non-null</th><th>null %</th>"
        "<th>distinct (approx)</th><th>min</th><th>max</th><th>mean</th><th>stddev</th></tr>",
    ]
    for c in profile["columns"]:
        null_pct = 100.0 * c["nulls"] / c["rows"] if c["rows"] else 0.0
        parts.append(
            f"<tr><td class=l><a href='#c-{e(c['column'])}'>{e(c['column'])}</a></td>"
            f"<td class=l>{e(c['data_type'])}</td>"
            f"<td>{c['non_null']:,}</td><td>{null_pct:.2f}</td><td>{_int(c['distinct_approx'])}</td>"
            f"<td>{e(c['min'] or '')}</td><td>{e(c['max'] or '')}</td><td>{_num(c['mean'])}</td>"
            f"<td>{_num(c['stddev'])}</td></tr>"
        )
    parts.append("</table><h2>Details</h2>")
    for c in profile["columns"]:
        stats_rows = [("kind", c["kind"]), ("rows", f"{c['rows']:,}"), ("nulls", f"{c['nulls']:,}")]
        if c["nan"] or c["infinite"]:
            stats_rows += [("NaN", f"{c['nan']:,}"), ("infinite", f"{c['infinite']:,}")]
        stats_rows += [
            ("distinct (approx)", _int(c["distinct_approx"])),
            ("min", c["min"] or ""),
            ("max", c["max"] or ""),
            ("mean", _num(c["mean"])),
            ("stddev", _num(c["stddev"])),
        ]
        stats_rows += [(f"q{p:g}", _num(v)) for p, v in zip(c["quantile_probs"], c["quantiles"])]
        table = "".join(f"<tr><td class=l>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in stats_rows)
        charts = []
        if c["histogram"]:
            labels = [_num(lo) for lo, _, _ in c["histogram"]]
            charts.append(
                "<div><h3>histogram</h3>"
                + column_chart(labels, [("rows", [n for _, _, n in c["histogram"]], _CUR_COLOR)], rotate=True)
                + "</div>"
            )
        if c["top_values"]:
            charts.append(
                "<div><h3>top values</h3>"
                + bar_chart(
                    [(str(v), n, _CUR_COLOR) for v, n in c["top_values"]],
                    value_text=_count_and_share(c["rows"]),
                    width=420,
                )
                + "</div>"
            )
        note = f"<div class=small>{e(c['note'])}</div>" if c.get("note") else ""
        parts.append(
            f"<div class=card id='c-{e(c['column'])}'><div class=stats><h3>{e(c['column'])} "
            f"<span class=small>{e(c['data_type'])}</span></h3><table>{table}</table>{note}</div>"
            + "".join(charts)
            + "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------


def drift_html(report: dict) -> str:
    """The HTML page of a drift run (``DriftReport.to_dict()``)."""
    e = html.escape
    level = report["level"]
    n_alert = sum(1 for f in report["features"] if f["level"] == "alert")
    n_warn = sum(1 for f in report["features"] if f["level"] == "warn")
    parts = [
        _head(f"Drift of {report['table']}"),
        f"<h1>Drift of {e(report['table'])} <span class='badge {level}'>{level}</span></h1>",
        f"<div class='meta'>pipeline {e(report['pipeline'])} &middot; reference {e(report['reference_selection'])} "
        f"(Delta version {report['reference_version']}, reference id {e(report['reference_id'])}"
        f"{', reused' if report.get('reference_reused') else ', fitted now'}) &middot; current "
        f"{e(report['current_selection'])} (version {report['current_version']}) &middot; "
        f"{len(report['features'])} features: {n_alert} alert, {n_warn} warn &middot; created "
        f"{e(report['created_at'])}</div>",
        "<h2>Features</h2><table><tr><th class=l>feature</th><th class=l>kind</th><th class=l>level</th>"
        "<th>PSI</th><th>JS</th><th>KS</th><th>W1/std</th><th>Cramer V</th><th>p (BH)</th><th>null % ref</th>"
        "<th>null % cur</th><th>out-of-range / unseen %</th><th class=l>reasons</th></tr>",
    ]
    for f in report["features"]:
        extra = f["out_of_range_share"] if f["kind"] == "numeric" else f["unseen_share"]
        parts.append(
            f"<tr><td class=l><a href='#f-{e(f['feature'])}'>{e(f['feature'])}</a></td><td class=l>{f['kind']}</td>"
            f"<td class=l><span class='badge {f['level']}'>{f['level']}</span></td><td>{_num(f['psi'])}</td>"
            f"<td>{_num(f['js'])}</td><td>{_num(f['ks'])}</td><td>{_num(f['wasserstein_norm'])}</td>"
            f"<td>{_num(f['cramers_v'])}</td><td>{_p(f['p_adjusted'])}</td><td>{_pct(f['null_share_reference'])}</td>"
            f"<td>{_pct(f['null_share_current'])}</td><td>{_pct(extra)}</td>"
            f"<td class=l>{e('; '.join(f['reasons']))}</td></tr>"
        )
    parts.append("</table>")
    parts.append(_thresholds_table(report["settings"]))
    parts.append(f"<p class=small>Binning: {e(report['binning_rule'])}</p><h2>Per feature</h2>")
    legend = (
        f"<div class='legend small'><span style='background:{_REF_COLOR}'></span>reference"
        f"<span style='background:{_CUR_COLOR}'></span>current</div>"
    )
    for f in report["features"]:
        ref_shares = _shares(f["reference_counts"])
        cur_shares = _shares(f["current_counts"])
        charts = [
            "<div><h3>share of rows per bin</h3>"
            + legend
            + column_chart(
                f["bin_labels"],
                [("reference", ref_shares, _REF_COLOR), ("current", cur_shares, _CUR_COLOR)],
                rotate=True,
                percent=True,
            )
            + "</div>"
        ]
        if f["reference_grid"] and f["current_grid"]:
            charts.append(
                "<div><h3>cumulative distribution (from quantile grids)</h3>"
                + legend
                + cdf_chart([(f["reference_grid"], _REF_COLOR, 2), (f["current_grid"], _CUR_COLOR, 1.5)])
                + "</div>"
            )
        rows = [
            ("level", f["level"]),
            ("rows reference / current", f"{f['rows_reference']:,} / {f['rows_current']:,}"),
            ("PSI", _num(f["psi"])),
            ("Jensen-Shannon distance", _num(f["js"])),
        ]
        if f["kind"] == "numeric":
            rows += [
                ("KS statistic", _num(f["ks"])),
                ("KS p-value (raw)", _p(f["ks_pvalue"])),
                ("Wasserstein-1", _num(f["wasserstein"])),
                ("Wasserstein-1 / ref std", _num(f["wasserstein_norm"])),
                ("out-of-range share", _pct(f["out_of_range_share"])),
            ]
        else:
            rows += [
                ("chi-square", _num(f["chi2"])),
                ("dof", str(f["chi2_dof"])),
                ("p-value (raw)", _p(f["chi2_pvalue"])),
                ("Cramer's V", _num(f["cramers_v"])),
                ("unseen share", _pct(f["unseen_share"])),
                ("unseen example", f["unseen_example"] or ""),
            ]
        rows += [
            ("p-value (BH-adjusted)", _p(f["p_adjusted"])),
            ("null share reference", _pct(f["null_share_reference"])),
            ("null share current", _pct(f["null_share_current"])),
        ]
        table = "".join(f"<tr><td class=l>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in rows)
        reasons = "".join(f"<div class=small>{e(r)}</div>" for r in f["reasons"])
        parts.append(
            f"<div class=card id='f-{e(f['feature'])}'><div class=stats><h3>{e(f['feature'])} "
            f"<span class='badge {f['level']}'>{f['level']}</span></h3><table>{table}</table>{reasons}</div>"
            + "".join(charts)
            + "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _thresholds_table(settings: dict) -> str:
    rows = "".join(
        f"<tr><td class=l>{html.escape(k)}</td><td>{_num(v['warn'])}</td><td>{_num(v['alert'])}</td></tr>"
        for k, v in settings["thresholds"].items()
    )
    return (
        "<h2>Thresholds</h2><table><tr><th class=l>metric</th><th>warn</th><th>alert</th></tr>"
        + rows
        + f"</table><p class=small>KS and Cramer's V count only when their Benjamini-Hochberg adjusted p-value is "
        f"below {settings['fdr_alpha']}; features with fewer than {settings['min_rows']} rows are skipped.</p>"
    )


def _head(title: str) -> str:
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
    )


def _count_and_share(total: int):
    """The text after a top value's bar: its row count and share of ``total`` rows."""
    return lambda n: f"{int(n):,} ({100 * n / total:.1f}%)" if total else f"{int(n):,}"


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _num(value) -> str:
    return f"{value:,}" if isinstance(value, int) else fmt_number(value, 4, missing="")


def _int(value) -> str:
    return "" if value is None else f"{int(value):,}"


def _p(value) -> str:
    return fmt_number(value, missing="")


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.3g}"
