# syntax=docker/dockerfile:1.7
#
# One image for all six WristPay services. The Deployment chooses the service with its command:
#   node --require ./dist/platform/telemetry/register.js dist/services/<name>/src/main.js
#
# Targets:
#   runtime (default, last stage)  production dependencies only, compiled JS, runs as uid 1000
#   dev     (Tilt)                 full toolchain, so live_update can re-run `npm run build` in the pod
#
# No secret is baked in: keys, passwords, certificates and URLs with credentials come from
# Kubernetes Secrets at run time. .dockerignore keeps the build context to an allowlist.
# For releases, pin NODE_IMAGE by digest (node:20-bookworm-slim@sha256:...).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
# npm keeps its cache and logs under HOME; in the cluster the root filesystem is read-only and
# /tmp is the pod's writable emptyDir.
ENV HOME=/tmp \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# ---- every dependency (dev included): TypeScript, type packages, buf --------------------------
# Installed outside /app and linked in, so the dev pods can copy /app (sources and dist/, a few
# MB) into a writable volume without copying node_modules (hundreds of MB) with it.
FROM base AS deps
WORKDIR /opt/wristpay
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/tmp/.npm npm ci

# ---- compile ----------------------------------------------------------------------------------
FROM deps AS build
WORKDIR /app
RUN ln -s /opt/wristpay/node_modules node_modules
COPY package.json package-lock.json tsconfig.json buf.yaml buf.gen.yaml ./
COPY proto ./proto
COPY gen ./gen
COPY platform ./platform
COPY services ./services
RUN npm run build
# Everything a service may read at run time besides compiled code (SQL migrations, Lua scripts,
# .proto files, the descriptor set), at the same relative path as in the repository.
RUN mkdir -p /out \
 && cp -R dist /out/dist \
 && find proto gen platform services -type f ! -name '*.ts' ! -path '*/test/*' -exec cp --parents {} /out/ \; \
 && find /out/dist/services -type d -name tools -prune -exec rm -rf {} +
# (services/*/tools: offline tools such as risk's traffic generator, backtest and training; not run in production)

# ---- dev: what Tilt runs -----------------------------------------------------------------------
# Keeps sources, dev dependencies and tsc. The dev overlay copies /app (node_modules is a link to
# /opt/wristpay) into a writable emptyDir, the root filesystem stays read-only, and runs
# `node --watch`, so a live_update that syncs the sources and runs `npm run build` restarts the
# service in place.
FROM build AS dev
USER 1000:1000
CMD ["node", "-e", "console.error('wristpay image: choose a service, e.g. node --max-old-space-size=256 --max-semi-space-size=8 --require ./dist/platform/telemetry/register.js dist/services/gateway/src/main.js (k8s/README.md)'); process.exit(64)"]

# ---- production dependencies only ---------------------------------------------------------------
# No install script runs: the runtime dependencies need none (protobufjs' postinstall is only a
# version notice), and it keeps third-party code from running at build time.
FROM base AS prod-deps
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/tmp/.npm npm ci --omit=dev --ignore-scripts

# ---- runtime (default target) -------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOME=/tmp
WORKDIR /app
# Nothing runs npm, npx or corepack in production: drop them and their dependency trees.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /out/ ./
COPY package.json ./
# Files stay owned by root and read-only for the service user. Numeric so that Kubernetes can
# verify runAsNonRoot (the Deployments set runAsUser 1000 too).
USER 1000:1000
EXPOSE 50050 50051 50052 50053 50054 50055
CMD ["node", "-e", "console.error('wristpay image: choose a service, e.g. node --max-old-space-size=256 --max-semi-space-size=8 --require ./dist/platform/telemetry/register.js dist/services/gateway/src/main.js (k8s/README.md)'); process.exit(64)"]
