"""The pipeline's DAG: its jobs, their dependencies, schedule, retries, timeouts and SLA.

Declared in the pipeline file under ``dag:`` (see ``docs/deployment.md``)::

    dag:
      schedule: "30 2 * * *"        # cron in the pipeline's time zone, or @daily ...
      start_date: 2026-09-01
      sla: 4h                       # the whole run done within 4h of being scheduled
      defaults: {retries: 2, retry_delay: 5m, retry_backoff: exponential, max_retry_delay: 30m, timeout: 2h}
      jobs:
        ingest: {job: ingest}
        features: {job: features, depends_on: [ingest], timeout: 1h}

Each DAG job is one ``featuremill`` command line (:func:`job_argv`): the same invocation runs
locally (``featuremill dag run``), under spark-submit (``jobs/<job>.py``), from Airflow, as a
Databricks wheel task and as an EMR step, so every scheduler runs exactly what was tested here.

The run date of a scheduled run is the landing date that has just closed: Airflow's ``{{ ds }}``
(the start of the data interval), or the trigger date plus ``date_offset_days`` (default -1) on
schedulers without data intervals (Databricks, EventBridge).
"""

from __future__ import annotations

import datetime as dt
import graphlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from featuremill.core.errors import FeaturemillError
from featuremill.core.schedule import CronError, expand

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKind:
    """A kind of DAG job: the featuremill CLI arguments that run it and its spark-submit script."""

    cli: tuple[str, ...]
    script: str


#: DAG job kinds. A new job type is one line here (its CLI verb and spark-submit entry script).
JOB_KINDS: dict[str, JobKind] = {
    "ingest": JobKind(cli=("run", "--job", "ingest"), script="jobs/ingest.py"),
    "features": JobKind(cli=("run", "--job", "features"), script="jobs/build_features.py"),
    # args: [--repo, DIR] (the Feast repository of `featuremill feast-repo`); the date is informational
    "materialize": JobKind(cli=("materialize",), script="jobs/materialize.py"),
}

BACKOFFS = ("fixed", "exponential")


class DagError(FeaturemillError):
    """A DAG cannot run as declared."""


class JobTimeoutError(DagError):
    """A job attempt ran longer than its declared timeout and was cancelled."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed job is tried again."""

    retries: int = 0
    retry_delay_seconds: int = 300
    backoff: str = "fixed"
    max_retry_delay_seconds: int | None = None

    def delay_before(self, attempt: int) -> int:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        if attempt <= 1:
            return 0
        delay = self.retry_delay_seconds
        if self.backoff == "exponential":
            delay = self.retry_delay_seconds * 2 ** (attempt - 2)
        if self.max_retry_delay_seconds is not None:
            delay = min(delay, self.max_retry_delay_seconds)
        return delay


@dataclass(frozen=True)
class DagJob:
    """One node of the DAG."""

    name: str
    kind: str
    depends_on: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: int | None = None
    description: str = ""

    @property
    def max_attempts(self) -> int:
        return self.retry.retries + 1

    @property
    def script(self) -> str:
        return JOB_KINDS[self.kind].script


@dataclass(frozen=True)
class DagSpec:
    """The ``dag:`` section, parsed."""

    schedule: str | None
    timezone: str
    jobs: tuple[DagJob, ...]
    start_date: dt.date | None = None
    sla_seconds: int | None = None
    sla_callback: str | None = None
    catchup: bool = False
    date_offset_days: int = -1
    tags: tuple[str, ...] = ()

    def job(self, name: str) -> DagJob:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(f"the DAG has no job {name!r}")

    def order(self) -> list[str]:
        """Job names in dependency order; among jobs ready together, in declaration order."""
        return topological_order(self.jobs)

    def downstream(self, name: str) -> set[str]:
        """Every job that depends on ``name``, directly or not."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for job in self.jobs:
                if current in job.depends_on and job.name not in out:
                    out.add(job.name)
                    frontier.append(job.name)
        return out


def topological_order(jobs: tuple[DagJob, ...] | list[DagJob]) -> list[str]:
    """Dependency order, stable in declaration order; :class:`graphlib.CycleError` on a cycle."""
    position = {job.name: i for i, job in enumerate(jobs)}
    sorter = graphlib.TopologicalSorter({job.name: set(job.depends_on) for job in jobs})
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: position.get(n, len(position)))
        for name in ready:
            order.append(name)
            sorter.done(name)
    return order


def job_argv(job: DagJob, *, pipeline: str, env: str, date: str, date_offset_days: int = 0) -> list[str]:
    """The ``featuremill`` command line of ``job`` for run date ``date`` (a literal or a template)."""
    kind = JOB_KINDS[job.kind]
    argv = [kind.cli[0], pipeline, *kind.cli[1:], "--env", env, "--date", date]
    if date_offset_days:
        argv += ["--date-offset", str(date_offset_days)]
    return argv + list(job.args)


def script_args(job: DagJob, *, pipeline: str, env: str, date: str, date_offset_days: int = 0) -> list[str]:
    """Arguments of the job's spark-submit entry script (``jobs/<job>.py PIPELINE ...``)."""
    argv = job_argv(job, pipeline=pipeline, env=env, date=date, date_offset_days=date_offset_days)
    kind = JOB_KINDS[job.kind]
    # jobs/<job>.py adds the verb and its job selector itself.
    rest = argv[2:]
    for token in kind.cli[1:]:
        rest.remove(token)
    return [pipeline, *rest]


