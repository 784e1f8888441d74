"""Authenticated HTTP trigger: ``POST /api/v1/scheduled/<task-id>/`` launches the task's job.

External schedulers (Cloud Scheduler, EventBridge, cron + curl) call this; the run goes
through the Dagster webserver's GraphQL API tagged ``validibot/trigger=http``, so every
trigger path shares one run history and the one-run-per-task limit.

Authentication: ``Authorization: Bearer <token>``, compared in constant time with
``VALIDIBOT_TRIGGER_TOKEN`` (any task) and ``VALIDIBOT_TRIGGER_TASK_TOKENS`` (one token per
task: the "audience" of a scoped token is its task, and it is refused for any other). With no
token configured the endpoint answers 503 "trigger disabled"; it is never open.

Answers: 202 ``{run_id, task, status_url, ui_url}``; 200 with the same body when an
``Idempotency-Key`` repeats a request within the key lifetime (24 h); 400 bad body or key;
401 no credentials; 403 wrong token; 404 unknown task; 405 not POST; 409 same key still in
flight; 413 body over 4 KiB; 422 key reused for another request; 503 Dagster webserver down
or trigger disabled; 500 ``{"error": "internal error"}`` (details only in the logs).
Tokens never reach the logs.

``GET /api/v1/scheduled/<task-id>/runs/<run-id>/`` (same authentication) reports a run's
status and, once finished, its summary counts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from validibot.core.models import IdempotencyKey
from validibot.operations.dagster_client import (
    DagsterClient,
    DagsterUnavailable,
    JobNotFound,
    RunNotFound,
)
from validibot.tasks.registry import MaintenanceTask, get_task
from validibot.tasks.vocabulary import TASK_TAG, TRIGGER_TAG

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
MAX_IDEMPOTENCY_KEY_LENGTH = 200
IDEMPOTENCY_PREFIX = "scheduled-trigger:"
ABANDONED_CLAIM_SECONDS = 120
"""A key claimed this long ago with no response recorded belongs to a request that died."""
BODY_FIELDS = frozenset({"dry_run"})


class Rejected(Exception):  # noqa: N818  (control flow: an answer, not a failure)
    """Answer the request with this status and JSON error instead of going on."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.headers = status, error, headers or {}

    def response(self) -> JsonResponse:
        return JsonResponse({"error": self.error}, status=self.status, headers=self.headers)


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
    scoped: dict[str, str] = dict(settings.VALIDIBOT_TRIGGER_TASK_TOKENS or {})
    if not global_token and not any(scoped.values()):
        raise Rejected(503, "trigger disabled: no token configured")
    presented = _presented_token(request).encode()
    # Compare against every configured token (no early exit) so timing says nothing.
    global_ok = _matches(presented, global_token)
    scopes = [scope for scope, token in scoped.items() if _matches(presented, token)]
    if global_ok or task_id in scopes:
        return
    if scopes:
        logger.warning("scheduled trigger %s: token scoped to another task", task_id)
        raise Rejected(403, "token not valid for this task (wrong audience)")
    logger.warning("scheduled trigger %s: invalid token from %s", task_id, _client_ip(request))
    raise Rejected(403, "invalid token")


def _client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "?")


