# Hub as a container: `hub serve` on 0.0.0.0:8787 with its embedded database
# on the /data volume (or a remote libSQL database: set HUB_DATABASE_URL,
# HUB_DATABASE_TOKEN and HUB_MASTER_KEY), as the distroless `nonroot` user.
# The runtime tree is laid out by scripts/build-image-rootfs, which the tests
# also run (functions/server/tests/image.rs); see docs/operations.md.
#
#   docker build -t hub .
#   docker run -p 8787:8787 -v hub-data:/data -e HUB_ADMIN_KEY=... hub

# The admin site.
FROM node:22-bookworm-slim AS site
WORKDIR /src/admin-ui
COPY admin-ui/package.json admin-ui/package-lock.json ./
RUN npm ci
COPY admin-ui/ ./
RUN npm run build

# The server, and the runtime tree.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p hub-server
COPY --from=site /src/admin-ui/dist /src/admin-ui/dist
RUN scripts/build-image-rootfs target/release/hub admin-ui/dist /rootfs

# Runtime: glibc, CA certificates and a non-root user; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rootfs/usr /usr
COPY --from=build --chown=65532:65532 /rootfs/data /data
ENV HUB_LISTEN=0.0.0.0:8787 \
    HUB_DATABASE_URL=/data/hub.db \
    HUB_UI_DIR=/usr/share/hub/ui
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["/usr/local/bin/hub", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/hub"]
CMD ["serve"]
