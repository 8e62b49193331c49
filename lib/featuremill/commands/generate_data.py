"""``featuremill generate-data --out DIR``: write the deterministic synthetic dataset."""

from __future__ import annotations

from featuremill.commands import emit
from featuremill.pipelines.demo_data import DEFAULT_START, DemoDataSpec, write_demo_data


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--events", type=int, default=200_000, help="number of base events (default 200000)")
    parser.add_argument("--days", type=int, default=28, help="days of events (default 28)")
    parser.add_argument("--start", default=DEFAULT_START.isoformat(), help="first event date")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--force", action="store_true", help="regenerate even if the same data is there")


def run(args) -> int:
    from featuremill.core.session import get_spark

    spark = get_spark("featuremill-generate-data")
    manifest = write_demo_data(
        spark,
        args.out,
        DemoDataSpec(events=args.events, days=args.days, start=args.start, seed=args.seed),
        force=args.force,
    )
    emit(
        f"{args.out}: {manifest['rows']} transaction rows over {manifest['landing_dates']} landing dates "
        f"({manifest['start']}..{manifest['end']})"
    )
    return 0
