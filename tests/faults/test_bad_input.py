"""Bad input: malformed command arguments, broken registry entries and overrides files,
GraphQL launches of jobs that do not exist. Each is refused with a specific error and
changes no row. (The HTTP trigger's bad inputs are tested in tests/validibot/operations/ and
tests/integration/surfaces/.)"""

from __future__ import annotations

import os
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults import figures
from tests.faults.helpers import rows_changed, table_counts
from tests.support.dagster_stack import REPO_ROOT
from validibot.operations.dagster_client import DagsterClient, GraphQLError, JobNotFound
from validibot.tasks.registry import BUILTIN_TASKS

# One per command (13) x 4 malformed inputs, each a fresh manage.py process: 300 s was tight for 9.
pytestmark = [pytest.mark.services, pytest.mark.timeout(600)]

COMMANDS = sorted({task.command for task in BUILTIN_TASKS})
MALFORMED = {
    "--batch-size 0": (["--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    "--batch-size abc": (["--batch-size", "abc"], "argument --batch-size: must be an integer"),
    "--max-batches -1": (["--max-batches", "-1"], "argument --max-batches: must be zero or"),
    "--no-such-option": (["--no-such-option"], "unrecognized arguments: --no-such-option"),
}


@pytest.fixture(scope="module")
def seeded(fault_stack):
    """Rows every command could touch, so a command that ran anyway would show."""
    fault_stack.manage("seed_demo_data", "--no-files")
    return fault_stack


def test_every_command_refuses_malformed_arguments_and_changes_nothing(seeded):
    stack = seeded
    before = table_counts(stack)
    cases = [(c, label) for c in COMMANDS for label in MALFORMED]

    def run(case):
        command, label = case
        args, _ = MALFORMED[label]
        return stack.run_cli([sys.executable, "manage.py", command, *args], timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, cases))
    changed = rows_changed(before, table_counts(stack))
    failures = []
    for (command, label), result in zip(cases, results, strict=True):
        expected = MALFORMED[label][1]
        rejected = result.returncode != 0 and expected in result.stderr
        figures.bad_input(
            f"`manage.py {command} {label}`",
            rejected=rejected,
            error=f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1:]}",
            rows_changed=changed,
        )
        if not rejected:
            failures.append((command, label, result.returncode, result.stderr[-500:]))
    assert not failures, failures
    assert changed == 0


def _module(directory: Path, name: str, body: str) -> str:
    (directory / f"{name}.py").write_text(
        "from validibot.tasks.registry import MaintenanceTask as T\n"
        "from validibot.tasks.registry import register as register\n" + textwrap.dedent(body)
    )
    return name


REGISTRY_CASES = {
    "registry entry with a bad cron": (
        "fault_bad_cron",
        'register(T(id="fault_bad_cron", name="x", command="noop_task", cron="61 * * * *"))',
        "fault_bad_cron",
    ),
    "registry entry with an unknown timezone": (
        "fault_bad_tz",
        'register(T(id="fault_bad_tz", name="x", command="noop_task", cron="0 * * * *",'
        ' timezone="Mars/Olympus_Mons"))',
        "Mars/Olympus_Mons",
    ),
    "registry entry with a cron only croniter accepts (issue 15 D8)": (
        "fault_feb_31",
        'register(T(id="fault_feb_31", name="x", command="noop_task", cron="0 0 31 2 *"))',
        "scheduled task 'fault_feb_31' (registry entry): cron '0 0 31 2 *'",
    ),
    "registry entry with a duplicate id": (
        "fault_duplicate",
        'register(T(id="clear_sessions", name="again", command="noop_task", cron="0 * * * *"))',
        "clear_sessions",
    ),
}

