"""Orchestration overhead: a no-op maintenance task through Dagster against a bare Celery task.

Run ``python bench/orchestration.py`` (5 runs per way, two schedule ticks) or ``--quick``
(2 runs per way, no ticks). Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

One :class:`~tests.support.dagster_stack.DagsterStack` (fresh Postgres databases for Django
and the Dagster instance, production's ``deploy/dagster.yaml``, a private Redis db) serves every
way, and each way runs the test-only ``noop_task`` command (registry task ``test_noop``):

- ``bare_celery`` (the baseline, the seed's way): a Celery app on the same Redis whose task
  calls ``call_command("noop_task")`` in a long-lived worker (Django set up once); the client
  sends the task and waits for its result. CPU = worker + client;
- ``dagster_cli_in_process``: ``dagster job execute -m validibot_ops.definitions -j test_noop``
  with the in-process executor, a fresh process per run. CPU = the process (``RUSAGE_CHILDREN``);
- ``execute_in_process``: a fresh ``python -c`` that imports the definitions and calls
  ``job.execute_in_process`` on the instance; CPU as above;
- ``dagster_cli_celery``: the same CLI with the Celery executor and a live
  ``validibot-ops worker``; CPU = the launching process + the worker's CPU delta. The first
  step a fresh worker runs is reported apart (``cold``): it imports the code location and sets
  Django up once;
- ``run_worker_celery``: what a scheduled run costs in production: the run is created first
  (not timed), then ``dagster api execute_run`` runs it, the process the daemon's run launcher
  starts, with the same live worker (the Celery executor run mode);
- ``warm_run``: the default run mode. The run is created (not timed) and launched through the
  instance's run launcher as the daemon does; a live ``validibot-ops worker`` (warm mode,
  prefork) executes it in its pool process. CPU = the launch + the worker's CPU delta. The same
  worker then runs ``--rss-runs`` runs and its RSS is printed after the first and the last.

Children use a private bytecode cache (``PYTHONPYCACHEPREFIX``, filled by a warm-up run), as
the production image's ``UV_COMPILE_BYTECODE=1`` site-packages do; ``load_no_bytecode`` shows
what a start-up costs when nothing is compiled (this environment sets
``PYTHONDONTWRITEBYTECODE=1`` and its venv lacks the .pyc of some packages; the image
compiles site-packages, and its ~70 project modules compile in ~0.04 s).

Then, unless ``--quick``: schedule-tick-to-op-start latency with ``dagster-daemon`` and the
every-minute ``test_noop`` schedule (built-in schedules paused with an overrides file so they
cannot queue in front), read from the instance: scheduled time, tick time, run creation,
``STEP_START``. Last: the daily CPU of the default registry's schedules (runs per day from
each built-in task's cron x CPU per run), and the code-location load (``python -c "import
validibot_ops.definitions"``). Targets: per-run orchestration CPU <= 2 s, load <= 2 s; warm
runs <= 0.3 CPU s, worker RSS growth <= 30 MB. The last line compares warm mode with the Celery
executor mode and bare Celery.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from a fresh clone: tests.* and validibot.*

JOB = "test_noop"
DEFINITIONS = "validibot_ops.definitions"
SCHEDULE = f"{JOB}_schedule"
BASELINE_QUEUE = "bench_baseline"
BASELINE_TASK = "bench.noop_task"
CPU_TARGET_S = 2.0
LOAD_TARGET_S = 2.0
RSS_TARGET_MB = 30
EXECUTE_IN_PROCESS = """
import dagster as dg
from validibot_ops.definitions import defs
with dg.DagsterInstance.get() as instance:
    result = defs.get_job_def("test_noop").execute_in_process(instance=instance)
