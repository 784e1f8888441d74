"""Authenticated HTTP trigger: ``POST /api/v1/scheduled/<task-id>/`` launches the task's job.

``<task-id>`` is the task id or upstream's kebab id (``clear-sessions`` is ``clear_sessions``:
:func:`~validibot.tasks.registry.task_id_for`), so upstream's endpoints keep working.

External schedulers (Cloud Scheduler, EventBridge, cron + curl) call this; the run goes
through the Dagster webserver's GraphQL API tagged ``validibot/trigger=http``, so every
trigger path shares one run history and the one-run-per-task limit.

Authentication: ``Authorization: Bearer <token>``, compared in constant time with
``VALIDIBOT_TRIGGER_TOKEN`` (any task) and ``VALIDIBOT_TRIGGER_TASK_TOKENS`` (one token per
task: the "audience" of a scoped token is its task, and it is refused for any other). With no
token configured the endpoint answers 503 "trigger disabled"; it is never open.

Answers: 202 ``{run_id, task, status_url, ui_url}``; 200 with the same body when an
``Idempotency-Key`` repeats a request within the key lifetime (24 h); 400 bad body or key
(or JSON nested deeper than 8 levels); 401 no credentials; 403 wrong token; 404 unknown task;
405 not POST; 409 same key still in flight, or ``paused: <reason>`` while an incident override
pauses the task, or ``maintenance: <reason>`` while maintenance mode is on; 411 no
Content-Length (a chunked body); 413 body over 4 KiB; 422 key reused for another request;
503 Dagster webserver down, trigger disabled, or a setting it reads invalid (named); 500
``{"error": "internal error"}`` (details only in the logs). Tokens never reach the logs, and
ids from the URL are logged escaped (no forged lines).

One key never yields two runs: a claimed key names its run's tag in advance. When the launch's
outcome is unknown (Dagster answered after the timeout, or not at all), the claim is kept; the
next request with the key looks the run up by that tag before launching again, and launches
again only once a late launch could no longer land (``OUTCOME_SETTLE_SECONDS``).

``GET /api/v1/scheduled/<task-id>/runs/<run-id>/`` (same authentication) reports a run's
status and, once finished, its summary counts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from validibot.core.settings_check import setting_errors
from validibot.operations.dagster_client import (
    DagsterClient,
    DagsterClientError,
    DagsterUnavailable,
    JobNotFound,
    RunInfo,
    RunNotFound,
)
from validibot.operations.models import IdempotencyKey
from validibot.tasks.overrides import OVERRIDES_ENV, read_override_file
from validibot.tasks.registry import (
    HARD_LIMIT_ENV,
    SOFT_LIMIT_ENV,
    TIMEZONE_ENV,
    MaintenanceTask,
    get_task,
    get_tasks,
    task_id_for,
)
from validibot.tasks.vocabulary import IDEMPOTENCY_TAG, TASK_TAG, TRIGGER_TAG

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
MAX_JSON_DEPTH = 8
"""The only body is ``{"dry_run": bool}``; deeper nesting is refused before parsing."""
MAX_IDEMPOTENCY_KEY_LENGTH = 200
IDEMPOTENCY_PREFIX = "scheduled-trigger:"
ABANDONED_CLAIM_SECONDS = 120
"""A key claimed this long ago with no response recorded belongs to a request that died: the
next request with the key resolves it (looks its run up) instead of waiting for it."""
OUTCOME_SETTLE_SECONDS = 120
"""How long a launch whose answer never came may still land in Dagster. Dagster's GraphQL
``launchRun`` takes no run id or dedupe key, so this window is what keeps a late launch and a
retry from both creating a run."""
LAUNCH_TIMEOUT_SECONDS = 15.0
BODY_FIELDS = frozenset({"dry_run"})
TRIGGER_SETTINGS = (
    "VALIDIBOT_TRIGGER_TOKEN",
    "VALIDIBOT_TRIGGER_TASK_TOKENS",
    "VALIDIBOT_DAGSTER_URL",
    "VALIDIBOT_DAGSTER_UI_URL",
    "VALIDIBOT_IDEMPOTENCY_KEY_TTL_HOURS",
    TIMEZONE_ENV,
    SOFT_LIMIT_ENV,
    HARD_LIMIT_ENV,
)
"""Settings the trigger reads; while one is invalid it answers 503 naming it."""


class Rejected(Exception):  # noqa: N818  (control flow: an answer, not a failure)
    """Answer the request with this status and JSON error instead of going on."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}

    def response(self) -> JsonResponse:
        return JsonResponse({"error": self.error}, status=self.status, headers=self.headers)