OVERRIDE_CASES = {
    "overrides file that is not JSON": ("bad.json", '{"clear_sessions": {"enabled": fal', "JSON"),
    "overrides file that is not YAML": ("bad.yaml", "clear_sessions: [enabled: : false", "YAML"),
    "overrides naming an unknown task": (
        "unknown.json",
        '{"no_such_task": {"enabled": false}}',
        "no_such_task",
    ),
    "overrides with a bad cron": (
        "cron.json",
        '{"clear_sessions": {"cron": "every day"}}',
        "every day",
    ),
    "overrides with a cron only croniter accepts (issue 15 D8)": (
        "feb31.json",
        '{"clear_sessions": {"cron": "0 0 31 2 *", "reason": "r", "author": "a"}}',
        "feb31.json: task 'clear_sessions': key 'cron' ('0 0 31 2 *')",
    ),
}


def _validate(stack, env: dict[str, str]):
    argv = ["dagster", "definitions", "validate", "-m", "validibot_ops.definitions"]
    return stack.run_cli(argv, timeout=180, env={"VALIDIBOT_EXECUTOR": "in_process", **env})


def test_a_bad_registry_entry_stops_the_code_location(fault_stack, tmp_path):
    stack = fault_stack
    before = table_counts(stack)
    pythonpath = os.pathsep.join([str(REPO_ROOT), str(tmp_path)])
    cases: dict[str, tuple[dict[str, str], str]] = {}
    for label, (module, body, needle) in REGISTRY_CASES.items():
        _module(tmp_path, module, body)
        cases[label] = ({"VALIDIBOT_TASK_MODULES": module, "PYTHONPATH": pythonpath}, needle)
    cases["control: the same stack validates cleanly"] = ({}, "")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(
            zip(cases, pool.map(lambda c: _validate(stack, cases[c][0]), cases), strict=True)
        )
    changed = rows_changed(before, table_counts(stack))
    control = results.pop("control: the same stack validates cleanly")
    assert control.returncode == 0, control.stdout[-2000:] + control.stderr[-2000:]
    failures = []
    for label, result in results.items():
        output = result.stdout + result.stderr
        needle = cases[label][1]
        rejected = result.returncode != 0 and needle in output
        error = next((line for line in output.splitlines() if needle in line), output[-200:])
        figures.bad_input(
            f"{label} (`dagster definitions validate`)",
            rejected=rejected,
            error=f"exit {result.returncode}: {error.strip()}",
            rows_changed=changed,
        )
        if not rejected:
            failures.append((label, result.returncode, output[-800:]))
    assert not failures, failures
    assert changed == 0


def test_a_bad_overrides_file_is_refused_by_the_check_and_never_stops_the_location(
    fault_stack, tmp_path
):
    """Issue 28: an overrides mistake fails safe. ``validibot-ops overrides check`` refuses
    the file naming the entry (exit 1), and the code location still loads (every other
    schedule and sensor with it; tests/validibot_ops/test_bad_overrides.py has the details)."""
    stack = fault_stack
    before = table_counts(stack)
    failures = []
    for label, (name, text, needle) in OVERRIDE_CASES.items():
        path = tmp_path / name
        path.write_text(text)
        check = stack.run_cli(["validibot-ops", "overrides", "check", str(path)], timeout=120)
        loads = _validate(stack, {"VALIDIBOT_SCHEDULE_OVERRIDES": str(path)})
        output = check.stdout + check.stderr
        rejected = check.returncode == 1 and needle in output and loads.returncode == 0
        error = next((line for line in output.splitlines() if needle in line), output[-200:])
        figures.bad_input(
            f"{label} (`validibot-ops overrides check`; the code location still loads)",
            rejected=rejected,
            error=f"exit {check.returncode}: {error.strip()}",
            rows_changed=rows_changed(before, table_counts(stack)),
        )
        if not rejected:
            failures.append((label, check.returncode, loads.returncode, output[-800:]))
    assert not failures, failures
    assert rows_changed(before, table_counts(stack)) == 0