assert result.success
"""
CREATE_RUN = """
import os
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import serialize_value
from validibot_ops.definitions import defs
repo = ReconstructableRepository.for_module("validibot_ops.definitions", "defs", os.getcwd())
recon = repo.get_reconstructable_job("test_noop")
with dg.DagsterInstance.get() as instance:
    run = instance.create_run_for_job(
        job_def=defs.get_job_def("test_noop"), job_code_origin=recon.get_python_origin()
    )
    args = ExecuteRunArgs(
        job_origin=recon.get_python_origin(),
        run_id=run.run_id,
        instance_ref=instance.get_ref(),
        set_exit_code_on_failure=True,
    )
    print(serialize_value(args))
"""

WARM_RUNS = """
import json, os, sys, time
import dagster as dg
import psutil
from dagster._core.definitions.reconstruct import ReconstructableRepository
from validibot_ops.definitions import defs

runs, worker_pid = int(sys.argv[1]), int(sys.argv[2])
repo = ReconstructableRepository.for_module("validibot_ops.definitions", "defs", os.getcwd())
origin = repo.get_reconstructable_job("test_noop").get_python_origin()
job = defs.get_job_def("test_noop")


def worker_tree():
    root = psutil.Process(worker_pid)
    cpu = rss = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += proc.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss


samples = []
with dg.DagsterInstance.get() as instance:
    for _ in range(runs):
        run = instance.create_run_for_job(job_def=job, job_code_origin=origin)
        worker_before, _ = worker_tree()
        cpu_before, sent = time.process_time(), time.time()
        instance.launch_run(run.run_id, None)  # what the daemon's run queue does
        launch_cpu = time.process_time() - cpu_before
        while not instance.get_run_by_id(run.run_id).is_finished:
            time.sleep(0.02)
        record = instance.get_run_record_by_id(run.run_id)
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, record.dagster_run
        time.sleep(0.05)  # the pool process returns the task result after RUN_SUCCESS
        worker_after, rss = worker_tree()
        samples.append({
            "run_id": run.run_id,
            "wall_s": record.end_time - sent,
            "launch_cpu_s": launch_cpu,
            "worker_cpu_s": worker_after - worker_before,
            "worker_rss_mb": rss / 2**20,
        })
print(json.dumps(samples))
"""


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    run_id: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    worker_cpu_s: float = 0.0


@dataclass
class Way:
    name: str
    what: str
    samples: list[Sample] = field(default_factory=list)
    cold: Sample | None = None

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def phase_medians(self) -> dict[str, float]:
        keys = self.samples[0].phases if self.samples else {}
        return {k: statistics.median(s.phases.get(k, 0.0) for s in self.samples) for k in keys}


# -- process CPU ---------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (plus the children they reaped)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``argv`` to completion: (wall s, CPU s of it and everything it reaped, spawn epoch)."""
    cpu_before = children_cpu()
    spawned = time.time()
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"{argv} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return wall, children_cpu() - cpu_before, spawned


# -- the baseline: a bare Celery task ------------------------------------------------------


def baseline_app():
    from celery import Celery

    url = os.environ["REDIS_URL"]
    app = Celery("bench-baseline", broker=url, backend=url)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_default_queue=BASELINE_QUEUE,
        broker_connection_retry_on_startup=True,
    )
    return app


