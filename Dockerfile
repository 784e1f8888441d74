# One image for every Validibot process: the Django web app, the Dagster code server, webserver
# and daemon, and the Celery workers. They must run identical code at identical paths, or Celery
# steps fail with unknown-step / FileNotFoundError (dagster-io/dagster#2823, #7224).
#
# Build:  docker compose build        (or: docker build -t validibot-ops:local .)
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv

# The same uv the project's lock file was made with (scripts/bootstrap.sh installs it the same way).
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, from the lock file only, so a code change does not reinstall them.
# .python-version too: without it the first sync may pick another interpreter than the second.
COPY pyproject.toml uv.lock README.md .python-version ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN uv sync --frozen --no-dev

ENV PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    VALIDIBOT_MEDIA_ROOT=/var/lib/validibot/media

# The production instance config (Postgres storage read from DAGSTER_PG_* at start-up). The
# DockerRunLauncher variant replaces this file with a bind mount (deploy/docker-compose.docker-run-launcher.yml).
RUN mkdir -p "$DAGSTER_HOME" "$VALIDIBOT_MEDIA_ROOT" \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && useradd --system --uid 10001 --gid 0 --home-dir /app validibot \
    && chown -R validibot:0 "$DAGSTER_HOME" "$VALIDIBOT_MEDIA_ROOT"

USER validibot

# Each compose service sets its own command; this one answers "what is in this image?".
CMD ["validibot-ops", "--help"]
