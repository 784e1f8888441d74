"""Purge throughput on the real Postgres: our purge commands against raw SQL and the naive ORM.

Run ``python bench/purge.py`` (10k, 100k, 1M rows) or ``python bench/purge.py --quick`` (10k).

For every size N and every method, the bench re-seeds the ``validibot_bench`` database from
scratch (N expired submissions and N expired outputs, each with a stored file, empty, in a
temp media root on tmpfs), runs the method in a child process, checks that exactly the due rows
were purged and their files deleted, and records:

- wall: the child process from start to exit (interpreter and Django start-up included);
- work: the purge itself, as the child reports it (``duration_s`` of our JSON summary);
- cpu: user + system CPU seconds of the child (``os.wait4``), start-up included: on a shared
  machine wall time also counts waiting for a core, CPU time does not;
- peak RSS of the child (``ru_maxrss`` from ``os.wait4``);
- the longest single SQL statement, sampled from ``pg_stat_activity`` every 20 ms (statements
  shorter than the sampling interval show as the largest sample seen, so "< 0.05 s" means
  "never caught running longer than that").

Methods, all with the same batch size and the same file deletions:

- ``ours``: ``manage.py purge_expired_submissions`` / ``purge_expired_outputs``;
- ``raw_sql``: the floor, the same algorithm as ours in one statement per batch
  (``WITH batch AS (SELECT ... ORDER BY expires_at, id LIMIT b FOR UPDATE SKIP LOCKED) UPDATE
  ... FROM batch``, resuming after the last ``(expires_at, id)``), then the batch's files
  deleted, then commit;
- ``naive_orm``: what a user writes first: loop over the queryset deleting files, then one
  ``.update()`` on everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/validibot_bench"
SIZES = (10_000, 100_000, 1_000_000)
METHODS = ("raw_sql", "ours", "naive_orm")
BUSY_EVERY = 1000  # one row in BUSY_EVERY belongs to a still-running validation run
FILES_PER_DIR = 1000
# Empty files on tmpfs: 2M of them at N = 1M cost ~2 GB of RAM instead of 8 GB of pages, and
# an unlink's cost does not depend on the size. On the shared VM disk, creating and deleting
# files swung from 30 us to 1 ms each between runs and drowned out what the bench measures.
SHM = Path("/dev/shm")  # noqa: S108 (only a parent: mkdtemp makes a private dir inside)
MEDIA_PARENT = str(SHM) if SHM.is_dir() else None
SAMPLE_INTERVAL_S = 0.02
ONE_SHOT_SIZE = 1_000_000  # sizes this large run once: they take minutes each

TABLES = {
    "submissions": {
        "table": "submissions_submission",
        "command": "purge_expired_submissions",
        "retry_fk": "submission_id",
        "busy_sql": "EXISTS (SELECT 1 FROM validations_validationrun r WHERE r.submission_id = t.id"
        " AND r.status IN ('pending', 'running'))",
    },
    "outputs": {
        "table": "validations_validationoutput",
        "command": "purge_expired_outputs",
        "retry_fk": "output_id",
        "busy_sql": "EXISTS (SELECT 1 FROM validations_validationrun r WHERE r.id = t.run_id"
        " AND r.status IN ('pending', 'running'))",
    },
}


# --------------------------------------------------------------------------------------------
# Database set-up and seeding (parent process, psycopg only)
# --------------------------------------------------------------------------------------------


def connect(url: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=autocommit)


def ensure_database(url: str) -> None:
    """Create the bench database if it is missing, then apply the migrations."""
    base, name = url.rsplit("/", 1)
    with connect(f"{base}/postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=child_env(url, media_root=tempfile.gettempdir()),
        check=True,
    )


def child_env(url: str, media_root: str, root: Path = ROOT) -> dict[str, str]:
    # Base settings with DEBUG off: what production runs (local.py turns DEBUG on, which makes
    # Django keep every query it runs).
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": url,
        "VALIDIBOT_MEDIA_ROOT": media_root,
        "PYTHONPATH": str(root),
    }


SEED_SQL = """
TRUNCATE submissions_submission, validations_validationrun, validations_validationoutput,
         retention_purgeretry RESTART IDENTITY CASCADE;
INSERT INTO submissions_submission
    (name, content, file, retention_policy, created_at, expires_at, content_purged_at)
