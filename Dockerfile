# syntax=docker/dockerfile:1
# Container image of softlayer-billing-exporter.
#
#   docker build -t softlayer-billing-exporter .
#   docker run --rm -p 29610:29610 --read-only \
#     -v "$PWD/config.yaml:/etc/softlayer-billing-exporter/config.yaml:ro" \
#     -e SOFTLAYER_API_KEY softlayer-billing-exporter
#
# Both stages use the same exact base tag: the venv's interpreter is a symlink to the base
# image's /usr/local/bin/python3.11, so the venv only works on the image it was built on.
# Bump the tag (and rebuild often) to pick up Python and Debian security fixes.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter

# Build the wheel with the project's own PEP 517 backend (pinned in pyproject.toml), then
# install only that wheel and its runtime dependencies into a fresh venv. tests/deploy
# runs these same two steps to prove the installed console script works.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir /dist/*.whl

FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="softlayer-billing-exporter" \
      org.opencontainers.image.description="Prometheus exporter for SoftLayer (IBM Cloud classic infrastructure) billing" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only (the Helm chart mounts it so);
# the venv's bytecode was compiled at install time in the build stage.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=build /opt/venv /opt/venv

# A numeric user that exists nowhere else: Kubernetes' runAsNonRoot can only verify a numeric
# UID, and no passwd entry is needed because the exporter never looks itself up.
USER 65532:65532
WORKDIR /

EXPOSE 29610

# Docker only (Kubernetes uses the chart's probes). /healthz is cheap and needs no credentials.
# exporter.healthcheck reads the exporter's own flags from /proc/1/cmdline, so the check
# follows --web.listen-address (and https with TLS in --web.config.file); the slim image has
# no curl, and Python's urllib does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "exporter.healthcheck"]

ENTRYPOINT ["softlayer-billing-exporter"]
CMD ["--config.file=/etc/softlayer-billing-exporter/config.yaml", "--log.format=json"]
