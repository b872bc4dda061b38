# go-backpressure: bp-server, bp-client, bp-relay and bp-sockets in one small image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t go-backpressure .
#   docker run --rm -p 8080:8080 -p 8081:8081 -p 8082:8082 go-backpressure  # bp-server
#   docker run --rm go-backpressure bp-client --target ws://HOST:8080/ws  # any binary
#
# docker-compose.yml builds it for every go-backpressure service; see
# docs/DEPLOY.md.

# Build stage: the Go version is go.mod's (e2e/deploy_test.go checks it).
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries (no cgo, no libc), no local paths in them, the version
# stamped where --version and bp_build_info read it.
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/go-backpressure/go-backpressure/pkg/config.Version=${VERSION}" \
      -o /out/ ./cmd/bp-server ./cmd/bp-client ./cmd/bp-relay ./cmd/bp-sockets

# Runtime stage: nothing but the binaries and CA certificates (for wss://
# targets); no shell, no package manager; a numeric non-root user, since
# scratch has no /etc/passwd.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /usr/local/bin/
ENV PATH=/usr/local/bin
USER 65532:65532
# bp-server: 8080 HTTP (/ws, /client, /metrics, /healthz; HTTP/2 streams on
# /h2: h2c, or h2 by ALPN with TLS), 8081 raw TCP, 8082 gRPC (h2c, or TLS with the
# certificate flags).
# bp-relay: 8090 HTTP (/ws, /metrics, /healthz), 8091 raw TCP.
# bp-client: 9101 /metrics and /healthz; bp-sockets: 9102 /metrics and /healthz.
EXPOSE 8080 8081 8082 8090 8091 9101 9102
CMD ["bp-server"]
