# Every image of msa-board from one file: the six deployables (member, board, qna, saga,
# gateway, web) and the load generator (loadgen). The build argument DEPLOYABLE picks the
# image; the build context is the repository root:
#
#   docker build --build-arg DEPLOYABLE=member -t ghcr.io/example/msa-board/member:0.1.0 .
#
# docker-compose.yml passes the same argument per service and `make images` builds all seven.
# What every image shares is written once: the pinned bases, uv from the lockfile, the two
# layers, bytecode, the non-root user, the read-only-root environment and the OCI labels.
# What differs is one short stage per image: `code-<name>` (the folders copied in) and
# `image-<name>` (entrypoint, ports, working directory, description). The last stage starts
# from `image-${DEPLOYABLE}`; BuildKit and buildah build only the stages that image needs.
#
# One image runs every process type of its deployable (12-factor VIII): the entrypoint is
# the deployable's CLI and the command picks the process, e.g. `member api`, `member worker`,
# `member migrate`, `member rebuild-read-model` (docs/CONVENTIONS.md lists every command).
# Only the lockfile, the workspace manifests, libs/chassis and the deployable's own folder
# are copied in (.dockerignore keeps the rest of the context out).

ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
# member, board, qna, saga, gateway, web or loadgen. No default: a build names its image.
ARG DEPLOYABLE

# uv is copied out of its own image (a stage, because COPY --from cannot expand ARGs).
FROM ${UV_IMAGE} AS uv

# ------------------------------------------------------------ dependencies (shared)
FROM ${PYTHON_IMAGE} AS deps
COPY --from=uv /uv /usr/local/bin/uv

# Install exactly what uv.lock says, into /app/.venv, using the image's Python;
# compile bytecode now because the runtime root filesystem is read-only.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Behind a proxy that re-signs TLS, uv must trust the proxy's CA to reach PyPI: `make images`
# mounts this machine's bundle for the build steps and names it here (podman only). An ARG of
# the build stages: it never reaches the runtime image.
ARG SSL_CERT_FILE

# 1. Third-party dependencies only: this layer is rebuilt only when the lock changes.
#    uv needs every workspace member's pyproject.toml to read the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/chassis/pyproject.toml libs/chassis/pyproject.toml
COPY services/member/pyproject.toml services/member/pyproject.toml
COPY services/board/pyproject.toml services/board/pyproject.toml
COPY services/qna/pyproject.toml services/qna/pyproject.toml
COPY gateway/pyproject.toml gateway/pyproject.toml
COPY saga/pyproject.toml saga/pyproject.toml
COPY web/pyproject.toml web/pyproject.toml
COPY loadgen/pyproject.toml loadgen/pyproject.toml
# Declared here, not above, so the layers above are one cache entry for all seven images.
ARG DEPLOYABLE
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package ${DEPLOYABLE}

# ------------------------------------------------------------ code (one stage per image)
# 2. Our code: the chassis and the deployable's own folder, nothing of the others. It is
#    installed from source (editable), so files beside the package (alembic.ini and
#    migrations/, web's templates and locale) stay at /app/<folder>/.
FROM deps AS code-member
COPY libs/chassis libs/chassis
COPY services/member services/member

FROM deps AS code-board
COPY libs/chassis libs/chassis
COPY services/board services/board

FROM deps AS code-qna
COPY libs/chassis libs/chassis
COPY services/qna services/qna

FROM deps AS code-saga
COPY libs/chassis libs/chassis
COPY saga saga

FROM deps AS code-gateway
COPY libs/chassis libs/chassis
COPY gateway gateway

FROM deps AS code-web
COPY libs/chassis libs/chassis
COPY web web

# The load generator needs no chassis.
FROM deps AS code-loadgen
COPY loadgen loadgen

# ------------------------------------------------------------ build (shared)
FROM code-${DEPLOYABLE} AS build
ARG SSL_CERT_FILE
ARG DEPLOYABLE
# Compiles every source copied in above (everything under /app but the virtual environment,
# whose bytecode uv wrote); `-s .` records the paths as before, without a leading "./".
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ${DEPLOYABLE} \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '/\.venv/' -s . .

# ------------------------------------------------------------ runtime (shared)
FROM ${PYTHON_IMAGE} AS runtime

# A fixed numeric user, so Kubernetes can prove runAsNonRoot without looking it up
# (the USER instruction itself is in the last stage).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

