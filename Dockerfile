# syntax=docker/dockerfile:1

# The dealcast image: one static binary on distroless, running as a non-root
# user. The same image serves every role; the compose file and the Kubernetes
# manifests pick one with the command (api, worker, migrate).
#
#   docker build -t dealcast .
#   docker run --rm dealcast help

# The Temporal server module needs Go 1.26.10 or later; GOTOOLCHAIN makes the
# go command fetch the toolchain this project is built and tested with.
FROM --platform=$BUILDPLATFORM golang:1.27-bookworm AS build
ENV GOTOOLCHAIN=go1.27.3 \
    GOFLAGS=-buildvcs=false \
    CGO_ENABLED=0
WORKDIR /src

# Modules first, so editing the code reuses this layer. The Go client is a
# module of its own that the service uses through a replace directive.
COPY go.mod go.sum ./
COPY sdk/go/dealcast/go.mod sdk/go/dealcast/go.sum ./sdk/go/dealcast/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/dealcast ./cmd/dealcast

# distroless/static has CA certificates, time zones and a nonroot user
# (65532) and nothing else: no shell, no package manager. Health checks use
# the binary itself (dealcast healthcheck).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="dealcast" \
      org.opencontainers.image.description="Dealcast: sellers post deals, authorised buyers get signed webhooks"
COPY --from=build /out/dealcast /usr/local/bin/dealcast
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dealcast"]
CMD ["api"]
