"""``validibot-ops``: the demo, the local dev stack and the Celery worker, in one entry point.

validibot-ops demo                  # bare laptop: SQLite, in-process, every job once
validibot-ops dev [--port N] [--host H] [-- dagster dev args]   # webserver + daemon, local
validibot-ops worker --queue default      # production: a Celery worker on Redis
validibot-ops sync-schedules [--dry-run|--check] [-w workspace.yaml]  # schedules = registry
validibot-ops maintenance on --reason R --author A [--until T] | off | status
validibot-ops overrides check FILE  # validate an incident overrides file before using it
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from validibot_ops.paths import DEFAULT_LOCAL_HOME, LOCAL_INSTANCE_YAML, LOCAL_WORKSPACE

DEFAULT_DEV_HOST, DEFAULT_DEV_PORT = "127.0.0.1", 3000
STOP_GRACE_SECONDS = 10.0
"""After SIGTERM/SIGINT, how long `dagster dev` gets to stop its tree before it is killed."""


def _venv_bin_on_path(env: dict[str, str]) -> dict[str, str]:
    """Child tools (dagster, celery) come from this interpreter's venv, whatever PATH says."""
    bin_dir = str(Path(sys.executable).parent)
    parts = env.get("PATH", "").split(os.pathsep)
    if bin_dir not in parts:
        env["PATH"] = os.pathsep.join([bin_dir, *[p for p in parts if p]])
    return env


def _local_home() -> Path:
    """``$DAGSTER_HOME`` if set, else ``.dagster_home`` in the checkout (created on first use).

    A home without an instance config gets a copy of the root ``dagster.yaml``; an existing
    one is left alone (it may be yours).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_LOCAL_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        shutil.copyfile(LOCAL_INSTANCE_YAML, instance_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _embedded_default() -> None:
    """Force the embedded default: no Redis, no Postgres, whatever the shell exports."""
    os.environ["VALIDIBOT_EXECUTOR"] = "in_process"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def cmd_demo(args: argparse.Namespace) -> int:
    _embedded_default()
    home = _local_home()
    import logging

    import django

    # Dagster's SQLite storage runs alembic on first use; its INFO chatter is not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    database = settings.DATABASES["default"]
    print(f"== Django database: {database['ENGINE'].rsplit('.', 1)[-1]} {database['NAME']}")
    call_command("migrate", verbosity=0)
    print("== migrated; replacing earlier demo rows with fresh ones")
    call_command("seed_demo_data", "--reset", *(["--scale", str(args.scale)] if args.scale else []))

    import dagster as dg

    from validibot_ops.demo import left_out, render_table, run_every_job

    with dg.DagsterInstance.get() as instance:
        print(f"== launching every job once as a run of validibot_ops (history in {home})")
        rows = run_every_job(instance)
    print(render_table(rows))
    ok = sum(row.succeeded for row in rows)
    print(
        f"\n{ok}/{len(rows)} jobs succeeded; run history is in {home}.\n"
        f"Open the UI with `validibot-ops dev` (http://{DEFAULT_DEV_HOST}:{DEFAULT_DEV_PORT}): "
        "each job's Runs tab\nshows its run, Automation the schedules, the validibot_maintenance "
        "assets plot the counts."
    )
    for task_id in left_out():
        print(f"Not run here: {task_id} (it talks to the webserver; launch it from the UI).")
    return 0 if ok == len(rows) else 1


def _client_url(host: str, port: int) -> str:
    """Where clients reach a server bound to ``host`` (a wildcard bind answers on loopback)."""
    reachable = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


DEV_LOCK_NAME = "validibot-dev.lock"
"""In DAGSTER_HOME: flock-held by the running `dev` (the kernel drops it when that process
dies, so a crash leaves no stale lock); holds its pid and URL for the refusal message."""


def _dev_already_running(home: Path, host: str, port: int) -> str | None:
    """Why a second `dev` must not start here, or ``None``; looks only, changes nothing."""
    lock = home / DEV_LOCK_NAME
    if lock.is_file():
        with lock.open("r+") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = held.read().strip() or "another process"
                return f"validibot-ops dev already runs on DAGSTER_HOME={home} ({who})"
            fcntl.flock(held, fcntl.LOCK_UN)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As a server binds: a port left in TIME_WAIT by a stopped `dev` is free, a listening
        # one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"port {port} on {host} is already in use ({exc.strerror}): another "
                "`validibot-ops dev` or another server; stop it or choose --port"
            )
    return None


def _hold_dev_lock(home: Path, url: str) -> Any:
    """Take the DAGSTER_HOME lock for this process's lifetime (returns the open file)."""
    held = (home / DEV_LOCK_NAME).open("a+")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.close()
        return None  # lost a race with another `dev` started at the same moment
    held.truncate(0)
    held.write(f"pid {os.getpid()}, UI {url}\n")
    held.flush()
    return held


