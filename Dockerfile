# syntax=docker/dockerfile:1
#
# flacstream's container image: a static-ish Rust binary on distroless.
#
#   docker build -t flacstream .                      # x86-64-v3, as .cargo/config.toml
#   docker build --build-arg RUSTFLAGS="-C target-cpu=x86-64" -t flacstream:baseline .
#   docker run --rm -p 8080:8080 -v flacstream-data:/data \
#     -v "$PWD/secrets:/run/secrets/flacstream:ro" \
#     -e FLACSTREAM_API_KEYS_FILE=/run/secrets/flacstream/api-keys \
#     -e FLACSTREAM_TOKEN_SECRET_FILE=/run/secrets/flacstream/token-secret flacstream
#
# Auth is on in the image: started without a key it exits at once with
# "--auth needs at least one key in --api-keys or --api-keys-file". For a
# local try with auth off, say so twice (the server refuses a public bind
# without auth unless told):
#   docker run --rm -p 8080:8080 -e FLACSTREAM_AUTH=false \
#     -e FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH=true flacstream
#
# README.md "Container image" says more; deploy/ runs it on Kubernetes.
#
# Stages: `chef` builds cargo-chef once; `planner` reduces the workspace to
# its manifests and lock file (recipe.json); `builder` compiles only the
# dependencies from that recipe, in a layer that stays cached until a
# Cargo.toml or Cargo.lock changes, then compiles flacstream itself. An edit
# to src/ therefore recompiles one crate, not actix and SQLite. cargo-chef
# rather than hand-written stub sources: the workspace has four members,
# declared benches and examples, and cargo refuses a manifest whose declared
# targets are missing, so stubs would need updating with every new target.

FROM rust:1.95-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.71
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The CPU the binary is built for. The default is the repository's
# x86-64-v3 (.cargo/config.toml), written out because RUSTFLAGS replaces that
# file's flags. Pass "-C target-cpu=x86-64" for a baseline image that runs on
# any x86-64 node. Never target-cpu=native: the build host is not the node.
# (Build scripts run with these flags too, so a v3 build needs a v3 build host.)
ARG RUSTFLAGS="-C target-cpu=x86-64-v3"
ENV RUSTFLAGS=${RUSTFLAGS}
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --package flacstream --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package flacstream \
    && mkdir -p /out/data \
    && cp target/release/flacstream /out/flacstream

# distroless/cc: glibc and libgcc, no shell, no package manager; `nonroot`
# runs as uid/gid 65532. Health checks and the preStop drain use the binary's
# own `probe` and `drain` subcommands, so no shell or curl is needed.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /out/flacstream /usr/local/bin/flacstream
# The data volume's mount point, owned by the runtime user so that a fresh
# named volume (which copies this directory's owner) is writable.
COPY --from=builder --chown=65532:65532 /out/data /data
# A container is reached through its published port, so it binds every
# interface; and since that address is public, auth is on. The server binds
# loopback by default with auth off and refuses a public bind without auth,
# so the image states both. Keys: FLACSTREAM_API_KEYS or
# FLACSTREAM_API_KEYS_FILE (README.md "Container image").
ENV FLACSTREAM_BIND=0.0.0.0:8080 \
    FLACSTREAM_AUTH=true \
    FLACSTREAM_DATA_DIR=/data \
    RUST_LOG=info
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM starts the drain (readyz 503, grace, flush, close 1001). Give the
# container at least FLACSTREAM_DRAIN_GRACE_SECONDS + FLACSTREAM_OUTBOUND_STALL_SECONDS
# + 5 s to stop: `docker stop -t 50` with the defaults.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/flacstream", "probe"]
ENTRYPOINT ["/usr/local/bin/flacstream"]
