# knack-services: the image a Prefect docker work pool runs (flows, tasks, blocks, config).
# Dependencies come from uv.lock in their own layer, before the code: a code change rebuilds only the last layers.
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="knack-services" \
      org.opencontainers.image.description="Prefect flows: Knack to an S3 data store, Socrata and ArcGIS Online" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app
RUN useradd --create-home --uid 10001 knack

RUN pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-cache --no-install-project

COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
COPY config ./config
RUN uv sync --frozen --no-cache --no-editable

USER 10001
ENV PREFECT_HOME=/home/knack/.prefect \
    PREFECT_LOGGING_EXTRA_LOGGERS=tasks
CMD ["python", "flows/sync.py", "--help"]
