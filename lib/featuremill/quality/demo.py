"""The quality part of ``featuremill demo``: profiles and drift reports of the demo tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from featuremill.quality.drift import run_drift
from featuremill.quality.profile import profile_table
from featuremill.quality.report import drift_html, profile_html, safe_stem, write_report
from featuremill.quality.tables import Selection


def demo_reports(spark, config, *, start: dt.date, end: dt.date, out_dir: str | Path) -> list[str]:
    """Profile the last day of the transactions and customer features, compare the last day with
    a reference period for drift, write the HTML/JSON reports to ``out_dir``; return summary lines."""
    last = Selection(start=end, end=end)
    half = start + dt.timedelta(days=max((end - start).days // 2, 1))
    lines = []
    for table in ("validated.transactions", "features.customer_activity"):
        profile = profile_table(spark, config, table=table, selection=last)
        data = profile.to_dict()
        _, html_path = write_report(out_dir, safe_stem("profile", table, profile.selection), data, profile_html(data))
        lines.append(f"  profile {table:<28} {profile.selection:<24} {len(profile.columns):>3} columns  {html_path}")
    # Transactions: the last day against the first half of the landing dates. Customer features:
    # the last week against the weeks before it, from day 8 on. Values whose window reaches
    # before the first day (a 30-day sum on day 10) are left out of both sides per feature
    # (featuremill.transforms.warmup), so with enough days (the demo's default) every feature is
    # compared on complete windows only. The demo data have no drift injected: a flag here is
    # a finding, not something to get used to.
    week = Selection(start=end - dt.timedelta(days=6), end=end)
    comparisons = (
        ("validated.transactions", Selection(start=start, end=half - dt.timedelta(days=1)), last),
        (
            "features.customer_activity",
            Selection(start=start + dt.timedelta(days=7), end=end - dt.timedelta(days=7)),
            week,
        ),
    )
    if (end - start).days < 14:  # too few days for a separate feature reference period
        comparisons = comparisons[:1]
    any_flagged = False
    for table, reference, current in comparisons:
        report = run_drift(spark, config, table=table, reference=reference, current=current)
        data = report.to_dict()
        _, html_path = write_report(
            out_dir, safe_stem("drift", table, report.current_selection), data, drift_html(data)
        )
        flagged = [f"{f.feature} ({f.level})" for f in report.features if f.level in ("warn", "alert")]
        lines.append(
            f"  drift   {table:<28} {report.reference_selection} vs {report.current_selection}: "
            f"{report.level.upper()}  {html_path}"
        )
        if report.warm_up.get("excluded"):
            ref_out, cur_out = report.warming_up
            skipped = [f.feature for f in report.features if f.level == "skipped"]
            lines.append(
                f"          left out as warming up (window reaching before {report.warm_up['first_history_current']}): "
                f"{ref_out:,} reference and {cur_out:,} current values"
                + (f"; too few complete values to compare: {', '.join(skipped)}" if skipped else "")
            )
        if flagged:
            any_flagged = True
            lines.append(f"          flagged: {', '.join(flagged)}")
    if any_flagged:
        lines.append("  (no drift is injected into the demo data: every drift flag above is unexpected)")
    else:
        lines.append("  (no drift is injected into the demo data, and none was flagged)")
    return lines
