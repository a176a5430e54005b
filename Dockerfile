# knack-services: the image a Prefect docker work pool runs (flows, tasks, blocks, config).
# Two stages: "build" installs the locked dependencies with uv into /opt/venv, compiled to bytecode; the
# runtime stage gets that venv and the code, and no installer (no uv, no pip).
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1

# What only a Prefect server needs (its database and migrations, notifications, queues, web server) or
# the CLI's date parsing: a flow run in this image talks to a Prefect API elsewhere and imports none of it.
# tests/e2e/test_deployment.py runs every kind of run in the built image; scripts/check_dockerfile.py
# imports what a run imports from the replayed venv.
ENV SERVER_ONLY="sqlalchemy asyncpg alembic aiosqlite mako greenlet apprise redis burner-redis pydocket py-key-value-aio beartype uvicorn dateparser regex"

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9
# the dependency layer: only the lock decides it (a README or code change reuses it)
COPY pyproject.toml uv.lock ./
# hadolint ignore=SC2046
RUN uv sync --frozen --no-cache --no-install-project $(printf -- '--no-install-package %s ' $SERVER_ONLY)

COPY README.md ./
COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
COPY config ./config
# hadolint ignore=SC2046
RUN uv sync --frozen --no-cache --no-editable $(printf -- '--no-install-package %s ' $SERVER_ONLY)
# what no run can load: the libraries' own test suites, and the builds of extension modules for other
# platforms and Pythons (arcgis ships Windows, macOS and CPython 3.12-3.14 builds of one in every install)
WORKDIR /opt/venv/lib/python3.11/site-packages
RUN find . -depth -type d -name tests -exec rm -rf {} + \
    && find . \( -name '*.pyd' -o -name '*-darwin.so' -o -name '*.cpython-31[2-9]-*.so' \) -delete


FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="knack-services" \
      org.opencontainers.image.description="Prefect flows: Knack to an S3 data store, Socrata and ArcGIS Online" \
      org.opencontainers.image.licenses="MIT"

# no installer at run time; the standard library compiled once here (the base image ships it without
# bytecode, and PYTHONDONTWRITEBYTECODE would have every run compile what it imports). Its path is the
# one Python reports (/usr/local/lib/python3.11 in the official image, /usr/lib/python3.11 in Debian's).
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && python -m compileall -q -j 2 "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
    && useradd --create-home --uid 10001 knack

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/flows ./flows
COPY --from=build /app/tasks ./tasks
COPY --from=build /app/blocks ./blocks
COPY --from=build /app/config ./config

USER 10001
ENV PREFECT_HOME=/home/knack/.prefect \
    PREFECT_LOGGING_EXTRA_LOGGERS=tasks
CMD ["python", "flows/sync.py", "--help"]