class Unsettled(Rejected):
    """An earlier launch under this key may still land in Dagster: not yet safe to relaunch."""


# -- configuration and logging -----------------------------------------------------------
def printable(text: str, limit: int = 100) -> str:
    """``text`` safe for one log line: control characters escaped, at most ``limit`` long.

    Ids come from the URL; ``%0A`` in one must not forge a second log line.
    """
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else f"{escaped[:limit]}..."


def check_settings() -> None:
    """Refuse (503) while a setting the trigger reads is invalid; the log has the details."""
    problems = setting_errors(TRIGGER_SETTINGS)
    if problems:
        logger.error("scheduled trigger misconfigured: %s", "; ".join(problems))
        names = ", ".join(problem.split("=", 1)[0] for problem in problems)
        raise Rejected(503, f"trigger misconfigured: invalid {names} (see manage.py doctor)")


# -- authentication ----------------------------------------------------------------------
def _presented_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(401, "authentication required: Authorization: Bearer <token>", _challenge())
    return token.strip()


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="validibot-scheduled-tasks"'}


def _matches(presented: bytes, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(presented, expected.encode())


def authenticate(request: HttpRequest, task_id: str) -> None:
    """Accept the global token for any task, a scoped token only for its own task."""
    global_token: str = settings.VALIDIBOT_TRIGGER_TOKEN or ""
    scoped = {
        task_id_for(scope): token
        for scope, token in dict(settings.VALIDIBOT_TRIGGER_TASK_TOKENS or {}).items()
    }
    if not global_token and not any(scoped.values()):
        raise Rejected(503, "trigger disabled: no token configured")
    presented = _presented_token(request).encode()
    # Compare against every configured token (no early exit) so timing says nothing.
    global_ok = _matches(presented, global_token)
    scopes = [scope for scope, token in scoped.items() if _matches(presented, token)]
    if global_ok or task_id in scopes:
        return
    if scopes:
        logger.warning("scheduled trigger %s: token scoped to another task", printable(task_id))
        raise Rejected(403, "token not valid for this task (wrong audience)")
    logger.warning(
        "scheduled trigger %s: invalid token from %s", printable(task_id), _client_ip(request)
    )
    raise Rejected(403, "invalid token")


def _client_ip(request: HttpRequest) -> str:
    return printable(request.META.get("REMOTE_ADDR", "?"))


# -- request parsing ---------------------------------------------------------------------
def check_size(request: HttpRequest) -> None:
    """Only a body whose length is declared is read, and only up to the limit.

    Without ``Content-Length`` (a chunked body) Django reads nothing, so ``{"dry_run": true}``
    would silently become a real run: refuse it (411) instead.
    """
    declared_raw = request.META.get("CONTENT_LENGTH")
    if declared_raw in (None, "") or request.META.get("HTTP_TRANSFER_ENCODING"):
        raise Rejected(
            411, "Content-Length required: chunked bodies are not accepted (send {} or no body)"
        )
    try:
        declared = int(declared_raw)
    except ValueError:
        raise Rejected(400, "invalid Content-Length") from None
    if declared < 0:
        raise Rejected(400, "invalid Content-Length")
    if declared > MAX_BODY_BYTES:
        raise Rejected(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")


def json_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_options(request: HttpRequest) -> dict[str, Any]:
    """The optional JSON body: ``{"dry_run": true}`` or nothing."""
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
    if not body.strip():
        return {"dry_run": False}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body must be a JSON object") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise Rejected(400, f"body nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise Rejected(400, "body must be a JSON object") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object")
    unknown = sorted(set(data) - BODY_FIELDS)
    if unknown:
        raise Rejected(400, f"unknown field(s) {unknown}; allowed: {sorted(BODY_FIELDS)}")
    if not isinstance(data.get("dry_run", False), bool):
        raise Rejected(400, "dry_run must be true or false")
    return {"dry_run": data.get("dry_run", False)}


def idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise Rejected(
            400, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters"
        )
    return key


# -- incident pause ----------------------------------------------------------------------
def refuse_if_paused(task: MaintenanceTask) -> None:
    """An incident override pausing the task stops this trigger too (409), not only the
    Dagster schedule: Cloud Scheduler and other external callers come through here.

    A bad entry fails closed for its own task only (503: it may have meant a pause), and a
    file that does not parse for every task; another task's bad entry changes nothing here.
    """
    loaded = read_override_file(known_ids={t.id for t in get_tasks()})
    mine = [p for p in loaded.problems if p.task_id in (None, task.id)]
    if mine:
        logger.error("scheduled trigger %s: %s", task.id, "; ".join(p.message() for p in mine))
        raise Rejected(
            503, "trigger misconfigured: the incident overrides file is invalid (see doctor)"
        )
    override = loaded.active.get(task.id)
    if override is not None and override.enabled is False:
        reason = override.reason or f"incident override in {OVERRIDES_ENV}"
        logger.info("scheduled trigger %s: refused, paused (%s)", task.id, printable(reason))
        raise Rejected(409, f"paused: {reason}")


def refuse_if_in_maintenance(task: MaintenanceTask) -> None:
    """Maintenance mode (``validibot-ops maintenance on``) stops every task here too (409)."""
    from validibot.operations import maintenance

    window = maintenance.current()
    if maintenance.is_active(window, timezone.now()):
        assert window is not None
        logger.info("scheduled trigger %s: refused, %s", task.id, printable(window.reason))
        raise Rejected(409, f"maintenance: {window.reason}")


# -- idempotency -------------------------------------------------------------------------
def _fingerprint(task_id: str, options: dict[str, Any]) -> str:
    canonical = json.dumps({"task": task_id, **options}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_key(key: str, fingerprint: str) -> tuple[IdempotencyKey | None, JsonResponse | None]:
    """Claim the key for this request, or return the answer to give instead.

    A new claim names its run in advance: the ``validibot/idempotency-key`` tag the run will
    carry. A claim whose earlier launch ended without a known outcome (a timeout, or a request
    that died) is returned for :func:`launch_claimed` to resolve.
    """
    stored = f"{IDEMPOTENCY_PREFIX}{key}"
    now = timezone.now()
    IdempotencyKey.objects.filter(key=stored, expires_at__lte=now).delete()
    plan = {"tag": uuid.uuid4().hex}
    try:
        with transaction.atomic():
            created = IdempotencyKey.objects.create(
                key=stored, request_fingerprint=fingerprint, response_body=plan, created_at=now
            )
            return created, None
    except IntegrityError:
        existing = IdempotencyKey.objects.filter(key=stored).first()
    if existing is None:  # expired and deleted between the two statements: try once more
        return claim_key(key, fingerprint)
    if existing.request_fingerprint != fingerprint:
        raise Rejected(422, "Idempotency-Key already used for a different request")
    if existing.response_status is None:
        if not _outcome_unknown(existing, now):
            raise Rejected(409, "a request with this Idempotency-Key is still in progress")
        return existing, None
    return None, _replay(existing.response_body)


def _outcome_unknown(claim: IdempotencyKey, now: datetime) -> bool:
    """The claim's launch ended without an answer, or its request died long ago."""
    body = claim.response_body or {}
    abandoned = claim.created_at <= now - timedelta(seconds=ABANDONED_CLAIM_SECONDS)
    return body.get("outcome") == "unknown" or abandoned


def _replay(body: dict[str, Any]) -> JsonResponse:
    replay = JsonResponse(body, status=200)
    replay["Idempotent-Replayed"] = "true"
    return replay


# -- launching ---------------------------------------------------------------------------
def _client() -> DagsterClient:
    return DagsterClient(settings.VALIDIBOT_DAGSTER_URL, timeout=LAUNCH_TIMEOUT_SECONDS)


def _unavailable(task: MaintenanceTask, exc: DagsterUnavailable, keyed: bool) -> Rejected:
    logger.error("scheduled trigger %s: %s", task.id, exc)
    error = "scheduler unavailable: the Dagster webserver did not answer; retry later"
    if keyed:
        error += " with the same Idempotency-Key (it finds the run if one was launched)"
    return Rejected(503, error, {"Retry-After": "30"})


def accepted_body(
    request: HttpRequest, task: MaintenanceTask, options: dict[str, Any], run_id: str
) -> dict[str, Any]:
    status_path = reverse("scheduled-task-run", kwargs={"task_id": task.id, "run_id": run_id})
    return {
        "run_id": run_id,
        "task": task.id,
        "trigger": "http",
        "dry_run": options["dry_run"],
        "status_url": request.build_absolute_uri(status_path),
        "ui_url": _client().run_url(run_id, settings.VALIDIBOT_DAGSTER_UI_URL),
    }


def launch(
    task: MaintenanceTask, options: dict[str, Any], tags: dict[str, str] | None = None
) -> str:
    """Launch the task's job; the run id. Raises :class:`Rejected` when nothing launched."""
    try:
        run_id = _client().launch_task(
            task.id, trigger="http", dry_run=options["dry_run"], tags=tags
        )
    except JobNotFound as exc:
        logger.error("scheduled trigger %s: %s", task.id, exc)
        raise Rejected(
            503, f"task {task.id} has no job in the loaded Dagster code location"
        ) from exc
    logger.info("scheduled trigger %s: launched run %s", task.id, run_id)
    return run_id


def launch_claimed(
    request: HttpRequest, task: MaintenanceTask, options: dict[str, Any], claim: IdempotencyKey
) -> JsonResponse:
    """Launch under an idempotency claim, so that one key never yields two runs.

    The claim names the run's ``validibot/idempotency-key`` tag in advance. When an earlier
    attempt's outcome is unknown, the run carrying that tag is looked up first. If there is
    none yet, a launch that may still be on its way to Dagster is given
    ``OUTCOME_SETTLE_SECONDS`` (from when it was sent) to land before launching again; until
    then the answer is 503 with ``Retry-After``.
    """
    plan = dict(claim.response_body or {})
    tags = {IDEMPOTENCY_TAG: plan["tag"]}
    try:
        if _outcome_unknown(claim, timezone.now()):
            found = _lookup(tags)
            if found:
                run_id = found[0].run_id
                logger.info("scheduled trigger %s: key resolved to run %s", task.id, run_id)
                return _finish(claim, accepted_body(request, task, options, run_id), 200)
            _refuse_while_unsettled(claim)
            claim.created_at = timezone.now()  # a new attempt: its own settle window
            claim.save(update_fields=["created_at"])
        run_id = launch(task, options, tags)
    except DagsterUnavailable as exc:
        # The launch may have reached Dagster: keep the claim, so a retry resolves it.
        claim.response_body = {**plan, "outcome": "unknown"}
        claim.save(update_fields=["response_body"])
        raise _unavailable(task, exc, keyed=True) from exc
    except Unsettled:
        raise  # the claim stays: a later retry resolves it
    except BaseException:
        claim.delete()  # refused before launching: a retry with the same key may launch
        raise
    return _finish(claim, accepted_body(request, task, options, run_id), 202)


def _lookup(tags: dict[str, str]) -> list[RunInfo]:
    """The runs carrying ``tags``; any failure to look is an unknown outcome, never a miss."""
    try:
        return _client().runs_tagged(tags, limit=1)
    except DagsterClientError as exc:
        if isinstance(exc, DagsterUnavailable):
            raise
        raise DagsterUnavailable(f"cannot look up the key's run: {exc}") from exc


def _refuse_while_unsettled(claim: IdempotencyKey) -> None:
    settles_at = claim.created_at + timedelta(seconds=OUTCOME_SETTLE_SECONDS)
    wait = math.ceil((settles_at - timezone.now()).total_seconds())
    if wait > 0:
        raise Unsettled(
            503,
            "the launch for this Idempotency-Key has an unknown outcome and no run yet; "
            f"retry in {wait} s with the same key",
            {"Retry-After": str(wait)},
        )


def _finish(claim: IdempotencyKey, body: dict[str, Any], status: int) -> JsonResponse:
    claim.response_status, claim.response_body = 202, body
    claim.save(update_fields=["response_status", "response_body"])
    return _replay(body) if status == 200 else JsonResponse(body, status=status)


def _trigger(request: HttpRequest, task_id: str) -> JsonResponse:
    check_size(request)
    check_settings()
    authenticate(request, task_id)
    task = get_task(task_id)
    if task is None:
        raise Rejected(404, f"unknown task {task_id!r}")
    options = parse_options(request)
    refuse_if_in_maintenance(task)
    refuse_if_paused(task)
    key = idempotency_key(request)
    if key is None:
        try:
            run_id = launch(task, options)
        except DagsterUnavailable as exc:
            raise _unavailable(task, exc, keyed=False) from exc
        return JsonResponse(accepted_body(request, task, options, run_id), status=202)
    claim, replay = claim_key(key, _fingerprint(task.id, options))
    if replay is not None:
        logger.info("scheduled trigger %s: idempotent replay", task.id)
        return replay
    return launch_claimed(request, task, options, claim)


def _guarded(handler, request: HttpRequest, **kwargs: str) -> JsonResponse:
    try:
        return handler(request, **kwargs)
    except Rejected as rejected:
        return rejected.response()
    except Exception:
        logger.exception("scheduled-task API %s failed", printable(request.path, 300))
        return JsonResponse({"error": "internal error"}, status=500)


@csrf_exempt  # an API for machines, authenticated by bearer token: no cookies, no CSRF
def trigger_scheduled_task(request: HttpRequest, task_id: str) -> JsonResponse:
    """``POST /api/v1/scheduled/<task-id>/``: launch the task's Dagster job (202)."""
    if request.method != "POST":
        return JsonResponse(
            {"error": "method not allowed: use POST"}, status=405, headers={"Allow": "POST"}
        )
    return _guarded(_trigger, request, task_id=task_id_for(task_id))


def _run_status(request: HttpRequest, task_id: str, run_id: str) -> JsonResponse:
    check_settings()
    authenticate(request, task_id)
    client = DagsterClient(settings.VALIDIBOT_DAGSTER_URL)
    try:
        run = client.get_run(run_id)
        summary = client.run_summary(run_id) if run.finished else {}
    except RunNotFound:
        raise Rejected(404, f"no run {run_id!r}") from None
    except DagsterUnavailable as exc:
        logger.error("scheduled run status %s: %s", printable(run_id), exc)
        raise Rejected(503, "scheduler unavailable: the Dagster webserver did not answer") from exc
    if run.tags.get(TASK_TAG) != task_id:
        raise Rejected(404, f"no run {run_id!r} for task {task_id!r}")
    return JsonResponse(
        {
            "run_id": run.run_id,
            "task": task_id,
            "status": run.status,
            "trigger": run.tags.get(TRIGGER_TAG),
            "duration_s": run.duration_s,
            "summary": summary,
            "ui_url": client.run_url(run_id, settings.VALIDIBOT_DAGSTER_UI_URL),
        }
    )


@csrf_exempt
def scheduled_task_run(request: HttpRequest, task_id: str, run_id: str) -> JsonResponse:
    """``GET /api/v1/scheduled/<task-id>/runs/<run-id>/``: a run's status and summary."""
    if request.method != "GET":
        return JsonResponse(
            {"error": "method not allowed: use GET"}, status=405, headers={"Allow": "GET"}
        )
    return _guarded(_run_status, request, task_id=task_id_for(task_id), run_id=run_id)
