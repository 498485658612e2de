# quantlake in a container: the CLI on a slim Debian, the lake on a volume (or S3), and Docker's
# HEALTHCHECK through `quantlake health-check --docker` (0 healthy: GREEN or YELLOW; 1 unhealthy: RED,
# or the check cannot run; never 2, which Docker reserves).
#
#   docker build -t quantlake .
#   docker run --rm -v quantlake-lake:/lake quantlake init
#   docker run -d --name quantlake -v quantlake-lake:/lake quantlake <long-running command>

# Build: DuckDB is compiled from C++ (bundled), so the first build takes a while.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin quantlake

# Run: the binary, its default config, CA certificates for S3 and the vendors' HTTPS, a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/quantlake quantlake \
    && mkdir -p /lake /app/config /app/logs \
    && chown quantlake:quantlake /lake /app/logs
COPY --from=build /src/target/release/quantlake /usr/local/bin/quantlake
COPY config/quantlake.toml /app/config/quantlake.toml
WORKDIR /app

# The lake: a volume here, or s3://bucket/prefix with the AWS_* variables.
ENV QUANTLAKE_LAKE=/lake
VOLUME ["/lake"]
# The runbooks' log file, where the guide's layout has it (beside /lake would be /logs).
ENV QUANTLAKE_LOG_FILE=/app/logs/app.log

# The robustness guide's settings (override with -e).
ENV BACKFILL_TARGET_DAYS=730
ENV MIN_TARGET_COVERAGE=0.6
ENV FEATURE_BREADTH_MIN_SYMBOLS=100
ENV FEATURE_BREADTH_WARN_SYMBOLS=200

# The dashboard: `quantlake serve --bind 0.0.0.0` (any address but loopback needs QUANTLAKE_TOKEN).
EXPOSE 8080

USER quantlake

HEALTHCHECK --interval=30m --timeout=10s --start-period=5m --retries=3 \
  CMD quantlake health-check --docker --quiet

ENTRYPOINT ["quantlake"]
CMD ["--help"]