# The code stays owned by root: the process can read it but never change it.
COPY --from=build /app /app

# PYTHONDONTWRITEBYTECODE: bytecode was compiled at build time and the root filesystem
# is read-only. TMPDIR: the only writable path is a mounted /tmp (tmpfs / emptyDir).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp

# The six deployables are processes of the system; loadgen is a tool and starts from
# `runtime`. HTTP_HOST: in a container the listener must face the pod/container network.
FROM runtime AS process
ARG DEPLOYABLE
ENV SERVICE_NAME=${DEPLOYABLE} \
    HTTP_HOST=0.0.0.0
LABEL org.opencontainers.image.documentation="https://github.com/example/msa-board/blob/main/docs/deploy.md"

# ------------------------------------------------------------ runtime (one stage per image)
# Ports from docs/CONVENTIONS.md. CMD follows ENTRYPOINT in each stage: a new ENTRYPOINT
# clears the CMD a stage inherits.
FROM process AS image-member
# /etc/member/jwt is where the JWT signing key is mounted (a Secret in Kubernetes, a
# volume in compose); a new named volume takes this owner, so the key can be written once.
RUN install -d -o 10001 -g 10001 -m 0700 /etc/member/jwt
ENV HTTP_PORT=8001 \
    WORKER_PORT=9101
WORKDIR /app/services/member
EXPOSE 8001 9101
ENTRYPOINT ["member"]
CMD ["api"]
LABEL org.opencontainers.image.description="Member service (sign-up, login, JWT/JWKS, profile, withdrawal): api, worker and admin processes."

FROM process AS image-board
ENV HTTP_PORT=8002 \
    WORKER_PORT=9102
WORKDIR /app/services/board
EXPOSE 8002 9102
ENTRYPOINT ["board"]
CMD ["api"]
LABEL org.opencontainers.image.description="Board service (boards, posts, comments): api, worker and admin processes."

FROM process AS image-qna
ENV HTTP_PORT=8003 \
    WORKER_PORT=9103
WORKDIR /app/services/qna
EXPOSE 8003 9103
ENTRYPOINT ["qna"]
CMD ["api"]
LABEL org.opencontainers.image.description="Q&A service (questions, answers, comments): api, worker and admin processes."

FROM process AS image-saga
ENV HTTP_PORT=8004 \
    WORKER_PORT=9104
WORKDIR /app/saga
EXPOSE 8004 9104
ENTRYPOINT ["saga"]
CMD ["api"]
LABEL org.opencontainers.image.description="Saga orchestrator (member withdrawal, answer acceptance): api, worker and admin processes."

FROM process AS image-gateway
ENV HTTP_PORT=8000
WORKDIR /app/gateway
EXPOSE 8000
ENTRYPOINT ["gateway"]
CMD ["api"]
LABEL org.opencontainers.image.description="API gateway: routing, JWT validation, rate limiting, timeouts, retries, circuit breakers."

FROM process AS image-web
ENV HTTP_PORT=8005
WORKDIR /app/web
EXPOSE 8005
ENTRYPOINT ["web"]
CMD ["api"]
LABEL org.opencontainers.image.description="Web front end: server-rendered pages and the Backend-for-Frontend over the gateway API."

# Locust, headless, with loadgen's locustfile, sending LOADGEN_RATE requests per second to
# GATEWAY_URL until the container is stopped; arguments go to Locust (docs/loadgen.md).
# docker-compose.yml runs it under `--profile loadgen`.
FROM runtime AS image-loadgen
ENV GATEWAY_URL=http://gateway:8000 \
    LOADGEN_RATE=5
WORKDIR /tmp
ENTRYPOINT ["loadgen"]
CMD []
LABEL org.opencontainers.image.description="Load generator for demonstrations: Locust personas driving mixed traffic through the gateway." \
      org.opencontainers.image.documentation="https://github.com/example/msa-board/blob/main/docs/loadgen.md"

# ------------------------------------------------------------ the image (shared)
FROM image-${DEPLOYABLE} AS image
USER 10001:10001

# Labels last: a new revision changes only this metadata, never a cached layer above.
ARG DEPLOYABLE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="msa-board ${DEPLOYABLE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/msa-board" \
      org.opencontainers.image.url="https://github.com/example/msa-board" \
      org.opencontainers.image.vendor="msa-board" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.17-slim-bookworm"
