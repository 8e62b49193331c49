"""``featuremill drift PIPELINE --table T --reference SEL --current SEL``.

Selections: ``2026-09-01``, ``2026-09-01..2026-09-14``, ``v12`` (a Delta version), a range at a
version (``2026-09-01..2026-09-14@v12``), ``all`` or ``latest``. The reference profile is fitted
once and stored in ``<warehouse>/<pipeline>/drift_references`` (reused for the same table,
selection and binning settings unless ``--refit``); results go to ``drift_results`` and to
``drift_<table>_<current>.html`` / ``.json`` in ``--out`` (default ``reports/<pipeline>``).

Exit code: 0 when no feature reaches the ``--fail-on`` level (default ``alert``), 1 when one does
(so schedulers notice), 2 on errors.
"""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for

EXIT_DRIFT = 1


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--table", required=True, help="validated.<source> or features.<feature_set>")
    parser.add_argument("--reference", required=True, help="reference selection: version (v12) or dates (D1..D2)")
    parser.add_argument("--current", required=True, help="current selection: dates (D or D1..D2), latest, or v12")
    parser.add_argument("--columns", help="comma-separated features to compare (default: all but keys and dates)")
    parser.add_argument("--refit", action="store_true", help="fit a new reference even if one is stored")
    parser.add_argument(
        "--include-warming-up",
        action="store_true",
        help="feature tables: also compare values whose window reaches before the table's first event date "
        "(left out by default)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("alert", "warn", "never"),
        default="alert",
        help="exit 1 when a feature reaches this level (default alert)",
    )
    parser.add_argument("--out", help="folder for the HTML and JSON reports (default reports/<pipeline>)")


def run(args) -> int:
    from featuremill.quality.drift import run_drift
    from featuremill.quality.report import drift_html, safe_stem, write_report
    from featuremill.quality.tables import parse_selection

    config = load_config(args)
    reference, current = parse_selection(args.reference), parse_selection(args.current)
    spark = spark_for(config, f"featuremill-drift-{config.name}")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    report = run_drift(
        spark,
        config,
        table=args.table,
        reference=reference,
        current=current,
        columns=columns,
        refit=args.refit,
        include_warming_up=args.include_warming_up,
    )
    data = report.to_dict()
    out = args.out or f"reports/{config.name}"
    json_path, html_path = write_report(
        out, safe_stem("drift", args.table, report.current_selection), data, drift_html(data)
    )
    emit(
        f"drift of {args.table}: reference {report.reference_selection} (version {report.reference_version}, "
        f"{'reused' if report.reference_reused else 'fitted'} {report.reference_id}) vs current "
        f"{report.current_selection} (version {report.current_version}): {report.level.upper()}"
    )
    warming = _warming_up_line(report)
    if warming:
        emit(warming)
    emit(
        f"  {'feature':<26} {'kind':<11} {'level':<7} {'PSI':>7} {'JS':>7} {'KS':>7} {'W1/sd':>7} {'V':>7} "
        f"{'null%':>11}  reasons"
    )
    for f in report.features:
        null = (
            ""
            if f.null_share_reference is None or f.null_share_current is None
            else f"{100 * f.null_share_reference:.1f}>{100 * f.null_share_current:.1f}"
        )
        emit(
            f"  {f.feature:<26} {f.kind:<11} {f.level:<7} {_n(f.psi):>7} {_n(f.js):>7} {_n(f.ks):>7} "
            f"{_n(f.wasserstein_norm):>7} {_n(f.cramers_v):>7} {null:>11}  {'; '.join(f.reasons)}"
        )
    emit(f"report: {html_path}")
    emit(f"json:   {json_path}")
    levels = {"alert": ("alert",), "warn": ("warn", "alert"), "never": ()}[args.fail_on]
    hits = [f.feature for f in report.features if f.level in levels]
    if hits:
        emit(f"drift {report.level}: {', '.join(hits)} (exit code {EXIT_DRIFT})")
        return EXIT_DRIFT
    return 0


def _n(value) -> str:
    return "" if value is None else f"{value:.3f}"


def _warming_up_line(report) -> str | None:
    """What the warm-up exclusion left out, or None when it did not apply."""
    if not report.warm_up.get("excluded"):
        return None
    reference, current = report.warming_up
    return (
        f"  left out as warming up (window reaching before the first event date "
        f"{report.warm_up['first_history_current']}): {reference:,} reference and {current:,} current values"
    )