def cmd_dev(args: argparse.Namespace) -> int:
    _embedded_default()
    wanted = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_LOCAL_HOME).resolve()
    refused = _dev_already_running(wanted, args.host, args.port)
    if refused:  # before anything is created or started
        print(f"error: {refused}; nothing was started", file=sys.stderr)
        return 2
    home = _local_home()
    url = _client_url(args.host, args.port)
    lock = _hold_dev_lock(home, url)
    if lock is None:
        print(f"error: validibot-ops dev already runs on DAGSTER_HOME={home}", file=sys.stderr)
        return 2
    os.environ["VALIDIBOT_DAGSTER_URL"] = url
    env = _venv_bin_on_path(dict(os.environ))
    dagster = shutil.which("dagster", path=env["PATH"])
    if dagster is None:
        print("error: the `dagster` command is not installed in this environment", file=sys.stderr)
        return 2
    argv = [
        dagster,
        "dev",
        "-w",
        str(LOCAL_WORKSPACE),
        "--host",
        args.host,
        "--port",
        str(args.port),
        *args.dagster_args,
    ]
    print(f"== DAGSTER_HOME={home}: {' '.join(argv[1:])}")
    print(f"== UI and GraphQL on {url}. In another shell, for the status commands and the CLI:")
    print(f'export PATH="{Path(sys.executable).parent}:$PATH"   # python, dagster, validibot-ops')
    print(f"export VALIDIBOT_DAGSTER_URL={url}   # doctor, scheduled_task_status, sync_schedules")
    print(f"export DAGSTER_HOME={home}   # the stock dagster CLI", flush=True)
    # `lock` stays open (held) until this function returns, i.e. until dev has stopped.
    # Run from DAGSTER_HOME: `dagster dev` warns about a dagster.yaml in its working directory
    # unless that directory is DAGSTER_HOME (the checkout's root file is only the template).
    return supervise(argv, env, cwd=home)


def supervise(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run ``argv`` in its own process group; SIGTERM/SIGINT/SIGHUP stop the whole group.

    `dagster dev` stops its webserver, daemon and code servers on SIGINT (Ctrl-C reaches the
    whole foreground group) but ignores SIGTERM. Here any of the three becomes a SIGINT to the
    group, and whatever is still alive ``STOP_GRACE_SECONDS`` later is killed.
    """
    child = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True)
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    while child.poll() is None and not received:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)
    if not received:
        _stop_group(child, graceful=False)  # `dagster dev` died: leave no code server behind
        return child.returncode
    print(f"== signal {signal.Signals(received[0]).name}: stopping dagster dev", flush=True)
    _stop_group(child, graceful=True)
    return 0


def _stop_group(child: subprocess.Popen, *, graceful: bool) -> None:
    """SIGINT the group, wait for it to empty (bounded), then SIGKILL what is left."""
    pgid = child.pid
    if graceful:
        _signal_group(pgid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        # poll() reaps the leader: a zombie would keep the group "alive" until the deadline.
        while (child.poll() is None or _group_alive(pgid)) and time.monotonic() < deadline:
            time.sleep(0.2)
    _signal_group(pgid, signal.SIGKILL)
    child.wait()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """Any process left in the group (a zombie leader counts until it is reaped)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker for both run modes, run in this process (not a spawned ``celery``).

    It registers the warm run task (``execute_job``, plus ``resume_job``) and the Celery
    executor's step task; in warm mode it uses the prefork pool (one process per run slot,
    recycled after ``worker_max_tasks_per_child`` runs).

    ``dagster-celery worker start`` spawns ``celery`` from PATH and a SIGTERM to it leaves the
    child running; here the worker *is* this process, so SIGTERM is Celery's warm shutdown
    (finish the current step, then exit) and a second SIGTERM or SIGINT stops at once.
    """
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    from validibot_ops.executors import WARM, ExecutorConfigError, celery_app_config, run_mode
    from validibot_ops.run_tasks import LauncherTasksMissingError, register_run_tasks

    try:
        mode = run_mode()
        config = celery_app_config()
    except ExecutorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = make_app(CeleryExecutor.for_cli(**config).app_args())
    create_task(app)  # the Celery executor's steps
    register_run_tasks(app)  # warm runs: execute_job, resume_job
    # Dagster's log lines keep the level Dagster wrote: Celery would otherwise redirect stdout
    # and stderr into its own logger at WARNING, so every run event read "WARNING/...".
    app.conf.worker_redirect_stdouts = False
    concurrency = args.concurrency or config["config_source"]["worker_concurrency"]
    pool = args.pool or ("prefork" if mode == WARM or concurrency > 1 else "solo")
    try:
        _check_warm_worker(app, mode, pool)
    except (ExecutorConfigError, LauncherTasksMissingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    argv = [
        "worker",
        "--queues",
        ",".join(args.queue),
        "--hostname",
        f"{args.name or '-'.join(args.queue)}@%h",
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        args.loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0


def _check_warm_worker(app, mode: str, pool: str) -> None:
    """A warm-mode worker must run the launcher's tasks in a prefork pool: only there does a
    run get its own process, which Celery's hard time limit can kill (the backstop)."""
    from validibot_ops.executors import WARM, ExecutorConfigError
    from validibot_ops.run_tasks import check_launcher_tasks

    if mode != WARM:
        return
    check_launcher_tasks(app)
    if pool != "prefork":
        raise ExecutorConfigError(
            f"--pool {pool}: warm runs (VALIDIBOT_RUN_MODE=warm) need the prefork pool, the only "
            "one where Celery's hard time limit can stop a run"
        )