# -- request parsing ---------------------------------------------------------------------
def check_size(request: HttpRequest) -> None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "invalid Content-Length") from None
    if declared > MAX_BODY_BYTES:
        raise Rejected(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")


def parse_options(request: HttpRequest) -> dict[str, Any]:
    """The optional JSON body: ``{"dry_run": true}`` or nothing."""
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        raise Rejected(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
    if not body.strip():
        return {"dry_run": False}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
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


# -- idempotency -------------------------------------------------------------------------
def _fingerprint(task_id: str, options: dict[str, Any]) -> str:
    canonical = json.dumps({"task": task_id, **options}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_key(key: str, fingerprint: str) -> tuple[IdempotencyKey | None, JsonResponse | None]:
    """Claim the key for this request, or return the answer to give instead."""
    stored = f"{IDEMPOTENCY_PREFIX}{key}"
    now = timezone.now()
    IdempotencyKey.objects.filter(key=stored, expires_at__lte=now).delete()
    abandoned = now - timedelta(seconds=ABANDONED_CLAIM_SECONDS)
    IdempotencyKey.objects.filter(
        key=stored, response_status__isnull=True, created_at__lte=abandoned
    ).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(key=stored, request_fingerprint=fingerprint), None
    except IntegrityError:
        existing = IdempotencyKey.objects.filter(key=stored).first()
    if existing is None:  # expired and deleted between the two statements: try once more
        return claim_key(key, fingerprint)
    if existing.request_fingerprint != fingerprint:
        raise Rejected(422, "Idempotency-Key already used for a different request")
    if existing.response_status is None:
        raise Rejected(409, "a request with this Idempotency-Key is still in progress")
    replay = JsonResponse(existing.response_body, status=200)
    replay["Idempotent-Replayed"] = "true"
    return None, replay


# -- launching ---------------------------------------------------------------------------
def launch(request: HttpRequest, task: MaintenanceTask, options: dict[str, Any]) -> dict[str, Any]:
    client = DagsterClient(settings.VALIDIBOT_DAGSTER_URL)
    try:
        run_id = client.launch_task(task.id, trigger="http", dry_run=options["dry_run"])
    except DagsterUnavailable as exc:
        logger.error("scheduled trigger %s: %s", task.id, exc)
        raise Rejected(
            503,
            "scheduler unavailable: the Dagster webserver did not answer; retry later",
            {"Retry-After": "30"},
        ) from exc
    except JobNotFound as exc:
        logger.error("scheduled trigger %s: %s", task.id, exc)
        raise Rejected(
            503, f"task {task.id} has no job in the loaded Dagster code location"
        ) from exc
    logger.info("scheduled trigger %s: launched run %s", task.id, run_id)
    status_path = reverse("scheduled-task-run", kwargs={"task_id": task.id, "run_id": run_id})
    return {
        "run_id": run_id,
        "task": task.id,
        "trigger": "http",
        "dry_run": options["dry_run"],
        "status_url": request.build_absolute_uri(status_path),
        "ui_url": client.run_url(run_id, settings.VALIDIBOT_DAGSTER_UI_URL),
    }


def _trigger(request: HttpRequest, task_id: str) -> JsonResponse:
    check_size(request)
    authenticate(request, task_id)
    task = get_task(task_id)
    if task is None:
        raise Rejected(404, f"unknown task {task_id!r}")
    options = parse_options(request)
    key = idempotency_key(request)
    claim = None
    if key is not None:
        claim, replay = claim_key(key, _fingerprint(task.id, options))
        if replay is not None:
            logger.info("scheduled trigger %s: idempotent replay", task.id)
            return replay
    try:
        body = launch(request, task, options)
    except BaseException:
        if claim is not None:
            claim.delete()  # nothing launched: a retry with the same key may launch
        raise
    if claim is not None:
        claim.response_status, claim.response_body = 202, body
        claim.save(update_fields=["response_status", "response_body"])
    return JsonResponse(body, status=202)


def _guarded(handler, request: HttpRequest, **kwargs: str) -> JsonResponse:
    try:
        return handler(request, **kwargs)
    except Rejected as rejected:
        return rejected.response()
    except Exception:
        logger.exception("scheduled-task API %s failed", request.path)
        return JsonResponse({"error": "internal error"}, status=500)


@csrf_exempt  # an API for machines, authenticated by bearer token: no cookies, no CSRF
def trigger_scheduled_task(request: HttpRequest, task_id: str) -> JsonResponse:
    """``POST /api/v1/scheduled/<task-id>/``: launch the task's Dagster job (202)."""
    if request.method != "POST":
        return JsonResponse(
            {"error": "method not allowed: use POST"}, status=405, headers={"Allow": "POST"}
        )
    return _guarded(_trigger, request, task_id=task_id)


def _run_status(request: HttpRequest, task_id: str, run_id: str) -> JsonResponse:
    authenticate(request, task_id)
    client = DagsterClient(settings.VALIDIBOT_DAGSTER_URL)
    try:
        run = client.get_run(run_id)
        summary = client.run_summary(run_id) if run.finished else {}
    except RunNotFound:
        raise Rejected(404, f"no run {run_id!r}") from None
    except DagsterUnavailable as exc:
        logger.error("scheduled run status %s: %s", run_id, exc)
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
    return _guarded(_run_status, request, task_id=task_id, run_id=run_id)