def run_baseline_worker() -> int:
    """``--baseline-worker``: the seed's Celery worker (Django set up once, then call_command)."""
    import django

    django.setup()
    from django.core.management import call_command

    app = baseline_app()

    @app.task(name=BASELINE_TASK)
    def noop_task() -> str:
        out = io.StringIO()
        call_command("noop_task", stdout=out)
        return out.getvalue()

    app.worker_main(
        ["worker", "--queues", BASELINE_QUEUE, "--pool", "solo", "--concurrency", "1",
         "--hostname", "bench-baseline@%h", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle"]
    )  # fmt: skip
    return 0


def measure_bare_celery(stack, repeat: int) -> Way:
    from tests.support.services import wait_until

    way = Way("bare_celery", "Celery task -> call_command (warm worker)")
    worker = stack.start(
        "baseline-worker", [sys.executable, str(Path(__file__).resolve()), "--baseline-worker"]
    )
    wait_until(lambda: "ready." in worker.log() or not worker.alive(), 60, what="baseline worker")
    assert worker.alive(), worker.log()[-3000:]
    os.environ["REDIS_URL"] = stack.env["REDIS_URL"]
    app = baseline_app()
    try:
        for index in range(repeat + 1):  # the first round trip warms connections; not counted
            worker_before, client_before = tree_cpu(worker.pid), time.process_time()
            started = time.perf_counter()
            output = app.send_task(BASELINE_TASK).get(timeout=60)
            wall = time.perf_counter() - started
            worker_cpu = tree_cpu(worker.pid) - worker_before
            cpu = worker_cpu + time.process_time() - client_before
            assert "noop" in output, output
            sample = Sample(wall, cpu, worker_cpu_s=worker_cpu)
            if index == 0:
                way.cold = sample
            else:
                way.samples.append(sample)
    finally:
        worker.stop()
    return way


# -- Dagster runs --------------------------------------------------------------------------

PHASE_EVENTS = ("RUN_START", "STEP_START", "STEP_SUCCESS", "RUN_SUCCESS")


def run_phases(instance, run_id: str, spawned: float, exited: float) -> dict[str, float]:
    """Seconds between process spawn, the run's key events and process exit."""
    import dagster as dg

    values = {dg.DagsterEventType[name].value: name for name in PHASE_EVENTS}
    stamps: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        kind = values.get(entry.dagster_event.event_type_value) if entry.dagster_event else None
        if kind is not None and kind not in stamps:
            stamps[kind] = entry.timestamp
    missing = [k for k in PHASE_EVENTS if k not in stamps]
    if missing:
        raise RuntimeError(f"run {run_id} has no {missing} event")
    return {
        "spawn->RUN_START": stamps["RUN_START"] - spawned,
        "RUN_START->STEP_START": stamps["STEP_START"] - stamps["RUN_START"],
        "STEP_START->STEP_SUCCESS": stamps["STEP_SUCCESS"] - stamps["STEP_START"],
        "STEP_SUCCESS->RUN_SUCCESS": stamps["RUN_SUCCESS"] - stamps["STEP_SUCCESS"],
        "RUN_SUCCESS->exit": exited - stamps["RUN_SUCCESS"],
    }


def latest_run(instance) -> Any:
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(job_name=JOB), limit=1)
    return records[0].dagster_run


def measure_dagster(
    stack,
    way: Way,
    argv: list[str] | Callable[[dict[str, str]], list[str]],
    repeat: int,
    env: dict[str, str],
    worker_pid: int | None = None,
    cold_first: bool = False,
) -> Way:
    """``repeat`` runs of ``argv`` (or of what it returns: it may create the run first)."""
    import dagster as dg

    env = {**stack.env, **env}
    with stack.instance() as instance:
        for index in range(repeat + int(cold_first)):
            command = argv(env) if callable(argv) else argv
            worker_before = tree_cpu(worker_pid) if worker_pid else 0.0
            wall, cpu, spawned = run_child(command, env)
            worker_cpu = tree_cpu(worker_pid) - worker_before if worker_pid else 0.0
            run = latest_run(instance)
            if run.status != dg.DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"{way.name}: run {run.run_id} ended {run.status}")
            phases = run_phases(instance, run.run_id, spawned, spawned + wall)
            sample = Sample(wall, cpu + worker_cpu, run.run_id, phases, worker_cpu)
            if cold_first and index == 0:
                way.cold = sample
            else:
                way.samples.append(sample)
    return way


def run_worker_argv(env: dict[str, str]) -> list[str]:
    """Create a run (not timed) and return the run worker command the daemon's launcher runs."""
    created = subprocess.run(
        [sys.executable, "-c", CREATE_RUN], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if created.returncode != 0:
        raise RuntimeError(f"creating a run failed:\n{created.stderr[-3000:]}")
    args = created.stdout.strip().splitlines()[-1]
    return [str(Path(sys.executable).parent / "dagster"), "api", "execute_run", args]


def cli_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "dagster"), "job", "execute",
            "-m", "validibot_ops.definitions", "-j", JOB]  # fmt: skip


