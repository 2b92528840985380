# One image for every role (API node, worker, migrations); the command picks the role.
FROM node:22-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY player ./player
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 STREAMIFY_DATA_DIR=/var/lib/streamify
RUN useradd --system --home /var/lib/streamify --create-home streamify
WORKDIR /app
COPY pyproject.toml ./
COPY core ./core
COPY schemas ./schemas
COPY ingest ./ingest
COPY workers ./workers
COPY api ./api
COPY cli ./cli
COPY player ./player
# infra.nginx and its template (package data): `python -m infra.nginx render` (compose's nginx-config, the Azure
# edge's init container). Not terraform/: the image never deploys itself.
COPY infra/__init__.py ./infra/
COPY infra/nginx ./infra/nginx
COPY --from=assets /src/player/static/vendor ./player/static/vendor
RUN pip install --no-cache-dir .
USER streamify
EXPOSE 8000
CMD ["streamify", "api", "--host", "0.0.0.0"]
