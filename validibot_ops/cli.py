"""``validibot-ops``: the demo, the local dev stack and the Celery worker, in one entry point.

validibot-ops demo                  # bare laptop: SQLite, in-process, every job once
validibot-ops dev [-- dagster dev args]   # webserver + daemon on the embedded default
validibot-ops worker --queue default      # production: a Celery worker on Redis
validibot-ops sync-schedules [--dry-run|--check] [-w workspace.yaml]  # schedules = registry
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_HOME = REPO_ROOT / ".dagster_home"
LOCAL_INSTANCE_YAML = """\
# Written by validibot-ops (demo, dev) for the embedded default: SQLite storage under this
# folder, queued runs limited to one per task (the same tag limit as production), telemetry
# off. Production uses the repository's dagster.yaml (Postgres, run monitoring).
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    tag_concurrency_limits:
      - key: validibot/task
        value:
          applyLimitPerUniqueValue: true
        limit: 1
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""


def _venv_bin_on_path(env: dict[str, str]) -> dict[str, str]:
    """Child tools (dagster, celery) come from this interpreter's venv, whatever PATH says."""
    bin_dir = str(Path(sys.executable).parent)
    parts = env.get("PATH", "").split(os.pathsep)
    if bin_dir not in parts:
        env["PATH"] = os.pathsep.join([bin_dir, *[p for p in parts if p]])
    return env


def _local_home(kind_yaml: str) -> Path:
    """``$DAGSTER_HOME`` if set, else ``.dagster_home`` in the checkout (created on first use)."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_LOCAL_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(kind_yaml, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _embedded_default() -> None:
    """Force the embedded default: no Redis, no Postgres, whatever the shell exports."""
    os.environ["VALIDIBOT_EXECUTOR"] = "in_process"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def cmd_demo(args: argparse.Namespace) -> int:
    _embedded_default()
    home = _local_home(LOCAL_INSTANCE_YAML)
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
    print("== migrated; seeding demo data")
    call_command("seed_demo_data", *(["--scale", str(args.scale)] if args.scale else []))

    import dagster as dg

    from validibot_ops.definitions import defs
    from validibot_ops.tags import TRIGGER_TAG

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    rows = []
    failed = 0
    with dg.DagsterInstance.get() as instance:
        print(f"== running every job once through Dagster (history in {home})")
        for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
            if job.name.startswith("__"):
                continue
            result = job.execute_in_process(
                instance=instance,
                run_config=quiet,
                tags={TRIGGER_TAG: "demo"},
                raise_on_error=False,
            )
            summary = result.output_for_node(job.name) if result.success else None
            status = result.dagster_run.status.value
            failed += not result.success
            counts = (summary or {}).get("counts", {})
            shown = ", ".join(f"{k}={v}" for k, v in counts.items()) or "-"
            rows.append((job.name, status, shown, result.run_id[:8]))

    width = [
        max(len(r[i]) for r in [*rows, ("task", "status", "rows affected", "run")])
        for i in range(4)
    ]
    header = ("task", "status", "rows affected", "run")
    for row in [header, tuple("-" * w for w in width), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)).rstrip())
    print(
        f"\n{len(rows) - failed}/{len(rows)} jobs succeeded; run history is in {home}.\n"
        "Open the UI with `validibot-ops dev` (http://127.0.0.1:3000): Runs shows these runs,\n"
        "Automation shows the schedules, the validibot_maintenance assets plot the counts."
    )
    return 1 if failed else 0


def cmd_dev(args: argparse.Namespace) -> int:
    _embedded_default()
    _local_home(LOCAL_INSTANCE_YAML)
    env = _venv_bin_on_path(dict(os.environ))
    dagster = shutil.which("dagster", path=env["PATH"])
    if dagster is None:
        print("error: the `dagster` command is not installed in this environment", file=sys.stderr)
        return 2
    argv = [dagster, "dev", "-m", "validibot_ops.definitions", *args.dagster_args]
    print(f"== DAGSTER_HOME={env['DAGSTER_HOME']}: {' '.join(argv[1:])}", flush=True)
    os.execve(dagster, argv, env)
    return 0  # pragma: no cover - execve does not return


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
    )

    workspace = [Path(p) for p in args.workspace] or [DEFAULT_WORKSPACE]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="validibot-ops",
        description="Validibot maintenance on Dagster: demo, local dev stack, Celery worker.",
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
        description="Starts the Dagster webserver and daemon for validibot_ops.definitions "
        "with SQLite storage in .dagster_home. Arguments after -- go to `dagster dev`.",
    )
    dev.add_argument("dagster_args", nargs="*", help="passed to dagster dev (e.g. -p 3001)")
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
