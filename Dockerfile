# syntax=docker/dockerfile:1
# One image for every calltrail service: `calltrail gateway`, `calltrail recorder`,
# `calltrail migrate` (see deploy/k8s). Build: docker build -t calltrail:<version> .

# --- builder: the project and its dependencies in a venv, installed the way `make` does ------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
COPY migrations/ migrations/
RUN python -m pip install --upgrade pip \
    && python -m pip install . \
    && python -m compileall -q services migrations

# --- final: only the venv and the source, as an unprivileged user ---------------------------
FROM python:3.11-slim AS final

# The source tree next to migrations/ comes first on the path: the migration runner finds
# migrations/ at the repository root next to services/ (services/recorder/adapters/migrations.py).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_SPOOL_PATH=/var/lib/calltrail/gateway-spool.sqlite3

RUN groupadd --system --gid 10001 calltrail \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin calltrail \
    && mkdir -p /var/lib/calltrail \
    && chown 10001:10001 /var/lib/calltrail

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --from=builder --chown=root:root /src/services/ /app/services/
COPY --from=builder --chown=root:root /src/migrations/ /app/migrations/

USER 10001:10001
EXPOSE 8080 8081
VOLUME ["/var/lib/calltrail"]

ENTRYPOINT ["calltrail"]
CMD ["gateway"]
