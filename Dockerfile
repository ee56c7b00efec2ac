# syntax=docker/dockerfile:1
#
# push-center image: compiles the TypeScript in a build stage and runs `node dist/main.js` on the
# production dependencies only, as the unprivileged `node` user.
#
#   docker build -t push-center .
#   docker run -p 3000:3000 -e AUTH_MODE=none push-center          # embedded: no RabbitMQ, no Redis
#   docker run -p 3000:3000 -e AMQP_URL=... -e REDIS_URL=... -e AUTH_JWT_SECRET=... push-center
#
# NODE_ENV is production, so start-up refuses to run without socket authentication unless
# AUTH_MODE=none says so (docs/PROTOCOL.md §7).

FROM node:20-bookworm-slim AS build
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=3000
WORKDIR /app
# Owned by root and only readable by the `node` user: the service never writes to its own files.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The browser SDK bundle (and the demo page), built by `npm run build`.
COPY --from=build /app/public ./public
# The defaults every setting falls back to; read from ../../config/default.json relative to dist/config/.
COPY config/default.json ./config/default.json
USER node
EXPOSE 3000
# /healthz answers 200 while the process is alive; slim images have no curl, node's fetch does it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM lets in-flight messages finish (SHUTDOWN_TIMEOUT_MS), then the node exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
