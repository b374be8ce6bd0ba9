# credhelper build, test and demo targets. Every target is self-contained:
# `make test` starts (and stops) the servers the tests need.
GO       ?= go
BIN      := bin
PKGS     := ./...
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: all build test demo vet bench clean

all: build

include Makefile.proto
include Makefile.plugins

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/credhelper ./cmd/credhelper

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

test: build vet
	scripts/testenv.sh $(GO) test $(TESTFLAGS) $(PKGS)

demo: build
	$(BIN)/credhelper demo

# bench writes bench/report.md, bench/results.json, bench/hotpath.txt and
# bench/fleet.svg; it starts moto_server itself, like test.
bench: build
	scripts/testenv.sh $(GO) run ./bench/cmd/credbench -out bench -bin $(BIN)/credhelper

clean:
	rm -rf $(BIN)