SELECT 'bench-' || i, repeat('x', 200),
       'submissions/bench/' || (i / {per_dir}) || '/' || i || '.txt',
       '1d', now() - interval '2 days', {expires}, NULL
FROM generate_series(1, {n}) AS i;
-- Run 1 is still running (its submission and outputs must be skipped); the rest finished.
INSERT INTO validations_validationrun (submission_id, validator, status, created_at, error)
SELECT i, 'json-schema', CASE WHEN i = 1 THEN 'running' ELSE 'succeeded' END,
       now() - interval '2 days', ''
FROM generate_series(1, {runs}) AS i;
INSERT INTO validations_validationoutput
    (run_id, name, content, file, created_at, expires_at, content_purged_at)
SELECT CASE WHEN i % {busy_every} = 0 THEN 1 ELSE 2 + i % ({runs} - 1) END,
       'output-' || i, repeat('y', 200),
       'outputs/bench/' || (i / {per_dir}) || '/' || i || '.txt',
       now() - interval '2 days', {expires}, NULL
FROM generate_series(1, {n}) AS i;
"""


# Distinct expiry times, older rows first, one millisecond apart: real rows expire at the
# microsecond their retention ends, never all at once.
EXPIRES_SQL = "now() - interval '1 day' - ({n} - i) * interval '1 millisecond'"


def seed(url: str, media_root: Path, n: int) -> None:
    """Fresh tables holding ``n`` expired submissions and outputs, and their stored files."""
    runs = max(n // 100, 2)
    with connect(url) as conn:
        sql = SEED_SQL.format(
            n=n,
            runs=runs,
            per_dir=FILES_PER_DIR,
            busy_every=BUSY_EVERY,
            expires=EXPIRES_SQL.format(n=n),
        )
        conn.execute(sql)
        conn.execute("VACUUM ANALYZE")
    shutil.rmtree(media_root, ignore_errors=True)
    for prefix in ("submissions/bench", "outputs/bench"):
        write_files(media_root / prefix, n)


def write_files(folder: Path, n: int) -> None:
    for number in range(1, n + 1):
        if number == 1 or number % FILES_PER_DIR == 0:
            (folder / str(number // FILES_PER_DIR)).mkdir(parents=True, exist_ok=True)
        path = f"{folder}/{number // FILES_PER_DIR}/{number}.txt"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def expected_busy(kind: str, n: int) -> int:
    return 1 if kind == "submissions" else n // BUSY_EVERY


def verify(url: str, media_root: Path, kind: str, n: int) -> str:
    """'ok', or what is wrong: the due rows purged, their files gone, busy rows untouched."""
    spec = TABLES[kind]
    with connect(url) as conn:
        left = conn.execute(
            f"SELECT count(*) FROM {spec['table']} WHERE content_purged_at IS NULL"
        ).fetchone()[0]
        cleared = conn.execute(
            f"SELECT count(*) FROM {spec['table']} WHERE content_purged_at IS NOT NULL"
            " AND content = '' AND file = ''"
        ).fetchone()[0]
    files_left = sum(len(files) for _, _, files in os.walk(media_root / f"{kind}/bench"))
    busy = expected_busy(kind, n)
    problems = []
    if left != busy:
        problems.append(f"{left} unpurged rows, expected {busy} busy")
    if cleared != n - busy:
        problems.append(f"{cleared} rows cleared, expected {n - busy}")
    if files_left != busy:
        problems.append(f"{files_left} files left, expected {busy}")
    return "; ".join(problems) or "ok"


# --------------------------------------------------------------------------------------------
# Measuring a child process
# --------------------------------------------------------------------------------------------


class StatementSampler(threading.Thread):
    """Polls pg_stat_activity; remembers the longest-running statement it caught."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.database = url.rsplit("/", 1)[1]
        self.stop = threading.Event()
        self.longest_s = 0.0
        self.longest_query = ""

    def run(self) -> None:
        with connect(self.url) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp() - query_start), left(query, 90)"
                    " FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
                    " AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchall()
                for elapsed, query in rows:
                    if elapsed is not None and float(elapsed) > self.longest_s:
                        self.longest_s, self.longest_query = float(elapsed), " ".join(query.split())
                time.sleep(SAMPLE_INTERVAL_S)