def measure_in_process(stack, repeat: int) -> list[Way]:
    env = {"VALIDIBOT_EXECUTOR": "in_process"}
    cli = Way("dagster_cli_in_process", "dagster job execute, in-process executor")
    api = Way("execute_in_process", "python -c: import defs, job.execute_in_process")
    return [
        measure_dagster(stack, cli, cli_argv(), repeat, env),
        measure_dagster(stack, api, [sys.executable, "-c", EXECUTE_IN_PROCESS], repeat, env),
    ]


def measure_celery_executor(stack, repeat: int) -> list[Way]:
    cli = Way("dagster_cli_celery", "dagster job execute, Celery executor + live worker")
    launched = Way(
        "run_worker_celery", "dagster api execute_run (as the daemon launches) + live worker"
    )
    worker = stack.start_worker("default")
    try:
        measure_dagster(stack, cli, cli_argv(), repeat, {}, worker.pid, cold_first=True)
        measure_dagster(stack, launched, run_worker_argv, repeat, {}, worker.pid)
    finally:
        worker.stop()
    return [cli, launched]


def warm_env(stack) -> dict[str, str]:
    """The stack's environment in the default (warm) run mode: no forced executor."""
    return {**stack.env, "VALIDIBOT_RUN_MODE": "warm", "VALIDIBOT_EXECUTOR": ""}


def warm_runs(stack, worker_pid: int, runs: int) -> list[dict[str, float]]:
    """Launch ``runs`` warm runs one after another through the instance's run launcher."""
    argv = [sys.executable, "-c", WARM_RUNS, str(runs), str(worker_pid)]
    proc = subprocess.run(
        argv, cwd=ROOT, env=warm_env(stack), capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"warm runs failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_warm(stack, repeat: int, rss_runs: int) -> tuple[Way, list[float]]:
    """Warm mode: each run is a Celery task executed in a prefork pool process of a live
    ``validibot-ops worker``, sent by the instance's run launcher (as the daemon does).
    CPU = the launch (in the launching process) + the worker tree's delta; wall = launch to
    the run's end. The first run a fresh pool process executes is reported apart (cold)."""
    way = Way("warm_run", "run launcher -> Celery task in a warm prefork worker (default)")
    from tests.support.services import wait_until

    argv = ["validibot-ops", "worker", "--queue", "default", "--name", "bench-warm"]
    worker = stack.start(
        "worker-warm", argv, env={"VALIDIBOT_RUN_MODE": "warm", "VALIDIBOT_EXECUTOR": ""}
    )
    wait_until(lambda: "ready." in worker.log() or not worker.alive(), 60, what="warm worker")
    assert worker.alive(), worker.log()[-3000:]
    try:
        rows = warm_runs(stack, worker.pid, max(repeat + 1, rss_runs))
    finally:
        worker.stop()
    for index, row in enumerate(rows[: repeat + 1]):
        sample = Sample(
            row["wall_s"], row["launch_cpu_s"] + row["worker_cpu_s"], row["run_id"],
            worker_cpu_s=row["worker_cpu_s"],
        )  # fmt: skip
        if index == 0:
            way.cold = sample
        else:
            way.samples.append(sample)
    return way, [row["worker_rss_mb"] for row in rows]


# -- schedule ticks ------------------------------------------------------------------------


def pause_builtin_schedules(root: Path) -> Path:
    """An overrides file pausing every built-in schedule, so only ``test_noop`` ticks."""
    from validibot.tasks.registry import BUILTIN_TASKS

    path = root / "bench_overrides.json"
    paused = {t.id: {"enabled": False, "reason": "bench"} for t in BUILTIN_TASKS}
    path.write_text(json.dumps(paused))
    return path


def schedule_ticks(instance) -> dict[str, float]:
    """Tick evaluation start (epoch) by run id, for the ``test_noop`` schedule."""
    for state in instance.all_instigator_state():
        if state.name == SCHEDULE:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=50)
            return {run_id: tick.timestamp for tick in ticks for run_id in tick.run_ids}
    return {}


