# The two commands a newcomer runs: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PACKAGES := deploy/packages/build.txt deploy/packages/runtime.txt deploy/packages/test.txt
CARGO ?= cargo

.PHONY: deps build run test bench sample clean

deps:
	@scripts/install-deps.sh $(PACKAGES)

build: deps
	$(CARGO) build --release

# Until `anb serve` lands, `make run` shows the pipeline on a generated clip.
run: build sample
	./target/release/anb pipeline check
	./target/release/anb process data/sample-in.mp4 data/sample-out.mp4
	@echo "Processed clip: data/sample-out.mp4"

sample:
	@mkdir -p data
	@test -s data/sample-in.mp4 || scripts/make-sample.sh data/sample-in.mp4 40 1280x720

test: deps
	scripts/test.sh

bench: deps
	$(CARGO) build --release
	benches/pipeline.sh

clean:
	$(CARGO) clean
