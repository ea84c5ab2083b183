# The workerprobe reference gateway, for linux/amd64 and linux/arm64:
#   docker buildx build --platform linux/arm64,linux/amd64 -t workerprobe-gateway .
# The base is Debian bookworm with its own Python 3.11, the same distribution and Python as
# `make arm64-check`, which runs the gateway on an emulated aarch64 CPU: the check speaks for this image.
# Dependencies are installed as binary wheels only (as in the check): nothing is compiled.
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m pip wheel --no-deps --no-cache-dir -w /dist . \
    && python3 -m venv /opt/workerprobe \
    && /opt/workerprobe/bin/pip install --no-cache-dir --only-binary=:all: /dist/*.whl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data workerprobe && mkdir -p /data && chown workerprobe /data
COPY --from=build /opt/workerprobe /opt/workerprobe
ENV PATH=/opt/workerprobe/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WORKERPROBE_GATEWAY_DATABASE=/data/workerprobe.sqlite3

USER workerprobe
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=2)"]
CMD ["workerprobe", "gateway", "--host", "0.0.0.0", "--port", "8787"]
