# redis-mem: the Slack bot. Build: docker build -t redis-mem .
# Run in Kubernetes: kubectl apply -k deploy/overlays/single (or ha); see README.
FROM python:3.11-slim

# MPLCONFIGDIR: matplotlib (the report's chart) needs a writable config/cache directory and
# the user has no home; /tmp is the one writable path when the root filesystem is read-only
# (the manifests mount an emptyDir there).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=3000 \
    REDIS_MEM_MIGRATIONS_DIR=/app/migrations \
    DATABASE_URL=sqlite:////data/redis-mem.db \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
# uid and gid 10001: what the manifests' securityContext runs as (runAsUser/runAsGroup).
RUN pip install . \
    && groupadd --gid 10001 redismem \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin redismem

# The audit database is SQLite in /data (DATABASE_URL above: outside the image, the
# default is the user's data directory, which a container's uid has no home for);
# mount a volume here or set DATABASE_URL to PostgreSQL in production.
WORKDIR /data
RUN chown 10001:10001 /data
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["redis-mem"]
CMD ["serve"]
