"""``featuremill profile PIPELINE --table T [--date D | --start D1 --end D2] [--version N]``.

Profiles the selected rows of a table (two Spark passes whatever the number of columns), stores
the profile in ``<warehouse>/<pipeline>/profiles`` and writes ``profile_<table>_<selection>.html``
(self-contained, opens offline) and ``.json`` into ``--out`` (default ``reports/<pipeline>``).
"""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.commands._common import add_pipeline_arguments, load_config, spark_for


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--table", required=True, help="validated.<source>, features.<feature_set> or quarantine")
    parser.add_argument("--date", help="one date (YYYY-MM-DD), 'latest', or a selection such as 2026-09-01..2026-09-07")
    parser.add_argument("--start", help="first date of a range (with --end)")
    parser.add_argument("--end", help="last date of a range, inclusive")
    parser.add_argument("--version", type=int, help="read the table at this Delta version")
    parser.add_argument(
        "--columns", help="comma-separated columns to profile (default: all but the internal _-prefixed ones)"
    )
    parser.add_argument("--out", help="folder for the HTML and JSON reports (default reports/<pipeline>)")


def selection_from_args(args):
    """A :class:`~featuremill.quality.tables.Selection` from --date / --start --end / --version."""
    from featuremill.quality.tables import Selection, parse_selection

    if args.date and (args.start or args.end):
        raise SystemExit("give either --date or --start/--end, not both")
    if bool(args.start) != bool(args.end):
        raise SystemExit("give both --start and --end")
    text = args.date or (f"{args.start}..{args.end}" if args.start else "all")
    selection = parse_selection(text)
    if args.version is not None:
        selection = Selection(selection.start, selection.end, args.version, selection.latest)
    return selection


def run(args) -> int:
    from featuremill.quality.profile import profile_table
    from featuremill.quality.report import profile_html, safe_stem, write_report

    config = load_config(args)
    selection = selection_from_args(args)
    spark = spark_for(config, f"featuremill-profile-{config.name}")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    profile = profile_table(spark, config, table=args.table, selection=selection, columns=columns)
    data = profile.to_dict()
    out = args.out or f"reports/{config.name}"
    json_path, html_path = write_report(
        out, safe_stem("profile", args.table, profile.selection), data, profile_html(data)
    )
    emit(
        f"profile of {args.table} ({profile.selection}, Delta version {profile.table_version}): "
        f"{profile.rows:,} rows, {len(profile.columns)} columns"
    )
    emit(f"  {'column':<28} {'type':<12} {'null %':>7} {'distinct':>10} {'min':>14} {'max':>14} {'mean':>12}")
    for c in profile.columns:
        null_pct = 100.0 * c.nulls / c.rows if c.rows else 0.0
        distinct = "" if c.distinct_approx is None else f"{c.distinct_approx:,}"
        emit(
            f"  {c.column:<28} {c.data_type:<12} {null_pct:>7.2f} {distinct:>10} "
            f"{(c.min or '')[:14]:>14} {(c.max or '')[:14]:>14} {'' if c.mean is None else f'{c.mean:.4g}':>12}"
        )
    emit(f"stored as profile {profile.profile_id} in {config.tables.table('profiles')}")
    emit(f"report: {html_path}")
    emit(f"json:   {json_path}")
    return 0
