"""Dagster's history with and without ``prune_dagster_history``: event-log rows and storage size.

Run ``python bench/history.py`` (150 simulated days, 90-day retention) or ``--quick``.

Two Dagster instances on the local PostgreSQL (``deploy/dagster.yaml``, one database each)
receive the same runs, day after simulated day: ``--runs-per-day`` runs of the registry's
tasks, 15 event-log records each (the op's output, the asset materialization, log lines), as
our op writes them. The runs are written straight into the storage with bulk inserts (the
bench measures storage, not run execution), back-dated to their simulated day. After each day:

- **with prune**: ``manage.py prune_dagster_history`` runs in this process against a real
  ``dagster-webserver`` on that instance, over GraphQL as in production, with the retention
  shifted so that "now" is the simulated day; then a plain ``VACUUM`` stands in for the
  autovacuum a real day would give the server;
- **without**: nothing (Dagster alone never deletes a run).

Scaling: the future registry makes about 900 runs a day; the default 10 runs a day is 1/90 of
that, so multiply the rows by 90 for production figures (the shape does not change: rows grow
linearly without the task and stop growing once the window is full with it). The rolled-up
history (Django's ``TaskHistoryDay``) is checked at the end: rolled-up runs plus the runs still
in Dagster equal every run written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
EVENTS_PER_RUN = 15
REAL_RUNS_PER_DAY = 900


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def _query(db: str, sql: str, autocommit: bool = True):
    import psycopg

    with psycopg.connect(**PG, dbname=db, autocommit=autocommit) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else None


class Instance:
    """One Dagster instance on its own Postgres database."""

    def __init__(self, name: str, root: Path) -> None:
        self.db = name
        self.home = root / name
        self.home.mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", self.home / "dagster.yaml")
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{name}"')
        self.env = {
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_HOST": PG["host"],
            "DAGSTER_PG_PORT": str(PG["port"]),
            "DAGSTER_PG_USER": PG["user"],
            "DAGSTER_PG_PASSWORD": "unused-trust-auth",
            "DAGSTER_PG_DB": name,
        }
        os.environ.update(self.env)
        import dagster as dg

        self.instance = dg.DagsterInstance.from_config(str(self.home))

    def write_day(self, tasks: list[str], created: datetime, runs: int, number: int) -> None:
        """``runs`` finished runs of ``tasks`` (round robin) created at ``created``."""
        import dagster as dg
        from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
        from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
        from dagster._core.utils import make_new_run_id
        from dagster_shared.serdes import serialize_value

        from tests.support.dagster_history import _entry, _step_events
        from validibot.tasks.vocabulary import TASK_TAG, TRIGGER_TAG

        run_rows, tag_rows, event_rows = [], [], []
        naive = created.replace(tzinfo=None)
        for index in range(runs):
            task = tasks[(number * runs + index) % len(tasks)]
            status = "FAILURE" if index % 25 == 24 else "SUCCESS"
            run_id = make_new_run_id()
            tags = {TASK_TAG: task, TRIGGER_TAG: "schedule"}
            run = dg.DagsterRun(
                job_name=task, run_id=run_id, status=dg.DagsterRunStatus(status), tags=tags
            )
            at = naive + timedelta(seconds=index)
            run_rows.append(
                {
                    "run_id": run_id,
                    "pipeline_name": task,
                    "status": status,
                    "run_body": serialize_value(run),
                    "create_timestamp": at,
                    "update_timestamp": at,
                    "start_time": at.replace(tzinfo=UTC).timestamp(),
                    "end_time": at.replace(tzinfo=UTC).timestamp() + 1,
                }
            )
            tag_rows += [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
            typed = _step_events(task, task, status, {"deleted": index % 7}, False)
            for n in range(EVENTS_PER_RUN):
                event = typed[n] if n < len(typed) else None
                entry = _entry(run_id, task, task, at.timestamp() + n * 0.01, event)
                event_rows.append(
                    {
                        "run_id": run_id,
                        "event": serialize_value(entry),
                        "dagster_event_type": event.event_type_value if event else None,
                        "timestamp": at + timedelta(milliseconds=10 * n),
                        "step_key": task,
                    }
                )
        with self.instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(RunsTable.insert(), run_rows)
            conn.execute(RunTagsTable.insert(), tag_rows)
        with self.instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
            conn.execute(SqlEventLogStorageTable.insert(), event_rows)

    def measure(self) -> dict[str, int]:
        (rows,) = _query(self.db, "SELECT count(*) FROM event_logs")[0]
        (runs,) = _query(self.db, "SELECT count(*) FROM runs")[0]
        (size,) = _query(self.db, f"SELECT pg_database_size('{self.db}')")[0]
        return {"event_rows": rows, "runs": runs, "db_bytes": size}

    def vacuum(self) -> None:
        _query(self.db, "VACUUM event_logs, runs, run_tags")

    def close(self) -> None:
        self.instance.dispose()
        _admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def start_webserver(instance: Instance, root: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **instance.env, "VALIDIBOT_EXECUTOR": "in_process"}
    log = (root / "webserver.log").open("wb")
    argv = [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1"]
    argv += ["-p", str(port), "-w", str(ROOT / "workspace.local.yaml")]
    proc = subprocess.Popen(  # noqa: S603
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"webserver exited: {(root / 'webserver.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):  # noqa: S310
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("webserver did not answer in 300 s")


def setup_django(root: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{root / 'django.sqlite3'}"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def prune(url: str, retention_days: int) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    settings.VALIDIBOT_DAGSTER_RUN_RETENTION_DAYS = retention_days
    out = StringIO()
    call_command("prune_dagster_history", url=url, batch_size=100, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def simulate(days: int, retention: int, runs_per_day: int, every: int, root: Path) -> list[dict]:
    from validibot.tasks.registry import BACKEND_DAGSTER, get_tasks_for_backend

    tasks = [t.id for t in get_tasks_for_backend(BACKEND_DAGSTER)]
    setup_django(root)
    pruned = Instance("validibot_bench_history_pruned", root)
    kept = Instance("validibot_bench_history_kept", root)
    server, url = start_webserver(pruned, root)
    now = datetime.now(UTC).replace(microsecond=0)
    results = []
    try:
        for day in range(days):
            # Mid-day: the prune's cutoff is real "now" minus whole days, and real time moves
            # on by seconds to minutes while the bench runs; runs written at a day's edge
            # would fall on either side of the cutoff depending on the machine's speed.
            created = now - timedelta(days=days - day, hours=12)
            for inst in (pruned, kept):
                inst.write_day(tasks, created, runs_per_day, day)
            # "now" is the end of the simulated day: shift the retention by the days to come.
            summary = prune(url, retention + (days - day))
            assert summary["status"] == "completed", summary
            pruned.vacuum()
            kept.vacuum()
            if (day + 1) % every == 0 or day + 1 == days:
                row = {"day": day + 1, "with": pruned.measure(), "without": kept.measure()}
                results.append(row)
                print_row(row)
        results.append({"rollup": rollup_check(pruned, days * runs_per_day)})
    finally:
        server.terminate()
        server.wait(timeout=30)
        pruned.close()
        kept.close()
    return results


def rollup_check(pruned: Instance, written: int) -> dict:
    from django.db.models import Sum

    from validibot.operations.models import RolledUpRun, TaskHistoryDay

    rolled = TaskHistoryDay.objects.aggregate(runs=Sum("runs"))["runs"] or 0
    in_dagster = pruned.measure()["runs"]
    return {
        "written": written,
        "rolled_up": rolled,
        "still_in_dagster": in_dagster,
        "days_in_history": TaskHistoryDay.objects.values("day").distinct().count(),
        "pending_ledger": RolledUpRun.objects.count(),
        "intact": rolled + in_dagster == written,
    }


def print_row(row: dict) -> None:
    w, o = row["with"], row["without"]
    print(
        f"{row['day']:>4}  {w['runs']:>7,} {w['event_rows']:>10,} {w['db_bytes'] / 2**20:>9.1f}"
        f"   {o['runs']:>7,} {o['event_rows']:>10,} {o['db_bytes'] / 2**20:>9.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 days, 4-day retention")
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--retention", type=int, default=90)
    parser.add_argument("--runs-per-day", type=int, default=10)
    parser.add_argument("--every", type=int, default=15, help="measure every N days")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.days, args.retention, args.runs_per_day, args.every = 12, 4, 4, 4
    print(
        f"{args.days} simulated days, {args.runs_per_day} runs/day x {EVENTS_PER_RUN} events "
        f"(1/{REAL_RUNS_PER_DAY / args.runs_per_day:.0f} of {REAL_RUNS_PER_DAY} runs/day), "
        f"retention {args.retention} days; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'day':>4}  {'with prune: runs':>18} {'rows':>10} {'MB':>9}   "
          f"{'without: runs':>7} {'rows':>10} {'MB':>9}")  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        results = simulate(args.days, args.retention, args.runs_per_day, args.every, Path(tmp))
    check = results[-1]["rollup"]
    print(f"rollup: {json.dumps(check)}  ({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    last = results[-2]
    window = next(r for r in results[:-1] if r["day"] >= args.retention + 1)
    print(
        f"ratio day {last['day']}: event rows with / without prune = "
        f"{last['with']['event_rows'] / last['without']['event_rows']:.2f}; "
        f"with prune, day {last['day']} / day {window['day']} = "
        f"{last['with']['event_rows'] / window['with']['event_rows']:.2f}"
    )
    return 0 if check["intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
