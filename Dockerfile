# syntax=docker/dockerfile:1
#
# One image, three binaries: lucent-ingest, lucent-consumer and lucent-query.
# There is no fixed ENTRYPOINT: docker-compose and the Kubernetes manifests
# choose the command (`lucent-ingest serve`, `lucent-consumer run`,
# `lucent-query serve`, `lucent-consumer topics create`,
# `lucent-ingest keys create --org ORG`,
# `lucent-query secrets create --org ORG --scope read`).
#
#   docker build -t lucent:dev .
#   docker run --rm -p 8080:8080 -p 9464:9464 lucent:dev lucent-ingest serve

# ---- build ----------------------------------------------------------------
FROM rust:1-bookworm AS builder

# librdkafka is compiled from source by rdkafka-sys (bundled): a C/C++
# toolchain, make, and cmake should the `cmake-build` feature be switched on.
# It links the system OpenSSL and zlib (and Cyrus SASL if `gssapi` is enabled).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libssl-dev libsasl2-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The cache mounts keep the crates.io registry and the target directory between
# builds (BuildKit), so a code change does not recompile every dependency. The
# target directory is a cache mount and vanishes after this step, hence the copy.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lucent-ingest -p lucent-consumer -p lucent-query \
 && mkdir -p /out \
 && cp target/release/lucent-ingest target/release/lucent-consumer target/release/lucent-query /out/

# ---- runtime --------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to brokers, Scylla and Redis. libssl3: the OpenSSL that
# librdkafka links (rdkafka's `ssl` feature); libsasl2-2 for SASL/GSSAPI should
# the `gssapi` feature be enabled (small, and avoids a startup failure then).
# zlib is in the base image already.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/*

# Fixed, non-root uid/gid 10001 (the Kubernetes manifests set runAsUser to match;
# a high number avoids colliding with a host user when volumes are mounted).
RUN groupadd --system --gid 10001 lucent \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lucent \
      --shell /usr/sbin/nologin lucent \
 && mkdir -p /var/lib/lucent/data \
 && chown -R 10001:10001 /var/lib/lucent

COPY --from=builder /out/lucent-ingest /out/lucent-consumer /out/lucent-query /usr/local/bin/

# The embedded defaults (sqlite://data/queue.db, sqlite://data/lucent.db) are
# relative paths: they land in /var/lib/lucent/data, the one writable directory
# (mount a volume there to keep it). Kafka/Scylla deployments write nothing.
WORKDIR /var/lib/lucent
USER 10001:10001

# 8080: public API (POST /api/sdk/replay). 9464: ingest admin (/metrics,
# /healthz, /readyz). 9465: consumer admin. 8090: read API (lucent-query).
# 9466: query admin.
EXPOSE 8080 9464 9465 8090 9466

# All three binaries handle SIGTERM themselves (drain, flush, commit), so they
# can run as PID 1 without an init shim.
CMD ["lucent-ingest", "--help"]
