# syntax=docker/dockerfile:1
# The adapter as one container: `adapter serve` on port 8080, SQLite in the /data volume
# by default (set ADAPTER_DATABASE_URL for PostgreSQL). See docs/running.md.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: dependencies and the project's wheel into /opt/venv ----------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that this layer is reused until the
# dependency list changes (every dependency ships manylinux wheels: no compiler needed).
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt

# Then the project itself, as a wheel (what .dockerignore lets through).
COPY . .
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/venv/bin/adapter --help >/dev/null

# ---- runtime: the venv, the mappings and the example consortium; no build tools ---------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="yigongti-fhir-adapter" \
      org.opencontainers.image.description="HL7 FHIR R4 integration adapter for county medical consortia" \
      org.opencontainers.image.licenses="Apache-2.0"

# The installed package cannot find mappings/ and fixtures/ next to its source (they are
# not in the wheel), so their places are given explicitly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ADAPTER_DATABASE_URL=sqlite:////data/adapter.db \
    ADAPTER_DATA_DIR=/data \
    ADAPTER_MAPPINGS_DIR=/app/mappings \
    ADAPTER_CONFIG=/app/fixtures/consortium.yaml

RUN groupadd --system --gid 10001 adapter \
 && useradd --system --uid 10001 --gid adapter --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin adapter \
 && mkdir -p /app /data \
 && chown adapter:adapter /data

COPY --from=builder /opt/venv /opt/venv
COPY mappings /app/mappings
COPY fixtures /app/fixtures

WORKDIR /app
USER adapter
# Declared after the chown above: a new volume starts with /data's owner, so the
# non-root user can create the SQLite file there.
VOLUME ["/data"]
EXPOSE 8080

# python:3.11-slim has no curl; urlopen raises (exit 1) on connection errors and non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

CMD ["adapter", "serve", "--host", "0.0.0.0", "--port", "8080"]
