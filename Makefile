# reachprobe's build, test and lab targets. The README's two set-up
# commands are "make run" and "make test".

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BINARY   := reachprobe

.PHONY: build run test lab bench fuzz golden vet cross cross-test clean

# A static binary: no cgo, so it runs on any Linux of the same
# architecture, a Raspberry Pi included (GOARCH=arm64 make build).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/reachprobe

# Static binaries for a Raspberry Pi: 64-bit (arm64) and 32-bit (armv7)
# ARM, each with its size. go vet for 32-bit ARM compiles the tests too,
# where an int is 32 bits: sizes and offsets of multi-gigabyte databases
# must be int64.
CROSS_TARGETS := arm64: arm:7
cross:
	@for t in $(CROSS_TARGETS); do \
	  arch=$${t%%:*}; arm=$${t#*:}; out=$(BINARY)-linux-$$arch$${arm:+v$$arm}; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/reachprobe || exit 1; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) vet ./... || exit 1; \
	  echo "$$out: $$(stat -c %s $$out) bytes"; \
	done

# The storage and analysis unit tests on 32-bit ARM under qemu-user (the
# CI machine installs it): what int overflow would break.
cross-test:
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm ./measurements/ ./analysis/

# Builds, then measures the embedded default catalog from this network.
run: build
	./$(BINARY) run

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# Every unit, loopback and end-to-end test, with the race detector.
test: vet
	$(GO) test -race -count=1 ./...

# The censorship lab: network namespaces, needs root, iproute2 and iptables.
lab:
	$(GO) test -count=1 -tags lab -v -run "TestLab" ./probes/lab/
	$(GO) test -count=1 -tags lab -v -run "TestLab" ./probes/pathprobe/

# The benchmarks, then BenchmarkYear: list, analyze, the HTML and CSV
# reports and prune over a year of hourly runs (8760, made by
# buildBenchDB), each with its time, peak RSS and the bytes per run. The
# databases it builds (minutes for a year) are kept in BENCH_CACHE and
# reused while the builder and the schema are unchanged; delete the
# directory to rebuild.
#
# Last, BenchmarkLabCleanRun: a clean lab run of the default catalog on a
# fresh database, its median and slowest time beside the peer's 0.49 s.
# It needs the lab (root, iproute2, iptables) and skips, saying why,
# without it; it waits for LAB_LOCK, so it never shares the lab's
# machine with another lab run.
BENCH_CACHE ?= $(HOME)/.cache/reachprobe-bench
LAB_LOCK ?= $(shell command -v flock >/dev/null 2>&1 && echo flock /tmp/reachprobe-lab.lock)
bench:
	REACHPROBE_BENCH_CACHE=$(BENCH_CACHE) $(GO) test -run '^$$' -bench . -skip 'BenchmarkYear' -benchmem ./...
	REACHPROBE_BENCH_CACHE=$(BENCH_CACHE) $(GO) test -run '^$$' -bench 'BenchmarkYear' -benchtime 1x -timeout 60m ./cmd/reachprobe
	$(LAB_LOCK) $(GO) test -tags lab -run '^$$' -bench 'BenchmarkLabCleanRun' -benchtime 10x -v ./probes/lab/

# A short pass of every fuzz target (about 20 of them: CI gives each 5s,
# which with compiling keeps the whole pass near three minutes).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Rewrites the analysis golden files; review the diff before committing.
golden:
	$(GO) test ./analysis -run TestGolden -update

clean:
	rm -f $(BINARY) $(BINARY)-linux-arm64 $(BINARY)-linux-armv7
