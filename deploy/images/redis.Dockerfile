# Redis from Debian's package, for compose where no registry answers (deploy/compose.local.yaml).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# Inside the compose network only: no password, so protected mode is off (as in the official image).
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
