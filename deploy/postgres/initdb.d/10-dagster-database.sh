#!/bin/sh
# Dagster's database beside Django's on the same server, owned by the same user. The postgres
# image runs this folder once, on an empty data directory (first `docker compose up`).
set -eu
if [ -n "${DAGSTER_PG_DB:-}" ] && [ "$DAGSTER_PG_DB" != "$POSTGRES_DB" ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE \"$DAGSTER_PG_DB\" OWNER \"$POSTGRES_USER\""
fi
