.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: install
install: ## Install kvmtrace (release build) with test extras, editable
	bash scripts/install-deps.sh
	python3 -m pip install -e '.[test]'

.PHONY: build-dev
build-dev: ## Rebuild the extension in place (no build isolation)
	python3 -m pip install --no-build-isolation -e .

.PHONY: format
format: ## Format Rust
	cargo fmt

.PHONY: lint
lint: ## rustfmt, clippy (-D warnings), mypy stubtest of _core.pyi, pyright on the package
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	python3 -m mypy.stubtest kvmtrace._core
	python3 -m pyright

.PHONY: test
test: ## The whole suite: cargo test + pytest (as CI runs it)
	bash scripts/test.sh

.PHONY: bench
bench: ## Benchmarks against the C KVM_RUN baseline (saves results for --benchmark-compare)
	python3 -m pytest benches --benchmark-enable --benchmark-autosave -p no:cacheprovider -o addopts=""

.PHONY: ci
ci: ## What CI runs
	bash .ci/run
