# lockbox images. Two runtime targets, both on the slim Node base, both as a non-root user:
#   docker build --target lockboxd -t lockbox:latest .        (the default target: the last stage)
#   docker build --target agent    -t lockbox-agent:latest .
# The toolchain (python3, make, g++), the sources, test/, bench/, scripts/ and the native build
# leftovers stay in the build stages; the runtime stages copy only named paths out of them.
#
# The base image is pinned by digest, since a tag moves. This digest is the one several public
# projects pin for node:20-bookworm-slim; no registry could be reached where it was written, so
# check it (and move to a newer one deliberately) with
#   docker buildx imagetools inspect node:20-bookworm-slim
# and build with --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:<the digest it printed>.
ARG NODE_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0

# The compilers better-sqlite3 needs when no prebuilt binary fits. Never a runtime base.
FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Everything compiled: `npm ci` runs the package's prepare script, i.e. `npm run build`
# (tsc, the agent bundle, the console, dist/proto/descriptors.binpb). test/ and bench/ are not in
# the build context (.dockerignore); tsc compiles what tsconfig.json includes of what is there.
FROM toolchain AS build
COPY package.json package-lock.json tsconfig.json buf.yaml ./
COPY proto ./proto
COPY shared ./shared
COPY daemon ./daemon
COPY cli ./cli
COPY agent ./agent
COPY console ./console
RUN npm ci --no-audit --no-fund

# The production dependencies alone, without what building them left behind:
# 1. install without scripts (the package's own prepare would run tsc, a dev dependency);
# 2. build better-sqlite3's addon (prebuilt or compiled here);
# 3. keep its .node file and drop the C sources, the amalgamation, the object files and makefiles.
FROM toolchain AS prod-deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm rebuild better-sqlite3 \
    && cd node_modules/better-sqlite3 \
    && mv build/Release/better_sqlite3.node /tmp/better_sqlite3.node \
    && rm -rf build src deps binding.gyp \
    && mkdir -p build/Release && mv /tmp/better_sqlite3.node build/Release/ \
    && rm -rf /root/.npm /root/.cache /tmp/*

# lockbox-agent: only what it loads. The bundle holds its code and every dependency but nats
# (agent/bundle.mjs), which it imports once ready, with nats' own dependencies; the bundle finds
# proto/ by walking up from dist/agent/; package.json makes the bundle an ES module.
FROM ${NODE_IMAGE} AS agent
ENV NODE_ENV=production
RUN groupadd --system --gid 10001 lockbox && useradd --system --uid 10001 --gid lockbox --no-create-home --shell /usr/sbin/nologin lockbox
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist/agent/lockbox-agent.js ./dist/agent/lockbox-agent.js
COPY --from=build /app/proto ./proto
COPY --from=prod-deps /app/node_modules/nats ./node_modules/nats
COPY --from=prod-deps /app/node_modules/nkeys.js ./node_modules/nkeys.js
COPY --from=prod-deps /app/node_modules/tweetnacl ./node_modules/tweetnacl
USER 10001:10001
# The flags of the lockbox-agent command's shebang (agent/src/main.ts). Arguments: run|once|exec ….
ENTRYPOINT ["node", "--lite-mode", "--no-expose-wasm", "/app/dist/agent/lockbox-agent.js"]

# lockboxd (and the lockbox CLI beside it, for backups and `key` commands inside the pod).
FROM ${NODE_IMAGE} AS lockboxd
ENV NODE_ENV=production \
    LOCKBOX_DATA_DIR=/data \
    LOCKBOX_GRPC_ADDR=0.0.0.0:7700 \
    LOCKBOX_HTTP_ADDR=0.0.0.0:7701
RUN groupadd --system --gid 10001 lockbox && useradd --system --uid 10001 --gid lockbox --home-dir /data --shell /usr/sbin/nologin lockbox \
    && mkdir -p /data && chown lockbox:lockbox /data && chmod 0700 /data
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/daemon ./dist/daemon
COPY --from=build /app/dist/shared ./dist/shared
COPY --from=build /app/dist/cli ./dist/cli
COPY --from=build /app/dist/console ./dist/console
COPY --from=build /app/dist/proto ./dist/proto
COPY --from=build /app/proto ./proto
USER 10001:10001
VOLUME ["/data"]
EXPOSE 7700 7701
# Liveness over the REST port, with node itself (the image has no curl). With TLS on the REST
# port (--tls-cert), point your orchestrator's probe at https instead of relying on this one.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:7701/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Set LOCKBOX_MASTER_KEY_FILE to a mounted key (mode 0600) and --tls-cert/--tls-key in production.
ENTRYPOINT ["node", "/app/dist/daemon/src/main.js"]
