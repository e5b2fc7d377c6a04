# syntax=docker/dockerfile:1.7
# One small image with the three s3-sentinel binaries:
#   s3-sentinel-operator      the Kubernetes operator (the Helm chart runs it)
#   s3-sentinel-worker        the worker the operator deploys per connector
#   logs-ingestion-emulator   the Logs Ingestion API emulator (local runs and hack/kind-e2e.sh)
# The final stage is distroless (glibc, CA certificates, no shell) and runs as the non-root user 65532.
#
#   docker build -t s3-sentinel:dev .
#   docker run --rm s3-sentinel:dev s3-sentinel-worker demo

ARG RUST_VERSION=1.92

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p s3-sentinel-operator -p s3-sentinel-worker -p s3-sentinel-emulator \
        --bin s3-sentinel-operator --bin s3-sentinel-worker --bin logs-ingestion-emulator \
    && mkdir -p /out \
    && cp target/release/s3-sentinel-operator target/release/s3-sentinel-worker \
          target/release/logs-ingestion-emulator /out/ \
    && strip /out/*

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="s3-sentinel" \
      org.opencontainers.image.description="Ships AWS logs from S3 to Microsoft Sentinel; operator, worker and emulator" \
      org.opencontainers.image.source="https://github.com/s3-sentinel/s3-sentinel" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# No entrypoint: Kubernetes manifests name the binary (the chart runs s3-sentinel-operator, the operator's
# Deployments run s3-sentinel-worker).
CMD ["s3-sentinel-worker", "--help"]
