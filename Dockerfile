# The image of the web server and the worker (docker-compose.yml runs both).
# Three stages: the page is built with Node, the Python packages are
# installed into a virtual environment, and the final image gets only both
# results and the code, runs as an unprivileged user and holds no secret.

FROM node:20-bookworm-slim AS page
WORKDIR /app/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm AS packages
COPY requirements.txt /tmp/
# Only the runtime part of requirements.txt: the test tools below its
# "# Tests and tooling" line (a browser driver among them) stay out of the image.
RUN sed '/^# Tests and tooling/,$d' /tmp/requirements.txt > /tmp/runtime.txt \
    && python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir -r /tmp/runtime.txt

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH \
    JOBS_DATA_DIR=/data \
    JOBS_HOST=0.0.0.0 \
    PORT=8000
# A fixed uid/gid, so that files on a volume shared with other hosts or
# containers belong to the same user everywhere. The data directory is made
# here, owned by that user and private (the service keeps it 0700): a fresh
# named volume mounted on it takes this owner and mode.
RUN groupadd --system --gid 10001 jobs \
    && useradd --system --uid 10001 --gid jobs --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin jobs \
    && mkdir /data && chown jobs:jobs /data && chmod 0700 /data
WORKDIR /app
COPY --from=packages /venv /venv
# The code stays owned by root: the service can read it, not change it.
COPY . .
COPY --from=page /app/frontend/dist ./frontend/dist
USER 10001:10001
VOLUME /data
EXPOSE 8000
# Alive when GET /api/health answers at all: a 503 there (no worker yet)
# is not the web server's fault, and restarting it would not help.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "deploy/healthcheck.py", "web"]
CMD ["deploy/web.sh"]
