# Ringfence build, test and demo entry points. `make demo` and `make test`
# work on a fresh machine: `deps` installs what is missing first.

export PATH := $(PATH):/usr/local/go/bin
# runsc is static: no cgo threads in the Sentry or the gofer (which drops
# capabilities per thread).
export CGO_ENABLED := 0
GO       ?= go
BIN      := bin
RUNSC    := $(BIN)/runsc
OUT      := out
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Debian packages the build and the tests need.
DEB_PACKAGES := busybox-static gcc libc6-dev make qemu-system-x86 linux-image-amd64 xz-utils python3 perl tar findutils coreutils

.PHONY: all build install deps demo test bench vet readme clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(GO) mod download

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(RUNSC) ./cmd/runsc

install: build
	install -m 0755 $(RUNSC) /usr/local/bin/runsc

demo: deps build
	@mkdir -p $(OUT)
	@gcc -O2 -static -o $(OUT)/hello testdata/hello.c
	@echo "== platforms on this host"
	@$(RUNSC) platforms
	@echo "== runsc do busybox echo (platform: $$($(RUNSC) platforms | sed -n 's/^auto *-> //p'))"
	$(RUNSC) do busybox echo "hello from busybox in the sandbox"
	@echo "== runsc do of a static C program"
	$(RUNSC) do $(OUT)/hello from the sandbox
	@echo "== Debian's dynamically linked ls and python3, the host's / under a memory overlay"
	$(RUNSC) do /bin/ls -l /etc/os-release
	$(RUNSC) do /usr/bin/python3 -c 'import sqlite3, platform; print("python", platform.python_version(), "sqlite", sqlite3.sqlite_version, "in the sandbox")'
	@echo "== busybox uname -m, and an exit status"
	$(RUNSC) do busybox uname -m
	-$(RUNSC) do busybox false; echo "exit status $$?"
	@echo "== the kvm platform, forced (app code in guest ring 3 of our own VM)"
	-$(RUNSC) --platform=kvm do $(OUT)/hello on kvm

vet:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt needed on the files above"; exit 1)
	$(GO) vet ./...

test: deps vet
	$(GO) test -count=1 -timeout 15m ./...

# Benchmarks: whole programs (native vs each platform) and the platforms'
# raw syscall round trip. Figures, not pass/fail: the machines are shared.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 20x -count 5 ./e2e/
	$(GO) test -run '^$$' -bench . -benchtime 200000x -count 5 ./ptrace_fallback/
	$(GO) test -run '^$$' -bench . -benchtime 2000x -count 5 ./vmm/

# Regenerate the README's system call table from the Sentry's table.
readme:
	$(GO) run ./tools/readmegen README.md

clean:
	rm -rf $(BIN) $(OUT)
