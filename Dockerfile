# The workerprobe reference gateway, for linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/arm64,linux/amd64 -t workerprobe-gateway .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WORKERPROBE_GATEWAY_DATABASE=/data/workerprobe.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 --home-dir /data workerprobe \
    && mkdir -p /data && chown workerprobe /data

USER workerprobe
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=2)"]
CMD ["workerprobe", "gateway", "--host", "0.0.0.0", "--port", "8787"]
