"""The ``featuremill`` command line: one verb per job, dispatched to ``featuremill.commands``.

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is imported only
when its verb runs, so ``featuremill --help`` and ``featuremill validate`` never start Spark.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from featuremill import __version__

#: verb -> (module under featuremill.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "write a small runnable project (pipeline, local environment, sample data)"),
    "validate": ("validate", "check a pipeline file without starting Spark"),
    "run": ("run", "run a job (ingest, features) for a date or a date range"),
    "generate-data": ("generate_data", "write the deterministic synthetic demo dataset"),
    "demo": ("demo", "generate demo data, run the demo pipeline and print a summary"),
    "backfill": ("backfill", "recompute a date range chunk by chunk, resumably (ingest, features or all)"),
    "replay": ("replay", "recompute a recorded feature run from the table versions it read"),
    "runs": ("runs", "show recent runs from the run log: duration, rows, freshness, status"),
    "training-set": ("training_set", "build a point-in-time-correct training set (or rebuild one from its manifest)"),
    "register-model": ("register_model", "record which feature-set versions a model was trained on"),
    "models": ("models", "list registered models and whether the pipeline still serves their features"),
    "profile": ("profile", "profile a table's columns into Delta, an HTML report and JSON"),
    "drift": ("drift", "compare a table's current distributions with a reference; exit 1 on alerts"),
    "dag": ("dag", "show, run or export the pipeline's DAG (jobs, schedule, retries, SLA)"),
    "docs": ("docs", "generate the feature catalog (Markdown and HTML)"),
    "fit": ("fit", "fit the pipeline's preprocessing on a training table and store it versioned"),
    "apply": ("apply", "apply a stored preprocessing state to a table"),
    "select": ("select", "rank and filter the features of a training table (report + kept list)"),
    "feast-repo": ("feast_repo", "write a Feast repository (definitions, feature_store.yaml) from the pipeline"),
    "materialize": ("materialize", "write the latest feature row per entity into the Feast online store"),
    "stream": ("stream", "compute a feature set from its source's Kafka or Delta stream (micro-batches, exactly once)"),
    "bench": ("bench", "measure the performance targets side by side (PIT join, windows, incremental, scaling)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featuremill",
        description="Spark jobs that turn raw event data into model-ready features on Delta Lake.",
    )
    parser.add_argument("--version", action="version", version=f"featuremill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="VERB")
    sub.required = True
    for verb, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        p.add_argument("--log-level", default="INFO", help="logging level for featuremill (default INFO)")
        # Arguments are added lazily below, only for the verb being run, to keep --help cheap.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in COMMANDS:
        module = importlib.import_module(f"featuremill.commands.{COMMANDS[verb][0]}")
        sub_parser = parser._subparsers._group_actions[0].choices[verb]  # type: ignore[union-attr]
        module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    module = importlib.import_module(f"featuremill.commands.{args._module}")
    from featuremill.pipelines.common import configure_logging

    configure_logging(args.log_level)
    from featuremill.core.errors import FeaturemillError

    try:
        return int(module.run(args) or 0)
    except FeaturemillError as exc:
        sys.stderr.write(f"featuremill {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # not one of featuremill's: its one line first, the detail after
        import traceback

        lines = str(exc).strip().splitlines()
        sys.stderr.write(f"featuremill {args.command}: error: {type(exc).__name__}: {lines[0] if lines else ''}\n")
        sys.stderr.write("detail (an unexpected error; please report it with what follows):\n")
        traceback.print_exc(file=sys.stderr)
        return 1
