# remocal: build, test, benchmark and demo. Targets that need root say so.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GOFLAGS_TEST ?= -count=1
FUZZTIME ?= 3s

.PHONY: all deps build test unit fuzz-short bench lint demo clean

all: build

# Installs missing system packages (apt-get) and checks for Go.
deps:
	@test/setup/deps.sh >/dev/null

build:
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/remocal ./cmd/remocal

# The whole suite, as CI runs it (root: integration tests build network
# namespaces). Integration tests isolate themselves in a loopback-only
# network namespace; see test/localenv.
test: deps lint
	go test -race $(GOFLAGS_TEST) ./...
	$(MAKE) --no-print-directory fuzz-short

# Unit tests only: no root, no namespaces.
unit:
	go test -short $(GOFLAGS_TEST) ./...

# Each fuzz target briefly; longer runs: make fuzz-short FUZZTIME=5m
fuzz-short:
	@set -e; for t in FuzzReadEnvelope FuzzReadChunk FuzzReadDatagram FuzzHTTPFilter; do \
		go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./protocol/wire >/dev/null || \
			{ echo "fuzz $$t failed"; go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./protocol/wire; exit 1; }; \
		echo "fuzz $$t: ok ($(FUZZTIME))"; \
	done
	@go test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./protocol/glob >/dev/null && echo "fuzz FuzzMatch: ok ($(FUZZTIME))"

# Benchmarks (root). Results and the machine they ran on: docs/performance.md.
bench: deps
	go test -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

# The embedded default: a "remote" environment in network namespaces and an
# agent serving it, shown feature by feature. Needs root; cleans up on exit
# and on Ctrl-C.
demo: deps build
	go run ./examples/agent-demo

clean:
	rm -rf bin
