"""Invariants of the deployment files: compose, Dockerfile, env example, Dagster variants."""
