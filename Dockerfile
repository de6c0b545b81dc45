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
# `pip install .` (no extras): the wheel carries the services and their migrations, never the
# local stand-ins (services/devtools) or their packages (the `dev` extra).
RUN python -m pip install --upgrade pip \
    && python -m pip install .

# --- final: only the venv, as an unprivileged user -------------------------------------------
FROM python:3.11-slim AS final

# The installed package finds its migrations itself (services.recorder.migrations).
ENV PATH=/opt/venv/bin:$PATH \
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

USER 10001:10001
EXPOSE 8080 8081
VOLUME ["/var/lib/calltrail"]

ENTRYPOINT ["calltrail"]
CMD ["gateway"]
