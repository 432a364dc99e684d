# syntax=docker/dockerfile:1
# The isogroup service image: `isogroup serve` (the dashboard and HTTP API) over the store named by
# ISOGROUP_STORE (docs/deploy.md). Build: docker build -t isogroup . ; or docker compose up.

# Build stage: the exact dev dependencies from the lock file, compile, pack the package as npm would.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json README.md CHANGELOG.md ./
COPY scripts/build-cli.mjs scripts/
COPY domain ./domain
COPY projections ./projections
COPY src ./src
RUN npm run build \
 && npm pack --ignore-scripts --pack-destination /out \
 && node -e "const l=require('./package-lock.json').packages; console.log(['pg','@kurrent/kurrentdb-client'].map((n)=>n+'@'+l['node_modules/'+n].version).join(' '))" > /out/clients

# Runtime stage: the packed package with its production dependencies and both server clients
# (the locked versions), no compiler, no sources; runs as the unprivileged `node` user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
COPY --from=build /out /tmp/isogroup
RUN npm install --global --omit=dev --no-audit --no-fund /tmp/isogroup/isogroup-*.tgz $(cat /tmp/isogroup/clients) \
 && npm cache clean --force \
 && rm -rf /tmp/isogroup \
 && mkdir -p /data && chown node:node /data
COPY --chmod=755 docker/entrypoint.sh /usr/local/bin/isogroup-entrypoint
USER node
WORKDIR /data
ENV ISOGROUP_STORE=file:/data/log.jsonl
VOLUME /data
EXPOSE 7800
ENTRYPOINT ["isogroup-entrypoint"]
CMD ["serve"]