@dataclass
class Result:
    n: int
    kind: str
    method: str
    wall_s: float
    work_s: float
    cpu_s: float
    purged: int
    peak_rss_mb: float
    longest_stmt_s: float
    longest_query: str
    check: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.purged / self.work_s if self.work_s else 0.0


def run_child(
    argv: list[str], env: dict[str, str], url: str, cwd: Path = ROOT
) -> tuple[float, float, str, Any]:
    """Run ``argv``; return wall seconds, peak RSS (MB), stdout, and the sampler."""
    sampler = StatementSampler(url)
    sampler.start()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-4000:]}"
        )
    sampler.cpu_s = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024, stdout, sampler


def last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def measure(method: str, kind: str, n: int, args: argparse.Namespace, media: Path) -> Result:
    root = args.ours_root if method == "ours" else ROOT
    env = child_env(args.database_url, str(media), root)
    if method == "ours":
        batches = math.ceil(n / args.batch_size) + 1
        argv = [
            sys.executable,
            "manage.py",
            TABLES[kind]["command"],
            "--batch-size",
            str(args.batch_size),
            "--max-batches",
            str(batches),
        ]
    else:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            method,
            "--kind",
            kind,
            "--batch-size",
            str(args.batch_size),
        ]
    wall, rss, stdout, sampler = run_child(argv, env, args.database_url, cwd=root)
    summary = last_json(stdout)
    return Result(
        n=n,
        kind=kind,
        method=method,
        wall_s=wall,
        work_s=summary["duration_s"],
        cpu_s=sampler.cpu_s,
        purged=summary["counts"]["purged"],
        peak_rss_mb=rss,
        longest_stmt_s=sampler.longest_s,
        longest_query=sampler.longest_query,
        check=verify(args.database_url, media, kind, n),
        extra={"batches": summary["counts"].get("batches")},
    )


# --------------------------------------------------------------------------------------------
# The two baselines, run as child processes (``--worker raw_sql|naive_orm``)
# --------------------------------------------------------------------------------------------

RAW_BATCH_SQL = """
WITH batch AS (
    SELECT t.id, t.file, t.expires_at FROM {table} t
    WHERE t.expires_at <= %(now)s AND t.content_purged_at IS NULL
      AND t.expires_at >= %(after_expires)s
      AND (t.expires_at, t.id) > (%(after_expires)s, %(after_id)s)
      AND NOT EXISTS (SELECT 1 FROM retention_purgeretry p WHERE p.{retry_fk} = t.id)
      AND NOT {busy_sql}
    ORDER BY t.expires_at, t.id LIMIT %(limit)s
    FOR UPDATE OF t SKIP LOCKED
), purged AS (
    UPDATE {table} u SET content = '', file = '', content_purged_at = %(now)s
    FROM batch WHERE u.id = batch.id
)
SELECT id, file, expires_at FROM batch
"""


def raw_sql_worker(kind: str, batch_size: int) -> dict[str, Any]:
    """The same algorithm as ours (keyset over (expires_at, id)), one statement per batch."""
    from datetime import UTC, datetime

    sql = RAW_BATCH_SQL.format(**TABLES[kind])
    media = os.environ["VALIDIBOT_MEDIA_ROOT"]
    now = datetime.now(UTC)
    after = (datetime(1970, 1, 1, tzinfo=UTC), 0)
    purged = batches = 0
    started = time.monotonic()
    with connect(os.environ["DATABASE_URL"], autocommit=False) as conn:
        while True:
            params = {
                "now": now,
                "limit": batch_size,
                "after_expires": after[0],
                "after_id": after[1],
            }
            with conn.transaction():
                rows = conn.execute(sql, params).fetchall()
                for _, name, _ in rows:
                    if name:
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(os.path.join(media, name))
            if not rows:
                break
            after = max((expires_at, pk) for pk, _, expires_at in rows)
            batches += 1
            purged += len(rows)
    return {"purged": purged, "batches": batches, "started": started}


