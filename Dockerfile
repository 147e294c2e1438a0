# redis-mem: the Slack bot. Build: docker build -t redis-mem .   Run: see deploy/deployment.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=3000 \
    REDIS_MEM_MIGRATIONS_DIR=/app/migrations \
    DATABASE_URL=sqlite:////data/redis-mem.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip install . && useradd --uid 10001 --no-create-home redismem

# The audit database is SQLite in /data (DATABASE_URL above: outside the image, the
# default is the user's data directory, which a container's uid has no home for);
# mount a volume here or set DATABASE_URL to PostgreSQL in production.
WORKDIR /data
RUN chown redismem /data
USER 10001
EXPOSE 3000
ENTRYPOINT ["redis-mem"]
CMD ["serve"]