def cmd_sync_schedules(args: argparse.Namespace) -> int:
    """Reconcile schedule states on the instance ($DAGSTER_HOME) with the registry.

    Exit codes as ``manage.py sync_schedules``: 0 in sync (or synced), 1 drift found by
    ``--check``, 2 the workspace or overrides could not be loaded.
    """
    import dagster as dg

    from validibot.tasks.overrides import OverridesError
    from validibot_ops.schedule_state import (
        DEFAULT_WORKSPACE,
        ScheduleStateError,
        instance_schedules,
        plan_for,
        sync,
        use_instance,
    )

    workspace = [Path(p) for p in args.workspace] or [DEFAULT_WORKSPACE]
    problem = use_instance(workspace)  # the instance `dev` serves when DAGSTER_HOME is unset
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        with (
            dg.DagsterInstance.get() as instance,
            instance_schedules(instance, workspace) as schedules,
        ):
            plan = plan_for(schedules)
            if args.check or args.dry_run:
                print(plan.render())
                return 1 if args.check and plan.drifted else 0
            for line in sync(schedules, plan):
                print(line)
    except (OverridesError, ScheduleStateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for drift in plan.drift:
        print(f"warning: {drift.line()}", file=sys.stderr)
    print(f"synced: {len(plan.changes)} changed; {plan.summary()}")
    return 0


def _id_hint(name: str) -> str:
    """`` (the task id is 'x')`` for a schedule name, or the closest id, or nothing."""
    import difflib

    from validibot.tasks.registry import get_tasks

    ids = sorted(t.id for t in get_tasks())
    stem = name.removesuffix("_schedule")
    if stem != name and stem in ids:
        return f" (that is its schedule's name; the task id is {stem!r})"
    match = difflib.get_close_matches(stem, ids, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def cmd_resume(args: argparse.Namespace) -> int:
    """Start a task's schedule the failure policy paused (or anyone stopped) again.

    Exit codes: 0 resumed (or already running), 2 unknown task or workspace not loadable.
    """
    import dagster as dg

    from validibot.tasks.registry import get_task
    from validibot_ops.policies import resume
    from validibot_ops.schedule_state import (
        DEFAULT_WORKSPACE,
        ScheduleStateError,
        instance_schedules,
        use_instance,
    )

    task = get_task(args.task)
    if task is None:
        print(
            f"error: no scheduled task {args.task!r} in the registry{_id_hint(args.task)}",
            file=sys.stderr,
        )
        return 2
    workspace = [Path(p) for p in args.workspace] or [DEFAULT_WORKSPACE]
    problem = use_instance(workspace)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        with (
            dg.DagsterInstance.get() as instance,
            instance_schedules(instance, workspace) as schedules,
        ):
            print(resume(schedules, task))
    except ScheduleStateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_overrides_check(args: argparse.Namespace) -> int:
    """Validate an overrides file as the code location would apply it.

    Exit codes: 0 every entry applies, 1 a problem (one ``error:`` line each, the code
    location's own message; those entries would be refused and their tasks keep the registry's
    schedule).
    """
    from validibot.tasks.registry import get_tasks
    from validibot_ops.schedules import applied_overrides

    loaded = applied_overrides(get_tasks(), path=Path(args.file))
    for override in loaded.active.values():
        print(f"ok: {override.task_id}: {override.describe()}")
    for override in loaded.expired.values():
        print(f"expired (applies nothing, remove it): {override.task_id}: {override.describe()}")
    for problem in loaded.problems:
        print(f"error: {problem.message()}", file=sys.stderr)
    if loaded.problems:
        print(f"{len(loaded.problems)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(loaded.active)} override(s) would apply")
    return 0


def _port(value: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1..65535), got {value!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="validibot-ops",
        description="Validibot maintenance on Dagster: demo, local dev stack, Celery worker, "
        "schedule sync and maintenance mode.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="migrate SQLite, seed demo data, run every job once and print what each did",
        description="Runs on the embedded default: SQLite, in-process executor, local "
        "DAGSTER_HOME (.dagster_home). Needs no Postgres, Redis or daemon.",
    )
    demo.add_argument("--scale", type=int, default=0, help="seed_demo_data --scale (rows x N)")
    demo.set_defaults(func=cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="`dagster dev` (webserver + daemon) on the embedded default",
        description="Starts the Dagster webserver and daemon for the code location "
        "validibot_ops (workspace.local.yaml) with SQLite storage in .dagster_home, and prints "
        "the VALIDIBOT_DAGSTER_URL to export for the status commands. SIGTERM or SIGINT stops "
        "all of it. Arguments after -- go to `dagster dev`.",
    )
    dev.add_argument(
        "--port", "-p", type=_port, default=DEFAULT_DEV_PORT, help="webserver port (default 3000)"
    )
    dev.add_argument(
        "--host", default=DEFAULT_DEV_HOST, help="interface to bind (default 127.0.0.1)"
    )
    dev.add_argument("dagster_args", nargs="*", help="passed to dagster dev after --")
    dev.set_defaults(func=cmd_dev)

    worker = sub.add_parser(
        "worker",
        help="a Celery worker for the production topology (needs REDIS_URL or CELERY_BROKER_URL)",
        description="Consumes warm runs (VALIDIBOT_RUN_MODE=warm, the default) or Celery "
        "executor steps (celery-executor) from Redis. Run one per queue: `default` for most "
        "tasks, `docker` for the container cleanup (the only worker that needs the Docker "
        "socket). Needs the same code, env and Dagster instance (DAGSTER_HOME) as the daemon.",
    )
    worker.add_argument(
        "--queue", "-Q", action="append", default=None, help="queue to consume (repeatable)"
    )
    worker.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=0,
        help="processes (default CELERY_WORKER_CONCURRENCY or 1)",
    )
    worker.add_argument(
        "--pool",
        choices=["solo", "prefork", "threads"],
        default=None,
        help="Celery pool (default prefork; solo for concurrency 1 in celery-executor mode; "
        "warm mode requires prefork)",
    )
    worker.add_argument("--name", default=None, help="worker node name (default: the queues)")
    worker.add_argument("--loglevel", "-l", default="INFO")
    worker.set_defaults(func=cmd_worker)

    sync_parser = sub.add_parser(
        "sync-schedules",
        help="start/stop schedules on the Dagster instance to match the registry",
        description="Works on $DAGSTER_HOME's instance directly (no webserver); loads the "
        "workspace file's code locations. manage.py sync_schedules does the same over GraphQL.",
    )
    sync_mode = sync_parser.add_mutually_exclusive_group()
    sync_mode.add_argument("--dry-run", action="store_true", help="print the plan only")
    sync_mode.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 with the diff on drift"
    )
    sync_parser.add_argument(
        "--workspace",
        "-w",
        action="append",
        default=[],
        help="workspace file (repeatable; default workspace.local.yaml)",
    )
    sync_parser.set_defaults(func=cmd_sync_schedules)

    from validibot_ops.maintenance import add_parser as add_maintenance_parser

    add_maintenance_parser(sub, "workspace file (repeatable; default workspace.local.yaml)")

    resume_parser = sub.add_parser(
        "resume",
        help="start a task's schedule again after the failure policy paused it",
        description="Starts <task>_schedule on $DAGSTER_HOME's instance (no webserver); the "
        "failure-policy sensor then clears the pause, and the task gets pause_after_failures "
        "fresh tries. See docs/operations.md, 'Schedule policies'.",
    )
    resume_parser.add_argument("task", help="the registry id of the task")
    resume_parser.add_argument(
        "--workspace",
        "-w",
        action="append",
        default=[],
        help="workspace file (repeatable; default workspace.local.yaml)",
    )
    resume_parser.set_defaults(func=cmd_resume)

    overrides_parser = sub.add_parser(
        "overrides",
        help="check an incident overrides file before putting it in place",
        description="See docs/operations.md, 'Incident overrides'.",
    )
    overrides_sub = overrides_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check_parser = overrides_sub.add_parser(
        "check",
        help="validate FILE with the code location's messages; exit 1 on any problem",
        description="Reads FILE as the code location reads $VALIDIBOT_SCHEDULE_OVERRIDES: "
        "prints each entry that would apply, and one error line per entry that would be "
        "refused (its task would keep the registry's schedule). Exit 0 clean, 1 problems.",
    )
    check_parser.add_argument("file", help="the overrides file (YAML or JSON)")
    check_parser.set_defaults(func=cmd_overrides_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "worker" and not args.queue:
        args.queue = ["default"]
    if args.command == "worker" and args.concurrency < 0:
        build_parser().error("--concurrency must be positive")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