def tick_latency(instance, run) -> dict[str, float]:
    import dagster as dg

    # The schedule's run key is "<task id>:<scheduled time, ISO>" (validibot_ops.schedules).
    scheduled = datetime.fromisoformat(run.tags["dagster/run_key"].split(":", 1)[1]).timestamp()
    record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
    step_start = next(
        e.timestamp
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
    )
    tick = schedule_ticks(instance).get(run.run_id, float("nan"))
    return {
        "scheduled->tick": tick - scheduled,
        "tick->run created": record.create_timestamp.timestamp() - tick,
        "run created->STEP_START": step_start - record.create_timestamp.timestamp(),
        "scheduled->STEP_START": step_start - scheduled,
    }


def measure_ticks(stack, ticks: int) -> tuple[list[dict[str, float]], float, float]:
    """(latencies per tick, daemon-tree CPU s, seconds watched) with a worker and the daemon."""
    import dagster as dg

    from tests.support.services import wait_until

    env = {"VALIDIBOT_SCHEDULE_OVERRIDES": str(pause_builtin_schedules(stack.root))}
    workspace = str(ROOT / "workspace.local.yaml")
    worker = stack.start_worker("default")
    daemon = stack.start("daemon", ["dagster-daemon", "run", "-w", workspace], env=env)
    started = time.monotonic()
    done: list[Any] = []
    try:
        with stack.instance() as instance:
            scheduled = dg.RunsFilter(tags={"dagster/schedule_name": SCHEDULE})

            def enough() -> bool:
                assert daemon.alive(), daemon.log()[-3000:]
                finished = instance.get_run_records(scheduled)
                done[:] = [r.dagster_run for r in finished if r.dagster_run.is_finished]
                return len(done) >= ticks

            wait_until(enough, 60 * ticks + 150, interval=1.0, what=f"{ticks} schedule ticks")
            cpu = tree_cpu(daemon.pid)
            watched = time.monotonic() - started
            bad = [r.run_id for r in done if r.status != dg.DagsterRunStatus.SUCCESS]
            if bad:
                raise RuntimeError(f"scheduled runs failed: {bad}")
            return [tick_latency(instance, run) for run in done[:ticks]], cpu, watched
    finally:
        daemon.stop()
        worker.stop()


# -- code location load, daily cost --------------------------------------------------------


def use_bytecode_cache(stack, cache: Path) -> None:
    """Children read and write compiled bytecode under ``cache``, as in the production image
    (``UV_COMPILE_BYTECODE=1``), whatever this checkout's ``__pycache__`` folders hold."""
    stack.env.pop("PYTHONDONTWRITEBYTECODE", None)
    stack.env["PYTHONPYCACHEPREFIX"] = str(cache)
    run_child([sys.executable, "-c", EXECUTE_IN_PROCESS], stack.env)  # fills the cache


def measure_load(stack, repeat: int, cached: bool = True) -> Way:
    argv = [sys.executable, "-c", "import validibot_ops.definitions"]
    if cached:
        way, env = Way("code_location_load", f'python -c "import {DEFINITIONS}"'), stack.env
    else:
        way = Way("load_no_bytecode", "the same, every module compiled (no .pyc anywhere)")
        empty = stack.root / "no-pycache"
        env = {**stack.env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(empty)}
    for _ in range(repeat):
        wall, cpu, _spawned = run_child(argv, env)
        way.samples.append(Sample(wall, cpu))
    return way


