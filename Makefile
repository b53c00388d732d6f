# dydisnix build, test and benchmark targets.
GO      ?= go
BIN     ?= bin
SHARED  ?= ../shared
CMDS    := $(notdir $(wildcard cmd/dydisnix-*))

.PHONY: all build test unit vectors bench bench-scale lint fuzz demo clean install

all: build

## build: compile every command into $(BIN)/
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...
	@mkdir -p $(BIN)/examples
	@# The example services are artifacts the testbed uploads to every
	@# machine: built static and stripped, as a Nix build strips them.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/examples/ ./testbed/services/kvstore ./testbed/services/webfront ./testbed/services/peer ./testbed/services/chord ./testbed/services/webapp

## test: vet, the whole test suite, and the shared behaviour vectors through the CLI
test: lint unit vectors

unit:
	$(GO) test -count=1 -timeout 30m ./...

vectors: build
	@if [ -d $(SHARED)/vectors ]; then \
		python3 $(SHARED)/tools/run-vectors.py --strict $(BIN) $(SHARED)/vectors; \
	else \
		echo "$(SHARED)/vectors not found: skipping the CLI vector run (the Go tests run a copy)"; \
		if [ -n "$$CI" ]; then echo "CI must run the shared vectors"; exit 1; fi; \
	fi

## bench: the speed and memory benchmarks (see docs/benchmarks.md); the
## testbed and discovery ones need root (network namespaces)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x -timeout 30m ./...

## bench-scale: the scale scenario on the testbed (root): N machines with ten
## services each, first deploy, idle window, a kill -9, a graceful leave,
## down; prints the table of docs/benchmarks.md (make bench-scale N=50)
N    ?= 20
IDLE ?= 120s
bench-scale: build
	$(BIN)/dydisnix-testbed bench-scale -n $(N) --idle $(IDLE)

DEADCODE ?= golang.org/x/tools/cmd/deadcode@v0.52.0

## lint: gofmt, go vet and no dead code (deadcode -test)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@out=$$($(GO) run $(DEADCODE) -test ./...) || exit 1; \
	if [ -n "$$out" ]; then echo "dead code:"; echo "$$out"; exit 1; fi

## fuzz: run every fuzz target for a short while
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$pkg || exit 1; \
		done; \
	done

## demo: the self-adaptive loop on the embedded testbed
demo: build
	$(BIN)/dydisnix-testbed demo

## install: the commands, systemd units (and the coordinator's system user,
## sysusers.d), man pages and bash/zsh/fish completions
## under $(PREFIX) (staged under $(DESTDIR) if set); the units' ExecStart
## name $(PREFIX)/bin, without $(DESTDIR)
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0644 dist/sysusers.d/dydisnix.conf $(DESTDIR)$(SYSUSERSDIR)/
	install -m 0755 $(addprefix $(BIN)/,$(CMDS)) $(DESTDIR)$(BINDIR)/
	for u in dist/systemd/*.service; do \
		sed 's|/usr/bin/dydisnix-|$(BINDIR)/dydisnix-|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	$(GO) run ./dist/gen -bin $(BIN) -man $(DESTDIR)$(MANDIR)/man1 \
		-bash $(DESTDIR)$(BASHCOMPDIR) -zsh $(DESTDIR)$(ZSHCOMPDIR) -fish $(DESTDIR)$(FISHCOMPDIR) \
		$(CMDS)

clean:
	rm -rf $(BIN)
