"""Arguments and set-up shared by the verbs that run a pipeline."""

from __future__ import annotations

import argparse
import datetime as dt

from featuremill.config import PipelineConfig, load_pipeline
from featuremill.pipelines.common import parse_date


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    parser.add_argument(
        "pipeline",
        metavar="PIPELINE",
        nargs="?" if default else None,
        default=default,
        help="pipeline YAML file, e.g. conf/pipelines/demo.yaml" + (f" (default {default})" if default else ""),
    )
    parser.add_argument(
        "--env",
        default="local",
        help="environment name (conf/env/NAME.yaml beside the pipeline) or a YAML path; default local",
    )
    parser.add_argument(
        "--warehouse", help="override the environment's warehouse root (relative to the current folder)"
    )
    parser.add_argument("--data-root", help="override the environment's data root (relative to the current folder)")


def add_date_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--date", type=_date, help="one date, YYYY-MM-DD")
    parser.add_argument("--start", type=_date, help="first date of a range, YYYY-MM-DD")
    parser.add_argument("--end", type=_date, help="last date of a range (inclusive), YYYY-MM-DD")
    parser.add_argument(
        "--date-offset",
        type=int,
        default=0,
        metavar="DAYS",
        help="shift the dates by DAYS (schedulers without a data interval pass their trigger "
        "date with --date-offset -1 to process the day that just closed)",
    )
    parser.set_defaults(_dates_required=required)


def _date(text: str) -> dt.date:
    try:
        # A scheduler's timestamp (2026-09-02T02:30:00Z) stands for its date.
        return parse_date(text[:10] if len(text) > 10 and text[10:11] in ("T", " ") else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resolve_dates(args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    start, end = _resolve_dates(args)
    shift = dt.timedelta(days=getattr(args, "date_offset", 0) or 0)
    return start + shift, end + shift


def _resolve_dates(args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    if args.date and (args.start or args.end):
        raise SystemExit("give either --date or --start/--end, not both")
    if args.date:
        return args.date, args.date
    if args.start and args.end:
        if args.end < args.start:
            raise SystemExit(f"--end {args.end} is before --start {args.start}")
        return args.start, args.end
    raise SystemExit("give --date D or --start D1 --end D2")


def load_config(args: argparse.Namespace) -> PipelineConfig:
    overrides = {"warehouse": args.warehouse, "data_root": args.data_root}
    return load_pipeline(args.pipeline, env=args.env, overrides={k: v for k, v in overrides.items() if v})


def spark_for(config: PipelineConfig, app_name: str):
    from featuremill.core.session import get_spark

    return get_spark(app_name, master=config.env.master, conf=dict(config.env.spark_conf))
