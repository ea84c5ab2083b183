# The workerprobe reference gateway, for linux/amd64 and linux/arm64. Build it with `make image`,
# which downloads the wheels for each platform on the host first (build/image/wheels/<arch>/):
# nothing inside the build reaches PyPI, so no certificate, token or pip setting is needed in it,
# and nothing is compiled (binary wheels only). By hand, after `make image-wheels` (the wheels):
#   docker build --build-arg TARGETARCH=amd64 -t workerprobe-gateway .          (legacy builder)
#   docker buildx build --platform linux/arm64,linux/amd64 -t workerprobe-gateway .   (BuildKit)
# The base is Debian bookworm with its own Python 3.11. Where no registry answers, `make image`
# builds it with debootstrap and passes it as BASE.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG TARGETARCH
RUN test -n "${TARGETARCH}" || { echo "TARGETARCH is not set: build with make image or buildx" >&2; exit 1; }
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
# The dependencies first, in a layer of their own: a change of the project's code rebuilds only
# the small layer after it.
COPY build/image/wheels/${TARGETARCH}/deps/ /wheels/deps/
RUN python3 -m venv /opt/workerprobe \
    && /opt/workerprobe/bin/pip install --no-index --no-cache-dir --only-binary=:all: /wheels/deps/*.whl
COPY build/image/wheels/${TARGETARCH}/project/ /wheels/project/
RUN /opt/workerprobe/bin/pip install --no-index --no-cache-dir --no-deps /wheels/project/*.whl \
    && /opt/workerprobe/bin/pip check \
    && find /opt/workerprobe -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
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
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=2)"]
CMD ["workerprobe", "gateway", "--host", "0.0.0.0", "--port", "8787"]
