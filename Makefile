# go-backpressure: `make demo` runs the lab, `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/go-backpressure/go-backpressure/pkg/config.Version=$(VERSION)
BINS    := bp-server bp-client $(if $(wildcard cmd/bp-relay),bp-relay) $(if $(wildcard cmd/bp-sockets),bp-sockets)

.PHONY: all build demo lab lab-all lab-observe test lint fuzz bench bench-smoke soak dashboard proto clean

all: build

## build: the binaries into bin/
build:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINS))

## demo: a server whose reads pause, a client against it, the report (under 30 s)
# It builds only the two binaries it runs, to stay quick on a fresh machine.
demo:
	@mkdir -p bin
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/bp-server ./cmd/bp-client
	@scripts/demo

## lab: one path of the lab (PROFILE=name; without it, the list of profiles)
lab:
	@$(GO) run ./scripts/lab $(LAB_FLAGS) $(PROFILE)

## lab-all: every profile of the lab in turn, then one summary table
lab-all:
	@$(GO) run ./scripts/lab $(LAB_FLAGS) -all

## lab-observe: docker-compose's topology natively (client, relay, HAProxy, server) with Prometheus, until Ctrl-C
## (OBSERVE_FLAGS=-hosts: each on a host of its own with shaped links, as root)
lab-observe: build
	@$(GO) run ./scripts/lab-observe $(OBSERVE_FLAGS)

## test: the whole test suite with the race detector, then a short fuzz smoke
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE_TIME)

## lint: formatting and vet (and staticcheck when installed)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@latest"; fi

## fuzz: a run of every fuzz target (FUZZTIME each, default 10s; make test: 3s)
FUZZTIME        ?= 10s
FUZZ_SMOKE_TIME ?= 3s
FUZZ_PKGS       := ./pkg/flow/ ./pkg/config/
fuzz:
	@for p in $(FUZZ_PKGS); do for t in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
		echo "fuzz $$p $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

## dashboard: regenerate the Grafana dashboard JSON from its Go code (scripts/dashboard); a test fails when they differ
dashboard:
	$(GO) run ./scripts/dashboard -o deploy/grafana/dashboards/go-backpressure.json

## proto: regenerate the gRPC service's Go code from proto/ (protoc from Debian's
## protobuf-compiler, protoc-gen-go and protoc-gen-go-grpc at the versions
## scripts/install-test-deps pins); a test fails when the committed code differs
PROTO_PATH := $(PATH):$(shell $(GO) env GOPATH)/bin
proto:
	PATH="$(PROTO_PATH)" protoc -I proto --go_out=paths=source_relative:proto \
		--go-grpc_out=paths=source_relative:proto proto/backpressure/v1/backpressure.proto

## bench: whole-system throughput against iperf3, HAProxy and socat on loopback,
## several rounds, then a table of ratios (BENCH_FLAGS="-rounds 9 -v"); then the lab's
## delay line at 1 Gbit/s (root and iperf3, else it skips); not part of test
bench:
	@$(GO) run ./scripts/bench $(BENCH_FLAGS)
	@$(GO) test -run - -bench DelayLine -benchtime 1x ./internal/netlab/

## bench-smoke: one very short round of make bench, to check it still works
bench-smoke:
	@$(GO) run ./scripts/bench -smoke $(BENCH_FLAGS)

## soak: 10 minutes of good and hostile peers against bp-server and bp-relay, their fds,
## goroutines and RSS sampled, then a table and pass/fail (SOAK_FLAGS="-duration 2m -v"); not part of test
soak:
	@$(GO) run ./scripts/soak $(SOAK_FLAGS)

clean:
	rm -rf bin artifacts