def naive_orm_worker(kind: str, batch_size: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.utils import timezone

    from validibot.retention.services import OUTPUTS, SUBMISSIONS

    target = SUBMISSIONS if kind == "submissions" else OUTPUTS
    now = timezone.now()
    started = time.monotonic()
    due = target.due(now).exclude(target.busy())
    purged = 0
    for row in due:
        if row.file:
            row.file.storage.delete(row.file.name)
        purged += 1
    due.update(content="", file="", content_purged_at=now)
    return {"purged": purged, "batches": 1, "started": started}


CLAIM_ROUNDS = 5
CLAIMS_PER_ROUND = 400


def claim_cost_worker(kind: str, batch_size: int, per_round: int) -> dict[str, Any]:
    """CPU per claim of this process: the compiled-once statement against the ORM queryset.

    Both claim the same ``batch_size`` rows after the same keyset position, in one transaction
    that is rolled back, interleaved in rounds so the machine's load hits both alike. Only
    this process's CPU (``time.process_time``) is counted, not the server's.
    """
    import django

    django.setup()
    from django.db import connection, transaction

    from validibot.retention.services import OUTPUTS, SUBMISSIONS, PurgeRun, _after

    run = PurgeRun(SUBMISSIONS if kind == "submissions" else OUTPUTS, _now())
    rows = run._rows
    once_s = orm_s = 0.0
    with transaction.atomic():
        first = run.claim(batch_size)  # compiles the statement once, sets run.after
        after = run.after
        for _ in range(CLAIM_ROUNDS):
            started = time.process_time()
            for _ in range(per_round):
                run.after = after
                run.claim(batch_size)
            once_s += time.process_time() - started
            started = time.process_time()
            for _ in range(per_round):
                list(_after(rows, *after)[:batch_size])
            orm_s += time.process_time() - started
        transaction.set_rollback(True)
    claims = CLAIM_ROUNDS * per_round
    return {
        "rows_per_claim": len(first),
        "compiled_once_us": round(once_s / claims * 1e6, 1),
        "orm_us": round(orm_s / claims * 1e6, 1),
        "vendor": connection.vendor,
    }


def _now():
    from django.utils import timezone

    return timezone.now()


def worker_main(args: argparse.Namespace) -> None:
    if args.worker == "claim_cost":
        print(json.dumps(claim_cost_worker(args.kind, args.batch_size, args.claims_per_round)))
        return
    work = raw_sql_worker if args.worker == "raw_sql" else naive_orm_worker
    result = work(args.kind, args.batch_size)
    duration = round(time.monotonic() - result.pop("started"), 3)
    print(json.dumps({"task": args.worker, "counts": result, "duration_s": duration}))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

HEADER = (
    f"{'N':>9} {'table':<12} {'method':<10} {'wall s':>8} {'work s':>8} {'cpu s':>7} {'rows/s':>9} "
    f"{'peak RSS MB':>11} {'longest stmt s':>14}  check"
)


def row_text(r: Result) -> str:
    return (
        f"{r.n:>9,} {r.kind:<12} {r.method:<10} {r.wall_s:>8.2f} {r.work_s:>8.2f} {r.cpu_s:>7.2f} "
        f"{r.rows_per_s:>9,.0f} {r.peak_rss_mb:>11.1f} {r.longest_stmt_s:>14.3f}  {r.check}"
    )


def best_of(runs: list[Result]) -> list[Result]:
    """Per (N, table, method), the run with the shortest work time: the machine is shared."""
    best: dict[tuple[int, str, str], Result] = {}
    for run in runs:
        key = (run.n, run.kind, run.method)
        if key not in best or run.work_s < best[key].work_s:
            best[key] = run
    return list(best.values())


def ratio_lines(results: list[Result]) -> list[str]:
    lines = []
    by_key = {(r.n, r.kind, r.method): r for r in results}
    for n in sorted({r.n for r in results}):
        ours = [by_key[(n, k, "ours")] for k in TABLES if (n, k, "ours") in by_key]
        raw = [by_key[(n, k, "raw_sql")] for k in TABLES if (n, k, "raw_sql") in by_key]
        if not ours or not raw:
            continue
        work = sum(r.work_s for r in ours) / sum(r.work_s for r in raw)
        wall = sum(r.wall_s for r in ours) / sum(r.wall_s for r in raw)
        rss = max(r.peak_rss_mb for r in ours)
        stmt = max(r.longest_stmt_s for r in ours)
        lines.append(
            f"ratio N={n:,}: ours / raw SQL = {work:.2f}x work time, {wall:.2f}x wall time "
            f"(target <= 1.3x); ours peak RSS {rss:.0f} MB (target <= 150); "
            f"longest statement {stmt:.3f} s (target <= 1 s)"
        )
    return lines


def claim_cost(args: argparse.Namespace, n: int) -> int:
    """Seed ``n`` rows (no files needed: nothing is purged), then measure one claim's CPU."""
    media = Path(tempfile.mkdtemp(prefix="validibot-bench-media-", dir=args.media_parent))
    try:
        with connect(args.database_url) as conn:
            conn.execute(
                SEED_SQL.format(
                    n=n,
                    runs=max(n // 100, 2),
                    per_dir=FILES_PER_DIR,
                    busy_every=BUSY_EVERY,
                    expires=EXPIRES_SQL.format(n=n),
                )
            )
            conn.execute("VACUUM ANALYZE")
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for kind in TABLES:
            argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "claim_cost"]
            argv += ["--kind", kind, "--batch-size", str(args.batch_size)]
            argv += [
                "--claims-per-round",
                str(CLAIMS_PER_ROUND // 10 if args.quick else CLAIMS_PER_ROUND),
            ]
            _, _, stdout, _ = run_child(
                argv, child_env(args.database_url, str(media)), args.database_url
            )
            cost = last_json(stdout)
            saved = cost["orm_us"] - cost["compiled_once_us"]
            per_million = saved * 1e-6 * 1_000_000 / args.batch_size
            print(
                f"claim of {cost['rows_per_claim']} {kind}: compiled once "
                f"{cost['compiled_once_us']} us CPU, ORM per batch {cost['orm_us']} us; saves "
                f"{per_million:.1f} CPU-s per 1M rows at batch size {args.batch_size}"
            )
        print(f"load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(media, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only N = 10,000")
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="comma-separated row counts (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)}",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="rows per batch for ours and raw SQL (default: the setting's 100)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per method and size below 1M; the table keeps the fastest (default 3)",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--media-parent",
        default=MEDIA_PARENT,
        help=f"where the temp media root goes (default {MEDIA_PARENT or 'the temp dir'})",
    )
    parser.add_argument(
        "--ours-root",
        type=Path,
        default=ROOT,
        help="run our commands from this checkout (e.g. an older commit, to compare)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--claim-cost",
        action="store_true",
        help="only measure the CPU of one claim, compiled once vs built by the ORM per batch "
        "(on the first size's seed)",
    )
    parser.add_argument(
        "--claims-per-round", type=int, default=CLAIMS_PER_ROUND, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--worker", choices=("raw_sql", "naive_orm", "claim_cost"), help=argparse.SUPPRESS
    )
    parser.add_argument("--kind", choices=tuple(TABLES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    sizes = [SIZES[0]] if args.quick else (args.sizes or list(SIZES))
    methods = [m for m in args.methods.split(",") if m]
    ensure_database(args.database_url)
    if args.claim_cost:
        return claim_cost(args, sizes[0])
    media = Path(tempfile.mkdtemp(prefix="validibot-bench-media-", dir=args.media_parent))
    all_runs: list[Result] = []
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"purge bench: batch size {args.batch_size}, sizes {sizes}, media root {media}")
    print(HEADER)
    try:
        for n in sizes:
            repeats = 1 if n >= ONE_SHOT_SIZE else args.repeat
            for _ in range(repeats):
                for method in methods:
                    seed(args.database_url, media, n)
                    for kind in TABLES:
                        result = measure(method, kind, n, args, media)
                        all_runs.append(result)
                        print(row_text(result), flush=True)
    finally:
        shutil.rmtree(media, ignore_errors=True)
    results = best_of(all_runs)
    print(f"\nbest of {args.repeat} run(s) per row (one run at N >= {ONE_SHOT_SIZE:,}):")
    print(HEADER)
    for result in results:
        print(row_text(result))
    print()
    for result in results:
        if result.longest_stmt_s >= 0.5:
            print(
                f"longest statement, {result.n:,} {result.kind} {result.method}: "
                f"{result.longest_stmt_s:.2f} s: {result.longest_query}"
            )
    if args.json:
        args.json.write_text(
            json.dumps([r.__dict__ | {"rows_per_s": r.rows_per_s} for r in results], indent=2)
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    failed = [r for r in all_runs if r.check != "ok"]
    for line in ratio_lines(results):
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
