# credhelper build, test and demo targets. Every target is self-contained:
# `make test` starts (and stops) the servers the tests need.
GO       ?= go
BIN      := bin
PKGS     := ./...
TESTFLAGS ?= -race -count=1 -timeout 30m

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin

.PHONY: all build test demo vet cross bench install uninstall clean docs

all: build

include Makefile.proto
include Makefile.fuzz
include Makefile.faults
include Makefile.model

# credhelper is a small front that answers `get` from a running agent and
# executes credhelper-full, installed beside it, for everything else. Both
# are static (CGO_ENABLED=0): nothing needs libc, a static binary starts
# about 2 ms sooner than one the dynamic loader must set up (the front's
# whole budget is 5 ms), and it runs on minimal hosts (kubelet nodes,
# distroless images). Only messages that name a file's owner are affected:
# they find the name in /etc/passwd, not through NSS, else give the uid.
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/credhelper ./cmd/credhelper
	CGO_ENABLED=0 $(GO) build -o $(BIN)/credhelper-full ./cmd/credhelper-full

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# cross vets the module and links the commands for Linux, macOS and Windows
# on amd64 and arm64 (scripts/cross.sh; outside Linux without the test
# files, whose suites drive Linux processes).
cross:
	GO=$(GO) scripts/cross.sh

# test runs every test (with the servers they need), then each fuzz target
# briefly; `make fuzz` fuzzes for minutes.
test: build vet cross
	scripts/testenv.sh $(GO) test $(TESTFLAGS) $(PKGS)
	$(MAKE) --no-print-directory fuzz-smoke

demo: build
	$(BIN)/credhelper demo

# bench writes internal/bench/report.md, internal/bench/results.json, internal/bench/hotpath.txt and
# internal/bench/fleet.svg; it starts moto_server itself, like test.
bench: build
	scripts/testenv.sh $(GO) run ./internal/bench/cmd/credbench -out internal/bench -bin $(BIN)/credhelper

# The names tools look for, as symlinks to credhelper, which picks the face
# from the name it runs as: docker-credential-credhelper (docker),
# git-credential-credhelper (git), credhelper-bazel (Bazel runs the path it
# is given with "get" alone) and terraform-credentials-credhelper (Terraform
# looks in its plugin directories: link it from ~/.terraform.d/plugins).
# GOAUTH, cargo and the kubelet run credhelper itself.
FACE_LINKS := docker-credential-credhelper git-credential-credhelper credhelper-bazel terraform-credentials-credhelper

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BIN)/credhelper $(BIN)/credhelper-full $(DESTDIR)$(BINDIR)/
	for l in $(FACE_LINKS); do ln -sf credhelper $(DESTDIR)$(BINDIR)/$$l; done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,credhelper credhelper-full $(FACE_LINKS))

clean:
	rm -rf $(BIN)

# docs rewrites README.md's reference of backends, issuers and settings from
# the scheme registry and the settings table (a test checks they agree).
docs:
	$(GO) run ./internal/docgen README.md
