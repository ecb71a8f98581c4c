# syntax=docker/dockerfile:1
# mj-gateway container image.
#   docker build -t mj-gateway .
#   docker run --rm -p 8080:8080 -e UPSTREAM_API_KEY=... mj-gateway
# config/docker-compose.yml runs two replicas with Redis, Prometheus and Grafana.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript to dist/ ---------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are here; it runs below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# src only: the benchmark (bench/) is a development tool and stays out of the image
COPY src ./src
RUN npm run build

# ---- native: better-sqlite3's binding (the embedded owner-record store under DATA_DIR) -----------
# prebuild-install fetches a prebuilt binary; where none is reachable, node-gyp compiles it with these tools.
FROM ${NODE_IMAGE} AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3

# ---- runtime: production dependencies and compiled output only --------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=native /app/node_modules/better-sqlite3/build ./node_modules/better-sqlite3/build
# DATA_DIR (owner records, daily submit counts): the one place the non-root user may write; mount a volume here
ENV DATA_DIR=/app/data
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
# The files stay owned by root: the gateway cannot rewrite its own code.
# DATA_DIR (./data): the image archive and other embedded stores; mount a volume here to keep them
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8080
# Liveness only (/readyz is for load balancers). Node itself, because slim images have no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Exec form: node is PID 1 and gets SIGTERM directly, so it drains in-flight requests and exits 0.
CMD ["node", "dist/src/main.js"]
