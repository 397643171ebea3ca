# lockboxd image: build with the toolchain, run on a slim base as a non-root user.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json buf.yaml ./
COPY proto ./proto
COPY shared ./shared
COPY daemon ./daemon
COPY cli ./cli
COPY agent ./agent
COPY console ./console
COPY bench ./bench
COPY test ./test
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    LOCKBOX_DATA_DIR=/data \
    LOCKBOX_GRPC_ADDR=0.0.0.0:7700 \
    LOCKBOX_HTTP_ADDR=0.0.0.0:7701
RUN groupadd --system --gid 10001 lockbox && useradd --system --uid 10001 --gid lockbox --home-dir /data --shell /usr/sbin/nologin lockbox \
    && mkdir -p /data && chown lockbox:lockbox /data && chmod 0700 /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
USER 10001:10001
VOLUME ["/data"]
EXPOSE 7700 7701
# Set LOCKBOX_MASTER_KEY_FILE to a mounted key (mode 0600) and --tls-cert/--tls-key in production.
ENTRYPOINT ["node", "/app/dist/daemon/src/main.js"]
