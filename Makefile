# terraform-provider-cxflow
#   make demo   the CxFlow example applied against the bundled AWS stand-in (moto)
#   make test   unit and end-to-end tests (real Terraform CLI, real provider, moto)

SHELL := /bin/bash
CARGO ?= cargo
TOOLS := $(CURDIR)/.tools

.PHONY: tools build test demo docs release bench reliability clean

tools:
	@scripts/bootstrap.sh

build:
	$(CARGO) build --bins

# Formatting and lints first (they fail fast), then one build of the
# provider and the test binaries, then every test.
test: tools
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) build --bins --tests
	$(CARGO) test --no-fail-fast -- --test-threads=2

demo: tools build
	@scripts/demo.sh

docs: build
	./target/debug/terraform-provider-cxflow docs .

release: tools
	@scripts/release.sh "$(VERSION)"

bench: tools
	@scripts/bench.sh

reliability: tools
	$(CARGO) build --bins --tests
	CXFLOW_RELIABILITY_FULL=1 $(CARGO) test --test reliability -- --nocapture --test-threads=1

clean:
	$(CARGO) clean
	rm -rf $(TOOLS)
