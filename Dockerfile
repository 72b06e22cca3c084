# Switchboard: one image for every process (web, worker, APRS gateway); docker-compose.yml picks the
# command. Build: docker build -t switchboard .   Run: docker compose up (see docs/deployment.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_STATIC_ROOT=/app/staticfiles

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

# A non-root user owns nothing but what it must write (var/ for mail files, var/media/ for chat
# attachments: docker-compose.yml mounts a volume there).
RUN groupadd --system switchboard \
    && useradd --system --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard

COPY . .

# Static files are collected into the image (served by WhiteNoise). Settings refuse to load with
# DEBUG off without a secret key or a mail setting, so the build alone gets a throwaway key and
# drops mail; neither reaches runtime.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-build-only-key-not-used-at-runtime \
    DJANGO_EMAIL_URL=dummy:// \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media && chown -R switchboard:switchboard /app/var

USER switchboard
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# Daphne in-process (`manage.py serve`), so SIGTERM drains: WebSockets close with 1012 and
# requests in flight finish (docs/deployment.md). A burst of reconnects after a deploy queues
# handshakes for longer than Daphne's default 5 s, hence the 30 s connect timeout. The worker and
# the APRS gateway run as their own containers, so neither runs in the web process.
STOPSIGNAL SIGTERM
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", \
     "--websocket-connect-timeout", "30", "--no-worker", "--no-services"]
