# knack-services: the image a Prefect docker work pool runs (flows, tasks, blocks, config).
FROM python:3.11-slim

LABEL org.opencontainers.image.title="knack-services" \
      org.opencontainers.image.description="Prefect flows: Knack to an S3 data store, Socrata and ArcGIS Online" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 knack

COPY pyproject.toml README.md ./
COPY flows ./flows
COPY tasks ./tasks
COPY blocks ./blocks
COPY emulators ./emulators
COPY config ./config
RUN pip install --no-cache-dir .

USER 10001
ENV PREFECT_HOME=/home/knack/.prefect
CMD ["python", "flows/sync.py", "--help"]