def test_a_registry_entry_naming_an_unknown_command(fault_stack, tmp_path):
    """The code location checks each task's command against INSTALLED_APPS when it loads
    (without django.setup()), so a typo stops the load naming the task, not a run at 3 AM."""
    stack = fault_stack
    before = table_counts(stack)
    module = _module(
        tmp_path,
        "fault_unknown_command",
        'register(T(id="fault_unknown_command", name="x", command="no_such_command",'
        ' cron="0 0 1 1 *", enabled=False))',
    )
    env = {
        "VALIDIBOT_TASK_MODULES": module,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(tmp_path)]),
        "VALIDIBOT_EXECUTOR": "in_process",
    }
    validate = _validate(stack, env)
    output = validate.stdout + validate.stderr
    changed = rows_changed(before, table_counts(stack))
    error = next((ln for ln in output.splitlines() if "no_such_command" in ln), output[-200:])
    rejected = validate.returncode != 0 and "fault_unknown_command" in output
    figures.bad_input(
        "registry entry with an unknown command (`dagster definitions validate`)",
        rejected=rejected,
        error=f"exit {validate.returncode}: {error.strip()}",
        rows_changed=changed,
    )
    assert rejected, output[-3000:]
    assert "management command 'no_such_command' not found" in output
    assert changed == 0


def test_graphql_launches_of_unknown_jobs_or_bad_config_are_refused(fault_stack):
    stack = fault_stack
    client = DagsterClient(stack.url, timeout=30)
    before = table_counts(stack)
    with stack.instance() as instance:
        runs_before = instance.get_runs_count()

    with pytest.raises(JobNotFound) as not_found:
        client.launch_task("no_such_task")
    selector = dict(client.find_job("clear_sessions").__dict__)
    data = client.execute(
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on PipelineNotFoundError { message } ... on Error { message } } }",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": selector["location"],
                    "repositoryName": selector["repository"],
                    "jobName": "no_such_task",
                },
                "runConfigData": {},
            }
        },
    )
    with pytest.raises(GraphQLError) as bad_config:
        client.launch_run(
            "clear_sessions",
            run_config={"ops": {"clear_sessions": {"config": {"extra_args": "--all"}}}},
        )
    with stack.instance() as instance:
        runs_after = instance.get_runs_count()
    changed = rows_changed(before, table_counts(stack)) + abs(runs_after - runs_before)
    raw = data["launchRun"]
    figures.bad_input(
        "GraphQL launch of an unknown job (client)",
        rejected=True,
        error=f"JobNotFound: {not_found.value}",
        rows_changed=changed,
    )
    figures.bad_input(
        "GraphQL launchRun mutation naming an unknown job",
        rejected=raw["__typename"] == "PipelineNotFoundError",
        error=f"{raw['__typename']}: {raw.get('message', '')}",
        rows_changed=changed,
    )
    figures.bad_input(
        "GraphQL launch with run config of the wrong type",
        rejected=True,
        error=str(bad_config.value),
        rows_changed=changed,
    )
    assert raw["__typename"] == "PipelineNotFoundError", raw
    assert "no_such_task" in str(not_found.value) and "no_such_task" in raw["message"]
    assert "extra_args" in str(bad_config.value)
    assert changed == 0


# (variables, the command they must refuse, the message naming the variable)
BAD_SETTINGS = {
    "VALIDATOR_TIMEOUT_SECONDS=0 (D3)": (
        {"VALIDATOR_TIMEOUT_SECONDS": "0"},
        "cleanup_stuck_runs",
        "VALIDATOR_TIMEOUT_SECONDS='0' is invalid: expected a whole number of seconds",
    ),
    "VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS=0 (D3)": (
        {"VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS": "0"},
        "cleanup_callback_receipts",
        "VALIDIBOT_CALLBACK_RECEIPT_RETENTION_DAYS='0' is invalid",
    ),
    "VALIDIBOT_PURGE_RETRY_BASE_SECONDS=0 (D4)": (
        {"VALIDIBOT_PURGE_RETRY_BASE_SECONDS": "0"},
        "process_purge_retries",
        "VALIDIBOT_PURGE_RETRY_BASE_SECONDS='0' is invalid",
    ),
    "VALIDIBOT_PURGE_MAX_BATCHES=-1 (D4)": (
        {"VALIDIBOT_PURGE_MAX_BATCHES": "-1"},
        "purge_expired_submissions",
        "VALIDIBOT_PURGE_MAX_BATCHES='-1' is invalid: expected a whole number >= 0",
    ),
    "VALIDIBOT_PURGE_BATCH_SIZE=abc (D9)": (
        {"VALIDIBOT_PURGE_BATCH_SIZE": "abc"},
        "purge_expired_outputs",
        "VALIDIBOT_PURGE_BATCH_SIZE='abc' is invalid: expected a whole number >= 1",
    ),
    "VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS=abc (D9)": (
        {"VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS": "abc"},
        "clear_sessions",
        "VALIDIBOT_TASK_SOFT_TIME_LIMIT_SECONDS='abc' is invalid",
    ),
    "VALIDIBOT_SCHEDULE_TIMEZONE=Mars/Olympus_Mons (D9)": (
        {"VALIDIBOT_SCHEDULE_TIMEZONE": "Mars/Olympus_Mons"},
        "cleanup_stuck_runs",
        "VALIDIBOT_SCHEDULE_TIMEZONE='Mars/Olympus_Mons' is invalid: expected an IANA timezone",
    ),
}


