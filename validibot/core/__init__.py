"""Core app: the task registry, the maintenance command base, idempotency keys, shared commands."""