# --------------------------------------------------------------------------------------------
# Config section
# --------------------------------------------------------------------------------------------

_JOB_KEYS = (
    "job",
    "depends_on",
    "args",
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "description",
)
_DEFAULT_KEYS = ("retries", "retry_delay", "retry_backoff", "max_retry_delay", "timeout")


def parse_dag_section(checker, value: Any, path: str, context) -> DagSpec | None:
    """Parse ``dag:`` (registered in :data:`featuremill.config.SECTIONS`)."""
    spec = checker.mapping(
        value,
        path,
        required=("jobs",),
        optional=("schedule", "start_date", "sla", "sla_callback", "catchup", "defaults", "date_offset_days", "tags"),
    )
    if spec is None:
        return None
    ok = True
    schedule = None
    if "schedule" in spec and spec["schedule"] is not None:
        text = checker.string(spec["schedule"], f"{path}.schedule")
        try:
            if text:
                expand(text)
                schedule = " ".join(text.split())
        except CronError as exc:
            checker.error(f"{path}.schedule", str(exc))
            ok = False
    start_date = None
    if "start_date" in spec:
        raw = spec["start_date"]
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            start_date = raw
        else:
            try:
                start_date = dt.date.fromisoformat(str(raw))
            except ValueError:
                checker.error(f"{path}.start_date", f"{raw!r} is not a date (YYYY-MM-DD)")
                ok = False
    sla = checker.duration(spec["sla"], f"{path}.sla") if "sla" in spec else None
    sla_callback = checker.string(spec["sla_callback"], f"{path}.sla_callback") if "sla_callback" in spec else None
    catchup = checker.boolean(spec["catchup"], f"{path}.catchup") if "catchup" in spec else False
    offset = -1
    if "date_offset_days" in spec:
        raw_offset = spec["date_offset_days"]
        if isinstance(raw_offset, bool) or not isinstance(raw_offset, int):
            checker.error(f"{path}.date_offset_days", "expected an integer number of days (e.g. -1)")
        else:
            offset = raw_offset
    tags: tuple[str, ...] = ()
    if "tags" in spec:
        tags = checker.names(spec["tags"], f"{path}.tags") or ()
    defaults = RetryPolicy(), None
    if "defaults" in spec:
        dspec = checker.mapping(spec["defaults"], f"{path}.defaults", optional=_DEFAULT_KEYS)
        if dspec is not None:
            defaults = _retry_and_timeout(checker, dspec, f"{path}.defaults", RetryPolicy(), None)
    jobs: list[DagJob] = []
    raw_jobs = spec.get("jobs")
    if not isinstance(raw_jobs, dict) or not raw_jobs:
        checker.error(f"{path}.jobs", "expected a mapping of job name -> job (at least one)")
        return None
    for name, body in raw_jobs.items():
        jpath = f"{path}.jobs.{name}"
        if checker.string(name, jpath, identifier=True) is None:
            ok = False
            continue
        jspec = checker.mapping(body if body is not None else {}, jpath, required=("job",), optional=_JOB_KEYS)
        if jspec is None:
            ok = False
            continue
        kind = checker.string(jspec.get("job"), f"{jpath}.job", choices=tuple(JOB_KINDS)) if "job" in jspec else None
        depends_on: tuple[str, ...] = ()
        if "depends_on" in jspec:
            depends_on = checker.names(jspec["depends_on"], f"{jpath}.depends_on") or ()
            for dep in depends_on:
                if dep not in raw_jobs:
                    checker.error(f"{jpath}.depends_on", f"job {dep!r} is not declared under {path}.jobs")
                    ok = False
                elif dep == name:
                    checker.error(f"{jpath}.depends_on", "a job cannot depend on itself")
                    ok = False
        args: tuple[str, ...] = ()
        if "args" in jspec:
            raw_args = jspec["args"]
            if not isinstance(raw_args, list) or not all(
                isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in raw_args
            ):
                checker.error(
                    f"{jpath}.args", "expected a list of command-line arguments, e.g. [--source, transactions]"
                )
                ok = False
            else:
                args = tuple(str(a) for a in raw_args)
                for forbidden in ("--date", "--start", "--end", "--env", "--job"):
                    if forbidden in args:
                        checker.error(f"{jpath}.args", f"{forbidden} is set by the scheduler, not in args")
                        ok = False
        retry, timeout = _retry_and_timeout(checker, jspec, jpath, *defaults)
        description = str(jspec.get("description") or "")
        if kind is None:
            ok = False
            continue
        jobs.append(
            DagJob(
                name=name,
                kind=kind,
                depends_on=depends_on,
                args=args,
                retry=retry,
                timeout_seconds=timeout,
                description=description,
            )
        )
    if ok:
        try:
            topological_order(jobs)
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else ""
            checker.error(f"{path}.jobs", f"the dependencies form a cycle: {cycle}")
            ok = False
    if not ok:
        return None
    return DagSpec(
        schedule=schedule,
        timezone=_timezone(context),
        jobs=tuple(jobs),
        start_date=start_date,
        sla_seconds=sla,
        sla_callback=sla_callback,
        catchup=bool(catchup),
        date_offset_days=offset,
        tags=tuple(tags),
    )