def row_digests(stack) -> set[tuple[str, str]]:
    """(table, md5 of the row) for every row of the Django database: an edit shows too."""
    tables = [t for (t,) in stack.sql("select tablename from pg_tables where schemaname='public'")]
    return {
        (table, digest)
        for table in tables
        # Table names come from pg_tables, not from input.
        for (digest,) in stack.sql(f'select md5(t::text) from "{table}" t')  # noqa: S608
    }


def test_bad_settings_refuse_their_task_naming_the_variable_and_change_nothing(seeded):
    """Issue 15 D3/D4/D9: the values the audit set exited 0 "completed" (timing out live runs,
    deleting every receipt, hot-looping retries, purging nothing) or broke every command."""
    stack = seeded
    before = row_digests(stack)
    failures = []
    for label, (env, command, needle) in BAD_SETTINGS.items():
        result = stack.run_cli([sys.executable, "manage.py", command], timeout=120, env=env)
        rejected = result.returncode == 1 and f"{command}: refused: {needle}" in result.stderr
        changed = len(before ^ row_digests(stack))
        figures.bad_input(
            f"`{label}` then `manage.py {command}`",
            rejected=rejected,
            error=f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1:]}",
            rows_changed=changed,
        )
        if not rejected or changed:
            failures.append((label, result.returncode, changed, result.stderr[-500:]))
    assert not failures, failures


def test_a_token_map_without_equals_breaks_no_command(seeded):
    """Issue 15 D9: ``VALIDIBOT_TRIGGER_TASK_TOKENS=clear_sessions`` made every manage.py
    command fail ("dictionary update sequence element #0 has length 1"). Now commands run and
    ``doctor`` names the variable (the trigger answers 503 naming it: tests/validibot/)."""
    stack = seeded
    env = {"VALIDIBOT_TRIGGER_TASK_TOKENS": "clear_sessions"}
    before = row_digests(stack)
    other = stack.run_cli([sys.executable, "manage.py", "clear_sessions", "--dry-run"], env=env)
    skip = [f"--skip={c}" for c in ("redis", "workers", "code_location", "daemon", "schedules")]
    doctor = stack.run_cli([sys.executable, "manage.py", "doctor", *skip], env=env)
    changed = len(before ^ row_digests(stack))
    named = "VALIDIBOT_TRIGGER_TASK_TOKENS=<hidden> is invalid (entry 1 has no '=')"
    rejected = other.returncode == 0 and doctor.returncode == 1 and named in doctor.stdout
    figures.bad_input(
        "`VALIDIBOT_TRIGGER_TASK_TOKENS=clear_sessions` (other commands run; `doctor` names it)",
        rejected=rejected,
        error=f"clear_sessions exit {other.returncode}; doctor exit {doctor.returncode}: {named}",
        rows_changed=changed,
    )
    assert other.returncode == 0, other.stderr[-1000:]
    assert doctor.returncode == 1 and named in doctor.stdout, doctor.stdout + doctor.stderr
    assert "dictionary update sequence" not in other.stderr + doctor.stderr
    assert changed == 0
