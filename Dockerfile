# Meridian: multi-stage build, small runtime image, runs as a non-root user that may bind
# port 53 and send ICMP (file capabilities on the binary).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --locked \
 && strip target/release/meridian

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10053 --no-create-home --shell /usr/sbin/nologin meridian
COPY --from=build /src/target/release/meridian /usr/local/bin/meridian
RUN setcap cap_net_bind_service,cap_net_raw+ep /usr/local/bin/meridian \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y
COPY geoip /etc/meridian/geoip
COPY docker/meridian.yaml /etc/meridian/meridian.yaml
COPY docker/zones /etc/meridian/zones
USER meridian
EXPOSE 53/udp 53/tcp 9153/tcp
ENTRYPOINT ["/usr/local/bin/meridian"]
CMD ["serve", "--config", "/etc/meridian/meridian.yaml"]