def runs_per_day(cron: str, timezone: str) -> float:
    """Average fires per day over four weeks (weekly crons count 1/7)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    start = datetime(2025, 1, 6, tzinfo=ZoneInfo(timezone))
    end = start + timedelta(days=28)
    it, count = croniter(cron, start - timedelta(seconds=1)), 0  # count a fire at ``start``
    while it.get_next(datetime) < end:
        count += 1
    return count / 28


def daily_schedule() -> list[tuple[str, str, float]]:
    from validibot.tasks.registry import BACKEND_DAGSTER, BUILTIN_TASKS

    return [
        (t.id, t.cron, runs_per_day(t.cron, t.timezone))
        for t in BUILTIN_TASKS
        if t.enabled and BACKEND_DAGSTER in t.backends
    ]


# -- report --------------------------------------------------------------------------------


def print_table(ways: list[Way], baseline: Way) -> None:
    base_wall, base_cpu = baseline.median("wall_s"), baseline.median("cpu_s")
    header = ("way", "runs", "wall s/run", "CPU s/run", "of it worker", "x wall", "x CPU")
    print("\n{:<24} {:>4} {:>10} {:>10} {:>12} {:>8} {:>8}  what".format(*header))
    print("-" * 120)
    for way in ways:
        wall, cpu, worker = way.median("wall_s"), way.median("cpu_s"), way.median("worker_cpu_s")
        print(
            f"{way.name:<24} {len(way.samples):>4} {wall:>10.3f} {cpu:>10.3f} {worker:>12.3f} "
            f"{wall / base_wall:>7.0f}x {cpu / base_cpu:>7.0f}x  {way.what}"
        )
        if way.cold:
            cold = way.cold
            print(
                f"{'  (cold: first run)':<24} {1:>4} {cold.wall_s:>10.3f} {cold.cpu_s:>10.3f} "
                f"{cold.worker_cpu_s:>12.3f}"
            )
    print("\nmedian phases of each Dagster run (s):")
    for way in ways:
        phases = way.phase_medians()
        if phases:
            print(f"  {way.name:<24} " + "  ".join(f"{k} {v:.2f}" for k, v in phases.items()))


def print_ticks(latencies: list[dict[str, float]], daemon_cpu: float, watched: float) -> None:
    print("\nschedule tick -> op start (dagster-daemon, QueuedRunCoordinator, Celery executor):")
    for index, lat in enumerate(latencies, 1):
        print(f"  tick {index}: " + "  ".join(f"{k} {v:.2f} s" for k, v in lat.items()))
    print(
        f"  daemon process tree CPU: {daemon_cpu:.1f} s over {watched:.0f} s "
        f"({daemon_cpu / watched * 60:.1f} s/min, start-up and the ticks' run launches included)"
    )


def print_daily(
    rows: list[tuple[str, str, float]], per_run: dict[str, float], base_cpu: float
) -> float:
    total_runs = sum(n for _, _, n in rows)
    print(f"\ndaily schedule load of the default registry ({len(rows)} enabled tasks):")
    for task_id, cron, n in rows:
        print(f"  {task_id:<30} {cron:<14} {n:>7.2f} runs/day")
    print(f"  {'total':<45} {total_runs:>7.2f} runs/day")
    for name, cpu in per_run.items():
        print(f"  x {name:<24} {cpu:.3f} CPU s/run = {total_runs * cpu:>8.0f} CPU s/day "
              f"({total_runs * cpu / 3600:.2f} CPU h/day)")  # fmt: skip
    base_day = total_runs * base_cpu
    print(f"  x {'bare_celery':<24} {base_cpu:.3f} CPU s/run = {base_day:>8.0f} CPU s/day")
    return total_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs per way, no daemon ticks")
    parser.add_argument("--repeat", type=int, default=None, help="runs per way (default 5)")
    parser.add_argument("--ticks", type=int, default=None, help="schedule ticks (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--rss-runs", type=int, default=None, help="warm runs for the RSS check (default 100)"
    )
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        return run_baseline_worker()
    repeat = args.repeat or (2 if args.quick else 5)
    ticks = args.ticks if args.ticks is not None else (0 if args.quick else 2)
    rss_runs = args.rss_runs or (repeat + 1 if args.quick else 100)

    from tests.support.dagster_stack import DagsterStack

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    latencies: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp,
        DagsterStack.create(Path(tmp), executor="celery") as stack,
    ):
        uncached = measure_load(stack, repeat, cached=False)
        use_bytecode_cache(stack, Path(tmp) / "pycache")
        load = measure_load(stack, repeat)
        baseline = measure_bare_celery(stack, repeat)
        ways = [
            baseline,
            *measure_in_process(stack, repeat),
            *measure_celery_executor(stack, repeat),
        ]
        warm, rss = measure_warm(stack, repeat, rss_runs)
        ways.append(warm)
        if ticks:
            try:
                latencies, daemon_cpu, watched = measure_ticks(stack, ticks)
            except (RuntimeError, TimeoutError, KeyError, StopIteration) as exc:
                print(f"schedule ticks not measured: {type(exc).__name__}: {exc}")
                ticks = 0
    print_table([*ways, load, uncached], baseline)
    if ticks:
        print_ticks(latencies, daemon_cpu, watched)
    else:
        print("\nschedule tick -> op start: skipped (--quick or --ticks 0; a tick needs a minute)")
    per_run = {w.name: w.median("cpu_s") for w in ways[1:]}
    total_runs = print_daily(daily_schedule(), per_run, baseline.median("cpu_s"))
    print_rss(rss)
    if args.json:
        payload = {
            "ways": [asdict(w) for w in [*ways, load, uncached]],
            "ticks": latencies,
            "runs_per_day": total_runs,
            "warm_worker_rss_mb": rss,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    print(f"\nload average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(ratio_line(ways, baseline, load))
    print(warm_ratio_line(ways, baseline))
    return 0


def print_rss(rss: list[float]) -> None:
    """The warm worker's resident memory (leader + pool) after each of its runs."""
    if len(rss) < 2:
        return
    growth = max(rss) - rss[0]
    print(
        f"\nwarm worker RSS over {len(rss)} runs: {rss[0]:.0f} MB after the first, "
        f"{rss[-1]:.0f} MB after the last, max {max(rss):.0f} MB "
        f"(growth {growth:.0f} MB, {'meets' if growth <= RSS_TARGET_MB else 'MISSES'} "
        f"<= {RSS_TARGET_MB} MB)"
    )