def _timezone(context) -> str:
    document = getattr(context, "document", {}) or {}
    return str(document.get("timezone") or "UTC")


def _retry_and_timeout(
    checker, spec: dict, path: str, base: RetryPolicy, base_timeout: int | None
) -> tuple[RetryPolicy, int | None]:
    retries = base.retries
    if "retries" in spec:
        retries = checker.integer(spec["retries"], f"{path}.retries", minimum=0)
        retries = base.retries if retries is None else retries
    delay = base.retry_delay_seconds
    if "retry_delay" in spec:
        delay = checker.duration(spec["retry_delay"], f"{path}.retry_delay") or delay
    backoff = base.backoff
    if "retry_backoff" in spec:
        backoff = checker.string(spec["retry_backoff"], f"{path}.retry_backoff", choices=BACKOFFS) or backoff
    max_delay = base.max_retry_delay_seconds
    if "max_retry_delay" in spec:
        max_delay = checker.duration(spec["max_retry_delay"], f"{path}.max_retry_delay") or max_delay
    timeout = base_timeout
    if "timeout" in spec:
        timeout = checker.duration(spec["timeout"], f"{path}.timeout") or timeout
    return RetryPolicy(
        retries=retries, retry_delay_seconds=delay, backoff=backoff, max_retry_delay_seconds=max_delay
    ), timeout


# --------------------------------------------------------------------------------------------
# Local runner
# --------------------------------------------------------------------------------------------


@dataclass
class AttemptResult:
    job: str
    attempt: int
    status: str  # succeeded | failed | timed_out
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0


@dataclass
class DagRunResult:
    """What ``run_dag`` did: every attempt, and each job's final state."""

    attempts: list[AttemptResult] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # succeeded | failed | upstream_failed

    @property
    def succeeded(self) -> bool:
        return bool(self.states) and all(s == "succeeded" for s in self.states.values())


class _Watchdog:
    """Calls ``cancel`` once when ``timeout`` seconds pass before :meth:`stop`."""

    def __init__(self, timeout: int | None, cancel: Callable[[], None]):
        self.fired = False
        self._cancel = cancel
        self._timer = threading.Timer(timeout, self._fire) if timeout else None
        if self._timer:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._cancel()
        except Exception:  # cancelling is best effort; the attempt is marked timed out anyway
            log.exception("could not cancel the timed-out job")

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()


