# raftkv server image. Multi-stage: build with dev dependencies, ship only
# the compiled code and production dependencies, run as the unprivileged
# `node` user with the data dir on a volume.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci runs "prepare", which links npx's bins in a checkout (here it finds no cmd/ and does nothing).
COPY scripts/link-bins.mjs ./scripts/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY cmd ./cmd
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    RAFTKV_DATA_DIR=/data \
    RAFTKV_LISTEN_CLIENT=0.0.0.0:7379 \
    RAFTKV_LISTEN_PEER=0.0.0.0:7380
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The dashboard's page files are served as they are (no build step).
COPY --from=build /app/src/ui ./src/ui
# /certs belongs to `node` too, so a volume mounted there (compose's one-shot `certs`
# service writes into it with `raftkv certs`) starts out writable by the server's user.
RUN mkdir -p /data /certs && chown node:node /data /certs && chmod 0700 /data /certs
USER node
VOLUME ["/data"]
EXPOSE 7379 7380
# Listening on 0.0.0.0, the server refuses to start without TLS on both ports (set
# RAFTKV_CLIENT_CERT_FILE and the others, see compose.yaml) unless RAFTKV_INSECURE=true.
# The health check speaks HTTPS when client TLS is set.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "dist/cmd/healthcheck.js"]
# SIGTERM reaches node directly (exec form), which shuts down gracefully.
ENTRYPOINT ["node", "dist/cmd/raftkv.js"]
