# dagbroker: the broker (REST API + UI + scheduler) with its embedded Redis, and the worker.
# The same install as scripts/run, without the venv: `pip install .` gives the `dagbroker` CLI.
#
#   docker build -t dagbroker .
#   docker run -p 8250:8250 -v dagbroker-data:/data dagbroker
#       the broker on :8250, with its embedded redis-server (AOF) and git store in /data
#   docker run -p 8250:8250 dagbroker serve --host 0.0.0.0 --redis-url redis://REDIS_HOST:6379/0
#       the broker on an external Redis (which must use maxmemory-policy noeviction)
#   docker run dagbroker worker --redis-url redis://REDIS_HOST:6379/0
#       a worker on another host; it needs only Redis, not the broker's HTTP port
#   docker run -it dagbroker up --host 0.0.0.0 --example examples/diamond.json
#       all-in-one, like scripts/run

# Stage 1: the web UI (webapp/ → dist), with the exact package versions of package-lock.json.
FROM node:20-slim AS webapp
WORKDIR /src/webapp
COPY webapp/package.json webapp/package-lock.json ./
RUN npm install --no-audit --no-fund
COPY webapp/ ./
RUN npm run build

# Stage 2: the broker and worker; the UI build goes where the broker looks for it
# ({sys.prefix}/share/dagbroker/webapp, see broker/api/static_ui.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGBROKER_HOME=/data

WORKDIR /app
COPY . /app
COPY --from=webapp /src/webapp/dist /usr/local/share/dagbroker/webapp
RUN pip install "/app[nodeworks]" \
    && useradd --create-home --uid 1000 dagbroker \
    && mkdir -p /data \
    && chown dagbroker:dagbroker /data

USER dagbroker
VOLUME ["/data"]
EXPOSE 8250
ENTRYPOINT ["dagbroker"]
CMD ["serve", "--host", "0.0.0.0"]