def run_dag(
    dag: DagSpec,
    *,
    run_job: Callable[[DagJob, int], None],
    attempt_scope: Callable[[DagJob, int, str], AbstractContextManager[Any]] | None = None,
    skip_scope: Callable[[DagJob, str], None] | None = None,
    cancel: Callable[[DagJob, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    only: list[str] | None = None,
) -> DagRunResult:
    """Run the DAG's jobs in dependency order, retrying each as declared.

    ``run_job(job, attempt)`` does the work and raises on failure. ``attempt_scope(job, attempt,
    group)`` wraps each attempt (the CLI records it in the run log there); ``cancel(job, attempt)``
    is called from a timer thread when an attempt exceeds the job's timeout. A job whose upstream
    did not succeed is not run: its state is ``upstream_failed`` and ``skip_scope(job, reason)``
    records that. ``only`` restricts the run to those jobs (their upstreams are assumed done).
    """
    result = DagRunResult()
    for name in dag.order():
        job = dag.job(name)
        if only and name not in only:
            continue
        failed_upstream = [d for d in job.depends_on if result.states.get(d, "succeeded") != "succeeded"]
        if failed_upstream:
            result.states[name] = "upstream_failed"
            reason = f"upstream job(s) {', '.join(failed_upstream)} did not succeed"
            log.error("job %s not run: %s", name, reason)
            if skip_scope:
                skip_scope(job, reason)
            continue
        for attempt in range(1, job.max_attempts + 1):
            delay = job.retry.delay_before(attempt)
            if delay:
                log.warning("job %s: retry %d of %d in %ds", name, attempt - 1, job.retry.retries, delay)
                sleep(delay)
            outcome = AttemptResult(job=name, attempt=attempt, status="running", started=time.monotonic())
            group = f"featuremill-dag-{name}-{attempt}"
            watchdog = _Watchdog(
                job.timeout_seconds, (lambda j=job, a=attempt: cancel(j, a)) if cancel else (lambda: None)
            )
            try:
                with attempt_scope(job, attempt, group) if attempt_scope else _null_scope():
                    try:
                        run_job(job, attempt)
                    except Exception as exc:
                        # The cancel makes the running Spark job fail with whatever error the job
                        # reports; the attempt scope (the run log) must see it as the timeout.
                        if watchdog.fired and not isinstance(exc, JobTimeoutError):
                            raise JobTimeoutError(
                                f"job {name} attempt {attempt} exceeded its timeout of "
                                f"{job.timeout_seconds}s and was cancelled "
                                f"({type(exc).__name__})"
                            ) from exc
                        raise
                    finally:
                        watchdog.stop()
                    if watchdog.fired:
                        raise JobTimeoutError(
                            f"job {name} attempt {attempt} exceeded its timeout of {job.timeout_seconds}s"
                        )
            except Exception as exc:  # a failed attempt is data here: record it, maybe retry
                outcome.status = "timed_out" if watchdog.fired else "failed"
                if watchdog.fired and not isinstance(exc, JobTimeoutError):
                    exc = JobTimeoutError(
                        f"job {name} attempt {attempt} exceeded its timeout of "
                        f"{job.timeout_seconds}s and was cancelled ({type(exc).__name__})"
                    )
                outcome.error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "job %s attempt %d/%d %s: %s",
                    name,
                    attempt,
                    job.max_attempts,
                    outcome.status,
                    outcome.error.splitlines()[0],
                )
            else:
                outcome.status = "succeeded"
            outcome.finished = time.monotonic()
            result.attempts.append(outcome)
            if outcome.status == "succeeded":
                break
        result.states[name] = "succeeded" if result.attempts[-1].status == "succeeded" else "failed"
    return result


class _null_scope:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        return False


def iter_lines(dag: DagSpec) -> Iterator[str]:
    """``featuremill dag show``: the jobs in order with their settings."""
    from featuremill.config import format_duration
    from featuremill.core.schedule import describe

    schedule = f"{dag.schedule} ({describe(dag.schedule, dag.timezone)})" if dag.schedule else "none (manual runs)"
    yield f"schedule: {schedule}"
    if dag.start_date:
        yield f"start date: {dag.start_date}"
    yield f"SLA: {format_duration(dag.sla_seconds) if dag.sla_seconds else 'none'}"
    yield "jobs in run order:"
    for i, name in enumerate(dag.order(), 1):
        job = dag.job(name)
        retry = job.retry
        parts = [f"{i}. {name}", f"job={job.kind}"]
        if job.depends_on:
            parts.append(f"after {', '.join(job.depends_on)}")
        parts.append(f"retries={retry.retries}")
        if retry.retries:
            parts.append(f"retry_delay={format_duration(retry.retry_delay_seconds)} {retry.backoff}")
            if retry.max_retry_delay_seconds:
                parts.append(f"max_retry_delay={format_duration(retry.max_retry_delay_seconds)}")
        parts.append(f"timeout={format_duration(job.timeout_seconds) if job.timeout_seconds else 'none'}")
        if job.args:
            parts.append("args=" + " ".join(job.args))
        yield "  " + "  ".join(parts)
