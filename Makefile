# The two commands a newcomer runs: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PACKAGES := deploy/packages/build.txt deploy/packages/runtime.txt deploy/packages/test.txt
CARGO ?= cargo

.PHONY: deps build run test bench sample clean

deps:
	@scripts/install-deps.sh $(PACKAGES)

build: deps
	$(CARGO) build --release

# The whole platform in one process on embedded defaults: SQLite in data/anb.db, blobs in
# data/blobs, the embedded queue, a signing key made once and kept in data/secret_key.
# A sample clip to upload is generated at data/sample-in.mp4.
run: build sample
	./target/release/anb pipeline check >/dev/null
	@echo "Serving on http://127.0.0.1:8000: open it in a browser for the page, /docs for the API (Ctrl-C stops it)."
	./target/release/anb serve

sample:
	@mkdir -p data
	@test -s data/sample-in.mp4 || scripts/make-sample.sh data/sample-in.mp4 40 1280x720

test: deps
	scripts/test.sh

# Capacity per Fargate task size beside ffmpeg (and the autoscaling targets), the streaming
# figures, and the web under load. Reports under target/bench-report/; docs/capacity.md reads them.
# `cargo bench` builds target/release/anb itself (the bench profile is the release one), which
# the scripts after it use; a separate `cargo build --release` first would build the workspace's
# crates twice, since the bench's dev-dependencies turn on features the plain build leaves off.
# The reference inputs are generated while that build runs: a cold build leaves a core idle for
# much of its time (a single crate or the link at a time), which the encoder fills.
bench: deps
	@scripts/install-deps.sh deploy/packages/bench.txt
	benches/gen-inputs.sh & inputs=$$!; $(CARGO) bench --bench capacity --no-run; built=$$?; wait $$inputs && exit $$built
	$(CARGO) bench --bench capacity
	RUNS=1 benches/pipeline.sh
	RUNS=3 benches/poster-cost.sh
	benches/web-load.sh 5 3
	benches/web-upload-rss.sh
	RUNS=5 benches/e2e-latency.sh

clean:
	$(CARGO) clean