def warm_ratio_line(ways: list[Way], baseline: Way) -> str:
    """The last line: warm mode against the Celery executor mode and bare Celery."""
    by_name = {way.name: way for way in ways}
    warm, launched = by_name["warm_run"], by_name["run_worker_celery"]
    warm_cpu, celery_cpu = warm.median("cpu_s"), launched.median("cpu_s")
    return (
        f"ratio warm / celery-executor: {warm_cpu / celery_cpu:.2f}x CPU "
        f"({warm_cpu:.2f} s vs {celery_cpu:.2f} s per run), "
        f"{warm.median('wall_s') / launched.median('wall_s'):.2f}x wall; "
        f"warm vs bare Celery: {warm_cpu / baseline.median('cpu_s'):.1f} x CPU"
    )


def ratio_line(ways: list[Way], baseline: Way, load: Way) -> str:
    by_name = {way.name: way for way in ways}
    launched, cli = by_name["run_worker_celery"], by_name["dagster_cli_celery"]
    base_cpu, base_wall = baseline.median("cpu_s"), baseline.median("wall_s")
    cpu, load_s = launched.median("cpu_s"), load.median("wall_s")

    def verdict(value: float, target: float) -> str:
        return f"{'meets' if value <= target else 'MISSES'} <= {target:g} s"

    return (
        f"ratio Dagster (Celery executor) / bare Celery: {cpu / base_cpu:.0f}x CPU "
        f"({cpu:.2f} s vs {base_cpu:.3f} s per run, {verdict(cpu, CPU_TARGET_S)}), "
        f"{launched.median('wall_s') / base_wall:.0f}x wall; dagster job execute "
        f"{cli.median('cpu_s'):.2f} s CPU ({verdict(cli.median('cpu_s'), CPU_TARGET_S)}); "
        f"in-process {by_name['dagster_cli_in_process'].median('cpu_s'):.2f} s CPU; "
        f"code-location load {load_s:.2f} s ({verdict(load_s, LOAD_TARGET_S)})"
    )


if __name__ == "__main__":
    sys.exit(main())
