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

# ---- runtime: production dependencies and compiled output only --------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The files stay owned by root: the gateway cannot rewrite its own code.
USER node
EXPOSE 8080
# Liveness only (/readyz is for load balancers). Node itself, because slim images have no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Exec form: node is PID 1 and gets SIGTERM directly, so it drains in-flight requests and exits 0.
CMD ["node", "dist/src/main.js"]
