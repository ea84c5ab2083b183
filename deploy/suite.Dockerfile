# workerprobe's suite, for linux/amd64 and linux/arm64: the `workerprobe` command (test, load,
# report, clean) with the contract tests, the Python SDK scenarios and the load profiles. Built by
# `make image` beside the gateway's image, from wheels it downloads on the host for each platform
# (build/image/wheels/<arch>/suite-deps/ and project/): nothing inside the build reaches PyPI.
#   docker run --rm --user "$(id -u):$(id -g)" -e API_KEY -v "$PWD/reports:/work/reports" \
#       workerprobe-suite:latest test https://my-worker.example.workers.dev/v1
# With no URL it tests the embedded default (the gateway and the emulator, inside the container).
# The official Node SDK's scenarios are not in this image: Debian bookworm's Node.js is 18, and
# the openai npm package the suite pins asks for 22; they report NOT RUN and say so.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG TARGETARCH
RUN test -n "${TARGETARCH}" || { echo "TARGETARCH is not set: build with make image or buildx" >&2; exit 1; }
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY build/image/wheels/${TARGETARCH}/suite-deps/ /wheels/deps/
RUN python3 -m venv /opt/workerprobe \
    && /opt/workerprobe/bin/pip install --no-index --no-cache-dir --only-binary=:all: /wheels/deps/*.whl
COPY build/image/wheels/${TARGETARCH}/project/ /wheels/project/
RUN /opt/workerprobe/bin/pip install --no-index --no-cache-dir --no-deps /wheels/project/*.whl \
    && /opt/workerprobe/bin/pip check \
    && find /opt/workerprobe -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /work && chmod 1777 /work
COPY --from=build /opt/workerprobe /opt/workerprobe
# Any user may run it (--user "$(id -u):$(id -g)", to own what it writes to a mounted folder): its
# state, caches and home are in /tmp.
ENV PATH=/opt/workerprobe/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    WORKERPROBE_STATE_DIR=/tmp/workerprobe-state \
    WORKERPROBE_CACHE_DIR=/tmp/workerprobe-cache
WORKDIR /work
USER 10001
ENTRYPOINT ["workerprobe"]
CMD ["--help"]
